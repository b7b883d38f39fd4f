"""The sequential bottleneck, measured: an RNN layer's time loop vs one self-attention layer.

An RNN layer needs T dependent steps for a T-token sequence; a self-attention layer computes all
positions in a few large matrix products (O(T^2 d) work, but no chain of dependent steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from coursekit.rnn.cells import RNN
from coursekit.timing import time_call

__all__ = ["TimingRow", "time_rnn_vs_attention"]


@dataclass(frozen=True)
class TimingRow:
    """Forward wall time (seconds, best of the repeats) of each layer at one sequence length."""

    seq_len: int
    rnn_loop: float  # coursekit's RNN: a Python loop over time steps
    torch_rnn: float  # torch.nn.RNN: the same recurrence in a fused C++ loop
    attention: float  # one torch.nn.MultiheadAttention self-attention layer


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
                rnn_loop=time_call(partial(scratch, x), device=device, repeats=repeats),
                torch_rnn=time_call(partial(fused, x), device=device, repeats=repeats),
                attention=time_call(
                    partial(attn, x, x, x, need_weights=False), device=device, repeats=repeats
                ),
            )
        )
    return rows
