"""The non-attention building blocks of a Transformer layer.

* :class:`LayerNorm` written from its formula, and :class:`RMSNorm` (no centring, no bias).
* :class:`FeedForward`: the position-wise network, with a ReLU (the 2017 paper), GELU (BERT,
  GPT-2) or SwiGLU (PaLM, LLaMA) non-linearity.
* :class:`ResidualBlock`: wraps one sub-layer with its residual connection and normalisation,
  either post-norm ``LayerNorm(x + Sublayer(x))`` (the 2017 paper) or pre-norm
  ``x + Sublayer(LayerNorm(x))`` (GPT-2 and most modern models), chosen by ``norm_first``.
* :class:`TransformerBlock` with its :class:`BlockConfig`: **the** block of every model in
  the course (encoder, decoder, GPT, BERT, T5): self-attention, optional cross-attention and
  the feed-forward network, each in a residual branch.

The norms, the attention and the loss have a *teaching* version written from the formula
(:class:`LayerNorm`, :class:`RMSNorm`, ...) and a *running* version on PyTorch's kernels
(``nn.LayerNorm``, ``nn.RMSNorm``); the blocks run PyTorch's unless ``scratch=True``.
Both share parameter names, so state dicts are interchangeable.

The feed-forward network and the norms act on the last dimension only ``(..., d_model)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.attention import KVCache, MultiHeadAttention
from coursekit.dropout import Dropout

Activation = Literal["relu", "gelu", "gelu_tanh", "swiglu", "geglu"]
NormKind = Literal["layer", "rms"]
ACTIVATIONS: tuple[str, ...] = ("relu", "gelu", "gelu_tanh", "swiglu", "geglu")
GATED: tuple[str, ...] = ("swiglu", "geglu")

__all__ = [
    "Activation",
    "BlockConfig",
    "FeedForward",
    "LayerNorm",
    "NormKind",
    "RMSNorm",
    "ResidualBlock",
    "TransformerBlock",
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


def make_norm(
    kind: NormKind, d: int, eps: float = 1e-5, *, bias: bool = True, scratch: bool = False
) -> nn.Module:
    """A LayerNorm (``kind="layer"``) or RMSNorm (``kind="rms"``) of size ``d``.

    PyTorch's ``nn.LayerNorm`` / ``nn.RMSNorm`` (fused kernels) by default; the course's
    :class:`LayerNorm` / :class:`RMSNorm` with ``scratch=True``. Same parameters either way.
    """
    if d <= 0:
        raise ValueError(f"a norm needs a positive feature size, got {d}.")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}.")
    if kind == "layer":
        return LayerNorm(d, eps, bias=bias) if scratch else nn.LayerNorm(d, eps, bias=bias)
    if kind == "rms":
        return RMSNorm(d, eps) if scratch else nn.RMSNorm(d, eps)
    raise ValueError(f"Unknown norm kind {kind!r}: use 'layer' or 'rms'.")


class FeedForward(nn.Module):
    r"""The position-wise feed-forward network.

    * ``relu`` (the 2017 paper): :math:`\max(0, xW_1 + b_1)W_2 + b_2`
    * ``gelu``: the same with GELU (exact erf form, BERT) instead of ReLU; ``gelu_tanh``: its
      tanh approximation (GPT-2)
    * ``swiglu``: :math:`(\mathrm{SiLU}(xW_1) \odot xV)W_2`, a gated unit with a third
      matrix ``V`` (stored as ``w3``); to keep the parameter count of a ReLU network with
      hidden size :math:`d_{ff}`, pick :math:`\tfrac{2}{3}d_{ff}` here. ``geglu``: the same
      gate with GELU (tanh form; T5 v1.1).

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
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}: use one of {', '.join(ACTIVATIONS)}."
            )
        if d_model <= 0 or d_ff <= 0:
            raise ValueError(f"d_model and d_ff must be positive, got {d_model=} and {d_ff=}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.d_model, self.d_ff, self.activation = d_model, d_ff, activation
        self.w1 = nn.Linear(d_model, d_ff, bias=bias)
        self.w3 = nn.Linear(d_model, d_ff, bias=bias) if activation in GATED else None
        self.w2 = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_last_dim(x, self.d_model, "FeedForward")
        h = self.w1(x)
        act = self.activation
        if act == "relu":
            h = F.relu(h)
        elif act == "gelu":
            h = F.gelu(h)
        elif act == "gelu_tanh":
            h = F.gelu(h, approximate="tanh")
        else:
            assert self.w3 is not None
            gate = F.silu(h) if act == "swiglu" else F.gelu(h, approximate="tanh")
            h = gate * self.w3(x)
        return self.w2(self.dropout(h))

    @staticmethod
    def n_params(
        d_model: int, d_ff: int, activation: Activation = "relu", bias: bool = True
    ) -> int:
        """Closed-form parameter count: 2 (or 3 for gated units) matrices plus their biases."""
        n_in = 2 if activation in GATED else 1
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
        self.dropout = Dropout(dropout)

    def forward(
        self, x: torch.Tensor, sublayer: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))

    def extra_repr(self) -> str:
        return "pre-norm" if self.norm_first else "post-norm"


# --------------------------------------------------------------------------------------------
# the one Transformer block
# --------------------------------------------------------------------------------------------
@dataclass
class BlockConfig:
    """Everything one :class:`TransformerBlock` needs (and nothing about vocabularies).

    ``norm_first``: pre-norm ``x + f(norm(x))`` (GPT-2, T5, LLaMA) or post-norm
    ``norm(x + f(x))`` (the 2017 paper, BERT). ``cross_attention`` adds the decoder's attention
    to an encoder output. ``n_kv_heads`` < ``n_heads`` is GQA. ``scratch`` runs the course's
    written-out norms and attention instead of PyTorch's kernels.
    """

    d_model: int
    n_heads: int
    d_ff: int
    n_kv_heads: int | None = None
    activation: Activation = "gelu"
    norm: NormKind = "layer"
    norm_first: bool = True
    eps: float = 1e-5
    bias: bool = True
    dropout: float = 0.0
    attn_dropout: float | None = None  # default: dropout
    ffn_dropout: float | None = None  # between the FFN's two matrices; default: dropout (BERT: 0)
    attn_scale: float | None = None  # default: 1 / sqrt(d_head); T5 uses 1.0
    cross_attention: bool = False
    scratch: bool = False

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "d_ff"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BlockConfig.{name} must be a positive integer, got {value!r}.")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"BlockConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads}."
            )
        kv = self.n_heads if self.n_kv_heads is None else self.n_kv_heads
        if kv < 1 or self.n_heads % kv:
            raise ValueError(
                f"BlockConfig.n_kv_heads={self.n_kv_heads} must be a positive divisor of "
                f"n_heads={self.n_heads}."
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"BlockConfig.activation={self.activation!r}: use one of {', '.join(ACTIVATIONS)}."
            )
        if self.norm not in ("layer", "rms"):
            raise ValueError(f"BlockConfig.norm={self.norm!r}: use 'layer' or 'rms'.")
        for name in ("dropout", "attn_dropout", "ffn_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"BlockConfig.{name} must be in [0, 1), got {value}.")
        if not self.eps > 0:
            raise ValueError(f"BlockConfig.eps must be positive, got {self.eps}.")

    def to_dict(self) -> dict:
        return asdict(self)

    def n_params(self) -> int:
        """Closed-form parameter count of one block."""
        d, dh = self.d_model, self.d_model // self.n_heads
        kv = (self.n_heads if self.n_kv_heads is None else self.n_kv_heads) * dh
        attn = d * (d + 2 * kv) + d * d + ((d + 2 * kv + d) if self.bias else 0)
        norm = 2 * d if (self.norm == "layer" and self.bias) else d
        ffn = FeedForward.n_params(d, self.d_ff, self.activation, self.bias)
        n_attn = 2 if self.cross_attention else 1
        return n_attn * (attn + norm) + ffn + norm


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, feed-forward; each in a residual branch.

    Pre-norm (``config.norm_first``)::

        x = x + drop(self_attn(norm1(x)))
        x = x + drop(cross_attn(norm2(x), memory))      # decoder blocks only
        x = x + drop(ffn(norm3(x)))

    Post-norm replaces each line by ``x = norm(x + drop(f(x)))``.

    Positions are supplied from outside: added to the embeddings by the model, a ``rotary``
    module shared with the attention (RoPE), or an additive ``bias`` per call (ALiBi, T5).

    Submodules: ``self_attn``, ``self_attn_norm``, ``cross_attn``, ``cross_attn_norm`` (when
    ``cross_attention``), ``ffn``, ``ffn_norm``. x ``(B, T, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(
        self,
        config: BlockConfig,
        *,
        rotary: nn.Module | None = None,
        attention: type[MultiHeadAttention] = MultiHeadAttention,
    ) -> None:
        super().__init__()
        self.config = c = config
        attn_dropout = c.dropout if c.attn_dropout is None else c.attn_dropout

        def make_attention(rot: nn.Module | None) -> MultiHeadAttention:
            return attention(
                c.d_model,
                c.n_heads,
                n_kv_heads=c.n_kv_heads,
                bias=c.bias,
                dropout=attn_dropout,
                rotary=rot,
                scale=c.attn_scale,
                scratch=c.scratch,
            )

        def norm() -> nn.Module:
            return make_norm(c.norm, c.d_model, c.eps, bias=c.bias, scratch=c.scratch)

        self.self_attn = make_attention(rotary)
        self.self_attn_norm = norm()
        self.cross_attn = make_attention(None) if c.cross_attention else None
        self.cross_attn_norm = norm() if c.cross_attention else None
        ffn_dropout = c.dropout if c.ffn_dropout is None else c.ffn_dropout
        self.ffn = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, dropout=ffn_dropout, bias=c.bias
        )
        self.ffn_norm = norm()
        self.dropout = Dropout(c.dropout)
        self.norm_first = c.norm_first

    def _branch(
        self, x: torch.Tensor, norm: nn.Module, f: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(f(norm(x)))
        return norm(x + self.dropout(f(x)))

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        memory_bias: torch.Tensor | None = None,
        memory_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """One block.

        * ``mask`` / ``is_causal`` / ``bias`` / ``cache``: self-attention's (see
          :class:`~coursekit.attention.MultiHeadAttention`).
        * ``memory`` ``(B, S, d_model)``: the encoder output for cross-attention, with
          ``memory_mask`` (bool, broadcastable to ``(B, H, T, S)``, e.g. ``(B, 1, 1, S)`` for
          padding), ``memory_bias`` and a static ``memory_cache`` for decoding.
        """
        x = self._branch(
            x,
            self.self_attn_norm,
            lambda h: self.self_attn(h, mask=mask, is_causal=is_causal, bias=bias, cache=cache),
        )
        if self.cross_attn is not None:
            if memory is None and not (memory_cache is not None and memory_cache.filled):
                raise ValueError(
                    "this block has cross-attention: pass memory= (the encoder output)."
                )
            cross, cross_norm = self.cross_attn, self.cross_attn_norm
            assert cross_norm is not None
            x = self._branch(
                x,
                cross_norm,
                lambda h: cross(h, memory, mask=memory_mask, bias=memory_bias, cache=memory_cache),
            )
        return self._branch(x, self.ffn_norm, self.ffn)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{'pre' if c.norm_first else 'post'}-norm {c.norm}, {c.activation}, "
            f"cross_attention={c.cross_attention}"
        )
