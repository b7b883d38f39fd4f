"""coursekit.train: schedules, label smoothing, accumulation, clipping, AMP, checkpoints, resume."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from coursekit.train import (
    CheckpointError,
    CheckpointMismatch,
    History,
    TrainConfig,
    cosine_schedule,
    evaluate,
    label_smoothing_loss,
    load_checkpoint,
    load_or_train,
    noam_schedule,
    save_checkpoint,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- schedules
def test_noam_schedule_formula_and_peak() -> None:
    d, w = 512, 4000
    for step in (1, 10, 3999, 4000, 4001, 20_000):
        expected = d**-0.5 * min(step**-0.5, step * w**-1.5)
        assert noam_schedule(step, d_model=d, warmup=w) == pytest.approx(expected)
    rates = [noam_schedule(s, d_model=d, warmup=w) for s in range(1, 12_000)]
    assert max(range(len(rates)), key=rates.__getitem__) + 1 == w  # peak at the end of warm-up
    assert rates[w - 1] == pytest.approx(d**-0.5 * w**-0.5)
    with pytest.raises(ValueError):
        noam_schedule(1, d_model=0, warmup=10)


def test_cosine_schedule_shape() -> None:
    values = [cosine_schedule(s, total_steps=100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values[:10], values[1:10], strict=False))
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))
    assert cosine_schedule(100, total_steps=100, warmup=10, min_ratio=0.1) == pytest.approx(0.1)


def test_config_lr_at_noam_uses_lr_as_factor() -> None:
    cfg = TrainConfig(steps=10, lr=2.0, schedule="noam", d_model=64, warmup_steps=4)
    assert cfg.lr_at(0) == pytest.approx(2.0 * noam_schedule(1, d_model=64, warmup=4))
    with pytest.raises(ValueError, match="noam"):
        TrainConfig(steps=10, schedule="noam")


# ---------------------------------------------------------------------------- label smoothing
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 12),
    k=st.integers(2, 30),
    eps=st.floats(0.0, 0.9),
    n_ignored=st.integers(0, 5),
    seed=st.integers(0, 10_000),
)
def test_label_smoothing_equals_torch(
    n: int, k: int, eps: float, n_ignored: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, k, (n,), generator=g)
    target[: min(n_ignored, n - 1)] = -100
    ours = label_smoothing_loss(logits, target, eps=eps)
    ref = F.cross_entropy(logits, target, label_smoothing=eps, ignore_index=-100)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-6)


def test_label_smoothing_sequence_shape_and_target_distribution() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    target = torch.randint(0, 11, (3, 7))
    target[0, -2:] = 5
    ref = F.cross_entropy(
        logits.reshape(-1, 11), target.reshape(-1), label_smoothing=0.1, ignore_index=5
    )
    torch.testing.assert_close(label_smoothing_loss(logits, target, eps=0.1, ignore_index=5), ref)
    # explicit target distribution (1 - eps) one_hot + eps / K
    q = 0.9 * F.one_hot(target, 11).float() + 0.1 / 11
    explicit = -(q * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(label_smoothing_loss(logits, target, eps=0.1), explicit)
    # the minimum of the smoothed loss is at the smoothed distribution, not at a one-hot
    best = torch.log(q)
    assert label_smoothing_loss(best, target, eps=0.1) < label_smoothing_loss(
        best * 10, target, eps=0.1
    )


def test_label_smoothing_bad_input() -> None:
    with pytest.raises(ValueError, match="eps"):
        label_smoothing_loss(torch.randn(2, 3), torch.tensor([0, 1]), eps=1.0)
    with pytest.raises(ValueError, match="final class dimension"):
        label_smoothing_loss(torch.randn(2, 3), torch.tensor([0, 1, 2]), eps=0.1)
    with pytest.raises(TypeError, match="integer"):
        label_smoothing_loss(torch.randn(2, 3), torch.tensor([0.0, 1.0]), eps=0.1)


# ---------------------------------------------------------------------------- the loop
def _regression_problem(seed: int = 0, n: int = 64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def _mse(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


def test_accumulation_equals_one_big_batch() -> None:
    x, y = _regression_problem()
    torch.manual_seed(0)
    big = nn.Linear(5, 1)
    small = nn.Linear(5, 1)
    small.load_state_dict(big.state_dict())
    cfg_big = TrainConfig(steps=1, lr=0.1, grad_clip=None, eval_batches=0, progress=False)
    cfg_acc = TrainConfig(
        steps=1, lr=0.1, grad_clip=None, accumulation_steps=4, eval_batches=0, progress=False
    )
    train(
        big, lambda s: (x[:32], y[:32]), _mse, cfg_big, optimizer=torch.optim.SGD(big.parameters())
    )
    chunks = iter([(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)])
    h = train(
        small, lambda s: next(chunks), _mse, cfg_acc, optimizer=torch.optim.SGD(small.parameters())
    )
    for a, b in zip(big.parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert h.tokens_seen == 32 * 5


def test_gradient_clipping_bounds_the_update() -> None:
    x, y = _regression_problem()
    model = nn.Linear(5, 1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    cfg = TrainConfig(steps=1, lr=1.0, grad_clip=0.05, eval_batches=0, progress=False)
    h = train(
        model, lambda s: (x, y * 100), _mse, cfg, optimizer=torch.optim.SGD(model.parameters())
    )
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert h.grad_norm[0] > 1.0  # the recorded norm is the one before clipping
    assert float((after - before).norm()) == pytest.approx(0.05, rel=1e-4)


def test_training_reduces_loss_and_records_history() -> None:
    x, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    cfg = TrainConfig(
        steps=60, lr=0.05, eval_every=20, eval_batches=2, progress=False, schedule="cosine"
    )
    h = train(model, lambda s: (x, y), _mse, cfg)
    assert h.steps == list(range(1, 61)) and h.eval_steps == [20, 40, 60]
    assert h.train_loss[-1] < 0.1 * h.train_loss[0]
    assert h.final_val_loss == pytest.approx(evaluate(model, lambda s: (x, y), _mse, 1), rel=1e-5)
    assert len(h.lr) == 60 and h.lr[0] > h.lr[-1]


def test_nan_loss_raises_a_clear_error() -> None:
    model = nn.Linear(2, 1)
    cfg = TrainConfig(steps=3, progress=False, eval_batches=0)
    with pytest.raises(FloatingPointError, match="learning rate"):
        train(
            model, lambda s: None, lambda m, b: torch.tensor(float("nan"), requires_grad=True), cfg
        )


def test_bf16_autocast_loss_parity() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 16))
    x = torch.randn(32, 16)
    loss_fn = lambda m, b: F.mse_loss(m(b), b)  # noqa: E731
    with torch.no_grad():
        fp32 = float(loss_fn(model, x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.dtype == torch.bfloat16  # autocast really ran the matmuls in bf16
        bf16 = float(F.mse_loss(out.float(), x).detach())
    assert bf16 == pytest.approx(fp32, rel=2e-2)
    cfg = TrainConfig(steps=30, lr=1e-2, amp=True, progress=False, eval_batches=1)
    h = train(model, lambda s: x, loss_fn, cfg)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert h.train_loss[-1] < 0.7 * h.train_loss[0]


# ---------------------------------------------------------------------------- checkpoints
class _Tied(nn.Module):
    """A small model with dropout and a tied output projection (shared storage)."""

    def __init__(self, vocab: int = 11, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.mix = nn.Linear(d, d)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(d, vocab, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.tanh(self.mix(self.emb(ids)))))


def _lm_setup(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 11, (400,), generator=torch.Generator().manual_seed(123))

    def get_batch(split: str):
        starts = torch.randint(0, 390, (4,), generator=gen)
        window = torch.stack([data[s : s + 9] for s in starts.tolist()])
        return window[:, :-1], window[:, 1:]

    def loss_fn(model, batch):
        x, y = batch
        return label_smoothing_loss(model(x), y, eps=0.1)

    return gen, get_batch, loss_fn


def test_save_and_load_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    gen, get_batch, loss_fn = _lm_setup()
    model = _Tied()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    h = train(
        model,
        get_batch,
        loss_fn,
        TrainConfig(steps=5, progress=False, eval_batches=1),
        optimizer=opt,
    )
    path = save_checkpoint(tmp_path / "m.safetensors", model, opt, step=5, history=h, meta={"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary files left
    fresh = _Tied()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    ckpt = load_checkpoint(path, fresh, fresh_opt, expected_meta={"a": 1})
    assert ckpt.step == 5 and ckpt.history.train_loss == h.train_loss and ckpt.meta == {"a": 1}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert fresh.out.weight is fresh.emb.weight  # tying survives loading
    s1, s2 = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    for i in s1:
        for key in s1[i]:
            torch.testing.assert_close(torch.as_tensor(s1[i][key]), torch.as_tensor(s2[i][key]))


def test_checkpoint_is_plain_safetensors_and_never_unpickled(tmp_path: Path, monkeypatch) -> None:
    model = _Tied()
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert raw[8:9] == b"{" and header_len < len(raw)  # safetensors: length + JSON header

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle must never be used to read a checkpoint")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    load_checkpoint(path, _Tied())


def test_truncated_checkpoint_gives_clear_error(tmp_path: Path) -> None:
    model = _Tied()
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    raw = path.read_bytes()
    for cut in (5, len(raw) // 2, len(raw) - 3):
        path.write_bytes(raw[:cut])
        victim = _Tied()
        with pytest.raises(CheckpointError, match="truncated"):
            load_checkpoint(path, victim)
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors", model)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_wrong_model_or_settings_is_refused_without_touching_weights(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", _Tied(d=8), meta={"lr": 0.1})
    bigger = _Tied(d=16)
    snapshot = {k: v.clone() for k, v in bigger.state_dict().items()}
    with pytest.raises(CheckpointMismatch, match="different shapes"):
        load_checkpoint(path, bigger)
    for k, v in bigger.state_dict().items():
        assert torch.equal(v, snapshot[k])
    with pytest.raises(CheckpointMismatch, match="lr"):
        load_checkpoint(path, _Tied(d=8), expected_meta={"lr": 0.2})
    with pytest.raises(CheckpointMismatch, match="missing|not in the model"):
        load_checkpoint(path, nn.Linear(8, 8))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a coursekit checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors", _Tied())


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import safetensors.torch

    model = _Tied()
    path = save_checkpoint(tmp_path / "m.safetensors", model, step=3)
    good = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, step=4)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


class _Interrupt(Exception):
    pass


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    cfg = TrainConfig(
        steps=12,
        lr=1e-2,
        schedule="cosine",
        warmup_steps=3,
        eval_every=4,
        eval_batches=2,
        progress=False,
    )
    # reference: one uninterrupted run
    torch.manual_seed(0)
    gen, get_batch, loss_fn = _lm_setup()
    ref = _Tied()
    torch.manual_seed(1)  # the global RNG also drives dropout
    ref_hist = train(ref, get_batch, loss_fn, cfg)

    # the same run, killed after 6 updates (checkpoint every 4 -> resume from step 4)
    torch.manual_seed(0)
    gen, get_batch, loss_fn = _lm_setup()
    model = _Tied()
    torch.manual_seed(1)
    calls = {"n": 0}

    def flaky(split: str):
        if split == "train":
            calls["n"] += 1
            if calls["n"] > 6:
                raise _Interrupt
        return get_batch(split)

    path = tmp_path / "run.safetensors"
    with pytest.raises(_Interrupt):
        train(
            model, flaky, loss_fn, cfg, checkpoint_path=path, checkpoint_every=4, generators=[gen]
        )

    # a new process: fresh model, fresh generator, scrambled global RNG
    torch.manual_seed(999)
    gen2, get_batch2, loss_fn2 = _lm_setup(seed=42)
    resumed = _Tied()
    hist = train(
        resumed,
        get_batch2,
        loss_fn2,
        cfg,
        checkpoint_path=path,
        checkpoint_every=4,
        resume=True,
        generators=[gen2],
    )
    assert hist.resumed_at == 4
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert hist.train_loss == pytest.approx(ref_hist.train_loss, rel=1e-6)
    assert hist.val_loss == pytest.approx(ref_hist.val_loss, rel=1e-6)
    assert hist.steps == ref_hist.steps and hist.eval_steps == ref_hist.eval_steps


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    gen, get_batch, loss_fn = _lm_setup()
    path = tmp_path / "run.safetensors"
    train(
        _Tied(),
        get_batch,
        loss_fn,
        TrainConfig(steps=2, progress=False, eval_batches=0),
        checkpoint_path=path,
    )
    with pytest.raises(CheckpointMismatch, match="train_config"):
        train(
            _Tied(),
            get_batch,
            loss_fn,
            TrainConfig(steps=4, lr=0.5, progress=False),
            checkpoint_path=path,
            resume=True,
        )


def test_load_or_train(tmp_path: Path, capsys) -> None:
    path = tmp_path / "ckpt" / "model.safetensors"
    cfg = TrainConfig(steps=4, lr=1e-2, progress=False, eval_batches=1)
    torch.manual_seed(0)
    _, get_batch, loss_fn = _lm_setup()
    first = _Tied()
    h1 = load_or_train(path, first, get_batch, loss_fn, cfg, meta={"data": "toy"})
    assert not h1.loaded and path.exists() and len(h1.train_loss) == 4

    def no_batches(split: str):
        raise AssertionError("a matching finished checkpoint must be loaded, not retrained")

    second = _Tied()
    h2 = load_or_train(path, second, no_batches, loss_fn, cfg, meta={"data": "toy"})
    assert h2.loaded and h2.train_loss == h1.train_loss
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # other settings: reported, then retrained
    h3 = load_or_train(path, _Tied(), get_batch, loss_fn, cfg, meta={"data": "other"})
    assert not h3.loaded and "other settings" in capsys.readouterr().out

    # a truncated file is an error, never a silent mis-load
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_or_train(path, _Tied(), get_batch, loss_fn, cfg, meta={"data": "other"})
    h4 = load_or_train(path, _Tied(), get_batch, loss_fn, cfg, meta={"data": "other"}, retrain=True)
    assert not h4.loaded and math.isfinite(h4.final_val_loss)


def test_history_defaults() -> None:
    h = History()
    with pytest.raises(ValueError):
        _ = h.final_val_loss
    assert math.isnan(h.tokens_per_second)


def test_callback_stops_training_early() -> None:
    x, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    seen: list[int] = []

    def stop_when_good(step: int, m: nn.Module, history: History) -> bool:
        seen.append(step)
        return history.train_loss[-1] < 0.5

    cfg = TrainConfig(steps=500, lr=0.05, eval_every=10, eval_batches=0, progress=False)
    h = train(model, lambda s: (x, y), _mse, cfg, callback=stop_when_good)
    assert 0 < h.stopped_at < 500 and h.steps[-1] == h.stopped_at == seen[-1]
    assert seen == list(range(10, h.stopped_at + 1, 10))
    assert h.train_loss[-1] < 0.5 <= h.train_loss[-11]


# ---------------------------------------------------------------------------- config checks
@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("steps", 0, ">= 1"),
        ("steps", 2.5, ">= 1"),
        ("lr", 0.0, "> 0"),
        ("lr", -1e-3, "> 0"),
        ("lr", float("nan"), "finite"),
        ("lr", float("inf"), "finite"),
        ("weight_decay", -0.1, ">= 0"),
        ("warmup_steps", -1, ">= 0"),
        ("min_lr_ratio", -0.1, r"\[0, 1\]"),
        ("min_lr_ratio", 1.5, r"\[0, 1\]"),
        ("grad_clip", 0.0, "> 0"),
        ("grad_clip", -1.0, "> 0"),
        ("grad_clip", float("nan"), "> 0"),
        ("accumulation_steps", 0, ">= 1"),
        ("eval_every", -1, ">= 0"),
        ("eval_batches", -1, ">= 0"),
        ("log_every", 0, ">= 1"),
        ("schedule", "linear", "constant, cosine, noam"),
        ("d_model", 0, ">= 1"),
    ],
)
def test_config_rejects_out_of_range_values(field: str, value, valid: str) -> None:
    """Each field's message names the field and its valid range."""
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be .*{valid}"):
        TrainConfig(**{"steps": 10, field: value})


def test_grad_clip_zero_or_negative_no_longer_silently_breaks_training() -> None:
    # grad_clip=0.0 used to scale every gradient to zero (training froze) and -1.0 to flip them
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="grad_clip"):
            TrainConfig(steps=5, grad_clip=bad)
    assert TrainConfig(steps=5, grad_clip=None).grad_clip is None


def test_config_accepts_boundary_values_and_checks_the_cosine_warmup() -> None:
    TrainConfig(steps=1, lr=1e-9, weight_decay=0.0, min_lr_ratio=0.0, eval_batches=0, log_every=1)
    TrainConfig(steps=3, schedule="cosine", warmup_steps=2, min_lr_ratio=1.0)
    with pytest.raises(ValueError, match="warmup_steps must be < steps"):
        TrainConfig(steps=3, schedule="cosine", warmup_steps=3)


# ---------------------------------------------------------------------------- no per-step sync
_READS = ("item", "tolist", "__float__", "__bool__", "__int__", "cpu", "numpy")


def test_the_loop_reads_device_values_only_at_log_points(monkeypatch) -> None:
    """No host-device synchronisation per step: one transfer per log point, none in between."""
    reads: list[str] = []
    for name in _READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    x, y = _regression_problem()
    model = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    cfg = TrainConfig(steps=30, log_every=10, accumulation_steps=2, eval_batches=0, progress=False)
    h = train(model, lambda s: (x, y), _mse, cfg)
    assert len(h.train_loss) == len(h.grad_norm) == 30
    assert reads == ["tolist"] * 3  # steps 10, 20, 30


def test_log_every_changes_nothing_but_when_values_are_read() -> None:
    x, y = _regression_problem()
    results = []
    for log_every in (1, 7, 100):
        torch.manual_seed(0)
        model = nn.Linear(5, 1)
        cfg = TrainConfig(
            steps=25, lr=0.05, log_every=log_every, eval_every=10, eval_batches=1, progress=False
        )
        results.append((train(model, lambda s: (x, y), _mse, cfg), model.weight.detach().clone()))
    (h1, w1), *others = results
    for h, w in others:
        assert h.train_loss == h1.train_loss and h.grad_norm == h1.grad_norm
        assert h.steps == list(range(1, 26)) and h.lr == h1.lr and h.val_loss == h1.val_loss
        assert torch.equal(w, w1)


def test_nan_loss_is_reported_with_its_step_at_the_next_log_point() -> None:
    model = nn.Linear(2, 1)
    calls = {"n": 0}

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        calls["n"] += 1
        value = float("nan") if calls["n"] == 2 else 1.0
        return m.weight.sum() * 0 + value

    cfg = TrainConfig(steps=50, log_every=5, progress=False, eval_batches=0)
    with pytest.raises(FloatingPointError, match="at step 2:"):
        train(model, lambda s: None, loss_fn, cfg)
    assert calls["n"] == 5  # found at the first log point, not after 50 steps


def test_default_optimizer_decays_matrices_only() -> None:
    x, y = _regression_problem()
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    bias_before = model.bias.detach().clone()
    weight_before = model.weight.detach().clone()
    # a constant loss: zero gradients, so AdamW's only change is the decoupled weight decay
    zero_loss = lambda m, b: (m(b[0]) * 0).sum()  # noqa: E731
    cfg = TrainConfig(steps=1, lr=0.1, weight_decay=0.5, eval_batches=0, progress=False)
    train(model, lambda s: (x, y), zero_loss, cfg)
    torch.testing.assert_close(model.weight.detach(), weight_before * (1 - 0.1 * 0.5))
    assert torch.equal(model.bias.detach(), bias_before)


def test_evaluate_uses_eval_mode_and_restores_the_mode_on_error() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    seen: list[tuple[bool, bool]] = []

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        seen.append((m.training, torch.is_grad_enabled()))
        return m(batch).sum()

    model.train()
    evaluate(model, lambda s: torch.ones(1, 2), loss_fn, 2)
    assert seen == [(False, False)] * 2 and model.training

    def failing(m: nn.Module, batch) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        evaluate(model, lambda s: torch.ones(1, 2), failing, 1)
    assert model.training
    with pytest.raises(ValueError, match="n_batches"):
        evaluate(model, lambda s: torch.ones(1, 2), loss_fn, 0)
