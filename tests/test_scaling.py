"""coursekit.scaling: parameter and FLOP counts, power-law fits, iso-FLOP compute-optimal sizes."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from coursekit.layers import BlockConfig, TransformerBlock
from coursekit.scaling import (
    PowerLawFit,
    compute_optimal,
    count_parameters,
    fit_iso_flop,
    fit_loglog_slope,
    fit_power_law,
    fit_saturating_power_law,
    flops_per_token,
    training_flops,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------
# a GPT assembled here from the package's block (independent of coursekit.models.gpt)
# --------------------------------------------------------------------------------------------
@dataclass
class Shape:
    """The fields the counts read (a GPTConfig has them too)."""

    n_layers: int = 2
    d_model: int = 32
    n_heads: int = 4
    d_ff: int | None = None
    vocab_size: int = 50
    block_size: int = 16
    n_kv_heads: int | None = None
    activation: str = "gelu_tanh"
    norm: str = "layer"
    bias: bool = True
    positional: str = "learned"
    tie_embeddings: bool = True


class TinyGPT(nn.Module):
    """Token embedding (+ learned positions) + blocks + final norm + output matrix (tied or not)."""

    def __init__(self, s: Shape, *, scratch: bool = False) -> None:
        super().__init__()
        self.s = s
        d_ff = 4 * s.d_model if s.d_ff is None else s.d_ff
        cfg = BlockConfig(
            d_model=s.d_model,
            n_heads=s.n_heads,
            d_ff=d_ff,
            n_kv_heads=s.n_kv_heads,
            activation=s.activation,  # type: ignore[arg-type]
            norm=s.norm,  # type: ignore[arg-type]
            bias=s.bias,
            scratch=scratch,
        )
        self.tok = nn.Embedding(s.vocab_size, s.d_model)
        self.pos = nn.Embedding(s.block_size, s.d_model) if s.positional == "learned" else None
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(s.n_layers))
        if s.norm == "layer":
            self.norm: nn.Module = nn.LayerNorm(s.d_model, bias=s.bias)
        else:
            self.norm = nn.RMSNorm(s.d_model)
        self.head = None if s.tie_embeddings else nn.Linear(s.d_model, s.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids)
        if self.pos is not None:
            x = x + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x, is_causal=True)
        x = self.norm(x)
        return F.linear(x, self.tok.weight) if self.head is None else self.head(x)

    def embedding_params(self) -> int:
        return self.tok.weight.numel() + (0 if self.pos is None else self.pos.weight.numel())


RECIPES = {
    "gpt2": Shape(),
    "untied": Shape(tie_embeddings=False, d_ff=48),
    "modern": Shape(
        positional="rope", norm="rms", activation="swiglu", bias=False, n_kv_heads=2, d_ff=40
    ),
    "relu-post": Shape(activation="relu", n_layers=3, d_model=24, n_heads=3),
}


@pytest.mark.parametrize("name", RECIPES)
def test_parameter_count_matches_a_model_built_from_the_block(name: str) -> None:
    shape = RECIPES[name]
    model = TinyGPT(shape)
    counted = sum(p.numel() for p in model.parameters())  # a tied matrix once
    count = count_parameters(shape)
    assert count.total == counted
    assert count.embedding == model.embedding_params()
    assert count.non_embedding == counted - model.embedding_params()


def test_parameter_count_matches_the_gpt_when_it_is_there() -> None:
    gpt = pytest.importorskip("coursekit.models.gpt")
    for config in (
        gpt.GPTConfig(vocab_size=65, block_size=32, n_layers=2, n_heads=2, d_model=32),
        gpt.GPTConfig.modern(vocab_size=65, block_size=32, n_layers=2, n_heads=4, d_model=32),
    ):
        model = gpt.GPT(config)
        count = count_parameters(config)
        assert count.total == sum(p.numel() for p in model.parameters())
        assert count.non_embedding == model.num_parameters(exclude_embeddings=True)


@pytest.mark.parametrize("name", ["gpt2", "untied", "modern"])
def test_flops_per_token_match_a_flop_counter(name: str) -> None:
    shape = RECIPES[name]
    model = TinyGPT(shape, scratch=True)  # written-out attention: its matmuls are counted
    batch, t = 2, shape.block_size
    ids = torch.randint(shape.vocab_size, (batch, t))
    with FlopCounterMode(display=False) as forward:
        logits = model(ids)
    with FlopCounterMode(display=False) as step:
        model(ids).float().pow(2).mean().backward()
    assert logits.shape == (batch, t, shape.vocab_size)
    fpt = flops_per_token(shape, include_head=True)
    n = count_parameters(shape).non_embedding
    untied = 0 if shape.tie_embeddings else shape.d_model * shape.vocab_size
    assert fpt.non_embedding == 2 * (n - untied)  # 2N: one multiply-add per weight
    # the counter sees matrix weights only (no biases, norms) and the full T x T attention,
    # which is twice the causal average that the formula counts
    matrix_weights = sum(p.numel() for p in model.blocks.parameters() if p.dim() == 2)
    expected = 2 * matrix_weights + 2 * fpt.attention + fpt.head
    assert forward.get_total_flops() == expected * batch * t
    # training = forward + backward = 3 x forward
    assert step.get_total_flops() == 3 * forward.get_total_flops()
    assert fpt.training == 3 * fpt.forward


def test_training_flops_follow_six_n_d() -> None:
    shape = Shape(n_layers=4, d_model=512, n_heads=8, vocab_size=1000, block_size=128)
    n = count_parameters(shape).non_embedding
    d_tokens = 3e9
    c = training_flops(shape, d_tokens)
    # the attention term adds T / (12 d) ~ 2 % to 6ND here
    assert c == pytest.approx(6 * n * d_tokens, rel=0.03)
    assert c > 6 * n * d_tokens
    fpt = flops_per_token(shape)
    assert fpt.attention / fpt.non_embedding == pytest.approx(128 / (12 * 512), rel=0.02)
    assert fpt.head == 0 and flops_per_token(shape, include_head=True).head == 2 * 512 * 1000
    # a longer context costs more attention
    assert flops_per_token(shape, seq_len=512).attention == 4 * fpt.attention


def test_counts_reject_configs_without_the_fields() -> None:
    with pytest.raises(ValueError, match="n_layers"):
        count_parameters(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seq_len"):
        flops_per_token(Shape(), seq_len=0)
    with pytest.raises(ValueError, match="n_tokens"):
        training_flops(Shape(), -1)


# --------------------------------------------------------------------------------------------
# power laws
# --------------------------------------------------------------------------------------------
def _noisy_power_law(
    rng: np.random.Generator, n: int, *, a: float = 30.0, b: float = -0.3, sigma: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    x = np.geomspace(1e3, 1e9, n)
    return x, a * x**b * np.exp(sigma * rng.standard_normal(n))


def test_fit_power_law_is_exact_on_exact_data() -> None:
    x = np.geomspace(10, 1e6, 7)
    fit = fit_power_law(x, 2.5 * x**-0.076)
    assert isinstance(fit, PowerLawFit)
    assert fit.a == pytest.approx(2.5, rel=1e-10)
    assert fit.b == pytest.approx(-0.076, abs=1e-12)
    assert fit.a_err == pytest.approx(0.0, abs=1e-9) and fit.b_err == pytest.approx(0.0, abs=1e-12)
    assert fit.predict(1e7) == pytest.approx(2.5 * 1e7**-0.076)
    assert np.allclose(fit.predict([1.0, 100.0]), [2.5, 2.5 * 100**-0.076])
    assert fit_loglog_slope(list(x), list(2.5 * x**-0.076)) == pytest.approx(-0.076)


def test_fit_power_law_recovers_a_and_b_within_their_errors() -> None:
    rng = np.random.default_rng(0)
    a, b = 30.0, -0.3
    fit = fit_power_law(*_noisy_power_law(rng, 12, a=a, b=b))
    assert abs(fit.b - b) < 3 * fit.b_err
    assert abs(fit.a - a) < 3 * fit.a_err
    assert fit.a_err == pytest.approx(fit.a * fit.log_a_err)  # the delta method
    # the errors are honest: about 68 % of fits land within one standard error
    hits_b = hits_a = 0
    trials = 400
    for _ in range(trials):
        f = fit_power_law(*_noisy_power_law(rng, 30, a=a, b=b))
        hits_b += abs(f.b - b) <= f.b_err
        hits_a += abs(math.log(f.a) - math.log(a)) <= f.log_a_err
    assert 0.60 < hits_b / trials < 0.76
    assert 0.60 < hits_a / trials < 0.76


def test_fit_power_law_errors_shrink_with_more_points() -> None:
    rng = np.random.default_rng(1)
    few = fit_power_law(*_noisy_power_law(rng, 10))
    many = fit_power_law(*_noisy_power_law(rng, 1000))
    # standard errors fall like 1 / sqrt(n): 10x fewer at 100x more points
    assert many.b_err < few.b_err / 4
    assert many.a_err < few.a_err / 4
    assert few.n_points == 10 and many.n_points == 1000


def test_two_points_fit_exactly_without_errors() -> None:
    fit = fit_power_law([1.0, 10.0], [3.0, 30.0])
    assert fit.b == pytest.approx(1.0) and fit.a == pytest.approx(3.0)
    assert math.isnan(fit.b_err) and math.isnan(fit.a_err)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "equally long"),
        ([1.0], [1.0], "at least 2"),
        ([1.0, 0.0], [1.0, 2.0], "positive"),
        ([1.0, 2.0], [-1.0, 2.0], "positive"),
        ([1.0, float("nan")], [1.0, 2.0], "finite"),
        ([3.0, 3.0], [1.0, 2.0], "different x"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "one-dimensional"),
    ],
)
def test_fit_power_law_rejects_bad_input(x: list, y: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_power_law(x, y)


def test_predict_rejects_non_positive_x() -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1.0, 2.0, 4.0], [1.0, 2.0, 4.1]).predict(0.0)


def test_saturating_power_law_recovers_its_parameters() -> None:
    x = np.geomspace(1e4, 1e9, 15)
    e, a, alpha = 1.7, 400.0, 0.34
    exact = fit_saturating_power_law(x, e + a * x**-alpha)
    assert exact.E == pytest.approx(e, rel=1e-4)
    assert exact.A == pytest.approx(a, rel=1e-3)
    assert exact.alpha == pytest.approx(alpha, rel=1e-4)
    rng = np.random.default_rng(2)
    y = (e + a * x**-alpha) * np.exp(0.01 * rng.standard_normal(x.size))
    noisy = fit_saturating_power_law(x, y)
    assert abs(noisy.E - e) < 3 * noisy.E_err
    assert abs(noisy.alpha - alpha) < 3 * noisy.alpha_err
    assert noisy.predict(1e10) == pytest.approx(e + a * 1e10**-alpha, rel=0.05)
    with pytest.raises(ValueError, match="at least 3"):
        fit_saturating_power_law([1.0, 2.0], [2.0, 1.0])


# --------------------------------------------------------------------------------------------
# iso-FLOP curves and compute-optimal sizes
# --------------------------------------------------------------------------------------------
def test_iso_flop_vertex_of_a_known_parabola() -> None:
    n_star, compute = 3.0e7, 1e17
    ns = np.geomspace(1e6, 1e9, 7)
    losses = 2.0 + 0.05 * (np.log(ns) - math.log(n_star)) ** 2
    fit = fit_iso_flop(ns, losses, compute)
    assert fit.n_opt == pytest.approx(n_star, rel=1e-9)
    assert fit.loss_opt == pytest.approx(2.0, abs=1e-12)
    assert fit.d_opt == pytest.approx(compute / (6 * n_star), rel=1e-9)
    assert fit.tokens_per_param == pytest.approx(compute / (6 * n_star**2), rel=1e-9)
    assert fit.predict(n_star) == pytest.approx(2.0)
    assert np.allclose(fit.predict(ns), losses)


def test_iso_flop_rejects_bad_input() -> None:
    ns = [1e6, 1e7, 1e8]
    with pytest.raises(ValueError, match="opens downwards"):
        fit_iso_flop(ns, [1.0, 1.5, 1.0], 1e15)
    with pytest.raises(ValueError, match="at least 3"):
        fit_iso_flop(ns[:2], [2.0, 1.0], 1e15)
    with pytest.raises(ValueError, match="3 different"):
        fit_iso_flop([1e6, 1e6, 1e7], [2.0, 2.1, 1.0], 1e15)
    with pytest.raises(ValueError, match="equally long"):
        fit_iso_flop(ns, [2.0, 1.0], 1e15)
    with pytest.raises(ValueError, match="positive"):
        fit_iso_flop([0.0, 1e6, 1e7], [2.0, 1.0, 2.0], 1e15)
    with pytest.raises(ValueError, match="compute"):
        fit_iso_flop(ns, [2.0, 1.0, 2.0], 0.0)
    with pytest.warns(UserWarning, match="outside the measured sizes"):
        fit_iso_flop(ns, [3.0, 2.0, 1.5], 1e15)


def test_compute_optimal_recovers_a_chinchilla_like_law() -> None:
    # L(N, D) = E + A / N^alpha + B / D^beta at D = C / (6N): the best N grows as
    # C^(beta / (alpha + beta)) and the best D as C^(alpha / (alpha + beta))
    e, a, b, alpha, beta = 1.69, 406.4, 410.7, 0.34, 0.28

    def loss(n: np.ndarray, c: float) -> np.ndarray:
        return e + a * n**-alpha + b * (c / (6 * n)) ** -beta

    def true_n_opt(c: float) -> float:
        g = (alpha * a / (beta * b)) ** (1 / (alpha + beta))
        return g * (c / 6) ** (beta / (alpha + beta))

    runs = {}
    for c in (1e18, 1e19, 1e20, 1e21):
        ns = true_n_opt(c) * np.geomspace(0.2, 5.0, 9)
        runs[c] = (ns, loss(ns, c))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every vertex lies inside its sizes
        result = compute_optimal(runs)
    assert len(result.fits) == 4
    for fit in result.fits:
        assert fit.n_opt == pytest.approx(true_n_opt(fit.compute), rel=0.1)
    assert result.n_fit is not None and result.d_fit is not None
    assert result.n_fit.b == pytest.approx(beta / (alpha + beta), abs=0.01)
    assert result.d_fit.b == pytest.approx(alpha / (alpha + beta), abs=0.01)
    assert result.n_fit.b + result.d_fit.b == pytest.approx(1.0, abs=1e-9)  # N* D* = C / 6
    assert result.tokens_per_param == tuple(f.d_opt / f.n_opt for f in result.fits)
    assert result.n_opt(1e22) == pytest.approx(true_n_opt(1e22), rel=0.15)
    single = compute_optimal({1e18: runs[1e18]})
    assert single.n_fit is None
    with pytest.raises(ValueError, match="at least 2"):
        single.n_opt(1e19)
    with pytest.raises(ValueError, match="at least one"):
        compute_optimal({})
