"""Turning token ids into training batches."""

from __future__ import annotations

import torch


def random_windows(
    ids: torch.Tensor,
    block_size: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random contiguous windows for language modelling.

    ids: ``(N,)`` long tensor of a whole corpus. Returns ``(x, y)``, each ``(batch_size,
    block_size)``, where ``y`` is ``x`` shifted left by one token (the next-token targets).
    """
    if ids.dim() != 1:
        raise ValueError(
            f"random_windows expects a 1-D tensor of ids, got shape {tuple(ids.shape)}."
        )
    if ids.numel() <= block_size:
        raise ValueError(
            f"The corpus has {ids.numel()} tokens, too few for block_size={block_size}."
        )
    starts = torch.randint(ids.numel() - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = ids[starts[:, None] + offsets]
    x, y = windows[:, :-1], windows[:, 1:]
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


def pad_sequences(
    seqs: list[list[int]], pad_id: int, *, max_len: int | None = None
) -> torch.Tensor:
    """Right-pad lists of ids to one ``(B, T_max)`` long tensor (truncating at ``max_len``)."""
    if not seqs:
        raise ValueError("pad_sequences got no sequences.")
    longest = max(len(s) for s in seqs)
    width = longest if max_len is None else min(longest, max_len)
    out = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        seq = seq[:width]
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out
