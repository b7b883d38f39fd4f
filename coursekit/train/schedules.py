"""Learning-rate schedules: the Transformer paper's warm-up + inverse square root, and cosine.

Both are plain functions of the step (no optimizer, no state), so a notebook can plot them.
This module imports only the standard library.
"""

from __future__ import annotations

import math

__all__ = ["cosine_schedule", "noam_schedule"]


def noam_schedule(step: int, *, d_model: int, warmup: int) -> float:
    """The Transformer paper's rate: d_model^-0.5 * min(step^-0.5, step * warmup^-1.5).

    ``step`` counts from 1; step 0 is treated as step 1 so the rate is never zero or infinite.
    """
    if d_model <= 0 or warmup <= 0:
        raise ValueError(f"d_model and warmup must be positive, got {d_model=} and {warmup=}.")
    step = max(int(step), 1)
    return float(d_model**-0.5 * min(step**-0.5, step * warmup**-1.5))


def cosine_schedule(
    step: int, *, total_steps: int, warmup: int = 0, min_ratio: float = 0.1
) -> float:
    """Multiplier in [min_ratio, 1]: linear warm-up over ``warmup`` steps, then cosine decay.

    ``step`` counts from 0; the multiplier reaches ``min_ratio`` at ``step == total_steps``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}.")
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(max(step - warmup, 0) / max(total_steps - warmup, 1), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
