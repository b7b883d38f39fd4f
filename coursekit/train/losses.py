"""Losses: label smoothing written out (the teaching version) and the fused one the models run.

* :func:`label_smoothing_loss` computes the cross-entropy against the smoothed target
  ``(1 - eps) * one_hot + eps / K`` term by term, in the logits' dtype.
* :func:`cross_entropy_loss` is what the models call: PyTorch's fused
  ``F.cross_entropy(..., label_smoothing=...)`` by default, the scratch version with
  ``scratch=True``. The two are tested equal.

This module imports only torch (it sits low, beside ``layers.py``), so a model can import it
without pulling in the training loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cross_entropy_loss", "label_smoothing_loss"]


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, eps: float, who: str) -> None:
    """Shape/dtype checks shared by both losses (metadata only: no device synchronisation)."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"{who}: label smoothing eps must be in [0, 1), got {eps}.")
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{who}: logits must be floating point, got dtype {logits.dtype}.")
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(f"{who}: target must hold integer class ids, got dtype {target.dtype}.")
    if logits.dim() < 1 or logits.shape[:-1] != target.shape:
        raise ValueError(
            f"{who}: logits {tuple(logits.shape)} should be target's shape "
            f"{tuple(target.shape)} plus a final class dimension (..., K)."
        )


def label_smoothing_loss(
    logits: torch.Tensor, target: torch.Tensor, *, eps: float, ignore_index: int = -100
) -> torch.Tensor:
    r"""Cross-entropy against the smoothed target ``(1 - eps) * one_hot + eps / K``.

    Expanding the cross-entropy of that mixture gives two terms per position:

    .. math:: \ell = (1-\epsilon)\,(-\log p_y) + \epsilon\,\tfrac{1}{K}\sum_k (-\log p_k)

    logits: ``(..., K)`` (classes last), target: ``(...)`` integer ids. Positions whose target
    is ``ignore_index`` are skipped; the result is the mean over the others (0 if none), equal
    to ``F.cross_entropy(logits.reshape(-1, K), target.reshape(-1), label_smoothing=eps)``.
    Computed in the logits' dtype (float64 in, float64 out; bf16 works too). Returns a scalar.
    """
    _check_inputs(logits, target, eps, "label_smoothing_loss")
    log_p = torch.log_softmax(logits, dim=-1)  # (..., K)
    keep = target != ignore_index  # (...)
    safe_target = torch.where(keep, target, torch.zeros_like(target))
    nll = -log_p.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)  # (...)
    uniform = -log_p.mean(dim=-1)  # (...)
    per_position = (1.0 - eps) * nll + eps * uniform
    total = torch.where(keep, per_position, torch.zeros_like(per_position)).sum()
    return total / keep.sum().clamp_min(1)


def cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    scratch: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy of ``(..., V)`` logits against ``(...)`` integer targets.

    By default PyTorch's fused kernel,
    ``F.cross_entropy(logits.reshape(-1, V), target.reshape(-1), label_smoothing=...,
    ignore_index=...)``; ``scratch=True`` runs :func:`label_smoothing_loss` instead (same value,
    except that when *every* position is ignored the fused kernel gives NaN and the scratch
    version 0). The result is a scalar in the logits' dtype.
    """
    if scratch:
        return label_smoothing_loss(logits, target, eps=label_smoothing, ignore_index=ignore_index)
    _check_inputs(logits, target, label_smoothing, "cross_entropy_loss")
    vocab = logits.shape[-1]
    return F.cross_entropy(
        logits.reshape(-1, vocab),
        target.reshape(-1),
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
    )
