"""Notebook 11's exercises (scaling) agree with coursekit.scaling, the pieces they are about."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from exercise_checks import (
    assert_hint_table_covers_the_notebook,
    assert_quiz_is_well_formed,
    assert_wrong_answer_gets_its_hint,
)

from coursekit.exercises import nb11
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import get_exercise
from coursekit.models.gpt import GPTConfig
from coursekit.scaling import (
    compute_optimal,
    count_parameters,
    fit_iso_flop,
    fit_power_law,
    training_flops,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("n_layers", "d_model"), [(2, 64), (4, 256), (12, 768), (24, 1024)])
def test_training_flops_reference_is_6nd_of_the_blocks_of_count_parameters(
    n_layers: int, d_model: int
) -> None:
    """Without biases, with RMSNorm: the blocks hold 12 d^2 weights and 2 norm gains of d per
    layer, plus the final norm; training_flops adds those and the attention scores."""
    config = GPTConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=d_model // 64,
        block_size=256,
        bias=False,
        norm="rms",
    )
    norms = 2 * n_layers * d_model + d_model
    assert count_parameters(config).non_embedding - norms == 12 * n_layers * d_model**2
    n_tokens, seq_len = 3e9, 128
    attention = 6 * n_layers * seq_len * d_model * n_tokens  # 3 x 2 n_layers T d per token
    expected = training_flops(config, n_tokens, seq_len=seq_len) - 6 * norms * n_tokens - attention
    reference = get_exercise("11.1").reference(n_layers, d_model, n_tokens)
    assert math.isclose(reference, expected, rel_tol=1e-12)


def test_training_flops_of_gpt2_small_and_gpt3() -> None:
    reference = get_exercise("11.1").reference
    # GPT-2 small with its biases and LayerNorms: 12 d^2 per layer is within 0.2% of the count
    n = count_parameters(GPTConfig()).non_embedding
    assert math.isclose(reference(12, 768, 1e9), 6 * n * 1e9, rel_tol=2e-3)
    # GPT-3 175B on 300B tokens: its paper reports about 3.14e23 FLOPs
    assert math.isclose(reference(96, 12288, 300e9), 3.14e23, rel_tol=0.01)


def test_training_flops_check_accepts_ints_and_numpy_and_tensors() -> None:
    ex = get_exercise("11.1")
    assert evaluate(
        ex, lambda n_layers, d_model, n_tokens: 72 * n_layers * d_model**2 * n_tokens
    ).passed
    assert evaluate(
        ex, lambda n_layers, d_model, n_tokens: np.float64(72.0 * n_layers * d_model**2 * n_tokens)
    ).passed
    assert evaluate(
        ex,
        lambda n_layers, d_model, n_tokens: torch.tensor(
            72.0 * n_layers * d_model**2 * n_tokens, dtype=torch.float64
        ),
    ).passed
    outcome = evaluate(ex, lambda n_layers, d_model: 0.0)
    assert not outcome.passed and "n_tokens" in (outcome.hint or "")


def _datasets() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    sets = []
    for n in (2, 3, 5, 12, 40):
        x = np.sort(rng.uniform(1.0, 1e6, n)) if n > 2 else np.array([3.0, 7e5])
        y = 5.0 * x ** rng.uniform(-1.0, 2.0) * np.exp(0.1 * rng.standard_normal(n))
        sets.append((x, y))
    return sets


@pytest.mark.parametrize("data", _datasets(), ids=lambda d: f"{len(d[0])} points")
def test_fit_reference_equals_fit_power_law(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    a, b = get_exercise("11.2").reference(x, y)
    fit = fit_power_law(x, y)
    assert math.isclose(a, fit.a, rel_tol=1e-9) and math.isclose(b, fit.b, rel_tol=1e-9)


def test_ends_only_fit_is_exact_on_the_exact_laws_and_caught_on_the_noisy_data() -> None:
    for a, b, x in nb11._EXACT_LAWS:
        y = a * x**b
        got = nb11._fit_power(x, y, mistake="ends_only")
        assert nb11._pair_matches(got, (a, b), 1e-9)
        assert nb11._pair_matches(nb11._fit_power_reference(x, y), (a, b), 1e-9)
    ex = get_exercise("11.2")
    outcome = evaluate(ex, ex.wrong_answers["first and last points only"])
    assert not outcome.passed and "noisy" in outcome.message


def test_fit_check_explains_float32_and_a_fit_object() -> None:
    ex = get_exercise("11.2")

    def in_float32(x, y):
        lx = torch.tensor(np.log(x).tolist())  # a Python list becomes float32
        ly = torch.tensor(np.log(y).tolist())
        b = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
        return float(torch.exp(ly.mean() - b * lx.mean())), float(b)

    outcome = evaluate(ex, in_float32)
    assert not outcome.passed and "float64" in (outcome.hint or "")
    outcome = evaluate(ex, fit_power_law)
    assert not outcome.passed and "return a, b" in (outcome.hint or "")


def test_optimal_size_spends_the_budget_with_r_tokens_per_parameter() -> None:
    reference = get_exercise("11.3").reference
    n, d = reference(5.76e23)  # Chinchilla's budget: about 69B parameters, 1.4T tokens
    assert 68e9 < n < 70e9 and 1.37e12 < d < 1.4e12
    for compute, r in [(1e21, 20.0), (6e18, 10.0), (1e19, 50.0), (3.14e23, 20.0)]:
        n, d = reference(compute, tokens_per_param=r)
        assert math.isclose(6 * n * d, compute, rel_tol=1e-12)
        assert math.isclose(d / n, r, rel_tol=1e-12)


def _iso_flop_losses(compute: float, r: float, n_params: np.ndarray) -> np.ndarray:
    """A Chinchilla-like loss E + A / N^alpha + B / D^alpha at fixed compute, D = C / (6 N),
    with B = A r^alpha: its minimum over N is at D = r N."""
    alpha, big_a, e = 0.34, 400.0, 1.7
    d = compute / (6 * n_params)
    return e + big_a / n_params**alpha + big_a * r**alpha / d**alpha


@pytest.mark.parametrize(("compute", "r"), [(1e19, 20.0), (1e21, 20.0), (6e18, 10.0)])
def test_optimal_size_is_the_vertex_of_an_iso_flop_curve(compute: float, r: float) -> None:
    n_opt, d_opt = get_exercise("11.3").reference(compute, tokens_per_param=r)
    # sizes spaced evenly in log N around the optimum: the loss is symmetric in log N there
    n_params = n_opt * np.geomspace(1 / 8, 8, 7)
    fit = fit_iso_flop(n_params, _iso_flop_losses(compute, r, n_params), compute)
    assert math.isclose(fit.n_opt, n_opt, rel_tol=1e-6)
    assert math.isclose(fit.d_opt, d_opt, rel_tol=1e-6)
    assert math.isclose(fit.tokens_per_param, r, rel_tol=1e-6)
    # a lopsided sweep still lands near it
    lopsided = n_opt * np.geomspace(1 / 10, 3, 6)
    fit = fit_iso_flop(lopsided, _iso_flop_losses(compute, r, lopsided), compute)
    assert math.isclose(fit.n_opt, n_opt, rel_tol=0.1)


def test_optimal_sizes_grow_as_the_square_root_of_compute() -> None:
    reference = get_exercise("11.3").reference
    runs = {}
    for compute in (1e18, 1e19, 1e20, 1e21):
        n_params = reference(compute)[0] * np.geomspace(1 / 4, 4, 5)
        runs[compute] = (n_params, _iso_flop_losses(compute, 20.0, n_params))
    result = compute_optimal(runs)
    assert result.n_fit is not None and result.d_fit is not None
    assert math.isclose(result.n_fit.b, 0.5, rel_tol=1e-6)
    assert math.isclose(result.d_fit.b, 0.5, rel_tol=1e-6)
    assert math.isclose(result.n_opt(1e22), reference(1e22)[0], rel_tol=1e-5)


@pytest.mark.parametrize("case", nb11._STEPS_CASES, ids=lambda c: f"{c[0]:g}")
def test_steps_spend_the_budget_to_within_half_a_step(
    case: tuple[float, list[int], int],
) -> None:
    compute, n_params, tokens_per_step = case
    steps = get_exercise("11.4").reference(compute, n_params, tokens_per_step)
    assert all(isinstance(s, int) and s >= 1 for s in steps)
    for n, s in zip(n_params, steps):
        spent = 6 * n * s * tokens_per_step
        one_step = 6 * n * tokens_per_step
        assert abs(spent - compute) <= one_step / 2 or (s == 1 and compute < one_step / 2)
    # each size trains on the tokens D = C / (6 N) that fit_iso_flop assigns to it (the
    # vertex of these made-up losses is exactly at n), to within half a step
    for n, s in zip(n_params, steps):
        fit = fit_iso_flop([n / 10, n, n * 10], [3.0, 2.0, 3.0], compute)
        assert math.isclose(fit.n_opt, n, rel_tol=1e-9)
        assert abs(s * tokens_per_step - fit.d_opt) <= tokens_per_step / 2 or s == 1


def test_steps_check_explains_other_forms() -> None:
    ex = get_exercise("11.4")
    reference = ex.reference

    def whole_floats(compute, n_params, tokens_per_step):
        return [float(s) for s in reference(compute, n_params, tokens_per_step)]

    def one_short(compute, n_params, tokens_per_step):
        return reference(compute, n_params, tokens_per_step)[:-1]

    def a_generator(compute, n_params, tokens_per_step):
        return (s for s in reference(compute, n_params, tokens_per_step))

    outcome = evaluate(ex, whole_floats)
    assert not outcome.passed and "int(...)" in (outcome.hint or "")
    outcome = evaluate(ex, one_short)
    assert not outcome.passed and "for 4 model sizes" in outcome.message
    outcome = evaluate(ex, a_generator)
    assert not outcome.passed and "list" in (outcome.hint or "")
    assert evaluate(ex, lambda c, ns, t: tuple(reference(c, ns, t))).passed


#: (exercise, registered wrong answer, what its hint must say)
OWN_HINTS: list[tuple[str, str, str]] = [
    ("11.1", "forward only, 2ND", "backward pass"),
    ("11.1", "N = n_layers * d_model**2 (no 12)", "12 times too small"),
    ("11.1", "attention only, 4 d^2 per layer", "feed-forward's parameters"),
    ("11.1", "d_model not squared", "SQUARED"),
    ("11.1", "one layer only", "ONE layer"),
    ("11.1", "no factor 6, C = N D", "factor 6 is missing"),
    ("11.2", "no logs: a line through the raw values", "LOG-LOG"),
    ("11.2", "axes swapped: log x against log y", "axes are swapped"),
    ("11.2", "a = 10 ** intercept after natural logs", "not 10 ** intercept"),
    ("11.2", "(b, a) instead of (a, b)", "return a (the prefactor) first"),
    ("11.2", "first and last points only", "ALL the points"),
    ("11.3", "no 6: N = sqrt(C / r)", "6 of C = 6 N D is missing"),
    ("11.3", "no square root: N = C / (6 r)", "square root is missing"),
    ("11.3", "D = C / N", "D is 6 times too big"),
    ("11.3", "(n_tokens, n_params) swapped", "return the parameters first"),
    ("11.4", "the same steps for every size", "BUDGET is fixed"),
    ("11.4", "no factor 6", "6 times too many"),
    ("11.4", "2 instead of 6 (forward only)", "forward pass alone"),
    ("11.4", "steps grow with N: compute / 6 * n * tokens_per_step", "in parentheses"),
    ("11.4", "floats, not rounded", "Steps are whole"),
    ("11.4", "no minimum of one step", "at least one step"),
    ("11.5", "warm-up from 0 (step / warmup)", "(step + 1) / warmup"),
    ("11.5", "cosine counted from step 0", "from step warmup"),
    ("11.5", "decays to 0, no floor", "instead of min_ratio"),
]


def test_own_hints_list_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("11", OWN_HINTS)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)


def test_quiz_answers_are_spread_and_every_wrong_option_is_explained() -> None:
    assert_quiz_is_well_formed("11")


def test_lr_multiplier_reference_is_the_package_schedule_and_accepts_a_numpy_float() -> None:
    ex = get_exercise("11.5")
    assert evaluate(ex, ex.reference).passed
    assert evaluate(ex, lambda *a: np.float64(ex.reference(*a))).passed
    outcome = evaluate(ex, lambda step, total, warmup, floor=0.1: "1.0")
    assert not outcome.passed
