"""``check``: run an exercise's reference checks and explain the outcome to the learner."""

from __future__ import annotations

import numbers
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coursekit import progress
from coursekit.exercises.registry import Exercise, ExerciseFailure, get_exercise

STRICT_ENV = "COURSEKIT_STRICT_CHECKS"
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip() not in ("", "0")


def _learner_frame(exc: BaseException) -> str | None:
    """Where in the learner's code (outside coursekit and torch) the exception was raised."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(_PACKAGE_DIR) and "site-packages" not in f.filename
    ]
    if not frames:
        return None
    last = frames[-1]
    where = (
        "your cell"
        if last.filename.startswith("<") or "ipykernel" in last.filename
        else Path(last.filename).name
    )
    return (
        f"{where}, line {last.lineno}: {last.line}" if last.line else f"{where}, line {last.lineno}"
    )


def _expect_kind(ex: Exercise, answer: Any) -> None:
    """Fail early, with a hint, when the answer is not the kind of thing the exercise wants.

    A function where a number is asked (or the reverse) would otherwise make the check itself
    raise, and the learner would see a message about coursekit instead of one about the answer.
    """
    reference = ex.reference
    if reference is None:
        return
    if callable(reference) and not callable(answer):
        raise ExerciseFailure(
            f"your answer should be a function, but it is a {type(answer).__name__}.",
            hint=f"Pass the function itself, without calling it: check({ex.id!r}, my_function), "
            f"not check({ex.id!r}, my_function(...)).",
        )
    if isinstance(reference, numbers.Number | str) and callable(answer):
        kind = "a number" if isinstance(reference, numbers.Number) else "a letter"
        raise ExerciseFailure(
            f"your answer should be {kind}, but it is a function.",
            hint="Set `answer` to the value itself in the cell above, run it, then this cell.",
        )


def _explain(exc: BaseException) -> tuple[str, str | None]:
    """(what went wrong, hint) for an exception raised while checking."""
    if isinstance(exc, ExerciseFailure):
        return exc.message, exc.hint
    if isinstance(exc, NotImplementedError):
        return (
            "not implemented yet.",
            "Replace `raise NotImplementedError` with your solution, run that cell, then this one.",
        )
    where = _learner_frame(exc)
    if where is None:
        return (
            f"the check itself failed with {type(exc).__name__}: {exc}.",
            "This looks like a problem in coursekit, not in your code: please report it.",
        )
    return (
        f"your code raised {type(exc).__name__}: {exc}",
        f"It happened in {where}. Fix that line and run both cells again.",
    )


@dataclass(frozen=True)
class Outcome:
    """What :func:`evaluate` found: a pass, or what is wrong and a hint."""

    passed: bool
    message: str = ""
    hint: str | None = None


def evaluate(ex: Exercise, answer: Any) -> Outcome:
    """Run the check of ``ex`` on ``answer`` without printing or recording anything."""
    if answer is None:
        return Outcome(False, "no answer yet.", "Replace `None` with your answer and run the cell.")
    try:
        _expect_kind(ex, answer)
        ex.check(answer)
    except Exception as exc:  # noqa: BLE001 - every failure is explained, never re-raised
        message, hint = _explain(exc)
        return Outcome(False, message, hint)
    return Outcome(True)


def check(
    exercise_id: str, answer: Any, *, strict: bool | None = None, record: bool = True
) -> bool:
    """Check ``answer`` for exercise ``exercise_id``: print a pass, or what is wrong and a hint.

    Returns True on a pass. Never lets a traceback from inside coursekit reach the learner.
    With ``COURSEKIT_STRICT_CHECKS=1`` (the notebook tests) a failure raises AssertionError;
    ``strict`` overrides that, and ``record=False`` keeps the attempt out of your progress.
    """
    strict = _strict() if strict is None else strict
    try:
        ex = get_exercise(exercise_id)
    except KeyError as err:
        print(f"✗ {err.args[0]}")
        if strict:
            raise AssertionError(err.args[0]) from None
        return False
    outcome = evaluate(ex, answer)
    if record:
        progress.record_exercise(ex.notebook, ex.id, outcome.passed)
    if outcome.passed:
        print(f"✓ Exercise {ex.id} ({ex.title}): passed.")
        return True
    print(f"✗ Exercise {ex.id} ({ex.title}): {outcome.message}")
    if outcome.hint:
        print(f"  Hint: {outcome.hint}")
    if strict:
        raise AssertionError(f"Exercise {ex.id} failed its check: {outcome.message}")
    return False
