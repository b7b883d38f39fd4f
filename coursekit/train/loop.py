"""One training loop for every notebook.

The loop is deliberately small: a batch function, a loss function and a config.

>>> history = train(model, get_batch, loss_fn, TrainConfig(steps=500, lr=3e-3, eval_every=100))

``get_batch(split)`` returns a batch (any structure) already on the model's device for
``split`` in ``{"train", "val"}``; ``loss_fn(model, batch)`` returns a scalar loss tensor.

Per step the loop sets the learning rate from the schedule, accumulates gradients over
``accumulation_steps`` batches, clips the global gradient norm and steps an AdamW with weight
decay on the matrices only (:func:`~coursekit.train.optim.make_optimizer`), optionally under
autocast (:mod:`coursekit.train.precision`). The hot path never waits for the device: losses
and gradient norms stay on the device and are copied to the :class:`History` once every
``log_every`` steps (and at evaluations, checkpoints and the end).

``train(..., checkpoint_path=..., resume=True)`` continues an interrupted run exactly as if it
had never stopped; :func:`load_or_train` loads a finished checkpoint made with the same
settings, else trains.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from coursekit.runtime import eval_mode
from coursekit.train.checkpoints import (
    CheckpointMismatch,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
)
from coursekit.train.history import History
from coursekit.train.optim import make_optimizer
from coursekit.train.precision import amp_dtype, autocast_context, make_grad_scaler
from coursekit.train.schedules import cosine_schedule, noam_schedule

__all__ = [
    "SCHEDULES",
    "Batch",
    "GetBatch",
    "History",
    "LossFn",
    "ScheduleName",
    "TrainConfig",
    "evaluate",
    "load_or_train",
    "train",
]

Batch = Any
GetBatch = Callable[[str], Batch]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]
ScheduleName = Literal["constant", "cosine", "noam"]
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "noam")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass
class TrainConfig:
    """What to train for and how. ``steps`` counts optimizer updates.

    Every field is checked on construction; a value out of range raises ``ValueError`` naming
    the field and its valid range.
    """

    steps: int
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW decay, on matrices and embeddings only
    warmup_steps: int = 0
    schedule: ScheduleName = "constant"
    min_lr_ratio: float = 0.1  # the cosine schedule's final lr, as a share of lr
    grad_clip: float | None = 1.0  # max global gradient norm; None: no clipping
    accumulation_steps: int = 1
    eval_every: int = 0  # 0: evaluate only once, at the end
    eval_batches: int = 10  # 0: no validation loss (callbacks still run at eval points)
    log_every: int = 10  # copy losses to the History (and the progress bar) every n steps
    amp: bool = False  # autocast where the device supports it (bf16; fp16 + scaler on old GPUs)
    progress: bool = True
    desc: str = "train"
    d_model: int | None = None  # needed by the "noam" schedule

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, valid: str) -> None:
            if not ok:
                value = getattr(self, name)
                raise ValueError(f"TrainConfig.{name} must be {valid}, got {value!r}.")

        need(_is_int(self.steps) and self.steps >= 1, "steps", "an integer >= 1")
        need(_is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0, "lr", "finite and > 0")
        need(
            _is_real(self.weight_decay)
            and math.isfinite(self.weight_decay)
            and self.weight_decay >= 0,
            "weight_decay",
            "finite and >= 0",
        )
        need(
            _is_int(self.warmup_steps) and self.warmup_steps >= 0, "warmup_steps", "an integer >= 0"
        )
        need(self.schedule in SCHEDULES, "schedule", f"one of {', '.join(SCHEDULES)}")
        need(
            _is_real(self.min_lr_ratio) and 0.0 <= self.min_lr_ratio <= 1.0,
            "min_lr_ratio",
            "in [0, 1]",
        )
        need(
            self.grad_clip is None or (_is_real(self.grad_clip) and self.grad_clip > 0),
            "grad_clip",
            "None (no clipping) or > 0 (0 would freeze training, a negative value flip the "
            "gradients)",
        )
        need(
            _is_int(self.accumulation_steps) and self.accumulation_steps >= 1,
            "accumulation_steps",
            "an integer >= 1",
        )
        need(
            _is_int(self.eval_every) and self.eval_every >= 0,
            "eval_every",
            "an integer >= 0 (0: only at the end)",
        )
        need(
            _is_int(self.eval_batches) and self.eval_batches >= 0,
            "eval_batches",
            "an integer >= 0 (0: no validation loss)",
        )
        need(_is_int(self.log_every) and self.log_every >= 1, "log_every", "an integer >= 1")
        need(
            self.d_model is None or (_is_int(self.d_model) and self.d_model >= 1),
            "d_model",
            "None or an integer >= 1",
        )
        if self.schedule == "noam" and (self.d_model is None or self.warmup_steps <= 0):
            raise ValueError(
                "The noam schedule needs d_model and warmup_steps > 0 "
                f"(got d_model={self.d_model!r}, warmup_steps={self.warmup_steps!r})."
            )
        if self.schedule == "cosine" and self.warmup_steps >= self.steps:
            raise ValueError(
                f"TrainConfig.warmup_steps must be < steps ({self.steps}) for the cosine "
                f"schedule, got {self.warmup_steps}: the decay would never start."
            )

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


def _stat_dtype(device: torch.device) -> torch.dtype:
    """The dtype losses are accumulated in on ``device`` (MPS has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of ``grads`` as a 0-dim device tensor (no synchronisation)."""
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if get_total_norm is not None:
        return get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def evaluate(
    model: nn.Module, get_batch: GetBatch, loss_fn: LossFn, n_batches: int, *, amp: bool = False
) -> float:
    """Mean loss over ``n_batches`` validation batches, in eval mode without gradients.

    The model's previous train/eval mode is restored afterwards (even on error). The losses
    are summed on the device and read once.
    """
    if n_batches < 1:
        raise ValueError(f"evaluate needs n_batches >= 1, got {n_batches}.")
    device = _model_device(model)
    total: torch.Tensor | None = None
    with eval_mode(model):
        for _ in range(n_batches):
            with autocast_context(device, amp):
                loss = loss_fn(model, get_batch("val")).detach()
            loss = loss.to(_stat_dtype(loss.device))
            total = loss if total is None else total + loss
    assert total is not None
    return float(total) / n_batches


class _StepBuffer:
    """Per-step statistics kept on the device until the next log point, then moved at once."""

    def __init__(self, history: History, device: torch.device) -> None:
        self.history = history
        self.device = device
        self.dtype = _stat_dtype(device)
        self.steps: list[int] = []
        self.lrs: list[float] = []
        self.losses: list[torch.Tensor] = []
        self.norms: list[torch.Tensor] = []

    def add(self, step: int, lr: float, loss: torch.Tensor, norm: torch.Tensor) -> None:
        self.steps.append(step)
        self.lrs.append(lr)
        self.losses.append(loss.to(self.device, self.dtype))
        self.norms.append(norm.detach().to(self.device, self.dtype))

    def flush(self) -> None:
        """Copy the buffered values into the history (one device-to-host transfer)."""
        if not self.steps:
            return
        n = len(self.steps)
        values = torch.stack([*self.losses, *self.norms]).tolist()
        losses, norms = values[:n], values[n:]
        for step, loss in zip(self.steps, losses, strict=True):
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"Loss became {loss} at step {step}: lower the learning rate, enable "
                    "gradient clipping, or use warm-up."
                )
        self.history.steps.extend(self.steps)
        self.history.lr.extend(self.lrs)
        self.history.train_loss.extend(losses)
        self.history.grad_norm.extend(norms)
        self.steps, self.lrs, self.losses, self.norms = [], [], [], []


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
    and sets the learning rate from the schedule. Without an ``optimizer`` it builds an AdamW
    with ``config.weight_decay`` on the matrices only. With ``config.amp`` the forward pass
    runs under autocast (:func:`~coursekit.train.precision.amp_dtype`: bf16 on CPU and recent
    GPUs, fp16 with a gradient scaler on older ones; parameters and gradients stay fp32).
    Validation runs every ``eval_every`` updates and at the end.

    Losses and gradient norms reach the History every ``config.log_every`` updates (and at
    evaluations, checkpoints and the end): the loop never waits for the device in between. A
    non-finite loss raises ``FloatingPointError`` at the next of those points.

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
    dtype = amp_dtype(device) if config.amp else None
    scaler = make_grad_scaler(device, dtype)
    if optimizer is None:
        optimizer = make_optimizer(model, lr=config.lr, weight_decay=config.weight_decay)
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
            grad_scaler=scaler,
        )
        history, start_step = ckpt.history, ckpt.step
        history.resumed_at = start_step
    buffer = _StepBuffer(history, device)
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
        done = step + 1
        lr = config.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss: torch.Tensor | None = None
        for _ in range(config.accumulation_steps):
            batch = get_batch("train")
            with autocast_context(device, config.amp, dtype):
                loss = loss_fn(model, batch)
            scaler.scale(loss / config.accumulation_steps).backward()
            part = loss.detach().to(buffer.dtype) / config.accumulation_steps
            step_loss = part if step_loss is None else step_loss + part
            history.tokens_seen += _count_tokens(batch)
        assert step_loss is not None
        scaler.unscale_(optimizer)  # no-op unless fp16: clip the true gradients
        params = [p for p in model.parameters() if p.grad is not None]
        if config.grad_clip is not None and params:
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        elif params:
            norm = _total_norm([p.grad for p in params if p.grad is not None])
        else:
            norm = torch.zeros((), device=device)
        scaler.step(optimizer)
        scaler.update()
        buffer.add(done, lr, step_loss, norm)

        last = done == config.steps
        eval_now = last or (config.eval_every > 0 and done % config.eval_every == 0)
        checkpoint_now = checkpoint_path is not None and (
            last or (checkpoint_every > 0 and done % checkpoint_every == 0)
        )
        log_now = last or done % config.log_every == 0
        if not (log_now or eval_now or checkpoint_now):
            continue
        buffer.flush()  # the one device-to-host copy of these steps; raises on a NaN loss
        postfix: dict[str, str] = {"loss": f"{history.train_loss[-1]:.3f}"}
        if config.eval_batches > 0 and eval_now:
            history.eval_steps.append(done)
            history.val_loss.append(
                evaluate(model, get_batch, loss_fn, config.eval_batches, amp=config.amp)
            )
            postfix["val"] = f"{history.val_loss[-1]:.3f}"
        if callback is not None and eval_now and callback(done, model, history):
            history.stopped_at = done
            last = True
        if config.progress and (log_now or last or "val" in postfix):
            now = time.perf_counter()
            rate = (history.tokens_seen - last_tokens) / max(now - last_time, 1e-9)
            last_tokens, last_time = history.tokens_seen, now
            postfix["tok/s"] = f"{rate:,.0f}"
            bar.set_postfix(postfix)
        if checkpoint_path is not None and (checkpoint_now or history.stopped_at):
            history.seconds = time.perf_counter() - start
            save_checkpoint(
                checkpoint_path,
                model,
                optimizer,
                step=done,
                history=history,
                meta=run_meta,
                generators=generators,
                grad_scaler=scaler,
            )
        if history.stopped_at:
            break
    bar.close()
    buffer.flush()
    history.seconds = time.perf_counter() - start
    return history


def _config_meta(config: TrainConfig) -> dict[str, Any]:
    """The parts of a TrainConfig that change the result (not logging or the progress bar)."""
    data = asdict(config)
    for key in ("progress", "desc", "log_every"):
        data.pop(key, None)
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

    "Same settings" means: the same model class, config and parameter shapes, the same
    ``TrainConfig`` (logging and progress-bar options aside) and the same ``meta`` (put there
    what else defines the run: data arguments, seed). A matching but unfinished checkpoint is
    resumed. A checkpoint made with other settings is reported and replaced by a fresh run; an
    unreadable one raises :class:`~coursekit.train.checkpoints.CheckpointError` (delete it or
    pass ``retrain=True``). The returned history has ``loaded=True`` when nothing was trained.
    """
    path = Path(path)
    run_meta = {**_config_meta(config), **(meta or {})}
    if path.exists() and not retrain:
        header = read_checkpoint_meta(path)  # raises CheckpointError if unreadable or malformed
        try:
            if int(header["step"]) >= config.steps:
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
