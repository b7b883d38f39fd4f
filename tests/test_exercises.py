"""coursekit.exercises: checks explain failures, learner versions, quizzes."""

from __future__ import annotations

import html
from collections import Counter

import nbformat
import pytest
import torch

from coursekit.exercises import answer_quiz, check, checking
from coursekit.exercises.checking import NotDone, answer_or_reference, evaluate, not_done_message
from coursekit.exercises.quiz import _question_widget, quiz_feedback
from coursekit.exercises.registry import (
    QuizQuestion,
    all_exercises,
    all_quiz_questions,
    get_exercise,
    quiz_question,
)
from coursekit.exercises.student import SolutionMarkerError, make_student_notebook, strip_solutions


def good_softmax(x, t):
    return torch.softmax(x / t, dim=-1)


def test_pass_prints_and_returns_true(capsys):
    assert check("00.2", good_softmax, strict=False) is True
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (lambda x, t: torch.softmax(x, dim=-1), "differs from the reference: at index"),
        (lambda x, t: torch.softmax(x / t, dim=0), "differs from the reference"),
        (lambda x, t: (x / t).exp() / (x / t).exp().sum(-1, keepdim=True), "NaN or inf"),
        (lambda x, t: torch.softmax(x / t, dim=-1)[0], "has shape (7,), expected (3, 7)"),
        (lambda x, t: torch.softmax(x / t, dim=-1).tolist(), "should be a torch.Tensor"),
        (lambda x, t: torch.softmax(x / t, dim=-1).float().double(), "dtype"),
    ],
)
def test_wrong_answers_are_explained(answer, expected, capsys):
    assert check("00.2", answer, strict=False) is False
    out = capsys.readouterr().out
    assert expected in out and "Traceback" not in out


def test_learner_exception_points_at_the_learner_line(capsys):
    def broken(x, t):
        return x.no_such_method()

    assert check("00.2", broken, strict=False) is False
    out = capsys.readouterr().out
    assert "your code raised AttributeError" in out
    assert "x.no_such_method()" in out and "Traceback" not in out


def test_not_implemented_and_none_are_not_done(capsys):
    def todo(x, t):
        raise NotImplementedError

    assert not check("00.2", todo, strict=False)
    assert not check("00.2", None, strict=False)
    out = capsys.readouterr().out
    assert out.count("not done yet") == 2 and "still None" in out and "✗" not in out


def _stub(exercise_id):
    def stub(*args, **kwargs):
        raise NotImplementedError(not_done_message(exercise_id))

    return stub


@pytest.mark.parametrize("strict", [False, True])
def test_learner_placeholders_are_not_done_and_never_raise(strict, capsys, monkeypatch):
    """A learner version's placeholders print "not done yet", even in strict mode."""
    monkeypatch.setenv("COURSEKIT_STRICT_CHECKS", "1" if strict else "0")
    assert check("02.2", NotDone("02.2")) is False
    assert check("02.1", _stub("02.1")) is False
    out = capsys.readouterr().out
    assert out.count("○ Exercise") == 2 and out.count("not done yet") == 2
    assert "✗" not in out and "Traceback" not in out


def test_other_not_done_answers_raise_in_strict_mode(monkeypatch):
    """In a solution notebook (strict), None or a bare NotImplementedError is a missing solution."""
    monkeypatch.setenv("COURSEKIT_STRICT_CHECKS", "1")

    def bare(x, t):
        raise NotImplementedError

    for answer in (None, bare):
        with pytest.raises(AssertionError, match="not done"):
            check("00.2", answer)


def test_not_done_is_not_recorded_as_an_attempt(monkeypatch):
    recorded = []
    monkeypatch.setattr(checking.progress, "record_exercise", lambda *args: recorded.append(args))
    check("02.2", NotDone("02.2"), strict=False)
    check("02.1", _stub("02.1"), strict=False)
    assert recorded == []
    check("02.2", (2, 1), strict=False)
    assert recorded == [("02", "02.2", True)]


def test_a_library_not_implemented_error_is_a_real_error():
    """PyTorch's "not implemented for this device" is an error in the code, not a gap."""

    def uses_a_missing_op(x, t):
        return torch.ops.aten.no_such_operator_anywhere(x)  # raises inside torch, not here

    outcome = evaluate(get_exercise("00.2"), uses_a_missing_op)
    assert not outcome.passed and not outcome.not_done


@pytest.mark.parametrize("exercise", all_exercises(), ids=lambda e: e.id)
def test_every_check_reports_a_placeholder_as_not_done(exercise):
    """Whatever the check does with the answer (call it, wrap its errors), a learner stub or
    placeholder comes out as "not done", never as a wrong answer or a crash."""
    answer = _stub(exercise.id) if callable(exercise.reference) else NotDone(exercise.id)
    outcome = evaluate(exercise, answer)
    assert outcome.not_done and outcome.placeholder and not outcome.passed, outcome
    assert evaluate(exercise, NotDone(exercise.id)).not_done


def test_not_done_placeholder_is_falsy_with_a_clear_repr():
    assert not NotDone("02.4") and repr(NotDone("02.4")) == "NotDone('02.4')"
    assert NotDone("02.4") == NotDone("02.4") != NotDone("02.5")


def test_answer_or_reference(capsys):
    ex = get_exercise("02.1")
    assert answer_or_reference("02.1", _stub("02.1")) is ex.reference
    assert "not done yet" in capsys.readouterr().out
    assert answer_or_reference("02.1", ex.wrong_answers["no nonlinearity"]) is ex.reference
    assert "does not pass" in capsys.readouterr().out

    def mine(*args):
        return ex.reference(*args)

    before = torch.random.get_rng_state()
    assert answer_or_reference("02.1", mine) is mine
    assert torch.equal(torch.random.get_rng_state(), before)  # the check left no trace
    assert capsys.readouterr().out == ""


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv("COURSEKIT_STRICT_CHECKS", "1")
    with pytest.raises(AssertionError, match="00.1"):
        check("00.1", lambda n, k, m: n * k * m)
    assert check("00.1", lambda n, k, m: 2 * n * k * m)


def test_unknown_exercise(capsys):
    assert check("99.9", 1, strict=False) is False
    assert "known exercises" in capsys.readouterr().out


def test_registry_is_consistent():
    exercises = all_exercises()
    assert len({e.id for e in exercises}) == len(exercises)
    for e in exercises:
        assert e.id.startswith(e.notebook + ".") and 1 <= e.difficulty <= 3 and e.minutes > 0
    for q in all_quiz_questions():
        assert q.id.startswith(q.notebook + ".q") and len(q.options) >= 2 and q.explanation


def test_answer_quiz(capsys):
    assert answer_quiz("00.q3", "c") is True
    assert answer_quiz("00.q3", 0) is False
    out = capsys.readouterr().out
    assert "the answer is (c)" in out
    assert get_quiz_question("00.q3").feedback[0] in out  # why (a) is wrong


def get_quiz_question(question_id):
    return next(q for q in all_quiz_questions() if q.id == question_id)


EARLY_NOTEBOOKS = ("00", "01", "02", "03", "04", "05")


def test_every_wrong_option_of_notebooks_00_to_05_has_its_feedback():
    questions = [q for q in all_quiz_questions() if q.notebook in EARLY_NOTEBOOKS]
    assert {q.notebook for q in questions} == set(EARLY_NOTEBOOKS)
    for q in questions:
        assert len(q.feedback) == len(q.options), q.id
        wrong = [text for i, text in enumerate(q.feedback) if i != q.answer]
        assert all(text.strip().endswith(".") for text in wrong), q.id
        assert len(set(wrong)) == len(wrong), q.id  # each says something of its own


def test_quiz_answers_of_notebooks_00_to_05_are_spread_over_the_options():
    questions = [q for q in all_quiz_questions() if q.notebook in EARLY_NOTEBOOKS]
    counts = Counter(q.answer for q in questions)
    assert max(counts.values()) <= 0.35 * len(questions), counts
    for nb in EARLY_NOTEBOOKS:
        answers = {q.answer for q in questions if q.notebook == nb}
        assert len(answers) > 1, (nb, answers)


def _question(**changes):
    fields = {
        "id": "99.q1",
        "notebook": "99",
        "question": "Which?",
        "options": ("right", "wrong", "also wrong"),
        "answer": 0,
        "explanation": "Because.",
        "feedback": ("", "Why (b) is wrong.", "Why (c) is wrong."),
    }
    return QuizQuestion(**{**fields, **changes})


def test_quiz_question_checks_its_feedback():
    assert _question().feedback[1] == "Why (b) is wrong."
    assert _question(feedback=()).feedback == ()  # feedback is optional
    with pytest.raises(ValueError, match="2 entries for 3 options"):
        _question(feedback=("", "Why (b) is wrong."))
    with pytest.raises(ValueError, match=r"wrong option \(c\) is empty"):
        _question(feedback=("", "Why (b) is wrong.", " "))
    with pytest.raises(ValueError, match=r"99.q2: .*wrong option \(a\)"):
        quiz_question(
            "99.q2",
            notebook="99",
            question="Which?",
            options=["wrong", "right"],
            answer=1,
            explanation="Because.",
            feedback=["", ""],
        )


def test_quiz_feedback_names_the_chosen_wrong_option():
    q = _question()
    assert quiz_feedback(q, 0) == (True, "Correct.", "Because.")
    correct, verdict, detail = quiz_feedback(q, 2)
    assert not correct and verdict == "Not quite: the answer is (a)."
    assert detail == "(c) Why (c) is wrong. Because."
    assert quiz_feedback(_question(feedback=()), 1)[2] == "Because."


def test_quiz_widget_shows_the_feedback_of_the_option_picked():
    pytest.importorskip("ipywidgets")
    q = get_quiz_question("01.q2")
    box = _question_widget(q)
    _, choices, button, message = box.children
    button.click()
    assert "Pick an option first" in message.value
    wrong = (q.answer + 1) % len(q.options)
    choices.value = wrong
    button.click()
    assert f"the answer is ({'abcd'[q.answer]})" in message.value
    assert html.escape(q.feedback[wrong], quote=False) in message.value
    assert all(q.feedback[i] not in message.value for i in range(4) if i not in (wrong, q.answer))
    choices.value = q.answer
    button.click()
    assert "Correct." in message.value and "Not quite" not in message.value


def test_strip_solutions_keeps_indentation_and_the_rest():
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\nprint(f)"
    stripped, count = strip_solutions(source)
    assert count == 1
    assert stripped == (
        "def f(x):\n    y = 1\n"
        '    raise NotImplementedError("This exercise is not done yet: write your code in place '
        'of this line.")\nprint(f)'
    )


@pytest.mark.parametrize(
    "bad",
    [
        "### BEGIN SOLUTION\nx = 1",
        "x = 1\n### END SOLUTION",
        "### BEGIN SOLUTION\n### BEGIN SOLUTION",
    ],
)
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(SolutionMarkerError):
        strip_solutions(bad)


def test_student_notebook_has_no_outputs_or_solutions():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(
        "answer = None\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"
    )
    cell.outputs = [nbformat.v4.new_output("stream", text="42")]
    cell.execution_count = 3
    nb.cells = [cell]
    student, count = make_student_notebook(nb)
    assert count == 1 and "42" not in student.cells[0].source
    assert student.cells[0].outputs == [] and student.cells[0].execution_count is None
    assert nb.cells[0].outputs  # the original is untouched
