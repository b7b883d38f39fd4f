"""BERT's masked-language-model corruption of a batch of token ids."""

from __future__ import annotations

from collections.abc import Iterable

import torch

IGNORE_INDEX = -100


def mlm_mask(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select ``mlm_probability`` of the non-special tokens; corrupt them as BERT does.

    Of the selected positions, 80% become ``mask_token_id``, 10% a uniformly random token and 10%
    stay unchanged (so the model cannot learn that only [MASK] positions matter).
    input_ids ``(...)`` long. Returns ``(inputs, labels)`` of the same shape: labels hold the
    original id where selected and -100 elsewhere. Special tokens are never selected.
    """
    if input_ids.dtype != torch.long:
        raise TypeError(f"mlm_mask expects int64 token ids, got {input_ids.dtype}.")
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}.")
    device = input_ids.device

    def uniform() -> torch.Tensor:
        return torch.rand(input_ids.shape, generator=generator).to(device)

    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for sid in special_ids:
        special |= input_ids == sid
    selected = (uniform() < mlm_probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    roll = uniform()
    to_mask = selected & (roll < 0.8)
    to_random = selected & (roll >= 0.8) & (roll < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator).to(device)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels
