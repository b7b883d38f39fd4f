"""Evaluation metrics shared by the chapters: perplexity, accuracy, BLEU, calibration."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy in nats)."""
    return math.exp(loss)


def accuracy(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = -100) -> float:
    """Share of positions whose arg-max prediction equals the target.

    logits ``(..., K)``, target ``(...)``; positions equal to ``ignore_index`` are skipped.
    """
    if logits.shape[:-1] != target.shape:
        raise ValueError(
            f"accuracy: logits {tuple(logits.shape)} must be target {tuple(target.shape)} + (K,)."
        )
    keep = target != ignore_index
    if not keep.any():
        raise ValueError("accuracy: every target position is ignore_index.")
    return float((logits.argmax(-1)[keep] == target[keep]).float().mean())


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's standard 13a tokenisation, one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"bleu: {len(hypotheses)} hypotheses but {len(references)} references.")
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)


@dataclass(frozen=True)
class CalibrationResult:
    """Expected calibration error and the reliability-diagram bins."""

    ece: float
    bin_confidence: list[float]
    bin_accuracy: list[float]
    bin_count: list[int]
    bin_edges: list[float]


def expected_calibration_error(
    confidences: torch.Tensor, correct: torch.Tensor, n_bins: int = 10
) -> CalibrationResult:
    """ECE = sum over equal-width confidence bins of (bin share) * |accuracy - confidence|.

    confidences ``(N,)`` in [0, 1] (e.g. the max softmax probability), correct ``(N,)`` bool.
    """
    confidences = confidences.detach().flatten().float().cpu()
    correct = correct.detach().flatten().float().cpu()
    if confidences.shape != correct.shape or confidences.numel() == 0:
        raise ValueError("expected_calibration_error needs two non-empty tensors of equal size.")
    edges = torch.linspace(0, 1, n_bins + 1)
    index = torch.bucketize(confidences, edges[1:-1], right=True)
    conf, acc, count = [], [], []
    ece = 0.0
    for b in range(n_bins):
        members = index == b
        n = int(members.sum())
        count.append(n)
        if n == 0:
            conf.append(float("nan"))
            acc.append(float("nan"))
            continue
        c, a = float(confidences[members].mean()), float(correct[members].mean())
        conf.append(c)
        acc.append(a)
        ece += n / confidences.numel() * abs(a - c)
    return CalibrationResult(ece, conf, acc, count, edges.tolist())
