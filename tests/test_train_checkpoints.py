"""coursekit.train.checkpoints: malformed headers, model configs, optimizer classes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch
from torch import nn

from coursekit.train import (
    CheckpointError,
    CheckpointMismatch,
    History,
    TrainConfig,
    load_checkpoint,
    load_or_train,
    make_optimizer,
    param_groups,
    read_checkpoint_meta,
    save_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class _Config:
    d_model: int = 8
    n_heads: int = 2
    dropout: float = 0.0


class _Attn(nn.Module):
    """Shapes depend on d_model only: n_heads 2 and 4 give identical state dicts."""

    def __init__(self, config: _Config) -> None:
        super().__init__()
        self.config = config
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.config.n_heads, -1).transpose(1, 3).unbind(2)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.norm(y.transpose(1, 2).reshape(b, t, d))


class _DictConfig:
    def __init__(self, **values: object) -> None:
        self.values = values

    def to_dict(self) -> dict[str, object]:
        return dict(self.values)


def _rewrite(path: Path, *, drop: tuple[str, ...] = (), tensors=None, **fields: str) -> None:
    """Rewrite a checkpoint's header (and optionally tensors) in place."""
    with safetensors.safe_open(str(path), framework="pt") as handle:
        header = dict(handle.metadata())
    data = safetensors.torch.load_file(str(path))
    data.update(tensors or {})
    for key in drop:
        header.pop(key, None)
        data.pop(key, None)
    header.update(fields)
    safetensors.torch.save_file(data, str(path), metadata=header)


def _saved(tmp_path: Path, **kwargs) -> tuple[Path, _Attn]:
    torch.manual_seed(0)
    model = _Attn(_Config())
    path = save_checkpoint(tmp_path / "m.safetensors", model, step=3, **kwargs)
    return path, model


# ---------------------------------------------------------------------------- malformed headers
@pytest.mark.parametrize(
    ("fields", "drop", "named"),
    [
        ({"meta": "{not json"}, (), "'meta' is not valid JSON"),
        ({"meta": "[1, 2]"}, (), "'meta' should be a JSON dict"),
        ({}, ("meta",), "'meta' is missing"),
        ({"step": "three"}, (), "'step' should be a non-negative integer"),
        ({"step": "-1"}, (), "'step' should be a non-negative integer"),
        ({}, ("step",), "'step' is missing"),
        ({"history": "null"}, (), "'history' should be a JSON dict"),
        ({"history": "{]"}, (), "'history' is not valid JSON"),
        ({"history": json.dumps({"train_loss": [1.0]})}, (), "'history.steps' is missing"),
        ({"n_generators": "two"}, (), "'n_generators'"),
        ({"model_config": "7"}, (), "'model_config' should be a JSON dict"),
    ],
)
def test_malformed_header_fields_raise_checkpoint_error_naming_the_field(
    tmp_path: Path, fields: dict[str, str], drop: tuple[str, ...], named: str
) -> None:
    path, _ = _saved(tmp_path)
    _rewrite(path, drop=drop, **fields)
    victim = _Attn(_Config())
    before = {k: v.clone() for k, v in victim.state_dict().items()}
    with pytest.raises(CheckpointError, match=named) as info:
        load_checkpoint(path, victim, expected_meta={})
    assert not isinstance(info.value, CheckpointMismatch)
    with pytest.raises(CheckpointError, match=named):
        read_checkpoint_meta(path)
    for k, v in victim.state_dict().items():
        assert torch.equal(v, before[k])


def _history_json(**changes: object) -> str:
    data = {
        "steps": [1, 2],
        "train_loss": [1.0, 0.5],
        "lr": [0.1, 0.1],
        "grad_norm": [1.0, 1.0],
        "eval_steps": [],
        "val_loss": [],
        "seconds": 1.0,
        "tokens_seen": 10,
    }
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("history", "named"),
    [
        (_history_json(steps="12"), "history.steps"),
        (_history_json(train_loss=["a", "b"]), "history.train_loss"),
        (_history_json(train_loss=[1.0]), "history.train_loss"),
        (_history_json(seconds="fast"), "history.seconds"),
        (_history_json(tokens_seen=-3), "history.tokens_seen"),
        (_history_json(loaded="yes"), "history.loaded"),
        (_history_json(val_loss=[1.0]), "history.val_loss"),
    ],
)
def test_malformed_history_raises_checkpoint_error(
    tmp_path: Path, history: str, named: str
) -> None:
    path, _ = _saved(tmp_path)
    _rewrite(path, history=history)
    with pytest.raises(CheckpointError, match=named):
        load_checkpoint(path, _Attn(_Config()))


def test_well_formed_history_without_later_fields_still_loads(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    _rewrite(path, history=_history_json())
    ckpt = load_checkpoint(path, _Attn(_Config()))
    assert ckpt.history == History(
        steps=[1, 2],
        train_loss=[1.0, 0.5],
        lr=[0.1, 0.1],
        grad_norm=[1.0, 1.0],
        seconds=1.0,
        tokens_seen=10,
    )


def test_bad_rng_state_raises_checkpoint_error_before_touching_the_model(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    path, _ = _saved(tmp_path, generators=[gen])
    _rewrite(path, drop=("rng/torch",))
    victim = _Attn(_Config())
    before = {k: v.clone() for k, v in victim.state_dict().items()}
    with pytest.raises(CheckpointError, match="'rng/torch'.*missing"):
        load_checkpoint(path, victim, restore_rng=True)
    for k, v in victim.state_dict().items():
        assert torch.equal(v, before[k])
    _rewrite(
        path, tensors={"rng/torch": torch.zeros(7), "rng/gen/0": torch.zeros(3, dtype=torch.uint8)}
    )
    with pytest.raises(CheckpointError, match="'rng/torch'.*uint8"):
        load_checkpoint(path, _Attn(_Config()), restore_rng=True)
    with pytest.raises(CheckpointError, match="'rng/gen/0'"):
        load_checkpoint(path, _Attn(_Config()), generators=[torch.Generator()])


def test_malformed_optimizer_fields(tmp_path: Path) -> None:
    model = _Attn(_Config())
    opt = torch.optim.AdamW(model.parameters())
    path = save_checkpoint(tmp_path / "m.safetensors", model, opt)
    _rewrite(path, optim_groups='{"params": 3}')
    with pytest.raises(CheckpointError, match="'optim_groups'"):
        load_checkpoint(path, _Attn(_Config()), torch.optim.AdamW(model.parameters()))
    _rewrite(path, optim_groups="[{}]")
    with pytest.raises(CheckpointError, match="'optim_groups'"):
        load_checkpoint(path, _Attn(_Config()))


def test_a_malformed_step_makes_load_or_train_raise_checkpoint_error(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    _rewrite(path, step="x")
    with pytest.raises(CheckpointError, match="'step'"):
        load_or_train(
            path,
            _Attn(_Config()),
            lambda s: torch.randn(2, 3, 8),
            lambda m, b: m(b).square().mean(),
            TrainConfig(steps=2, progress=False, eval_batches=0),
        )


# ---------------------------------------------------------------------------- model config
def test_model_config_is_stored_and_a_different_one_is_refused(tmp_path: Path) -> None:
    path, saved = _saved(tmp_path)
    header = read_checkpoint_meta(path)
    assert json.loads(header["model_config"]) == {"d_model": 8, "n_heads": 2, "dropout": 0.0}
    other = _Attn(_Config(n_heads=4))  # identical tensor shapes, different model
    assert {k: v.shape for k, v in other.state_dict().items()} == {
        k: v.shape for k, v in saved.state_dict().items()
    }
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointMismatch, match="n_heads: checkpoint has 2, model has 4"):
        load_checkpoint(path, other)
    for k, v in other.state_dict().items():
        assert torch.equal(v, before[k])
    ckpt = load_checkpoint(path, other, strict_config=False)
    assert ckpt.model_config == {"d_model": 8, "n_heads": 2, "dropout": 0.0}
    for a, b in zip(saved.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    load_checkpoint(path, _Attn(_Config()))  # the same config loads


def test_the_scratch_switch_is_not_a_config_difference(tmp_path: Path) -> None:
    model = nn.Linear(4, 4)
    model.config = _DictConfig(d=4, scratch=False)  # type: ignore[assignment]
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    twin = nn.Linear(4, 4)
    twin.config = _DictConfig(d=4, scratch=True)  # type: ignore[assignment]
    load_checkpoint(path, twin)  # the same weights, computed by the teaching kernels
    twin.config = _DictConfig(d=5, scratch=True)  # type: ignore[assignment]
    with pytest.raises(CheckpointMismatch, match="d: checkpoint has 4, model has 5"):
        load_checkpoint(path, twin)


def test_to_dict_configs_are_compared_too(tmp_path: Path) -> None:
    model = nn.Linear(4, 4)
    model.config = _DictConfig(kind="linear", layers=(1, 2))  # type: ignore[assignment]
    path = save_checkpoint(tmp_path / "m.safetensors", model)
    twin = nn.Linear(4, 4)
    twin.config = _DictConfig(kind="linear", layers=(1, 2))  # type: ignore[assignment]
    load_checkpoint(path, twin)  # tuples come back as lists and still compare equal
    twin.config = _DictConfig(kind="linear", layers=(1, 3))  # type: ignore[assignment]
    with pytest.raises(CheckpointMismatch, match="layers"):
        load_checkpoint(path, twin)


def test_load_or_train_retrains_when_the_model_config_differs(tmp_path: Path, capsys) -> None:
    path = tmp_path / "run.safetensors"
    cfg = TrainConfig(steps=2, progress=False, eval_batches=0)
    get_batch = lambda s: torch.randn(2, 3, 8)  # noqa: E731
    loss_fn = lambda m, b: m(b).square().mean()  # noqa: E731
    assert not load_or_train(path, _Attn(_Config()), get_batch, loss_fn, cfg).loaded
    assert load_or_train(path, _Attn(_Config()), get_batch, loss_fn, cfg).loaded
    h = load_or_train(path, _Attn(_Config(n_heads=4)), get_batch, loss_fn, cfg)
    assert not h.loaded and "n_heads" in capsys.readouterr().out


# ---------------------------------------------------------------------------- optimizer class
def _stepped(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    model(torch.randn(2, 3, 8)).square().mean().backward()
    opt.step()


def test_optimizer_state_of_another_class_is_refused(tmp_path: Path) -> None:
    model = _Attn(_Config())
    adam = torch.optim.AdamW(model.parameters(), lr=1e-3)
    _stepped(model, adam)
    path = save_checkpoint(tmp_path / "m.safetensors", model, adam)
    assert read_checkpoint_meta(path)["optim_class"] == "torch.optim.adamw.AdamW"
    fresh = _Attn(_Config())
    sgd = torch.optim.SGD(fresh.parameters(), lr=1e-3, momentum=0.9)  # same group layout
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.raises(CheckpointMismatch, match="AdamW.*SGD"):
        load_checkpoint(path, fresh, sgd)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, before[k])
    assert sgd.state_dict()["state"] == {}
    load_checkpoint(path, fresh, torch.optim.AdamW(fresh.parameters(), lr=1e-3))


def test_fused_state_resumes_on_a_foreach_optimizer(tmp_path: Path) -> None:
    model = _Attn(_Config())
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    _stepped(model, opt)
    path = save_checkpoint(tmp_path / "m.safetensors", model, opt)
    twin = _Attn(_Config())
    foreach = torch.optim.AdamW(
        param_groups(twin, weight_decay=0.1), lr=1e-3, foreach=True, fused=False
    )
    load_checkpoint(path, twin, foreach)
    assert all(g["foreach"] and not g["fused"] for g in foreach.param_groups)  # kept its own
    for a, b in zip(opt.state.values(), foreach.state.values(), strict=True):
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"])
