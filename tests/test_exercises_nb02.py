"""Notebook 02's exercises (RNN baselines) agree with torch.nn's recurrent layers and with
coursekit.rnn, the pieces they are about."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from exercise_checks import assert_hint_table_covers_the_notebook, assert_wrong_answer_gets_its_hint
from torch import nn

from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import all_exercises, all_quiz_questions, get_exercise
from coursekit.rnn.recall import delayed_recall_accuracy, delayed_recall_batch

pytestmark = pytest.mark.usefixtures("one_thread")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_rnn_baselines.ipynb"

#: Every wrong answer of notebook 02, with words its own hint must contain.
OWN_HINTS: list[tuple[str, str, str]] = [
    ("02.1", "weights not transposed", "needs the transpose"),
    ("02.1", "forgets b_hh", "two biases"),
    ("02.1", "sigmoid instead of tanh", "not sigmoid"),
    ("02.1", "no nonlinearity", "Apply tanh to the sum"),
    ("02.2", "step counts instead of factors, (512, 1)", "not the number of steps"),
    ("02.2", "attention's work instead of its steps, (2, 4)", "WORK grows"),
    ("02.2", "attention grows linearly, (2, 2)", "Not linear either"),
    ("02.2", "the RNN does not grow, (1, 1)", "chain twice as long"),
    ("02.2", "fractions that truncate to (2, 1)", "divide the steps"),
    ("02.2", "a single number", "two numbers"),
    ("02.3", "h0 at every step (h not fed back)", "feed the NEW state back"),
    ("02.3", "states stacked time-first, (T, B, H)", "time-first"),
    ("02.3", "h0 kept among the states, (B, T + 1, H)", "not the initial state h0"),
    ("02.3", "returns the first state instead of the last", "return the LAST one"),
    ("02.4", "gates in the order i, f, o, g", "PyTorch's order"),
    ("02.4", "c_new = f * c + g (no input gate)", "input gate scales the candidate"),
    ("02.4", "h_new = o * c_new (no tanh)", "Squash the cell state"),
    ("02.4", "returns (c_new, h_new)", "order (h_new, c_new)"),
    ("02.5", "more parameters", "More parameters"),
    ("02.5", "sigmoid derivatives", "at most 1/4"),
    ("02.5", "learning rate", "same learning rate"),
    ("02.5", "two letters", "with the quotes"),
    ("02.6", "percentages", "not as percentages"),
    ("02.6", "one run only, no comparison", "ONE factor"),
    ("02.6", "the two runs swapped", "runs look swapped"),
    ("02.6", "the big run at chance (the delay changed too)", "keep delay=8"),
    ("02.6", "a single number", "compares two runs"),
]


def test_own_hints_list_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("02", OWN_HINTS)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)


def test_hints_of_one_exercise_differ() -> None:
    """No two wrong answers of one exercise get the same hint."""
    for ex in all_exercises():
        if ex.notebook != "02":
            continue
        hints = [evaluate(ex, wrong).hint for wrong in ex.wrong_answers.values()]
        assert len(set(hints)) == len(hints), ex.id


def test_difficulty_never_falls_in_notebook_order() -> None:
    """Exercises appear in the notebook in id order, and their difficulty never decreases."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    order = re.findall(r"### Exercise (02\.\d+)", text)
    exercises = sorted((ex for ex in all_exercises() if ex.notebook == "02"), key=lambda e: e.id)
    assert order == [ex.id for ex in exercises]
    difficulties = [ex.difficulty for ex in exercises]
    assert difficulties == sorted(difficulties), difficulties
    assert 3 <= len(exercises) <= 6


def test_rnn_loop_reference_equals_torch_rnn_on_a_longer_sequence() -> None:
    torch.manual_seed(0)
    ref = nn.RNN(3, 5, batch_first=True)
    x, h0 = torch.randn(2, 40, 3), torch.randn(2, 5)
    weights = [
        w.detach()
        for w in ref.parameters()  # W_ih, W_hh, b_ih, b_hh
    ]
    states, last = get_exercise("02.3").reference(x, h0, *weights)
    out, h_n = ref(x, h0[None])
    assert torch.allclose(states, out, atol=1e-6) and torch.allclose(last, h_n[0], atol=1e-6)


def test_rnn_loop_check_reports_a_step_that_is_not_done() -> None:
    def rnn_loop(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("Exercise 02.1 is not done yet")

    assert not evaluate(get_exercise("02.3"), rnn_loop).passed


def test_delayed_recall_batch_targets_are_the_tokens_delay_steps_back() -> None:
    x, y = delayed_recall_batch(4, 10, 3, 8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10)
    assert (y[:, :3] == -100).all() and torch.equal(y[:, 3:], x[:, :7])
    with pytest.raises(ValueError, match="delay"):
        delayed_recall_batch(4, 10, 10, 8, torch.Generator())


def test_delayed_recall_is_easy_at_delay_one_and_deterministic() -> None:
    first = delayed_recall_accuracy(1, hidden=16, steps=150, length=12)
    assert first > 0.9
    assert delayed_recall_accuracy(1, hidden=16, steps=150, length=12) == first


def test_state_ablation_accepts_the_measured_effect_and_rejects_no_effect() -> None:
    ex = get_exercise("02.6")
    assert evaluate(ex, {16: 0.4, 64: 0.85}).passed
    outcome = evaluate(ex, {16: 0.45, 64: 0.5})
    assert not outcome.passed and "hardly better" in outcome.message


def test_quiz_has_four_questions_and_every_wrong_option_is_explained() -> None:
    questions = [q for q in all_quiz_questions() if q.notebook == "02"]
    assert sorted(q.id for q in questions) == [f"02.q{i}" for i in range(1, 5)]
    assert len({q.answer for q in questions}) == 4
    for q in questions:
        assert all(text for i, text in enumerate(q.feedback) if i != q.answer), q.id
