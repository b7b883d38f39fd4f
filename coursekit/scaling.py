"""Scaling: parameter and FLOP counts, power-law fits, compute-optimal model sizes.

* **Counting.** :func:`count_parameters` splits a GPT-style model's parameters into the
  embedding tables and the rest (the *non-embedding* count ``N`` of scaling-law papers);
  :func:`flops_per_token` gives the forward FLOPs per token, ``2N + 2 n_layers T d`` (Kaplan
  et al., 2020), and training's three times that, ``~6N``; :func:`training_flops` multiplies
  by the number of tokens ``D``: the rule ``C ~ 6 N D``.
* **Power laws.** :func:`fit_power_law` fits ``y = a x^b`` by least squares in log-log space
  and returns a :class:`PowerLawFit` with standard errors; :func:`fit_saturating_power_law`
  fits ``y = E + A x^(-alpha)`` (a loss that levels off at ``E``); :func:`fit_loglog_slope`
  returns just the exponent (cost curves: time against sequence length).
* **Compute-optimal sizing.** :func:`fit_iso_flop` fits a parabola in ``log N`` to the final
  losses of models of different sizes trained with one compute budget ``C`` (an *iso-FLOP*
  curve) and reads off the best size ``N*`` (the vertex) and its data ``D* = C / (6 N*)``;
  :func:`compute_optimal` does so for several budgets and fits ``N* ∝ C^a``, ``D* ∝ C^b``
  (Hoffmann et al., 2022: "Chinchilla", about 20 tokens per parameter).

The counts are functions of a config-like object with the fields ``n_layers``, ``d_model``,
``n_heads``, ``d_ff`` (None: ``4 d_model``), ``vocab_size`` and ``block_size`` (duck typing:
:class:`coursekit.models.gpt.GPTConfig` is one). The recipe fields ``n_kv_heads``,
``activation``, ``norm``, ``bias``, ``positional`` and ``tie_embeddings`` are read when present
and default to GPT-2's (multi-head attention, GELU, LayerNorm with biases, learned positions,
output matrix tied to the token embedding).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

import numpy as np

from coursekit.layers import BlockConfig

__all__ = [
    "ComputeOptimal",
    "FlopsPerToken",
    "IsoFlopFit",
    "ModelShape",
    "ParameterCount",
    "PowerLawFit",
    "SaturatingPowerLawFit",
    "compute_optimal",
    "count_parameters",
    "fit_iso_flop",
    "fit_loglog_slope",
    "fit_power_law",
    "fit_saturating_power_law",
    "flops_per_token",
    "training_flops",
]

ArrayLike = float | Sequence[float] | np.ndarray


# --------------------------------------------------------------------------------------------
# parameter and FLOP counts
# --------------------------------------------------------------------------------------------
class ModelShape(Protocol):
    """What the counts read from a config (read-only, so ``d_ff: int | None`` fits too)."""

    @property
    def n_layers(self) -> int: ...
    @property
    def d_model(self) -> int: ...
    @property
    def n_heads(self) -> int: ...
    @property
    def d_ff(self) -> int | None: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def block_size(self) -> int: ...


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a GPT-style model.

    ``embedding``: the token table ``V d`` and the learned position table ``block_size * d``
    (none with RoPE). ``non_embedding``: everything else, the ``N`` of scaling laws: the blocks,
    the final norm and an *untied* output matrix ``d V`` (a tied one is the token table).
    """

    embedding: int
    non_embedding: int

    @property
    def total(self) -> int:
        return self.embedding + self.non_embedding


@dataclass(frozen=True)
class FlopsPerToken:
    """Floating-point operations to process one token (a multiply-add counts 2).

    * ``non_embedding = 2 N'``: each weight of the blocks (and the final norm) is used once per
      token in one multiply-add; ``N'`` is the non-embedding count without an untied output
      matrix, which ``head`` counts instead. Biases and norm gains are counted like weights
      (a slight overcount; they are a small share of ``N``).
    * ``attention = 2 n_layers T d``: the query-key scores and the weighted sum of values,
      ``2 d`` FLOPs each per key, over the ``T / 2`` keys a causal query sees on average
      (Kaplan et al.'s ``2 n_layer n_ctx d_attn``). Without the causal saving it is twice that.
    * ``head = 2 d V``: the output projection to the vocabulary when asked for
      (``include_head=True``), else 0, as in Kaplan et al.'s non-embedding compute.

    ``forward`` is their sum; ``training = 3 * forward``: the backward pass costs about twice
    the forward (gradients with respect to both the activations and the weights), whence
    ``C ~ 6 N D`` for ``D`` training tokens.
    """

    non_embedding: int
    attention: int
    head: int = 0

    @property
    def forward(self) -> int:
        return self.non_embedding + self.attention + self.head

    @property
    def training(self) -> int:
        return 3 * self.forward


def _recipe(config: ModelShape) -> dict[str, Any]:
    return {
        "n_kv_heads": getattr(config, "n_kv_heads", None),
        "activation": getattr(config, "activation", "gelu_tanh"),
        "norm": getattr(config, "norm", "layer"),
        "bias": getattr(config, "bias", True),
        "positional": getattr(config, "positional", "learned"),
        "tie_embeddings": getattr(config, "tie_embeddings", True),
    }


def _shape(config: ModelShape) -> tuple[int, int, int, int, int, int]:
    """``(n_layers, d_model, n_heads, d_ff, vocab_size, block_size)``, checked."""
    values = {}
    for name in ("n_layers", "d_model", "n_heads", "vocab_size", "block_size"):
        value = getattr(config, name, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"{type(config).__name__}.{name} must be a positive integer, got {value!r} (the "
                "counts need n_layers, d_model, n_heads, d_ff, vocab_size and block_size)."
            )
        values[name] = value
    d_ff = getattr(config, "d_ff", None)
    d_ff = 4 * values["d_model"] if d_ff is None else d_ff
    return (
        values["n_layers"],
        values["d_model"],
        values["n_heads"],
        d_ff,
        values["vocab_size"],
        values["block_size"],
    )


def _block_config(config: ModelShape) -> BlockConfig:
    _, d, heads, d_ff, _, _ = _shape(config)
    r = _recipe(config)
    return BlockConfig(
        d_model=d,
        n_heads=heads,
        d_ff=d_ff,
        n_kv_heads=r["n_kv_heads"],
        activation=r["activation"],
        norm=r["norm"],
        bias=r["bias"],
    )


def count_parameters(config: ModelShape) -> ParameterCount:
    """Embedding and non-embedding parameters of a GPT built from ``config`` (closed form).

    GPT layout: token embedding ``V d`` (+ learned positions ``block_size * d``),
    ``n_layers`` :class:`~coursekit.layers.TransformerBlock` s (``BlockConfig.n_params()``
    each), a final norm, an output matrix ``d V`` unless tied. Equal to the parameters a
    :class:`~coursekit.models.gpt.GPT` of that config holds (a tied matrix counted once).
    """
    n_layers, d, _, _, vocab, block = _shape(config)
    r = _recipe(config)
    embedding = vocab * d + (block * d if r["positional"] == "learned" else 0)
    final_norm = 2 * d if (r["norm"] == "layer" and r["bias"]) else d
    head = 0 if r["tie_embeddings"] else d * vocab
    non_embedding = n_layers * _block_config(config).n_params() + final_norm + head
    return ParameterCount(embedding=embedding, non_embedding=non_embedding)


def flops_per_token(
    config: ModelShape, *, seq_len: int | None = None, include_head: bool = False
) -> FlopsPerToken:
    """Forward and training FLOPs per token of a GPT built from ``config`` (see
    :class:`FlopsPerToken`): ``forward = 2N + 2 n_layers T d`` (+ ``2 d V`` with
    ``include_head``), ``training = 3 * forward ~ 6N``.

    ``seq_len`` is the context ``T`` the tokens are processed in (default ``block_size``).
    """
    n_layers, d, _, _, vocab, block = _shape(config)
    t = block if seq_len is None else seq_len
    if not isinstance(t, int) or t < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}.")
    n = count_parameters(config).non_embedding
    if not _recipe(config)["tie_embeddings"]:
        n -= d * vocab  # the untied output matrix: counted by `head`
    return FlopsPerToken(
        non_embedding=2 * n,
        attention=2 * n_layers * t * d,
        head=2 * d * vocab if include_head else 0,
    )


def training_flops(
    config: ModelShape,
    n_tokens: float,
    *,
    seq_len: int | None = None,
    include_head: bool = False,
) -> float:
    """Training compute ``C`` for ``n_tokens`` tokens: ``flops_per_token(...).training * D``
    (``~ 6 N D`` when the context is short next to ``12 d``)."""
    if not (math.isfinite(n_tokens) and n_tokens >= 0):
        raise ValueError(f"n_tokens must be finite and >= 0, got {n_tokens!r}.")
    per_token = flops_per_token(config, seq_len=seq_len, include_head=include_head)
    return float(per_token.training) * float(n_tokens)


# --------------------------------------------------------------------------------------------
# power laws
# --------------------------------------------------------------------------------------------
def _as_array(values: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a sequence of numbers ({err}).") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}.")
    return array


def _checked_xy(
    x: Any, y: Any, who: str, *, min_points: int, positive_y: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = _as_array(x, "x"), _as_array(y, "y")
    if xs.shape != ys.shape:
        raise ValueError(
            f"{who}: x and y must be equally long, got {xs.size} and {ys.size} values."
        )
    if xs.size < min_points:
        raise ValueError(f"{who} needs at least {min_points} points, got {xs.size}.")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError(f"{who} needs finite values (no NaN or infinity).")
    if np.any(xs <= 0) or (positive_y and np.any(ys <= 0)):
        what = "x and y" if positive_y else "x"
        raise ValueError(
            f"{who} needs positive values of {what} (it takes logarithms); got minimum x = "
            f"{xs.min():g}, y = {ys.min():g}."
        )
    if np.unique(xs).size < 2:
        raise ValueError(f"{who} needs at least two different x values.")
    return xs, ys


@dataclass(frozen=True)
class PowerLawFit:
    """``y = a x^b`` fitted by least squares on ``log y = log a + b log x``.

    ``b_err`` and ``log_a_err`` are the standard errors of the straight line's slope and
    intercept: the residual variance ``s^2 = RSS / (n - 2)`` times the diagonal of
    ``(X^T X)^-1`` (X: the design matrix with columns 1 and ``log x``). ``a_err`` follows by the
    delta method: ``a_err = a * log_a_err`` (the error of ``a = exp(log a)`` to first order;
    ``a`` itself is log-normal, so quote ``exp(log a ± log_a_err)`` for a wide error). With
    exactly two points there is no residual left to estimate the errors from: they are NaN.
    ``rms_log_residual`` is ``sqrt(RSS / n)`` in natural-log units (0.01 ~ 1 % scatter).
    """

    a: float
    b: float
    a_err: float
    b_err: float
    log_a_err: float = math.nan
    n_points: int = 0
    rms_log_residual: float = 0.0

    @overload
    def predict(self, x: float) -> float: ...
    @overload
    def predict(self, x: Sequence[float] | np.ndarray) -> np.ndarray: ...

    def predict(self, x: ArrayLike) -> float | np.ndarray:
        """``a * x^b`` for a number (-> float) or a sequence/array of positive x (-> array)."""
        xs = np.asarray(x, dtype=np.float64)
        if np.any(xs <= 0):
            raise ValueError("PowerLawFit.predict needs positive x.")
        out = self.a * xs**self.b
        return float(out) if out.ndim == 0 else out

    def __str__(self) -> str:
        return f"y = {self.a:.4g} x^{self.b:.4g}  (b = {self.b:.4g} ± {self.b_err:.2g})"


def fit_power_law(x: ArrayLike, y: ArrayLike) -> PowerLawFit:
    """Fit ``y = a x^b`` by least squares in log-log space, with standard errors.

    x, y: ``(n,)`` positive values, ``n >= 2``, at least two different x. Returns a
    :class:`PowerLawFit` (``a``, ``b``, ``a_err``, ``b_err``; errors from the residual variance
    and ``(X^T X)^-1``, ``a_err`` by the delta method on ``log a``). Noise is assumed
    multiplicative (constant in log space), as for losses or run times over decades of x::

        fit = fit_power_law([1e5, 1e6, 1e7], [4.1, 3.3, 2.7])
        fit.b, fit.b_err, fit.predict(1e8)
    """
    return _fit_power_law(x, y, "fit_power_law")


def _fit_power_law(x: ArrayLike, y: ArrayLike, who: str) -> PowerLawFit:
    xs, ys = _checked_xy(x, y, who, min_points=2)
    lx, ly = np.log(xs), np.log(ys)
    n = lx.size
    mx, my = lx.mean(), ly.mean()
    sxx = float(np.sum((lx - mx) ** 2))
    b = float(np.sum((lx - mx) * (ly - my)) / sxx)
    log_a = float(my - b * mx)
    rss = float(np.sum((ly - log_a - b * lx) ** 2))
    if n > 2:
        s2 = rss / (n - 2)
        # (X^T X)^-1 of X = [1, log x]: diag = (1/n + mean^2 / Sxx, 1 / Sxx)
        b_err = math.sqrt(s2 / sxx)
        log_a_err = math.sqrt(s2 * (1.0 / n + mx**2 / sxx))
    else:
        b_err = log_a_err = math.nan
    a = math.exp(log_a)
    return PowerLawFit(
        a=a,
        b=b,
        a_err=a * log_a_err,
        b_err=b_err,
        log_a_err=log_a_err,
        n_points=n,
        rms_log_residual=math.sqrt(rss / n),
    )


def fit_loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the exponent k in y ∝ x^k.

    The same fit as :func:`fit_power_law` (which also returns the prefactor and errors).
    """
    return _fit_power_law(xs, ys, "fit_loglog_slope").b


@dataclass(frozen=True)
class SaturatingPowerLawFit:
    """``y = E + A x^(-alpha)``: a power law that levels off at ``E`` (the irreducible loss).

    Fitted by least squares on ``log y`` (relative errors); the ``*_err`` are standard errors
    from the Jacobian at the optimum, ``s^2 (J^T J)^-1`` with ``s^2 = RSS / (n - 3)`` (NaN with
    three points). ``A_err`` by the delta method on ``log A``.
    """

    E: float
    A: float
    alpha: float
    E_err: float
    A_err: float
    alpha_err: float
    n_points: int = 0

    @overload
    def predict(self, x: float) -> float: ...
    @overload
    def predict(self, x: Sequence[float] | np.ndarray) -> np.ndarray: ...

    def predict(self, x: ArrayLike) -> float | np.ndarray:
        """``E + A x^(-alpha)`` for positive x (a number -> float, a sequence -> array)."""
        xs = np.asarray(x, dtype=np.float64)
        if np.any(xs <= 0):
            raise ValueError("SaturatingPowerLawFit.predict needs positive x.")
        out = self.E + self.A * xs ** (-self.alpha)
        return float(out) if out.ndim == 0 else out


def _line(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float]:
    """Least-squares intercept and slope of ly against lx."""
    mx, my = lx.mean(), ly.mean()
    slope = float(np.sum((lx - mx) * (ly - my)) / np.sum((lx - mx) ** 2))
    return float(my - slope * mx), slope


def fit_saturating_power_law(
    x: ArrayLike, y: ArrayLike, *, max_iterations: int = 200
) -> SaturatingPowerLawFit:
    """Fit ``y = E + A x^(-alpha)`` (``E >= 0``, ``A > 0``) to ``(n,)`` positive x and y, ``n >= 3``.

    For a fixed floor ``E`` the problem is a straight line in ``log(y - E)`` against ``log x``;
    the best ``E`` of a grid over ``[0, min y)`` starts a Levenberg-Marquardt refinement of
    ``(E, log A, alpha)`` on the residuals of ``log y``. A decreasing curve is assumed (``y``
    falls towards ``E``); data that does not level off gives ``E`` near 0.
    """
    xs, ys = _checked_xy(x, y, "fit_saturating_power_law", min_points=3)
    lx, ly = np.log(xs), np.log(ys)
    n = xs.size

    def residuals(p: np.ndarray) -> np.ndarray:
        e, log_a, alpha = p
        return ly - np.log(e + np.exp(log_a - alpha * lx))

    def rss(p: np.ndarray) -> float:
        r = residuals(p)
        return float(r @ r) if np.all(np.isfinite(r)) else math.inf

    best: np.ndarray | None = None
    y_min = float(ys.min())
    for frac in np.concatenate([[0.0], 1.0 - np.geomspace(1.0, 1e-4, 120)[1:]]):
        e = frac * y_min
        log_a, slope = _line(lx, np.log(ys - e))
        p = np.array([e, log_a, -slope])
        if best is None or rss(p) < rss(best):
            best = p
    assert best is not None
    p, lam = best, 1e-3
    for _ in range(max_iterations):
        e, log_a, alpha = p
        power = np.exp(log_a - alpha * lx)
        pred = e + power
        # Jacobian of the residual log y - log(pred) with respect to (E, log A, alpha)
        jac = -np.stack([1.0 / pred, power / pred, -lx * power / pred], axis=1)
        r = residuals(p)
        g, h = jac.T @ r, jac.T @ jac
        step = np.linalg.solve(h + lam * np.diag(np.diag(h) + 1e-12), -g)
        trial = p + step
        trial[0] = max(trial[0], 0.0)
        if rss(trial) < rss(p):
            converged = abs(rss(p) - rss(trial)) <= 1e-15 * max(rss(p), 1e-300)
            p, lam = trial, max(lam / 10, 1e-12)
            if converged:
                break
        else:
            lam *= 10
            if lam > 1e12:
                break
    e, log_a, alpha = (float(v) for v in p)
    power = np.exp(log_a - alpha * lx)
    pred = e + power
    jac = -np.stack([1.0 / pred, power / pred, -lx * power / pred], axis=1)
    if n > 3:
        s2 = rss(p) / (n - 3)
        try:
            cov = s2 * np.linalg.inv(jac.T @ jac)
            errs = np.sqrt(np.maximum(np.diag(cov), 0.0))
        except np.linalg.LinAlgError:
            errs = np.full(3, math.nan)
    else:
        errs = np.full(3, math.nan)
    a = math.exp(log_a)
    return SaturatingPowerLawFit(
        E=e,
        A=a,
        alpha=alpha,
        E_err=float(errs[0]),
        A_err=a * float(errs[1]),
        alpha_err=float(errs[2]),
        n_points=n,
    )


# --------------------------------------------------------------------------------------------
# compute-optimal sizing (iso-FLOP curves)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IsoFlopFit:
    """One compute budget's parabola ``loss = c2 u^2 + c1 u + c0`` in ``u = ln N``.

    ``n_opt = exp(-c1 / (2 c2))`` (the vertex), ``loss_opt`` the parabola's value there,
    ``d_opt = compute / (flops_per_param_token * n_opt)`` the tokens that budget buys at that
    size, ``n_range`` the smallest and largest sizes measured.
    """

    compute: float
    n_opt: float
    d_opt: float
    loss_opt: float
    coeffs: tuple[float, float, float]
    n_range: tuple[float, float]

    @property
    def tokens_per_param(self) -> float:
        """``D* / N*``: Chinchilla's ratio (about 20 for their models)."""
        return self.d_opt / self.n_opt

    @overload
    def predict(self, n_params: float) -> float: ...
    @overload
    def predict(self, n_params: Sequence[float] | np.ndarray) -> np.ndarray: ...

    def predict(self, n_params: ArrayLike) -> float | np.ndarray:
        """The parabola's loss at ``n_params`` (a number -> float, a sequence -> array)."""
        u = np.log(np.asarray(n_params, dtype=np.float64))
        c2, c1, c0 = self.coeffs
        out = c2 * u**2 + c1 * u + c0
        return float(out) if out.ndim == 0 else out


def fit_iso_flop(
    n_params: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    compute: float,
    *,
    flops_per_param_token: float = 6.0,
) -> IsoFlopFit:
    """The compute-optimal size for one budget: fit a parabola in ``ln N`` and take its vertex.

    n_params, losses: ``(k,)``, ``k >= 3`` models of different sizes, each trained with the
    same ``compute`` (FLOPs), so the smaller ones saw more tokens. Returns an
    :class:`IsoFlopFit` with ``N*`` and ``D* = C / (6 N*)`` (``flops_per_param_token``: 6).
    A parabola that opens downwards (or is flat) has no minimum: the error says to measure
    sizes on both sides of the best one. A vertex outside the measured sizes is an
    extrapolation and warns.
    """
    ns, ls = _checked_xy(n_params, losses, "fit_iso_flop", min_points=3, positive_y=False)
    if not (math.isfinite(compute) and compute > 0):
        raise ValueError(f"fit_iso_flop needs a positive, finite compute budget, got {compute!r}.")
    if not flops_per_param_token > 0:
        raise ValueError(f"flops_per_param_token must be > 0, got {flops_per_param_token!r}.")
    if np.unique(ns).size < 3:
        raise ValueError("fit_iso_flop needs at least 3 different model sizes for a parabola.")
    u = np.log(ns)
    center = float(u.mean())
    q2, q1, q0 = (float(c) for c in np.polyfit(u - center, ls, 2))
    if not q2 > 0:
        raise ValueError(
            f"The parabola fitted to the losses at compute {compute:.3g} opens downwards "
            f"(curvature {q2:.3g}): it has no minimum. Measure sizes on both sides of the "
            "best one (smaller and larger models) so the losses dip and rise again."
        )
    # back from (u - center) to u
    c2, c1, c0 = q2, q1 - 2 * q2 * center, q2 * center**2 - q1 * center + q0
    u_opt = center - q1 / (2 * q2)
    n_opt = math.exp(u_opt)
    lo, hi = float(ns.min()), float(ns.max())
    if not lo <= n_opt <= hi:
        warnings.warn(
            f"The best size at compute {compute:.3g} ({n_opt:.3g} parameters) lies outside the "
            f"measured sizes [{lo:.3g}, {hi:.3g}]: an extrapolation. Measure beyond it.",
            stacklevel=2,
        )
    return IsoFlopFit(
        compute=float(compute),
        n_opt=n_opt,
        d_opt=float(compute) / (flops_per_param_token * n_opt),
        loss_opt=q0 - q1**2 / (4 * q2),
        coeffs=(c2, c1, c0),
        n_range=(lo, hi),
    )


@dataclass(frozen=True)
class ComputeOptimal:
    """Iso-FLOP fits of several budgets (increasing compute) and how ``N*`` and ``D*`` grow.

    ``n_fit``: ``N* = a C^b``; ``d_fit``: ``D* = a C^b`` (None with a single budget). Hoffmann
    et al. found both exponents near 0.5: parameters and tokens should grow together.
    """

    fits: tuple[IsoFlopFit, ...]
    n_fit: PowerLawFit | None
    d_fit: PowerLawFit | None

    @property
    def tokens_per_param(self) -> tuple[float, ...]:
        """``D* / N*`` of each budget."""
        return tuple(f.tokens_per_param for f in self.fits)

    def n_opt(self, compute: float) -> float:
        """The compute-optimal size at ``compute`` from the power law ``n_fit``."""
        if self.n_fit is None:
            raise ValueError("n_opt(compute) needs fits of at least 2 compute budgets.")
        return self.n_fit.predict(float(compute))

    def d_opt(self, compute: float) -> float:
        """The compute-optimal number of tokens at ``compute`` from ``d_fit``."""
        if self.d_fit is None:
            raise ValueError("d_opt(compute) needs fits of at least 2 compute budgets.")
        return self.d_fit.predict(float(compute))


def compute_optimal(
    runs: Mapping[float, tuple[Sequence[float], Sequence[float]]],
    *,
    flops_per_param_token: float = 6.0,
) -> ComputeOptimal:
    """Compute-optimal sizes from iso-FLOP runs: ``{compute: (n_params, losses), ...}``.

    Each budget gets :func:`fit_iso_flop`; with two or more budgets ``N*`` and ``D*`` are
    fitted as power laws of ``C`` (:func:`fit_power_law`).
    """
    if not runs:
        raise ValueError("compute_optimal needs runs for at least one compute budget.")
    fits = tuple(
        fit_iso_flop(ns, ls, float(c), flops_per_param_token=flops_per_param_token)
        for c, (ns, ls) in sorted(runs.items(), key=lambda item: float(item[0]))
    )
    if len(fits) < 2:
        return ComputeOptimal(fits=fits, n_fit=None, d_fit=None)
    budgets = [f.compute for f in fits]
    return ComputeOptimal(
        fits=fits,
        n_fit=fit_power_law(budgets, [f.n_opt for f in fits]),
        d_fit=fit_power_law(budgets, [f.d_opt for f in fits]),
    )
