"""coursekit.train.losses: the scratch label-smoothing loss and the fused running version."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from coursekit.train.losses import cross_entropy_loss, label_smoothing_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(dtype: torch.dtype, *, seed: int = 0, shape=(3, 7), vocab: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(*shape, vocab, generator=g, dtype=torch.float64) * 3).to(dtype)
    target = torch.randint(0, vocab, shape, generator=g)
    flat = target.view(-1)
    flat[:2] = -100
    flat[-1] = -100
    return logits, target


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_running_and_scratch_versions_agree_with_torch(dtype: torch.dtype, eps: float) -> None:
    logits, target = _problem(dtype)
    ref = F.cross_entropy(
        logits.reshape(-1, 11), target.reshape(-1), label_smoothing=eps, ignore_index=-100
    )
    fused = cross_entropy_loss(logits, target, label_smoothing=eps)
    scratch = cross_entropy_loss(logits, target, label_smoothing=eps, scratch=True)
    direct = label_smoothing_loss(logits, target, eps=eps)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {}
    for value in (fused, scratch, direct):
        assert value.dtype == dtype and value.shape == ()
        torch.testing.assert_close(value, ref, **tol)


def test_gradients_agree() -> None:
    logits, target = _problem(torch.float64)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    cross_entropy_loss(a, target, label_smoothing=0.2).backward()
    cross_entropy_loss(b, target, label_smoothing=0.2, scratch=True).backward()
    assert a.grad is not None and b.grad is not None
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_custom_ignore_index_and_one_dimensional_input() -> None:
    logits, target = _problem(torch.float64, shape=(9,))
    target = torch.where(target == -100, torch.full_like(target, 4), target)
    assert (target == 4).any()
    ref = F.cross_entropy(logits, target, label_smoothing=0.1, ignore_index=4)
    for scratch in (False, True):
        got = cross_entropy_loss(
            logits, target, label_smoothing=0.1, ignore_index=4, scratch=scratch
        )
        torch.testing.assert_close(got, ref)


def test_float64_stays_float64() -> None:
    """float64 in gives float64 out (the scratch loss used to compute in float32)."""
    logits, target = _problem(torch.float64)
    # a loss difference only float64 resolves: two logits sets 1e-10 apart
    shifted = logits.clone()
    shifted[..., 0] += 1e-10
    a = label_smoothing_loss(logits, target, eps=0.1)
    b = label_smoothing_loss(shifted, target, eps=0.1)
    assert a.dtype == torch.float64 and a != b


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_works_in_its_own_dtype(dtype: torch.dtype) -> None:
    logits, target = _problem(torch.float32)
    ref = cross_entropy_loss(logits, target, label_smoothing=0.1)
    for scratch in (False, True):
        got = cross_entropy_loss(logits.to(dtype), target, label_smoothing=0.1, scratch=scratch)
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), ref, rtol=3e-2, atol=3e-2)


def test_every_position_ignored() -> None:
    logits = torch.randn(2, 3, 5)
    target = torch.full((2, 3), -100)
    assert label_smoothing_loss(logits, target, eps=0.1) == 0
    assert cross_entropy_loss(logits, target, scratch=True) == 0


@pytest.mark.parametrize("scratch", [False, True])
def test_bad_input_gives_clear_errors(scratch: bool) -> None:
    logits, target = torch.randn(2, 4, 5), torch.randint(0, 5, (2, 4))
    with pytest.raises(TypeError, match="target must hold integer class ids"):
        cross_entropy_loss(logits, target.float(), scratch=scratch)
    with pytest.raises(TypeError, match="target must hold integer class ids"):
        cross_entropy_loss(logits, target > 0, scratch=scratch)
    with pytest.raises(TypeError, match="logits must be floating point"):
        cross_entropy_loss(logits.long(), target, scratch=scratch)
    with pytest.raises(ValueError, match=r"final class dimension \(\.\.\., K\)"):
        cross_entropy_loss(logits, target[:, :3], scratch=scratch)
    with pytest.raises(ValueError, match=r"final class dimension"):
        cross_entropy_loss(logits.reshape(8, 5), target, scratch=scratch)
    for eps in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"eps must be in \[0, 1\)"):
            cross_entropy_loss(logits, target, label_smoothing=eps, scratch=scratch)
    with pytest.raises(ValueError, match="eps"):
        label_smoothing_loss(logits, target, eps=-0.01)
