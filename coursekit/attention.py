"""Attention: scaled dot-product, masks, multi-head (MHA / GQA / MQA) and tiled exact attention.

Conventions used everywhere in the course:

* Shapes: queries ``(..., Tq, d)``, keys ``(..., Tk, d)``, values ``(..., Tk, dv)``.
* Masks are **boolean** and **True means "may attend"** (PyTorch's convention). They broadcast
  to ``(..., Tq, Tk)``. A query row whose keys are all masked out returns zeros, never NaN.
* Additive float biases (ALiBi, T5 relative bias) are passed separately as ``bias`` and are added
  to the scaled scores before the softmax.

>>> q = torch.randn(2, 5, 8)
>>> out = scaled_dot_product_attention(q, q, q, causal_mask(5))
>>> out.shape
torch.Size([2, 5, 8])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "KVCache",
    "MultiHeadAttention",
    "attention_weights",
    "causal_mask",
    "combine_masks",
    "flash_attention",
    "lengths_to_mask",
    "padding_mask",
    "padding_to_attention_mask",
    "scaled_dot_product_attention",
    "stable_softmax",
]


# --------------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------------
def causal_mask(
    t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean ``(t_q, t_k)`` mask; query ``i`` may see key ``j`` iff ``j <= i + (t_k - t_q)``.

    With ``t_k == t_q`` this is the usual lower-triangular mask. With ``t_k > t_q`` the queries
    are taken to be the *last* ``t_q`` positions of the key sequence, which is what cached
    (incremental) decoding needs: one new query sees every cached key and itself.
    """
    t_k = t_q if t_k is None else t_k
    if t_q < 0 or t_k < 0:
        raise ValueError(f"causal_mask needs non-negative lengths, got t_q={t_q}, t_k={t_k}.")
    i = torch.arange(t_q, device=device).unsqueeze(1)
    j = torch.arange(t_k, device=device).unsqueeze(0)
    return j <= i + (t_k - t_q)


def padding_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``(B, T)`` token ids -> ``(B, T)`` bool, True where the token is real (not padding)."""
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"padding_mask expects integer token ids, got dtype {ids.dtype}.")
    return ids != pad_id


def lengths_to_mask(lengths: torch.Tensor | list[int], max_len: int | None = None) -> torch.Tensor:
    """Sequence lengths ``(B,)`` -> ``(B, max_len)`` bool, True for the first ``length`` slots."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (B,), got shape {tuple(lengths.shape)}.")
    if (lengths < 0).any():
        raise ValueError("lengths must be non-negative.")
    max_len = int(lengths.max().item()) if max_len is None else max_len
    if lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(f"a length ({int(lengths.max())}) exceeds max_len={max_len}.")
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def padding_to_attention_mask(
    key_valid: torch.Tensor, query_valid: torch.Tensor | None = None, *, heads: bool = True
) -> torch.Tensor:
    """Turn ``(B, Tk)`` key validity (True = real token) into an attention mask.

    Returns ``(B, 1, 1, Tk)`` (``heads=True``, for ``(B, H, Tq, Tk)`` scores) or ``(B, 1, Tk)``.
    If ``query_valid`` ``(B, Tq)`` is given, padded *queries* are masked out as well, so their
    rows come out as zeros: ``(B, 1, Tq, Tk)`` or ``(B, Tq, Tk)``.
    """
    if key_valid.dtype != torch.bool or key_valid.dim() != 2:
        raise TypeError(
            f"key_valid must be a (B, Tk) bool tensor, got {key_valid.dtype} {tuple(key_valid.shape)};"
            " build it with padding_mask(ids, pad_id) or lengths_to_mask(lengths)."
        )
    mask = key_valid.unsqueeze(1)  # (B, 1, Tk)
    if query_valid is not None:
        if query_valid.dtype != torch.bool or query_valid.shape[0] != key_valid.shape[0]:
            raise TypeError("query_valid must be a (B, Tq) bool tensor with the same batch size.")
        mask = mask & query_valid.unsqueeze(2)  # (B, Tq, Tk)
    return mask.unsqueeze(1) if heads else mask


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of boolean masks (broadcasting); ``None`` entries are skipped."""
    out: torch.Tensor | None = None
    for m in masks:
        if m is None:
            continue
        _check_bool_mask(m)
        out = m if out is None else (out & m)
    return out


def _check_bool_mask(mask: torch.Tensor) -> None:
    if mask.dtype != torch.bool:
        raise TypeError(
            f"attention masks must be boolean (True = may attend), got dtype {mask.dtype}. "
            "Convert with `mask.bool()` for a 0/1 mask, or pass an additive float mask as `bias=`."
        )


# --------------------------------------------------------------------------------------------
# scaled dot-product attention
# --------------------------------------------------------------------------------------------
def stable_softmax(scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax that subtracts the row maximum first; rows that are all ``-inf`` give zeros.

    ``exp(s - max)`` never overflows, and the result is mathematically the same softmax.
    """
    row_max = scores.amax(dim=dim, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    e = torch.exp(scores - row_max)
    denom = e.sum(dim=dim, keepdim=True)
    return e / denom.clamp_min(torch.finfo(e.dtype).tiny)


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() < 2 or k.dim() < 2 or v.dim() < 2:
        raise ValueError(
            "q, k and v need at least 2 dimensions (..., T, d); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"query and key feature sizes differ: q is {tuple(q.shape)} (d={q.shape[-1]}), "
            f"k is {tuple(k.shape)} (d={k.shape[-1]}); project them to the same d_k."
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"keys and values must have the same length Tk: k is {tuple(k.shape)}, "
            f"v is {tuple(v.shape)}."
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError as err:
        raise ValueError(
            f"batch dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} "
            "do not broadcast."
        ) from err


def attention_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scale + bias) with masked keys removed: ``(..., Tq, Tk)``."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (..., Tq, Tk)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        _check_bool_mask(mask)
        try:
            torch.broadcast_shapes(mask.shape, scores.shape)
        except RuntimeError as err:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
                f"{tuple(scores.shape)} (..., Tq, Tk)."
            ) from err
        scores = scores.masked_fill(~mask, float("-inf"))
    return stable_softmax(scores, dim=-1)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: float | None = None,
    return_weights: bool = False,
    bias: torch.Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d_k) + bias) V, written out step by step.

    Args:
        q: ``(..., Tq, d)`` queries.  k: ``(..., Tk, d)`` keys.  v: ``(..., Tk, dv)`` values.
        mask: bool, broadcastable to ``(..., Tq, Tk)``; True = may attend.
        scale: multiplies the scores; default ``1 / sqrt(d)``.
        bias: optional additive float bias broadcastable to ``(..., Tq, Tk)`` (ALiBi, T5).
        dropout, training: dropout on the attention weights (only when ``training``).

    Returns:
        ``(..., Tq, dv)``, and the weights ``(..., Tq, Tk)`` if ``return_weights``.
        A query row with no allowed key yields zeros.
    """
    _check_qkv(q, k, v)
    weights = attention_weights(q, k, mask, scale=scale, bias=bias)
    used = F.dropout(weights, p=dropout, training=True) if (training and dropout > 0) else weights
    out = torch.matmul(used, v)
    return (out, weights) if return_weights else out


# --------------------------------------------------------------------------------------------
# tiled exact attention (FlashAttention's idea, in plain PyTorch)
# --------------------------------------------------------------------------------------------
def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = False,
    block_size: int = 64,
    scale: float | None = None,
) -> torch.Tensor:
    """Exact attention computed block by block with an online softmax.

    Never builds the full ``Tq x Tk`` score matrix: for each block of queries it walks over
    blocks of keys keeping a running row maximum ``m``, a running normaliser ``l`` and a
    running un-normalised output ``acc``; when a new block raises the maximum, the old sums
    are rescaled by ``exp(m_old - m_new)``. Memory is ``O(block_size^2)`` per step.

    q ``(..., Tq, d)``, k ``(..., Tk, d)``, v ``(..., Tk, dv)`` -> ``(..., Tq, dv)``.
    ``causal`` uses :func:`causal_mask`'s convention (queries are the last Tq positions).
    """
    _check_qkv(q, k, v)
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}.")
    t_q, t_k = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    out = q.new_zeros(*batch, t_q, v.shape[-1])
    offset = t_k - t_q
    for qs in range(0, t_q, block_size):
        qe = min(qs + block_size, t_q)
        qb = q[..., qs:qe, :] * scale
        m = q.new_full((*batch, qe - qs, 1), float("-inf"))
        lsum = q.new_zeros((*batch, qe - qs, 1))
        acc = q.new_zeros((*batch, qe - qs, v.shape[-1]))
        for ks in range(0, t_k, block_size):
            ke = min(ks + block_size, t_k)
            if causal and ks > qe - 1 + offset:
                break  # every key in this block and later is in the future
            s = torch.matmul(qb, k[..., ks:ke, :].transpose(-2, -1))  # (..., bq, bk)
            if causal:
                i = torch.arange(qs, qe, device=q.device).unsqueeze(1)
                j = torch.arange(ks, ke, device=q.device).unsqueeze(0)
                s = s.masked_fill(j > i + offset, float("-inf"))
            m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
            m_safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
            p = torch.exp(s - m_safe)
            correction = torch.exp(torch.where(torch.isfinite(m), m - m_safe, m))
            lsum = lsum * correction + p.sum(dim=-1, keepdim=True)
            acc = acc * correction + torch.matmul(p, v[..., ks:ke, :])
            m = m_new
        out[..., qs:qe, :] = acc / lsum.clamp_min(torch.finfo(acc.dtype).tiny)
    return out


# --------------------------------------------------------------------------------------------
# multi-head attention
# --------------------------------------------------------------------------------------------
@dataclass
class KVCache:
    """Keys and values of past positions for incremental decoding, ``(B, H_kv, T, d_head)``.

    Pass the same object to every decoding step of one layer; :meth:`append` grows it.
    """

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    @property
    def length(self) -> int:
        return 0 if self.k is None else int(self.k.shape[-2])

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add new ``(B, H_kv, t, d_head)`` keys/values; return all of them so far."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def nbytes(self) -> int:
        """Memory held by the cached tensors, in bytes."""
        if self.k is None or self.v is None:
            return 0
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate Q/K/V/output projections; MHA, GQA and MQA.

    ``n_heads`` query heads of size ``d_head = d_model // n_heads``; ``n_kv_heads`` key/value
    heads (default ``n_heads``: classic MHA). ``n_kv_heads < n_heads`` groups
    ``n_heads // n_kv_heads`` query heads around one K/V head (GQA); ``n_kv_heads = 1`` is MQA.

    ``rope=True`` rotates queries and keys with :func:`coursekit.positional.apply_rope`.

    Parameters are ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` (``nn.Linear``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        rope: bool = False,
        rope_base: float = 10000.0,
        kv_dim: int | None = None,
    ) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model={d_model} is not divisible by n_heads={n_heads}; "
                "pick n_heads that divides d_model (e.g. 512 = 8 x 64)."
            )
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_kv_heads < 1 or n_heads % n_kv_heads != 0:
            raise ValueError(
                f"n_kv_heads={n_kv_heads} must be a positive divisor of n_heads={n_heads} "
                "(n_heads for MHA, 1 for MQA, something in between for GQA)."
            )
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.rope = rope
        self.rope_base = rope_base
        kv_dim = d_model if kv_dim is None else kv_dim
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(kv_dim, n_kv_heads * self.d_head, bias=bias)
        self.v_proj = nn.Linear(kv_dim, n_kv_heads * self.d_head, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        #: use PyTorch's fused kernel when weights are not requested (same maths, faster).
        self.fused = True

    # ---- helpers ---------------------------------------------------------------------------
    def _split(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, heads, self.d_head).transpose(1, 2)  # (B, H, T, d_head)

    @staticmethod
    def _as_4d(mask: torch.Tensor) -> torch.Tensor:
        """(Tq,Tk) -> (1,1,Tq,Tk); (B,Tq,Tk) -> (B,1,Tq,Tk); 4-D unchanged."""
        if mask.dim() == 2:
            return mask[None, None]
        if mask.dim() == 3:
            return mask[:, None]
        if mask.dim() == 4:
            return mask
        raise ValueError(
            f"mask must be (Tq, Tk), (B, Tq, Tk) or (B, H, Tq, Tk); got {tuple(mask.shape)}."
        )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        return_weights: bool = False,
        kv_cache: KVCache | None = None,
        bias: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` ``(B, Tq, d_model)`` to ``key``/``value`` ``(B, Tk, d_model)``.

        * Self-attention: pass only ``query``. Cross-attention: pass the encoder output as
          ``key`` (and ``value``, which defaults to ``key``).
        * ``mask``: bool ``(Tq, Tk)``, ``(B, Tq, Tk)`` or ``(B, H, Tq, Tk)``, True = may attend.
        * ``key_padding_mask``: bool ``(B, Tk)``, True = real token (padding is False).
        * ``is_causal``: add :func:`causal_mask` (queries are the last Tq of the Tk positions).
        * ``kv_cache``: a :class:`KVCache`; the new keys/values are appended and the query
          attends to all cached positions (self-attention decoding).
        * ``bias``: additive float bias broadcastable to ``(B, H, Tq, Tk)`` (ALiBi, T5).
        * ``positions``: ``(Tq,)`` positions of the queries for RoPE (default: continue after
          the cache).

        Returns ``(B, Tq, d_model)``, plus weights ``(B, H, Tq, Tk)`` if ``return_weights``.
        """
        if query.dim() != 3 or query.shape[-1] != self.d_model:
            raise ValueError(
                f"query must be (B, T, d_model={self.d_model}), got {tuple(query.shape)}."
            )
        key = query if key is None else key
        value = key if value is None else value
        if key.dim() != 3 or value.dim() != 3 or key.shape[:2] != value.shape[:2]:
            raise ValueError(
                f"key and value must be (B, Tk, d) with the same B and Tk; got "
                f"{tuple(key.shape)} and {tuple(value.shape)}."
            )
        if key.shape[0] != query.shape[0]:
            raise ValueError(f"batch sizes differ: query {query.shape[0]}, key {key.shape[0]}.")
        b, t_q, _ = query.shape
        q = self._split(self.q_proj(query), self.n_heads)
        k = self._split(self.k_proj(key), self.n_kv_heads)
        v = self._split(self.v_proj(value), self.n_kv_heads)
        past = kv_cache.length if kv_cache is not None else 0
        if self.rope:
            from coursekit.positional import apply_rope

            if positions is None:
                positions = torch.arange(past, past + t_q, device=query.device)
            k_pos = positions if key is query else torch.arange(k.shape[-2], device=q.device)
            q = apply_rope(q, positions, base=self.rope_base)
            k = apply_rope(k, k_pos, base=self.rope_base)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)
        t_k = k.shape[-2]
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)

        full_mask: torch.Tensor | None = None
        if mask is not None:
            _check_bool_mask(mask)
            full_mask = self._as_4d(mask)
        if key_padding_mask is not None:
            _check_bool_mask(key_padding_mask)
            if key_padding_mask.shape != (b, t_k):
                raise ValueError(
                    f"key_padding_mask must be (B, Tk) = {(b, t_k)}, got "
                    f"{tuple(key_padding_mask.shape)}."
                )
            full_mask = combine_masks(full_mask, key_padding_mask[:, None, None, :])
        if is_causal:
            full_mask = combine_masks(full_mask, causal_mask(t_q, t_k, device=query.device))

        drop = self.dropout if self.training else 0.0
        weights = None
        if return_weights or not self.fused or self._has_empty_row(full_mask, t_q, t_k):
            out, weights = scaled_dot_product_attention(
                q,
                k,
                v,
                full_mask,
                return_weights=True,
                bias=bias,
                dropout=drop,
                training=self.training,
            )
        else:
            attn_mask = full_mask
            if bias is not None:
                attn_mask = bias.to(q.dtype)
                if full_mask is not None:
                    attn_mask = attn_mask.masked_fill(~full_mask, float("-inf"))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=drop)
        out = out.transpose(1, 2).reshape(b, t_q, self.d_model)
        out = self.out_proj(out)
        return (out, weights) if return_weights else out

    @staticmethod
    def _has_empty_row(mask: torch.Tensor | None, t_q: int, t_k: int) -> bool:
        if mask is None:
            return t_k == 0
        return bool((~mask.any(dim=-1)).any())

    # ---- interop -----------------------------------------------------------------------------
    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (same d_model, heads, bias)."""
        if mha._qkv_same_embed_dim is False:
            raise ValueError(
                "only nn.MultiheadAttention with kdim == vdim == embed_dim is supported."
            )
        has_bias = mha.in_proj_bias is not None
        ours = cls(mha.embed_dim, mha.num_heads, bias=has_bias, dropout=mha.dropout)
        d = mha.embed_dim
        w = mha.in_proj_weight.detach()
        with torch.no_grad():
            ours.q_proj.weight.copy_(w[:d])
            ours.k_proj.weight.copy_(w[d : 2 * d])
            ours.v_proj.weight.copy_(w[2 * d :])
            ours.out_proj.weight.copy_(mha.out_proj.weight)
            if has_bias:
                b = mha.in_proj_bias.detach()
                ours.q_proj.bias.copy_(b[:d])
                ours.k_proj.bias.copy_(b[d : 2 * d])
                ours.v_proj.bias.copy_(b[2 * d :])
                ours.out_proj.bias.copy_(mha.out_proj.bias)
        return ours.to(w.device, w.dtype)

    def extra_repr(self) -> str:
        kind = (
            "MHA" if self.n_kv_heads == self.n_heads else ("MQA" if self.n_kv_heads == 1 else "GQA")
        )
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads} ({kind}), "
            f"d_head={self.d_head}, rope={self.rope}"
        )
