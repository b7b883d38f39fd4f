"""Notebook 10's exercises (efficiency) agree with the package pieces they are about."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from coursekit.attention import flash_attention
from coursekit.efficient import LoRALinear, kv_cache_bytes, lora_parameter_count, quantize_int8
from coursekit.exercises import nb10
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import all_exercises, all_quiz_questions, get_exercise

pytestmark = pytest.mark.usefixtures("one_thread")


def test_kv_cache_reference_equals_kv_cache_bytes() -> None:
    answer = get_exercise("10.1").reference
    assert answer == 2 * 80 * 8 * 128 * 4096 * 2 == 1_342_177_280 == 1.25 * 2**30
    assert answer == kv_cache_bytes(n_layers=80, n_kv_heads=8, head_dim=128, seq_len=4096)
    # the 64 query heads share 8 KV heads: a full multi-head cache would be 8 times larger
    assert kv_cache_bytes(n_layers=80, n_kv_heads=64, head_dim=128, seq_len=4096) == 8 * answer


def test_kv_cache_check_tolerates_rounding_but_not_a_wrong_unit() -> None:
    ex = get_exercise("10.1")
    assert evaluate(ex, 1.342e9).passed and evaluate(ex, 1_340_000_000).passed
    assert not evaluate(ex, 1.3e9).passed  # 3% off
    outcome = evaluate(ex, 1.342)
    assert not outcome.passed and "GB" in (outcome.hint or "")


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def _cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y)


@pytest.mark.parametrize("n_micro", [1, 2, 3, 6])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_accumulation_reference_equals_the_big_batch_gradient(n_micro: int, loss: str) -> None:
    g = torch.Generator().manual_seed(n_micro)
    model = nn.Sequential(nn.Linear(4, 9), nn.GELU(), nn.Linear(9, 5)).double()
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    if loss == "mse":
        loss_fn, y = _mse, torch.randn(12, 5, generator=g, dtype=torch.float64)
    else:
        loss_fn, y = _cross_entropy, torch.randint(0, 5, (12,), generator=g)
    params = list(model.parameters())
    expected = torch.autograd.grad(loss_fn(model, x, y), params)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)  # stale gradients
    get_exercise("10.2").reference(model, loss_fn, x, y, n_micro)
    for p, e in zip(params, expected):
        assert p.grad is not None
        torch.testing.assert_close(p.grad, e, atol=1e-12, rtol=1e-10)


def test_accumulation_check_explains_extra_or_missing_calls() -> None:
    ex = get_exercise("10.2")

    def logs_the_full_loss(model, loss_fn, x, y, n_micro):
        nb10._accumulate_reference(model, loss_fn, x, y, n_micro)
        loss_fn(model, x, y)  # one more call, on the whole batch, "for logging"

    def never_backward(model, loss_fn, x, y, n_micro):
        model.zero_grad()
        for xc, yc in zip(x.chunk(n_micro), y.chunk(n_micro)):
            loss_fn(model, xc, yc)

    outcome = evaluate(ex, logs_the_full_loss)
    assert not outcome.passed and "exactly once per micro-batch" in (outcome.hint or "")
    outcome = evaluate(ex, never_backward)
    assert not outcome.passed and "never ran backward" in outcome.message


def _online_loop(step, q, k, v, block: int) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    m = torch.full((*scores.shape[:-1], 1), -math.inf, dtype=q.dtype)
    lsum = torch.zeros_like(m)
    acc = torch.zeros(*scores.shape[:-1], v.shape[-1], dtype=q.dtype)
    for start in range(0, k.shape[-2], block):
        stop = start + block
        m, lsum, acc = step(m, lsum, acc, scores[..., start:stop], v[..., start:stop, :])
    return acc / lsum


@pytest.mark.parametrize("block", [1, 3, 7, 16, 40])
def test_online_reference_loop_equals_flash_attention_and_softmax(block: int) -> None:
    g = torch.Generator().manual_seed(block)
    q = torch.randn(2, 3, 9, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 3, 23, 8, generator=g, dtype=torch.float64)  # a last block that is short
    v = torch.randn(2, 3, 23, 5, generator=g, dtype=torch.float64)
    out = _online_loop(get_exercise("10.3").reference, q, k, v, block)
    exact = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1) @ v
    torch.testing.assert_close(out, exact, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(out, flash_attention(q, k, v, block_size=block), atol=1e-12, rtol=0)


def test_online_reference_survives_huge_scores() -> None:
    """The point of the running maximum: scores of 1000 overflow exp() but not this."""
    q = torch.full((1, 2, 4), 40.0)
    k = torch.full((1, 6, 4), 50.0)
    v = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(0))
    out = _online_loop(get_exercise("10.3").reference, q, k, v, 2)
    torch.testing.assert_close(out, v.mean(dim=-2, keepdim=True).expand(1, 2, 3))


def test_online_check_explains_a_squeezed_state() -> None:
    def squeezed(m, lsum, acc, scores, v):
        m_new, l_new, acc_new = nb10._online_reference(m, lsum, acc, scores, v)
        return m_new.squeeze(-1), l_new, acc_new

    outcome = evaluate(get_exercise("10.3"), squeezed)
    assert not outcome.passed and "expected (2, 3, 4, 1)" in outcome.message
    assert "keep the last dimension" in (outcome.hint or "")


@pytest.mark.parametrize(("n_in", "n_out", "bias", "rank", "alpha"), nb10._LORA_CASES)
def test_lora_reference_equals_lora_linear(
    n_in: int, n_out: int, bias: bool, rank: int, alpha: float
) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(rank + n_in)
        base = nn.Linear(n_in, n_out, bias=bias)
        mine = get_exercise("10.4").reference(base, rank, alpha)
        theirs = LoRALinear(base, rank=rank, alpha=alpha)
        x = torch.randn(3, 2, n_in)
    torch.testing.assert_close(mine(x), base(x))  # B = 0: exactly the base layer
    g = torch.Generator().manual_seed(n_out)
    with torch.no_grad():
        mine.A.normal_(generator=g)
        mine.B.normal_(generator=g)
        theirs.lora_a.copy_(mine.A)
        theirs.lora_b.copy_(mine.B)
    torch.testing.assert_close(mine(x), theirs(x))
    merged = base.weight + alpha / rank * mine.B @ mine.A  # folding the update into W
    torch.testing.assert_close(mine(x), nn.functional.linear(x, merged, base.bias))
    count = lora_parameter_count(mine)
    assert count.trainable == rank * (n_in + n_out) and count == lora_parameter_count(theirs)


def test_lora_check_explains_an_instance_and_a_copy() -> None:
    ex = get_exercise("10.4")
    outcome = evaluate(ex, nb10.LoRA(nn.Linear(4, 4), 2, 2.0))
    assert not outcome.passed and "Pass the class itself" in (outcome.hint or "")

    class Copies(nb10.LoRA):
        def __init__(self, base, rank, alpha):
            super().__init__(nn.Linear(base.in_features, base.out_features), rank, alpha)

    outcome = evaluate(ex, Copies)
    assert not outcome.passed and "self.base" in (outcome.hint or "")


def test_quantize_reference_is_per_row_int8_on_one_row() -> None:
    g = torch.Generator().manual_seed(10)
    for shape in [(8, 16), (32, 5), (1, 7)]:
        w = torch.randn(shape, generator=g)
        q, scale = get_exercise("10.5").reference(w)
        q_row, scale_row = quantize_int8(w.reshape(1, -1))  # one row = the whole tensor
        assert q.dtype == torch.int8 and scale.numel() == 1
        assert torch.equal(q.reshape(1, -1), q_row)
        torch.testing.assert_close(scale.reshape(1, 1), scale_row, atol=0, rtol=0)
        assert (q.float() * scale - w).abs().max() <= scale / 2 * (1 + 1e-6)
    q, scale = get_exercise("10.5").reference(torch.zeros(3, 4))
    assert torch.equal(q, torch.zeros(3, 4, dtype=torch.int8)) and 0 < float(scale) < math.inf


def test_quantize_check_explains_other_integer_types() -> None:
    def as_int64(weight):
        q, scale = nb10._quantize_reference(weight)
        return q.long(), scale

    outcome = evaluate(get_exercise("10.5"), as_int64)
    assert not outcome.passed and "torch.int64 takes 8 bytes" in (outcome.hint or "")


#: exercise -> {each registered wrong answer: what its hint must say}
OWN_HINTS: dict[str, dict[str, str]] = {
    "10.1": {
        "all 64 query heads cached (multi-head count)": "QUERY heads",
        "in bits": "bits instead of bytes",
        "no factor 2 for keys and values": "the key and the value",
        "one layer only": "ONE layer",
        "4 bytes per value (fp32)": "(fp32)",
        "in GiB": "GiB",
    },
    "10.2": {
        "no division by n_micro": "times too big",
        "zero_grad inside the loop": "Only the last chunk",
        "no zero_grad at the start": "old gradients are still there",
        "one backward on the whole batch": "never has to fit in memory",
        "losses divided by the batch size B": "not by the batch size",
        "chunk losses summed, one backward at the end": "stays in memory",
    },
    "10.3": {
        "old sums not rescaled": "old sums are not rescaled",
        "l rescaled, acc not": "acc is not",
        "factor inverted: exp(m_new - m)": "inverted",
        "exp(scores) without subtracting the maximum": "Subtract the new maximum",
        "acc normalised by l at every step": "un-normalised",
    },
    "10.4": {
        "B random instead of zero": "B must start at ZERO",
        "base layer not frozen": "Freeze the base",
        "scale alpha instead of alpha / rank": "not by alpha",
        "A zero as well": "never learns",
        "scale rank / alpha": "upside down",
    },
    "10.5": {
        "scale absmax / 128": "not 128",
        "truncation instead of rounding": "NEAREST integer",
        "per-row scales": "per-channel",
        "q returned as float": "torch.int8",
        "asymmetric min-max with a zero point": "zero point",
        "no guard for an all-zero weight": "all-zero weight",
    },
}


@pytest.mark.parametrize("exercise_id", sorted(OWN_HINTS))
def test_every_wrong_answer_gets_its_own_hint(exercise_id: str) -> None:
    ex = get_exercise(exercise_id)
    told = OWN_HINTS[exercise_id]
    assert set(told) == set(ex.wrong_answers), "list every wrong answer in OWN_HINTS"
    outcomes = {name: evaluate(ex, answer) for name, answer in ex.wrong_answers.items()}
    unexplained = {
        name: (outcome.message, outcome.hint)
        for name, outcome in outcomes.items()
        if outcome.passed or told[name] not in (outcome.hint or "")
    }
    assert not unexplained, unexplained


def test_own_hints_cover_every_exercise_of_the_notebook() -> None:
    assert sorted(OWN_HINTS) == [e.id for e in all_exercises() if e.notebook == "10"]


def test_quiz_answers_are_spread_and_every_option_is_explained() -> None:
    questions = [q for q in all_quiz_questions() if q.notebook == "10"]
    assert [q.id for q in questions] == ["10.q1", "10.q2", "10.q3", "10.q4"]
    assert sorted(q.answer for q in questions) == [0, 1, 2, 3]
    for q in questions:
        assert len(q.options) == 4
        for index in range(4):
            if index != q.answer:  # each wrong option is named in the explanation
                assert f"({'abcd'[index]})" in q.explanation, (q.id, index)
