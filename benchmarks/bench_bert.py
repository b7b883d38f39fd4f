"""BERT training step: coursekit's Bert against ``transformers``' BertModel, same weights.

Run: ``python benchmarks/bench_bert.py [--device cuda] [--quick] [--threads 1]``.

A BERT-mini-like configuration (4 layers, d_model 256, 4 heads, d_ff 1024, WordPiece-sized
vocabulary 30,522; batch 16 x 128 tokens) is built in ``transformers`` (SDPA attention, its
fastest path) and converted with ``coursekit.hf.bert.bert_from_hf``, so both models start from
the same weights. A training step = forward, loss, backward, AdamW step, with dropout on, for
two losses:

* ``hidden``: the mean square of the last hidden state (the encoder alone);
* ``mlm``: masked-language-model cross-entropy on 15% of the positions (``BertForMaskedLM``:
  the vocabulary-sized output layer runs on every position, as in both libraries).

The two steps and a ``--matmul``-sized float32 matrix product are alternated round by round
(medians), so the matmul rate is measured under the same load as the models. Model FLOP
utilisation (MFU) = model FLOPs per step / step time / measured matmul rate, with the model FLOPs
from ``coursekit.scaling.flops_per_token`` (``6 N`` per token for the blocks; the attention term
doubled, since BERT's queries see every key, not half; plus the MLM head ``6 (d^2 + d V)``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_parser, need_transformers, rows_by_name, setup, write_results  # noqa: E402
from training_step import add_matmul_arg, matmul_probe, training_step_row  # noqa: E402

from coursekit.scaling import flops_per_token  # noqa: E402

FULL = dict(vocab=30522, layers=4, d=256, heads=4, d_ff=1024, batch=16, seq=128)
QUICK = dict(vocab=1000, layers=2, d=64, heads=4, d_ff=256, batch=4, seq=32)


def step_flops(c: dict[str, int], loss: str) -> float:
    """Training FLOPs of one step (forward + backward = 3 x forward)."""
    shape = SimpleNamespace(
        n_layers=c["layers"],
        d_model=c["d"],
        n_heads=c["heads"],
        d_ff=c["d_ff"],
        vocab_size=c["vocab"],
        block_size=c["seq"],
        activation="gelu",
        norm="layer",
        bias=True,
        positional="learned",
        tie_embeddings=True,
    )
    per_token = flops_per_token(shape, seq_len=c["seq"])
    forward = per_token.non_embedding + 2 * per_token.attention  # bidirectional: every key
    if loss == "mlm":
        forward += 2 * (c["d"] * c["d"] + c["d"] * c["vocab"])  # transform + decoder
    return 3.0 * forward * c["batch"] * c["seq"]


def bench_loss(
    loss: str,
    cfg: Any,
    c: dict[str, int],
    ids: torch.Tensor,
    labels: torch.Tensor,
    matmul: Callable[[], torch.Tensor],
    args: argparse.Namespace,
) -> dict[str, object]:
    """One row: the training step of both models with ``loss``, alternated with ``matmul``."""
    import transformers

    from coursekit.hf.bert import bert_from_hf

    device = args.device
    torch.manual_seed(0)
    ref: nn.Module = (
        transformers.BertModel(cfg, add_pooling_layer=False)
        if loss == "hidden"
        else transformers.BertForMaskedLM(cfg)
    ).to(device)
    ours = bert_from_hf(ref)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())

    if loss == "hidden":

        def loss_ours() -> torch.Tensor:
            return ours(ids).pow(2).mean()

        def loss_ref() -> torch.Tensor:
            return ref(input_ids=ids).last_hidden_state.pow(2).mean()
    else:

        def loss_ours() -> torch.Tensor:
            return ours.loss(ids, labels)  # type: ignore[operator]

        def loss_ref() -> torch.Tensor:
            return ref(input_ids=ids, labels=labels).loss

    return {
        "loss": loss,
        **training_step_row(
            ours,
            ref,
            loss_ours,
            loss_ref,
            matmul,
            flops=step_flops(c, loss),
            tokens=c["batch"] * c["seq"],
            args=args,
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, rounds=10)
    parser.add_argument("--losses", default="hidden,mlm", help="hidden, mlm or both")
    add_matmul_arg(parser)
    args = setup(parser.parse_args(argv))
    transformers = need_transformers("bench_bert")
    device = args.device
    c = QUICK if args.quick else FULL
    gen = torch.Generator().manual_seed(0)
    n_mm, matmul = matmul_probe(args, gen)
    cfg = transformers.BertConfig(
        vocab_size=c["vocab"],
        hidden_size=c["d"],
        num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"],
        intermediate_size=c["d_ff"],
        max_position_embeddings=512,
        attn_implementation="sdpa",
    )
    ids = torch.randint(
        1000 if c["vocab"] > 2000 else 5, c["vocab"], (c["batch"], c["seq"]), generator=gen
    )
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(ids.shape, generator=gen) < 0.15
    labels[chosen] = ids[chosen]
    ids, labels = ids.to(device), labels.to(device)
    rows = rows_by_name(
        args.losses,
        ("hidden", "mlm"),
        lambda loss: bench_loss(loss, cfg, c, ids, labels, matmul, args),
        option="--losses",
        what="loss",
    )
    shape = (
        f"{c['layers']} layers, d_model {c['d']}, {c['heads']} heads, d_ff {c['d_ff']}, "
        f"vocab {c['vocab']}, batch {c['batch']} x {c['seq']}"
    )
    write_results(
        "bert",
        f"BERT training step: coursekit Bert vs transformers BertModel ({device})",
        rows,
        notes=f"{shape}; transformers {transformers.__version__} with SDPA attention; same weights "
        f"(bert_from_hf), dropout 0.1, AdamW; median of {args.rounds} alternated rounds; ratio < 1: "
        f"coursekit is faster. MFU against a {n_mm}x{n_mm} float32 matmul timed in the same "
        f"rounds; peak memory of one step (CUDA: max_memory_allocated; CPU: torch.profiler).",
        args=args,
    )


if __name__ == "__main__":
    main()
