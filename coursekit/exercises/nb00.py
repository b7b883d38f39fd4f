"""Checks and quiz for notebook 00 (welcome)."""

from __future__ import annotations

from typing import Any

import torch

from coursekit.exercises.expect import (
    as_number,
    expect_callable,
    expect_close,
    expect_dtype,
    show_number,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question


def _flops(n: int, k: int, m: int) -> int:
    return 2 * n * k * m


def _flops_exact(n: int, k: int, m: int) -> int:
    return n * m * (2 * k - 1)


_FLOPS_HINT = (
    "Each of the n*m outputs is a dot product of length k: k multiplications and k-1 additions, "
    "n*m*(2k-1) in all, or 2nkm rounded as in section 4 (both pass)."
)
_MULTIPLICATIONS_ONLY_HINT = (
    "You counted the multiplications only; each of the n*m outputs also needs k-1 additions: "
    "n*m*(2k-1) in all, or 2nkm rounded as in section 4 (both pass)."
)


@exercise(
    "00.1",
    notebook="00",
    title="Count the FLOPs of a matrix product",
    asks="Return the floating-point operations of an (n x k) @ (k x m) product",
    difficulty=1,
    minutes=5,
    reference=_flops,
    also_correct={"exact count n*m*(2k-1)": _flops_exact},
    wrong_answers={
        "multiplications only, n*k*m": lambda n, k, m: n * k * m,
        "wrong dimension, 2*n*k*k": lambda n, k, m: 2 * n * k * k,
        "outputs only, 2*n*m": lambda n, k, m: 2 * n * m,
        "one addition too many, n*m*(2k+1)": lambda n, k, m: n * m * (2 * k + 1),
        "mixes the two conventions": lambda n, k, m: (
            _flops(n, k, m) if n > 100 else _flops_exact(n, k, m)
        ),
    },
)
def check_matmul_flops(answer: Any) -> None:
    """Counts for four shapes, all n*m*(2k-1) (exact) or all 2nkm (k additions per output).

    Rejects counting only the multiplications, a wrong dimension and off-by-one additions.
    """
    expect_callable(answer, name="matmul_flops")
    convention: str | None = None
    for n, k, m in [(2, 3, 4), (512, 256, 128), (1000, 1, 7), (1, 1, 1)]:
        name = f"matmul_flops({n}, {k}, {m})"
        got = as_number(
            answer(n, k, m), name=name, hint="Return an int (or a float) computed from n, k and m."
        )
        counts = {"exact": _flops_exact(n, k, m), "rounded": _flops(n, k, m)}
        matching = [c for c, value in counts.items() if got == value]
        if convention is not None and convention not in matching:
            raise ExerciseFailure(
                f"{name} is {show_number(got)}, expected {counts[convention]} (your other "
                f"answers use the {convention} count).",
                hint=_FLOPS_HINT,
            )
        if not matching:
            hint = _MULTIPLICATIONS_ONLY_HINT if got == n * k * m else _FLOPS_HINT
            raise ExerciseFailure(
                f"{name} is {show_number(got)}, expected {counts['exact']} (exact) or "
                f"{counts['rounded']} (2nkm).",
                hint=hint,
            )
        if convention is None and len(matching) == 1:
            convention = matching[0]


def _softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    scaled = logits / temperature
    weights = (scaled - scaled.max(dim=-1, keepdim=True).values).exp()
    return weights / weights.sum(dim=-1, keepdim=True)


def _softmax_t_naive(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    weights = (logits / temperature).exp()
    return weights / weights.sum(dim=-1, keepdim=True)


@exercise(
    "00.2",
    notebook="00",
    title="Softmax with a temperature",
    asks="Implement softmax(logits / T) over the last dimension, numerically stable",
    difficulty=2,
    minutes=10,
    reference=_softmax_t,
    wrong_answers={
        "ignores the temperature": lambda x, t: torch.softmax(x, dim=-1),
        "multiplies by T": lambda x, t: torch.softmax(x * t, dim=-1),
        "softmax over the first dimension": lambda x, t: torch.softmax(x / t, dim=0),
        "no max subtraction (overflows)": _softmax_t_naive,
        "hard-codes float32": lambda x, t: torch.softmax(x.float() / t, dim=-1),
    },
)
def check_softmax_temperature(answer: Any) -> None:
    """Keeps the dtype; equals softmax(logits / T, dim=-1) at three temperatures; survives logits of 1000.

    Rejects a missing or inverted temperature, the wrong axis and the overflowing exp(1000).
    """
    expect_callable(answer, name="softmax_with_temperature")
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
            mistakes=[
                (
                    torch.softmax(logits, dim=-1),
                    "The temperature has no effect in your answer: divide the logits by T.",
                ),
                (
                    torch.softmax(logits * t, dim=-1),
                    "Divide the logits by T (T > 1 flattens), do not multiply.",
                ),
                (
                    torch.softmax(logits / t, dim=0),
                    "Normalise over the last dimension (dim=-1, keepdim=True): each row sums to 1.",
                ),
            ],
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
    options=["smoke", "laptop", "gpu"],
    answer=0,
    explanation="`smoke` shrinks every size so a notebook runs in about a minute; "
    "the stored outputs come from `laptop`.",
    feedback=[
        "",
        "`laptop` is the profile the stored outputs come from: a few minutes per training on a "
        "CPU, too slow to run every notebook on each change.",
        "`gpu` runs the full sizes, the slowest of the three profiles: it is what a machine with "
        "CUDA gets by default, not what a quick check needs.",
    ],
)

quiz_question(
    "00.q2",
    notebook="00",
    question="Named-entity recognition (tagging each word as PERSON, PLACE, ...) is which task family?",
    options=[
        "sequence classification",
        "sequence-to-sequence",
        "extractive QA",
        "sequence labelling",
    ],
    answer=3,
    explanation="One label per input token: sequence labelling. Classification gives one label "
    "per whole sequence.",
    feedback=[
        "Sequence classification gives one label to the whole input (this review is positive); "
        "NER needs a label for every word.",
        "Sequence-to-sequence writes a new sequence of its own length (a translation); NER's "
        "output is aligned one to one with the input words.",
        "Extractive QA picks one span of a passage in answer to a question; NER labels every "
        "word, and there is no question.",
        "",
    ],
)

quiz_question(
    "00.q3",
    notebook="00",
    question="Doubling n in an n x n @ n x n matrix product multiplies the work by about...",
    options=["2", "4", "8", "16"],
    answer=2,
    explanation="2 n^3 FLOPs: doubling n gives 2^3 = 8 times the work.",
    feedback=[
        "Work proportional to n would double; but each of the n^2 outputs is a dot product of "
        "length n, so the work grows as n^3.",
        "n^2 counts the outputs only; each of them also costs n multiplications and about as "
        "many additions, hence n^3.",
        "",
        "16 = 2^4 would need work growing as n^4; a product of two n x n matrices takes about "
        "2 n^3 FLOPs.",
    ],
)
