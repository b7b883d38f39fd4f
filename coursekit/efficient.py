"""Efficiency: KV-cache sizing, LoRA, int8 and 4-bit weights, pruning, activation checkpointing.

Everything here acts on an existing model, mostly by swapping or editing its ``nn.Linear``
layers in place, so the chapters can take a trained :class:`~coursekit.models.GPT` and make it
cheaper to fine-tune, store or run:

* :func:`kv_cache_bytes`: the memory of the keys and values a decoder keeps while generating.
* LoRA (Hu et al. 2021): :class:`LoRALinear` adds a trainable low-rank update ``B A`` to a frozen
  ``nn.Linear``; :func:`apply_lora` wraps the named layers of a model and freezes the rest;
  :func:`merge_lora` folds the updates back into plain ``nn.Linear`` layers.
* Weight quantization: :func:`quantize_int8` (symmetric, one scale per output row) and
  :func:`quantize_4bit` (symmetric, one scale per group of input columns, two values per byte),
  with the layers :class:`Int8Linear` / :class:`Int4Linear` and the model-wide
  :func:`quantize_model_int8` / :func:`quantize_model_4bit`; :func:`model_size_bytes` measures
  what a model stores.
* Pruning: :func:`magnitude_prune_` (unstructured, per layer or global), :func:`prune_heads_`
  (structured: whole attention heads), :func:`head_importance`, :func:`sparsity`.
* :func:`checkpoint_blocks`: recompute each Transformer block's activations in the backward
  pass instead of storing them.

Module names follow ``model.named_modules()``. Where a function takes names (``target_modules``,
``skip``, ``modules``), a name matches a module whose full name equals it or ends with ``"."``
followed by it: ``"qkv_proj"`` matches ``"blocks.layers.0.self_attn.qkv_proj"`` in every block,
``"self_attn.qkv_proj"`` too, but ``"proj"`` matches neither (whole name components only).

>>> kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=4096) / 2**30
2.0
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from coursekit.attention import MultiHeadAttention
from coursekit.layers import TransformerBlock

__all__ = [
    "Int4Linear",
    "Int8Linear",
    "LoRALinear",
    "ParameterCount",
    "QuantizedLinear",
    "apply_lora",
    "apply_masks_",
    "checkpoint_blocks",
    "dequantize_4bit",
    "dequantize_int8",
    "head_importance",
    "kv_cache_bytes",
    "lora_parameter_count",
    "magnitude_prune_",
    "merge_lora",
    "model_size_bytes",
    "prune_heads_",
    "quantize_4bit",
    "quantize_int8",
    "quantize_model_4bit",
    "quantize_model_int8",
    "sparsity",
]

PruneScope = Literal["layer", "global"]


# --------------------------------------------------------------------------------------------
# helpers: names, replacing modules, tied weights
# --------------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _names(patterns: str | Sequence[str], what: str) -> list[str]:
    names = [patterns] if isinstance(patterns, str) else list(patterns)
    for n in names:
        if not isinstance(n, str) or not n:
            raise TypeError(f"{what} must be non-empty module names (strings), got {n!r}.")
    return names


def _matches(name: str, pattern: str) -> bool:
    """``name`` is ``pattern`` or ends with ``"." + pattern`` (whole components only)."""
    return name == pattern or name.endswith("." + pattern)


def _linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n]


def _describe_linears(model: nn.Module, limit: int = 6) -> str:
    full = _linear_names(model)
    if not full:
        return "this model has no nn.Linear layers"
    short = list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in full))
    return (
        f"its Linear layers are named like {', '.join(map(repr, short[:limit]))} (e.g. {full[0]!r})"
    )


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _tied_weight_ids(model: nn.Module) -> set[int]:
    """ids of the parameters that more than one module holds (e.g. GPT's lm_head and tok_embed)."""
    seen: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        seen[id(p)] = seen.get(id(p), 0) + 1
    return {k for k, count in seen.items() if count > 1}


def _select_linears(
    model: nn.Module, patterns: str | Sequence[str] | None, *, what: str
) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` layers named by ``patterns`` (each must match at least one module, and
    only Linears); with ``patterns=None`` every ``nn.Linear`` whose weight is not tied to
    another module. A bare ``nn.Linear`` passed as ``model`` is returned under the name ``""``."""
    if isinstance(model, nn.Linear):
        return [("", model)]
    if patterns is None:
        tied = _tied_weight_ids(model)
        return [
            (n, m)
            for n, m in model.named_modules()
            if isinstance(m, nn.Linear) and id(m.weight) not in tied
        ]
    chosen: dict[str, nn.Linear] = {}
    for pattern in _names(patterns, what):
        hits = [(n, m) for n, m in model.named_modules() if n and _matches(n, pattern)]
        if not hits:
            raise ValueError(
                f"{what}: no module is named {pattern!r} (names are matched in full or by their "
                f"last components); {_describe_linears(model)}."
            )
        for n, m in hits:
            if not isinstance(m, nn.Linear):
                hint = (
                    "it already has LoRA: merge_lora(model) first"
                    if isinstance(m, LoRALinear)
                    else "name its nn.Linear layers instead"
                )
                raise ValueError(
                    f"{what}: {pattern!r} matches {n!r}, a {type(m).__name__}, not an nn.Linear; "
                    f"{hint} ({_describe_linears(model)})."
                )
            chosen[n] = m
    return list(chosen.items())


# --------------------------------------------------------------------------------------------
# KV-cache sizing
# --------------------------------------------------------------------------------------------
def kv_cache_bytes(
    *,
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    seq_len: int,
    batch_size: int = 1,
    bytes_per_value: float = 2,
) -> int:
    """Bytes of the keys and values a decoder caches for ``seq_len`` tokens of ``batch_size``
    sequences: ``2 (K and V) * n_layers * n_kv_heads * head_dim * seq_len * batch_size *
    bytes_per_value`` (2 for fp16/bf16, 1 for int8/fp8, 0.5 for 4 bits; rounded up).

    Grouped-query attention shrinks it by ``n_heads / n_kv_heads``: LLaMA-2-7B's 32 layers x
    32 heads x 128 at 4096 tokens in fp16 take 2 GiB, LLaMA-2-70B's 80 layers x 8 KV heads
    x 128 take 1.25 GiB.
    """
    sizes = {
        "n_layers": n_layers,
        "n_kv_heads": n_kv_heads,
        "head_dim": head_dim,
        "seq_len": seq_len,
        "batch_size": batch_size,
    }
    for name, value in sizes.items():
        if not _is_int(value) or value < 1:
            raise ValueError(f"kv_cache_bytes: {name} must be a positive integer, got {value!r}.")
    if (
        isinstance(bytes_per_value, bool)
        or not isinstance(bytes_per_value, int | float)
        or not (math.isfinite(bytes_per_value) and bytes_per_value > 0)
    ):
        raise ValueError(
            f"kv_cache_bytes: bytes_per_value must be a positive number (2 for fp16/bf16, "
            f"4 for fp32, 1 for int8), got {bytes_per_value!r}."
        )
    values = 2 * n_layers * n_kv_heads * head_dim * seq_len * batch_size
    if _is_int(bytes_per_value):
        return values * int(bytes_per_value)
    return math.ceil(values * bytes_per_value)


# --------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------
def _check_lora_args(base: nn.Linear, rank: int, alpha: float | None, where: str = "") -> float:
    """Validate ``rank`` and ``alpha`` for ``base``; returns alpha (default: rank)."""
    n_out, n_in = base.weight.shape
    if not _is_int(rank) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}.")
    if rank > min(n_in, n_out):
        raise ValueError(
            f"LoRA rank {rank} exceeds min(in_features, out_features) = {min(n_in, n_out)} "
            f"of {where or 'this'} {n_in} -> {n_out} layer: a rank that large is no longer "
            "low-rank (and no cheaper than training the layer); pick a smaller rank."
        )
    alpha = float(rank) if alpha is None else alpha
    if isinstance(alpha, bool) or not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"LoRA alpha must be a positive number (None = rank), got {alpha!r}.")
    return alpha


class LoRALinear(nn.Module):
    r"""A frozen ``nn.Linear`` plus a trainable low-rank update (LoRA, Hu et al. 2021).

    .. math:: y = x W^\top + b + \tfrac{\alpha}{r}\, (x A^\top) B^\top

    with ``A`` ``(rank, in_features)`` drawn uniformly from
    :math:`\pm 1/\sqrt{\text{in\_features}}` (Kaiming-uniform with :math:`a=\sqrt 5`, PyTorch's
    default for ``nn.Linear``) and ``B`` ``(out_features, rank)`` zero, so at the start the
    output is exactly the base layer's and training moves away from it. ``alpha`` defaults to
    ``rank`` (scale 1). Only ``r (in + out)`` numbers train instead of ``in * out``.

    Attributes: ``base`` (the wrapped layer; its parameters get ``requires_grad=False``),
    ``lora_a``, ``lora_b``, ``rank``, ``alpha``, ``scale`` (= alpha / rank). ``weight`` and
    ``bias`` give the effective ``W + scale B A`` and the base's bias, so code that reads a
    layer's weight (e.g. cross-attention slicing ``qkv_proj.weight``) sees the adapted layer.
    x: ``(..., in_features)`` -> ``(..., out_features)``.
    """

    def __init__(self, base: nn.Linear, *, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(
                f"LoRALinear wraps an nn.Linear, got {type(base).__name__}"
                + (" (it already has LoRA)" if isinstance(base, LoRALinear) else "")
                + "."
            )
        n_out, n_in = base.weight.shape
        alpha = _check_lora_args(base, rank, alpha)
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank = rank
        self.alpha = float(alpha)
        self.scale = self.alpha / rank
        w = base.weight
        self.lora_a = nn.Parameter(torch.empty(rank, n_in, device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros(n_out, rank, device=w.device, dtype=w.dtype))
        self.reset_lora_parameters()

    @torch.no_grad()
    def reset_lora_parameters(self, generator: torch.Generator | None = None) -> None:
        """``A ~ U(-1/sqrt(in), 1/sqrt(in))``, ``B = 0``: the update starts at zero."""
        bound = 1.0 / math.sqrt(self.lora_a.shape[1])
        self.lora_a.uniform_(-bound, bound, generator=generator)
        self.lora_b.zero_()

    @property
    def in_features(self) -> int:
        return int(self.lora_a.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.lora_b.shape[0])

    def delta_weight(self) -> torch.Tensor:
        """The update ``scale * B @ A``, ``(out_features, in_features)``."""
        return self.scale * (self.lora_b @ self.lora_a)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight ``W + scale * B @ A`` (differentiable in ``A`` and ``B``)."""
        return self.base.weight + self.delta_weight()

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(x, self.lora_a), self.lora_b)  # (..., out): two thin products
        return self.base(x) + self.scale * update

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scale={self.scale:g}"


def apply_lora(
    model: nn.Module,
    target_modules: str | Sequence[str],
    *,
    rank: int,
    alpha: float | None = None,
) -> nn.Module:
    """Wrap the named ``nn.Linear`` layers of ``model`` in :class:`LoRALinear`, in place.

    ``target_modules``: names as in ``model.named_modules()``, matched in full or by their last
    components (``"qkv_proj"`` wraps every block's attention projection; ``["qkv_proj",
    "out_proj"]`` both). Every parameter other than the LoRA matrices is frozen
    (``requires_grad=False``), so an optimizer over ``model.parameters()`` with gradients
    trains only the updates. A tied layer (GPT's ``lm_head`` shares the token embedding) keeps
    sharing its frozen base weight. Returns ``model``.

    Errors: a name that matches no module (the message lists the Linear names there are), a
    name that matches something other than an ``nn.Linear``, and bad ``rank`` / ``alpha``.
    """
    if isinstance(model, nn.Linear):
        raise TypeError(
            "apply_lora edits a model's layers in place; wrap a lone layer with LoRALinear(layer, rank=...)."
        )
    chosen = _select_linears(model, target_modules, what="apply_lora")
    for name, layer in chosen:  # every check before anything changes
        _check_lora_args(layer, rank, alpha, f"the {name!r}")
    wrapped = [(name, LoRALinear(layer, rank=rank, alpha=alpha)) for name, layer in chosen]
    for p in model.parameters():
        p.requires_grad_(False)
    for name, lora in wrapped:
        _set_module(model, name, lora)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            m.lora_a.requires_grad_(True)
            m.lora_b.requires_grad_(True)
    return model


@torch.no_grad()
def _merged_linear(lora: LoRALinear) -> nn.Linear:
    w = lora.base.weight
    bias = lora.base.bias
    merged = nn.Linear(
        lora.in_features, lora.out_features, bias=bias is not None, device=w.device, dtype=w.dtype
    )
    merged.weight.copy_(w + lora.delta_weight().to(w.dtype))
    merged.weight.requires_grad_(w.requires_grad)
    if bias is not None:
        assert merged.bias is not None
        merged.bias.copy_(bias)
        merged.bias.requires_grad_(bias.requires_grad)
    return merged


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` by a plain ``nn.Linear`` with weight
    ``W + scale * B @ A`` and the base's bias: the same outputs, no extra cost at inference.

    The merged weight is a new tensor (a base that was tied to an embedding stays untouched,
    so the tie is dropped for that layer); its ``requires_grad`` is the base's (frozen after
    :func:`apply_lora`). A bare ``LoRALinear`` passed as ``model`` returns its merged layer.
    Returns ``model``.
    """
    if isinstance(model, LoRALinear):
        return _merged_linear(model)
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, lora in found:
        _set_module(model, name, _merged_linear(lora))
    return model


class ParameterCount(NamedTuple):
    """``(trainable, total)`` parameters, each shared tensor counted once; ``share`` =
    trainable / total."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"{self.trainable:,} of {self.total:,} parameters trainable ({100 * self.share:.2f}%)"
        )


def lora_parameter_count(model: nn.Module) -> ParameterCount:
    """How many parameters train (``requires_grad``) out of all of them, e.g. after
    :func:`apply_lora`: ``print(lora_parameter_count(model))`` or ``.share``."""
    params = list(model.parameters())  # a tied tensor appears once
    return ParameterCount(
        trainable=sum(p.numel() for p in params if p.requires_grad),
        total=sum(p.numel() for p in params),
    )


# --------------------------------------------------------------------------------------------
# quantization: shared pieces
# --------------------------------------------------------------------------------------------
def _check_weight(weight: torch.Tensor, fn: str) -> None:
    if not isinstance(weight, torch.Tensor) or not weight.dtype.is_floating_point:
        kind = weight.dtype if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise TypeError(f"{fn} quantizes a floating-point weight, got {kind}.")
    if weight.dim() != 2:
        raise ValueError(
            f"{fn} expects a 2-D weight (out_features, in_features), got shape {tuple(weight.shape)}."
        )
    if not bool(torch.isfinite(weight).all()):
        raise ValueError(f"{fn}: the weight holds inf or NaN values, which cannot be quantized.")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half precisions, float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def _stored_scale(absmax: torch.Tensor, levels: float, dtype: torch.dtype) -> torch.Tensor:
    """``absmax / levels`` stored in ``dtype``, rounded *up* when ``dtype`` is coarser than the
    working precision (so ``|w| / scale <= levels`` still holds); all-zero groups get scale 1."""
    scale = absmax / levels
    stored = scale.to(dtype)
    low = stored.to(scale.dtype) < scale
    stored = torch.where(low, torch.nextafter(stored, torch.full_like(stored, math.inf)), stored)
    return torch.where(absmax > 0, stored, torch.ones_like(stored))


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of everything a model holds: parameters and buffers (each tensor once, so a tied
    matrix counts once), each at its dtype's size. An int8 weight counts 1 byte per value, a
    packed 4-bit weight half a byte."""
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _quantize_model(
    model: nn.Module,
    make: Callable[[nn.Linear], nn.Module],
    skip: str | Sequence[str],
    check: Callable[[str, nn.Linear], None] | None = None,
) -> nn.Module:
    if isinstance(model, nn.Linear):
        if check is not None:
            check("", model)
        return make(model)
    patterns = _names(skip, "skip")
    tied = _tied_weight_ids(model)
    chosen = [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear)
        and id(m.weight) not in tied
        and not any(_matches(n, p) for p in patterns)
    ]
    if check is not None:
        for name, layer in chosen:  # check them all before changing anything
            check(name, layer)
    for name, layer in chosen:
        _set_module(model, name, make(layer))
    return model


# --------------------------------------------------------------------------------------------
# int8: symmetric, one scale per output row
# --------------------------------------------------------------------------------------------
def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: ``scale = max|row| / 127``, ``q = round(w / scale)`` in
    ``[-127, 127]``.

    weight ``(out, in)`` float -> ``q`` ``(out, in)`` int8 and ``scale`` ``(out, 1)`` in the
    weight's dtype (a row of zeros gets scale 1). Each value is off by at most ``scale / 2``
    after :func:`dequantize_int8`.
    """
    _check_weight(weight, "quantize_int8")
    w = weight.detach().to(_work_dtype(weight.dtype))
    scale = _stored_scale(w.abs().amax(dim=1, keepdim=True), 127.0, weight.dtype)
    q = torch.round(w / scale.to(w.dtype)).clamp_(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale``: int8 ``(out, in)`` and ``(out, 1)`` scales -> a weight in the scale's dtype."""
    if q.dtype != torch.int8:
        raise TypeError(f"dequantize_int8 expects int8 values, got {q.dtype}.")
    if scale.shape != (q.shape[0], 1):
        raise ValueError(
            f"scale must be (out, 1) = ({q.shape[0]}, 1) (one per row, from quantize_int8), "
            f"got {tuple(scale.shape)}."
        )
    return q.to(scale.dtype) * scale


class QuantizedLinear(nn.Module):
    """What the quantized linear layers share: sizes, a float ``bias`` buffer (or None), and a
    forward that dequantizes the stored weight, ``y = x W^T + b`` (the saving is in storage, not
    speed). Subclasses store the weight their way and give it back through :attr:`weight`.
    Inference only: nothing here has gradients. x: ``(..., in)`` -> ``(..., out)``.
    """

    bias: torch.Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer(
            "bias", torch.zeros(out_features, dtype=dtype, device=device) if bias else None
        )

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``(out, in)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Int8Linear(QuantizedLinear):
    """A linear layer that stores its weight as int8 with one float scale per output row.

    Buffers (saved in the state dict, moved by ``.to``): ``weight_q`` ``(out, in)`` int8,
    ``weight_scale`` ``(out, 1)`` and ``bias`` ``(out,)`` (or None) in the float dtype. The
    forward dequantizes and multiplies, ``y = x (q * scale)^T + b``: the saving is in storage
    (1 byte per weight instead of 4), not speed. Inference only: nothing here has gradients.
    Build it with :meth:`from_linear`. x: ``(..., in)`` -> ``(..., out)``.
    """

    weight_q: torch.Tensor
    weight_scale: torch.Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.register_buffer(
            "weight_q", torch.zeros(out_features, in_features, dtype=torch.int8, device=device)
        )
        self.register_buffer(
            "weight_scale", torch.ones(out_features, 1, dtype=dtype, device=device)
        )

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantize an ``nn.Linear`` (see :func:`quantize_int8`)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(
                f"Int8Linear.from_linear expects an nn.Linear, got {type(linear).__name__}."
            )
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        layer.weight_q, layer.weight_scale = quantize_int8(w)
        if linear.bias is not None:
            layer.bias = linear.bias.detach().clone()
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``(out, in)``."""
        return dequantize_int8(self.weight_q, self.weight_scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, int8"


def quantize_model_int8(model: nn.Module, *, skip: str | Sequence[str] = ()) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` by an :class:`Int8Linear`, in place; returns it.

    ``skip``: names (matched in full or by last components) to keep in float. A Linear whose
    weight is **tied** to another module (GPT's ``lm_head`` shares the token embedding) is
    always kept: quantizing it would untie it and store the matrix twice. Embeddings and norms
    stay in float. A lone ``nn.Linear`` passed as ``model`` returns its quantized layer.
    """
    return _quantize_model(model, Int8Linear.from_linear, skip)


# --------------------------------------------------------------------------------------------
# 4 bits: symmetric, one scale per group of input columns, two values per byte
# --------------------------------------------------------------------------------------------
def _check_group_size(group_size: int, in_features: int, where: str = "") -> None:
    if not _is_int(group_size) or group_size < 2 or group_size % 2:
        raise ValueError(
            f"group_size must be a positive even integer (two 4-bit values share a byte), "
            f"got {group_size!r}."
        )
    if in_features % group_size:
        divisors = [g for g in (16, 32, 64, 128, 256) if in_features % g == 0]
        raise ValueError(
            f"{where}in_features={in_features} is not a multiple of group_size={group_size}: "
            "groups are runs of group_size input columns of each row, with no padding. "
            + (f"Use a group size that divides it (e.g. {divisors[-1]})." if divisors else "")
        )


def quantize_4bit(
    weight: torch.Tensor, *, group_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 4-bit quantization per group of ``group_size`` consecutive input columns.

    Each row of weight ``(out, in)`` is cut into ``in / group_size`` groups; a group with
    largest magnitude ``m`` gets ``scale = m / 7.5`` and its values become
    ``q = round(w / scale)`` on the 16 levels ``-8 .. 7`` (``w / scale`` lies in
    ``[-7.5, 7.5]``, and every point there is within half a step of a level), so each value is
    off by at most ``scale / 2``. The levels are stored as ``q + 8`` in 0..15, two per byte
    (column ``2j`` in the low four bits, ``2j + 1`` in the high four).

    Returns ``packed`` ``(out, in / 2)`` uint8 and ``scale`` ``(out, in / group_size)`` in the
    weight's dtype (an all-zero group gets scale 1). ``in_features`` must be a multiple of
    ``group_size`` (no padding). Storage: 4 bits per weight plus one scale per group, i.e.
    ``4 + 8 * bytes(scale) / group_size`` bits (4.5 for float32 scales and groups of 64).
    """
    _check_weight(weight, "quantize_4bit")
    n_out, n_in = weight.shape
    _check_group_size(group_size, n_in)
    w = weight.detach().to(_work_dtype(weight.dtype)).reshape(n_out, n_in // group_size, group_size)
    scale = _stored_scale(w.abs().amax(dim=-1), 7.5, weight.dtype)  # (out, groups)
    q = torch.round(w / scale.to(w.dtype).unsqueeze(-1)).clamp_(-8, 7)
    u = (q + 8).to(torch.uint8).reshape(n_out, n_in)  # 0..15
    packed = u[:, 0::2] | (u[:, 1::2] << 4)
    return packed, scale


def dequantize_4bit(packed: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Unpack ``(out, in / 2)`` uint8 and scale ``(out, groups)`` -> a weight ``(out, in)`` in the
    scale's dtype (the group size is ``in / groups``)."""
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise TypeError(
            f"dequantize_4bit expects packed (out, in / 2) uint8 values, got {packed.dtype} "
            f"{tuple(packed.shape)}."
        )
    n_out, n_in = packed.shape[0], 2 * packed.shape[1]
    if scale.dim() != 2 or scale.shape[0] != n_out or scale.shape[1] < 1 or n_in % scale.shape[1]:
        raise ValueError(
            f"scale must be (out, groups) with out={n_out} and groups dividing in={n_in}, "
            f"got {tuple(scale.shape)} (pass the scale from quantize_4bit)."
        )
    low, high = packed & 0x0F, packed >> 4
    u = torch.stack((low, high), dim=-1).reshape(n_out, n_in)
    q = u.to(scale.dtype) - 8
    n_groups = scale.shape[1]
    return (q.reshape(n_out, n_groups, -1) * scale.unsqueeze(-1)).reshape(n_out, n_in)


class Int4Linear(QuantizedLinear):
    """A linear layer storing its weight in 4 bits, two values per byte, with one float scale
    per group of ``group_size`` input columns (see :func:`quantize_4bit`).

    Buffers: ``weight_packed`` ``(out, in / 2)`` uint8, ``weight_scale`` ``(out, in /
    group_size)`` and ``bias`` (or None) in the float dtype. The forward dequantizes:
    ``y = x W^T + b``. Inference only. Build it with :meth:`from_linear`.
    x: ``(..., in)`` -> ``(..., out)``.
    """

    weight_packed: torch.Tensor
    weight_scale: torch.Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        group_size: int = 64,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        _check_group_size(group_size, in_features)
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.group_size = group_size
        self.register_buffer(
            "weight_packed",
            torch.full((out_features, in_features // 2), 0x88, dtype=torch.uint8, device=device),
        )
        self.register_buffer(
            "weight_scale",
            torch.ones(out_features, in_features // group_size, dtype=dtype, device=device),
        )

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear, *, group_size: int = 64) -> Int4Linear:
        """Quantize an ``nn.Linear`` (``in_features`` a multiple of ``group_size``)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(
                f"Int4Linear.from_linear expects an nn.Linear, got {type(linear).__name__}."
            )
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            group_size=group_size,
            device=w.device,
            dtype=w.dtype,
        )
        layer.weight_packed, layer.weight_scale = quantize_4bit(w, group_size=group_size)
        if linear.bias is not None:
            layer.bias = linear.bias.detach().clone()
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight ``(out, in)``."""
        return dequantize_4bit(self.weight_packed, self.weight_scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, 4-bit, group_size={self.group_size}"


def quantize_model_4bit(
    model: nn.Module, *, group_size: int = 64, skip: str | Sequence[str] = ()
) -> nn.Module:
    """Replace every ``nn.Linear`` by an :class:`Int4Linear`, in place; returns ``model``.

    Same rules as :func:`quantize_model_int8` (``skip`` by name, tied Linears always kept).
    Every layer to quantize must have ``in_features`` divisible by ``group_size``; otherwise
    nothing is changed and the error names the layer (skip it or pick another group size).
    """

    def check(name: str, layer: nn.Linear) -> None:
        _check_group_size(group_size, layer.in_features, f"{name or 'the layer'}: ")

    def make(layer: nn.Linear) -> nn.Module:
        return Int4Linear.from_linear(layer, group_size=group_size)

    return _quantize_model(model, make, skip, check)


# --------------------------------------------------------------------------------------------
# pruning
# --------------------------------------------------------------------------------------------
def _check_sparsity(value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(
            f"sparsity is the fraction of weights to zero and must be in [0, 1), got {value!r}."
        )


def _keep_mask(
    module: nn.Module, name: str, shape: torch.Size, device: torch.device
) -> torch.Tensor:
    """The module's keep-mask buffer ``name`` (created all-True, not saved in the state dict)."""
    mask = getattr(module, name, None)
    if not isinstance(mask, torch.Tensor):
        mask = torch.ones(shape, dtype=torch.bool, device=device)
        module.register_buffer(name, mask, persistent=False)
    return mask


@torch.no_grad()
def magnitude_prune_(
    model: nn.Module,
    sparsity: float,
    *,
    modules: str | Sequence[str] | None = None,
    scope: PruneScope = "layer",
) -> float:
    """Unstructured magnitude pruning, in place: zero the ``sparsity`` fraction of weights with
    the smallest ``|w|``.

    Targets: ``model`` itself if it is an ``nn.Linear``; else the ``nn.Linear`` layers named in
    ``modules`` (matched as in :func:`apply_lora`), or by default every ``nn.Linear`` whose
    weight is not tied to another module (GPT's ``lm_head`` shares the embedding). Biases are
    kept. ``scope="layer"`` zeros ``round(sparsity * n)`` weights of each layer;
    ``scope="global"`` ranks all targeted weights together (layers end up with different
    sparsities).

    Each pruned layer keeps a boolean buffer ``weight_keep`` (True = kept; not saved in the
    state dict): the optimizer would otherwise grow the zeros back, so call
    :func:`apply_masks_` after every ``optimizer.step()``. Pruning again combines with the
    existing mask. Returns the achieved sparsity of the targeted weights.
    """
    _check_sparsity(sparsity)
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}.")
    layers = [m for _, m in _select_linears(model, modules, what="magnitude_prune_")]
    if not layers:
        raise ValueError("magnitude_prune_: the model has no (untied) nn.Linear layer to prune.")
    weights = [m.weight for m in layers]
    magnitudes = [w.detach().abs().flatten() for w in weights]
    if scope == "layer":
        prune_idx = [
            torch.topk(a, round(sparsity * a.numel()), largest=False).indices for a in magnitudes
        ]
    else:
        dtype = functools.reduce(torch.promote_types, [a.dtype for a in magnitudes])
        pooled = torch.cat([a.to(dtype) for a in magnitudes])
        chosen = torch.topk(pooled, round(sparsity * pooled.numel()), largest=False).indices
        starts = torch.tensor([0] + [a.numel() for a in magnitudes]).cumsum(0).tolist()
        prune_idx = [
            chosen[(chosen >= lo) & (chosen < hi)] - lo for lo, hi in zip(starts, starts[1:])
        ]
    n_pruned = n_total = 0
    for layer, w, idx in zip(layers, weights, prune_idx):
        keep = _keep_mask(layer, "weight_keep", w.shape, w.device)
        keep.view(-1)[idx.to(w.device)] = False
        w.mul_(keep)
        n_pruned += int((~keep).sum())
        n_total += keep.numel()
    return n_pruned / n_total


@torch.no_grad()
def apply_masks_(model: nn.Module) -> None:
    """Re-zero what pruning removed: multiply each weight (and bias) that has a ``weight_keep``
    (``bias_keep``) mask by it. Call after each optimizer step when fine-tuning a pruned model."""
    for m in model.modules():
        for param_name in ("weight", "bias"):
            keep = getattr(m, f"{param_name}_keep", None)
            param = getattr(m, param_name, None)
            if isinstance(keep, torch.Tensor) and isinstance(param, torch.Tensor):
                param.mul_(keep)


def sparsity(
    model: nn.Module | torch.Tensor, *, modules: str | Sequence[str] | None = None
) -> float:
    """The fraction of exact zeros: of a tensor, of an ``nn.Linear``'s weight, or of the weights
    of a model's Linear layers (those :func:`magnitude_prune_` would target: ``modules`` or
    every untied ``nn.Linear``)."""
    if isinstance(model, torch.Tensor):
        return float((model == 0).sum()) / max(model.numel(), 1)
    layers = [m for _, m in _select_linears(model, modules, what="sparsity")]
    zeros = sum(int((m.weight == 0).sum()) for m in layers)
    total = sum(m.weight.numel() for m in layers)
    return zeros / total if total else 0.0


def _check_heads(attention: nn.Module, heads: Iterable[int]) -> list[int]:
    if not isinstance(attention, MultiHeadAttention):
        raise TypeError(
            f"prune_heads_ expects a MultiHeadAttention (e.g. model.blocks.layers[0].self_attn), "
            f"got {type(attention).__name__}."
        )
    for name in ("qkv_proj", "out_proj"):
        if not isinstance(getattr(attention, name), nn.Linear):
            raise TypeError(
                f"prune_heads_ edits plain nn.Linear projections, but {name} is a "
                f"{type(getattr(attention, name)).__name__}: prune before LoRA or quantization "
                "(or merge_lora first)."
            )
    out = []
    for h in heads:
        if not _is_int(h) or not 0 <= h < attention.n_heads:
            raise ValueError(
                f"head index {h!r} is out of range: this attention has heads 0..{attention.n_heads - 1}."
            )
        out.append(h)
    return sorted(set(out))


@torch.no_grad()
def prune_heads_(attention: MultiHeadAttention, heads: Sequence[int]) -> MultiHeadAttention:
    """Structured pruning: make the given attention heads contribute nothing, in place.

    The heads are **zeroed, not removed** (shapes, the state dict and the kernels stay as they
    are): the ``out_proj`` columns that read head ``h``'s output, and the query rows of
    ``qkv_proj`` (weight and bias) that produce its queries. Key and value rows are zeroed for a
    key/value head once every query head that uses it is pruned (with MHA at once; with GQA a
    shared head stays while one of its query heads remains). The output is then the attention
    computed with the remaining heads only. Masks ``weight_keep`` / ``bias_keep`` are kept (see
    :func:`apply_masks_`); ``attention.pruned_heads`` records the set. Returns ``attention``.
    """
    chosen = _check_heads(attention, heads)
    a = attention
    d_head, group = a.d_head, a.n_heads // a.n_kv_heads
    pruned: set[int] = set(getattr(a, "pruned_heads", set())) | set(chosen)
    qkv, out = a.qkv_proj, a.out_proj
    row_keep = _keep_mask(qkv, "weight_keep", qkv.weight.shape, qkv.weight.device)
    col_keep = _keep_mask(out, "weight_keep", out.weight.shape, out.weight.device)
    rows = torch.ones(qkv.weight.shape[0], dtype=torch.bool, device=qkv.weight.device)
    for h in pruned:
        rows[h * d_head : (h + 1) * d_head] = False
        col_keep[:, h * d_head : (h + 1) * d_head] = False
    for g in range(a.n_kv_heads):
        if all(h in pruned for h in range(g * group, (g + 1) * group)):
            for start in (a.q_dim + g * d_head, a.q_dim + a.kv_dim + g * d_head):
                rows[start : start + d_head] = False
    row_keep &= rows.unsqueeze(1)
    qkv.weight.mul_(row_keep)
    out.weight.mul_(col_keep)
    if qkv.bias is not None:
        bias_keep = _keep_mask(qkv, "bias_keep", qkv.bias.shape, qkv.bias.device)
        bias_keep &= rows
        qkv.bias.mul_(bias_keep)
    setattr(a, "pruned_heads", pruned)  # noqa: B010 (a plain attribute: mypy knows only tensors/modules)
    return a


@torch.no_grad()
def head_importance(model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
    """How much each head of each :class:`~coursekit.attention.MultiHeadAttention` in ``model``
    contributes, on one forward call ``model(*args, **kwargs)``.

    Head ``h``'s contribution to the output is its output ``o_h`` ``(B, T, d_head)`` times its
    columns of ``out_proj``; the score is the mean L2 norm of that ``(B, T, d_model)`` vector
    over batch and positions. Returns ``{module name: (n_heads,) scores}`` (the name is ``""``
    when ``model`` is itself the attention). The lowest scores are candidates for
    :func:`prune_heads_`.
    """
    scores: dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(name: str, attn: MultiHeadAttention) -> Callable[..., None]:
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            o = inputs[0]  # (B, T, d_model): the heads' outputs side by side
            w = attn.out_proj.weight  # (d_model, H * d_head)
            b, t, _ = o.shape
            heads = o.reshape(b, t, attn.n_heads, attn.d_head)
            w_heads = w.reshape(w.shape[0], attn.n_heads, attn.d_head)
            contrib = torch.einsum("bthd,ohd->btho", heads, w_heads)  # (B, T, H, d_model)
            scores[name] = contrib.norm(dim=-1).mean(dim=(0, 1))

        return hook

    for name, m in model.named_modules():
        if isinstance(m, MultiHeadAttention):
            handles.append(m.out_proj.register_forward_pre_hook(hook_for(name, m)))
    if not handles:
        raise ValueError("head_importance: the model has no MultiHeadAttention.")
    try:
        model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return scores


# --------------------------------------------------------------------------------------------
# activation checkpointing
# --------------------------------------------------------------------------------------------
def _checkpointed_forward(self: TransformerBlock, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    plain = type(self).forward
    use = (
        self.training
        and torch.is_grad_enabled()
        and kwargs.get("cache") is None  # a recomputation would append to a cache twice
        and kwargs.get("memory_cache") is None
    )
    if use:
        return checkpoint(plain, self, x, use_reentrant=False, **kwargs)
    return plain(self, x, **kwargs)


def checkpoint_blocks(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Run every :class:`~coursekit.layers.TransformerBlock` in ``model`` under activation
    checkpointing (``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``), in place.

    A checkpointed block keeps only its input during the forward pass and recomputes its
    internals during the backward pass: activation memory falls from every layer's
    intermediates to one tensor per block, for about one extra forward pass of compute. The
    gradients are the same (dropout draws the same masks: the random state is replayed).

    Done by giving each block an instance-level ``forward`` (the parameters, their names and
    the state dict are unchanged). It applies in training mode with gradients on and no KV
    cache; in ``eval()``, under ``torch.no_grad()`` or while decoding, blocks run as usual.
    ``enabled=False`` restores the plain forward. Returns ``model``.
    """
    blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
    if not blocks:
        raise ValueError(
            f"checkpoint_blocks: {type(model).__name__} contains no TransformerBlock to checkpoint."
        )
    for block in blocks:
        if enabled:
            setattr(block, "forward", types.MethodType(_checkpointed_forward, block))  # noqa: B010
        else:
            block.__dict__.pop("forward", None)
    return model
