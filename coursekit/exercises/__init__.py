"""Exercises with self-checks, quizzes and progress for every notebook.

>>> from coursekit.exercises import check, show_quiz, show_progress
>>> check("00.1", my_answer)
"""

from __future__ import annotations

import sys

from coursekit.exercises.checking import check
from coursekit.exercises.quiz import answer_quiz, show_quiz
from coursekit.exercises.registry import all_exercises, all_quiz_questions
from coursekit.progress import Catalogue, progress_table


def progress_catalogue() -> Catalogue:
    """The registered exercises and quiz questions, for :mod:`coursekit.progress` to count against.

    A registry that fails to load (a broken ``nbNN`` module) gives an empty catalogue and one
    message, so that the progress table still shows instead of a traceback.
    """
    try:
        return Catalogue.of(all_exercises(), all_quiz_questions())
    except Exception as exc:  # noqa: BLE001 - a broken nbNN module must not hide progress
        print(
            f"coursekit: could not load the exercise registry ({type(exc).__name__}: {exc}).",
            file=sys.stderr,
        )
        return Catalogue()


def show_progress(notebook: str | None = None) -> None:
    """Print the exercises passed and quiz answers correct (for one notebook, or all)."""
    print(progress_table(progress_catalogue(), notebook))


__all__ = ["answer_quiz", "check", "progress_catalogue", "show_progress", "show_quiz"]
