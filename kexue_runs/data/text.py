"""Embedded text corpora, byte-level (vocabulary 256), offline by default.

    python_source   the top-level modules of this Python's standard library (Lib/*.py, ~4.7 MB):
                    real code with long-range structure (names defined once and reused far away)
    pydoc_topics    the English help topics shipped with Python (pydoc_data.topics, ~0.5 MB)
    <hf name>       any text dataset through `datasets` (data.hf_path, data.hf_text_field); needs
                    the download or a local cache

Files are split between train and test by a hash of their name, so test text is never seen in
training. The exact bytes depend on the Python version; the run records it.
"""

from __future__ import annotations

import glob
import os
import sysconfig
import zlib
from dataclasses import dataclass

import torch

from ..common.errors import ConfigError
from ..methods.retry import Retry

CORPORA = ("python_source", "pydoc_topics", "hf")


@dataclass
class TextCorpus:
    name: str
    train: torch.Tensor  # uint8 bytes as int64 token ids
    test: torch.Tensor

    vocab_size: int = 256

    def describe(self) -> str:
        return f"{self.name}: train {self.train.numel() / 1e6:.2f}M bytes, test {self.test.numel() / 1e6:.2f}M bytes"


def is_test(name: str, test_fraction: float) -> bool:
    return zlib.crc32(name.encode()) % 1000 < int(test_fraction * 1000)


def documents(cfg) -> list[tuple[str, bytes]]:
    if cfg.name == "python_source":
        files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
        return [(os.path.basename(f), open(f, "rb").read()) for f in files]
    if cfg.name == "pydoc_topics":
        from pydoc_data.topics import topics

        return [(key, topics[key].encode("utf-8")) for key in sorted(topics)]
    if cfg.name == "hf":
        from datasets import load_dataset

        tries = Retry(3, delay=1.0, backoff=2.0, catch=(ConnectionError, OSError), what=f"loading {cfg.hf_path}")
        for retry in tries:
            with retry:
                rows = load_dataset(cfg.hf_path, split="train")
        if not tries.ok:
            raise ConfigError(f"data.hf_path={cfg.hf_path}: could not load it after 3 tries ({tries.error}); "
                              "point data.hf_path at a local copy") from tries.error
        return [(str(i), row[cfg.hf_text_field].encode("utf-8")) for i, row in enumerate(rows)]
    raise ConfigError(f"data.name={cfg.name}: allowed: {', '.join(CORPORA)}")


def load_text(cfg) -> TextCorpus:
    """Concatenate the documents (separated by a NUL byte) into a train and a test stream."""
    train, test = [], []
    for name, body in documents(cfg):
        (test if is_test(name, float(cfg.test_fraction)) else train).append(body + b"\0")
    limit = int(cfg.max_bytes) if cfg.get("max_bytes") else None
    streams = [b"".join(part)[:limit] for part in (train, test)]
    tensors = [torch.frombuffer(bytearray(s), dtype=torch.uint8).long() for s in streams]
    return TextCorpus(cfg.name, *tensors)


def batch_windows(stream: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """(len(starts), length) windows of a token stream."""
    return stream[starts[:, None] + torch.arange(length)]


def random_windows(stream: torch.Tensor, length: int, batch: int, seed: int, step: int) -> torch.Tensor:
    """(batch, length+1) windows at random starts: a function of (seed, step) only, so a resumed run
    sees the very batches the killed one would have."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return batch_windows(stream, torch.randint(0, stream.numel() - length - 1, (batch,), generator=g), length + 1)
