"""Notebook 09's exercises (long contexts) agree with the package pieces they are about."""

from __future__ import annotations

import random

import pytest
import torch

from coursekit.exercises import nb09
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import get_exercise
from coursekit.long_context import ntk_scaled_base, sliding_window_mask

pytestmark = pytest.mark.usefixtures("one_thread")


def test_window_reference_equals_sliding_window_mask() -> None:
    rng = random.Random(9)
    reference = get_exercise("09.1").reference
    cases = [(t, w, c, ()) for t in (1, 2, 5, 9) for w in (1, 2, 3, 9, 12) for c in (True, False)]
    for _ in range(150):
        t = rng.randint(1, 40)
        globals_ = tuple(sorted(rng.sample(range(t), rng.randint(0, min(3, t)))))
        cases.append((t, rng.randint(1, 12), rng.random() < 0.5, globals_))
    for t, window, causal, global_tokens in cases:
        expected = sliding_window_mask(t, window, causal=causal, global_tokens=global_tokens)
        got = reference(t, window, causal=causal, global_tokens=global_tokens)
        assert got.dtype == torch.bool
        assert torch.equal(got, expected), (t, window, causal, global_tokens)


def test_window_check_converts_integer_masks_and_explains_other_forms() -> None:
    ex = get_exercise("09.1")

    def as_int(t, window, causal=True, global_tokens=()):
        return sliding_window_mask(t, window, causal=causal, global_tokens=global_tokens).int()

    def as_float(t, window, causal=True, global_tokens=()):
        return sliding_window_mask(t, window, causal=causal, global_tokens=global_tokens).float()

    def transposed_shape(t, window, causal=True, global_tokens=()):
        return torch.ones(t, t + 1, dtype=torch.bool)

    def positional_only(t, window):
        return sliding_window_mask(t, window)

    assert evaluate(ex, as_int).passed
    outcome = evaluate(ex, as_float)
    assert not outcome.passed and ".bool()" in (outcome.hint or "")
    outcome = evaluate(ex, transposed_shape)
    assert not outcome.passed and "expected (8, 8)" in outcome.message and outcome.hint
    outcome = evaluate(ex, positional_only)
    assert not outcome.passed and "global_tokens=()" in (outcome.hint or "")


def test_score_count_is_the_masks_sum() -> None:
    answer = get_exercise("09.2").reference
    assert answer == 512 * 513 // 2 + (4096 - 512) * 512 == 1_966_336
    assert answer == 4096 * 512 - 512 * 511 // 2
    assert answer == int(sliding_window_mask(4096, 512).sum())


def _hf_loop(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """Hugging Face's perplexity-with-stride loop, transcribed: the scored targets per chunk."""
    spans = []
    prev_end_loc = 0
    for begin_loc in range(0, n_tokens, stride):
        end_loc = min(begin_loc + window, n_tokens)
        trg_len = end_loc - prev_end_loc  # may be different from stride on the last loop
        spans.append((begin_loc, end_loc, end_loc - trg_len))
        prev_end_loc = end_loc
        if end_loc == n_tokens:
            break
    return spans


def test_chunk_reference_scores_every_token_once() -> None:
    reference = get_exercise("09.3").reference
    for n_tokens in range(1, 61):
        for window in range(1, 13):
            for stride in range(1, window + 1):
                spans = reference(n_tokens, window, stride)
                assert spans == _hf_loop(n_tokens, window, stride)
                scored = [p for _, end, first in spans for p in range(first, end)]
                assert scored == list(range(n_tokens)), (n_tokens, window, stride)
                assert [s for s, _, _ in spans] == list(range(0, stride * len(spans), stride))
                assert spans[-1][1] == n_tokens
                for start, end, first in spans:
                    assert end == min(start + window, n_tokens) and start <= first < end
                    # every scored token keeps at least window - stride tokens of left context
                    assert all(p - start >= min(p, window - stride) for p in range(first, end))


def test_chunk_reference_rejects_impossible_arguments() -> None:
    reference = get_exercise("09.3").reference
    for args in [(10, 4, 5), (10, 4, 0), (0, 4, 2)]:
        with pytest.raises(ValueError, match="stride"):
            reference(*args)


def test_chunk_check_explains_a_generator() -> None:
    def chunk_spans(n_tokens, window, stride):
        yield from nb09._chunks_reference(n_tokens, window, stride)

    outcome = evaluate(get_exercise("09.3"), chunk_spans)
    assert not outcome.passed and "a generator" in outcome.message
    assert "return spans" in (outcome.hint or "")


@pytest.mark.parametrize("head_dim", [4, 8, 32, 64, 128])
@pytest.mark.parametrize("factor", [1.0, 1.5, 2.0, 4.0, 8.0, 32.0])
@pytest.mark.parametrize("base", [10_000.0, 500_000.0])
def test_ntk_reference_equals_ntk_scaled_base(base: float, head_dim: int, factor: float) -> None:
    new_base = get_exercise("09.4").reference(base, head_dim, factor)
    assert new_base == pytest.approx(ntk_scaled_base(base, head_dim, factor), rel=1e-12)
    # the slowest pair (i = d/2 - 1) turns exactly `factor` times slower, the fastest is unchanged
    slowest = (head_dim - 2) / head_dim
    assert base**-slowest / new_base**-slowest == pytest.approx(factor, rel=1e-9)


#: each registered wrong answer, with what its hint must say
OWN_HINTS: list[tuple[str, str, str]] = [
    ("09.1", "off by one: window + 1 keys", "window + 1 keys"),
    ("09.1", "causal ignored", "must not see the future"),
    ("09.1", "non-causal band |i - j| <= window", "2 window + 1"),
    ("09.1", "global tokens ignored", "Add the global tokens"),
    ("09.1", "global tokens only as queries (rows)", "open the columns too"),
    ("09.1", "global rows see the future", "still must not see the future"),
    ("09.2", "T * w, full windows for every query", "first 511 queries"),
    ("09.2", "full causal attention T (T + 1) / 2", "FULL causal attention"),
    ("09.2", "full attention T^2", "full bidirectional"),
    ("09.2", "bidirectional window T (2w - 1)", "bidirectional window"),
    ("09.2", "only the first w queries, w (w + 1) / 2", "only the first 512 queries"),
    ("09.3", "no overlap: starts advance by the window", "must OVERLAP"),
    ("09.3", "tokens scored twice: first_scored = start", "scored twice"),
    ("09.3", "last chunk missing", "tail is missing"),
    ("09.3", "first_scored = previous end - 1", "not end - 1"),
    ("09.4", "plain scaling: base * factor", "Multiplying the base"),
    ("09.4", "exponent head_dim / 2", "not d / 2"),
    ("09.4", "base / factor", "must GROW"),
    ("09.4", "exponent inverted: (head_dim - 2) / head_dim", "inverted"),
]


def test_every_wrong_answer_is_listed_here() -> None:
    for exercise_id in ("09.1", "09.2", "09.3", "09.4"):
        listed = {name for ex_id, name, _ in OWN_HINTS if ex_id == exercise_id}
        assert listed == set(get_exercise(exercise_id).wrong_answers)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    ex = get_exercise(exercise_id)
    outcome = evaluate(ex, ex.wrong_answers[name])
    assert not outcome.passed
    assert told in (outcome.hint or ""), outcome
    if exercise_id == "09.4":  # the idea behind the formula comes with every NTK hint
        assert "stays unchanged" in (outcome.hint or "")
