"""Checks and quiz of notebook 03: attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from coursekit.exercises.expect import expect_close, expect_equal, expect_shape, expect_true
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

NB = "03"


@exercise(
    "03.1",
    notebook=NB,
    title="Scaled dot-product attention",
    asks="Implement attention(q, k, v, mask=None) = softmax(q k^T / sqrt(d_k)) v with a boolean "
    "mask (True = may attend)",
    difficulty=1,
    minutes=10,
)
def check_sdpa(answer) -> None:
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 5, 8, generator=g) for _ in range(3))
    out = answer(q, k, v)
    expect_shape(out, (2, 5, 8), name="output")
    expect_close(
        out,
        F.scaled_dot_product_attention(q, k, v),
        name="output without a mask",
        hint="Scores are q @ k.transpose(-2, -1) / sqrt(d_k), softmax over the last (key) axis.",
    )
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    expect_close(
        answer(q, k, v, mask),
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        name="output with a causal mask",
        hint="Set the scores of disallowed keys to -inf (scores.masked_fill(~mask, float('-inf'))) "
        "before the softmax.",
    )


@exercise(
    "03.2",
    notebook=NB,
    title="A causal mask",
    asks="Implement my_causal_mask(t) -> (t, t) bool tensor, True where query i may see key j",
    difficulty=1,
    minutes=5,
)
def check_causal(answer) -> None:
    for t in (1, 4, 7):
        m = answer(t)
        expect_shape(m, (t, t), name=f"mask for t={t}")
        if m.dtype != torch.bool:
            raise ExerciseFailure(
                f"The mask should be boolean, got {m.dtype}.", hint="Use .bool()."
            )
        expect_equal(
            m.tolist(),
            torch.ones(t, t).tril().bool().tolist(),
            name=f"mask for t={t}",
            hint="Query i sees keys 0..i: the lower triangle including the diagonal (torch.tril).",
        )


@exercise(
    "03.3",
    notebook=NB,
    title="Predict: the spread of a dot product",
    asks="q and k have d_k = 64 independent N(0, 1) entries. What is the standard deviation of q . k?",
    difficulty=1,
    minutes=5,
)
def check_std(answer) -> None:
    value = float(answer)
    expect_true(
        abs(value - 8.0) < 1e-6,
        f"{value:g} is not right.",
        hint="Each product q_i k_i has mean 0 and variance 1; a sum of 64 independent ones has "
        "variance 64.",
    )


@exercise(
    "03.4",
    notebook=NB,
    title="Split into heads",
    asks="Implement split_heads(x, n_heads): (B, T, D) -> (B, n_heads, T, D // n_heads); pass "
    "(split_heads, merge_heads) with the given merge_heads",
    difficulty=2,
    minutes=10,
)
def check_heads(answer) -> None:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ExerciseFailure("Pass the pair (split_heads, merge_heads).")
    split, merge = answer
    x = torch.arange(2 * 3 * 12, dtype=torch.float32).view(2, 3, 12)
    y = split(x, 4)
    expect_shape(y, (2, 4, 3, 3), name="split_heads(x, 4)")
    expect_close(
        y,
        x.view(2, 3, 4, 3).transpose(1, 2),
        name="split_heads(x, 4)",
        hint="Head h owns channels h*d_head .. (h+1)*d_head - 1: view as (B, T, H, d_head), "
        "then swap T and H.",
    )
    expect_close(
        merge(y),
        x,
        name="merge_heads(split_heads(x))",
        hint="merge_heads is given: if it fails, your split must be its exact inverse.",
    )


@exercise(
    "03.5",
    notebook=NB,
    title="Predict: the quadratic cost",
    asks="Self-attention at T = 1,000 tokens computes a score matrix. How many times more "
    "multiply-adds does the score matrix QK^T need at T = 4,000 (same d)?",
    difficulty=1,
    minutes=5,
)
def check_cost(answer) -> None:
    value = float(answer)
    expect_true(
        math.isclose(value, 16.0),
        f"{value:g} is not right.",
        hint="QK^T has T x T entries, each a d-long dot product: cost T^2 d.",
    )


quiz_question(
    "03.q1",
    notebook=NB,
    question="Why does the Transformer divide the scores by sqrt(d_k)?",
    options=[
        "To make attention weights sum to one",
        "Dot products of d_k-dimensional vectors have variance ~ d_k; without scaling the softmax "
        "saturates and its gradients vanish",
        "To save memory",
        "Because the keys are normalised to unit length",
    ],
    answer=1,
    explanation="With unit-variance entries q.k has standard deviation sqrt(d_k); dividing brings "
    "it back to ~1, so the softmax stays soft and gradients flow (measured in this notebook).",
)
quiz_question(
    "03.q2",
    notebook=NB,
    question="In cross-attention of a translation model, where do queries, keys and values come from?",
    options=[
        "All three from the encoder",
        "Queries from the decoder, keys and values from the encoder output",
        "Queries from the encoder, keys and values from the decoder",
        "All three from the decoder",
    ],
    answer=1,
    explanation="The decoder asks (queries) and looks up the source sentence (keys to match, values "
    "to read). Self-attention takes all three from one sequence.",
)
quiz_question(
    "03.q3",
    notebook=NB,
    question="Masked scores are set to -inf before the softmax. What does a query row with *every* "
    "key masked give in coursekit?",
    options=["NaN", "A uniform distribution", "Zeros", "An error"],
    answer=2,
    explanation="softmax of all -inf is 0/0 = NaN in a naive implementation; coursekit returns zero "
    "weights (and a zero output) for such rows. A finite -1e9 instead gives a uniform row.",
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
)
