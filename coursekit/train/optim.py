"""Optimizer set-up: AdamW with weight decay on the matrices only.

Weight decay pulls weights towards zero. It helps on matrices (linear layers, embeddings) but
hurts on biases and normalisation gains, whose job is to shift and scale: the usual recipe
(GPT-2, BERT, T5 fine-tuning, most modern LLMs) decays every parameter with two or more
dimensions and none of the 1-D ones. :func:`param_groups` makes that split and
:func:`make_optimizer` builds the AdamW, with PyTorch's fused kernel where the parameters'
device supports it (one kernel per step for all parameters), else the multi-tensor
``foreach`` implementation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["make_optimizer", "param_groups"]


def param_groups(model: nn.Module, *, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: ``decay`` (params with ``dim >= 2``) and ``no_decay`` (the 1-D ones).

    Only parameters that require gradients are included, each once (tied weights, such as an
    embedding shared with the output projection, appear once). Both groups are always present,
    possibly empty, so checkpoints see a stable group layout.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():  # already de-duplicated: tied parameters come once
        if not param.requires_grad:
            continue
        (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def _all_params(groups: Iterable[dict[str, Any]]) -> list[torch.Tensor]:
    return [p for g in groups for p in g["params"]]


def make_optimizer(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters with :func:`param_groups`' decay split.

    Uses ``fused=True`` when this PyTorch has a fused AdamW for the parameters' device and dtype
    (CUDA, and CPU/MPS in recent releases), else ``foreach=True``. Results agree to float
    rounding.
    """
    groups = param_groups(model, weight_decay=weight_decay)
    params = _all_params(groups)
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to optimize.")
    if len({p.device for p in params}) == 1:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
        except (RuntimeError, ValueError, TypeError):
            pass  # no fused kernel for this device/dtype in this PyTorch
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=True)
