"""Training: schedules, losses, optimizer set-up, mixed precision, checkpoints and the loop.

Submodules, lowest first:

* :mod:`~coursekit.train.schedules`: :func:`noam_schedule`, :func:`cosine_schedule`;
* :mod:`~coursekit.train.losses`: :func:`label_smoothing_loss` (written out),
  :func:`cross_entropy_loss` (what the models run);
* :mod:`~coursekit.train.history`: :class:`History`, the record of a run;
* :mod:`~coursekit.train.optim`: :func:`make_optimizer` (AdamW, decay on matrices only);
* :mod:`~coursekit.train.precision`: :func:`amp_dtype`, :func:`autocast_context`,
  :func:`make_grad_scaler`;
* :mod:`~coursekit.train.checkpoints`: safetensors checkpoints (:func:`save_checkpoint`,
  :func:`load_checkpoint`, ...);
* :mod:`~coursekit.train.loop`: :class:`TrainConfig`, :func:`train`, :func:`evaluate`,
  :func:`load_or_train`.

``from coursekit.train import X`` works for every name below, but each submodule is imported
only when one of its names is first used: a model that imports
``coursekit.train.losses`` does not load the training loop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coursekit.train.checkpoints import (
        CHECKPOINT_FORMAT,
        Checkpoint,
        CheckpointError,
        CheckpointMismatch,
        load_checkpoint,
        model_config_dict,
        read_checkpoint_meta,
        save_checkpoint,
    )
    from coursekit.train.history import History
    from coursekit.train.loop import (
        SCHEDULES,
        Batch,
        GetBatch,
        LossFn,
        ScheduleName,
        TrainConfig,
        evaluate,
        load_or_train,
        train,
    )
    from coursekit.train.losses import cross_entropy_loss, label_smoothing_loss
    from coursekit.train.optim import make_optimizer, param_groups
    from coursekit.train.precision import amp_dtype, autocast_context, make_grad_scaler
    from coursekit.train.schedules import cosine_schedule, noam_schedule

#: public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "noam_schedule": "schedules",
    "cosine_schedule": "schedules",
    "label_smoothing_loss": "losses",
    "cross_entropy_loss": "losses",
    "History": "history",
    "make_optimizer": "optim",
    "param_groups": "optim",
    "amp_dtype": "precision",
    "autocast_context": "precision",
    "make_grad_scaler": "precision",
    "CHECKPOINT_FORMAT": "checkpoints",
    "Checkpoint": "checkpoints",
    "CheckpointError": "checkpoints",
    "CheckpointMismatch": "checkpoints",
    "load_checkpoint": "checkpoints",
    "model_config_dict": "checkpoints",
    "read_checkpoint_meta": "checkpoints",
    "save_checkpoint": "checkpoints",
    "SCHEDULES": "loop",
    "Batch": "loop",
    "GetBatch": "loop",
    "LossFn": "loop",
    "ScheduleName": "loop",
    "TrainConfig": "loop",
    "evaluate": "loop",
    "load_or_train": "loop",
    "train": "loop",
}

__all__ = [
    "Batch",
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "CheckpointMismatch",
    "GetBatch",
    "History",
    "LossFn",
    "SCHEDULES",
    "ScheduleName",
    "TrainConfig",
    "amp_dtype",
    "autocast_context",
    "cosine_schedule",
    "cross_entropy_loss",
    "evaluate",
    "label_smoothing_loss",
    "load_checkpoint",
    "load_or_train",
    "make_grad_scaler",
    "make_optimizer",
    "model_config_dict",
    "noam_schedule",
    "param_groups",
    "read_checkpoint_meta",
    "save_checkpoint",
    "train",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first use (PEP 562)."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
