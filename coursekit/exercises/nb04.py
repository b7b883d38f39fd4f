"""Checks and quiz of notebook 04: positional encodings."""

from __future__ import annotations

import math

import torch

from coursekit.exercises.expect import expect_close, expect_equal, expect_shape, expect_true
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.positional import alibi_bias, apply_rope, sinusoidal_encoding

NB = "04"


@exercise(
    "04.1",
    notebook=NB,
    title="The sinusoidal table",
    asks="Implement my_sinusoidal(n_positions, d_model): channel 2i = sin(pos / 10000^(2i/d)), "
    "channel 2i+1 = cos(...)",
    difficulty=1,
    minutes=10,
)
def check_sinusoidal(answer) -> None:
    pe = answer(12, 8)
    expect_shape(pe, (12, 8), name="my_sinusoidal(12, 8)")
    expect_close(
        pe.double(),
        sinusoidal_encoding(12, 8, dtype=torch.float64),
        name="my_sinusoidal(12, 8)",
        atol=1e-5,
        hint="Even channels take sin, odd ones cos, of the SAME angle pos / 10000^(2i/d) for the pair i.",
    )


@exercise(
    "04.2",
    notebook=NB,
    title="Rotary embeddings",
    asks="Implement my_rope(x, positions): rotate each channel pair (2i, 2i+1) of x (T, d) by "
    "positions[t] * 10000^(-2i/d)",
    difficulty=2,
    minutes=15,
)
def check_rope(answer) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 8, generator=g, dtype=torch.float64)
    pos = torch.arange(6)
    out = answer(x, pos)
    expect_shape(out, (6, 8), name="my_rope(x, positions)")
    expect_close(
        out.double(),
        apply_rope(x, pos),
        name="my_rope(x, positions)",
        atol=1e-6,
        hint="For the pair (a, b) at angle t: (a cos t - b sin t, a sin t + b cos t).",
    )


@exercise(
    "04.3",
    notebook=NB,
    title="ALiBi bias",
    asks="Implement my_alibi(n_heads, t): (n_heads, t, t) bias -m_h |i - j| with slopes "
    "m_h = 2^(-8 h / n_heads), h = 1..n_heads",
    difficulty=2,
    minutes=10,
)
def check_alibi(answer) -> None:
    for n in (4, 8):
        b = answer(n, 5)
        expect_shape(b, (n, 5, 5), name=f"my_alibi({n}, 5)")
        expect_close(
            b.float(),
            alibi_bias(n, 5),
            name=f"my_alibi({n}, 5)",
            hint="Slopes are a geometric sequence starting (and multiplying) by 2^(-8/n); the "
            "bias is the slope times minus the distance |i - j|.",
        )


@exercise(
    "04.4",
    notebook=NB,
    title="Predict: a T5 bucket",
    asks="Bidirectional T5 buckets (32 buckets, max distance 128): which bucket holds a key 3 "
    "positions AFTER the query (relative position +3)?",
    difficulty=1,
    minutes=5,
)
def check_bucket(answer) -> None:
    try:
        value = int(answer)
    except (TypeError, ValueError) as err:
        raise ExerciseFailure("Answer with an integer bucket index.") from err
    expect_equal(
        value,
        19,
        name="bucket",
        hint="Half the 32 buckets (16..31) are for keys after the query; distances below 8 get "
        "their own bucket: 16 + distance.",
    )


@exercise(
    "04.5",
    notebook=NB,
    title="Predict: what is position-dependent after RoPE?",
    asks="After RoPE, q_m . k_n depends on m and n only through ... ? Give the dot product for "
    "q = k = (1, 0), d = 2, theta = 1, m = 3, n = 1 (a number)",
    difficulty=2,
    minutes=5,
)
def check_rope_dot(answer) -> None:
    value = float(answer)
    expect_true(
        math.isclose(value, math.cos(2.0), abs_tol=1e-6),
        f"{value:g} is not right.",
        hint="Rotating q by 3 and k by 1 leaves an angle of m - n = 2 between them: cos(2).",
    )


quiz_question(
    "04.q1",
    notebook=NB,
    question="You shuffle the tokens of a sentence and feed them to self-attention with no positional "
    "information. What happens to the outputs?",
    options=[
        "They are unchanged",
        "They are shuffled the same way (permutation equivariance)",
        "They become random",
        "They are reversed",
    ],
    answer=1,
    explanation="Each output is a weighted sum over a *set* of keys; permuting inputs just permutes "
    "outputs. Word order is invisible until we add positions.",
)
quiz_question(
    "04.q2",
    notebook=NB,
    question="A GPT-2 model has 1,024 learned position embeddings. What happens at token 1,025?",
    options=[
        "It reuses position 0",
        "There is no embedding for it: the model cannot process it without changes",
        "The sinusoid extends automatically",
        "ALiBi takes over",
    ],
    answer=1,
    explanation="Learned absolute embeddings are a lookup table of fixed size; positions beyond it "
    "were never trained and do not exist.",
)
quiz_question(
    "04.q3",
    notebook=NB,
    question="Which scheme adds nothing to the embeddings and has no parameters, but biases each "
    "head's scores by -m |i - j|?",
    options=["Sinusoidal", "T5 relative bias", "ALiBi", "RoPE"],
    answer=2,
    explanation="ALiBi adds a fixed linear penalty with a per-head slope (1/2, 1/4, ... for 8 heads). "
    "T5's bias is learned per bucket; RoPE rotates q and k instead of adding a bias.",
)
quiz_question(
    "04.q4",
    notebook=NB,
    question="Why does RoPE make the score depend only on the offset m - n?",
    options=[
        "Because it normalises q and k",
        "Rotations compose: R(m)^T R(n) = R(n - m), so q^T R(m)^T R(n) k only sees n - m",
        "Because it uses a learned table",
        "It does not; it encodes absolute position only",
    ],
    answer=1,
    explanation="Each channel pair is a 2-D rotation; the product of two rotation matrices is the "
    "rotation by the difference of the angles.",
)
