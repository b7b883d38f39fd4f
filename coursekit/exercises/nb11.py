"""Checks and quiz for notebook 11 (scaling: training compute, power-law fits, compute-optimal
model sizes, an iso-FLOP sweep)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from coursekit.exercises.expect import (
    a_type,
    as_number,
    expect_callable,
    expect_number,
    expect_signature,
    show_number,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.scaling import fit_power_law
from coursekit.train.schedules import cosine_schedule

NB = "11"

#: A known mistake for a pair of numbers: what it gives (None: that number is not compared),
#: and the hint that explains it.
PairMistake = tuple[tuple[float | None, float | None], str]


def _as_pair(result: Any, call: str, names: tuple[str, str]) -> tuple[float, float]:
    """The answer's two numbers (a tuple, a list or a 1-D array of two); anything else is
    explained."""
    first, second = names
    if isinstance(result, np.ndarray) and result.ndim == 1:
        result = tuple(result)
    if not isinstance(result, tuple | list) or len(result) != 2:
        what = f"{len(result)} values" if isinstance(result, tuple | list) else a_type(result)
        raise ExerciseFailure(
            f"{call} returned {what}; expected the pair ({first}, {second}).",
            hint=f"End with `return {first}, {second}`: two numbers, in that order.",
        )
    hint = f"Return two plain numbers, `return {first}, {second}`."
    return (
        as_number(result[0], name=f"{first} of {call}", hint=hint),
        as_number(result[1], name=f"{second} of {call}", hint=hint),
    )


def _pair_matches(got: tuple[float, float], pair: Sequence[float | None], rel_tol: float) -> bool:
    return all(
        want is None or math.isclose(have, want, rel_tol=rel_tol, abs_tol=0.0)
        for have, want in zip(got, pair)
    )


def _expect_pair(
    got: tuple[float, float],
    expected: tuple[float, float],
    *,
    call: str,
    names: tuple[str, str],
    rel_tol: float,
    hint: str,
    mistakes: Sequence[PairMistake] = (),
) -> None:
    """Both numbers within ``rel_tol`` of ``expected``; a known mistake gets its own hint (one
    that would give the right pair on this input is passed over)."""
    if _pair_matches(got, expected, rel_tol):
        return
    message = (
        f"{call} gives ({names[0]} = {got[0]:.6g}, {names[1]} = {got[1]:.6g}), expected "
        f"({expected[0]:.6g}, {expected[1]:.6g})."
    )
    for produced, mistake_hint in mistakes:
        if not _pair_matches(expected, produced, rel_tol) and _pair_matches(got, produced, rel_tol):
            raise ExerciseFailure(message, hint=mistake_hint)
    raise ExerciseFailure(message, hint=hint)


# ------------------------------------------------------------------------------------------
# 11.1 the training compute of a GPT, C = 6 N D


def _training_flops_reference(n_layers: int, d_model: int, n_tokens: float) -> float:
    n_params = 12 * n_layers * d_model**2  # per layer: attention 4 d^2 + feed-forward 8 d^2
    return 6.0 * n_params * n_tokens  # 2 N D forward + 4 N D backward


def _training_flops(n_layers: int, d_model: int, n_tokens: float, *, mistake: str) -> float:
    """The 6ND estimate with one of the usual mistakes."""
    per_layer = {
        "no_12": d_model**2,
        "attention_only": 4 * d_model**2,
        "not_squared": d_model,
    }.get(mistake, 12 * d_model**2)
    flops_per_param_token = 2.0 if mistake == "forward_only" else 6.0
    return flops_per_param_token * n_layers * per_layer * n_tokens


_FLOPS_IDEA = (
    " N = 12 * n_layers * d_model**2 (per layer: 4 d^2 in the attention's four projections, "
    "8 d^2 in the feed-forward's two d x 4d matrices), then C = 6 * N * n_tokens."
)


def _flops_mistakes(n_layers: int, d_model: int, n_tokens: float) -> list[tuple[float, str]]:
    c = _training_flops_reference(n_layers, d_model, n_tokens)
    return [
        (
            c / 3,
            "A third of the right compute. One of two things is missing: the backward pass (2 N "
            "FLOPs per token is the forward pass only; the backward pass costs about twice as "
            "much, 6 N in all), or the feed-forward's parameters (4 d^2 per layer is the "
            "attention alone; the feed-forward adds 8 d^2)." + _FLOPS_IDEA,
        ),
        (
            c / 12,
            "12 times too small: N is not n_layers * d_model**2. Each layer holds about 12 d^2 "
            "weights: 4 d x d projections in the attention and two d x 4d matrices in the "
            "feed-forward." + _FLOPS_IDEA,
        ),
        (
            c / n_layers,
            "That is the compute of ONE layer: multiply the parameters per layer by the number "
            "of layers." + _FLOPS_IDEA,
        ),
        (
            c / 6,
            "The factor 6 is missing: training costs about 6 FLOPs per parameter and token "
            "(a multiply and an add in the forward pass, twice that in the backward pass)."
            + _FLOPS_IDEA,
        ),
        (
            c / d_model,
            "d_model must be SQUARED: every weight matrix of a layer is d x d (or d x 4d), so "
            "the parameters grow with d_model**2." + _FLOPS_IDEA,
        ),
        (
            c / (12 * d_model),
            "d_model must be SQUARED and multiplied by 12: a layer holds about 12 d^2 weights, "
            "not d." + _FLOPS_IDEA,
        ),
    ]


#: (n_layers, d_model, n_tokens): a small model first, where every mistake gives its own number
_FLOPS_CASES: list[tuple[int, int, float]] = [
    (4, 256, 2.5e9),
    (12, 768, 1e9),  # GPT-2 small's blocks (85M non-embedding parameters)
    (96, 12288, 300e9),  # GPT-3 175B on its 300B tokens: about 3.1e23
    (2, 64, 1e6),
    (24, 1024, 2e10),
]


@exercise(
    "11.1",
    notebook=NB,
    title="Count the training FLOPs",
    asks="training_flops_6nd(n_layers, d_model, n_tokens) -> float: the training compute "
    "C = 6 N D with N = 12 * n_layers * d_model**2, the non-embedding parameters of a stack "
    "of GPT blocks (attention 4 d^2 + feed-forward 8 d^2 per layer; biases and norms left out)",
    difficulty=1,
    minutes=10,
    reference=_training_flops_reference,
    also_correct={
        "an int": lambda n_layers, d_model, n_tokens: 72 * n_layers * d_model**2 * int(n_tokens),
    },
    wrong_answers={
        "forward only, 2ND": partial(_training_flops, mistake="forward_only"),
        "N = n_layers * d_model**2 (no 12)": partial(_training_flops, mistake="no_12"),
        "attention only, 4 d^2 per layer": partial(_training_flops, mistake="attention_only"),
        "d_model not squared": partial(_training_flops, mistake="not_squared"),
        "one layer only": lambda n_layers, d_model, n_tokens: 72.0 * d_model**2 * n_tokens,
        "no factor 6, C = N D": lambda n_layers, d_model, n_tokens: (
            12.0 * n_layers * d_model**2 * n_tokens
        ),
    },
)
def check_training_flops_6nd(answer: Any) -> None:
    """6 * 12 * n_layers * d_model**2 * n_tokens (relative 1e-6) for (4, 256, 2.5e9),
    GPT-2 small's (12, 768, 1e9) (5.1e17), GPT-3's (96, 12288, 300e9) (3.13e23, close to the
    3.14e23 FLOPs its paper reports), (2, 64, 1e6) and (24, 1024, 2e10); ints or floats.

    Rejects the forward pass only (2ND) and the attention's 4 d^2 per layer alone (both a third
    of the answer: one hint names both), N without the factor 12, one layer only, no factor 6,
    and d_model not squared.
    """
    expect_callable(answer, name="training_flops_6nd")
    expect_signature(
        answer,
        "training_flops_6nd(n_layers, d_model, n_tokens)",
        "def training_flops_6nd(n_layers, d_model, n_tokens)",
        4,
        256,
        2.5e9,
    )
    for n_layers, d_model, n_tokens in _FLOPS_CASES:
        expect_number(
            answer(n_layers, d_model, n_tokens),
            _training_flops_reference(n_layers, d_model, n_tokens),
            name=f"training_flops_6nd({n_layers}, {d_model}, {n_tokens:g})",
            rel_tol=1e-6,
            abs_tol=0.0,
            example="return 6 * n_params * n_tokens",
            hint="Count the parameters first, then the FLOPs per parameter and token."
            + _FLOPS_IDEA,
            mistakes=_flops_mistakes(n_layers, d_model, n_tokens),
        )


# ------------------------------------------------------------------------------------------
# 11.2 fit a power law


def _fit_power_reference(x: Any, y: Any) -> tuple[float, float]:
    # a power law is a straight line in log-log axes: log y = log a + b log x
    fit = fit_power_law(x, y)
    return fit.a, fit.b


def _fit_power(x: Any, y: Any, *, mistake: str) -> tuple[float, float]:
    """A power-law fit with one of the usual mistakes."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if mistake == "no_logs":  # a straight line through the raw values
        b, log_a = np.polyfit(xs, ys, 1)
        return float(np.exp(log_a)), float(b)
    if mistake == "swapped_axes":  # log x regressed on log y
        b, log_a = np.polyfit(np.log(ys), np.log(xs), 1)
        return float(np.exp(log_a)), float(b)
    if mistake == "ends_only":  # the line through the first and the last point
        b = math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])
        return float(ys[0] / xs[0] ** b), float(b)
    a, b = _fit_power_reference(xs, ys)
    if mistake == "base_10":  # natural logs, but a = 10 ** intercept
        return float(10 ** math.log(a)), b
    if mistake == "b_a":
        return b, a
    raise ValueError(f"unknown mistake {mistake!r}")


_FIT_IDEA = (
    " Fit the straight line log y = log a + b log x by least squares over ALL the points "
    "(np.polyfit(u, v, 1) fits v = slope * u + intercept and returns [slope, intercept]), "
    "then undo the logarithm of the intercept in the base you took the logs in."
)


def _fit_mistakes(x: np.ndarray, y: np.ndarray) -> list[PairMistake]:
    a, b = _fit_power_reference(x, y)
    with np.errstate(all="ignore"):
        no_logs_b = _fit_power(x, y, mistake="no_logs")[1]
        swapped_b = _fit_power(x, y, mistake="swapped_axes")[1]
    log_a = math.log(a)
    return [
        (
            (b, a),
            "The two numbers are swapped: return a (the prefactor) first, then b (the exponent).",
        ),
        (
            (None, no_logs_b),
            "That b is the slope of a straight line through the raw values. A power law is a "
            "straight line only in LOG-LOG axes: take the logarithms of x and of y first, and "
            "fit log y against log x." + _FIT_IDEA,
        ),
        (
            (None, swapped_b),
            "The axes are swapped: that fits log x as a function of log y. np.polyfit(u, v, 1) "
            "fits v = slope * u + intercept, so log x goes first and log y second.",
        ),
        (
            (10**log_a, b),
            "b is right, but the logarithm bases are mixed: the intercept of a natural-log fit "
            "is ln a, so a = exp(intercept), not 10 ** intercept (with log10 it would be "
            "10 ** intercept). Use the same base both ways.",
        ),
        (
            (math.exp(log_a / math.log(10)), b),
            "b is right, but the logarithm bases are mixed: the intercept of a log10 fit is "
            "log10 a, so a = 10 ** intercept, not exp(intercept). Use the same base both ways.",
        ),
        (
            _fit_power(x, y, mistake="ends_only"),
            "That is the line through the first and the last point only: exact on perfect "
            "data, but on noisy data it throws away everything in between. Fit the "
            "least-squares line through ALL the points (in log-log axes) instead.",
        ),
    ]


#: exact power laws (a, b, x): Kaplan et al.'s exponents for parameters and data, a cost that
#: grows with the square of the length, and one with a positive fractional exponent
_EXACT_LAWS: list[tuple[float, float, np.ndarray]] = [
    (11.5, -0.076, np.geomspace(1e3, 1e9, 7)),
    (20.3, -0.095, np.geomspace(1e6, 1e9, 5)),
    (3e-9, 2.0, np.array([128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0])),
    (0.8, 0.5, np.geomspace(10.0, 1e5, 9)),
]


def _noisy_law() -> tuple[np.ndarray, np.ndarray]:
    """Losses of 9 runs spread over 4 decades of compute, with 3% multiplicative noise."""
    rng = np.random.default_rng(112)  # its own generator: nobody else's random state moves
    x = np.geomspace(1e17, 1e21, 9)
    return x, 12.0 * x**-0.05 * np.exp(0.03 * rng.standard_normal(x.size))


def _check_fit(answer: Any, x: np.ndarray, y: np.ndarray, what: str) -> None:
    expected = _fit_power_reference(x, y)
    call = f"fit_power(x, y) on {what}"
    got = _as_pair(answer(x.copy(), y.copy()), call, ("a", "b"))
    if _pair_matches(got, expected, 1e-3) and not _pair_matches(got, expected, 1e-6):
        hint = (
            "Very close, but not within 1e-6: compute in float64 (torch.tensor of a Python "
            "list gives float32, about 7 significant digits, too few for logarithms near 20)."
        )
    elif math.isclose(got[1], expected[1], rel_tol=1e-6):
        hint = (
            "b is right and a is not: a = exp(intercept) when the line was fitted to natural "
            "logarithms, 10 ** intercept with log10."
        )
    else:
        hint = "Return (a, b) with y = a * x ** b." + _FIT_IDEA
    _expect_pair(
        got,
        expected,
        call=call,
        names=("a", "b"),
        rel_tol=1e-6,
        hint=hint,
        mistakes=_fit_mistakes(x, y),
    )


@exercise(
    "11.2",
    notebook=NB,
    title="Fit a power law",
    asks="fit_power(x, y) -> (a, b) with y ~ a * x ** b, by least squares of log y against "
    "log x over all the points (x, y: 1-D float64 arrays of positive values; any log base, "
    "used consistently)",
    difficulty=2,
    minutes=15,
    reference=_fit_power_reference,
    also_correct={
        "log10 fit, a = 10 ** intercept": lambda x, y: (
            float(10 ** np.polyfit(np.log10(x), np.log10(y), 1)[1]),
            float(np.polyfit(np.log10(x), np.log10(y), 1)[0]),
        ),
        "coursekit.scaling.fit_power_law": lambda x, y: (
            fit_power_law(x, y).a,
            fit_power_law(x, y).b,
        ),
    },
    wrong_answers={
        "no logs: a line through the raw values": partial(_fit_power, mistake="no_logs"),
        "axes swapped: log x against log y": partial(_fit_power, mistake="swapped_axes"),
        "a = 10 ** intercept after natural logs": partial(_fit_power, mistake="base_10"),
        "(b, a) instead of (a, b)": partial(_fit_power, mistake="b_a"),
        "first and last points only": partial(_fit_power, mistake="ends_only"),
    },
)
def check_fit_power(answer: Any) -> None:
    """Exact power laws (a, b) = (11.5, -0.076) over x = 1e3..1e9, (20.3, -0.095) over
    1e6..1e9, (3e-9, 2) over 128..8192 and (0.8, 0.5) over 10..1e5 must come back within
    relative 1e-6; then 9 noisy losses (3% log-normal noise around 12 C^-0.05, C = 1e17..1e21)
    must give coursekit.scaling.fit_power_law's a and b within 1e-6 (the same least squares).

    Rejects a line through the raw values (no logs), swapped axes (log x fitted against log y),
    a = 10 ** intercept after a natural-log fit, (b, a) in the wrong order, and the line through
    the first and last points only (exact on the exact laws, wrong on the noisy data).
    """
    expect_callable(answer, name="fit_power")
    expect_signature(
        answer,
        "fit_power(x, y)",
        "def fit_power(x, y)",
        np.array([1.0, 10.0]),
        np.array([2.0, 1.0]),
    )
    for a, b, x in _EXACT_LAWS:
        _check_fit(answer, x, a * x**b, f"exact data y = {a:g} x^{b:g}")
    x, y = _noisy_law()
    _check_fit(answer, x, y, "9 noisy losses around y = 12 x^-0.05")


# ------------------------------------------------------------------------------------------
# 11.3 the compute-optimal model size


def _optimal_size_reference(compute: float, tokens_per_param: float = 20.0) -> tuple[float, float]:
    # C = 6 N D with D = r N gives C = 6 r N^2
    n_params = math.sqrt(compute / (6 * tokens_per_param))
    return n_params, tokens_per_param * n_params


def _optimal_size(
    compute: float, tokens_per_param: float = 20.0, *, mistake: str
) -> tuple[float, float]:
    """The compute-optimal size with one of the usual mistakes."""
    r = tokens_per_param
    if mistake == "no_6":
        n = math.sqrt(compute / r)
        return n, r * n
    if mistake == "no_sqrt":
        n = compute / (6 * r)
        return n, r * n
    n, d = _optimal_size_reference(compute, r)
    if mistake == "d_no_6":
        return n, compute / n
    if mistake == "swapped":
        return d, n
    raise ValueError(f"unknown mistake {mistake!r}")


_SIZE_IDEA = (
    " Put D = r N (r = tokens_per_param) into C = 6 N D, solve that for N, and then take D = r N."
)


def _size_mistakes(compute: float, r: float) -> list[PairMistake]:
    n, d = _optimal_size_reference(compute, r)
    return [
        (
            (d, n),
            "The two numbers are swapped: return the parameters first, then the tokens (with "
            "about 20 tokens per parameter, there are far more tokens than parameters).",
        ),
        (
            (math.sqrt(6) * n, math.sqrt(6) * d),
            "Both are sqrt(6) times too big: the 6 of C = 6 N D is missing under the square "
            "root." + _SIZE_IDEA,
        ),
        (
            (compute / (6 * r), None),
            "The square root is missing: C = 6 r N^2 grows with the SQUARE of N, so N is the "
            "square root of C / (6 r)." + _SIZE_IDEA,
        ),
        (
            (n, 6 * d),
            "N is right, D is 6 times too big: compute / N forgets that each token costs 6 N "
            "FLOPs. D = C / (6 N), which is the same as r N.",
        ),
    ]


#: (compute, tokens_per_param): None = call with the default ratio
_SIZE_CASES: list[tuple[float, float | None]] = [
    (5.76e23, None),  # Chinchilla's budget: about 69B parameters and 1.4T tokens
    (3.14e23, 20.0),  # GPT-3's budget: about 51B parameters and 1T tokens, not 175B and 300B
    (1e21, 20.0),
    (6e18, 10.0),
    (1e19, 50.0),
]


@exercise(
    "11.3",
    notebook=NB,
    title="Compute-optimal size",
    asks="compute_optimal_size(compute, tokens_per_param=20.0) -> (n_params, n_tokens): the "
    "model size N and the tokens D = tokens_per_param * N that spend the training compute "
    "C = 6 N D exactly",
    difficulty=2,
    minutes=10,
    reference=_optimal_size_reference,
    wrong_answers={
        "no 6: N = sqrt(C / r)": partial(_optimal_size, mistake="no_6"),
        "no square root: N = C / (6 r)": partial(_optimal_size, mistake="no_sqrt"),
        "D = C / N": partial(_optimal_size, mistake="d_no_6"),
        "(n_tokens, n_params) swapped": partial(_optimal_size, mistake="swapped"),
    },
)
def check_compute_optimal_size(answer: Any) -> None:
    """N = sqrt(C / (6 r)) and D = r N within relative 1e-6 for Chinchilla's budget
    C = 5.76e23 with the default r = 20 (about 69B parameters and 1.4T tokens; the real model
    has 70B and 1.4T), GPT-3's 3.14e23 (about 51B parameters and 1.0T tokens, where GPT-3 spent
    it on 175B and 300B), 1e21 with r = 20, 6e18 with r = 10 and 1e19 with r = 50.

    Rejects N = sqrt(C / r) (the 6 forgotten), N = C / (6 r) (no square root), D = C / N, and
    the pair returned as (tokens, parameters).
    """
    expect_callable(answer, name="compute_optimal_size")
    expect_signature(
        answer,
        "compute_optimal_size(compute, tokens_per_param=...)",
        "def compute_optimal_size(compute, tokens_per_param=20.0)",
        1e21,
        tokens_per_param=20.0,
    )
    for compute, r in _SIZE_CASES:
        if r is None:
            call = f"compute_optimal_size({compute:g})"
            result = answer(compute)
            r = 20.0
        else:
            call = f"compute_optimal_size({compute:g}, tokens_per_param={r:g})"
            result = answer(compute, tokens_per_param=r)
        _expect_pair(
            _as_pair(result, call, ("n_params", "n_tokens")),
            _optimal_size_reference(compute, r),
            call=call,
            names=("n_params", "n_tokens"),
            rel_tol=1e-6,
            hint="The pair must spend the whole budget, 6 * N * D = C, with D = tokens_per_param"
            " * N (tokens_per_param defaults to 20)." + _SIZE_IDEA,
            mistakes=_size_mistakes(compute, r),
        )


# ------------------------------------------------------------------------------------------
# 11.4 plan an iso-FLOP sweep


def _steps_reference(compute: float, n_params: Sequence[float], tokens_per_step: int) -> list[int]:
    # each step trains on tokens_per_step tokens at about 6 N FLOPs each
    return [max(1, round(compute / (6 * n * tokens_per_step))) for n in n_params]


def _steps(
    compute: float, n_params: Sequence[float], tokens_per_step: int, *, mistake: str
) -> list[Any]:
    """The steps of an iso-FLOP sweep with one of the usual mistakes."""
    if mistake == "same":  # the first size's steps for every size
        return [max(1, round(compute / (6 * n_params[0] * tokens_per_step)))] * len(n_params)
    if mistake == "precedence":  # compute / 6 * n * tokens_per_step
        return [max(1, round(compute / 6 * n * tokens_per_step)) for n in n_params]
    if mistake == "float":
        return [compute / (6 * n * tokens_per_step) for n in n_params]
    if mistake == "no_minimum":
        return [round(compute / (6 * n * tokens_per_step)) for n in n_params]
    per_token = {"no_6": 1, "forward": 2}[mistake]
    return [max(1, round(compute / (per_token * n * tokens_per_step))) for n in n_params]


_STEPS_IDEA = (
    " One step trains on tokens_per_step tokens at about 6 N FLOPs each, so a model of N "
    "parameters gets steps = compute / (6 * N * tokens_per_step), rounded to a whole number "
    "and at least 1."
)

#: (FLOPs per parameter and token a mistake uses, its hint)
_STEPS_FACTORS: list[tuple[float, str]] = [
    (
        1.0,
        "6 times too many steps: the 6 is missing. Training one token costs about 6 N FLOPs "
        "(2 N forward, 4 N backward), so the budget buys 6 times fewer tokens than "
        "compute / N." + _STEPS_IDEA,
    ),
    (
        2.0,
        "3 times too many steps: 2 N FLOPs per token is the forward pass alone. The backward "
        "pass costs about twice as much again: 6 N per training token." + _STEPS_IDEA,
    ),
]

#: (compute, n_params, tokens_per_step): in the third the sizes are not sorted and the largest
#: model affords only a quarter of a step
_STEPS_CASES: list[tuple[float, list[int], int]] = [
    (3e13, [200_000, 500_000, 1_000_000, 2_000_000], 4096),
    (6e17, [20_000_000, 80_000_000, 320_000_000], 524_288),
    (2e10, [3_000_000, 100_000, 1_000_000], 4096),
    (1e18, [125_000_000], 524_288),
]


def _as_steps(result: Any, n_models: int, call: str) -> list[int]:
    """The answer as a list of ints, one per model size."""
    if isinstance(result, np.ndarray) and result.ndim == 1:
        result = list(result)
    if not isinstance(result, list | tuple):
        raise ExerciseFailure(
            f"{call} returned {a_type(result)}; expected a list of step counts.",
            hint="Return a list with one whole number of steps per model size, in the order "
            "of n_params.",
        )
    if len(result) != n_models:
        raise ExerciseFailure(
            f"{call} returned {len(result)} values for {n_models} model sizes.",
            hint="One number of steps per entry of n_params, in the same order.",
        )
    for value in result:
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
            whole = float(value).is_integer()
            raise ExerciseFailure(
                f"{call} holds {value!r}, a {'whole ' if whole else ''}float.",
                hint="Convert each count with int(...): steps are counts, and range(steps) "
                "needs an int."
                if whole
                else "Steps are whole: round each value to the nearest integer and make it an "
                "int (int(round(...)), or Python's round(), which returns an int).",
            )
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise ExerciseFailure(
                f"{call} holds {value!r} ({a_type(value)}), not a number of steps.",
                hint="Each entry is an int: the number of optimizer steps for that model size.",
            )
    return [int(value) for value in result]


def _check_steps(
    got: list[int], exact: list[float], case: tuple[float, list[int], int], call: str
) -> None:
    compute, n_params, tokens_per_step = case
    if all(s >= 1 and abs(s - e) <= 1 for s, e in zip(got, exact)):
        return
    shown = "[" + ", ".join(show_number(round(e, 2)) for e in exact) + "]"
    message = f"{call} gives {got}; the exact values are {shown}."
    if min(got) < 1:
        raise ExerciseFailure(
            message,
            hint="Every model trains for at least one step: rounding a value below 0.5 gives "
            "0, so take max(1, ...).",
        )
    if len(got) > 1 and len(set(got)) == 1:
        raise ExerciseFailure(
            message,
            hint="Every size gets the same number of steps, so the bigger models spend more "
            "compute than the smaller ones. In an iso-FLOP sweep the BUDGET is fixed: a model "
            "twice as big can afford half as many steps." + _STEPS_IDEA,
        )
    sizes = list(zip(n_params, got))
    if any(n1 < n2 and s1 < s2 for n1, s1 in sizes for n2, s2 in sizes):
        raise ExerciseFailure(
            message,
            hint="A bigger model gets MORE steps here; with a fixed budget it must get fewer. "
            "N belongs in the denominator: divide the compute by the whole product "
            "6 * N * tokens_per_step (in parentheses)." + _STEPS_IDEA,
        )
    for per_token, hint in _STEPS_FACTORS:
        variant = [max(1.0, compute / (per_token * n * tokens_per_step)) for n in n_params]
        if all(abs(s - v) <= 1 for s, v in zip(got, variant)):
            raise ExerciseFailure(message, hint=hint)
    raise ExerciseFailure(
        message, hint="Each entry must be within 1 of the exact value." + _STEPS_IDEA
    )


@exercise(
    "11.4",
    notebook=NB,
    title="Plan an iso-FLOP sweep",
    asks="iso_flop_steps(compute, n_params, tokens_per_step) -> list[int]: for each model size "
    "N in n_params, the optimizer steps that spend the same compute, "
    "6 * N * steps * tokens_per_step ~ compute: round(compute / (6 * N * tokens_per_step)), "
    "at least 1",
    difficulty=3,
    minutes=20,
    reference=_steps_reference,
    also_correct={
        "rounded down": lambda compute, n_params, tokens_per_step: [
            max(1, int(compute // (6 * n * tokens_per_step))) for n in n_params
        ],
        "a NumPy int64 array": lambda compute, n_params, tokens_per_step: np.maximum(
            1, np.rint(compute / (6 * np.asarray(n_params) * tokens_per_step))
        ).astype(np.int64),
    },
    wrong_answers={
        "the same steps for every size": partial(_steps, mistake="same"),
        "no factor 6": partial(_steps, mistake="no_6"),
        "2 instead of 6 (forward only)": partial(_steps, mistake="forward"),
        "steps grow with N: compute / 6 * n * tokens_per_step": partial(
            _steps, mistake="precedence"
        ),
        "floats, not rounded": partial(_steps, mistake="float"),
        "no minimum of one step": partial(_steps, mistake="no_minimum"),
    },
)
def check_iso_flop_steps(answer: Any) -> None:
    """For budgets 3e13 (sizes 0.2M, 0.5M, 1M, 2M; 4096 tokens per step), 6e17 (20M, 80M,
    320M; 524,288), 2e10 (unsorted sizes 3M, 0.1M, 1M; 4096: the 3M model affords only 0.27 of
    a step) and 1e18 (one 125M model; 524,288): one int (Python or NumPy) per size, at least 1
    and within 1 of compute / (6 N tokens_per_step), so that rounding to the nearest, down or
    up all pass and bigger models get fewer steps.

    Rejects the same steps for every size, no factor 6, 2 N FLOPs per token (forward only),
    steps that grow with N (compute / 6 * N * tokens_per_step), floats that are not whole, and
    0 steps for a model that affords less than half a step.
    """
    expect_callable(answer, name="iso_flop_steps")
    expect_signature(
        answer,
        "iso_flop_steps(compute, n_params, tokens_per_step)",
        "def iso_flop_steps(compute, n_params, tokens_per_step)",
        1e15,
        [100_000],
        8192,
    )
    for case in _STEPS_CASES:
        compute, n_params, tokens_per_step = case
        call = f"iso_flop_steps({compute:g}, {n_params}, {tokens_per_step})"
        got = _as_steps(answer(compute, list(n_params), tokens_per_step), len(n_params), call)
        exact = [compute / (6 * n * tokens_per_step) for n in n_params]
        _check_steps(got, exact, case, call)


# ------------------------------------------------------------------------------------------
# 11.5 warm-up and cosine decay, then the warm-up ablation


def _schedule_reference(step: int, total_steps: int, warmup: int, min_ratio: float = 0.1) -> float:
    return cosine_schedule(step, total_steps=total_steps, warmup=warmup, min_ratio=min_ratio)


def _schedule(
    step: int, total_steps: int, warmup: int, min_ratio: float = 0.1, *, mistake: str
) -> float:
    """The multiplier with one of the usual mistakes."""
    if warmup > 0 and step < warmup:
        return step / warmup if mistake == "warmup_from_zero" else (step + 1) / warmup
    if mistake == "decay_from_zero":  # the cosine counted from step 0, not from the warm-up's end
        progress = min(step / total_steps, 1.0)
    else:
        progress = min(max(step - warmup, 0) / max(total_steps - warmup, 1), 1.0)
    floor = 0.0 if mistake == "no_floor" else min_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


_SCHEDULE_IDEA = (
    " The multiplier rises linearly during the warm-up, (step + 1) / warmup for step < warmup, "
    "then follows half a cosine from 1 down to min_ratio, over the steps after the warm-up: "
    "progress = (step - warmup) / (total_steps - warmup), capped at 1, and multiplier = "
    "min_ratio + (1 - min_ratio) * (1 + cos(pi * progress)) / 2."
)

#: (total_steps, warmup, min_ratio)
_SCHEDULE_CASES: list[tuple[int, int, float]] = [(100, 10, 0.1), (50, 0, 0.1), (1000, 250, 0.0)]


@exercise(
    "11.5",
    notebook=NB,
    title="Warm-up and cosine decay, then the ablation",
    asks="lr_multiplier(step, total_steps, warmup, min_ratio=0.1) -> float: the learning-rate "
    "multiplier at step (counting from 0): linear warm-up (step + 1) / warmup over the first "
    "warmup steps, then a cosine from 1 down to min_ratio, reached at step == total_steps",
    difficulty=2,
    minutes=15,
    reference=_schedule_reference,
    wrong_answers={
        "warm-up from 0 (step / warmup)": partial(_schedule, mistake="warmup_from_zero"),
        "cosine counted from step 0": partial(_schedule, mistake="decay_from_zero"),
        "decays to 0, no floor": partial(_schedule, mistake="no_floor"),
    },
)
def check_lr_multiplier(answer: Any) -> None:
    """Every step 0 .. total_steps + 5 of three schedules (100 steps with 10 of warm-up and a
    floor of 0.1; 50 steps without warm-up; 1,000 steps with 250 of warm-up and no floor),
    within 1e-9 of the package's ``cosine_schedule``.

    Rejects a warm-up that starts at 0 (step / warmup: the first step would not learn), a cosine
    counted from step 0 instead of from the end of the warm-up (it drops at once after the
    warm-up), and a decay to 0 instead of min_ratio.
    """
    expect_callable(answer, name="lr_multiplier")
    expect_signature(
        answer,
        "lr_multiplier(step, total_steps, warmup, min_ratio)",
        "def lr_multiplier(step, total_steps, warmup, min_ratio=0.1)",
        0,
        10,
        2,
        0.1,
    )
    for total, warmup, floor in _SCHEDULE_CASES:
        # the telling steps first (the start, the end of the warm-up, the end), then all
        for step in [0, warmup, total, *range(total + 6)]:
            call = f"lr_multiplier({step}, {total}, {warmup}, {floor})"
            got = as_number(answer(step, total, warmup, floor), name=call)
            want = _schedule_reference(step, total, warmup, floor)
            if abs(got - want) <= 1e-9:
                continue
            message = f"{call} = {show_number(got)}; expected {show_number(want)}."
            if warmup and step == 0 and abs(got) < 1e-12:
                hint = (
                    "The first step gets 0: a learning rate of 0 wastes that step. Count the "
                    "warm-up from 1: (step + 1) / warmup, which reaches 1 at the last warm-up "
                    "step."
                )
            elif warmup and step == warmup and got < 1 - 1e-9:
                hint = (
                    "Right after the warm-up the multiplier should be back at its peak, 1: the "
                    "cosine starts where the warm-up ends, so measure its progress from step "
                    "warmup, not from step 0."
                )
            elif step >= total and floor > 0 and abs(got) < 1e-9:
                hint = (
                    "At the end the multiplier falls to 0 instead of min_ratio: the cosine "
                    "runs from 1 down to min_ratio, min_ratio + (1 - min_ratio) * (1 + cos) / 2."
                )
            else:
                hint = "Compare your formula with the description." + _SCHEDULE_IDEA
            raise ExerciseFailure(message, hint=hint)


# ------------------------------------------------------------------------------------------
# quiz

quiz_question(
    "11.q1",
    notebook=NB,
    question="Over many decades of training compute C, the final loss of well-tuned language "
    "models falls on a power law (a straight line in log-log axes). What does that let a lab "
    "do?",
    options=[
        "Skip the big run altogether: the fitted line also gives the weights of the large model",
        "Reach any loss it wants: each doubling of compute removes the same amount of loss, so "
        "the loss goes to zero with enough compute",
        "Train a series of small, cheap models, fit the line, and predict the loss of a run "
        "hundreds of times bigger before spending its compute (and choose its size and data "
        "the same way). It remains an extrapolation: it holds only while the data and the "
        "recipe stay the same, and the curve levels off at an irreducible loss (the entropy "
        "of the text itself), so the fit should include that floor, L = E + A C^(-alpha)",
        "Read off the best learning rate of the big run: it equals the exponent of the power law",
    ],
    answer=2,
    explanation="A power law fitted on small runs is a forecast: extend the line to the large "
    "budget and it predicts the loss, which lets a lab choose the model size and the data, and "
    "check that a big run is on track, before paying for it. GPT-4's report, for instance, "
    "predicted its final loss from runs with up to 10,000 times less compute. Two limits: the "
    "forecast is an extrapolation (a change of data, architecture or recipe moves the line), "
    "and text has an irreducible loss, so the curve flattens towards a floor E instead of "
    "going to zero. (a) The fit predicts a number, the loss; the weights still have to be "
    "trained. (b) A power law removes the same FRACTION of the reducible loss per doubling, "
    "ever smaller amounts, and the floor E remains. (d) The exponent describes how fast the "
    "loss falls with compute; the learning rate is a separate hyperparameter that has to be "
    "tuned (and itself changes with the model size).",
)

quiz_question(
    "11.q2",
    notebook=NB,
    question="Kaplan et al. (2020) advised spending most of a growing compute budget on bigger "
    "models; Hoffmann et al. (2022, Chinchilla) concluded that models like GPT-3 and Gopher "
    "were under-trained. What did the later study find, and why did the two disagree?",
    options=[
        "At the optimum, parameters and training tokens should grow in equal proportion with "
        "compute (both about as C^0.5), about 20 tokens per parameter: GPT-3 saw under 2 tokens "
        "per parameter. Hoffmann et al. trained each model with a learning-rate schedule that "
        "ends at that run's length, while Kaplan et al. used one schedule and token count for "
        "all their models (mostly small ones), which misjudges the runs the schedule does not "
        "fit and tilts the fit towards parameters",
        "Data matters less than parameters: the best model size grows about three times faster "
        "than the number of tokens, so GPT-3 was too small for its data",
        "The two agree once the tokenizers are matched: Chinchilla's tokens are shorter, and "
        "20 of them carry about as much text as one of Kaplan's",
        "Kaplan et al. measured the training loss and Hoffmann et al. the validation loss; on "
        "held-out text, extra data is worth more, which moves the optimum towards tokens",
    ],
    answer=0,
    explanation="Hoffmann et al. fitted compute-optimal sizes in three ways (the best model of "
    "each budget, iso-FLOP curves, a parametric loss) and found N* and D* both growing about "
    "as C^0.5, so doubling the compute should double neither the parameters alone nor the "
    "data alone, but multiply both by about 1.4; the optimum sits near 20 tokens per "
    "parameter. Chinchilla, 70B parameters on 1.4T tokens, used Gopher's compute and beat the "
    "280B Gopher. One reason they gave for the disagreement: Kaplan et al. trained every model "
    "with the same learning-rate schedule and number of tokens, so the runs were not tuned to "
    "their length, and most of their models were small. (b) is Kaplan's "
    "parameter-heavy advice turned into the conclusion, the opposite of what Chinchilla found. "
    "(c) The tokenizers were similar, and nothing rescales tokens by a factor of 20. (d) In "
    "single-epoch training every token is new, so the training loss is an unbiased estimate "
    "of the held-out loss; that is not where the two differ.",
)

quiz_question(
    "11.q3",
    notebook=NB,
    question="A model is trained with data parallelism on k processes (PyTorch's "
    "DistributedDataParallel). Which statement is right?",
    options=[
        "Each process holds a slice of the layers and passes its activations to the next "
        "process, like stages of a pipeline",
        "Each process trains its own model on its own part of the data, and the k models are "
        "averaged once, at the end of training",
        "Each process updates its own copy with its own gradient, and the copies are averaged "
        "every hundred steps to keep them close",
        "Each process holds a full copy of the model and the optimizer and runs forward and "
        "backward on its own shard of the global batch; the gradients are then all-reduced "
        "(averaged over the k processes), so every copy takes the same step and the copies "
        "stay identical. With equal shards and a mean loss, that step is the one a single "
        "process would take on the whole global batch",
    ],
    answer=3,
    explanation="Data parallelism splits the batch, not the model: every process computes the "
    "gradient of its shard, and one all-reduce leaves the average of the k gradients on every "
    "process. The mean of k shard means is the mean over the global batch, so the update is "
    "the one of a single process with k times the batch (up to floating-point rounding, and "
    "layers such as batch norm that look at the whole batch); since all copies start equal "
    "and take the same steps, they stay equal. (a) describes pipeline (model) parallelism. "
    "(b) Models trained apart drift into different solutions; averaging them at the end is not "
    "the same as training one model on all the data. (c) describes local SGD, which saves "
    "communication but is not what data-parallel training does; it is not equivalent to the "
    "global batch.",
)

quiz_question(
    "11.q4",
    notebook=NB,
    question="To measure how the final loss depends on the number of training tokens, someone "
    "trains one model for 100,000 steps with warm-up and a cosine learning-rate schedule that "
    "decays over those 100,000 steps, and takes the losses at steps 10,000, 20,000, ..., "
    "100,000 as the final losses of runs of those lengths. What is wrong?",
    options=[
        "Nothing: same model, same data, so the loss after 20,000 steps of the long run is the "
        "loss a 20,000-step run would end with",
        "Only the last point is a finished run. At step 20,000 the learning rate is still near "
        "its peak, while a run planned for 20,000 steps would have decayed it to its minimum "
        "by then, which lowers the loss; so the earlier points are worse than the runs they "
        "stand for, and the fitted curve says more about the schedule than about the data. "
        "Each length needs a run whose schedule ends at that length (or a schedule with a "
        "separate cool-down, which can end at each point)",
        "The warm-up makes the first steps useless, so it is enough to drop the points before "
        "step 10,000; the others are fine",
        "The losses are correct, but they should be compared at equal wall-clock time instead "
        "of equal numbers of steps",
    ],
    answer=1,
    explanation="The loss at a given step depends on where the learning-rate schedule is: "
    "decaying the rate at the end of a run lowers the loss markedly. A run read off in the "
    "middle of its cosine has not had that decay, so it overstates the loss of a run that "
    "really ended there, and the fitted exponent is biased. Hoffmann et al. found that a cosine "
    "cycle much longer than the run gives worse models, and tuned each run's schedule to its "
    "length; schedules with a constant rate and a short cool-down (warmup-stable-decay) let one "
    "long run be branched into cooled-down checkpoints instead. (a) The model at step 20,000 of "
    "the long run has seen the same tokens, but with a different learning-rate history. (c) "
    "The warm-up is not the problem; the points after it are still read before their decay. "
    "(d) Wall-clock time depends on the hardware; scaling laws are stated in tokens and FLOPs "
    "precisely to avoid that, and it would not fix the schedule.",
)
