"""One training loop for every notebook, with its schedules, losses and checkpoints.

The loop is deliberately small: a batch function, a loss function and a config.

>>> history = train(model, get_batch, loss_fn, TrainConfig(steps=500, lr=3e-3, eval_every=100))

``get_batch(split)`` returns a batch (any structure) already on the model's device for
``split`` in ``{"train", "val"}``; ``loss_fn(model, batch)`` returns a scalar loss tensor.

Also here:

* schedules: :func:`noam_schedule` (warm-up then inverse square root) and :func:`cosine_schedule`;
* :func:`label_smoothing_loss` (equal to ``F.cross_entropy(..., label_smoothing=eps)``);
* checkpoints in safetensors (:func:`save_checkpoint`, :func:`load_checkpoint`), written
  atomically and read without pickle; ``train(..., checkpoint_path=..., resume=True)``
  continues an interrupted run exactly as if it had never stopped;
* :func:`load_or_train`: load a finished checkpoint made with the same settings, else train.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

Batch = Any
GetBatch = Callable[[str], Batch]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]
ScheduleName = Literal["constant", "cosine", "noam"]


def noam_schedule(step: int, *, d_model: int, warmup: int) -> float:
    """The Transformer paper's rate: d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).

    ``step`` counts from 1; step 0 is treated as step 1 so the rate is never zero or infinite.
    """
    if d_model <= 0 or warmup <= 0:
        raise ValueError(f"d_model and warmup must be positive, got {d_model=} and {warmup=}.")
    step = max(int(step), 1)
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def cosine_schedule(
    step: int, *, total_steps: int, warmup: int = 0, min_ratio: float = 0.1
) -> float:
    """Multiplier in [min_ratio, 1]: linear warm-up over ``warmup`` steps, then cosine decay."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}.")
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(max(step - warmup, 0) / max(total_steps - warmup, 1), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainConfig:
    """What to train for and how. ``steps`` counts optimizer updates."""

    steps: int
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: ScheduleName = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    accumulation_steps: int = 1
    eval_every: int = 0  # 0: evaluate only once, at the end
    eval_batches: int = 10
    amp: bool = False  # bf16 autocast where the device supports it
    progress: bool = True
    desc: str = "train"
    d_model: int | None = None  # needed by the "noam" schedule

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"TrainConfig.steps must be positive, got {self.steps}.")
        if self.accumulation_steps < 1:
            raise ValueError("TrainConfig.accumulation_steps must be at least 1.")
        if self.schedule not in ("constant", "cosine", "noam"):
            raise ValueError(f"Unknown schedule {self.schedule!r}: use constant, cosine or noam.")
        if self.schedule == "noam" and (self.d_model is None or self.warmup_steps <= 0):
            raise ValueError("The noam schedule needs d_model and warmup_steps > 0.")

    def lr_at(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based)."""
        if self.schedule == "noam":
            assert self.d_model is not None
            return self.lr * noam_schedule(step + 1, d_model=self.d_model, warmup=self.warmup_steps)
        if self.schedule == "cosine":
            return self.lr * cosine_schedule(
                step, total_steps=self.steps, warmup=self.warmup_steps, min_ratio=self.min_lr_ratio
            )
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return self.lr


@dataclass
class History:
    """What happened during training: per-step train loss and periodic validation loss."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    tokens_seen: int = 0
    resumed_at: int = 0  # the step a resumed run started from (0: from scratch)
    loaded: bool = False  # True when load_or_train found a finished run and trained nothing
    stopped_at: int = 0  # the step at which a callback stopped training early (0: it did not)

    @property
    def final_val_loss(self) -> float:
        if not self.val_loss:
            raise ValueError("No validation loss was recorded (was eval_batches 0?).")
        return self.val_loss[-1]

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_seen / self.seconds if self.seconds > 0 else float("nan")


def _count_tokens(batch: Batch) -> int:
    """Tokens in a batch: the element count of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].numel()
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return value.numel()
    return 0


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def autocast_context(device: torch.device, enabled: bool) -> Any:
    """bf16 autocast on CUDA/CPU when ``enabled``; a no-op context otherwise."""
    if not enabled or device.type not in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------
def label_smoothing_loss(
    logits: torch.Tensor, target: torch.Tensor, *, eps: float, ignore_index: int = -100
) -> torch.Tensor:
    r"""Cross-entropy against the smoothed target ``(1 - eps) * one_hot + eps / K``.

    Expanding the cross-entropy of that mixture gives two terms per position:

    .. math:: \ell = (1-\epsilon)\,(-\log p_y) + \epsilon\,\tfrac{1}{K}\sum_k (-\log p_k)

    logits: ``(..., K)`` (classes last), target: ``(...)`` integer ids. Positions whose target
    is ``ignore_index`` are skipped; the result is the mean over the others (0 if none), equal
    to ``F.cross_entropy(logits.reshape(-1, K), target.reshape(-1), label_smoothing=eps)``.
    """
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"label smoothing eps must be in [0, 1), got {eps}.")
    if logits.shape[:-1] != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} should be target's shape {tuple(target.shape)} plus a "
            "final class dimension (..., K)."
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class ids, got dtype {target.dtype}.")
    log_p = torch.log_softmax(logits.float(), dim=-1)
    keep = target != ignore_index
    safe_target = torch.where(keep, target, torch.zeros_like(target))
    nll = -log_p.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
    uniform = -log_p.mean(dim=-1)
    per_position = (1.0 - eps) * nll + eps * uniform
    return (per_position * keep).sum() / keep.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------
# checkpoints (safetensors: tensors + a JSON header, no pickle)
# --------------------------------------------------------------------------------------------
CHECKPOINT_FORMAT = "coursekit-checkpoint-v1"


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


def _history_to_json(history: History) -> str:
    return json.dumps(_to_jsonable(asdict(history)))


def _history_from_json(text: str) -> History:
    data = json.loads(text)
    known = {f.name for f in fields(History)}
    return History(**{k: v for k, v in data.items() if k in known})


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    step: int = 0,
    history: History | None = None,
    meta: dict[str, Any] | None = None,
    generators: Sequence[torch.Generator] = (),
) -> Path:
    """Write model (and optimizer, RNG states, history) to a safetensors file, atomically.

    The file is first written next to ``path`` under a temporary name and then renamed over
    it, so a crash mid-write never leaves a half-written checkpoint under the real name.
    ``meta`` (JSON-serialisable) records what the checkpoint was made with; :func:`load_checkpoint`
    can insist that it matches. ``generators`` are extra RNGs (e.g. the batch sampler's) whose
    states are saved so a resumed run draws the same batches.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        # clone: tied weights share storage, which safetensors refuses to save twice
        tensors[f"model/{name}"] = value.detach().to("cpu").contiguous().clone()
    header: dict[str, str] = {
        "format": CHECKPOINT_FORMAT,
        "step": str(int(step)),
        "model_class": type(model).__name__,
        "meta": json.dumps(_to_jsonable(meta or {}), sort_keys=True),
        "history": _history_to_json(history or History()),
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, per_param in state["state"].items():
            for key, value in per_param.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim/{index}/{key}"] = value.detach().to("cpu").contiguous().clone()
                else:
                    scalars.setdefault(str(index), {})[key] = _to_jsonable(value)
        header["optim_groups"] = json.dumps(_to_jsonable(state["param_groups"]))
        header["optim_scalars"] = json.dumps(scalars)
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    for i, g in enumerate(generators):
        tensors[f"rng/gen/{i}"] = g.get_state()
    header["n_generators"] = str(len(generators))

    from safetensors.torch import save_file

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata=header)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint_meta(path: str | Path) -> dict[str, str]:
    """The raw header of a checkpoint (cheap: reads no tensors). Raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}: train first (or check the path).")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
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
    return header


def _meta_differences(saved: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(expected))
    return [
        f"{k}: checkpoint has {saved.get(k, '<missing>')!r}, expected {expected.get(k, '<missing>')!r}"
        for k in keys
        if saved.get(k, "<missing>") != expected.get(k, "<missing>")
    ]


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    expected_meta: dict[str, Any] | None = None,
    generators: Sequence[torch.Generator] = (),
    restore_rng: bool = False,
) -> Checkpoint:
    """Restore ``model`` (and ``optimizer``, RNG states) from :func:`save_checkpoint`'s file.

    Nothing is copied into the model unless the whole file checks out: every parameter and
    buffer present with the same shape, no extra ones, and ``expected_meta`` (if given) equal
    to the saved ``meta``. Otherwise :class:`CheckpointMismatch` says what differs;
    an unreadable file raises :class:`CheckpointError`. Files are read with safetensors,
    which stores raw tensors and never runs pickle.
    """
    path = Path(path)
    header = read_checkpoint_meta(path)
    meta = json.loads(header.get("meta", "{}"))
    if expected_meta is not None:
        diffs = _meta_differences(meta, json.loads(json.dumps(_to_jsonable(expected_meta))))
        if diffs:
            raise CheckpointMismatch(
                f"{path} was made with other settings: "
                + "; ".join(diffs)
                + ". Delete it (or use another path) to train with the new settings."
            )
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
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
            f"{path} (saved from {header.get('model_class')}) does not fit this "
            f"{type(model).__name__}: "
            + " | ".join(parts)
            + ". Build the model with the configuration it was saved with, or retrain."
        )
    n_gen = int(header.get("n_generators", "0"))
    if generators and len(generators) != n_gen:
        raise CheckpointMismatch(
            f"{path} holds {n_gen} generator states but {len(generators)} generators were given."
        )
    optim_state = None
    if optimizer is not None:
        if "optim_groups" not in header:
            raise CheckpointMismatch(
                f"{path} has no optimizer state; load it without an optimizer."
            )
        groups = json.loads(header["optim_groups"])
        current = optimizer.state_dict()["param_groups"]
        if len(groups) != len(current) or any(
            len(g["params"]) != len(c["params"]) for g, c in zip(groups, current, strict=True)
        ):
            raise CheckpointMismatch(
                f"{path}: the optimizer's parameter groups differ from the saved ones."
            )
        for g, c in zip(groups, current, strict=True):
            for key, value in c.items():
                if isinstance(value, tuple) and isinstance(g.get(key), list):
                    g[key] = tuple(g[key])
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = value
        for index, values in json.loads(header.get("optim_scalars", "{}")).items():
            state.setdefault(int(index), {}).update(values)
        optim_state = {"state": state, "param_groups": groups}

    model.load_state_dict(model_state, strict=True)
    if optim_state is not None:
        assert optimizer is not None
        optimizer.load_state_dict(optim_state)
    if restore_rng:
        torch.set_rng_state(tensors["rng/torch"])
        cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("rng/cuda/")]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
    for i, g in enumerate(generators):
        g.set_state(tensors[f"rng/gen/{i}"])
    return Checkpoint(
        step=int(header.get("step", "0")),
        history=_history_from_json(header.get("history", "{}")),
        meta=meta,
        path=path,
    )


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: nn.Module, get_batch: GetBatch, loss_fn: LossFn, n_batches: int, *, amp: bool = False
) -> float:
    """Mean loss over ``n_batches`` validation batches (model put back in its previous mode)."""
    if n_batches <= 0:
        raise ValueError("evaluate needs n_batches >= 1.")
    was_training = model.training
    model.eval()
    device = _model_device(model)
    total = 0.0
    for _ in range(n_batches):
        with autocast_context(device, amp):
            total += float(loss_fn(model, get_batch("val")))
    model.train(was_training)
    return total / n_batches


def train(
    model: nn.Module,
    get_batch: GetBatch,
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    generators: Sequence[torch.Generator] = (),
    meta: dict[str, Any] | None = None,
    callback: Callable[[int, nn.Module, History], bool | None] | None = None,
) -> History:
    """Train ``model`` for ``config.steps`` optimizer updates and return its :class:`History`.

    Each update accumulates gradients over ``config.accumulation_steps`` batches (the loss is
    divided accordingly, so the update equals one big batch's), clips the global gradient norm,
    and sets the learning rate from the schedule. With ``config.amp`` the forward pass runs
    under bf16 autocast (CUDA and CPU; parameters and gradients stay fp32). Validation runs
    every ``eval_every`` updates and at the end.

    Checkpoints: with ``checkpoint_path`` the state (model, optimizer, step, history, the global
    torch RNG and the given ``generators``, e.g. the one your ``get_batch`` draws from) is saved
    every ``checkpoint_every`` updates and at the end. ``resume=True`` continues from that file
    if it exists, giving the same parameters as a run that was never interrupted. ``meta`` is
    stored in the file and must match on resume.

    ``callback(step, model, history)`` runs after every evaluation (every ``eval_every``
    updates; ``eval_batches`` may be 0 to skip the validation loss). Returning True stops
    training early (``history.stopped_at`` records the step); use it to measure, say, the
    number of updates until a task is solved.
    """
    from tqdm.auto import tqdm

    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}.")
    if (checkpoint_every or resume) and checkpoint_path is None:
        raise ValueError("checkpoint_every / resume need a checkpoint_path.")
    device = _model_device(model)
    if optimizer is None:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
    run_meta = {**_config_meta(config), **(meta or {})}
    history = History()
    start_step = 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(
            checkpoint_path,
            model,
            optimizer,
            expected_meta=run_meta,
            generators=generators,
            restore_rng=True,
        )
        history, start_step = ckpt.history, ckpt.step
        history.resumed_at = start_step
    model.train()
    start = time.perf_counter() - history.seconds
    bar = tqdm(
        range(start_step, config.steps),
        desc=config.desc,
        disable=not config.progress,
        leave=False,
        initial=start_step,
        total=config.steps,
    )
    last_tokens, last_time = history.tokens_seen, time.perf_counter()
    for step in bar:
        lr = config.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for _ in range(config.accumulation_steps):
            batch = get_batch("train")
            with autocast_context(device, config.amp):
                loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"Loss became {float(loss.detach())} at step {step}: lower the learning rate, "
                    "enable gradient clipping, or use warm-up."
                )
            (loss / config.accumulation_steps).backward()
            step_loss += float(loss.detach()) / config.accumulation_steps
            history.tokens_seen += _count_tokens(batch)
        params = [p for p in model.parameters() if p.grad is not None]
        if config.grad_clip is not None and params:
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        elif params:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        else:
            norm = torch.tensor(0.0)
        optimizer.step()
        history.steps.append(step + 1)
        history.train_loss.append(step_loss)
        history.lr.append(lr)
        history.grad_norm.append(float(norm))
        last = step + 1 == config.steps
        postfix: dict[str, str] = {"loss": f"{step_loss:.3f}"}
        eval_now = last or (config.eval_every > 0 and (step + 1) % config.eval_every == 0)
        if config.eval_batches > 0 and eval_now:
            history.eval_steps.append(step + 1)
            history.val_loss.append(
                evaluate(model, get_batch, loss_fn, config.eval_batches, amp=config.amp)
            )
            postfix["val"] = f"{history.val_loss[-1]:.3f}"
        if callback is not None and eval_now and callback(step + 1, model, history):
            history.stopped_at = step + 1
            last = True
        if config.progress and (step % 10 == 0 or last or "val" in postfix):
            now = time.perf_counter()
            rate = (history.tokens_seen - last_tokens) / max(now - last_time, 1e-9)
            last_tokens, last_time = history.tokens_seen, now
            postfix["tok/s"] = f"{rate:,.0f}"
            bar.set_postfix(postfix)
        if checkpoint_path is not None and (
            last or (checkpoint_every > 0 and (step + 1) % checkpoint_every == 0)
        ):
            history.seconds = time.perf_counter() - start
            save_checkpoint(
                checkpoint_path,
                model,
                optimizer,
                step=step + 1,
                history=history,
                meta=run_meta,
                generators=generators,
            )
        if history.stopped_at:
            break
    bar.close()
    history.seconds = time.perf_counter() - start
    return history


def _config_meta(config: TrainConfig) -> dict[str, Any]:
    """The parts of a TrainConfig that change the result (not the progress bar's look)."""
    data = asdict(config)
    data.pop("progress", None)
    data.pop("desc", None)
    return {"train_config": data}


def load_or_train(
    path: str | Path,
    model: nn.Module,
    get_batch: GetBatch,
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    meta: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generators: Sequence[torch.Generator] = (),
    checkpoint_every: int = 0,
    retrain: bool = False,
) -> History:
    """Load ``path`` if it holds a finished run with the same settings, else train (and save).

    "Same settings" means: the same model class and parameter shapes, the same ``TrainConfig``
    (progress-bar options aside) and the same ``meta`` (put there what else defines the run:
    data arguments, model config, seed). A matching but unfinished checkpoint is resumed. A
    checkpoint made with other settings is reported and replaced by a fresh run; an unreadable
    one raises :class:`CheckpointError` (delete it or pass ``retrain=True``). The returned
    history has ``loaded=True`` when nothing was trained.
    """
    path = Path(path)
    run_meta = {**_config_meta(config), **(meta or {})}
    if path.exists() and not retrain:
        header = read_checkpoint_meta(path)  # raises CheckpointError if unreadable
        try:
            if int(header.get("step", "0")) >= config.steps:
                ckpt = load_checkpoint(path, model, expected_meta=run_meta)
                ckpt.history.loaded = True
                return ckpt.history
            return train(
                model, get_batch, loss_fn, config, optimizer=optimizer, checkpoint_path=path,
                checkpoint_every=checkpoint_every, resume=True, generators=generators, meta=meta,
            )  # fmt: skip
        except CheckpointMismatch as err:
            print(f"coursekit: not reusing the checkpoint: {err}\nTraining a fresh model instead.")
    if path.exists():
        path.unlink()
    return train(
        model, get_batch, loss_fn, config, optimizer=optimizer, checkpoint_path=path,
        checkpoint_every=checkpoint_every, resume=False, generators=generators, meta=meta,
    )  # fmt: skip
