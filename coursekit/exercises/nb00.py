"""Checks and quiz for notebook 00 (welcome)."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch

from coursekit.exercises.expect import (
    a_type,
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
                hint="Your answers switch between the exact count and the rounded one: pick "
                "ONE formula and use it for every shape. " + _FLOPS_HINT,
            )
        if not matching:
            known = {
                n * k * m: _MULTIPLICATIONS_ONLY_HINT,
                2 * n * k * k: "The product has n*m outputs (rows of the first matrix times "
                "columns of the second); k is the length of each dot product. " + _FLOPS_HINT,
                2 * n * m: "You counted 2 operations per output, but each output is a dot "
                "product of length k, which costs about 2k. " + _FLOPS_HINT,
                n * m * (2 * k + 1): "One addition too many per output: summing k products "
                "takes k-1 additions, not k+1. " + _FLOPS_HINT,
            }
            hint = known.get(int(got), _FLOPS_HINT) if float(got).is_integer() else _FLOPS_HINT
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


# ------------------------------------------------------------------------------------------
# 00.3 and 00.4: the training loop, then an ablation of its learning rate

#: The learning rates of the ablation (00.4) and its number of steps.
ABLATION_RATES: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0)
ABLATION_STEPS = 30


def line_data(n: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The notebook's noisy line: x (n,) evenly spaced on [-2, 2], y = 1.5 x + 0.5 + noise."""
    x = torch.linspace(-2, 2, n)
    noise = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    return x, 1.5 * x + 0.5 + 0.3 * noise


def _fit_line(
    x: torch.Tensor, y: torch.Tensor, lr: float, steps: int, *, mistake: str | None = None
) -> list[float]:
    """Gradient descent on the mean squared error of y ~ w x + b from w = b = 0.

    Returns the ``steps`` losses, each measured before its update. ``mistake`` makes one of the
    registered wrong versions.
    """
    w = torch.zeros((), dtype=x.dtype, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, requires_grad=True)
    losses: list[float] = []
    for _ in range(steps):
        error = w * x + b - y
        loss = (error**2).sum() if mistake == "sum" else (error**2).mean()
        loss.backward()
        with torch.no_grad():
            for p in (w, b):
                assert p.grad is not None
                p += lr * p.grad if mistake == "ascent" else -lr * p.grad
                if mistake != "no_zero_grad":
                    p.grad.zero_()
        if mistake == "after_update":
            with torch.no_grad():
                losses.append(float(((w * x + b - y) ** 2).mean()))
        else:
            losses.append(loss.item())
    return losses


def _fit_line_reference(x: torch.Tensor, y: torch.Tensor, lr: float, steps: int) -> list[float]:
    return _fit_line(x, y, lr, steps)


_LOOP_IDEA = (
    " Each step: the loss of the current w and b, loss.backward(), w and b moved by -lr times "
    "their gradients (under torch.no_grad(), or with torch.optim.SGD), the gradients set back "
    "to zero, and the loss appended."
)


@exercise(
    "00.3",
    notebook="00",
    title="Write the training loop",
    asks="fit_line(x, y, lr, steps) -> list of floats: gradient descent on the mean squared "
    "error of y ~ w x + b from w = b = 0, returning the loss measured before each update",
    difficulty=2,
    minutes=15,
    reference=_fit_line_reference,
    wrong_answers={
        "no zero_grad (gradients accumulate)": partial(_fit_line, mistake="no_zero_grad"),
        "gradient ascent (+ lr * grad)": partial(_fit_line, mistake="ascent"),
        "loss recorded after the update": partial(_fit_line, mistake="after_update"),
        "sum of squares instead of the mean": partial(_fit_line, mistake="sum"),
    },
)
def check_fit_line(answer: Any) -> None:
    """The loss history of two runs (30 steps at lr 0.1 on the notebook's line, 12 steps at lr
    0.05 on another) within 1e-4 of the reference, each a list of ``steps`` floats.

    Rejects gradients that accumulate across steps (no zero_grad), a step uphill, losses
    recorded after the update instead of before it, and the sum of squares instead of the mean.
    """
    expect_callable(answer, name="fit_line")
    for (x, y), lr, steps in [(line_data(), 0.1, 30), (line_data(20, seed=1), 0.05, 12)]:
        call = f"fit_line(x, y, lr={lr}, steps={steps})"
        got = answer(x, y, lr, steps)
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if not isinstance(got, (list, tuple)) or len(got) != steps:
            raise ExerciseFailure(
                f"{call} should return a list of {steps} losses, one per step; it returned "
                f"{a_type(got)}" + (f" of length {len(got)}." if hasattr(got, "__len__") else "."),
                hint="Append loss.item() (a float) to a list once per step and return the list.",
            )
        values = torch.tensor(
            [as_number(v, name=f"{call}[{i}]") for i, v in enumerate(got)], dtype=torch.float64
        )
        want = torch.tensor(_fit_line(x, y, lr, steps), dtype=torch.float64)

        def made_by(mistake: str) -> torch.Tensor:
            return torch.tensor(_fit_line(x, y, lr, steps, mistake=mistake), dtype=torch.float64)  # noqa: B023

        expect_close(
            values,
            want,
            name=f"the losses of {call}",
            atol=1e-6,
            rtol=1e-4,
            hint="Compare your loop with the description." + _LOOP_IDEA,
            mistakes=[
                (
                    made_by("no_zero_grad"),
                    "The gradients are never reset: loss.backward() ADDS to .grad, so each step "
                    "also applies all the earlier gradients. Zero them after every update "
                    "(w.grad.zero_(), or optimizer.zero_grad()).",
                ),
                (
                    made_by("ascent"),
                    "Your loss grows: the step goes uphill. Move each parameter AGAINST its "
                    "gradient, p -= lr * p.grad.",
                ),
                (
                    made_by("after_update"),
                    "Your losses are one step ahead: record the loss of the current parameters "
                    "(the one you call backward on), before the update, so the first entry is "
                    "the loss at w = b = 0.",
                ),
                (
                    made_by("sum"),
                    "Your losses are len(x) times too big: the loss is the MEAN squared error, "
                    "((w * x + b - y) ** 2).mean(), not the sum.",
                ),
            ],
        )


def _ablation_reference() -> dict[float, float]:
    x, y = line_data()
    return {lr: _fit_line(x, y, lr, ABLATION_STEPS)[-1] for lr in ABLATION_RATES}


def _ablation_answer(pick: str) -> tuple[dict[float, float], list[float]]:
    x, y = line_data()
    runs = {lr: _fit_line(x, y, lr, ABLATION_STEPS) for lr in ABLATION_RATES}
    start = runs[ABLATION_RATES[0]][0]
    if pick == "first":
        finals = {lr: losses[0] for lr, losses in runs.items()}
    elif pick == "best":
        finals = {lr: min(losses) for lr, losses in runs.items()}
    else:
        finals = {lr: losses[-1] for lr, losses in runs.items()}
    if pick == "slowest":
        too_large = [max(finals, key=lambda lr: finals[lr] if finals[lr] < start else -1.0)]
    elif pick == "none":
        too_large = []
    else:
        too_large = [lr for lr in ABLATION_RATES if finals[lr] > start]
    return finals, too_large


@exercise(
    "00.4",
    notebook="00",
    title="Run an ablation: the learning rate",
    asks="(final_losses, too_large): the last loss of fit_line after 30 steps at each learning "
    "rate of ABLATION_RATES (a dict lr -> float), and the list of the rates whose loss ends "
    "above where it started",
    difficulty=2,
    minutes=10,
    reference=_ablation_answer("right"),
    wrong_answers={
        "the first loss instead of the last": _ablation_answer("first"),
        "the best loss of the run instead of the last": _ablation_answer("best"),
        "the slow rate called too large": _ablation_answer("slowest"),
        "no rate too large": _ablation_answer("none"),
    },
)
def check_ablation(answer: Any) -> None:
    """The final losses within 1e-3 (relative) of the reference runs, and exactly the rates
    whose loss ends above its start (1.0 here, where gradient descent diverges).

    Rejects the first or the best loss of a run in place of the last, the slowest converging
    rate named as too large, and an empty list.
    """
    if not isinstance(answer, tuple) or len(answer) != 2:
        raise ExerciseFailure(
            f"The answer should be a pair (final_losses, too_large); it is {a_type(answer)}.",
            hint="ablation = (final_losses, too_large)",
        )
    finals, too_large = answer
    if not isinstance(finals, dict) or sorted(finals) != sorted(ABLATION_RATES):
        raise ExerciseFailure(
            f"final_losses should be a dict with one entry per rate of {ABLATION_RATES}.",
            hint="final_losses = {lr: fit_line(x_line, y_line, lr, ABLATION_STEPS)[-1] "
            "for lr in ABLATION_RATES}",
        )
    want = _ablation_reference()
    x, y = line_data()
    start = _fit_line(x, y, ABLATION_RATES[0], 1)[0]
    for lr in ABLATION_RATES:
        got = as_number(finals[lr], name=f"final_losses[{lr}]")
        if math.isclose(got, want[lr], rel_tol=1e-3):
            continue
        if got < want[lr]:
            hint = (
                "That is lower than where the run ends: take the LAST loss, losses[-1], not the "
                "best one (min): a run that diverges must show its final, huge loss."
            )
        elif math.isclose(got, start, rel_tol=1e-6):
            hint = (
                "That is the loss at the START (w = b = 0), the same for every rate: the "
                "ablation compares where each run ENDS, losses[-1]."
            )
        else:
            hint = "Run fit_line(x_line, y_line, lr, ABLATION_STEPS) and keep losses[-1]."
        raise ExerciseFailure(
            f"final_losses[{lr}] is {show_number(got)}; the run ends at {show_number(want[lr])}.",
            hint=hint,
        )
    if not isinstance(too_large, (list, tuple)):
        raise ExerciseFailure(
            f"too_large should be a list of rates; it is {a_type(too_large)}.",
            hint="too_large = [lr for lr in ABLATION_RATES if final_losses[lr] > start_loss]",
        )
    right = [lr for lr in ABLATION_RATES if want[lr] > start]
    if sorted(too_large) != right:
        slow = [lr for lr in too_large if lr not in right]
        if slow:
            hint = (
                f"{slow} still brings the loss down, just slowly (it ends below the starting "
                f"loss {start:.3f}): a rate is too large when the loss grows, not when it falls "
                "too slowly."
            )
        else:
            hint = (
                "Compare each run's last loss with its first: a rate whose loss ends ABOVE "
                "where it started diverged: it is too large."
            )
        raise ExerciseFailure(f"too_large is {list(too_large)}; expected {right}.", hint=hint)


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
