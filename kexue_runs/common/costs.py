"""What one training iteration costs: wall time and the bytes autograd keeps for backward."""

from __future__ import annotations

import time

import numpy as np
import torch


class CostMeter:
    """Seconds per iteration (perf_counter) and the bytes autograd keeps for backward in one iteration
    (every tensor saved by the graph, counted through saved_tensors_hooks: on CPU this is the memory that
    second-order terms add; on CUDA the peak allocation is recorded too)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.seconds: list[float] = []
        self.saved_bytes = 0
        self._current = 0
        self._start = 0.0

    # The pack hook hands the tensor back, so a saved *output* holds a cycle (tensor -> its grad_fn -> the
    # tensor) that backward breaks; a graph built under the meter and never backpropagated stays alive for good.
    # Build such graphs under torch.no_grad() (toy2d.train_adversarial does for the critic step's fakes).
    def _pack(self, tensor):
        self._current += tensor.numel() * tensor.element_size()
        return tensor

    def __enter__(self):
        self._current = 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds.append(time.perf_counter() - self._start)
        self.saved_bytes = max(self.saved_bytes, self._current)
        return False

    def summary(self) -> dict:
        steady = self.seconds[len(self.seconds) // 10:] or self.seconds  # skip warm-up
        out = {"ms_per_iteration": 1000 * float(np.median(steady)), "saved_kib_per_iteration": self.saved_bytes / 1024}
        if self.device.type == "cuda":
            out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        return out
