"""coursekit.dropout: the same distribution as nn.Dropout, drawn faster on CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coursekit.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_keep_rate_and_scale(p: float) -> None:
    torch.manual_seed(0)
    out = dropout(torch.ones(400_000), p)
    kept = out != 0
    # binomial standard error at n = 400,000 is below 0.0008
    assert abs(kept.float().mean().item() - (1 - p)) < 0.004
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)))


def test_odd_sizes_shapes_and_dtypes() -> None:
    for shape in [(1,), (3,), (5, 7), (2, 3, 5)]:
        for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
            x = torch.randn(shape).to(dtype)
            out = dropout(x, 0.3)
            assert out.shape == x.shape and out.dtype == x.dtype
            kept = out != 0
            torch.testing.assert_close(out[kept], (x / 0.7)[kept])


def test_identity_when_not_training_or_p_zero() -> None:
    x = torch.randn(4, 5)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    module = Dropout(0.5).eval()
    assert module(x) is x
    assert isinstance(module, nn.Dropout) and module.p == 0.5


def test_gradient_uses_the_same_mask() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    out = dropout(x, 0.2)
    out.sum().backward()
    assert x.grad is not None
    expected = (out != 0).float() / 0.8
    torch.testing.assert_close(x.grad, expected)


def test_seeded_runs_repeat_and_masks_are_not_all_alike() -> None:
    x = torch.ones(10_000)
    torch.manual_seed(3)
    a = dropout(x, 0.5)
    torch.manual_seed(3)
    b = dropout(x, 0.5)
    assert torch.equal(a, b)
    c = dropout(x, 0.5)
    assert not torch.equal(a, c)
    # the four 16-bit numbers of one random word are independent: neighbours agree half the time
    kept = (a != 0).view(-1, 4)
    agree = (kept[:, 0] == kept[:, 1]).float().mean().item()
    assert abs(agree - 0.5) < 0.03


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_bad_probability_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(torch.ones(3), p)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
