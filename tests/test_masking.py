"""data.mlm_mask: BERT's 15% selection and 80/10/10 corruption, measured on a large batch."""

from __future__ import annotations

import pytest
import torch

from coursekit.data import mlm_mask

MASK, VOCAB, CLS, SEP = 4, 1000, 1, 2


def batch() -> torch.Tensor:
    ids = torch.randint(5, VOCAB, (256, 128), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1] = CLS, SEP
    return ids


def test_selection_and_corruption_rates():
    ids = batch()
    inputs, labels = mlm_mask(
        ids,
        mask_token_id=MASK,
        vocab_size=VOCAB,
        special_ids=(CLS, SEP),
        generator=torch.Generator().manual_seed(1),
    )
    selected = labels != -100
    eligible = ids.numel() - 2 * ids.shape[0]
    n = int(selected.sum())
    assert abs(n / eligible - 0.15) < 0.01
    assert torch.equal(labels[selected], ids[selected])  # labels are the originals
    masked = (inputs[selected] == MASK).float().mean()
    kept = (inputs[selected] == ids[selected]).float().mean()
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1 - 1 / VOCAB * 0.1) < 0.02
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing else changes
    assert not selected[:, 0].any() and not selected[:, -1].any()  # specials never selected


def test_deterministic_with_a_generator_and_checks_dtype():
    ids = batch()
    a = mlm_mask(
        ids, mask_token_id=MASK, vocab_size=VOCAB, generator=torch.Generator().manual_seed(3)
    )
    b = mlm_mask(
        ids, mask_token_id=MASK, vocab_size=VOCAB, generator=torch.Generator().manual_seed(3)
    )
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(TypeError, match="int64"):
        mlm_mask(ids.int(), mask_token_id=MASK, vocab_size=VOCAB)
