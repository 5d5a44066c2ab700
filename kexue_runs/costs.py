"""What one training iteration costs: wall time and the bytes autograd keeps for backward."""

from __future__ import annotations

import gc
import time

import numpy as np
import torch


class CostMeter:
    """Seconds per iteration (perf_counter) and the bytes autograd keeps for backward in one iteration
    (every tensor saved by the graph, counted through saved_tensors_hooks on the first `counted_iterations`:
    on CPU this is the memory that second-order terms add; on CUDA the peak allocation is recorded too)."""

    def __init__(self, device: torch.device | str = "cpu", counted_iterations: int = 3):
        self.device = torch.device(device)
        self.counted_iterations = counted_iterations
        self.seconds: list[float] = []
        self.saved_bytes = 0
        self._current = 0
        self._start = 0.0

    def _pack(self, tensor):
        self._current += tensor.numel() * tensor.element_size()
        return tensor

    def __enter__(self):
        self._current = 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        # Saved bytes are counted on the first iterations only (an iteration's graph is the same every time): a
        # pack hook that hands back a saved *output* makes a reference cycle (tensor -> its grad_fn -> the
        # tensor), which only Python's cycle collector frees, and that runs by object count, not by memory: at
        # image sizes every iteration leaked a few MB until the process was killed for memory.
        self._hooks = None
        if len(self.seconds) < self.counted_iterations:
            self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
            self._hooks.__enter__()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self._hooks is not None:
            self._hooks.__exit__(*exc)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds.append(time.perf_counter() - self._start)
        self.saved_bytes = max(self.saved_bytes, self._current)
        if self._hooks is not None:
            gc.collect()  # free this iteration's cycles now, outside the timed part
        return False

    def summary(self) -> dict:
        steady = self.seconds[len(self.seconds) // 10:] or self.seconds  # skip warm-up
        out = {"ms_per_iteration": 1000 * float(np.median(steady)), "saved_kib_per_iteration": self.saved_bytes / 1024}
        if self.device.type == "cuda":
            out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        return out
