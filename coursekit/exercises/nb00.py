"""Checks and quiz for notebook 00 (welcome)."""

from __future__ import annotations

import torch

from coursekit.exercises.expect import expect_close, expect_dtype, expect_equal, expect_true
from coursekit.exercises.registry import exercise, quiz_question


@exercise(
    "00.1",
    notebook="00",
    title="Count the FLOPs of a matrix product",
    asks="Return the floating-point operations of an (n x k) @ (k x m) product",
    difficulty=1,
    minutes=5,
)
def check_matmul_flops(answer) -> None:
    for n, k, m in [(1, 1, 1), (2, 3, 4), (512, 256, 128), (1000, 1, 7)]:
        got = answer(n, k, m)
        expect_true(
            isinstance(got, (int, float)),
            f"matmul_flops({n}, {k}, {m}) returned a {type(got).__name__}, not a number.",
        )
        expect_equal(
            got,
            2 * n * k * m,
            name=f"matmul_flops({n}, {k}, {m})",
            hint="Each of the n*m outputs is a dot product of length k: k multiplies and k adds.",
        )


@exercise(
    "00.2",
    notebook="00",
    title="Softmax with a temperature",
    asks="Implement softmax(logits / T) over the last dimension, numerically stable",
    difficulty=2,
    minutes=10,
)
def check_softmax_temperature(answer) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, generator=g) * 4
    expect_dtype(answer(logits, 1.0), torch.float32, name="softmax of float32 input")
    expect_dtype(answer(logits.double(), 1.0), torch.float64, name="softmax of float64 input")
    for t in (0.5, 1.0, 3.0):
        expect_close(
            answer(logits, t),
            torch.softmax(logits / t, dim=-1),
            name=f"softmax at T={t}",
            hint="Divide the logits by T, subtract the row maximum, exponentiate, normalise.",
        )
    big = torch.tensor([[1000.0, 999.0, -1000.0]])
    out = answer(big, 1.0)
    expect_close(
        out,
        torch.softmax(big, dim=-1),
        name="softmax of very large logits",
        hint="exp(1000) overflows: subtract the row maximum before exponentiating.",
    )


quiz_question(
    "00.q1",
    notebook="00",
    question="Which run profile does CI use to execute every notebook quickly?",
    options=["gpu", "laptop", "smoke"],
    answer=2,
    explanation="`smoke` shrinks every size so a notebook runs in about a minute; "
    "the stored outputs come from `laptop`.",
)
quiz_question(
    "00.q2",
    notebook="00",
    question="Named-entity recognition (tagging each word as PERSON, PLACE, ...) is which task family?",
    options=[
        "sequence classification",
        "sequence labelling",
        "sequence-to-sequence",
        "extractive QA",
    ],
    answer=1,
    explanation="One label per input token: sequence labelling. Classification gives one label "
    "per whole sequence.",
)
quiz_question(
    "00.q3",
    notebook="00",
    question="Doubling n in an n x n @ n x n matrix product multiplies the work by about...",
    options=["2", "4", "8", "16"],
    answer=2,
    explanation="2 n^3 FLOPs: doubling n gives 2^3 = 8 times the work.",
)
