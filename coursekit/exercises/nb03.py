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
# 03.4 splitting into heads


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
    "03.4",
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
            hint='check("03.4", (split_heads, merge_heads)): both functions, in a tuple.',
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
# 03.5 predict the cost


@exercise(
    "03.5",
    notebook=NB,
    title="Predict: the quadratic cost",
    asks="Self-attention at T = 1,000 tokens computes a score matrix. How many times more "
    "multiply-adds does the score matrix QK^T need at T = 4,000 (same d)?",
    difficulty=1,
    minutes=5,
    reference=16,
    also_correct={"a float": 16.0},
    wrong_answers={"linear, 4": 4, "cubic, 64": 64, "the square root, 2": 2, "a string": "16x"},
)
def check_cost(answer: Any) -> None:
    """16: the score matrix has T x T entries of d multiply-adds each, and (4,000 / 1,000)^2 = 16.

    Rejects the linear (4), cubic (64) and square-root (2) guesses, and a string.
    """
    expect_number(
        answer,
        16.0,
        example="answer = 9",
        hint="QK^T has T x T entries, each a d-long dot product: cost T^2 d.",
        mistakes=[
            (4.0, "QK^T has T x T entries: both of its dimensions grow 4 times."),
            (64.0, "d stays the same: the cost is T^2 d, not T^3."),
            (2.0, "The cost grows faster than T, not slower: T x T entries."),
        ],
    )


quiz_question(
    "03.q1",
    notebook=NB,
    question="Why does the Transformer divide the scores by sqrt(d_k)?",
    options=[
        "To make attention weights sum to one",
        "To save memory",
        "Dot products of d_k-dimensional vectors have variance ~ d_k; without scaling the softmax "
        "saturates and its gradients vanish",
        "Because the keys are normalised to unit length",
    ],
    answer=2,
    explanation="With unit-variance entries q.k has standard deviation sqrt(d_k); dividing brings "
    "it back to ~1, so the softmax stays soft and gradients flow (measured in this notebook).",
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
