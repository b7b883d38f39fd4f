"""Assertions shared by the per-notebook exercise tests (imported by ``test_exercises_nbNN.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import all_exercises, all_quiz_questions, get_exercise


def assert_hint_table_covers_the_notebook(
    notebook: str, own_hints: Sequence[tuple[str, str, str]]
) -> None:
    """``own_hints`` (exercise id, wrong answer's name, words its hint must contain) lists
    exactly the wrong answers the notebook's exercises register."""
    registered = {
        (ex.id, name)
        for ex in all_exercises()
        if ex.notebook == notebook
        for name in ex.wrong_answers
    }
    assert {(ex_id, name) for ex_id, name, _ in own_hints} == registered


def assert_wrong_answer_gets_its_hint(exercise_id: str, name: str, told: str) -> None:
    """The wrong answer ``name`` of ``exercise_id`` fails with a hint containing ``told``."""
    ex = get_exercise(exercise_id)
    outcome = evaluate(ex, ex.wrong_answers[name])
    assert not outcome.passed and told in (outcome.hint or ""), outcome


def assert_quiz_is_well_formed(notebook: str, n_questions: int = 4) -> None:
    """Questions ``NN.q1..`` with four options each, the right answers spread over the
    positions, and every wrong option explained as ``(a)``..``(d)`` in the explanation."""
    questions = {q.id: q for q in all_quiz_questions() if q.notebook == notebook}
    assert sorted(questions) == [f"{notebook}.q{i}" for i in range(1, n_questions + 1)]
    assert len({q.answer for q in questions.values()}) == min(n_questions, 4)
    assert all(len(q.options) == 4 for q in questions.values())
    unexplained = [
        (q.id, letter)
        for q in questions.values()
        for index, letter in enumerate("abcd")
        if index != q.answer and f"({letter})" not in q.explanation
    ]
    assert not unexplained
