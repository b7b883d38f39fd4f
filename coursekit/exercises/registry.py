"""The registry of exercises (with their checks) and quiz questions, filled by ``nbNN`` modules."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
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
    id: str
    notebook: str
    title: str
    asks: str
    difficulty: int  # 1 easy .. 3 hard
    minutes: int
    check: CheckFn = field(repr=False)


@dataclass(frozen=True)
class QuizQuestion:
    id: str
    notebook: str
    question: str
    options: tuple[str, ...]
    answer: int
    explanation: str


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
) -> Callable[[CheckFn], CheckFn]:
    """Register the decorated function as the check of ``exercise_id``."""
    if not 1 <= difficulty <= 3:
        raise ValueError("difficulty is 1 (easy), 2 (medium) or 3 (hard).")

    def register(fn: CheckFn) -> CheckFn:
        if exercise_id in _EXERCISES and _EXERCISES[exercise_id].check is not fn:
            raise ValueError(f"Exercise id {exercise_id!r} is registered twice.")
        _EXERCISES[exercise_id] = Exercise(
            exercise_id, notebook, title, asks, difficulty, minutes, fn
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
) -> QuizQuestion:
    """Register a multiple-choice question; ``answer`` is the index of the right option."""
    if not 0 <= answer < len(options):
        raise ValueError(
            f"{question_id}: answer index {answer} is not among {len(options)} options."
        )
    q = QuizQuestion(question_id, notebook, question, tuple(options), answer, explanation)
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
