"""coursekit.train.precision: the autocast dtype per device and the fp16 gradient scaler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import coursekit.train.loop as loop
from coursekit.train import TrainConfig, load_checkpoint, train
from coursekit.train.precision import amp_dtype, autocast_context, make_grad_scaler

pytestmark = pytest.mark.usefixtures("one_thread")


def test_amp_dtype_per_device(monkeypatch) -> None:
    assert amp_dtype("cpu") == amp_dtype(torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype("cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype("cuda:0") == torch.float16
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda kind: True, raising=False)
    assert amp_dtype("mps") == torch.float16
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda kind: False, raising=False)
    assert amp_dtype("mps") is None
    assert amp_dtype("meta") is None


def test_autocast_context_on_cpu() -> None:
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast_context("cpu", True):
        assert (a @ b).dtype == torch.bfloat16
    with autocast_context(torch.device("cpu"), False):
        assert (a @ b).dtype == torch.float32
    with autocast_context("cpu", True, torch.float16):
        assert (a @ b).dtype == torch.float16


def test_grad_scaler_only_for_fp16_on_cuda(monkeypatch) -> None:
    assert not make_grad_scaler("cpu", torch.bfloat16).is_enabled()
    assert not make_grad_scaler("cpu", torch.float16).is_enabled()
    assert not make_grad_scaler("cpu", None).is_enabled()
    assert not make_grad_scaler("mps", torch.float16).is_enabled()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not make_grad_scaler("cuda", torch.bfloat16).is_enabled()
    assert make_grad_scaler("cuda", torch.float16).is_enabled()


class _SpyScaler(torch.amp.GradScaler):
    """A real (CPU) scaler that records the order of its calls."""

    def __init__(self, growth_interval: int = 2000) -> None:
        super().__init__("cpu", init_scale=2.0**12, growth_interval=growth_interval)
        self.calls: list[str] = []

    def scale(self, outputs):  # type: ignore[override]
        self.calls.append("scale")
        return super().scale(outputs)

    def unscale_(self, optimizer) -> None:
        self.calls.append("unscale_")
        super().unscale_(optimizer)

    def step(self, optimizer, *args, **kwargs):  # type: ignore[override]
        self.calls.append("step")
        return super().step(optimizer, *args, **kwargs)

    def update(self, new_scale=None) -> None:
        self.calls.append("update")
        super().update(new_scale)


def _regression(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 5, generator=g)
    return x, x @ torch.randn(5, 1, generator=g)


def _mse(model: nn.Module, batch) -> torch.Tensor:
    return F.mse_loss(model(batch[0]), batch[1])


def test_loop_scales_unscales_before_clipping_steps_and_updates(monkeypatch) -> None:
    x, y = _regression()
    spies: list[_SpyScaler] = []

    def spy(device, dtype):
        spies.append(_SpyScaler())
        return spies[-1]

    monkeypatch.setattr(loop, "make_grad_scaler", spy)
    model = nn.Linear(5, 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    cfg = TrainConfig(
        steps=1, lr=1.0, grad_clip=0.05, accumulation_steps=2, eval_batches=0, progress=False
    )
    h = train(
        model, lambda s: (x, y * 100), _mse, cfg, optimizer=torch.optim.SGD(model.parameters())
    )
    assert spies[0].calls == ["scale", "scale", "unscale_", "step", "update"]
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    # clipped on the true (unscaled) gradients: the update has exactly the clip norm
    assert float((after - before).norm()) == pytest.approx(0.05, rel=1e-4)
    assert 1.0 < h.grad_norm[0] < 2.0**12  # the recorded norm is the unscaled one


def test_scaled_training_equals_unscaled_in_fp32(monkeypatch) -> None:
    x, y = _regression()
    cfg = TrainConfig(steps=5, lr=0.05, eval_batches=0, progress=False)
    torch.manual_seed(0)
    plain = nn.Linear(5, 1)
    scaled = nn.Linear(5, 1)
    scaled.load_state_dict(plain.state_dict())
    h_plain = train(plain, lambda s: (x, y), _mse, cfg)
    monkeypatch.setattr(loop, "make_grad_scaler", lambda device, dtype: _SpyScaler())
    h_scaled = train(scaled, lambda s: (x, y), _mse, cfg)
    assert h_scaled.train_loss == pytest.approx(h_plain.train_loss, rel=1e-6)
    for a, b in zip(plain.parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_grad_scaler_state_is_checkpointed(tmp_path: Path, monkeypatch) -> None:
    x, y = _regression()
    # growth every step: after 3 finite steps the scale is 2^15
    monkeypatch.setattr(loop, "make_grad_scaler", lambda device, dtype: _SpyScaler(1))
    path = tmp_path / "run.safetensors"
    model = nn.Linear(5, 1)
    train(
        model,
        lambda s: (x, y),
        _mse,
        TrainConfig(steps=3, eval_batches=0, progress=False),
        checkpoint_path=path,
    )
    fresh = _SpyScaler()
    assert fresh.get_scale() == 2.0**12
    load_checkpoint(path, nn.Linear(5, 1), grad_scaler=fresh)
    assert fresh.get_scale() == 2.0**15
