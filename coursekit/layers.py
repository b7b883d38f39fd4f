"""The non-attention building blocks of a Transformer layer.

* :class:`LayerNorm` written from its formula, and :class:`RMSNorm` (no centring, no bias).
* :class:`FeedForward`: the position-wise network, with a ReLU (the 2017 paper), GELU (BERT,
  GPT-2) or SwiGLU (PaLM, LLaMA) non-linearity.
* :class:`ResidualBlock`: wraps one sub-layer with its residual connection and normalisation,
  either post-norm ``LayerNorm(x + Sublayer(x))`` (the 2017 paper) or pre-norm
  ``x + Sublayer(LayerNorm(x))`` (GPT-2 and most modern models), chosen by ``norm_first``.

Every tensor here is ``(..., d_model)``: the blocks act on the last dimension only, so they
apply to each position independently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Activation = Literal["relu", "gelu", "swiglu"]
NormKind = Literal["layer", "rms"]

__all__ = [
    "Activation",
    "FeedForward",
    "LayerNorm",
    "NormKind",
    "RMSNorm",
    "ResidualBlock",
    "make_norm",
]


def _check_last_dim(x: torch.Tensor, d: int, who: str) -> None:
    if x.shape[-1] != d:
        raise ValueError(
            f"{who} was built for a last dimension of {d} but got a tensor of shape "
            f"{tuple(x.shape)}: pass (..., {d}) or rebuild the layer with the right size."
        )


class LayerNorm(nn.Module):
    r"""Layer normalisation over the last dimension, from its formula.

    .. math:: \mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    with the mean :math:`\mu` and the *biased* variance :math:`\sigma^2` taken over the
    ``d`` features of each position. Equal to :class:`torch.nn.LayerNorm` (same parameter
    names ``weight`` and ``bias``, so state dicts are interchangeable).

    x: ``(..., d)`` -> ``(..., d)``.
    """

    def __init__(self, d: int, eps: float = 1e-5, *, bias: bool = True) -> None:
        super().__init__()
        if d <= 0:
            raise ValueError(f"LayerNorm needs a positive feature size, got {d}.")
        self.d = d
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_last_dim(x, self.d, "LayerNorm")
        mean = x.mean(dim=-1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=-1, keepdim=True)  # biased: divide by d, not d - 1
        out = (x - mean) * torch.rsqrt(var + self.eps) * self.weight
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.d}, eps={self.eps}, bias={self.bias is not None}"


class RMSNorm(nn.Module):
    r"""Root-mean-square normalisation (Zhang and Sennrich, 2019), as in T5 and LLaMA.

    .. math:: \mathrm{RMSNorm}(x) = \gamma \odot \frac{x}{\sqrt{\tfrac{1}{d}\sum_i x_i^2 + \epsilon}}

    No mean is subtracted and there is no bias: cheaper than LayerNorm, and in practice as good.
    Equal to :class:`torch.nn.RMSNorm` with the same ``eps``. x: ``(..., d)`` -> ``(..., d)``.
    """

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        if d <= 0:
            raise ValueError(f"RMSNorm needs a positive feature size, got {d}.")
        self.d = d
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_last_dim(x, self.d, "RMSNorm")
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight

    def extra_repr(self) -> str:
        return f"{self.d}, eps={self.eps}"


def make_norm(kind: NormKind, d: int, eps: float = 1e-5, *, bias: bool = True) -> nn.Module:
    """A :class:`LayerNorm` (``kind="layer"``) or :class:`RMSNorm` (``kind="rms"``) of size ``d``."""
    if kind == "layer":
        return LayerNorm(d, eps, bias=bias)
    if kind == "rms":
        return RMSNorm(d, eps)
    raise ValueError(f"Unknown norm kind {kind!r}: use 'layer' or 'rms'.")


class FeedForward(nn.Module):
    r"""The position-wise feed-forward network.

    * ``relu`` (the 2017 paper): :math:`\max(0, xW_1 + b_1)W_2 + b_2`
    * ``gelu``: the same with GELU (exact erf form) instead of ReLU
    * ``swiglu``: :math:`(\mathrm{SiLU}(xW_1) \odot xV)W_2`, a gated unit with a third
      matrix ``V`` (stored as ``w3``); to keep the parameter count of a ReLU network with
      hidden size :math:`d_{ff}`, pick :math:`\tfrac{2}{3}d_{ff}` here.

    Parameters: ``w1`` ``(d_model -> d_ff)``, ``w2`` ``(d_ff -> d_model)``, ``w3`` (SwiGLU only).
    x: ``(..., d_model)`` -> ``(..., d_model)``.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        activation: Activation = "relu",
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if activation not in ("relu", "gelu", "swiglu"):
            raise ValueError(f"Unknown activation {activation!r}: use 'relu', 'gelu' or 'swiglu'.")
        if d_model <= 0 or d_ff <= 0:
            raise ValueError(f"d_model and d_ff must be positive, got {d_model=} and {d_ff=}.")
        self.d_model, self.d_ff, self.activation = d_model, d_ff, activation
        self.w1 = nn.Linear(d_model, d_ff, bias=bias)
        self.w3 = nn.Linear(d_model, d_ff, bias=bias) if activation == "swiglu" else None
        self.w2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_last_dim(x, self.d_model, "FeedForward")
        h = self.w1(x)
        if self.activation == "relu":
            h = F.relu(h)
        elif self.activation == "gelu":
            h = F.gelu(h)
        else:
            assert self.w3 is not None
            h = F.silu(h) * self.w3(x)
        return self.w2(self.dropout(h))

    @staticmethod
    def n_params(
        d_model: int, d_ff: int, activation: Activation = "relu", bias: bool = True
    ) -> int:
        """Closed-form parameter count: 2 (or 3 for SwiGLU) matrices plus their biases."""
        n_in = 2 if activation == "swiglu" else 1
        weights = n_in * d_model * d_ff + d_ff * d_model
        biases = (n_in * d_ff + d_model) if bias else 0
        return weights + biases


class ResidualBlock(nn.Module):
    """One sub-layer's residual connection and normalisation.

    ``norm_first=False`` (post-norm, the 2017 paper): ``norm(x + dropout(sublayer(x)))``.
    ``norm_first=True`` (pre-norm): ``x + dropout(sublayer(norm(x)))``.

    The sub-layer is passed at call time as a function of one tensor, so the same block wraps
    self-attention, cross-attention (close over the encoder memory) or the feed-forward net::

        block = ResidualBlock(d_model, norm_first=True)
        y = block(x, lambda h: attn(h, h, h, mask=mask))

    x: ``(..., d_model)`` -> ``(..., d_model)``.
    """

    def __init__(
        self,
        d_model: int,
        *,
        norm_first: bool = False,
        norm: NormKind = "layer",
        eps: float = 1e-5,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm = make_norm(norm, d_model, eps, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, sublayer: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))

    def extra_repr(self) -> str:
        return "pre-norm" if self.norm_first else "post-norm"
