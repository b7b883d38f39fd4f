"""Data-parallel training: one model copy per process, each process on its share of the batch.

Data parallelism with :class:`torch.nn.parallel.DistributedDataParallel` (DDP):

1. every process (a *rank*) holds the same model; DDP copies rank 0's weights to the others
   when it wraps the model;
2. each step, the global batch of ``G`` examples is split into ``world_size`` shards, and each
   rank runs forward and backward on its own ``G / world_size`` examples;
3. during the backward pass DDP averages the gradients over the ranks (an *all-reduce*, in
   buckets that overlap with the remaining backward computation);
4. every rank then takes the same optimizer step on the same averaged gradient, so the copies
   stay identical without ever sending weights again.

Because the mean of the shards' mean gradients is the mean gradient of the whole batch, ``W``
processes give the same parameters as one process on the same global batch, up to float
rounding (``tests/test_distributed.py`` checks it). Processes talk through ``torch.distributed``:
the ``gloo`` backend on CPUs, ``nccl`` between GPUs.

Pieces:

* :func:`init_distributed` reads what ``torchrun`` puts in the environment (``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group,
  returning a :class:`DistributedContext`; without ``torchrun`` it is a single process.
* :class:`WindowSampler` draws global batches of language-model windows from a seed and the
  step number alone, each rank taking its own shard (:func:`shard_batch`): the batches depend
  neither on the number of processes nor on where a resumed run restarted.
* :func:`train_data_parallel` is the training loop (AdamW, schedules, accumulation with
  ``no_sync``, clipping, AMP); rank 0 alone logs and writes checkpoints (atomic safetensors
  via :mod:`coursekit.train.checkpoints`); every rank resumes from the same file.
* ``python -m coursekit.distributed`` (under ``torchrun``) trains a GPT on Tiny Shakespeare or
  random tokens, or any model from ``--task module:function``; :func:`launch_local` starts
  ``torchrun`` on this machine, and :func:`measure_throughput` compares 1, 2, ... processes.

One machine, two processes::

    torchrun --nproc-per-node 2 -m coursekit.distributed --steps 200 --global-batch-size 32

Two machines (run on each, ``--node-rank`` 0 and 1; ``HOST`` is node 0's address)::

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 -m coursekit.distributed --steps 200

See ``docs/distributed.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib
import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel

from coursekit.data import load_tiny_shakespeare
from coursekit.files import atomic_write_text
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.tokenize import CharTokenizer
from coursekit.train.checkpoints import load_checkpoint, save_checkpoint
from coursekit.train.history import History
from coursekit.train.loop import Batch, LossFn, TrainConfig
from coursekit.train.losses import cross_entropy_loss
from coursekit.train.optim import make_optimizer
from coursekit.train.precision import amp_dtype, autocast_context, make_grad_scaler

__all__ = [
    "Backend",
    "DistributedContext",
    "ShardedGetBatch",
    "Task",
    "TaskOptions",
    "ThroughputResult",
    "WindowSampler",
    "build_task",
    "free_port",
    "init_distributed",
    "launch_local",
    "lm_loss",
    "load_task",
    "main",
    "measure_throughput",
    "shard_batch",
    "shutdown_distributed",
    "train_data_parallel",
]

Backend = Literal["auto", "gloo", "nccl"]

#: ``get_batch(index, rank, world_size)`` -> rank ``rank``'s shard of global batch ``index``
ShardedGetBatch = Callable[[int, int, int], Batch]


def _derive_seed(*values: int) -> int:
    """A 63-bit seed mixed from integers (distinct tuples give unrelated seeds)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


# --------------------------------------------------------------------------------------------
# the process group
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` (``local_rank`` on its machine),
    the ``device`` it computes on and the ``backend`` (None: a single process, no group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise RuntimeError(
            f"The environment variable {name}={value!r} is not an integer."
        ) from None


def init_distributed(
    backend: Backend = "auto",
    *,
    device: Literal["auto", "cpu", "cuda"] = "auto",
    timeout_s: float = 60.0,
) -> DistributedContext:
    """Join the process group that ``torchrun`` set up (or stay a single process).

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment (``torchrun`` sets
    them, with ``MASTER_ADDR``/``MASTER_PORT``); without them, or with ``WORLD_SIZE=1``, returns
    a single-process context and creates no group. ``device="auto"``: GPU ``LOCAL_RANK`` when
    CUDA is available, else the CPU; ``backend="auto"``: ``nccl`` for GPUs, ``gloo`` for CPUs.
    ``timeout_s`` bounds every collective: if a peer dies, the others fail instead of waiting
    forever (``torchrun`` also stops them as soon as it sees a worker fail).
    """
    if backend not in ("auto", "gloo", "nccl"):
        raise ValueError(f"backend must be 'auto', 'gloo' or 'nccl', got {backend!r}.")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}.")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}.")
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise RuntimeError(f"Inconsistent RANK={rank} and WORLD_SIZE={world} in the environment.")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("device='cuda' was asked for but CUDA is not available here.")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} GPU(s): "
                "start at most one process per GPU (--nproc-per-node)."
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    chosen = ("nccl" if dev.type == "cuda" else "gloo") if backend == "auto" else backend
    if chosen == "nccl" and dev.type != "cuda":
        raise ValueError("The nccl backend needs GPUs; use gloo on CPUs.")
    if dist.is_initialized():
        return DistributedContext(
            dist.get_rank(), dist.get_world_size(), local_rank, dev, dist.get_backend()
        )
    if world == 1:
        return DistributedContext(0, 1, local_rank, dev, None)
    dist.init_process_group(
        backend=chosen,
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    return DistributedContext(rank, world, local_rank, dev, chosen)


def shutdown_distributed() -> None:
    """Leave the process group (if any): call once at the end of each process."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _current_context(model: nn.Module) -> DistributedContext:
    device = next(model.parameters()).device
    if dist.is_initialized():
        return DistributedContext(
            dist.get_rank(),
            dist.get_world_size(),
            (device.index or 0) if device.type == "cuda" else _env_int("LOCAL_RANK", 0),
            device,
            dist.get_backend(),
        )
    return DistributedContext(device=device)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (for ``--master-port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------
def shard_batch(batch: Batch, rank: int, world_size: int) -> Batch:
    """Rank ``rank``'s contiguous share of a global batch: rows ``[r G/W, (r+1) G/W)``.

    ``batch``: a tensor ``(G, ...)`` or a tuple/list/dict of them (other values pass through).
    ``G`` must be divisible by ``world_size`` (equal shards keep the averaged gradient equal to
    the full batch's).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}.")
    if isinstance(batch, torch.Tensor):
        g = batch.shape[0]
        if g % world_size:
            raise ValueError(
                f"A global batch of {g} examples does not split evenly over {world_size} "
                f"processes: make the global batch size a multiple of {world_size}."
            )
        per = g // world_size
        return batch[rank * per : (rank + 1) * per]
    if isinstance(batch, tuple | list):
        return type(batch)(shard_batch(b, rank, world_size) for b in batch)
    if isinstance(batch, dict):
        return {k: shard_batch(v, rank, world_size) for k, v in batch.items()}
    return batch


class WindowSampler:
    """Global batches of random language-model windows, each rank drawing only its shard.

    Global batch ``index`` has ``global_batch_size`` windows whose starts come from a generator
    seeded with ``(seed, index)`` alone: every rank computes the same starts and gathers the
    windows of its shard (:func:`shard_batch`'s rows). So the examples of a step do not depend
    on the number of processes, and a resumed run draws exactly the batches it would have drawn.

    ids: ``(N,)`` token ids. ``sampler(index, rank, world_size)`` -> ``(x, y)``, each
    ``(global_batch_size / world_size, block_size)`` long tensors, ``y`` = ``x`` shifted left.
    """

    def __init__(
        self, ids: torch.Tensor, block_size: int, global_batch_size: int, *, seed: int = 0
    ) -> None:
        if ids.dim() != 1:
            raise ValueError(f"WindowSampler needs 1-D ids, got shape {tuple(ids.shape)}.")
        if block_size < 1 or global_batch_size < 1:
            raise ValueError(
                f"block_size and global_batch_size must be >= 1, got {block_size} and "
                f"{global_batch_size}."
            )
        if ids.numel() <= block_size:
            raise ValueError(f"{ids.numel()} tokens are too few for block_size={block_size}.")
        self.ids = ids.long()
        self.block_size = block_size
        self.global_batch_size = global_batch_size
        self.seed = seed
        self._offsets = torch.arange(block_size + 1)

    def starts(self, index: int) -> torch.Tensor:
        """The ``(global_batch_size,)`` window starts of global batch ``index``."""
        g = torch.Generator().manual_seed(_derive_seed(self.seed, index))
        high = self.ids.numel() - self.block_size
        return torch.randint(high, (self.global_batch_size,), generator=g)

    def __call__(
        self, index: int, rank: int = 0, world_size: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mine = shard_batch(self.starts(index), rank, world_size)
        windows = self.ids[mine[:, None] + self._offsets]
        return windows[:, :-1], windows[:, 1:]


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy of ``model(x)`` ``(B, T, V)`` against ``y`` ``(B, T)``.

    It calls ``model(x)``: under DDP the wrapper's forward must run (it arms the gradient
    all-reduce), so a loss function must not call a method of the inner model.
    """
    x, y = batch
    return cross_entropy_loss(model(x), y)


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _count_tokens(batch: Batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    if isinstance(batch, tuple | list) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].numel()
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return value.numel()
    return 0


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
def _run_meta(config: TrainConfig, meta: dict[str, Any] | None) -> dict[str, Any]:
    data = asdict(config)
    for key in ("progress", "desc", "log_every", "eval_every", "eval_batches"):
        data.pop(key, None)
    return {"train_config": data, **(meta or {})}


def _agree(value: int, ctx: DistributedContext, what: str) -> None:
    """Raise on every rank unless all ranks hold the same ``value``."""
    if not ctx.distributed:
        return
    t = torch.tensor([value, -value], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    if int(t[0]) != -int(t[1]):
        raise RuntimeError(
            f"The processes disagree on {what} (from {-int(t[1])} to {int(t[0])}): on several "
            "machines the checkpoint must be on storage that every node sees, or copied to each."
        )


def train_data_parallel(
    model: nn.Module,
    get_batch: ShardedGetBatch,
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    context: DistributedContext | None = None,
    seed: int = 0,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    on_step: Callable[[int, nn.Module, History], None] | None = None,
) -> History:
    """Train ``model`` with data parallelism over the process group (or alone) and return the
    :class:`~coursekit.train.history.History` (the same on every rank).

    Call it on every rank with the same arguments, the model already on ``context.device``
    (default: the model's device and the current process group). Optimizer step ``s`` uses the
    micro-batches ``get_batch(s * A + a, rank, world_size)`` for ``a < A``
    (``A = config.accumulation_steps``): each must be this rank's equal share of a global
    batch, e.g. from :class:`WindowSampler`. ``loss_fn(model, batch)`` must call ``model(...)``
    (see :func:`lm_loss`). With one process there is no DDP wrapper and no communication.

    As :func:`coursekit.train.train`: AdamW (:func:`~coursekit.train.optim.make_optimizer`),
    ``config``'s learning-rate schedule, gradient clipping and AMP; the loss of each micro-batch
    is divided by ``A`` and the gradient all-reduce runs only on the last one (``no_sync``).
    ``config.eval_*`` and ``progress`` are not used.

    * Randomness: before each step the torch RNG is seeded from ``(seed, step, rank)``, so
      dropout differs between ranks and a resumed run repeats the same masks.
    * Logging: every ``config.log_every`` steps the ranks' losses are averaged (one
      all-reduce) into the history, and rank 0 prints a line to ``log`` (None: silent).
    * Checkpoints: rank 0 writes ``checkpoint_path`` every ``checkpoint_every`` steps and at
      the end (atomically: a crash leaves the previous file). With ``resume=True`` every rank
      loads that file if it exists and continues from its step: the result is that of an
      uninterrupted run, even with another number of processes (the global batch is the same).
      ``meta`` (e.g. the data and model options) is stored and must match on resume.
    * ``on_step(step, model, history)`` runs on every rank after each step (and its
      checkpoint), with the unwrapped model.
    """
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}.")
    if (checkpoint_every or resume) and checkpoint_path is None:
        raise ValueError("checkpoint_every / resume need a checkpoint_path.")
    ctx = context if context is not None else _current_context(model)
    device = next(model.parameters()).device
    if device != ctx.device and not (device.type == ctx.device.type == "cpu"):
        raise ValueError(
            f"The model is on {device} but this rank computes on {ctx.device}: move it first "
            "(model.to(context.device))."
        )
    dtype = amp_dtype(device) if config.amp else None
    scaler = make_grad_scaler(device, dtype)
    optimizer = make_optimizer(model, lr=config.lr, weight_decay=config.weight_decay)
    run_meta = _run_meta(config, meta)
    history, start = History(), 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(
            checkpoint_path, model, optimizer, expected_meta=run_meta, grad_scaler=scaler
        )
        history, start = ckpt.history, ckpt.step
        history.resumed_at = start
    _agree(start, ctx, "the step to resume from")
    if log is not None and ctx.is_main:
        where = f"{ctx.world_size} process(es), {ctx.backend or 'no process group'}, {device}"
        log(f"data-parallel training on {where}" + (f", resumed at step {start}" if start else ""))
    ddp: nn.Module = model
    if ctx.distributed:
        ids = [device.index] if device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)  # broadcasts rank 0's weights
    model.train()
    stat_dtype = torch.float64
    losses: list[torch.Tensor] = []
    norms: list[torch.Tensor] = []
    pending_steps: list[int] = []
    pending_lrs: list[float] = []
    local_tokens = 0
    clock = time.perf_counter() - history.seconds
    acc = config.accumulation_steps
    for step in range(start, config.steps):
        done = step + 1
        lr = config.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(_derive_seed(seed, step, ctx.rank))
        optimizer.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), dtype=stat_dtype, device=device)
        for micro in range(acc):
            batch = _to_device(get_batch(step * acc + micro, ctx.rank, ctx.world_size), device)
            last_micro = micro == acc - 1
            skip_sync = ctx.distributed and not last_micro
            sync_ctx = ddp.no_sync() if skip_sync else contextlib.nullcontext()  # type: ignore[operator]
            with sync_ctx:
                with autocast_context(device, config.amp, dtype):
                    loss = loss_fn(ddp, batch)
                scaler.scale(loss / acc).backward()
            step_loss = step_loss + loss.detach().to(stat_dtype) / acc
            local_tokens += _count_tokens(batch)
        scaler.unscale_(optimizer)
        params = [p for p in model.parameters() if p.grad is not None]
        if config.grad_clip is not None and params:
            norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        elif params:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in params])
            )
        else:
            norm = torch.zeros((), device=device)
        scaler.step(optimizer)
        scaler.update()
        losses.append(step_loss)
        norms.append(norm.detach().to(stat_dtype))
        pending_steps.append(done)
        pending_lrs.append(lr)

        last = done == config.steps
        save_now = checkpoint_path is not None and (
            last or (checkpoint_every > 0 and done % checkpoint_every == 0)
        )
        if last or save_now or done % config.log_every == 0:
            stats = torch.cat(
                [
                    torch.stack(losses),
                    torch.tensor([float(local_tokens)], dtype=stat_dtype, device=device),
                ]
            )
            if ctx.distributed:
                dist.all_reduce(stats)  # the sum over ranks: one collective per log point
            values = stats.tolist()
            step_losses = [v / ctx.world_size for v in values[:-1]]
            for s, value in zip(pending_steps, step_losses, strict=True):
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"Loss became {value} at step {s}: lower the learning rate, enable "
                        "gradient clipping, or use warm-up."
                    )
            history.steps.extend(pending_steps)
            history.lr.extend(pending_lrs)
            history.train_loss.extend(step_losses)
            history.grad_norm.extend(torch.stack(norms).tolist())
            history.tokens_seen += int(values[-1])
            history.seconds = time.perf_counter() - clock
            losses, norms, pending_steps, pending_lrs, local_tokens = [], [], [], [], 0
            if log is not None and ctx.is_main:
                log(
                    f"step {done}/{config.steps}  loss {step_losses[-1]:.4f}  lr {lr:.3g}  "
                    f"{history.tokens_per_second:,.0f} tok/s"
                )
        if save_now and ctx.is_main:
            assert checkpoint_path is not None
            save_checkpoint(
                checkpoint_path,
                model,
                optimizer,
                step=done,
                history=history,
                meta=run_meta,
                grad_scaler=scaler,
            )
        if on_step is not None:
            on_step(done, model, history)
    history.seconds = time.perf_counter() - clock
    return history


# --------------------------------------------------------------------------------------------
# tasks: what the command line trains
# --------------------------------------------------------------------------------------------
@dataclass
class TaskOptions:
    """The model and data options of the command line (a ``--task`` factory receives them)."""

    data: Literal["shakespeare", "random"] = "shakespeare"
    vocab_size: int = 65  # random data only (Tiny Shakespeare has its own)
    n_tokens: int = 100_000  # random data only
    block_size: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_model: int = 64
    d_ff: int | None = None
    global_batch_size: int = 32
    seed: int = 0
    dtype: Literal["float32", "float64", "bfloat16"] = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Task:
    """A model (on the CPU, freshly initialised from the seed), its loss and its batches."""

    model: nn.Module
    loss_fn: LossFn
    get_batch: ShardedGetBatch
    meta: dict[str, Any] = field(default_factory=dict)


def _token_ids(options: TaskOptions) -> tuple[torch.Tensor, int]:
    if options.data == "random":
        g = torch.Generator().manual_seed(_derive_seed(options.seed, 1))
        return torch.randint(
            options.vocab_size, (options.n_tokens,), generator=g
        ), options.vocab_size
    if options.data == "shakespeare":
        splits = load_tiny_shakespeare()
        tokenizer = CharTokenizer.train(splits.train + splits.val)
        return torch.tensor(tokenizer.encode(splits.train)), tokenizer.vocab_size
    raise ValueError(f"Unknown data {options.data!r}: use 'shakespeare' or 'random'.")


def build_task(options: TaskOptions) -> Task:
    """The built-in task: a :class:`~coursekit.models.gpt.GPT` (GPT-2 recipe, no dropout) on
    character windows of Tiny Shakespeare (or of random tokens), batches from
    :class:`WindowSampler`, loss :func:`lm_loss`."""
    ids, vocab = _token_ids(options)
    torch.manual_seed(options.seed)
    config = GPTConfig(
        vocab_size=vocab,
        block_size=options.block_size,
        n_layers=options.n_layers,
        n_heads=options.n_heads,
        d_model=options.d_model,
        d_ff=options.d_ff,
    )
    model = GPT(config).to(getattr(torch, options.dtype))
    sampler = WindowSampler(ids, options.block_size, options.global_batch_size, seed=options.seed)
    return Task(model, lm_loss, sampler, {"task": "gpt", "options": options.to_dict()})


def load_task(spec: str) -> Callable[[TaskOptions], Task]:
    """The task factory named by ``spec``: ``"gpt"`` (:func:`build_task`),
    ``"package.module:function"`` or ``"path/to/file.py:function"``."""
    if spec == "gpt":
        return build_task
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise ValueError(
            f"--task must be 'gpt', 'module:function' or 'file.py:function', got {spec!r}."
        )
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise FileNotFoundError(f"--task: no file {path}.")
        module_spec = importlib.util.spec_from_file_location(f"_coursekit_task_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"--task: cannot import {path}.")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise AttributeError(f"--task: {where} has no function {name!r}.")
    return factory


# --------------------------------------------------------------------------------------------
# the command line (run under torchrun)
# --------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m coursekit.distributed",
        description="Data-parallel training with DDP. Run under torchrun, e.g. "
        "`torchrun --nproc-per-node 2 -m coursekit.distributed --steps 200`.",
    )
    p.add_argument("--task", default="gpt", help="gpt, module:function or file.py:function")
    d = TaskOptions()
    p.add_argument("--data", choices=["shakespeare", "random"], default=d.data)
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, help="random data only")
    p.add_argument("--n-tokens", type=int, default=d.n_tokens, help="random data only")
    p.add_argument("--block-size", type=int, default=d.block_size)
    p.add_argument("--n-layers", type=int, default=d.n_layers)
    p.add_argument("--n-heads", type=int, default=d.n_heads)
    p.add_argument("--d-model", type=int, default=d.d_model)
    p.add_argument("--d-ff", type=int, default=None)
    p.add_argument("--dtype", choices=["float32", "float64", "bfloat16"], default=d.dtype)
    p.add_argument("--global-batch-size", type=int, default=d.global_batch_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--grad-clip", type=float, default=1.0, help="0: no clipping")
    p.add_argument("--accumulation-steps", type=int, default=1)
    p.add_argument("--amp", action="store_true", help="autocast (bf16 where supported)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checkpoint", type=Path, default=None, help="safetensors file (rank 0 writes)")
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if present")
    p.add_argument("--out-json", type=Path, default=None, help="rank 0 writes a run summary")
    p.add_argument("--backend", choices=["auto", "gloo", "nccl"], default="auto")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--timeout", type=float, default=60.0, help="collective timeout, seconds")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: keep)")
    p.add_argument(
        "--fail-at",
        default=None,
        metavar="RANK:STEP",
        help="simulate a crash: that rank kills itself (SIGKILL) after that step (unless the "
        "run resumed from a checkpoint)",
    )
    return p


def _parse_fail_at(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        rank, step = (int(v) for v in value.split(":"))
    except ValueError:
        raise ValueError(f"--fail-at must be RANK:STEP, got {value!r}.") from None
    return rank, step


@record
def main(argv: Sequence[str] | None = None) -> int:
    """The ``python -m coursekit.distributed`` entry point (see :func:`_parser`)."""
    args = _parser().parse_args(argv)
    fail_at = _parse_fail_at(args.fail_at)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    ctx = init_distributed(args.backend, device=args.device, timeout_s=args.timeout)
    try:
        options = TaskOptions(
            data=args.data,
            vocab_size=args.vocab_size,
            n_tokens=args.n_tokens,
            block_size=args.block_size,
            n_layers=args.n_layers,
            n_heads=args.n_heads,
            d_model=args.d_model,
            d_ff=args.d_ff,
            global_batch_size=args.global_batch_size,
            seed=args.seed,
            dtype=args.dtype,
        )
        if options.global_batch_size % ctx.world_size:
            raise ValueError(
                f"--global-batch-size {options.global_batch_size} must be a multiple of the "
                f"{ctx.world_size} processes."
            )
        task = load_task(args.task)(options)
        model = task.model.to(ctx.device)
        config = TrainConfig(
            steps=args.steps,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_steps,
            schedule=args.schedule,
            grad_clip=args.grad_clip if args.grad_clip > 0 else None,
            accumulation_steps=args.accumulation_steps,
            log_every=args.log_every,
            amp=args.amp,
            progress=False,
        )
        marks: dict[int, float] = {}

        def on_step(step: int, _model: nn.Module, history: History) -> None:
            marks[step] = time.perf_counter()
            # only in a run that did not resume: a restarted run (torchrun --max-restarts, or
            # a new launch with --resume) gets through
            if fail_at is not None and (ctx.rank, step) == fail_at and not history.resumed_at:
                print(f"[rank {ctx.rank}] simulated crash after step {step}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

        def log(line: str) -> None:
            print(f"[rank 0] {line}", flush=True)

        history = train_data_parallel(
            model,
            task.get_batch,
            task.loss_fn,
            config,
            context=ctx,
            seed=args.seed,
            checkpoint_path=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            meta=task.meta,
            log=log,
            on_step=on_step,
        )
        if args.out_json is not None and ctx.is_main:
            summary = {
                "world_size": ctx.world_size,
                "backend": ctx.backend,
                "device": str(ctx.device),
                "threads_per_process": torch.get_num_threads(),
                "steps": config.steps,
                "resumed_at": history.resumed_at,
                "global_batch_size": options.global_batch_size,
                "block_size": options.block_size,
                "tokens_seen": history.tokens_seen,
                "seconds": history.seconds,
                "tokens_per_second": history.tokens_per_second,
                "step_times": {str(k): v for k, v in sorted(marks.items())},
                "final_loss": history.train_loss[-1] if history.train_loss else None,
                "history": dataclasses.asdict(history),
            }
            atomic_write_text(args.out_json, json.dumps(summary, indent=1))
    finally:
        shutdown_distributed()
    return 0


# --------------------------------------------------------------------------------------------
# launching from Python (tests, benchmarks, notebooks)
# --------------------------------------------------------------------------------------------
def launch_local(
    nproc: int,
    argv: Sequence[str],
    *,
    timeout_s: float = 120.0,
    port: int | None = None,
    max_restarts: int = 0,
    threads_per_process: int | None = 1,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``torchrun --nproc-per-node nproc -m coursekit.distributed *argv`` on this machine.

    Rendezvous on ``127.0.0.1:port`` (default: a free port). If a worker dies, torchrun stops
    the others and, after ``max_restarts`` restarts of the whole group (default none; pass
    ``--resume`` in ``argv`` so a restart continues from the checkpoint), exits with an error. The whole process tree runs in its own
    session and is killed if it outlives ``timeout_s`` (then :class:`TimeoutError`, with the
    output so far). Returns the completed process (``stdout`` holds stdout and stderr);
    the caller checks ``returncode``. ``threads_per_process`` sets ``OMP_NUM_THREADS``.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}.")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port if port is not None else free_port()),
        "--max-restarts",
        str(max_restarts),
        "--monitor-interval",
        "0.2",
        "-m",
        "coursekit.distributed",
        *argv,
    ]
    full_env = {**os.environ, **(env or {})}
    if threads_per_process is not None:
        full_env["OMP_NUM_THREADS"] = str(threads_per_process)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the session we started: torchrun + workers
        out, _ = proc.communicate()
        raise TimeoutError(
            f"torchrun with {nproc} process(es) did not finish within {timeout_s:.0f} s; output:\n"
            + out[-4000:]
        ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@dataclass(frozen=True)
class ThroughputResult:
    """Training throughput of one launch: tokens per second over the steps after warm-up."""

    nproc: int
    tokens_per_second: float
    seconds_per_step: float
    global_batch_size: int
    block_size: int
    threads_per_process: int


def measure_throughput(
    nprocs: Sequence[int] = (1, 2),
    *,
    steps: int = 30,
    warmup_steps: int = 5,
    global_batch_size: int = 16,
    block_size: int = 64,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    threads_per_process: int = 1,
    timeout_s: float = 300.0,
    workdir: str | Path | None = None,
) -> list[ThroughputResult]:
    """Training throughput of a tiny GPT on random tokens with 1, 2, ... processes (CPU, gloo).

    Each launch trains ``steps`` steps on the same global batch; the time of the steps after
    ``warmup_steps`` (measured on rank 0 between two synchronised steps) gives tokens per
    second. On one machine the processes share its cores and memory bandwidth: with
    ``threads_per_process=1`` two processes use two cores, one process one core.
    """
    if not 0 < warmup_steps < steps:
        raise ValueError(f"need 0 < warmup_steps < steps, got {warmup_steps} and {steps}.")
    results = []
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory())
        for nproc in nprocs:
            out_json = Path(workdir) / f"throughput-{nproc}.json"
            argv = [
                "--data", "random", "--device", "cpu", "--steps", str(steps),
                "--log-every", str(warmup_steps), "--global-batch-size", str(global_batch_size),
                "--block-size", str(block_size), "--n-layers", str(n_layers),
                "--d-model", str(d_model), "--n-heads", str(n_heads),
                "--out-json", str(out_json), "--threads", str(threads_per_process),
            ]  # fmt: skip
            done = launch_local(
                nproc, argv, timeout_s=timeout_s, threads_per_process=threads_per_process
            )
            if done.returncode != 0:
                raise RuntimeError(f"The {nproc}-process run failed:\n{done.stdout[-4000:]}")
            summary = json.loads(out_json.read_text(encoding="utf-8"))
            times = summary["step_times"]
            seconds = times[str(steps)] - times[str(warmup_steps)]
            n_steps = steps - warmup_steps
            results.append(
                ThroughputResult(
                    nproc=nproc,
                    tokens_per_second=n_steps * global_batch_size * block_size / seconds,
                    seconds_per_step=seconds / n_steps,
                    global_batch_size=global_batch_size,
                    block_size=block_size,
                    threads_per_process=threads_per_process,
                )
            )
    return results


if __name__ == "__main__":
    sys.exit(main())
