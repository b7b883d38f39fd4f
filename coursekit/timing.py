"""Wall-clock timing of a piece of work on a device, robust to a busy machine."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Literal

import torch

Statistic = Literal["min", "median"]


def synchronize(device: torch.device | str | None) -> None:
    """Wait until queued GPU work has finished (a no-op on the CPU)."""
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cuda":
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


def time_call(
    fn: Callable[[], object],
    *,
    device: torch.device | str | None = None,
    repeats: int = 5,
    warmup: int = 1,
    statistic: Statistic = "min",
) -> float:
    """Seconds one call of ``fn()`` takes: the min (default) or median over ``repeats`` calls.

    ``warmup`` calls run first and are not timed (they pay for allocation and kernel selection).
    The minimum is the least disturbed run, since other processes only ever add time; the median
    is steadier when comparing two measurements taken in the same run.
    """
    if repeats < 1:
        raise ValueError(f"time_call needs repeats >= 1, got {repeats}.")
    if statistic not in ("min", "median"):
        raise ValueError(f"statistic must be 'min' or 'median', got {statistic!r}.")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return min(samples) if statistic == "min" else statistics.median(samples)


def peak_memory(fn: Callable[[], object], *, device: torch.device | str | None = None) -> int:
    """Peak bytes of tensor memory allocated while ``fn()`` runs, above what was live before.

    On CUDA, PyTorch's allocator statistics. On other devices, every tensor the call creates is
    tracked (by its storage, so views are not counted twice) from its creation until it is freed;
    the result is the largest total alive at one time. Memory used *inside* a fused kernel and
    released before it returns (a flash-attention tile, say) is not seen, only its outputs.
    """
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)

    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class _Tracker(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: dict[int, int] = {}
            self.current = 0
            self.peak = 0

        def _free(self, key: int) -> None:
            self.current -= self.live.pop(key, 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if not isinstance(t, torch.Tensor):
                    continue
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size == 0 or key in self.live:
                    continue
                self.live[key] = size
                self.current += size
                self.peak = max(self.peak, self.current)
                weakref.finalize(t, self._free, key)
            return out

    tracker = _Tracker()
    with tracker:
        fn()
    return tracker.peak
