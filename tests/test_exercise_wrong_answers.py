"""Every exercise check passes its reference solution and rejects the common wrong answers.

Each exercise registers, beside its check (``coursekit/exercises/nbNN.py``), a ``reference``
answer in the form a learner gives it, ``also_correct`` answers it must accept, and at least two
``wrong_answers``: plausible mistakes. Here every wrong answer must fail with a hint that
``check()`` prints, and never with a message that blames coursekit or shows a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from coursekit.exercises import check
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import Exercise, all_exercises, get_exercise

EXERCISES = all_exercises()

#: Exercises whose reference and wrong answers are not registered yet, each with the reason.
#: Kept visible on purpose: an exercise listed here is reported, not silently skipped, and the
#: test below fails once it has its answers, so that it leaves this list.
PENDING: dict[str, str] = {}

MIN_WRONG_ANSWERS = 2
COURSEKIT_BLAME = "problem in coursekit"


def _printed(exercise_id: str, answer: Any, capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    passed = check(exercise_id, answer, strict=False, record=False)
    return passed, capsys.readouterr().out


def _cases(kind: str) -> list[Any]:
    return [
        pytest.param(ex.id, name, id=f"{ex.id}-{name}")
        for ex in EXERCISES
        for name in getattr(ex, kind)
    ]


def test_every_exercise_has_a_reference_and_enough_wrong_answers() -> None:
    missing = {
        ex.id: len(ex.wrong_answers)
        for ex in EXERCISES
        if ex.id not in PENDING
        and (ex.reference is None or len(ex.wrong_answers) < MIN_WRONG_ANSWERS)
    }
    assert not missing, (
        f"exercises without a reference or with fewer than {MIN_WRONG_ANSWERS} wrong answers "
        f"(id: wrong answers): {missing}"
    )


def test_pending_list_names_only_unfinished_exercises() -> None:
    for exercise_id, reason in PENDING.items():
        ex = get_exercise(exercise_id)
        assert reason, f"{exercise_id} is pending without a reason"
        assert ex.reference is None or len(ex.wrong_answers) < MIN_WRONG_ANSWERS, (
            f"{exercise_id} now has its answers: remove it from PENDING"
        )


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: ex.id)
def test_reference_passes(exercise: Exercise, capsys: pytest.CaptureFixture[str]) -> None:
    if exercise.id in PENDING:
        pytest.skip(f"{exercise.id} is pending: {PENDING[exercise.id]}")
    passed, out = _printed(exercise.id, exercise.reference, capsys)
    assert passed, out
    assert "passed" in out


@pytest.mark.parametrize(("exercise_id", "name"), _cases("also_correct"))
def test_other_correct_answers_pass(
    exercise_id: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    passed, out = _printed(exercise_id, get_exercise(exercise_id).also_correct[name], capsys)
    assert passed, f"{exercise_id}: '{name}' should pass, got: {out}"


@pytest.mark.parametrize(("exercise_id", "name"), _cases("wrong_answers"))
def test_wrong_answer_is_rejected_with_a_hint(
    exercise_id: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ex = get_exercise(exercise_id)
    answer = ex.wrong_answers[name]
    outcome = evaluate(ex, answer)
    assert not outcome.passed, f"{exercise_id}: the wrong answer '{name}' passes the check"
    assert outcome.hint, f"{exercise_id}: '{name}' is rejected without a hint: {outcome.message}"
    assert COURSEKIT_BLAME not in outcome.hint, f"{exercise_id}: '{name}': {outcome.message}"
    passed, out = _printed(exercise_id, answer, capsys)
    assert not passed
    assert f"✗ Exercise {exercise_id}" in out and f"  Hint: {outcome.hint}" in out
    assert "Traceback" not in out


#: The mistakes this suite was written for, with what the learner must be told.
NAMED_MISTAKES: list[tuple[str, str, str]] = [
    ("00.1", "multiplications only, n*k*m", "multiplications only"),
    ("01.2", "counts a pair once per word (set of pairs)", "counts twice"),
    ("01.4", "indexing weight[ids]", "without indexing"),
    ("02.2", "fractions that truncate to (2, 1)", "rnn_factor = 2.9"),
    ("02.2", "attention's work instead of its steps, (2, 4)", "WORK grows"),
    ("03.1", "scales by sqrt(d_v)", "not by the width of v"),
    ("03.1", "ignores the mask", "Apply the mask"),
    ("03.3", "read off the table's d_k = 64 row, (8, 1)", "d_k = 100"),
    ("05.1", "unbiased variance", "biased variance"),
    ("05.1", "eps outside the square root", "INSIDE the square root"),
    ("05.1", "normalises over the batch (dim 0)", "LAST dimension"),
]


@pytest.mark.parametrize(("exercise_id", "name", "told"), NAMED_MISTAKES)
def test_named_mistakes_get_their_own_hint(exercise_id: str, name: str, told: str) -> None:
    outcome = evaluate(get_exercise(exercise_id), get_exercise(exercise_id).wrong_answers[name])
    assert not outcome.passed
    assert told in f"{outcome.message} {outcome.hint}"


def test_matmul_flops_accepts_the_exact_and_the_rounded_count() -> None:
    ex = get_exercise("00.1")
    assert evaluate(ex, lambda n, k, m: n * m * (2 * k - 1)).passed
    assert evaluate(ex, lambda n, k, m: 2 * n * k * m).passed
    assert evaluate(ex, lambda n, k, m: float(2 * n * k * m)).passed
    hint = evaluate(ex, lambda n, k, m: n * k * m).hint or ""
    assert "k-1 additions" in hint


def _none(*args: Any, **kwargs: Any) -> None:
    return None


#: Answers of the wrong kind: each must be explained as the learner's mistake, never as a
#: failure of the check itself.
ILL_TYPED: list[tuple[str, Any]] = [
    ("an object", object()),
    ("a string", "my answer"),
    ("a function returning None", _none),
    ("a boolean", True),
]


@pytest.mark.parametrize(("kind", "answer"), ILL_TYPED, ids=[k for k, _ in ILL_TYPED])
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: ex.id)
def test_answers_of_the_wrong_kind_are_explained(
    exercise: Exercise, kind: str, answer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    passed, out = _printed(exercise.id, answer, capsys)
    assert not passed, f"{exercise.id} accepts {kind}"
    assert "Hint:" in out, f"{exercise.id}, {kind}: no hint in {out!r}"
    assert COURSEKIT_BLAME not in out and "Traceback" not in out, out


def test_a_learner_exception_points_at_the_learner_code(capsys: pytest.CaptureFixture[str]) -> None:
    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any = None) -> Any:
        return q @ v.transpose(-2, -1)  # a learner's shape error: v is not k

    passed, out = _printed("03.1", attention, capsys)
    assert not passed
    assert "your code raised" in out and "q @ v.transpose(-2, -1)" in out
    assert COURSEKIT_BLAME not in out


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: ex.id)
def test_checks_leave_the_learner_random_state_alone(exercise: Exercise) -> None:
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    evaluate(exercise, exercise.reference)
    assert torch.equal(torch.rand(3), expected), f"check {exercise.id} changed the global RNG"


def test_one_hot_check_accepts_the_product_written_other_ways() -> None:
    import torch.nn.functional as F

    ex = get_exercise("01.4")
    ways: list[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = [
        lambda ids, w: torch.einsum("...v,vd->...d", F.one_hot(ids, w.shape[0]).to(w.dtype), w),
        lambda ids, w: (F.one_hot(ids, w.shape[0]).to(w.dtype)[..., None] * w).sum(-2),
        lambda ids, w: F.one_hot(ids.flatten(), w.shape[0]).to(w.dtype).mm(w).view(*ids.shape, -1),
    ]
    for way in ways:
        outcome = evaluate(ex, way)
        assert outcome.passed, outcome.message


def test_number_answers_accept_numpy_and_tensor_scalars() -> None:
    np = pytest.importorskip("numpy")
    assert evaluate(get_exercise("04.5"), np.float64(math.cos(2))).passed
    assert evaluate(get_exercise("04.5"), torch.tensor(math.cos(2))).passed
    assert evaluate(get_exercise("04.5"), math.cos(2)).passed
