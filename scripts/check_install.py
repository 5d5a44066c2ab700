"""Fail loudly if a CUDA torch or nvidia packages slipped into a CPU install."""

import importlib.metadata as md
import sys

import torch

nvidia = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia"))
if nvidia:
    sys.exit(f"CUDA packages installed on a CPU machine: {nvidia}")
print(f"ok: torch {torch.__version__} (cuda: {torch.version.cuda}), no nvidia packages")
