"""The sequential bottleneck, measured: an RNN layer's time loop vs one self-attention layer.

An RNN layer needs T dependent steps for a T-token sequence; a self-attention layer computes all
positions in a few large matrix products (O(T^2 d) work, but no chain of dependent steps).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from coursekit.rnn.cells import RNN

__all__ = ["TimingRow", "fit_loglog_slope", "time_rnn_vs_attention"]


@dataclass(frozen=True)
class TimingRow:
    """Forward wall time (seconds, best of the repeats) of each layer at one sequence length."""

    seq_len: int
    rnn_loop: float  # coursekit's RNN: a Python loop over time steps
    torch_rnn: float  # torch.nn.RNN: the same recurrence in a fused C++ loop
    attention: float  # one torch.nn.MultiheadAttention self-attention layer


def _best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return min(samples)  # the least disturbed run: other processes only ever add time


@torch.no_grad()
def time_rnn_vs_attention(
    lengths: Sequence[int],
    *,
    d_model: int = 128,
    n_heads: int = 4,
    batch: int = 8,
    repeats: int = 3,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[TimingRow]:
    """Time a forward pass of each layer on a ``(batch, T, d_model)`` input for each T.

    Each time is the best of ``repeats`` runs after one warm-up run.
    """
    device = torch.device(device)
    torch.manual_seed(0)
    scratch = RNN(d_model, d_model).to(device)
    fused = nn.RNN(d_model, d_model, batch_first=True).to(device)
    attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True).to(device)
    rows = []
    iterator = lengths
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(lengths, desc="timing", leave=False)
    for t in iterator:
        x = torch.randn(batch, t, d_model, device=device)
        rows.append(
            TimingRow(
                seq_len=int(t),
                rnn_loop=_best_time(lambda x=x: scratch(x), device, repeats),
                torch_rnn=_best_time(lambda x=x: fused(x), device, repeats),
                attention=_best_time(
                    lambda x=x: attn(x, x, x, need_weights=False), device, repeats
                ),
            )
        )
    return rows


def fit_loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the exponent k in y ∝ x^k."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("fit_loglog_slope needs two equally long sequences of at least 2 points.")
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    var = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / var
