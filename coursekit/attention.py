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

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "KVCache",
    "MultiHeadAttention",
    "fused_attention",
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


def _check_bias(bias: torch.Tensor) -> None:
    if not isinstance(bias, torch.Tensor) or not bias.dtype.is_floating_point:
        kind = bias.dtype if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise TypeError(
            f"bias must be an additive floating-point tensor (ALiBi, T5), got {kind}; "
            "a boolean tensor is a mask: pass it as mask= (True = may attend)."
        )


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
    if scores.shape[dim] == 0:
        return scores.clone()
    row_max = scores.amax(dim=dim, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    e = torch.exp(scores - row_max)
    denom = e.sum(dim=dim, keepdim=True)
    return e / denom.clamp_min(torch.finfo(e.dtype).tiny)


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}.")
        if not t.dtype.is_floating_point:
            raise TypeError(
                f"{name} must be a floating-point tensor (float32, float64, bfloat16 or float16), "
                f"got {t.dtype}; token ids go through an embedding first."
            )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(
            f"q, k and v must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}; "
            "cast them with .to(dtype)."
        )
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
        _check_bias(bias)
        scores = scores + bias.to(scores.dtype)
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
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
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
# the running version: PyTorch's fused kernel
# --------------------------------------------------------------------------------------------
def fused_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """The same maths as :func:`scaled_dot_product_attention`, on PyTorch's fused kernels.

    q ``(B, H, Tq, d)``, k ``(B, H_kv, Tk, d)``, v ``(B, H_kv, Tk, dv)`` -> ``(B, H, Tq, dv)``;
    ``H_kv`` may divide ``H`` (grouped-query attention, handled by the kernel itself).

    The fastest kernel is chosen by what is passed:

    * ``is_causal`` with ``Tq == Tk`` and no other mask or bias: the kernel's own causal path
      (no mask tensor at all, and on CUDA the flash kernel);
    * ``is_causal`` with one query (a cached decoding step): no mask, since the newest token
      may see every cached key;
    * otherwise the causal mask, ``mask`` and ``bias`` are folded into one ``attn_mask``.

    No host-device synchronisation happens here: rows whose keys are all masked come out as
    zeros from the kernel itself.
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    if t_q == 0 or t_k == 0:
        return q.new_zeros(*q.shape[:-1], v.shape[-1])
    causal = is_causal and t_q > 1  # one new query may see every key
    attn_mask: torch.Tensor | None = mask
    if causal and (mask is not None or bias is not None or t_q != t_k):
        attn_mask = combine_masks(mask, causal_mask(t_q, t_k, device=q.device))
        causal = False
    if bias is not None:
        float_bias = bias.to(q.dtype)
        attn_mask = (
            float_bias if attn_mask is None else float_bias.masked_fill(~attn_mask, float("-inf"))
        )
    return F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=attn_mask,
        dropout_p=dropout,
        is_causal=causal,
        scale=scale,
        enable_gqa=k.shape[-3] != q.shape[-3],
    )


# --------------------------------------------------------------------------------------------
# KV cache
# --------------------------------------------------------------------------------------------
class KVCache:
    """Keys and values of past positions for one attention layer, ``(B, H_kv, T, d_head)``.

    Storage is preallocated (``max_len`` slots, or grown by doubling when it runs out), so
    appending one token writes into a slice instead of copying the whole history: decoding
    ``n`` tokens costs ``O(n)`` copying, not ``O(n^2)``. The length is a Python ``int``: no
    host-device synchronisation to know where to write.

    ``static=True`` is for cross-attention: the first call stores the encoder's keys and
    values, later calls reuse them (the encoder output does not change while decoding).
    """

    def __init__(self, max_len: int | None = None, *, static: bool = False) -> None:
        if max_len is not None and max_len < 1:
            raise ValueError(f"max_len must be positive (or None to grow), got {max_len}.")
        self.max_len = max_len
        self.static = static
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self.length = 0

    @property
    def k(self) -> torch.Tensor | None:
        """The cached keys ``(B, H_kv, length, d_head)`` (a view), or None when empty."""
        return None if self._k is None else self._k[..., : self.length, :]

    @property
    def v(self) -> torch.Tensor | None:
        """The cached values ``(B, H_kv, length, d_v)`` (a view), or None when empty."""
        return None if self._v is None else self._v[..., : self.length, :]

    @property
    def filled(self) -> bool:
        return self.length > 0

    def _reserve(self, k: torch.Tensor, v: torch.Tensor, needed: int) -> None:
        if self._k is not None and self._v is not None and needed <= self._k.shape[-2]:
            return
        capacity = max(needed, self.max_len or 0)
        if self._k is not None:
            capacity = max(capacity, 2 * self._k.shape[-2])
        new_k = k.new_empty(*k.shape[:-2], capacity, k.shape[-1])
        new_v = v.new_empty(*v.shape[:-2], capacity, v.shape[-1])
        if self._k is not None and self._v is not None and self.length:
            new_k[..., : self.length, :] = self._k[..., : self.length, :]
            new_v[..., : self.length, :] = self._v[..., : self.length, :]
        self._k, self._v = new_k, new_v

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add new ``(B, H_kv, t, d_head)`` keys/values; return all of them so far (views)."""
        if self.static and self.filled:
            raise RuntimeError("a static (cross-attention) cache is filled once; reset() it first.")
        if self._k is not None and (k.shape[:-2] != self._k.shape[:-2] or k.dtype != self._k.dtype):
            raise ValueError(
                f"new keys {tuple(k.shape)} {k.dtype} do not match the cache "
                f"{tuple(self._k.shape)} {self._k.dtype}; use one cache per layer and sequence batch."
            )
        t = k.shape[-2]
        self._reserve(k, v, self.length + t)
        assert self._k is not None and self._v is not None
        self._k[..., self.length : self.length + t, :] = k
        self._v[..., self.length : self.length + t, :] = v
        self.length += t
        return self._k[..., : self.length, :], self._v[..., : self.length, :]

    def crop(self, length: int) -> None:
        """Forget everything after the first ``length`` positions."""
        if not 0 <= length <= self.length:
            raise ValueError(f"crop length must be in [0, {self.length}], got {length}.")
        self.length = length

    def reset(self) -> None:
        """Empty the cache (the storage is kept for reuse)."""
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Select batch rows ``index`` ``(B',)`` (beam search keeps the surviving beams)."""
        if self._k is not None and self._v is not None:
            self._k = self._k.index_select(0, index)
            self._v = self._v.index_select(0, index)

    def nbytes(self) -> int:
        """Memory held by the filled part of the cache, in bytes."""
        k, v = self.k, self.v
        if k is None or v is None:
            return 0
        return k.numel() * k.element_size() + v.numel() * v.element_size()


# --------------------------------------------------------------------------------------------
# multi-head attention: the one attention module of every model
# --------------------------------------------------------------------------------------------
class MultiHeadAttention(nn.Module):
    """Multi-head attention (MHA), grouped-query (GQA) and multi-query (MQA) attention.

    ``n_heads`` query heads of size ``d_head = d_model // n_heads`` and ``n_kv_heads`` key/value
    heads (default ``n_heads``: MHA; ``1``: MQA; a divisor in between: GQA, where
    ``n_heads // n_kv_heads`` query heads share one key/value head).

    Parameters: ``qkv_proj`` maps ``d_model`` to the queries, keys and values of all heads in
    one matrix ``((n_heads + 2 n_kv_heads) d_head, d_model)`` (one matrix multiplication for
    self-attention; for cross-attention its query rows act on the decoder and its key/value
    rows on the encoder output), and ``out_proj`` (``W^O``) mixes the heads.

    ``scale`` multiplies the scores (default ``1 / sqrt(d_head)``; T5 uses 1).
    ``rotary``: a module that rotates per-head queries and keys by their positions,
    ``rotary(x (B, H, T, d_head), offset=int)`` (e.g. :class:`coursekit.positional.RotaryEmbedding`,
    possibly shared by every layer); positions continue after the cache. ``scratch=True`` runs the written-out
    :func:`scaled_dot_product_attention` instead of PyTorch's fused kernel (same maths).

    Variants (sliding windows, linear attention, ...) subclass this and override
    :meth:`attend`, the one method that turns per-head ``q, k, v`` into per-head outputs.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        rotary: nn.Module | None = None,
        scale: float | None = None,
        scratch: bool = False,
    ) -> None:
        super().__init__()
        if scale is not None and not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"scale must be a positive number (None = 1/sqrt(d_head)), got {scale}."
            )
        if n_heads < 1:
            raise ValueError(f"n_heads must be a positive integer, got {n_heads}.")
        if d_model < 1 or d_model % n_heads != 0:
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
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.scale = scale
        self.scratch = scratch
        self.q_dim = n_heads * self.d_head
        self.kv_dim = n_kv_heads * self.d_head
        self.qkv_proj = nn.Linear(d_model, self.q_dim + 2 * self.kv_dim, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.rotary = rotary
        #: set True to keep the last attention weights in ``last_weights`` (for plots); this
        #: runs the explicit path, so leave it off for training.
        self.keep_weights = False
        self.last_weights: torch.Tensor | None = None

    @property
    def rope(self) -> bool:
        return self.rotary is not None

    # ---- projections --------------------------------------------------------------------------
    def _heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, heads, self.d_head).transpose(1, 2)  # (B, heads, T, d_head)

    def project(
        self, x: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head ``q`` ``(B, H, Tq, d_head)`` and ``k, v`` ``(B, H_kv, Tk, d_head)``.

        Self-attention (``context`` None): one matrix multiplication for all three.
        Cross-attention: queries from ``x``, keys and values from ``context``.
        """
        w, b = self.qkv_proj.weight, self.qkv_proj.bias
        if context is None:
            q, k, v = self.qkv_proj(x).split([self.q_dim, self.kv_dim, self.kv_dim], dim=-1)
        else:
            q = F.linear(x, w[: self.q_dim], None if b is None else b[: self.q_dim])
            kv = F.linear(context, w[self.q_dim :], None if b is None else b[self.q_dim :])
            k, v = kv.split([self.kv_dim, self.kv_dim], dim=-1)
        return (
            self._heads(q, self.n_heads),
            self._heads(k, self.n_kv_heads),
            self._heads(v, self.n_kv_heads),
        )

    # ---- the kernel ---------------------------------------------------------------------------
    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        mask: torch.Tensor | None,
        bias: torch.Tensor | None,
        is_causal: bool,
        return_weights: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-head attention: q ``(B, H, Tq, d)``, k/v ``(B, H_kv, Tk, d)`` -> ``(B, H, Tq, d)``.

        Returns the weights ``(B, H, Tq, Tk)`` too when ``return_weights`` (explicit path).
        """
        drop = self.dropout if self.training else 0.0
        if not (self.scratch or return_weights):
            out = fused_attention(
                q, k, v, mask=mask, bias=bias, is_causal=is_causal, dropout=drop, scale=self.scale
            )
            return out, None
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if is_causal:
            mask = combine_masks(mask, causal_mask(q.shape[-2], k.shape[-2], device=q.device))
        out, weights = scaled_dot_product_attention(
            q,
            k,
            v,
            mask,
            scale=self.scale,
            bias=bias,
            dropout=drop,
            training=self.training,
            return_weights=True,
        )
        return out, weights

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        bias: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``x`` ``(B, Tq, d_model)`` to itself or to ``context`` ``(B, Tk, d_model)``.

        * ``mask``: bool, broadcastable to ``(B, H, Tq, Tk)`` (``(Tq, Tk)``, ``(B, 1, Tq, Tk)``,
          ...), True = may attend. ``key_padding_mask``: bool ``(B, Tk)``, True = real token.
        * ``is_causal``: queries see keys at their own position and before (the queries are
          the last ``Tq`` of the ``Tk`` positions, which is what cached decoding needs).
        * ``bias``: additive float bias broadcastable to ``(B, H, Tq, Tk)`` (ALiBi, T5).
        * ``cache``: a :class:`KVCache`. Self-attention appends the new keys/values and
          attends to everything cached; with a static cache, cross-attention projects
          ``context`` once and reuses it.
        * ``return_weights``: also return the weights ``(B, H, Tq, Tk)`` (explicit path).
        """
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, T, d_model={self.d_model}), got {tuple(x.shape)}.")
        if context is not None and (
            context.dim() != 3
            or context.shape[-1] != self.d_model
            or context.shape[0] != x.shape[0]
        ):
            raise ValueError(
                f"context must be (B={x.shape[0]}, Tk, d_model={self.d_model}), "
                f"got {tuple(context.shape)}."
            )
        b, t_q, _ = x.shape
        if cache is not None and cache.static and cache.filled:
            q = self._heads(
                F.linear(
                    x,
                    self.qkv_proj.weight[: self.q_dim],
                    None if self.qkv_proj.bias is None else self.qkv_proj.bias[: self.q_dim],
                ),
                self.n_heads,
            )
            k, v = cache.k, cache.v
            assert k is not None and v is not None
        else:
            q, k, v = self.project(x, context)
            if self.rotary is not None:
                past = cache.length if (cache is not None and context is None) else 0
                q = self.rotary(q, offset=past)
                k = self.rotary(k, offset=past)
            if cache is not None:
                k, v = cache.append(k, v)
        t_k = k.shape[-2]
        if mask is not None:
            _check_bool_mask(mask)
            mask = _as_4d(mask)
        if key_padding_mask is not None:
            _check_bool_mask(key_padding_mask)
            if key_padding_mask.shape != (b, t_k):
                raise ValueError(
                    f"key_padding_mask must be (B, Tk) = {(b, t_k)}, got "
                    f"{tuple(key_padding_mask.shape)}."
                )
            mask = combine_masks(mask, key_padding_mask[:, None, None, :])
        if bias is not None:
            _check_bias(bias)
        want = return_weights or self.keep_weights
        out, weights = self.attend(
            q, k, v, mask=mask, bias=bias, is_causal=is_causal, return_weights=want
        )
        if self.keep_weights and weights is not None:
            self.last_weights = weights.detach()
        out = self.out_proj(out.transpose(1, 2).reshape(b, t_q, self.d_model))
        if return_weights:
            assert weights is not None
            return out, weights
        return out

    # ---- interop ------------------------------------------------------------------------------
    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy the weights of a ``torch.nn.MultiheadAttention`` (same d_model, heads, bias)."""
        if mha._qkv_same_embed_dim is False:
            raise ValueError(
                "only nn.MultiheadAttention with kdim == vdim == embed_dim is supported."
            )
        has_bias = mha.in_proj_bias is not None
        ours = cls(mha.embed_dim, mha.num_heads, bias=has_bias, dropout=mha.dropout)
        ours.load_torch(mha)
        w = mha.in_proj_weight
        return ours.to(w.device, w.dtype)

    @torch.no_grad()
    def load_torch(self, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """Copy a ``torch.nn.MultiheadAttention``'s weights into this module (its packed
        ``in_proj`` has the same layout as ``qkv_proj``: queries, keys, values)."""
        if (
            mha.embed_dim != self.d_model
            or mha.num_heads != self.n_heads
            or self.n_kv_heads != self.n_heads
        ):
            raise ValueError(
                f"nn.MultiheadAttention({mha.embed_dim}, {mha.num_heads}) does not match "
                f"MultiHeadAttention(d_model={self.d_model}, n_heads={self.n_heads}, "
                f"n_kv_heads={self.n_kv_heads})."
            )
        if (mha.in_proj_bias is None) != (self.qkv_proj.bias is None):
            raise ValueError("one module has projection biases and the other not.")
        self.qkv_proj.weight.copy_(mha.in_proj_weight)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if self.qkv_proj.bias is not None:
            self.qkv_proj.bias.copy_(mha.in_proj_bias)
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self

    def extra_repr(self) -> str:
        kind = (
            "MHA" if self.n_kv_heads == self.n_heads else ("MQA" if self.n_kv_heads == 1 else "GQA")
        )
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads} ({kind}), "
            f"d_head={self.d_head}, rope={self.rope}, scratch={self.scratch}"
        )


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
