"""``check``: run an exercise's reference checks and explain the outcome to the learner.

An answer is **not done yet** (reported as such, never as a wrong answer, and never recorded as an
attempt) when it is ``None``, a :class:`NotDone` placeholder, or a function that raises
:class:`NotImplementedError` when the check calls it. The learner versions made by
``coursekit student`` put exactly such placeholders where the solutions were (see
:mod:`coursekit.exercises.student`): ``answer = NotDone("02.4")``, and for a function its
signature with ``raise NotImplementedError(not_done_message("02.1"))`` as its body.

Strict mode (``COURSEKIT_STRICT_CHECKS=1``, set when CI runs the solution notebooks) turns a
failed check into an AssertionError. A learner version's own placeholders are the exception:
they are reported as not done and never raise, in any mode, so Run All on a learner version
always reaches the end. Any other not-done answer (``None``, a bare ``NotImplementedError``) does
raise in strict mode: in a solution notebook it means a solution is missing.

:func:`answer_or_reference` lets the code after an exercise go on with the learner's answer once
it passes, and with the package's reference implementation until then.
"""

from __future__ import annotations

import numbers
import os
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from coursekit import progress
from coursekit.exercises.registry import Exercise, ExerciseFailure, get_exercise

STRICT_ENV = "COURSEKIT_STRICT_CHECKS"
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


#: The message of the ``NotImplementedError`` a learner version's function stub raises.
NOT_DONE_MESSAGE = "Exercise {id} is not done yet: write your code in place of this line."
_NOT_DONE_PATTERN = re.compile(r"^Exercise (?P<id>\S+) is not done yet\b")


def not_done_message(exercise_id: str) -> str:
    """The message of a learner version's ``raise NotImplementedError(...)`` for ``exercise_id``."""
    return NOT_DONE_MESSAGE.format(id=exercise_id)


class NotDone:
    """The placeholder a learner version assigns where an answer goes: ``answer = NotDone("02.4")``.

    :func:`check` reports it as "not done yet" (never as a wrong answer, never raising). It is
    falsy, and its repr says which exercise is waiting for an answer.
    """

    __slots__ = ("exercise_id",)

    def __init__(self, exercise_id: str | None = None) -> None:
        self.exercise_id = exercise_id

    def __repr__(self) -> str:
        return f"NotDone({self.exercise_id!r})" if self.exercise_id else "NotDone()"

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotDone) and other.exercise_id == self.exercise_id

    def __hash__(self) -> int:
        return hash((NotDone, self.exercise_id))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (no cycles)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _not_implemented(exc: BaseException) -> NotImplementedError | None:
    """The NotImplementedError the learner's own code raised behind ``exc``, if any.

    A check may wrap what the answer raised, so the whole chain is searched. One raised inside a
    library (PyTorch's "not implemented for the MPS device") is a real error, not a gap.
    """
    for e in _causes(exc):
        if isinstance(e, NotImplementedError):
            frames = traceback.extract_tb(e.__traceback__)
            innermost = frames[-1].filename if frames else ""
            if "site-packages" not in innermost and not innermost.startswith(_PACKAGE_DIR):
                return e
    return None


def is_placeholder(answer: Any) -> bool:
    """Whether ``answer`` is a learner version's placeholder value (:class:`NotDone`)."""
    return isinstance(answer, NotDone)


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
    """What :func:`evaluate` found: a pass, a wrong answer (what is wrong and a hint), or an
    answer that is not done yet (``not_done``; ``placeholder`` when it is a learner version's
    own placeholder, which never fails a notebook)."""

    passed: bool
    message: str = ""
    hint: str | None = None
    not_done: bool = False
    placeholder: bool = False


_NOT_DONE_HINT = (
    "Write your code in the exercise cell above (in place of the line that says it is not "
    "done), run that cell, then this one."
)


def evaluate(ex: Exercise, answer: Any) -> Outcome:
    """Run the check of ``ex`` on ``answer`` without printing or recording anything."""
    if answer is None:
        return Outcome(
            False,
            "not done yet: the answer is still None.",
            "Replace `None` with your answer, run that cell, then this one.",
            not_done=True,
        )
    if isinstance(answer, NotDone):
        return Outcome(False, "not done yet.", _NOT_DONE_HINT, not_done=True, placeholder=True)
    try:
        _expect_kind(ex, answer)
        ex.check(answer)
    except Exception as exc:  # noqa: BLE001 - every failure is explained, never re-raised
        missing = _not_implemented(exc)
        if missing is not None:
            stub = bool(_NOT_DONE_PATTERN.match(str(missing)))
            return Outcome(False, "not done yet.", _NOT_DONE_HINT, not_done=True, placeholder=stub)
        message, hint = _explain(exc)
        return Outcome(False, message, hint)
    return Outcome(True)


def check(
    exercise_id: str, answer: Any, *, strict: bool | None = None, record: bool = True
) -> bool:
    """Check ``answer`` for exercise ``exercise_id``: print a pass, or what is wrong and a hint.

    Returns True on a pass. Never lets a traceback from inside coursekit reach the learner.
    An answer that is not done yet prints "not done yet" and is not recorded as an attempt.
    With ``COURSEKIT_STRICT_CHECKS=1`` (the notebook tests) a failure raises AssertionError,
    except for a learner version's placeholder (see the module docstring); ``strict``
    overrides the variable, and ``record=False`` keeps the attempt out of your progress.
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
    if record and not outcome.not_done:
        progress.record_exercise(ex.notebook, ex.id, outcome.passed)
    if outcome.passed:
        print(f"✓ Exercise {ex.id} ({ex.title}): passed.")
        return True
    if outcome.not_done:
        print(f"○ Exercise {ex.id} ({ex.title}): {outcome.message}")
        if outcome.hint:
            print(f"  Hint: {outcome.hint}")
        if strict and not outcome.placeholder:
            raise AssertionError(f"Exercise {ex.id} is not done: {outcome.message}")
        return False
    print(f"✗ Exercise {ex.id} ({ex.title}): {outcome.message}")
    if outcome.hint:
        print(f"  Hint: {outcome.hint}")
    if strict:
        raise AssertionError(f"Exercise {ex.id} failed its check: {outcome.message}")
    return False


def answer_or_reference(exercise_id: str, answer: Any) -> Any:
    """``answer`` if it passes the check of ``exercise_id``, else the package's reference.

    For the code after an exercise: it goes on with the learner's function once it passes, and
    with coursekit's implementation until then, so a notebook runs to the end either way. Prints
    one line when it falls back; records nothing, and leaves the random number generators as
    they were (the check draws its own test data).
    """
    ex = get_exercise(exercise_id)
    if ex.reference is None:
        raise ValueError(
            f"Exercise {exercise_id!r} has no reference implementation to fall back on."
        )
    with torch.random.fork_rng(devices=[]):
        outcome = evaluate(ex, answer)
    if outcome.passed:
        return answer
    state = "is not done yet" if outcome.not_done else "does not pass its check yet"
    print(f"(Exercise {ex.id} {state}: the code below uses coursekit's implementation.)")
    return ex.reference
