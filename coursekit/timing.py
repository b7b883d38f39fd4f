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
