"""The registry of exercises (with their checks) and quiz questions, filled by ``nbNN`` modules."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

CheckFn = Callable[[Any], None]


class ExerciseFailure(Exception):
    """Raised by a check when the learner's answer is wrong; carries a hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Exercise:
    """One exercise: what it asks, its check, and the answers the check is tested against.

    ``reference`` is a correct answer in the form the learner gives it (the function, or the
    number); ``also_correct`` maps a name to other answers the check must accept (an exact count
    beside its usual approximation, an older form of the question); ``wrong_answers`` maps a
    name to a plausible mistake that the check must reject with a hint
    (``tests/test_exercise_wrong_answers.py`` verifies all three for every exercise).
    """

    id: str
    notebook: str
    title: str
    asks: str
    difficulty: int  # 1 easy .. 3 hard
    minutes: int
    check: CheckFn = field(repr=False)
    reference: Any = field(default=None, repr=False, compare=False)
    wrong_answers: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    also_correct: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )


@dataclass(frozen=True)
class QuizQuestion:
    """A multiple-choice question; ``answer`` is the index of the right option.

    ``feedback``, when given, has one entry per option: for each wrong option, why it is wrong
    (the misconception behind it), shown to a learner who picks it; the right option's entry
    may be empty, since ``explanation`` covers it.
    """

    id: str
    notebook: str
    question: str
    options: tuple[str, ...]
    answer: int
    explanation: str
    feedback: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.feedback:
            return
        if len(self.feedback) != len(self.options):
            raise ValueError(
                f"{self.id}: feedback has {len(self.feedback)} entries for "
                f"{len(self.options)} options; give one per option ('' for the right one)."
            )
        empty = [
            f"({'abcdefgh'[i]})"
            for i, text in enumerate(self.feedback)
            if i != self.answer and not text.strip()
        ]
        if empty:
            raise ValueError(
                f"{self.id}: the feedback of wrong option {', '.join(empty)} is empty; say why "
                "that option is wrong."
            )


_EXERCISES: dict[str, Exercise] = {}
_QUIZ: dict[str, QuizQuestion] = {}
_discovered = False


def exercise(
    exercise_id: str,
    *,
    notebook: str,
    title: str,
    asks: str,
    difficulty: int = 1,
    minutes: int = 10,
    reference: Any = None,
    wrong_answers: Mapping[str, Any] | None = None,
    also_correct: Mapping[str, Any] | None = None,
) -> Callable[[CheckFn], CheckFn]:
    """Register the decorated function as the check of ``exercise_id``.

    ``reference`` is a correct answer as the learner would give it; ``wrong_answers`` names
    the common mistakes (name -> answer) that the check must reject, each with a hint;
    ``also_correct`` names other answers it must accept. See :class:`Exercise`.
    """
    if not 1 <= difficulty <= 3:
        raise ValueError("difficulty is 1 (easy), 2 (medium) or 3 (hard).")
    if reference is None and (wrong_answers or also_correct):
        raise ValueError(f"Exercise {exercise_id!r}: wrong or extra answers need a reference.")

    def register(fn: CheckFn) -> CheckFn:
        if exercise_id in _EXERCISES and _EXERCISES[exercise_id].check is not fn:
            raise ValueError(f"Exercise id {exercise_id!r} is registered twice.")
        _EXERCISES[exercise_id] = Exercise(
            exercise_id,
            notebook,
            title,
            asks,
            difficulty,
            minutes,
            fn,
            reference=reference,
            wrong_answers=MappingProxyType(dict(wrong_answers or {})),
            also_correct=MappingProxyType(dict(also_correct or {})),
        )
        return fn

    return register


def quiz_question(
    question_id: str,
    *,
    notebook: str,
    question: str,
    options: list[str],
    answer: int,
    explanation: str,
    feedback: list[str] | None = None,
) -> QuizQuestion:
    """Register a multiple-choice question; ``answer`` is the index of the right option.

    ``feedback`` gives, per option, why that option is wrong ('' for the right one); see
    :class:`QuizQuestion`.
    """
    if not 0 <= answer < len(options):
        raise ValueError(
            f"{question_id}: answer index {answer} is not among {len(options)} options."
        )
    q = QuizQuestion(
        question_id,
        notebook,
        question,
        tuple(options),
        answer,
        explanation,
        feedback=tuple(feedback or ()),
    )
    _QUIZ[question_id] = q
    return q


def discover() -> None:
    """Import every ``coursekit.exercises.nbNN`` module so that its checks register."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("coursekit.exercises")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("nb"):
            importlib.import_module(f"coursekit.exercises.{info.name}")
    _discovered = True


def get_exercise(exercise_id: str) -> Exercise:
    discover()
    try:
        return _EXERCISES[exercise_id]
    except KeyError:
        known = ", ".join(sorted(_EXERCISES)) or "none"
        raise KeyError(f"No exercise {exercise_id!r}; known exercises: {known}.") from None


def all_exercises() -> list[Exercise]:
    discover()
    return sorted(_EXERCISES.values(), key=lambda e: (e.notebook, e.id))


def all_quiz_questions() -> list[QuizQuestion]:
    discover()
    return sorted(_QUIZ.values(), key=lambda q: (q.notebook, q.id))
