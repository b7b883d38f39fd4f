"""Checkpoints in safetensors: raw tensors plus a JSON header, written atomically, read without pickle.

A checkpoint holds the model's state dict, optionally the optimizer's state, the RNG states
(the global torch RNG, CUDA's, and any extra generators, e.g. a batch sampler's), the step,
the :class:`~coursekit.train.history.History` so far, the model's config and a free ``meta``
record of what the run was made with. :func:`load_checkpoint` checks the whole file before it
touches the model: a damaged file raises :class:`CheckpointError`, a readable file made for
another model, config, optimizer or settings raises :class:`CheckpointMismatch`, each naming
what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from coursekit.files import atomic_write_with
from coursekit.train.history import History

__all__ = [
    "CHECKPOINT_FORMAT",
    "CONFIG_FIELDS_NOT_COMPARED",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatch",
    "load_checkpoint",
    "model_config_dict",
    "read_checkpoint_meta",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "coursekit-checkpoint-v1"

# optimizer param-group keys that choose an implementation, not a result: the running
# optimizer's own values are kept when loading (a fused run may resume on a foreach one)
_IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")

#: model-config fields that choose how the same weights are computed, not which weights: the
#: models' ``scratch`` switch (teaching kernels vs PyTorch's fused ones) may differ on loading
CONFIG_FIELDS_NOT_COMPARED: tuple[str, ...] = ("scratch",)


class CheckpointError(RuntimeError):
    """A checkpoint file could not be read (missing, truncated, corrupt, not ours)."""


class CheckpointMismatch(CheckpointError):
    """A readable checkpoint that was made for another model or other settings."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns besides the restored weights."""

    step: int
    history: History
    meta: dict[str, Any]
    path: Path
    model_config: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------------
def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _normalised(value: Any) -> Any:
    """``value`` as it comes back from the header (tuples become lists, odd objects reprs)."""
    return json.loads(json.dumps(_to_jsonable(value)))


def model_config_dict(model: nn.Module) -> dict[str, Any] | None:
    """``model.config`` as a JSON-ready dict (via its ``to_dict()`` or as a dataclass), or None."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        data = asdict(config)
    else:
        return None
    return _normalised(data) if isinstance(data, dict) else None


def _differences(saved: dict[str, Any], expected: dict[str, Any], *, other: str) -> list[str]:
    keys = sorted(set(saved) | set(expected))
    return [
        f"{k}: checkpoint has {saved.get(k, '<missing>')!r}, {other} {expected.get(k, '<missing>')!r}"
        for k in keys
        if saved.get(k, "<missing>") != expected.get(k, "<missing>")
    ]


# --------------------------------------------------------------------------------------------
# the header: every field parsed and type-checked, errors name the field
# --------------------------------------------------------------------------------------------
@dataclass
class _Header:
    step: int
    meta: dict[str, Any]
    history: History
    n_generators: int
    model_class: str
    model_config: dict[str, Any] | None
    optim_class: str | None
    optim_groups: list[dict[str, Any]] | None
    optim_scalars: dict[str, dict[str, Any]]
    grad_scaler: dict[str, Any] | None


def _bad(path: Path, field_name: str, problem: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: header field '{field_name}' {problem}; the file is damaged or was not written "
        "by coursekit.save_checkpoint. Delete it and train again."
    )


def _json_field(
    header: dict[str, str], key: str, path: Path, kind: type, *, required: bool = True
) -> Any:
    if key not in header:
        if required:
            raise _bad(path, key, "is missing")
        return None
    try:
        value = json.loads(header[key])
    except json.JSONDecodeError as err:
        raise _bad(path, key, f"is not valid JSON ({err})") from None
    if not isinstance(value, kind):
        raise _bad(path, key, f"should be a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def _int_field(header: dict[str, str], key: str, path: Path) -> int:
    if key not in header:
        raise _bad(path, key, "is missing")
    raw = header[key]
    if not raw.isdigit():
        raise _bad(path, key, f"should be a non-negative integer, got {raw!r}")
    return int(raw)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _history_from_obj(data: dict[str, Any], path: Path) -> History:
    """A :class:`History` from its JSON form; wrong or missing fields raise CheckpointError."""
    values: dict[str, Any] = {}
    for f in fields(History):
        name = f"history.{f.name}"
        if f.name not in data:
            if f.name in ("resumed_at", "loaded", "stopped_at"):
                continue  # added after the first release: the default applies
            raise _bad(path, name, "is missing")
        value = data[f.name]
        if f.name in ("steps", "eval_steps"):
            ok = isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            )
            expected = "a list of integers"
        elif f.name in ("train_loss", "lr", "grad_norm", "val_loss"):
            ok = isinstance(value, list) and all(_is_number(v) for v in value)
            expected = "a list of numbers"
        elif f.name == "seconds":
            ok, expected = _is_number(value), "a number"
        elif f.name == "loaded":
            ok, expected = isinstance(value, bool), "true or false"
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            expected = "a non-negative integer"
        if not ok:
            raise _bad(path, name, f"should be {expected}, got {json.dumps(value)[:80]}")
        values[f.name] = value
    for name in ("train_loss", "lr", "grad_norm"):
        if len(values[name]) != len(values["steps"]):
            raise _bad(
                path,
                f"history.{name}",
                f"has {len(values[name])} entries but history.steps has {len(values['steps'])}",
            )
    if len(values["val_loss"]) != len(values["eval_steps"]):
        raise _bad(path, "history.val_loss", "has not one entry per history.eval_steps")
    return History(**values)


def _parse_header(header: dict[str, str], path: Path) -> _Header:
    step = _int_field(header, "step", path)
    meta = _json_field(header, "meta", path, dict)
    history = _history_from_obj(_json_field(header, "history", path, dict), path)
    n_generators = _int_field(header, "n_generators", path)
    model_config = _json_field(header, "model_config", path, dict, required=False)
    optim_groups = _json_field(header, "optim_groups", path, list, required=False)
    optim_scalars = _json_field(header, "optim_scalars", path, dict, required=False) or {}
    grad_scaler = _json_field(header, "grad_scaler", path, dict, required=False)
    if optim_groups is not None:
        for i, group in enumerate(optim_groups):
            if not isinstance(group, dict) or not isinstance(group.get("params"), list):
                raise _bad(path, "optim_groups", f"entry {i} is not a group with a 'params' list")
            if not all(isinstance(p, int) for p in group["params"]):
                raise _bad(path, "optim_groups", f"entry {i} has non-integer parameter indices")
    for index, values in optim_scalars.items():
        if not index.isdigit() or not isinstance(values, dict):
            raise _bad(path, "optim_scalars", f"entry {index!r} is not index -> {{name: value}}")
    optim_class = header.get("optim_class")
    return _Header(
        step=step,
        meta=meta,
        history=history,
        n_generators=n_generators,
        model_class=header.get("model_class", "<unknown>"),
        model_config=model_config,
        optim_class=optim_class,
        optim_groups=optim_groups,
        optim_scalars=optim_scalars,
        grad_scaler=grad_scaler,
    )


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------
def _class_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _cpu_copy(value: torch.Tensor) -> torch.Tensor:
    # clone: tied weights share storage, which safetensors refuses to save twice
    return value.detach().to("cpu").contiguous().clone()


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int = 0,
    history: History | None = None,
    meta: dict[str, Any] | None = None,
    generators: Sequence[torch.Generator] = (),
    grad_scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write model (and optimizer, RNG states, history) to a safetensors file, atomically.

    The file is written under a temporary name beside ``path`` and then renamed over it
    (:func:`coursekit.files.atomic_write_with`), so a crash mid-write never leaves a
    half-written checkpoint under the real name. ``meta`` (JSON-serialisable) records what the
    checkpoint was made with; :func:`load_checkpoint` can insist that it matches. The model's
    config (``model.config``, a dataclass or an object with ``to_dict()``) is stored too, and
    the optimizer's class. ``generators`` are extra RNGs (e.g. the batch sampler's) whose
    states are saved so a resumed run draws the same batches; ``grad_scaler`` an fp16 loss
    scaler whose scale is saved.
    """
    path = Path(path)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}.")
    tensors: dict[str, torch.Tensor] = {
        f"model/{name}": _cpu_copy(value) for name, value in model.state_dict().items()
    }
    header: dict[str, str] = {
        "format": CHECKPOINT_FORMAT,
        "step": str(int(step)),
        "model_class": type(model).__name__,
        "meta": json.dumps(_to_jsonable(meta or {}), sort_keys=True),
        "history": json.dumps(_to_jsonable(asdict(history or History()))),
    }
    config = model_config_dict(model)
    if config is not None:
        header["model_config"] = json.dumps(config, sort_keys=True)
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, per_param in state["state"].items():
            for key, value in per_param.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim/{index}/{key}"] = _cpu_copy(value)
                else:
                    scalars.setdefault(str(index), {})[key] = _to_jsonable(value)
        header["optim_class"] = _class_name(optimizer)
        header["optim_groups"] = json.dumps(_to_jsonable(state["param_groups"]))
        header["optim_scalars"] = json.dumps(scalars)
    if grad_scaler is not None and grad_scaler.is_enabled():
        header["grad_scaler"] = json.dumps(_to_jsonable(grad_scaler.state_dict()))
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    for i, g in enumerate(generators):
        tensors[f"rng/gen/{i}"] = g.get_state()
    header["n_generators"] = str(len(generators))

    def write(tmp: Path) -> None:
        safetensors.torch.save_file(tensors, str(tmp), metadata=header)

    atomic_write_with(path, write)
    return path


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def _read_header(path: Path) -> tuple[dict[str, str], _Header]:
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}: train first (or check the path).")
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for bad files
        raise CheckpointError(
            f"{path} is not a readable safetensors checkpoint ({err}); it may be truncated by an "
            "interrupted copy. Delete it and train again."
        ) from err
    if header.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is a safetensors file but not a coursekit checkpoint (format "
            f"{header.get('format')!r}); load it with safetensors directly."
        )
    return header, _parse_header(header, path)


def read_checkpoint_meta(path: str | Path) -> dict[str, str]:
    """The raw header of a checkpoint (cheap: reads no tensors). Raises :class:`CheckpointError`.

    Every field is checked (``step`` an integer, ``meta``/``history`` well-formed JSON of the
    right types, ...), so a caller may rely on them.
    """
    header, _ = _read_header(Path(path))
    return header


def _check_rng_tensor(
    tensors: dict[str, torch.Tensor], key: str, like: torch.Tensor, path: Path
) -> None:
    value = tensors.get(key)
    if value is None:
        raise _bad(path, key, "(an RNG state tensor) is missing")
    if value.dtype != torch.uint8 or value.shape != like.shape:
        raise _bad(
            path,
            key,
            f"(an RNG state) should be uint8 {tuple(like.shape)}, got {value.dtype} "
            f"{tuple(value.shape)}",
        )


def _optimizer_state(
    parsed: _Header,
    tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    path: Path,
) -> dict[str, Any]:
    """The optimizer state dict to load, after checking it fits ``optimizer``."""
    if parsed.optim_groups is None:
        raise CheckpointMismatch(f"{path} has no optimizer state; load it without an optimizer.")
    if parsed.optim_class is not None and parsed.optim_class != _class_name(optimizer):
        raise CheckpointMismatch(
            f"{path} holds the state of a {parsed.optim_class} optimizer, not of the given "
            f"{_class_name(optimizer)}: build the same optimizer, or load without one."
        )
    groups = [dict(g) for g in parsed.optim_groups]
    current = optimizer.state_dict()["param_groups"]
    if len(groups) != len(current) or any(
        len(g["params"]) != len(c["params"]) for g, c in zip(groups, current, strict=True)
    ):
        raise CheckpointMismatch(
            f"{path}: the optimizer's parameter groups differ from the saved ones (saved sizes "
            f"{[len(g['params']) for g in groups]}, now {[len(c['params']) for c in current]})."
        )
    for g, c in zip(groups, current, strict=True):
        for key, value in c.items():
            if key in _IMPLEMENTATION_KEYS:
                g[key] = value
            elif isinstance(value, tuple) and isinstance(g.get(key), list):
                g[key] = tuple(g[key])
    # parameter tensors in state-dict index order, to check the state's shapes against
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            if not index.isdigit() or int(index) >= len(params):
                raise _bad(path, key, "names no parameter of the optimizer")
            param = params[int(index)]
            if value.dim() > 0 and value.shape != param.shape:
                raise CheckpointMismatch(
                    f"{path}: optimizer state {key} has shape {tuple(value.shape)} but its "
                    f"parameter has shape {tuple(param.shape)}."
                )
            state.setdefault(int(index), {})[name] = value
    for index, values in parsed.optim_scalars.items():
        if int(index) >= len(params):
            raise _bad(path, "optim_scalars", f"entry {index} names no parameter")
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": groups}


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    expected_meta: dict[str, Any] | None = None,
    generators: Sequence[torch.Generator] = (),
    restore_rng: bool = False,
    strict_config: bool = True,
    grad_scaler: torch.amp.GradScaler | None = None,
) -> Checkpoint:
    """Restore ``model`` (and ``optimizer``, RNG states) from :func:`save_checkpoint`'s file.

    Nothing is copied into the model unless the whole file checks out: every header field
    well-formed, every parameter and buffer present with the same shape, no extra ones, the
    saved model config equal to ``model.config`` (unless ``strict_config=False``; two configs
    can differ with identical shapes, e.g. the number of heads), the optimizer of the saved
    class, and ``expected_meta`` (if given) equal to the saved ``meta``. Otherwise
    :class:`CheckpointMismatch` says what differs; an unreadable or malformed file raises
    :class:`CheckpointError`. Files are read with safetensors, which never runs pickle.
    """
    path = Path(path)
    header, parsed = _read_header(path)
    if expected_meta is not None:
        diffs = _differences(parsed.meta, _normalised(expected_meta), other="expected")
        if diffs:
            raise CheckpointMismatch(
                f"{path} was made with other settings: "
                + "; ".join(diffs)
                + ". Delete it (or use another path) to train with the new settings."
            )
    config = model_config_dict(model)
    if strict_config and parsed.model_config is not None and config is not None:
        skip = CONFIG_FIELDS_NOT_COMPARED
        diffs = _differences(
            {k: v for k, v in parsed.model_config.items() if k not in skip},
            {k: v for k, v in config.items() if k not in skip},
            other="model has",
        )
        if diffs:
            raise CheckpointMismatch(
                f"{path} was saved from a {parsed.model_class} with another config: "
                + "; ".join(diffs)
                + ". Build the model with the saved config (or pass strict_config=False)."
            )
    try:
        tensors = safetensors.torch.load_file(str(path))
    except Exception as err:
        raise CheckpointError(
            f"{path} could not be read ({err}); it may be truncated or corrupt. Delete it and "
            "train again."
        ) from err
    model_state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    own = model.state_dict()
    missing = sorted(set(own) - set(model_state))
    extra = sorted(set(model_state) - set(own))
    wrong = [
        f"{k} {tuple(model_state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(model_state))
        if model_state[k].shape != own[k].shape
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing in the file: {', '.join(missing[:5])}")
        if extra:
            parts.append(f"not in the model: {', '.join(extra[:5])}")
        if wrong:
            parts.append(f"different shapes: {'; '.join(wrong[:5])}")
        raise CheckpointMismatch(
            f"{path} (saved from {parsed.model_class}) does not fit this "
            f"{type(model).__name__}: "
            + " | ".join(parts)
            + ". Build the model with the configuration it was saved with, or retrain."
        )
    if generators and len(generators) != parsed.n_generators:
        raise CheckpointMismatch(
            f"{path} holds {parsed.n_generators} generator states but {len(generators)} "
            "generators were given."
        )
    for i, g in enumerate(generators):
        _check_rng_tensor(tensors, f"rng/gen/{i}", g.get_state(), path)
    cuda_keys = [k for k in tensors if k.startswith("rng/cuda/")]
    if not all(k[len("rng/cuda/") :].isdigit() for k in cuda_keys):
        raise _bad(path, "rng/cuda", "has a tensor that is not rng/cuda/<device index>")
    cuda_keys.sort(key=lambda k: int(k[len("rng/cuda/") :]))
    restore_cuda = restore_rng and bool(cuda_keys) and torch.cuda.is_available()
    if restore_rng:
        _check_rng_tensor(tensors, "rng/torch", torch.get_rng_state(), path)
        if restore_cuda:
            for key in cuda_keys:
                _check_rng_tensor(tensors, key, torch.cuda.get_rng_state(), path)
    optim_state = None
    if optimizer is not None:
        optim_state = _optimizer_state(parsed, tensors, optimizer, path)

    model.load_state_dict(model_state, strict=True)
    if optimizer is not None and optim_state is not None:
        optimizer.load_state_dict(optim_state)
    if grad_scaler is not None and grad_scaler.is_enabled() and parsed.grad_scaler:
        grad_scaler.load_state_dict(parsed.grad_scaler)
    if restore_rng:
        torch.set_rng_state(tensors["rng/torch"])
        if restore_cuda:
            states = [tensors[k] for k in cuda_keys][: torch.cuda.device_count()]
            torch.cuda.set_rng_state_all(states)
    for i, g in enumerate(generators):
        g.set_state(tensors[f"rng/gen/{i}"])
    return Checkpoint(
        step=parsed.step,
        history=parsed.history,
        meta=parsed.meta,
        path=path,
        model_config=parsed.model_config,
    )
