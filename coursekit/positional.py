"""Position information for attention: sinusoidal, learned, RoPE, ALiBi and T5 relative bias.

Self-attention by itself treats its input as a set (it is permutation-equivariant), so every
Transformer adds order in one of these ways:

* **absolute, added to the embeddings**: :func:`sinusoidal_encoding` (Vaswani et al. 2017),
  :class:`LearnedPositionalEmbedding` (GPT, BERT);
* **relative, added to the attention scores**: :func:`alibi_bias` (Press et al. 2021),
  :class:`T5RelativeBias` with :func:`t5_relative_position_bucket` (Raffel et al. 2020);
* **relative, by rotating queries and keys**: :func:`apply_rope` (Su et al. 2021).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "ALiBiBias",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "T5RelativeBias",
    "alibi_bias",
    "alibi_slopes",
    "apply_rope",
    "rope_frequencies",
    "sinusoidal_encoding",
    "sinusoidal_shift_matrix",
    "t5_relative_position_bucket",
]


# --------------------------------------------------------------------------------------------
# sinusoidal
# --------------------------------------------------------------------------------------------
def sinusoidal_encoding(
    n_positions: int,
    d_model: int,
    *,
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(n_positions, d_model)`` table: channel 2i = sin(pos / base^(2i/d)), 2i+1 = cos(...)."""
    if n_positions < 0 or d_model < 1:
        raise ValueError(f"need n_positions >= 0 and d_model >= 1, got {n_positions}, {d_model}.")
    pos = torch.arange(n_positions, dtype=torch.float64, device=device).unsqueeze(1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)
    angle = pos / base ** (two_i / d_model)  # (n, ceil(d/2))
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.to(dtype)


def sinusoidal_shift_matrix(
    k: int, d_model: int, *, base: float = 10000.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The fixed ``(d_model, d_model)`` matrix ``M_k`` with ``PE(pos + k) = M_k @ PE(pos)``.

    It is block diagonal: each (sin, cos) channel pair with frequency w is rotated by the angle
    ``k * w``, using sin(a + b) = sin a cos b + cos a sin b and cos(a + b) = cos a cos b - sin a sin b.
    ``d_model`` must be even. ``M_k`` does not depend on ``pos``.
    """
    if d_model % 2:
        raise ValueError(f"the shift matrix needs an even d_model, got {d_model}.")
    w = 1.0 / base ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    c, s = torch.cos(k * w), torch.sin(k * w)
    idx = torch.arange(0, d_model, 2)
    m[idx, idx] = c  # new sin = cos(kw) sin + sin(kw) cos
    m[idx, idx + 1] = s
    m[idx + 1, idx] = -s  # new cos = -sin(kw) sin + cos(kw) cos
    m[idx + 1, idx + 1] = c
    return m.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to ``(B, T, d_model)`` embeddings (no parameters).

    The table is computed for ``max_positions`` and grown on demand, so any length works.
    """

    pe: torch.Tensor

    def __init__(self, d_model: int, max_positions: int = 1024, *, base: float = 10000.0) -> None:
        super().__init__()
        self.d_model, self.base = d_model, base
        self.register_buffer(
            "pe", sinusoidal_encoding(max_positions, d_model, base=base), persistent=False
        )

    def encodings(self, t: int, offset: int = 0) -> torch.Tensor:
        """``(t, d_model)`` encodings of positions ``offset .. offset + t - 1``."""
        if offset + t > self.pe.shape[0]:
            self.pe = sinusoidal_encoding(
                2 * (offset + t), self.d_model, base=self.base, device=self.pe.device
            )
        return self.pe[offset : offset + t]

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """``x`` ``(B, T, d_model)`` -> ``x + PE[offset : offset + T]``."""
        if x.shape[-1] != self.d_model:
            raise ValueError(f"expected last dim d_model={self.d_model}, got {tuple(x.shape)}.")
        return x + self.encodings(x.shape[-2], offset).to(x.dtype)


# --------------------------------------------------------------------------------------------
# learned absolute
# --------------------------------------------------------------------------------------------
class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position (GPT, BERT): an ``nn.Embedding(max_positions, d_model)``.

    It cannot represent positions ``>= max_positions``: asking for them raises an error,
    which is exactly the length limit of models like GPT-2 (1024) and BERT (512).
    """

    def __init__(self, max_positions: int, d_model: int, *, init_std: float = 0.02) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.weight = nn.Parameter(torch.randn(max_positions, d_model) * init_std)

    def encodings(self, t: int, offset: int = 0) -> torch.Tensor:
        """``(t, d_model)`` embeddings of positions ``offset .. offset + t - 1``."""
        if offset < 0 or offset + t > self.max_positions:
            raise IndexError(
                f"positions {offset}..{offset + t - 1} requested, but this learned positional "
                f"embedding only has {self.max_positions} positions (0..{self.max_positions - 1}). "
                "Learned absolute embeddings cannot extrapolate: shorten the input (or use a "
                "sliding window), or train with a larger max_positions."
            )
        return self.weight[offset : offset + t]

    def forward(self, x: torch.Tensor, *, offset: int = 0) -> torch.Tensor:
        """``x`` ``(B, T, d_model)`` -> ``x + P[offset : offset + T]``."""
        return x + self.encodings(x.shape[-2], offset).to(x.dtype)


# --------------------------------------------------------------------------------------------
# RoPE
# --------------------------------------------------------------------------------------------
def rope_frequencies(
    d: int, *, base: float = 10000.0, device: torch.device | str | None = None
) -> torch.Tensor:
    """``(d/2,)`` rotation speeds theta_i = base^(-2i/d) of the channel pairs (fastest first).

    Computed in float64 where the device has it (MPS has not: float32 there).
    """
    if d < 2 or d % 2:
        raise ValueError(f"RoPE needs an even head dimension >= 2, got d={d}.")
    _check_rope_args(base, 1.0)
    dtype = _wide_float(device)
    return base ** (-torch.arange(0, d, 2, dtype=dtype, device=device) / d)


def _wide_float(device: torch.device | str | None) -> torch.dtype:
    """float64 for position tables, except on devices without it (Apple MPS)."""
    kind = torch.device(device).type if device is not None else "cpu"
    return torch.float32 if kind == "mps" else torch.float64


def _check_rope_args(base: float, scale: float) -> None:
    if not (math.isfinite(base) and base > 1.0):
        raise ValueError(f"RoPE base must be a finite number > 1 (10000 is usual), got {base}.")
    if not (math.isfinite(scale) and scale > 0.0):
        raise ValueError(
            f"RoPE scale must be a finite number > 0 (1 = no interpolation), got {scale}."
        )


def apply_rope(
    x: torch.Tensor,
    positions: torch.Tensor | None = None,
    *,
    base: float = 10000.0,
    scale: float = 1.0,
    interleaved: bool = True,
) -> torch.Tensor:
    """Rotate each channel pair of ``x`` ``(..., T, d)`` by the angle ``position * theta_i``.

    * ``positions``: ``(T,)`` (or broadcastable to ``(..., T)``), default ``0 .. T-1``; may be
      fractional.
    * ``scale``: position interpolation for longer contexts: positions are divided by ``scale``
      (Chen et al. 2023); raising ``base`` is the other common frequency tweak.
    * ``interleaved=True`` pairs channels (0, 1), (2, 3), ... as in the RoFormer paper;
      ``False`` pairs channel i with i + d/2 (the GPT-NeoX / LLaMA code layout).

    Norms are preserved and ``<rope(q, m), rope(k, n)>`` depends only on ``m - n``.
    """
    d = x.shape[-1]
    if d % 2:
        raise ValueError(
            f"apply_rope needs an even last dimension, got x of shape {tuple(x.shape)}."
        )
    _check_rope_args(base, scale)
    t = x.shape[-2]
    if positions is None:
        positions = torch.arange(t, device=x.device)
    positions = torch.as_tensor(positions, device=x.device)
    if positions.shape[-1] != t:
        raise ValueError(f"positions has {positions.shape[-1]} entries but x has T={t}.")
    theta = rope_frequencies(d, base=base, device=x.device)
    angle = (positions.to(theta.dtype) / scale).unsqueeze(-1) * theta  # (..., T, d/2)
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
    else:
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    r1 = x1 * cos - x2 * sin
    r2 = x1 * sin + x2 * cos
    if interleaved:
        return torch.stack([r1, r2], dim=-1).flatten(-2)
    return torch.cat([r1, r2], dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE as a module: cached cos/sin tables, applied to per-head queries and keys.

    The running version of :func:`apply_rope` (same result): the angles are computed once in
    float64 on the CPU, stored as buffers that follow the model's device and dtype
    (``model.to(torch.bfloat16)`` converts them too), and grown when a longer input arrives.

    ``forward(x, offset=0)`` rotates ``x`` ``(..., T, head_dim)`` as positions
    ``offset .. offset + T - 1``. ``scale`` > 1 is position interpolation; ``interleaved``
    picks the channel pairing (see :func:`apply_rope`).
    """

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(
        self,
        head_dim: int,
        *,
        base: float = 10000.0,
        scale: float = 1.0,
        interleaved: bool = True,
        max_positions: int = 1024,
    ) -> None:
        super().__init__()
        if head_dim < 2 or head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension >= 2, got {head_dim}.")
        _check_rope_args(base, scale)
        if max_positions < 1:
            raise ValueError(f"max_positions must be positive, got {max_positions}.")
        self.head_dim, self.base, self.scale, self.interleaved = head_dim, base, scale, interleaved
        dtype = torch.get_default_dtype()
        cos, sin = self._tables(max_positions)
        self.register_buffer("cos", cos.to(dtype), persistent=False)
        self.register_buffer("sin", sin.to(dtype), persistent=False)

    def _tables(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 ``(n, head_dim / 2)`` cos and sin tables, computed on the CPU."""
        theta = rope_frequencies(self.head_dim, base=self.base)
        angle = (torch.arange(n, dtype=torch.float64) / self.scale).unsqueeze(1) * theta
        return torch.cos(angle), torch.sin(angle)

    def _refresh(self, n: int) -> None:
        """Recompute the tables for ``n`` positions in float64, then cast to the buffers'
        dtype before moving them (so no float64 tensor ever reaches a device without it)."""
        cos, sin = self._tables(n)
        self.cos = cos.to(self.cos.dtype).to(self.cos.device)
        self.sin = sin.to(self.sin.dtype).to(self.sin.device)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202
        # model.to(dtype) would cast the float32 tables and lose precision for float64 models:
        # rebuild them from float64 in the new dtype instead.
        super()._apply(fn, recurse)
        self._refresh(self.cos.shape[0])
        return self

    def _grow(self, n: int) -> None:
        self._refresh(max(n, 2 * self.cos.shape[0]))

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        t, d = x.shape[-2], x.shape[-1]
        if d != self.head_dim:
            raise ValueError(f"expected head_dim={self.head_dim}, got x of shape {tuple(x.shape)}.")
        if offset < 0:
            raise ValueError(f"offset must be non-negative, got {offset}.")
        if offset + t > self.cos.shape[0]:
            self._grow(offset + t)
        cos = self.cos[offset : offset + t].to(x.dtype)
        sin = self.sin[offset : offset + t].to(x.dtype)
        if self.interleaved:
            x1, x2 = x[..., 0::2], x[..., 1::2]
            return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)

    def extra_repr(self) -> str:
        return (
            f"head_dim={self.head_dim}, base={self.base}, scale={self.scale}, "
            f"interleaved={self.interleaved}"
        )


# --------------------------------------------------------------------------------------------
# ALiBi
# --------------------------------------------------------------------------------------------
def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Head slopes of ALiBi (Press et al. 2021), ``(n_heads,)``.

    For n a power of two: the geometric sequence 2^(-8/n), 2^(-16/n), ..., 2^(-8) (8 heads:
    1/2, 1/4, ..., 1/256). Otherwise: the slopes for the largest power of two p < n, followed
    by every other slope of the 2p sequence until there are n.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be positive, got {n_heads}.")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        p = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(p) + power_of_two(2 * p)[0::2][: n_heads - p]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(
    n_heads: int,
    t_q: int,
    t_k: int | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(n_heads, t_q, t_k)`` additive bias ``-m_h * |i - j|`` in ``dtype``.

    Queries are the last ``t_q`` of the ``t_k`` key positions (as in :func:`causal_mask`), so
    the same function serves cached decoding. Combine with a causal mask for language models.
    """
    t_k = t_q if t_k is None else t_k
    if t_q < 0 or t_k < 0:
        raise ValueError(f"alibi_bias needs non-negative lengths, got t_q={t_q}, t_k={t_k}.")
    if t_q > t_k:
        raise ValueError(
            f"alibi_bias takes the queries as the last t_q of the t_k keys: need t_q <= t_k, "
            f"got t_q={t_q}, t_k={t_k}."
        )
    i = torch.arange(t_q, device=device).unsqueeze(1) + (t_k - t_q)
    j = torch.arange(t_k, device=device).unsqueeze(0)
    dist = (i - j).abs().float()  # (t_q, t_k)
    return (-alibi_slopes(n_heads).to(device).view(-1, 1, 1) * dist).to(dtype)


class ALiBiBias(nn.Module):
    """ALiBi as a module: ``forward(t_q, t_k, dtype=...)`` -> ``(1, n_heads, t_q, t_k)``.

    The slopes are a buffer (they follow the model's device); no parameters.
    """

    slopes: torch.Tensor

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def forward(
        self, t_q: int, t_k: int | None = None, *, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        t_k = t_q if t_k is None else t_k
        if t_q < 0 or t_k < t_q:
            raise ValueError(f"need 0 <= t_q <= t_k, got t_q={t_q}, t_k={t_k}.")
        device = self.slopes.device
        i = torch.arange(t_q, device=device).unsqueeze(1) + (t_k - t_q)
        j = torch.arange(t_k, device=device).unsqueeze(0)
        bias = -self.slopes.view(-1, 1, 1) * (i - j).abs().to(self.slopes.dtype)
        return bias.unsqueeze(0).to(dtype or self.slopes.dtype)


# --------------------------------------------------------------------------------------------
# T5 relative position bias
# --------------------------------------------------------------------------------------------
def t5_relative_position_bucket(
    relative_position: torch.Tensor,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """Map ``key_pos - query_pos`` to one of ``num_buckets`` buckets as T5 does.

    Bidirectional: half the buckets for keys before the query, half for keys after. Within a
    half of ``n`` buckets, the distances ``0 .. n/2 - 1`` each get their own bucket; larger
    distances share logarithmically wider buckets up to ``max_distance``, beyond which
    everything lands in the last bucket. (With 8 buckets per half: 0, 1, 2, 3 exact, then
    4-5, 6-7, 8-11 ... growing.) Unidirectional (decoder): only keys at or before the query.
    """
    if num_buckets < 4:
        raise ValueError(
            f"num_buckets must be >= 4 (room for exact and log-spaced buckets, per direction "
            f"when bidirectional), got num_buckets={num_buckets}."
        )
    rel = torch.as_tensor(relative_position)
    if rel.dtype.is_floating_point:
        raise TypeError("relative_position must be an integer tensor (key_pos - query_pos).")
    buckets = torch.zeros_like(rel, dtype=torch.long)
    n = num_buckets
    if bidirectional:
        n //= 2
        buckets = buckets + (rel > 0).long() * n
        dist = rel.abs()
    else:
        dist = -torch.clamp(rel, max=0)  # only the past counts; future keys -> distance 0
    max_exact = n // 2
    if max_distance <= max_exact:
        raise ValueError(
            f"max_distance={max_distance} must exceed the {max_exact} exact buckets "
            f"(num_buckets={num_buckets}); raise max_distance or lower num_buckets."
        )
    is_small = dist < max_exact
    # log-spaced buckets for max_exact <= dist < max_distance (dist clamped to 1 to avoid log 0)
    log_part = (
        torch.log(dist.float().clamp(min=1) / max_exact)
        / math.log(max_distance / max_exact)
        * (n - max_exact)
    ).to(torch.long)
    large = torch.clamp(max_exact + log_part, max=n - 1)
    return buckets + torch.where(is_small, dist.long(), large)


class T5RelativeBias(nn.Module):
    """Learned per-head scalar bias for each relative-position bucket (T5).

    ``forward(t_q, t_k)`` returns ``(1, n_heads, t_q, t_k)`` to add to the attention scores
    (queries are the last ``t_q`` of the ``t_k`` positions, as in cached decoding).
    The parameter is ``relative_attention_bias`` ``nn.Embedding(num_buckets, n_heads)``,
    the same layout as in `transformers`' T5.
    """

    def __init__(
        self,
        n_heads: int,
        *,
        bidirectional: bool = True,
        num_buckets: int = 32,
        max_distance: int = 128,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.bidirectional = bidirectional
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, n_heads)

    def forward(
        self, t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None
    ) -> torch.Tensor:
        t_k = t_q if t_k is None else t_k
        device = device or self.relative_attention_bias.weight.device
        q_pos = torch.arange(t_q, device=device).unsqueeze(1) + (t_k - t_q)
        k_pos = torch.arange(t_k, device=device).unsqueeze(0)
        buckets = t5_relative_position_bucket(
            k_pos - q_pos,
            bidirectional=self.bidirectional,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)
