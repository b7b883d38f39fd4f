"""Assertions for exercise checks that explain what is wrong in a learner's terms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from coursekit.exercises.registry import ExerciseFailure


def expect_tensor(value: Any, *, name: str = "result") -> torch.Tensor:
    """The value must be a torch.Tensor."""
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailure(
            f"{name} should be a torch.Tensor, but it is a {type(value).__name__}.",
            hint="Return a tensor (use torch operations, not Python lists or NumPy).",
        )
    return value


def expect_shape(
    value: Any, shape: Sequence[int], *, name: str = "result", hint: str | None = None
) -> None:
    """The tensor must have exactly ``shape``."""
    tensor = expect_tensor(value, name=name)
    if tuple(tensor.shape) != tuple(shape):
        raise ExerciseFailure(
            f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}.",
            hint=hint
            or "Check which dimension you reduce over, and transposes like k.transpose(-2, -1).",
        )


def expect_dtype(value: Any, dtype: torch.dtype, *, name: str = "result") -> None:
    """The tensor must have ``dtype``."""
    tensor = expect_tensor(value, name=name)
    if tensor.dtype != dtype:
        raise ExerciseFailure(
            f"{name} has dtype {tensor.dtype}, expected {dtype}.",
            hint="Keep the input's dtype: avoid creating tensors with a hard-coded dtype.",
        )


def expect_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    name: str = "result",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str | None = None,
) -> None:
    """Same shape, finite, and values within tolerance; reports the worst index if not."""
    expect_shape(actual, expected.shape, name=name)
    actual_t = actual.detach().to(torch.float64).cpu()
    expected_t = expected.detach().to(torch.float64).cpu()
    if not torch.isfinite(actual_t).all():
        bad = tuple(int(i) for i in (~torch.isfinite(actual_t)).nonzero()[0])
        raise ExerciseFailure(
            f"{name} contains NaN or inf (first at index {bad}).",
            hint=hint or "A softmax over a row with only -inf, or a division by zero, gives NaN.",
        )
    diff = (actual_t - expected_t).abs()
    allowed = atol + rtol * expected_t.abs()
    if (diff > allowed).any():
        worst = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
        raise ExerciseFailure(
            f"{name} differs from the reference: at index {worst} you have "
            f"{actual_t[worst].item():.6g}, expected {expected_t[worst].item():.6g} "
            f"({int((diff > allowed).sum())} of {diff.numel()} values are off).",
            hint=hint,
        )


def expect_equal(
    actual: Any, expected: Any, *, name: str = "result", hint: str | None = None
) -> None:
    """Plain equality for numbers, strings, lists and tuples."""
    if actual != expected:
        raise ExerciseFailure(f"{name} is {actual!r}, expected {expected!r}.", hint=hint)


def expect_true(condition: bool, message: str, *, hint: str | None = None) -> None:
    """Fail with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailure(message, hint=hint)
