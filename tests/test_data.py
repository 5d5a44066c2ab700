"""Data: embedded sets are real, fixed and split; the local-directory loader reads real IDX files."""

import gzip

import numpy as np
import torch
from omegaconf import OmegaConf

from kexue_runs.data import batch_indices
from kexue_runs.data.images import load_images


def test_photo_patches_are_fixed_and_in_range():
    cfg = OmegaConf.create({"name": "photo_patches", "patch": 16, "train_size": 300, "val_size": 100})
    a, b = load_images(cfg), load_images(cfg)
    assert a.train.shape == (300, 3, 16, 16) and a.val.shape == (100, 3, 16, 16)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    assert 0 <= a.train.min() and a.train.max() <= 1 and a.train.std() > 0.05  # real pictures, not blank


def test_batches_are_a_function_of_seed_and_step():
    assert torch.equal(batch_indices(1000, 32, 0, 7), batch_indices(1000, 32, 0, 7))
    assert not torch.equal(batch_indices(1000, 32, 0, 7), batch_indices(1000, 32, 0, 8))
    assert not torch.equal(batch_indices(1000, 32, 0, 7), batch_indices(1000, 32, 1, 7))


def write_idx(path, images):
    n, h, w = images.shape
    header = (2051).to_bytes(4, "big") + n.to_bytes(4, "big") + h.to_bytes(4, "big") + w.to_bytes(4, "big")
    with gzip.open(path, "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())


def test_fashion_mnist_from_a_local_idx_folder(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (8, 28, 28)))
    cfg = OmegaConf.create({"name": "fashion_mnist", "root": str(tmp_path), "train_size": 16, "val_size": 8,
                            "hf_name": "unused", "image_key": "image"})
    data = load_images(cfg)
    assert data.train.shape == (16, 1, 28, 28) and data.val.shape == (8, 1, 28, 28)
    assert 0 <= data.train.min() and data.train.max() <= 1
