"""Long contexts: sliding windows with global tokens, Linformer, Performer, RoPE extension.

Full attention costs ``O(T^2)`` time and memory in the sequence length ``T``. The variants here
are subclasses of the one attention core, :class:`coursekit.attention.MultiHeadAttention`: each
keeps its projections (so a trained module's ``state_dict`` loads into them) and overrides only
:meth:`~coursekit.attention.MultiHeadAttention.attend`, the method that turns per-head
``q, k, v`` ``(B, H, T, d)`` into per-head outputs.

* :class:`SlidingWindowAttention` (Longformer-style): each query sees the keys within
  ``window`` positions, plus a few *global* positions that see and are seen by everything.
  Exact; the banded implementation costs ``O(T * window)``.
* :class:`LinformerAttention` (Wang et al. 2020): learned ``(k, n)`` projections shrink the
  keys and values along the sequence to ``k`` rows. Non-causal only.
* :class:`PerformerAttention` (Choromanski et al. 2021): positive random features ``phi`` with
  ``E[phi(q) . phi(k)] = exp(q . k / sqrt(d))``, so attention becomes
  ``phi(Q) (phi(K)^T V)``, linear in ``T``; an unbiased *estimate* of softmax attention.
* :func:`extend_rope`: run a RoPE model beyond its trained length, by position interpolation
  (Chen et al. 2023) or "NTK-aware" base scaling (bloc97, 2023).

>>> mask = sliding_window_mask(5, 2)
>>> mask.int().tolist()[4]
[0, 0, 0, 1, 1]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.attention import (
    MultiHeadAttention,
    causal_mask,
    combine_masks,
    scaled_dot_product_attention,
    stable_softmax,
)
from coursekit.positional import RotaryEmbedding, _check_rope_args

__all__ = [
    "LinformerAttention",
    "PerformerAttention",
    "RopeExtension",
    "SlidingWindowAttention",
    "banded_score_elements",
    "extend_rope",
    "linformer_project",
    "ntk_scaled_base",
    "orthogonal_random_features",
    "performer_attention",
    "performer_features",
    "sliding_window_attention",
    "sliding_window_mask",
]

RopeExtension = Literal["none", "interpolation", "ntk"]
ROPE_EXTENSIONS: tuple[str, ...] = ("none", "interpolation", "ntk")


# --------------------------------------------------------------------------------------------
# sliding window + global tokens: the mask
# --------------------------------------------------------------------------------------------
def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(
            f"window must be a positive integer (the number of keys a query sees, itself "
            f"included), got {window!r}."
        )


def _global_list(global_tokens: Sequence[int], t: int | None = None) -> list[int]:
    """Sorted, de-duplicated global positions, checked to lie in ``[0, t)``."""
    out: set[int] = set()
    for g in global_tokens:
        if isinstance(g, bool) or not isinstance(g, int) or g < 0:
            raise ValueError(
                f"global_tokens must be non-negative integer positions, got {g!r} in "
                f"{tuple(global_tokens)!r}."
            )
        if t is not None and g >= t:
            raise ValueError(
                f"global token position {g} is out of range for a sequence of length {t}: "
                f"use positions 0..{t - 1} (e.g. 0 for a [CLS] token)."
            )
        out.add(g)
    return sorted(out)


def _band(i: torch.Tensor, j: torch.Tensor, window: int, causal: bool) -> torch.Tensor:
    """Whether query position ``i`` sees key position ``j`` through the window (broadcasting)."""
    if causal:
        return (j <= i) & (j > i - window)
    return (i - j).abs() < window


def _window_mask(
    t_q: int,
    t_k: int,
    window: int,
    *,
    causal: bool,
    global_tokens: Sequence[int],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(t_q, t_k)`` window mask; the queries are the last ``t_q`` of the ``t_k`` positions."""
    g = _global_list(global_tokens, t_k)
    i = torch.arange(t_k - t_q, t_k, device=device).unsqueeze(1)
    j = torch.arange(t_k, device=device).unsqueeze(0)
    mask = _band(i, j, window, causal)
    if g:
        glob = torch.tensor(g, device=device)
        touches_global = torch.isin(i, glob) | torch.isin(j, glob)
        if causal:
            touches_global = touches_global & (j <= i)
        mask = mask | touches_global
    return mask


def sliding_window_mask(
    t: int,
    window: int,
    *,
    causal: bool = True,
    global_tokens: Sequence[int] = (),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean ``(t, t)`` mask of sliding-window attention, True = may attend.

    * causal: query ``i`` sees keys ``i - window < j <= i`` (itself and ``window - 1`` before);
    * not causal: ``|i - j| < window`` (``window - 1`` on each side);
    * a position in ``global_tokens`` sees every key and is seen by every query (causal: a
      global query sees every earlier key ``j <= i``, and every later query sees a global key).
    """
    _check_window(window)
    if isinstance(t, bool) or not isinstance(t, int) or t < 0:
        raise ValueError(f"sequence length t must be a non-negative integer, got {t!r}.")
    return _window_mask(t, t, window, causal=causal, global_tokens=global_tokens, device=device)


def banded_score_elements(t: int, window: int, *, causal: bool = True, n_global: int = 0) -> int:
    """Attention scores the banded :func:`sliding_window_attention` materialises per (batch, head).

    Blocks of ``b = min(window, t)`` queries each score ``2b`` (causal) or ``3b`` keys plus the
    ``n_global`` global keys, and the global queries score all ``t`` keys:
    ``ceil(t / b) * b * (2b or 3b + n_global) + n_global * t``, linear in ``t`` for a fixed
    window (full attention scores ``t * t``).
    """
    _check_window(window)
    if t <= 0:
        return 0
    bs = min(window, t)
    n_blocks = -(-t // bs)
    span = (2 if causal else 3) * bs
    return n_blocks * bs * (span + n_global) + n_global * t


# --------------------------------------------------------------------------------------------
# sliding window: the attention
# --------------------------------------------------------------------------------------------
def _gather_pairs(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, t: int) -> torch.Tensor:
    """Entries ``x[..., rows, cols]`` of a mask or bias broadcastable to ``(..., t, t)``."""
    return x.expand(*x.shape[:-2], t, t)[..., rows, cols]


def _check_extra(name: str, x: torch.Tensor | None, t: int) -> None:
    if x is None:
        return
    if x.dim() < 2 or x.shape[-1] not in (1, t) or x.shape[-2] not in (1, t):
        raise ValueError(
            f"{name} must broadcast to (..., T, T) = (..., {t}, {t}) (e.g. a (B, 1, 1, {t}) key "
            f"padding mask), got shape {tuple(x.shape)}."
        )
    if name == "mask" and x.dtype != torch.bool:
        raise TypeError(f"mask must be boolean (True = may attend), got dtype {x.dtype}.")
    if name == "bias" and not x.dtype.is_floating_point:
        raise TypeError(f"bias must be an additive float tensor, got dtype {x.dtype}.")


def _banded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    *,
    causal: bool,
    global_tokens: list[int],
    mask: torch.Tensor | None,
    bias: torch.Tensor | None,
    scale: float,
    dropout: float,
    training: bool,
) -> torch.Tensor:
    """Blocked sliding-window attention: ``(..., T, d)`` -> ``(..., T, dv)``, ``O(T * window)``."""
    t, d = q.shape[-2], q.shape[-1]
    lead = q.shape[:-2]
    dev = q.device
    bs = min(window, t)  # block size; a block's queries need keys from itself and its neighbours
    n_blocks = -(-t // bs)
    pad_end = n_blocks * bs - t
    span = (2 if causal else 3) * bs  # previous + own (+ next) block
    back = pad_end + (0 if causal else bs)
    # keys padded with one block in front, so block b's keys start at padded index b * bs
    k_win = F.pad(k, (0, 0, bs, back)).unfold(-2, span, bs)  # (..., nb, d, span)
    v_win = F.pad(v, (0, 0, bs, back)).unfold(-2, span, bs)  # (..., nb, dv, span)
    q_blk = F.pad(q, (0, 0, 0, pad_end)).reshape(*lead, n_blocks, bs, d)
    scores = torch.einsum("...nqd,...ndc->...nqc", q_blk, k_win) * scale  # (..., nb, bs, span)

    blk = torch.arange(n_blocks, device=dev).view(-1, 1, 1)
    i = blk * bs + torch.arange(bs, device=dev).view(1, -1, 1)  # query positions (nb, bs, 1)
    j = (blk - 1) * bs + torch.arange(span, device=dev).view(1, 1, -1)  # keys (nb, 1, span)
    in_band = _band(i, j, window, causal)
    allowed = in_band & (j >= 0) & (j < t)
    i_c, j_c = i.clamp(max=t - 1), j.clamp(0, t - 1)
    if mask is not None:
        allowed = allowed & _gather_pairs(mask, i_c, j_c, t)
    if bias is not None:
        scores = scores + _gather_pairs(bias, i_c, j_c, t).to(scores.dtype)
    scores = scores.masked_fill(~allowed, float("-inf"))

    g = len(global_tokens)
    if g:
        glob = torch.tensor(global_tokens, device=dev)
        k_g, v_g = k[..., glob, :], v[..., glob, :]  # (..., g, d)
        s_g = torch.einsum("...nqd,...gd->...nqg", q_blk, k_g) * scale  # (..., nb, bs, g)
        jg = glob.view(1, 1, -1)
        # a global key already inside the window is counted there, not twice
        allowed_g = ~_band(i, jg, window, causal)
        if causal:
            allowed_g = allowed_g & (jg <= i)
        if mask is not None:
            allowed_g = allowed_g & _gather_pairs(mask, i_c, jg, t)
        if bias is not None:
            s_g = s_g + _gather_pairs(bias, i_c, jg, t).to(s_g.dtype)
        s_g = s_g.masked_fill(~allowed_g, float("-inf"))
        lead_s = torch.broadcast_shapes(scores.shape[:-1], s_g.shape[:-1])
        scores = torch.cat(
            [scores.expand(*lead_s, span), s_g.expand(*lead_s, g)], dim=-1
        )  # one softmax over the union of window and global keys
    p = stable_softmax(scores, dim=-1)
    if training and dropout > 0:
        p = F.dropout(p, p=dropout, training=True)
    out = torch.einsum("...nqc,...ndc->...nqd", p[..., :span], v_win)
    if g:
        out = out + torch.einsum("...nqg,...gd->...nqd", p[..., span:], v_g)
    out = out.reshape(*out.shape[:-3], n_blocks * bs, out.shape[-1])[..., :t, :]

    if g:  # the global queries: full rows, computed separately (g x T scores)
        q_g = q[..., glob, :]
        s_rows = torch.matmul(q_g, k.transpose(-2, -1)) * scale  # (..., g, T)
        rows = glob.view(-1, 1)
        cols = torch.arange(t, device=dev).view(1, -1)
        ok = cols <= rows if causal else torch.ones(g, t, dtype=torch.bool, device=dev)
        if mask is not None:
            ok = ok & _gather_pairs(mask, rows, cols, t)
        if bias is not None:
            s_rows = s_rows + _gather_pairs(bias, rows, cols, t).to(s_rows.dtype)
        p_rows = stable_softmax(s_rows.masked_fill(~ok, float("-inf")), dim=-1)
        if training and dropout > 0:
            p_rows = F.dropout(p_rows, p=dropout, training=True)
        out_g = torch.matmul(p_rows, v)
        lead_o = torch.broadcast_shapes(out.shape[:-2], out_g.shape[:-2])
        out = out.expand(*lead_o, t, out.shape[-1])
        out = out.index_copy(out.dim() - 2, glob, out_g.expand(*lead_o, g, out.shape[-1]))
    return out


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    *,
    causal: bool = True,
    global_tokens: Sequence[int] = (),
    banded: bool = True,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Sliding-window attention with global tokens on per-head tensors.

    q ``(..., T, d)``, k ``(..., T, d)``, v ``(..., T, dv)`` -> ``(..., T, dv)``; the same mask as
    :func:`sliding_window_mask` (``window``, ``causal``, ``global_tokens``), ANDed with
    ``mask`` (bool, broadcastable to ``(..., T, T)``; e.g. a ``(B, 1, 1, T)`` key padding mask),
    with an optional additive ``bias`` (same shapes) and ``scale`` (default ``1/sqrt(d)``).

    * ``banded=False``: masked full attention (builds the ``T x T`` scores);
    * ``banded=True``: blocks of ``window`` queries attend to their own and the neighbouring
      block(s) under the exact per-position mask, global keys are appended to every block and
      global queries get full rows; one stable softmax over the union. Scores
      ``(..., T/window, window, 2 window or 3 window)``: time and memory linear in ``T`` (see
      :func:`banded_score_elements`). Equal to the masked version up to rounding.

    A query whose every key is masked out gives zeros.
    """
    _check_window(window)
    if q.shape[-2] != k.shape[-2] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"sliding_window_attention is self-attention over one sequence: q, k and v need the "
            f"same length T, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k need the same feature size, got {q.shape[-1]} and {k.shape[-1]}."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    t = q.shape[-2]
    g = _global_list(global_tokens, t)
    _check_extra("mask", mask, t)
    _check_extra("bias", bias, t)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    if t == 0:
        return q.new_zeros(*q.shape[:-1], v.shape[-1])
    if not banded:
        full = combine_masks(
            mask, _window_mask(t, t, window, causal=causal, global_tokens=g, device=q.device)
        )
        out = scaled_dot_product_attention(
            q, k, v, full, scale=scale, bias=bias, dropout=dropout, training=training
        )
        assert isinstance(out, torch.Tensor)
        return out
    return _banded_attention(
        q,
        k,
        v,
        window,
        causal=causal,
        global_tokens=g,
        mask=mask,
        bias=bias,
        scale=scale,
        dropout=dropout,
        training=training,
    )


def _repeat_kv(k: torch.Tensor, v: torch.Tensor, n_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grouped-query attention: repeat ``(B, H_kv, T, d)`` keys/values to ``n_heads`` heads."""
    if k.shape[1] == n_heads:
        return k, v
    rep = n_heads // k.shape[1]
    return k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)


class SlidingWindowAttention(MultiHeadAttention):
    """Multi-head attention restricted to a sliding window, plus optional global tokens.

    Same parameters as :class:`~coursekit.attention.MultiHeadAttention` (its keyword arguments
    ``n_kv_heads``, ``bias``, ``dropout``, ``rotary``, ``scale``, ``scratch`` pass through, and a
    trained module's ``state_dict`` loads as is), with:

    * ``window``: how many keys a query sees (causal: itself and ``window - 1`` before; not
      causal: ``window - 1`` on each side); causality comes from ``is_causal`` as usual;
    * ``global_tokens``: positions that see every key and are seen by every query (under
      causality: every earlier key, every later query), e.g. ``(0,)`` for a [CLS] token;
    * ``banded``: ``True`` runs the blocked ``O(T * window)`` kernel of
      :func:`sliding_window_attention`; ``False`` runs the base class's attention with the
      window mask (PyTorch's fused kernel by default).

    The masked path supports everything the base class does, the KV cache included (the queries
    are the last ``Tq`` of ``Tk`` positions). The banded path supports masks (key padding or
    any boolean mask), additive biases and dropout, but needs ``Tq == Tk``: for cached decoding
    it raises ``NotImplementedError``; use ``banded=False`` there. ``return_weights`` (and
    ``keep_weights``) use the masked path, since the weights are a ``(T, T)`` matrix anyway.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        window: int,
        global_tokens: Sequence[int] = (),
        banded: bool = True,
        **base: Any,
    ) -> None:
        super().__init__(d_model, n_heads, **base)
        _check_window(window)
        self.window = window
        self.global_tokens = tuple(_global_list(global_tokens))
        self.banded = banded

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
        """q ``(B, H, Tq, d)``, k/v ``(B, H_kv, Tk, d)`` -> ``(B, H, Tq, d)`` (and the weights)."""
        t_q, t_k = q.shape[-2], k.shape[-2]
        if not self.banded or return_weights:
            window_mask = _window_mask(
                t_q,
                t_k,
                self.window,
                causal=is_causal,
                global_tokens=self.global_tokens,
                device=q.device,
            )
            return super().attend(
                q,
                k,
                v,
                mask=combine_masks(mask, window_mask),
                bias=bias,
                is_causal=False,  # causality is part of the window mask
                return_weights=return_weights,
            )
        if t_q != t_k:
            raise NotImplementedError(
                f"the banded sliding-window kernel attends within one whole sequence "
                f"(Tq == Tk), got Tq={t_q}, Tk={t_k} (cached decoding or cross-attention); "
                "build the module with banded=False, which supports the KV cache."
            )
        k, v = _repeat_kv(k, v, self.n_heads)
        out = sliding_window_attention(
            q,
            k,
            v,
            self.window,
            causal=is_causal,
            global_tokens=self.global_tokens,
            banded=True,
            mask=mask,
            bias=bias,
            scale=self.scale,
            dropout=self.dropout,
            training=self.training,
        )
        return out, None

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, window={self.window}, "
            f"global_tokens={self.global_tokens}, banded={self.banded}"
        )


# --------------------------------------------------------------------------------------------
# Linformer
# --------------------------------------------------------------------------------------------
def linformer_project(
    k: torch.Tensor, v: torch.Tensor, E: torch.Tensor, F_: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project keys and values along the sequence: ``K' = E K``, ``V' = F V``.

    k ``(..., T, d)``, v ``(..., T, dv)``, ``E``/``F_`` ``(k_proj, n)`` with ``T <= n`` (the
    first ``T`` columns are used) -> ``(..., k_proj, d)`` and ``(..., k_proj, dv)``.
    """
    t = k.shape[-2]
    for name, m in (("E", E), ("F", F_)):
        if m.dim() != 2:
            raise ValueError(f"{name} must be a (k, n) matrix, got shape {tuple(m.shape)}.")
        if t > m.shape[1]:
            raise ValueError(
                f"sequence length {t} exceeds the Linformer projection's n = {m.shape[1]} "
                f"({name} is {tuple(m.shape)}): build it with seq_len >= {t}, or shorten the input."
            )
    return torch.matmul(E[:, :t].to(k.dtype), k), torch.matmul(F_[:, :t].to(v.dtype), v)


class LinformerAttention(MultiHeadAttention):
    """Linformer self-attention (Wang et al. 2020): ``softmax(Q (E K)^T / sqrt(d)) (F V)``.

    Adds two learned matrices ``E`` and ``F`` of shape ``(k, seq_len)`` (shared by the heads)
    that compress the ``T`` keys and values to ``k`` rows, so the scores are ``(T, k)``: linear in
    ``T`` for a fixed ``k``. Inputs shorter than ``seq_len`` use the first ``T`` columns.

    Non-causal only: each projected key mixes every position, future ones included, so causal
    masking is impossible (``is_causal=True`` raises). A key padding mask (``(B, Tk)`` or
    ``(B, 1, 1, Tk)``) zeroes the padded keys and values before the projection; other masks
    and additive biases raise ``NotImplementedError``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        seq_len: int,
        k: int,
        **base: Any,
    ) -> None:
        super().__init__(d_model, n_heads, **base)
        for name, value in (("seq_len", seq_len), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Linformer's {name} must be a positive integer, got {value!r}.")
        self.seq_len, self.proj_len = seq_len, k
        # JL-style initialisation: entries N(0, 1/k)
        self.E = nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))
        self.F = nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))

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
        """q ``(B, H, Tq, d)``, k/v ``(B, H_kv, Tk, d)`` -> ``(B, H, Tq, d)``; weights ``(B, H, Tq, k)``."""
        if is_causal:
            raise ValueError(
                "LinformerAttention cannot be causal: its projection E K mixes all positions, "
                "future ones included, into every projected key. Use it in encoders "
                "(is_causal=False), or SlidingWindowAttention / PerformerAttention for decoders."
            )
        if bias is not None:
            raise NotImplementedError(
                "LinformerAttention cannot add a per-position bias (ALiBi, T5): the keys are "
                "projected away; use plain MultiHeadAttention with such biases."
            )
        if mask is not None:
            if mask.dim() == 2:
                mask = mask[:, None, None, :]
            if mask.dim() != 4 or mask.shape[-2] != 1 or mask.shape[-1] != k.shape[-2]:
                raise NotImplementedError(
                    f"LinformerAttention supports only a key padding mask (B, Tk) or "
                    f"(B, 1, 1, Tk), got shape {tuple(mask.shape)}: a per-query mask cannot act "
                    "on projected keys."
                )
            keep = mask[..., 0, :].unsqueeze(-1).to(k.dtype)  # (B, 1|H, Tk, 1)
            k, v = k * keep, v * keep
        k_p, v_p = linformer_project(k, v, self.E, self.F)
        return super().attend(
            q, k_p, v_p, mask=None, bias=None, is_causal=False, return_weights=return_weights
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, seq_len={self.seq_len}, k={self.proj_len}"


# --------------------------------------------------------------------------------------------
# Performer (FAVOR+)
# --------------------------------------------------------------------------------------------
def _check_n_features(n_features: int) -> None:
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ValueError(
            f"n_features must be a positive integer (more features = a closer estimate of "
            f"softmax attention), got {n_features!r}."
        )


def orthogonal_random_features(
    n_features: int,
    d: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``(n_features, d)`` random projection with orthogonal rows of Gaussian-like lengths.

    Blocks of ``d`` rows come from the QR decomposition of a ``d x d`` standard Gaussian matrix
    (signs fixed so each block is uniformly distributed over orthogonal matrices); each row is
    then rescaled to the norm of an independent ``d``-dim Gaussian vector (chi distributed), so
    every row is marginally ``N(0, I_d)`` while rows within a block are exactly orthogonal, which
    lowers the estimator's variance. Drawn in float64 on the CPU from ``generator``.
    """
    _check_n_features(n_features)
    if d < 1:
        raise ValueError(f"feature size d must be positive, got {d}.")
    blocks = []
    for _ in range(-(-n_features // d)):
        gauss = torch.randn(d, d, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gauss)
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        blocks.append(q.T)  # orthonormal rows
    w = torch.cat(blocks)[:n_features]
    norms = torch.randn(n_features, d, generator=generator, dtype=torch.float64).norm(dim=1)
    return (w * norms.unsqueeze(1)).to(dtype).to(device)


def _feature_logits(x: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``w_r . x - |x|^2 / 2`` for every random row ``w_r``: ``(..., T, m)``."""
    if projection.dim() != 2 or projection.shape[1] != x.shape[-1]:
        raise ValueError(
            f"projection must be (n_features, d={x.shape[-1]}), got {tuple(projection.shape)}."
        )
    wx = torch.matmul(x, projection.to(x.dtype).transpose(0, 1))
    return wx - 0.5 * (x * x).sum(dim=-1, keepdim=True)


def performer_features(
    x: torch.Tensor,
    projection: torch.Tensor,
    *,
    stabilize: Literal["none", "row", "global"] = "none",
) -> torch.Tensor:
    """FAVOR+ positive random features ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)``.

    x ``(..., T, d)``, projection ``W`` ``(m, d)`` (rows ``~ N(0, I)``, e.g.
    :func:`orthogonal_random_features`) -> ``(..., T, m)``, every entry positive, with
    ``E[phi(x) . phi(y)] = exp(x . y)``. For attention, pass ``x = q / d^(1/4)`` and
    ``y = k / d^(1/4)``: then ``exp(x . y) = exp(q . k / sqrt(d))``.

    ``stabilize`` subtracts a maximum inside the ``exp`` so it cannot overflow: ``"row"`` the
    maximum of each row (for queries: each query's numerator and denominator share the factor),
    ``"global"`` one maximum over all positions and features (for keys: every key shares it).
    Either leaves attention's ratio unchanged; ``"none"`` returns the unbiased features.
    """
    logits = _feature_logits(x, projection)
    if stabilize == "row":
        logits = logits - logits.amax(dim=-1, keepdim=True).detach()
    elif stabilize == "global":
        if logits.numel():
            logits = logits - logits.amax(dim=(-2, -1), keepdim=True).detach()
    elif stabilize != "none":
        raise ValueError(f"stabilize must be 'none', 'row' or 'global', got {stabilize!r}.")
    return torch.exp(logits) / math.sqrt(projection.shape[0])


def _finite_max(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    m = x.amax(dim=dims, keepdim=True)
    return torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()


def performer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    n_features: int | None = None,
    projection: torch.Tensor | None = None,
    causal: bool = False,
    generator: torch.Generator | None = None,
    scale: float | None = None,
    key_mask: torch.Tensor | None = None,
    chunk_size: int = 64,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Performer (FAVOR+) attention: a random-feature estimate of softmax attention, linear in T.

    q ``(..., Tq, d)``, k ``(..., Tk, d)``, v ``(..., Tk, dv)`` -> ``(..., Tq, dv)``. With
    ``phi`` from :func:`performer_features` applied to ``q sqrt(scale)`` and ``k sqrt(scale)``
    (``scale`` default ``1/sqrt(d)``):

    * non-causal: ``out = phi(Q) (phi(K)^T V) / (phi(Q) (phi(K)^T 1))``, never forming ``Tq x Tk``;
    * causal: the same with prefix sums over positions, ``S_i = sum_{j<=i} phi(k_j) v_j^T``,
      computed chunk by chunk (``chunk_size`` positions: exact within a chunk, running sums
      between chunks), so memory stays linear in ``T``. The queries are the last ``Tq`` of the
      ``Tk`` positions (cached decoding).

    The random projection is ``projection`` ``(m, d)`` if given, else ``n_features`` rows of
    :func:`orthogonal_random_features` drawn from ``generator``. ``key_mask`` (bool,
    broadcastable to ``(..., Tk)``, True = real token) drops padded keys. ``return_weights``
    also returns the implied ``(..., Tq, Tk)`` weights (quadratic: for plots).
    """
    d = q.shape[-1]
    if k.shape[-1] != d or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"need q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}."
        )
    if projection is None:
        if n_features is None:
            raise ValueError("pass n_features (to draw a random projection) or a projection.")
        _check_n_features(n_features)
        projection = orthogonal_random_features(
            n_features, d, generator=generator, dtype=q.dtype, device=q.device
        )
    elif n_features is not None and projection.shape[0] != n_features:
        raise ValueError(
            f"n_features={n_features} but the projection has {projection.shape[0]} rows."
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}.")
    t_q, t_k = q.shape[-2], k.shape[-2]
    if causal and t_q > t_k:
        raise ValueError(f"causal attention needs Tq <= Tk, got Tq={t_q}, Tk={t_k}.")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    root = math.sqrt(scale)
    m = projection.shape[0]
    lq = _feature_logits(q * root, projection)
    lk = _feature_logits(k * root, projection)
    if key_mask is not None:
        if key_mask.dtype != torch.bool:
            raise TypeError(f"key_mask must be boolean (True = real token), got {key_mask.dtype}.")
        lk = lk.masked_fill(~key_mask.unsqueeze(-1), float("-inf"))
    qf = torch.exp(lq - _finite_max(lq, (-1,))) / math.sqrt(m)  # (..., Tq, m), row-stabilised
    kf = torch.exp(lk - _finite_max(lk, (-2, -1))) / math.sqrt(m)  # (..., Tk, m), one constant
    tiny = torch.finfo(q.dtype).tiny
    if return_weights:
        a = torch.matmul(qf, kf.transpose(-2, -1))
        if causal:
            a = a * causal_mask(t_q, t_k, device=q.device)
        weights = a / a.sum(dim=-1, keepdim=True).clamp_min(tiny)
        return torch.matmul(weights, v), weights
    if t_q == 0 or t_k == 0:
        batch = torch.broadcast_shapes(q.shape[:-2], v.shape[:-2])
        return q.new_zeros(*batch, t_q, v.shape[-1])
    if not causal:
        kv = torch.matmul(kf.transpose(-2, -1), v)  # (..., m, dv)
        z = kf.sum(dim=-2).unsqueeze(-1)  # (..., m, 1)
        return torch.matmul(qf, kv) / torch.matmul(qf, z).clamp_min(tiny)
    return _causal_linear_attention(qf, kf, v, chunk_size)


def _causal_linear_attention(
    qf: torch.Tensor, kf: torch.Tensor, v: torch.Tensor, chunk: int
) -> torch.Tensor:
    """``out_i = sum_{j<=i} (qf_i . kf_j) v_j / sum_{j<=i} qf_i . kf_j`` in chunks.

    The queries are the last ``Tq`` of the ``Tk`` positions: the first ``Tk - Tq`` keys form an
    initial state seen by every query. Memory ``O(T m dv / chunk + T chunk)``.
    """
    t_q, t_k = qf.shape[-2], kf.shape[-2]
    past = t_k - t_q
    s0 = torch.matmul(kf[..., :past, :].transpose(-2, -1), v[..., :past, :])  # (..., m, dv)
    z0 = kf[..., :past, :].sum(dim=-2)  # (..., m)
    kf, v = kf[..., past:, :], v[..., past:, :]
    n_chunks = -(-t_q // chunk)
    pad = n_chunks * chunk - t_q

    def blocks(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, pad))
        return x.reshape(*x.shape[:-2], n_chunks, chunk, x.shape[-1])

    qc, kc, vc = blocks(qf), blocks(kf), blocks(v)  # (..., nc, C, m|dv)
    s = torch.matmul(kc.transpose(-2, -1), vc)  # (..., nc, m, dv) each chunk's sum
    z = kc.sum(dim=-2)  # (..., nc, m)
    # exclusive prefix sums over chunks: what every earlier chunk contributes
    s_prev = torch.cat([torch.zeros_like(s[..., :1, :, :]), s.cumsum(dim=-3)[..., :-1, :, :]], -3)
    z_prev = torch.cat([torch.zeros_like(z[..., :1, :]), z.cumsum(dim=-2)[..., :-1, :]], -2)
    s_prev = s_prev + s0.unsqueeze(-3)
    z_prev = z_prev + z0.unsqueeze(-2)
    a = torch.matmul(qc, kc.transpose(-2, -1)).tril()  # (..., nc, C, C) within a chunk
    num = torch.matmul(qc, s_prev) + torch.matmul(a, vc)
    den = (qc * z_prev.unsqueeze(-2)).sum(dim=-1, keepdim=True) + a.sum(dim=-1, keepdim=True)
    out = num / den.clamp_min(torch.finfo(den.dtype).tiny)
    return out.reshape(*out.shape[:-3], n_chunks * chunk, out.shape[-1])[..., :t_q, :]


class PerformerAttention(MultiHeadAttention):
    """Multi-head attention with FAVOR+ random features (Choromanski et al. 2021): linear in T.

    Same parameters as :class:`~coursekit.attention.MultiHeadAttention` plus a buffer
    ``projection`` ``(n_features, d_head)`` of orthogonal random features (saved in the
    ``state_dict``), drawn from a ``torch.Generator`` seeded with ``seed``; :meth:`redraw` draws
    fresh ones (the paper redraws them now and then during training).
    ``n_features`` defaults to ``round(d_head * ln d_head)`` (at least ``d_head``).

    The output is an unbiased-in-the-kernel *estimate* of softmax attention that approaches it
    as ``n_features`` grows. Causal (``is_causal``) runs prefix sums; cached decoding works (the
    cached keys form the running state). Supports a key padding mask only; other masks and
    additive biases raise ``NotImplementedError``. There are no explicit weights to drop, so
    ``dropout`` must be 0.
    """

    projection: torch.Tensor

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_features: int | None = None,
        seed: int = 0,
        chunk_size: int = 64,
        **base: Any,
    ) -> None:
        super().__init__(d_model, n_heads, **base)
        if self.dropout:
            raise ValueError(
                f"PerformerAttention has no explicit attention weights to drop: use dropout=0 "
                f"(got {self.dropout}) and regularise the residual branch instead."
            )
        if n_features is None:
            n_features = max(self.d_head, round(self.d_head * math.log(max(self.d_head, 2))))
        _check_n_features(n_features)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}.")
        self.n_features, self.seed, self.chunk_size = n_features, seed, chunk_size
        self.generator = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "projection",
            orthogonal_random_features(
                n_features, self.d_head, generator=self.generator, dtype=torch.get_default_dtype()
            ),
        )

    @torch.no_grad()
    def redraw(self, generator: torch.Generator | None = None) -> None:
        """Draw a new random projection (from ``generator``, else the module's seeded one)."""
        new = orthogonal_random_features(
            self.n_features, self.d_head, generator=generator or self.generator
        )
        self.projection.copy_(new.to(self.projection.dtype).to(self.projection.device))

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
        """q ``(B, H, Tq, d)``, k/v ``(B, H_kv, Tk, d)`` -> ``(B, H, Tq, d)`` (and the weights)."""
        if bias is not None:
            raise NotImplementedError(
                "PerformerAttention never forms the score matrix, so it cannot add a bias "
                "(ALiBi, T5); use RoPE for positions, or plain MultiHeadAttention."
            )
        key_mask = None
        if mask is not None:
            if mask.dim() == 2:
                mask = mask[:, None, None, :]
            if mask.dim() != 4 or mask.shape[-2] != 1:
                raise NotImplementedError(
                    f"PerformerAttention supports only a key padding mask (B, Tk) or "
                    f"(B, 1, 1, Tk) (and is_causal), got shape {tuple(mask.shape)}; for an "
                    "arbitrary mask use MultiHeadAttention or SlidingWindowAttention(banded=False)."
                )
            key_mask = mask[..., 0, :]  # (B, 1|H, Tk)
        k, v = _repeat_kv(k, v, self.n_heads)
        result = performer_attention(
            q,
            k,
            v,
            projection=self.projection,
            causal=is_causal,
            scale=self.scale,
            key_mask=key_mask,
            chunk_size=self.chunk_size,
            return_weights=return_weights,
        )
        if isinstance(result, tuple):
            return result
        return result, None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, n_features={self.n_features}, seed={self.seed}"


# --------------------------------------------------------------------------------------------
# RoPE context extension
# --------------------------------------------------------------------------------------------
def ntk_scaled_base(base: float, head_dim: int, factor: float) -> float:
    """ "NTK-aware" RoPE base for a context ``factor`` times longer: ``base * factor^(d/(d-2))``.

    The channel-pair speeds are ``theta_i = base^(-2i/d)``. With the new base the fastest pair
    (``i = 0``, speed 1) is unchanged, and the slowest (``i = d/2 - 1``) is exactly
    ``factor`` times slower, i.e. interpolated like :func:`extend_rope`'s ``"interpolation"``;
    the pairs in between are stretched by factors growing from 1 to ``factor``.
    """
    if head_dim < 4 or head_dim % 2:
        raise ValueError(
            f"NTK-aware scaling needs an even head_dim >= 4 (the exponent is d/(d-2)), "
            f"got {head_dim}."
        )
    _check_factor(factor)
    _check_rope_args(base, 1.0)
    return base * factor ** (head_dim / (head_dim - 2))


def _check_factor(factor: float) -> None:
    if isinstance(factor, bool) or not (
        isinstance(factor, int | float) and math.isfinite(factor) and factor >= 1.0
    ):
        raise ValueError(
            f"factor must be a finite number >= 1 (target length / trained length; 1 = no "
            f"change), got {factor!r}."
        )


def extend_rope(model_or_rotary: nn.Module, *, method: RopeExtension, factor: float) -> nn.Module:
    """Stretch a RoPE model's positions to a context ``factor`` times longer, in place.

    ``model_or_rotary``: a :class:`~coursekit.positional.RotaryEmbedding`, or a model that holds
    one shared ``rotary`` module (a coursekit ``GPT`` built with ``positional="rope"``).

    * ``"interpolation"`` (Chen et al. 2023): positions are divided by ``s = factor``
      (``RotaryEmbedding.scale *= factor``), so position ``p`` of the long context gets the
      angles of position ``p / s``, inside the trained range;
    * ``"ntk"``: the base becomes :func:`ntk_scaled_base` (``base * s^(d/(d-2))``): the
      slowest pairs are interpolated, the fastest (local detail) are kept;
    * ``"none"``: the tables are left alone (plain extrapolation, the baseline).

    Applied on top of what the rotary already does (twice by 2 = once by 4). For a model with a
    dataclass ``config`` that has ``block_size`` (``GPT``), the config is replaced by a copy with
    ``block_size = floor(block_size * factor)`` (``dataclasses.replace``, validated again; the
    old config object, which other models may share, is not modified), so ``context_length``,
    ``new_cache`` and ``generate``'s window follow. A RoPE model has no position parameters, so
    nothing else changes. Returns the module it was given.
    """
    if method not in ROPE_EXTENSIONS:
        raise ValueError(
            f"method must be one of {', '.join(repr(m) for m in ROPE_EXTENSIONS)}, got {method!r}."
        )
    _check_factor(factor)
    if isinstance(model_or_rotary, RotaryEmbedding):
        rotary, model = model_or_rotary, None
    else:
        found = getattr(model_or_rotary, "rotary", None)
        if not isinstance(found, RotaryEmbedding):
            raise TypeError(
                f"extend_rope needs a RotaryEmbedding or a model with a shared `rotary` module "
                f"(a GPT built with positional='rope'); {type(model_or_rotary).__name__} has "
                "none. Learned absolute positions cannot be stretched this way."
            )
        rotary, model = found, model_or_rotary
    n_positions = rotary.cos.shape[0]
    if method == "interpolation":
        _check_rope_args(rotary.base, rotary.scale * factor)
        rotary.scale = rotary.scale * factor
    elif method == "ntk":
        rotary.base = ntk_scaled_base(rotary.base, rotary.head_dim, factor)
    if model is not None:
        config = getattr(model, "config", None)
        block = getattr(config, "block_size", None)
        if (
            dataclasses.is_dataclass(config)
            and not isinstance(config, type)
            and isinstance(block, int)
        ):
            new_block = math.floor(block * factor)
            new_config: Any = dataclasses.replace(config, block_size=new_block)
            model.config = new_config
            n_positions = max(n_positions, new_block)
    if method != "none":
        rotary._refresh(n_positions)  # float64 tables, cast to the buffers' dtype and device
    elif n_positions > rotary.cos.shape[0]:
        rotary._grow(n_positions)
    return model_or_rotary
