"""Notebook 03's exercises (attention) agree with coursekit, and every mistake gets its own hint."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from exercise_checks import (
    assert_hint_table_covers_the_notebook,
    assert_wrong_answer_gets_its_hint,
)

from coursekit.attention import causal_mask, scaled_dot_product_attention
from coursekit.exercises import nb03
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import all_exercises, all_quiz_questions, get_exercise
from coursekit.generate import greedy_decode
from coursekit.rnn.seq2seq import Seq2Seq, Seq2SeqConfig

pytestmark = pytest.mark.usefixtures("one_thread")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_attention.ipynb"

#: (exercise id, wrong answer's name, words its own hint must contain)
OWN_HINTS: list[tuple[str, str, str]] = [
    ("03.1", "scales by sqrt(d_v)", "not by the width of v"),
    ("03.1", "no scaling", "before the softmax"),
    ("03.1", "divides by d_k", "SQUARE ROOT"),
    ("03.1", "softmax over the queries", "over the last axis"),
    ("03.1", "ignores the mask", "Apply the mask"),
    ("03.1", "mask inverted (True = blocked)", "True means MAY attend"),
    ("03.1", "masked scores set to 0", "must be -inf"),
    ("03.1", "mask applied after the softmax", "BEFORE the softmax"),
    ("03.2", "upper triangle", "LOWER triangle"),
    ("03.2", "without the diagonal", "Include the diagonal"),
    ("03.2", "True = blocked", "you marked the blocked"),
    ("03.2", "a float mask", "dtype=torch.bool"),
    ("03.3", "the variance, (100, 1)", "VARIANCE"),
    ("03.3", "scaled by d_k, (10, 0.1)", "not by d_k"),
    ("03.3", "read off the table's d_k = 64 row, (8, 1)", "d_k = 100"),
    ("03.3", "scaling ignored, (10, 10)", "divides the standard deviation"),
    ("03.3", "one number only", "two numbers"),
    ("03.4", "scaled and unscaled swapped", "swapped"),
    ("03.4", "divides by d_k", "math.sqrt(d_k)"),
    ("03.4", "mean weight instead of the largest", "MEAN weight"),
    ("03.4", "softmax over the trials", "dim=0"),
    ("03.4", "largest score, no softmax", "largest SCORE"),
    ("03.5", "reshape without the transpose", "mixes tokens into heads"),
    ("03.5", "interleaved channels", "contiguous block"),
    ("03.5", "head count and head size swapped", "not the other way round"),
    ("03.5", "T moved last", "Swap T and H only"),
    ("03.5", "split_heads alone", "both functions"),
    ("03.6", "feeds <bos> at every step", "feed the token just predicted"),
    ("03.6", "restarts the decoder state", "restarted"),
    ("03.6", "attends once, at the first step", "EVERY step"),
    ("03.6", "query before the GRU step", "BEFORE the GRU step"),
    ("03.6", "ignores the padding mask", "valid"),
]


def test_hint_table_covers_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("03", OWN_HINTS)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS, ids=lambda v: str(v)[:40])
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)


def test_quiz_has_four_questions_with_feedback_for_every_wrong_option() -> None:
    """Notebook 03 explains each wrong option in its feedback (shown by the widget)."""
    questions = {q.id: q for q in all_quiz_questions() if q.notebook == "03"}
    assert sorted(questions) == [f"03.q{i}" for i in range(1, 5)]
    assert len({q.answer for q in questions.values()}) == 4
    for q in questions.values():
        assert len(q.options) == len(q.feedback) == 4
        assert all(text.strip() for i, text in enumerate(q.feedback) if i != q.answer), q.id
    q1 = questions["03.q1"]
    assert "gradient reaches only" in q1.options[q1.answer]  # section 3's measured finding


def _notebook_exercise_ids() -> list[str]:
    """Exercise ids in the order of the notebook's check cells."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ids = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade_id", "").startswith("check-"):
            ids.append(cell.source.split('check("', 1)[1].split('"', 1)[0])
    return ids


def test_exercises_follow_the_notebook_with_rising_difficulty() -> None:
    ids = _notebook_exercise_ids()
    registered = sorted(ex.id for ex in all_exercises() if ex.notebook == "03")
    assert ids == registered == [f"03.{i}" for i in range(1, len(ids) + 1)]
    assert 3 <= len(ids) <= 6
    difficulties = [get_exercise(i).difficulty for i in ids]
    assert difficulties == sorted(difficulties), difficulties


def test_attention_reference_equals_the_package_and_pytorch() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = causal_mask(5)
    ours = get_exercise("03.1").reference(q, k, v, mask)
    torch.testing.assert_close(ours, scaled_dot_product_attention(q, k, v, mask))
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_causal_reference_equals_the_package() -> None:
    for t in (1, 4, 9):
        assert torch.equal(get_exercise("03.2").reference(t), causal_mask(t))


def test_ablation_reference_measures_saturation() -> None:
    """Unscaled, the largest weight grows with d_k; scaled, it stays put; another seed passes."""
    reference = get_exercise("03.4").reference
    unscaled = [reference(d, False) for d in (4, 16, 64)]
    scaled = [reference(d, True) for d in (4, 16, 64)]
    assert unscaled == sorted(unscaled) and unscaled[-1] > 0.8
    assert max(scaled) - min(scaled) < 0.02 and max(scaled) < 0.2

    def other_seed(d_k: int, scaled: bool) -> float:
        s = nb03.random_scores(d_k, seed=12345)
        s = s / math.sqrt(d_k) if scaled else s
        return torch.softmax(s, dim=-1).max(dim=-1).values.mean().item()

    assert evaluate(get_exercise("03.4"), other_seed).passed
    outcome = evaluate(get_exercise("03.4"), lambda d_k, scaled: "0.5")
    assert not outcome.passed


def _model_and_sources() -> tuple[Seq2Seq, torch.Tensor]:
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(30, 25, d_emb=8, d_hidden=12, attention=True)).eval()
    src = torch.randint(4, 30, (4, 7))
    src[1, 5:] = model.config.pad_id
    src[3, 2:] = model.config.pad_id
    return model, src


def _until(row: list[int], stop: int) -> list[int]:
    return row[: row.index(stop) + 1] if stop in row else row


def test_loop_reference_equals_greedy_decode_and_the_teacher_forced_weights() -> None:
    model, src = _model_and_sources()
    ids, weights = get_exercise("03.6").reference(model, src, 9)
    assert ids.shape == (4, 9) and weights.shape == (4, 9, 7)
    package = greedy_decode(model, src, max_len=9)
    eos = model.config.eos_id
    for mine, theirs in zip(ids.tolist(), package.tolist()):
        assert _until(mine, eos) == _until(theirs, eos)
    bos = torch.full((4, 1), model.config.bos_id)
    with torch.no_grad():
        _, forced = model(src, torch.cat([bos, ids[:, :-1]], dim=1))
    torch.testing.assert_close(weights, forced)
    assert torch.all(weights[3, :, 2:] == 0)  # padding gets no weight


def test_loop_check_accepts_a_list_pair_and_rejects_a_single_tensor() -> None:
    ex = get_exercise("03.6")

    def as_list(model: Seq2Seq, src: torch.Tensor, max_len: int) -> list[torch.Tensor]:
        return list(ex.reference(model, src, max_len))

    assert evaluate(ex, as_list).passed
    outcome = evaluate(ex, lambda model, src, max_len: ex.reference(model, src, max_len)[0])
    assert not outcome.passed and "pair" in outcome.message
