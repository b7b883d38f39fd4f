"""Notebook 00's exercises: every registered wrong answer gets its own hint, and the training
loop and ablation checks agree with PyTorch's own optimizer."""

from __future__ import annotations

import pytest
import torch
from exercise_checks import assert_hint_table_covers_the_notebook, assert_wrong_answer_gets_its_hint

from coursekit.exercises import nb00
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import get_exercise

#: (exercise, registered wrong answer, what its hint must say)
OWN_HINTS: list[tuple[str, str, str]] = [
    ("00.1", "multiplications only, n*k*m", "multiplications only"),
    ("00.1", "wrong dimension, 2*n*k*k", "n*m outputs"),
    ("00.1", "outputs only, 2*n*m", "2 operations per output"),
    ("00.1", "one addition too many, n*m*(2k+1)", "k-1 additions, not k+1"),
    ("00.1", "mixes the two conventions", "pick ONE formula"),
    ("00.2", "ignores the temperature", "no effect"),
    ("00.2", "multiplies by T", "do not multiply"),
    ("00.2", "softmax over the first dimension", "last dimension"),
    ("00.2", "no max subtraction (overflows)", "overflows"),
    ("00.2", "hard-codes float32", "dtype"),
    ("00.3", "no zero_grad (gradients accumulate)", "never reset"),
    ("00.3", "gradient ascent (+ lr * grad)", "uphill"),
    ("00.3", "loss recorded after the update", "one step ahead"),
    ("00.3", "sum of squares instead of the mean", "MEAN squared error"),
    ("00.4", "the first loss instead of the last", "START"),
    ("00.4", "the best loss of the run instead of the last", "not the best one"),
    ("00.4", "the slow rate called too large", "just slowly"),
    ("00.4", "no rate too large", "diverged"),
]


def test_own_hints_list_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("00", OWN_HINTS)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)


def _fit_line_with_sgd(x: torch.Tensor, y: torch.Tensor, lr: float, steps: int) -> list[float]:
    """The loop written with torch.optim.SGD: an independent reference for the check."""
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.SGD([w, b], lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((w * x + b - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_the_loop_check_accepts_torch_optim_sgd_and_a_tensor_of_losses() -> None:
    ex = get_exercise("00.3")
    assert evaluate(ex, _fit_line_with_sgd).passed
    assert evaluate(ex, lambda *a: torch.tensor(_fit_line_with_sgd(*a))).passed
    outcome = evaluate(ex, lambda *a: _fit_line_with_sgd(*a)[:-1])
    assert not outcome.passed and "list of" in outcome.message


def test_the_ablation_reference_matches_sgd_and_only_the_largest_rate_diverges() -> None:
    x, y = nb00.line_data()
    finals, too_large = get_exercise("00.4").reference
    for lr in nb00.ABLATION_RATES:
        sgd = _fit_line_with_sgd(x, y, lr, nb00.ABLATION_STEPS)
        assert finals[lr] == pytest.approx(sgd[-1], rel=1e-4)
    assert too_large == [1.0]
    assert max(finals.values()) > 1e6 and finals[0.01] > 5 * finals[0.1]
    assert evaluate(get_exercise("00.4"), (finals, tuple(too_large))).passed
    assert not evaluate(get_exercise("00.4"), finals).passed
