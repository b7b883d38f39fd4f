"""Assertions for exercise checks that explain what is wrong in a learner's terms.

Each helper raises :class:`~coursekit.exercises.registry.ExerciseFailure` with a message and a
hint. ``expect_close`` and ``expect_number`` also take ``mistakes``: what a known wrong answer
would produce, each with its own hint, so a learner who makes a common mistake is told which one.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch

from coursekit.exercises.registry import ExerciseFailure

#: A known mistake for :func:`expect_close`: what it produces (a tensor, or a function of no
#: arguments that computes it only when needed), and the hint that explains it.
TensorMistake = tuple[torch.Tensor | Callable[[], torch.Tensor], str]
#: A known mistake for :func:`expect_number`: the value it gives, and the hint that explains it.
NumberMistake = tuple[float, str]


def a_type(value: Any) -> str:
    """'a str', 'an int', ... for messages."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def expect_callable(value: Any, *, name: str = "your answer", hint: str | None = None) -> None:
    """The answer must be a function (or another callable)."""
    if not callable(value):
        raise ExerciseFailure(
            f"{name} should be a function, but it is {a_type(value)}.",
            hint=hint
            or 'Pass the function itself, without calling it: check("..", my_function), '
            'not check("..", my_function(...)).',
        )


def expect_tensor(value: Any, *, name: str = "result") -> torch.Tensor:
    """The value must be a torch.Tensor."""
    if not isinstance(value, torch.Tensor):
        raise ExerciseFailure(
            f"{name} should be a torch.Tensor, but it is {a_type(value)}.",
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


def _as_float64(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().as_subclass(torch.Tensor).to(torch.float64).cpu()


def _matches(actual: torch.Tensor, candidate: Any, atol: float, rtol: float) -> bool:
    """Whether ``actual`` equals ``candidate`` within tolerance (NaN matching NaN)."""
    if not isinstance(candidate, torch.Tensor) or actual.shape != candidate.shape:
        return False
    return bool(
        torch.allclose(
            _as_float64(actual), _as_float64(candidate), atol=atol, rtol=rtol, equal_nan=True
        )
    )


def _mistake_hint(
    actual: torch.Tensor, mistakes: Sequence[TensorMistake], atol: float, rtol: float
) -> str | None:
    for produced, hint in mistakes:
        if callable(produced):
            try:
                produced = produced()
            except Exception:  # noqa: BLE001 - a mistake that cannot apply to this input
                continue
        if _matches(actual, produced, atol, rtol):
            return hint
    return None


def expect_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    name: str = "result",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str | None = None,
    mistakes: Sequence[TensorMistake] = (),
) -> None:
    """Same shape, finite, and values within tolerance; reports the worst index if not.

    When the answer is wrong and equals what one of ``mistakes`` produces, that mistake's hint
    replaces ``hint``.
    """
    tensor = expect_tensor(actual, name=name)
    specific = None
    if tuple(tensor.shape) != tuple(expected.shape) or not torch.allclose(
        _as_float64(tensor), _as_float64(expected), atol=atol, rtol=rtol
    ):
        specific = _mistake_hint(tensor, mistakes, atol, rtol)
    expect_shape(tensor, expected.shape, name=name, hint=specific)
    actual_t = _as_float64(tensor)
    expected_t = _as_float64(expected)
    if not torch.isfinite(actual_t).all():
        bad = tuple(int(i) for i in (~torch.isfinite(actual_t)).nonzero()[0])
        where = (
            f"is {actual_t.item()}"
            if actual_t.numel() == 1
            else f"contains NaN or inf (first at index {bad})"
        )
        raise ExerciseFailure(
            f"{name} {where}.",
            hint=specific
            or hint
            or "A softmax over a row with only -inf, or a division by zero, gives NaN.",
        )
    diff = (actual_t - expected_t).abs()
    allowed = atol + rtol * expected_t.abs()
    if (diff > allowed).any() and diff.numel() == 1:
        raise ExerciseFailure(
            f"{name} is {actual_t.item():.6g}, expected {expected_t.item():.6g}.",
            hint=specific or hint,
        )
    if (diff > allowed).any():
        worst = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
        raise ExerciseFailure(
            f"{name} differs from the reference: at index {worst} you have "
            f"{actual_t[worst].item():.6g}, expected {expected_t[worst].item():.6g} "
            f"({int((diff > allowed).sum())} of {diff.numel()} values are off).",
            hint=specific or hint,
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


def as_number(
    value: Any, *, name: str = "answer", example: str = "answer = 0.25", hint: str | None = None
) -> float:
    """The answer as a float: a Python or NumPy number, or a one-element tensor (not a bool)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        return float(value.item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise ExerciseFailure(
        f"{name} should be a number, but it is {a_type(value)} ({shown}).",
        hint=hint or f"Use a number, without quotes, e.g. {example}.",
    )


def show_number(value: float) -> str:
    """A number as a learner would write it: 48 rather than 48.0, 3.4e+07 only when huge."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def expect_number(
    value: Any,
    expected: float,
    *,
    name: str = "answer",
    rel_tol: float = 1e-6,
    abs_tol: float = 1e-12,
    hint: str | None = None,
    mistakes: Sequence[NumberMistake] = (),
    example: str = "answer = 0.25",
) -> float:
    """A number equal to ``expected`` within tolerance; a known mistake gets its own hint."""
    got = as_number(value, name=name, example=example)
    if not math.isfinite(got):
        raise ExerciseFailure(f"{name} is {got}, not a finite number.", hint=hint)
    if math.isclose(got, expected, rel_tol=rel_tol, abs_tol=abs_tol):
        return got
    near = [
        (abs(got - produced), mistake_hint)
        for produced, mistake_hint in mistakes
        if math.isclose(got, produced, rel_tol=max(rel_tol, 1e-6), abs_tol=abs_tol)
    ]
    if near:
        raise ExerciseFailure(f"{name} = {show_number(got)} is not right.", hint=min(near)[1])
    raise ExerciseFailure(f"{name} = {show_number(got)} is not right.", hint=hint)


def expect_integer(value: Any, *, name: str = "answer", example: str = "answer = 5") -> int:
    """An integral number (2 or 2.0; not 2.5, not "2", not True)."""
    got = as_number(value, name=name, example=example)
    if not got.is_integer():
        raise ExerciseFailure(
            f"{name} = {show_number(got)} is not a whole number.",
            hint=f"The answer is a whole number: give it exactly, e.g. {example}.",
        )
    return int(got)


def expect_signature(answer: Any, call: str, define: str, *args: Any, **kwargs: Any) -> None:
    """Fail with a hint when ``answer`` cannot be called with ``args`` / ``kwargs`` (wrong
    parameters), instead of a TypeError that would read like a problem in the package."""
    try:
        signature = inspect.signature(answer)
    except (TypeError, ValueError):  # a callable without a signature: just call it
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        raise ExerciseFailure(
            f"your function cannot be called as {call}: {err}.",
            hint=f"Define it with these parameters: {define}.",
        ) from None


def expect_scalar(value: Any, name: str = "loss") -> torch.Tensor:
    """``value`` as a 0-d tensor; a tensor with more than one element fails (e.g. a loss per
    example that was never reduced)."""
    tensor = expect_tensor(value, name=name)
    expect_true(
        tensor.numel() == 1,
        f"{name} has shape {tuple(tensor.shape)}: it should be one number.",
        hint="Reduce over the batch with .mean() so the loss is a scalar.",
    )
    return tensor.reshape(())


def _is_token_id(value: Any) -> bool:
    """An int (a Python or NumPy integer, or a one-element integer tensor), not a bool."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_floating_point() and value.dtype != torch.bool
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def expect_token_ids(value: Any, *, name: str, hint: str) -> list[int]:
    """``value`` as a list of token ids: a list/tuple of integers or a 1-D integer tensor."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.is_floating_point() or value.dtype == torch.bool:
            raise ExerciseFailure(
                f"{name} is a tensor of shape {tuple(value.shape)} and dtype {value.dtype}; "
                "expected a 1-D sequence of token ids.",
                hint="Return plain lists of ints (or 1-D integer tensors).",
            )
        return [int(v) for v in value.tolist()]
    if isinstance(value, list | tuple) and all(_is_token_id(v) for v in value):
        return [int(v) for v in value]
    raise ExerciseFailure(
        f"{name} should be a list of token ids (ints), but it is {a_type(value)}"
        + (f" holding {a_type(value[0])}" if isinstance(value, list | tuple) and value else "")
        + ".",
        hint=hint,
    )
