"""The record of a training run (shared by the loop and the checkpoints, so it sits below both)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


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
