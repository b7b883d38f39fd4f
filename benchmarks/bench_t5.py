"""T5 training step: coursekit's T5 against ``transformers``' T5ForConditionalGeneration.

Run: ``python benchmarks/bench_t5.py [--device cuda] [--quick] [--threads 1]``.

A narrow T5-small-like configuration (T5 v1.0 recipe: ReLU feed-forward, tied and scaled output
layer, 32 relative-position buckets; 4 encoder + 4 decoder layers, d_model 256, 4 heads, d_ff
1024, vocabulary 8,192; batch 8, 64 source tokens, 32 target tokens) is built offline from a
``transformers.T5Config`` (SDPA attention where the installed version has it) and converted with
``coursekit.hf.t5.t5_from_hf``, so both models start from the same weights and see the same
source and target tokens. A training step = forward (teacher forcing: the decoder reads the
targets shifted right), cross-entropy over the targets, backward, AdamW step, dropout 0.1 on.

The two steps and a ``--matmul``-sized float32 matrix product are alternated round by round
(medians), so the matmul rate is measured under the same load as the models (as in
``bench_bert.py``). Model FLOP utilisation (MFU) = model FLOPs per step / step time / measured
matmul rate; the model FLOPs are counted in :func:`training_step.encoder_decoder_step_flops`
(every weight matrix once per token it multiplies, the encoder's bidirectional and the
decoder's causal attention, the cross-attention, the output layer; training = 3 x forward). One torch thread unless
``--threads`` says otherwise (``--threads 0``: torch's default), as the GPT benchmark.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_parser, need_transformers, rows_by_name, setup, write_results  # noqa: E402
from training_step import (  # noqa: E402
    add_matmul_arg,
    encoder_decoder_step_flops,
    matmul_probe,
    training_step_row,
)

FULL = dict(vocab=8192, enc=4, dec=4, d=256, heads=4, d_ff=1024, batch=8, src=64, tgt=32)
QUICK = dict(vocab=512, enc=2, dec=2, d=64, heads=4, d_ff=128, batch=2, src=16, tgt=8)


def hf_config(c: dict[str, int], attn: str) -> Any:
    """The ``transformers.T5Config`` of the benchmark (T5 v1.0 recipe at ``c``'s sizes)."""
    import transformers

    fields: dict[str, Any] = dict(
        vocab_size=c["vocab"],
        d_model=c["d"],
        d_kv=c["d"] // c["heads"],
        num_heads=c["heads"],
        d_ff=c["d_ff"],
        num_layers=c["enc"],
        num_decoder_layers=c["dec"],
        feed_forward_proj="relu",
        dropout_rate=0.1,
        decoder_start_token_id=0,
        attn_implementation=attn,
    )
    return transformers.T5Config(**fields)


def bench_attn(
    attn: str,
    src: torch.Tensor,
    labels: torch.Tensor,
    c: dict[str, int],
    matmul: Callable[[], torch.Tensor],
    args: argparse.Namespace,
) -> dict[str, object]:
    """One row: the training step of both models (``transformers`` with ``attn`` attention),
    alternated with ``matmul``."""
    import transformers

    from coursekit.hf.t5 import t5_from_hf

    device = args.device
    torch.manual_seed(0)
    ref = transformers.T5ForConditionalGeneration(hf_config(c, attn)).to(device)
    ours = t5_from_hf(ref)
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in ref.parameters()), "the conversion lost weights"

    def loss_ours() -> torch.Tensor:
        return ours.loss(src, labels)

    def loss_ref() -> torch.Tensor:
        return ref(input_ids=src, labels=labels, use_cache=False).loss

    return {
        "transformers attention": str(getattr(ref.config, "_attn_implementation", attn)),
        "parameters": n_ours,
        **training_step_row(
            ours,
            ref,
            loss_ours,
            loss_ref,
            matmul,
            flops=encoder_decoder_step_flops(c),
            tokens=c["batch"] * (c["src"] + c["tgt"]),
            args=args,
        ),
    }


def main(argv: list[str] | None = None) -> None:
    # one thread, as bench_gpt's results: a small model, steadier on one thread
    parser = bench_parser(__doc__, rounds=30, threads=1)
    parser.add_argument(
        "--attn",
        default="sdpa",
        help="transformers' attention implementation(s): sdpa, eager or both (sdpa,eager)",
    )
    add_matmul_arg(parser, quick_size=256)
    args = setup(parser.parse_args(argv))
    transformers = need_transformers("bench_t5")
    transformers.logging.set_verbosity_error()
    device = args.device
    c = QUICK if args.quick else FULL
    gen = torch.Generator().manual_seed(0)
    n_mm, matmul = matmul_probe(args, gen)
    # ids from 2 up: no padding (0) and no end-of-sequence (1) inside, so both libraries attend
    # to every position and count every target in the loss
    src = torch.randint(2, c["vocab"], (c["batch"], c["src"]), generator=gen).to(device)
    labels = torch.randint(2, c["vocab"], (c["batch"], c["tgt"]), generator=gen).to(device)
    rows = rows_by_name(
        args.attn,
        ("sdpa", "eager"),
        lambda attn: bench_attn(attn, src, labels, c, matmul, args),
        option="--attn",
        what="implementation",
    )
    shape = (
        f"{c['enc']}+{c['dec']} layers, d_model {c['d']}, {c['heads']} heads, d_ff {c['d_ff']} "
        f"(ReLU), vocab {c['vocab']}, batch {c['batch']}, {c['src']} source + {c['tgt']} target "
        "tokens"
    )
    write_results(
        "t5",
        f"T5 training step: coursekit T5 vs transformers T5ForConditionalGeneration ({device})",
        rows,
        notes=f"{shape}; transformers {transformers.__version__}, built offline from a T5Config "
        "(v1.0 recipe: tied, scaled output layer); same weights (t5_from_hf), same tokens, "
        "dropout 0.1, teacher forcing, cross-entropy, AdamW; median of "
        f"{args.rounds} alternated rounds; ratio < 1: coursekit is faster. MFU against a "
        f"{n_mm}x{n_mm} float32 matmul timed in the same rounds, model FLOPs counted per weight "
        f"matrix and attention (training = 3 x forward); peak memory of one step (CUDA: max_memory_allocated; CPU: torch.profiler); eval loss gap: "
        "|loss difference| with dropout off.",
        args=args,
    )


if __name__ == "__main__":
    main()
