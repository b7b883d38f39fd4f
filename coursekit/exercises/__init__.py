"""Exercises with self-checks, quizzes and progress for every notebook.

>>> from coursekit.exercises import check, show_quiz, show_progress
>>> check("00.1", my_answer)
"""

from __future__ import annotations

from coursekit.exercises.checking import check
from coursekit.exercises.quiz import answer_quiz, show_quiz


def show_progress(notebook: str | None = None) -> None:
    """Print the exercises passed and quiz answers correct (for one notebook, or all)."""
    from coursekit.progress import progress_table

    print(progress_table(notebook))


__all__ = ["answer_quiz", "check", "show_progress", "show_quiz"]
