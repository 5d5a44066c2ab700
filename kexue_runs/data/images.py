"""Image datasets as float tensors in [0, 1], shape (N, C, H, W), split into train and val."""

from __future__ import annotations

import gzip
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..common.errors import ConfigError
from ..methods.retry import Retry

EMBEDDED = ("photo_patches", "digits")
DOWNLOADABLE = ("cifar10", "fashion_mnist")


@dataclass
class ImageSplits:
    train: torch.Tensor
    val: torch.Tensor
    name: str
    train_labels: torch.Tensor | None = None  # class labels where the set has them (digits, cifar10, fashion_mnist)
    val_labels: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[1:])


def load_images(data_cfg) -> ImageSplits:
    name = data_cfg.name
    if name == "photo_patches":
        return photo_patches(int(data_cfg.patch), int(data_cfg.train_size), int(data_cfg.val_size))
    if name == "digits":
        return digits(int(data_cfg.val_size))
    if name in DOWNLOADABLE:
        return downloadable(data_cfg)
    raise ConfigError(f"data={name}: unknown image dataset; allowed: {', '.join(EMBEDDED + DOWNLOADABLE)}")


def sample_photos() -> list[np.ndarray]:
    """scikit-learn's two bundled photos (china.jpg, flower.jpg) as uint8 (H, W, 3) arrays, read with PIL
    (importing sklearn.datasets to load them costs a second)."""
    from importlib.util import find_spec

    from PIL import Image

    folder = Path(find_spec("sklearn").submodule_search_locations[0]) / "datasets" / "images"
    return [np.array(Image.open(folder / name).convert("RGB")) for name in ("china.jpg", "flower.jpg")]


DATA_SEED = 1234  # crop positions are fixed: every run and every seed of a sweep sees the same sets


def photo_patches(patch: int, train_size: int, val_size: int) -> ImageSplits:
    """Random crops of china.jpg and flower.jpg. Each photo is cut into vertical stripes 4 patches wide:
    even stripes give training crops, odd stripes validation crops, so both come from the same mix of
    image content and never share a pixel. Each split has its own generator: the training crops do not
    depend on val_size, nor the validation crops on train_size."""
    photos = [torch.from_numpy(img).permute(2, 0, 1).float() / 255.0 for img in sample_photos()]
    stripe = 4 * patch
    regions = {0: [], 1: []}
    for photo in photos:
        for k, left in enumerate(range(0, photo.shape[2] - patch + 1, stripe)):
            regions[k % 2].append(photo[:, :, left:left + stripe])
    train = crops_from(regions[0], patch, train_size, torch.Generator().manual_seed(DATA_SEED))
    val = crops_from(regions[1], patch, val_size, torch.Generator().manual_seed(DATA_SEED + 1))
    return ImageSplits(train, val, "photo_patches")


def crops_from(regions: list[torch.Tensor], size: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """n random size x size crops, each from a region drawn in proportion to its area."""
    areas = torch.tensor([float((r.shape[1] - size + 1) * (r.shape[2] - size + 1)) for r in regions])
    which = torch.multinomial(areas / areas.sum(), n, replacement=True, generator=gen)
    out = torch.empty(n, regions[0].shape[0], size, size)
    for i, region in enumerate(regions):
        chosen = (which == i).nonzero().flatten()
        if len(chosen):
            out[chosen] = random_crops(region, size, len(chosen), gen)
    return out


def random_crops(image: torch.Tensor, size: int, n: int, gen: torch.Generator) -> torch.Tensor:
    _, h, w = image.shape
    ys = torch.randint(0, h - size + 1, (n,), generator=gen)
    xs = torch.randint(0, w - size + 1, (n,), generator=gen)
    rows = (ys[:, None] + torch.arange(size))[:, :, None]  # (n, size, 1)
    cols = (xs[:, None] + torch.arange(size))[:, None, :]  # (n, 1, size)
    return image[:, rows, cols].permute(1, 0, 2, 3).contiguous()  # (n, C, size, size)


def digits(val_size: int) -> ImageSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0
    y = torch.from_numpy(digits.target).long()
    return ImageSplits(x[:-val_size], x[-val_size:], "digits", y[:-val_size], y[-val_size:])


# -- downloadable sets -------------------------------------------------------------------------

def network_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_available(data_cfg) -> None:
    """Raise ConfigError (one line) if a downloadable set has neither a local copy nor the network."""
    if data_cfg.name not in DOWNLOADABLE:
        return
    root = data_cfg.get("root")
    if root and Path(root).exists():
        return
    where = f"data.root={root} does not exist" if root else "data.root is not set"
    offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    if offline or not network_reachable():
        why = "downloads are off (HF_DATASETS_OFFLINE=1; set it to 0 to allow them)" if offline \
            else "huggingface.co is unreachable"
        raise ConfigError(
            f"data={data_cfg.name} needs a local copy or the network: {where} and {why}; set data.root=DIR "
            f"(or KEXUE_DATA) to a local copy, or use an embedded set: {', '.join(EMBEDDED)}")


def downloadable(data_cfg) -> ImageSplits:
    check_available(data_cfg)
    root = data_cfg.get("root")
    if data_cfg.name == "fashion_mnist" and root and list(Path(root).glob("*-images-idx3-ubyte*")):
        train, val = read_idx_images(Path(root), "train"), read_idx_images(Path(root), "t10k")
        y_train, y_val = read_idx_labels(Path(root), "train"), read_idx_labels(Path(root), "t10k")
    else:
        (train, y_train), (val, y_val) = hf_images(data_cfg)
    n_train, n_val = int(data_cfg.train_size), int(data_cfg.val_size)
    return ImageSplits(train[:n_train], val[:n_val], data_cfg.name,
                       y_train[:n_train] if y_train is not None else None, y_val[:n_val] if y_val is not None else None)


def read_idx_images(root: Path, prefix: str) -> torch.Tensor:
    path = next(root.glob(f"{prefix}-images-idx3-ubyte*"))
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, 1, h, w)
    return torch.from_numpy(x.copy()).float() / 255.0


def read_idx_labels(root: Path, prefix: str) -> torch.Tensor | None:
    paths = list(root.glob(f"{prefix}-labels-idx1-ubyte*"))
    if not paths:
        return None
    raw = gzip.open(paths[0]).read() if paths[0].suffix == ".gz" else paths[0].read_bytes()
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=8).astype(np.int64))


def hf_images(data_cfg, attempts: int = 3):
    """((train images, train labels or None), (test images, test labels or None)) through `datasets`."""
    import datasets

    root = data_cfg.get("root")
    tries = Retry(attempts, delay=1.0, backoff=2.0, catch=(ConnectionError, OSError),
                  what=f"loading {data_cfg.hf_name}")
    for retry in tries:
        with retry:
            if root and Path(root).exists():
                ds = datasets.load_from_disk(root) if (Path(root) / "dataset_dict.json").exists() \
                    else datasets.load_dataset(root)
            else:
                ds = datasets.load_dataset(data_cfg.hf_name)
    if not tries.ok:
        raise ConfigError(f"data={data_cfg.name}: could not load {data_cfg.hf_name} after "
                          f"{attempts} tries ({tries.error}); set data.root=DIR to a local copy") from tries.error

    def to_tensor(split) -> torch.Tensor:
        imgs = [np.asarray(im, dtype=np.uint8) for im in split[data_cfg.image_key]]
        x = torch.from_numpy(np.stack(imgs)).float() / 255.0
        return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)

    def labels(split) -> torch.Tensor | None:
        key = data_cfg.get("label_key", "label")
        return torch.tensor(split[key], dtype=torch.long) if key in split.column_names else None

    return (to_tensor(ds["train"]), labels(ds["train"])), (to_tensor(ds["test"]), labels(ds["test"]))
