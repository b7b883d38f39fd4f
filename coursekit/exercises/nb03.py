"""Checks and quiz of notebook 03: attention."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from coursekit.exercises.expect import (
    a_type,
    as_number,
    expect_callable,
    expect_close,
    expect_equal,
    expect_number,
    expect_shape,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

NB = "03"


# ------------------------------------------------------------------------------------------
# 03.1 scaled dot-product attention

_Mask = torch.Tensor | None


def _attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: _Mask = None,
    *,
    scale: float | None = None,
    dim: int = -1,
    fill: float = float("-inf"),
    invert: bool = False,
    use_mask: bool = True,
) -> torch.Tensor:
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None and use_mask:
        scores = scores.masked_fill(mask if invert else ~mask, fill)
    return torch.softmax(scores, dim=dim) @ v


def _attention_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _attention_sqrt_dv(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    return _attention(q, k, v, mask, scale=1 / math.sqrt(v.shape[-1]))


def _attention_unscaled(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    return _attention(q, k, v, mask, scale=1.0)


def _attention_over_dk(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    return _attention(q, k, v, mask, scale=1 / q.shape[-1])


def _attention_query_axis(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    return _attention(q, k, v, mask, dim=-2)


def _attention_ignores_mask(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    return _attention(q, k, v, mask, use_mask=False)


def _attention_inverted_mask(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    return _attention(q, k, v, mask, invert=True)


def _attention_zero_fill(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    return _attention(q, k, v, mask, fill=0.0)


def _attention_mask_after_softmax(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: _Mask = None
) -> torch.Tensor:
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ v


_AttentionFn = Callable[..., torch.Tensor]
_SCALE_MISTAKES: list[tuple[_AttentionFn, str]] = [
    (
        _attention_sqrt_dv,
        "Scale by sqrt(d_k), the width of q and k (q.shape[-1]), not by the width of v.",
    ),
    (_attention_unscaled, "Divide the scores by sqrt(d_k) before the softmax."),
    (_attention_over_dk, "Divide by the SQUARE ROOT of d_k, not by d_k."),
    (
        _attention_query_axis,
        "Take the softmax over the last axis, the keys (dim=-1): each query's weights sum to 1.",
    ),
]
_MASK_MISTAKES: list[tuple[_AttentionFn, str]] = [
    (_attention_ignores_mask, "Apply the mask: set the scores where mask is False to -inf."),
    (
        _attention_inverted_mask,
        "True means MAY attend (PyTorch's convention): fill the scores where the mask is False, "
        "scores.masked_fill(~mask, float('-inf')).",
    ),
    (
        _attention_zero_fill,
        "A masked score must be -inf, not 0: exp(0) = 1, so the key still gets weight.",
    ),
    (
        _attention_mask_after_softmax,
        "Mask the scores BEFORE the softmax: zeroing weights afterwards leaves rows that no "
        "longer sum to 1.",
    ),
]


@exercise(
    "03.1",
    notebook=NB,
    title="Scaled dot-product attention",
    asks="Implement attention(q, k, v, mask=None) = softmax(q k^T / sqrt(d_k)) v with a boolean "
    "mask (True = may attend)",
    difficulty=1,
    minutes=10,
    reference=_attention_reference,
    wrong_answers={
        "scales by sqrt(d_v)": _attention_sqrt_dv,
        "no scaling": _attention_unscaled,
        "divides by d_k": _attention_over_dk,
        "softmax over the queries": _attention_query_axis,
        "ignores the mask": _attention_ignores_mask,
        "mask inverted (True = blocked)": _attention_inverted_mask,
        "masked scores set to 0": _attention_zero_fill,
        "mask applied after the softmax": _attention_mask_after_softmax,
    },
)
def check_sdpa(answer: Any) -> None:
    """Equals F.scaled_dot_product_attention with d_v != d_k and T_q != T_k, then with a key-padding mask and with a causal mask on 4-D inputs.

    Rejects scaling by sqrt(d_v), by d_k or not at all, a softmax over the queries, and a mask
    ignored, inverted, filled with 0 or applied after the softmax.
    """
    expect_callable(answer, name="attention")
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 3, 8, generator=g)
    k = torch.randn(2, 5, 8, generator=g)
    v = torch.randn(2, 5, 6, generator=g)
    padding = torch.ones(2, 1, 5, dtype=torch.bool)
    padding[1, :, -2:] = False  # the second sequence has two padded keys
    q4, k4, v4 = (torch.randn(2, 2, 4, 8, generator=g) for _ in range(3))
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    cases: list[tuple[str, tuple[torch.Tensor, ...], str, list[tuple[_AttentionFn, str]]]] = [
        (
            "output without a mask (T_q=3, T_k=5, d_k=8, d_v=6)",
            (q, k, v),
            "Scores are q @ k.transpose(-2, -1) / sqrt(d_k), softmax over the last (key) axis, "
            "then times v.",
            _SCALE_MISTAKES,
        ),
        (
            "output with a key-padding mask",
            (q, k, v, padding),
            "Set the scores where the mask is False to -inf (scores.masked_fill(~mask, "
            "float('-inf'))) before the softmax; the mask broadcasts against the scores.",
            _MASK_MISTAKES + _SCALE_MISTAKES,
        ),
        (
            "output of 4-D inputs with a causal mask",
            (q4, k4, v4, causal),
            "Work on the last two dimensions only (k.transpose(-2, -1), softmax(dim=-1)), so "
            "any leading batch and head dimensions pass through.",
            _MASK_MISTAKES + _SCALE_MISTAKES,
        ),
    ]
    for name, args, hint, mistakes in cases:
        out = answer(*args)
        q, k, v = args[0], args[1], args[2]
        expected = F.scaled_dot_product_attention(
            q, k, v, attn_mask=args[3] if len(args) > 3 else None
        )
        expect_close(
            out,
            expected,
            name=name,
            hint=hint,
            mistakes=[(partial(fn, *args), mistake_hint) for fn, mistake_hint in mistakes],
        )


# ------------------------------------------------------------------------------------------
# 03.2 the causal mask


def _causal_reference(t: int) -> torch.Tensor:
    return torch.ones(t, t, dtype=torch.bool).tril()


_CAUSAL_MISTAKES: list[tuple[Callable[[int], torch.Tensor], str]] = [
    (
        lambda t: torch.ones(t, t, dtype=torch.bool).triu(),
        "Row i is query i: it may see keys j <= i, the LOWER triangle (torch.tril); the upper "
        "one lets every query see the future.",
    ),
    (
        lambda t: torch.ones(t, t, dtype=torch.bool).tril(-1),
        "Include the diagonal: query i may see key i, itself (tril without an offset).",
    ),
    (
        lambda t: ~torch.ones(t, t, dtype=torch.bool).tril(),
        "True means MAY attend here (PyTorch's convention): you marked the blocked positions.",
    ),
]


@exercise(
    "03.2",
    notebook=NB,
    title="A causal mask",
    asks="Implement my_causal_mask(t) -> (t, t) bool tensor, True where query i may see key j",
    difficulty=1,
    minutes=5,
    reference=_causal_reference,
    wrong_answers={
        "upper triangle": lambda t: torch.ones(t, t, dtype=torch.bool).triu(),
        "without the diagonal": lambda t: torch.ones(t, t, dtype=torch.bool).tril(-1),
        "True = blocked": lambda t: ~torch.ones(t, t, dtype=torch.bool).tril(),
        "a float mask": lambda t: torch.ones(t, t).tril(),
    },
)
def check_causal(answer: Any) -> None:
    """A boolean lower triangle with its diagonal, for t = 4, 1 and 7.

    Rejects the upper triangle, a triangle without the diagonal, the inverted mask (True =
    blocked) and a float mask.
    """
    expect_callable(answer, name="my_causal_mask")
    for t in (4, 1, 7):
        m = answer(t)
        expect_shape(
            m, (t, t), name=f"mask for t={t}", hint="One row per query, one column per key."
        )
        if m.dtype != torch.bool:
            raise ExerciseFailure(
                f"The mask should be boolean, got {m.dtype}.",
                hint="Build it with dtype=torch.bool, or end with .bool().",
            )
        expected = _causal_reference(t)
        if torch.equal(m, expected):
            continue
        hint = "Query i sees keys 0..i: the lower triangle including the diagonal (torch.tril)."
        for mistake, mistake_hint in _CAUSAL_MISTAKES:
            if torch.equal(m, mistake(t)):
                hint = mistake_hint
                break
        expect_equal(m.int().tolist(), expected.int().tolist(), name=f"mask for t={t}", hint=hint)


# ------------------------------------------------------------------------------------------
# 03.3 predict the spread


@exercise(
    "03.3",
    notebook=NB,
    title="Predict: the spread of a dot product",
    asks="q and k have d_k = 100 independent N(0, 1) entries (a width the table does not show). "
    "What is the standard deviation of q . k, and of q . k / sqrt(d_k)? Answer (unscaled, scaled)",
    difficulty=1,
    minutes=5,
    reference=(10.0, 1.0),
    also_correct={
        "integers": (10, 1),
        "written as square roots": (math.sqrt(100), math.sqrt(100) / math.sqrt(100)),
    },
    wrong_answers={
        "the variance, (100, 1)": (100, 1),
        "scaled by d_k, (10, 0.1)": (10, 0.1),
        "read off the table's d_k = 64 row, (8, 1)": (8.0, 1.0),
        "scaling ignored, (10, 10)": (10, 10),
        "one number only": 10.0,
    },
)
def check_std(answer: Any) -> None:
    """(10, 1): a sum of 100 independent unit-variance products has variance 100; dividing by sqrt(100) brings it to 1.

    Rejects the variance for the standard deviation, dividing by d_k, the d_k = 64 row of the
    table, and a forgotten scaling.
    """
    if not isinstance(answer, (tuple, list)):
        raise ExerciseFailure(
            f"answer should be a pair (std_unscaled, std_scaled), not {a_type(answer)}.",
            hint="Set answer = (std of q . k, std of q . k / sqrt(d_k)), two numbers.",
        )
    if len(answer) != 2:
        raise ExerciseFailure(
            f"answer has {len(answer)} numbers; it should have 2.",
            hint="Set answer = (std of q . k, std of q . k / sqrt(d_k)).",
        )
    expect_number(
        answer[0],
        10.0,
        name="std of q . k",
        rel_tol=1e-3,
        hint="Each product q_c k_c has mean 0 and variance 1; a sum of d_k independent ones has "
        "variance d_k, and the standard deviation is its square root.",
        mistakes=[
            (100.0, "100 is the VARIANCE of q . k; the standard deviation is its square root."),
            (8.0, "8 is the d_k = 64 row of the table; this head has d_k = 100."),
        ],
    )
    expect_number(
        answer[1],
        1.0,
        name="std of q . k / sqrt(d_k)",
        rel_tol=1e-3,
        hint="Dividing by a constant divides the standard deviation by it: sqrt(d_k) / sqrt(d_k).",
        mistakes=[
            (0.1, "The scores are divided by sqrt(d_k) = 10, not by d_k."),
            (10.0, "The scaling divides the standard deviation by sqrt(d_k)."),
        ],
    )


# ------------------------------------------------------------------------------------------
# 03.4 the ablation: attention with and without 1/sqrt(d_k)

ABLATION_N_KEYS = 32
ABLATION_TRIALS = 1000


def random_scores(d_k: int, trials: int = ABLATION_TRIALS, seed: int = 0) -> torch.Tensor:
    """Unscaled scores q . k of random unit-variance queries and 32 keys: ``(trials, 32)``."""
    gen = torch.Generator().manual_seed(seed + d_k)
    q = torch.randn(trials, 1, d_k, generator=gen)
    k = torch.randn(trials, ABLATION_N_KEYS, d_k, generator=gen)
    return (q @ k.transpose(-2, -1)).squeeze(1)


def _max_weight(
    d_k: int,
    scaled: bool,
    *,
    scale: Callable[[int], float] = lambda d: 1 / math.sqrt(d),
    dim: int = -1,
    reduce: str = "max",
    softmax: bool = True,
) -> float:
    s = random_scores(d_k)
    if scaled:
        s = s * scale(d_k)
    w = torch.softmax(s, dim=dim) if softmax else s
    top = w.max(dim=-1).values if reduce == "max" else w.mean(dim=-1)
    return top.mean().item()


def _max_weight_reference(d_k: int, scaled: bool) -> float:
    s = random_scores(d_k)
    if scaled:
        s = s / math.sqrt(d_k)
    return torch.softmax(s, dim=-1).max(dim=-1).values.mean().item()


def _max_weight_swapped(d_k: int, scaled: bool) -> float:
    return _max_weight(d_k, not scaled)


def _max_weight_over_dk(d_k: int, scaled: bool) -> float:
    return _max_weight(d_k, scaled, scale=lambda d: 1 / d)


def _max_weight_mean(d_k: int, scaled: bool) -> float:
    return _max_weight(d_k, scaled, reduce="mean")


def _max_weight_over_trials(d_k: int, scaled: bool) -> float:
    return _max_weight(d_k, scaled, dim=0)


def _max_weight_no_softmax(d_k: int, scaled: bool) -> float:
    return _max_weight(d_k, scaled, softmax=False)


_ABLATION_DIMS = (4, 16, 64)
_ABLATION_TOL = 0.03  # the mean of 1,000 largest weights varies by < 0.01 between seeds
_MaxWeightFn = Callable[[int, bool], float]
_ABLATION_MISTAKES: list[tuple[_MaxWeightFn, str]] = [
    (
        _max_weight_swapped,
        "Your numbers for scaled=True and scaled=False are swapped: divide the scores by "
        "sqrt(d_k) only when scaled is True.",
    ),
    (
        _max_weight_over_dk,
        "The scaled run divides by d_k: the weights then flatten towards 1/32 as d_k grows. "
        "Divide by math.sqrt(d_k).",
    ),
    (
        _max_weight_mean,
        "That is the MEAN weight of a row, always 1/32 since a softmax row sums to 1: take each "
        "row's largest weight, .max(dim=-1).values, then average over the trials.",
    ),
    (
        _max_weight_over_trials,
        "The softmax ran over the trials (dim=0): each row of scores is one query against 32 "
        "keys, so take the softmax over the keys, dim=-1.",
    ),
    (
        _max_weight_no_softmax,
        "You took the largest SCORE: apply torch.softmax(scores, dim=-1) first, and take the "
        "largest weight.",
    ),
]


@exercise(
    "03.4",
    notebook=NB,
    title="Ablation: attention without 1/sqrt(d_k)",
    asks="Implement mean_max_weight(d_k, scaled): the average largest softmax weight of "
    "random_scores(d_k), divided by sqrt(d_k) when scaled is True; the notebook then runs it "
    "with and without the scaling across d_k",
    difficulty=2,
    minutes=10,
    reference=_max_weight_reference,
    wrong_answers={
        "scaled and unscaled swapped": _max_weight_swapped,
        "divides by d_k": _max_weight_over_dk,
        "mean weight instead of the largest": _max_weight_mean,
        "softmax over the trials": _max_weight_over_trials,
        "largest score, no softmax": _max_weight_no_softmax,
    },
)
def check_ablation(answer: Any) -> None:
    """The average largest weight at d_k = 4, 16, 64, scaled and not, within 0.03 of the reference (another seed passes): unscaled it climbs towards 1, scaled it stays near 0.16.

    Rejects swapped runs, dividing by d_k, the mean instead of the largest weight, a softmax
    over the trials, and the largest score instead of the largest weight.
    """
    expect_callable(answer, name="mean_max_weight")
    got = {}
    for d_k in _ABLATION_DIMS:
        for scaled in (False, True):
            got[d_k, scaled] = as_number(
                answer(d_k, scaled),
                name=f"mean_max_weight({d_k}, {scaled})",
                example="return weights.max(dim=-1).values.mean().item()",
            )
    expected = {key: _max_weight_reference(*key) for key in got}

    def close(values: dict[tuple[int, bool], float]) -> bool:
        # within 0.03, and within 20% for the small values of the mistakes (1/32 and below)
        return all(
            abs(got[key] - values[key]) <= min(_ABLATION_TOL, 0.2 * abs(values[key])) for key in got
        )

    if close(expected):
        return
    for mistake, hint in _ABLATION_MISTAKES:
        if close({key: mistake(*key) for key in got}):
            raise ExerciseFailure("The measured weights are not right.", hint=hint)
    worst = max(got, key=lambda key: abs(got[key] - expected[key]))
    raise ExerciseFailure(
        f"mean_max_weight{worst} = {got[worst]:.3f}, expected about {expected[worst]:.3f}.",
        hint="scores = random_scores(d_k); divide them by math.sqrt(d_k) when scaled; softmax "
        "over the keys (dim=-1); the largest weight of each row, averaged over the rows.",
    )


# ------------------------------------------------------------------------------------------
# 03.5 splitting into heads


def _merge_heads(y: torch.Tensor) -> torch.Tensor:
    b, h, t, dh = y.shape
    return y.transpose(1, 2).reshape(b, t, h * dh)


def _split_reference(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def _split_no_transpose(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.reshape(b, n_heads, t, d // n_heads)


def _split_interleaved(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, d // n_heads, n_heads).permute(0, 3, 1, 2)


def _split_sizes_swapped(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, d // n_heads, n_heads).transpose(1, 2)


def _split_time_last(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).permute(0, 2, 3, 1)


_SplitFn = Callable[[torch.Tensor, int], torch.Tensor]
_SPLIT_MISTAKES: list[tuple[_SplitFn, str]] = [
    (
        _split_no_transpose,
        "A plain reshape to (B, H, T, d_head) mixes tokens into heads: view as "
        "(B, T, n_heads, d_head) first, then swap T and H with transpose(1, 2).",
    ),
    (
        _split_interleaved,
        "Head h owns a contiguous block of channels, h*d_head .. (h+1)*d_head - 1: view as "
        "(B, T, n_heads, d_head), heads before head size.",
    ),
    (
        _split_sizes_swapped,
        "There are n_heads heads of d_head = D // n_heads channels each: view(B, T, n_heads, "
        "D // n_heads), not the other way round.",
    ),
    (_split_time_last, "Swap T and H only: transpose(1, 2) gives (B, n_heads, T, d_head)."),
]


@exercise(
    "03.5",
    notebook=NB,
    title="Split into heads",
    asks="Implement split_heads(x, n_heads): (B, T, D) -> (B, n_heads, T, D // n_heads); pass "
    "(split_heads, merge_heads) with the given merge_heads",
    difficulty=2,
    minutes=10,
    reference=(_split_reference, _merge_heads),
    wrong_answers={
        "reshape without the transpose": (_split_no_transpose, _merge_heads),
        "interleaved channels": (_split_interleaved, _merge_heads),
        "head count and head size swapped": (_split_sizes_swapped, _merge_heads),
        "T moved last": (_split_time_last, _merge_heads),
        "split_heads alone": _split_reference,
    },
)
def check_heads(answer: Any) -> None:
    """split_heads gives (B, H, T, d_head) with head h on channels h*d_head..(h+1)*d_head-1 (B, H, T, d_head all different), and merge_heads inverts it.

    Rejects a reshape without the transpose, interleaved channels, head count and head size
    swapped, and T moved to the end.
    """
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ExerciseFailure(
            "Pass the pair (split_heads, merge_heads).",
            hint='check("03.5", (split_heads, merge_heads)): both functions, in a tuple.',
        )
    split, merge = answer
    expect_callable(split, name="split_heads")
    expect_callable(merge, name="merge_heads")
    x = torch.arange(2 * 5 * 12, dtype=torch.float32).view(2, 5, 12)
    y = split(x, 4)
    mistakes = [(partial(fn, x, 4), hint) for fn, hint in _SPLIT_MISTAKES]
    expect_close(
        y,
        _split_reference(x, 4),
        name="split_heads(x, 4) for x of shape (2, 5, 12)",
        hint="Head h owns channels h*d_head .. (h+1)*d_head - 1: view as (B, T, H, d_head), "
        "then swap T and H.",
        mistakes=mistakes,
    )
    expect_close(
        merge(y),
        x,
        name="merge_heads(split_heads(x))",
        hint="merge_heads is given: if it fails, your split must be its exact inverse.",
    )


# ------------------------------------------------------------------------------------------
# 03.6 the decoding loop of the attention seq2seq model


def _greedy_translate(
    model: Any,
    src: torch.Tensor,
    max_len: int,
    *,
    feed_back: bool = True,
    carry_state: bool = True,
    attend_each_step: bool = True,
    query_after_step: bool = True,
    use_mask: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding, one step at a time: ids ``(B, max_len)``, weights ``(B, max_len, S)``."""
    with torch.no_grad():
        states, summary, valid = model.encode(src)  # (B, S, 2H), (B, 2H), (B, S)
        start = torch.tanh(model.bridge(summary)).unsqueeze(0)  # (1, B, H)
        hidden = start
        bos = torch.full((src.shape[0], 1), model.config.bos_id, dtype=torch.long)
        token = bos.to(src.device)
        ids, weights, first = [], [], None
        for _ in range(max_len):
            emb = model.tgt_emb(token)  # (B, 1, E)
            before = hidden.transpose(0, 1)  # (B, 1, H): the state before this step
            out, hidden = model.decoder(emb, hidden if carry_state else start)  # (B, 1, H)
            query = out if query_after_step else before
            if attend_each_step or first is None:
                first = model.attn(query, states, valid if use_mask else None)
            context, w = first  # (B, 1, 2H), (B, 1, S)
            feat = torch.tanh(model.combine(torch.cat([out, context, emb], dim=-1)))
            next_token = model.out(feat).argmax(dim=-1)  # (B, 1)
            ids.append(next_token)
            weights.append(w)
            token = next_token if feed_back else bos.to(src.device)
        return torch.cat(ids, dim=1), torch.cat(weights, dim=1)


def _greedy_reference(
    model: Any, src: torch.Tensor, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return _greedy_translate(model, src, max_len)


_TranslateFn = Callable[[Any, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
_LOOP_MISTAKES: list[tuple[_TranslateFn, str]] = [
    (
        partial(_greedy_translate, feed_back=False),
        "Every step was fed <bos>: feed the token just predicted (the argmax) as the next "
        "step's input.",
    ),
    (
        partial(_greedy_translate, carry_state=False),
        "The decoder state restarted from the encoder summary at every step: pass the hidden "
        "state returned by model.decoder into the next step.",
    ),
    (
        partial(_greedy_translate, attend_each_step=False),
        "The context of the first step was reused: call model.attn at EVERY step, with that "
        "step's query; a fresh context per output word is the point of attention.",
    ),
    (
        partial(_greedy_translate, query_after_step=False),
        "The query was the state BEFORE the GRU step (Bahdanau's order); this model attends "
        "with the GRU output of the current step, out.",
    ),
    (
        partial(_greedy_translate, use_mask=False),
        "Padding got attention weight: pass valid, the mask from model.encode, to model.attn.",
    ),
]


def _loop_case() -> tuple[Any, torch.Tensor]:
    from coursekit.rnn.seq2seq import Seq2Seq, Seq2SeqConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = Seq2Seq(Seq2SeqConfig(20, 24, d_emb=8, d_hidden=16, attention=True)).eval()
        src = torch.randint(4, 20, (3, 6))
    src[1, 4:] = model.config.pad_id  # two sources shorter than the longest one
    src[2, 3:] = model.config.pad_id
    return model, src


@exercise(
    "03.6",
    notebook=NB,
    title="The decoding loop with attention",
    asks="Implement greedy_translate(model, src, max_len) -> (ids (B, max_len), weights "
    "(B, max_len, S)): the attention seq2seq decoder run one step at a time, attending at every "
    "step and feeding back its argmax",
    difficulty=3,
    minutes=20,
    reference=_greedy_reference,
    wrong_answers={
        "feeds <bos> at every step": _LOOP_MISTAKES[0][0],
        "restarts the decoder state": _LOOP_MISTAKES[1][0],
        "attends once, at the first step": _LOOP_MISTAKES[2][0],
        "query before the GRU step": _LOOP_MISTAKES[3][0],
        "ignores the padding mask": _LOOP_MISTAKES[4][0],
    },
)
def check_loop(answer: Any) -> None:
    """On a small random model with three padded sources: the same ids as the step-by-step reference (which equals greedy_decode up to each <eos>) and the same weights.

    Rejects feeding <bos> at every step, restarting the decoder state, attending only once, the
    query taken before the GRU step, and a forgotten padding mask.
    """
    expect_callable(answer, name="greedy_translate")
    model, src = _loop_case()
    max_len = 7
    result = answer(model, src, max_len)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise ExerciseFailure(
            f"greedy_translate returned {a_type(result)}; it should return a pair.",
            hint="return torch.cat(ids, dim=1), torch.cat(weights, dim=1): the ids (B, max_len) "
            "and the weights (B, max_len, S).",
        )
    ids, weights = result
    ref_ids, ref_weights = _greedy_reference(model, src, max_len)
    expect_shape(
        ids,
        tuple(ref_ids.shape),
        name="ids",
        hint="One predicted token per step and sequence: (B, max_len), no <bos> in front.",
    )
    same_ids = torch.equal(torch.as_tensor(ids).long().cpu(), ref_ids)
    expect_shape(
        weights,
        tuple(ref_weights.shape),
        name="weights",
        hint="One row of weights over the S source positions per step: (B, max_len, S).",
    )
    if same_ids and torch.allclose(torch.as_tensor(weights).float(), ref_weights, atol=1e-5):
        return
    for fn, hint in _LOOP_MISTAKES:
        m_ids, m_weights = fn(model, src, max_len)
        if torch.equal(torch.as_tensor(ids).long().cpu(), m_ids) and torch.allclose(
            torch.as_tensor(weights).float(), m_weights, atol=1e-5
        ):
            raise ExerciseFailure("The translation differs from greedy decoding.", hint=hint)
    generic = (
        "Each step: emb = model.tgt_emb(token); out, hidden = model.decoder(emb, hidden); "
        "context, w = model.attn(out, states, valid); logits = model.out(torch.tanh("
        "model.combine(torch.cat([out, context, emb], -1)))); token = logits.argmax(-1)."
    )
    if not same_ids:
        raise ExerciseFailure("The predicted ids differ from greedy decoding.", hint=generic)
    expect_close(weights, ref_weights, name="weights", hint=generic)


quiz_question(
    "03.q1",
    notebook=NB,
    question="Why does the Transformer divide the scores by sqrt(d_k)?",
    options=[
        "To make attention weights sum to one",
        "To save memory",
        "Dot products of d_k-dimensional vectors have variance ~ d_k; without scaling the softmax "
        "saturates, and the gradient reaches only the top one or two keys",
        "Because the keys are normalised to unit length",
    ],
    answer=2,
    explanation="With unit-variance entries q.k has standard deviation sqrt(d_k); dividing brings "
    "it back to ~1, so the softmax stays soft and every key gets a share of the gradient. "
    "Unscaled, one key takes nearly all the weight and the other keys' gradients vanish "
    "(measured in this notebook).",
    feedback=[
        "The softmax makes every row sum to one at any scale; dividing changes how peaked the "
        "weights are, not their sum.",
        "Dividing by a constant changes no tensor's size: it saves no memory.",
        "",
        "The keys are not normalised: they are linear projections of the input. Unit-length "
        "queries and keys would keep the scores in [-1, 1], and no scaling would be needed.",
    ],
)

quiz_question(
    "03.q2",
    notebook=NB,
    question="In cross-attention of a translation model, where do queries, keys and values come from?",
    options=[
        "All three from the encoder",
        "Queries from the encoder, keys and values from the decoder",
        "All three from the decoder",
        "Queries from the decoder, keys and values from the encoder output",
    ],
    answer=3,
    explanation="The decoder asks (queries) and looks up the source sentence (keys to match, values "
    "to read). Self-attention takes all three from one sequence.",
    feedback=[
        "That is the encoder's self-attention: nothing from the decoder enters, so the target "
        "could not ask anything of the source.",
        "The roles are swapped: the decoder, which is predicting, asks the questions, and the "
        "source sentence is what it reads.",
        "That is the decoder's (masked) self-attention; cross-attention is where the source "
        "sentence comes in.",
        "",
    ],
)

quiz_question(
    "03.q3",
    notebook=NB,
    question="Masked scores are set to -inf before the softmax. What does a query row with *every* "
    "key masked give in coursekit?",
    options=["Zeros", "NaN", "A uniform distribution", "An error"],
    answer=0,
    explanation="softmax of all -inf is 0/0 = NaN in a naive implementation; coursekit returns zero "
    "weights (and a zero output) for such rows. A finite -1e9 instead gives a uniform row.",
    feedback=[
        "",
        "NaN is what a naive softmax gives (0/0); coursekit treats a fully masked row "
        "separately so that no NaN spreads through the model.",
        "A uniform row comes from masking with a finite value such as -1e9, which leaves every "
        "score equally low; -inf leaves nothing to normalise.",
        "A fully masked row is legitimate (a padding query, for instance), so coursekit does not "
        "raise.",
    ],
)

quiz_question(
    "03.q4",
    notebook=NB,
    question="The original Transformer has d_model = 512 and 8 heads. What is each head's size, and "
    "what does W^O do?",
    options=[
        "512; W^O averages the heads",
        "64; W^O mixes the concatenated 8 x 64 = 512 head outputs back into d_model",
        "8; W^O selects the best head",
        "64; W^O is the value projection",
    ],
    answer=1,
    explanation="Each head works in a 64-dim subspace; concatenation gives 512 numbers per token, and "
    "the learned W^O (512 x 512) lets the heads' results be combined.",
    feedback=[
        "The heads share d_model between them, 512 / 8 = 64 each, so that all 8 cost about as "
        "much as one head of 512; and W^O is learned, not an average.",
        "",
        "8 is the number of heads, not their size; and W^O combines the outputs of all the "
        "heads, it selects none.",
        "64 is right, but the value projection is W^V, applied before attention; W^O comes after "
        "it, on the concatenated head outputs.",
    ],
)
