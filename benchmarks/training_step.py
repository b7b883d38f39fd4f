"""A training step of coursekit's model against transformers', from the same weights, timed
beside a float32 matrix product that measures the matmul rate for the model FLOP utilisation
(MFU): the part ``bench_bert.py`` and ``bench_t5.py`` share.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from common import alternate, peak_memory_bytes
from torch import nn

__all__ = [
    "add_matmul_arg",
    "encoder_decoder_step_flops",
    "matmul_probe",
    "train_step",
    "training_step_row",
]


def add_matmul_arg(parser: argparse.ArgumentParser, *, quick_size: int | None = None) -> None:
    """``--matmul``: the size of the float32 matrix product timed beside the models for the
    matmul rate (0: 1024 on the CPU, 4096 on CUDA, ``quick_size`` in a ``--quick`` run)."""
    quick = f"; quick {quick_size}" if quick_size else ""
    parser.add_argument(
        "--matmul",
        type=int,
        default=0,
        help=f"matmul size for the rate (default cpu 1024, cuda 4096{quick})",
    )
    parser.set_defaults(_quick_matmul=quick_size)


def encoder_decoder_step_flops(c: dict[str, int]) -> float:
    """Training FLOPs of one step of an encoder-decoder (T5, the 2017 Transformer): forward +
    backward = 3 x forward, a multiply-add counting 2; ``c``: enc, dec, d, d_ff, src, tgt, vocab, batch.

    Per source token and encoder layer: the four attention matrices ``2 * 4 d^2``, the ReLU
    feed-forward ``2 * 2 d d_ff``, scores and weighted sum over all ``S`` keys ``4 d S``.
    Per target token and decoder layer: self-attention ``2 * 4 d^2`` + ``4 d T / 2`` (causal:
    half the keys on average), cross-attention queries and output ``2 * 2 d^2`` + ``4 d S``,
    feed-forward ``2 * 2 d d_ff``; the cross-attention keys and values ``2 * 2 d^2`` per source
    token and decoder layer; the output layer ``2 d V`` per target token. Norms, the relative
    position bias and the embedding lookups are left out (a small share).
    """
    d, ff, s, t, v = c["d"], c["d_ff"], c["src"], c["tgt"], c["vocab"]
    encoder = c["enc"] * (8 * d * d + 4 * d * ff + 4 * d * s)
    cross_kv = c["dec"] * 4 * d * d
    decoder = c["dec"] * (8 * d * d + 2 * d * t + 4 * d * d + 4 * d * s + 4 * d * ff)
    forward = s * (encoder + cross_kv) + t * (decoder + 2 * d * v)
    return 3.0 * forward * c["batch"]


def matmul_probe(
    args: argparse.Namespace, gen: torch.Generator
) -> tuple[int, Callable[[], torch.Tensor]]:
    """The ``--matmul`` size (see :func:`add_matmul_arg`) and a function multiplying two random
    float32 matrices of that size (drawn from ``gen``) on ``args.device``."""
    n_mm = args.matmul
    if not n_mm:
        quick_size = getattr(args, "_quick_matmul", None)
        n_mm = quick_size if args.quick and quick_size else 4096 if args.device == "cuda" else 1024
    a, b = (torch.randn(n_mm, n_mm, generator=gen).to(args.device) for _ in range(2))

    def matmul() -> torch.Tensor:
        return a @ b

    return n_mm, matmul


def train_step(loss_fn: Callable[[], torch.Tensor], opt: torch.optim.Optimizer) -> None:
    """One training step: zero the gradients, ``loss_fn().backward()``, ``opt.step()``."""
    opt.zero_grad(set_to_none=True)
    loss_fn().backward()
    opt.step()


def training_step_row(
    ours: nn.Module,
    ref: nn.Module,
    loss_ours: Callable[[], torch.Tensor],
    loss_ref: Callable[[], torch.Tensor],
    matmul: Callable[[], torch.Tensor],
    *,
    flops: float,
    tokens: int,
    args: argparse.Namespace,
) -> dict[str, object]:
    """coursekit's model (``ours``) against transformers' (``ref``), from the same weights.

    The gap between the two losses with dropout off (eval mode), then a training step of each
    (AdamW, lr 1e-4, dropout on) alternated with ``matmul`` for ``args.rounds`` rounds, the
    peak memory of one step of each, the matmul rate, and the model FLOP utilisation of a step
    of ``flops`` FLOPs over ``tokens`` tokens: the columns of a row, in order.
    """
    device = args.device
    ours.eval(), ref.eval()
    with torch.no_grad():
        gap = float((loss_ours() - loss_ref()).abs())
    ours.train(), ref.train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-4)

    def step_ours() -> None:
        train_step(loss_ours, opt_ours)

    def step_ref() -> None:
        train_step(loss_ref, opt_ref)

    times = alternate(
        {"coursekit": step_ours, "transformers": step_ref, "matmul": matmul},
        args.rounds,
        warmup=2,
        device=device,
    )
    peak_ours = peak_memory_bytes(step_ours, device)
    peak_ref = peak_memory_bytes(step_ref, device)
    n_mm = matmul().shape[0]
    rate = 2 * n_mm**3 / times["matmul"]
    return {
        "coursekit ms": 1e3 * times["coursekit"],
        "transformers ms": 1e3 * times["transformers"],
        "ratio": times["coursekit"] / times["transformers"],
        "coursekit tokens/s": tokens / times["coursekit"],
        "GFLOP/step": flops / 1e9,
        "matmul GFLOP/s": rate / 1e9,
        "MFU coursekit": flops / times["coursekit"] / rate,
        "MFU transformers": flops / times["transformers"] / rate,
        "coursekit peak MiB": peak_ours / 2**20,
        "transformers peak MiB": peak_ref / 2**20,
        "ratio peak": peak_ours / max(peak_ref, 1),
        "eval loss gap": gap,
    }
