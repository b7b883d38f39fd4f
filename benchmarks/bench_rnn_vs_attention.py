"""Wall time of an RNN layer (time-step loop) vs one self-attention layer as the length grows.

Run: ``python benchmarks/bench_rnn_vs_attention.py [--device cuda] [--quick] [--threads 1]``.
Writes ``rnn_vs_attention.json``: per sequence length, the forward time (no autograd) of
coursekit's ``RNN`` (a Python loop over steps), ``torch.nn.RNN`` (the same recurrence, fused)
and ``torch.nn.MultiheadAttention`` (batch 8, d_model 128, 4 heads), the three calls alternated
round by round (median), with ratios against the attention layer and the fitted log-log slopes
(time ~ T^slope).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_args, alternate, save_results, setup  # noqa: E402

from coursekit.rnn import RNN  # noqa: E402
from coursekit.scaling import fit_loglog_slope  # noqa: E402

BATCH, D_MODEL, HEADS = 8, 128, 4


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, rounds=7)
    parser.add_argument("--lengths", default=None, help="default 64..2048 (quick: 32,64)")
    args = setup(parser.parse_args(argv))
    device = args.device
    if args.lengths:
        lengths = [int(v) for v in args.lengths.split(",")]
    else:
        lengths = [32, 64] if args.quick else [64, 128, 256, 512, 1024, 2048]
    scratch = RNN(D_MODEL, D_MODEL).to(device)
    fused = nn.RNN(D_MODEL, D_MODEL, batch_first=True).to(device)
    attn = nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True).to(device)
    out = []
    with torch.no_grad():
        for t in lengths:
            x = torch.randn(BATCH, t, D_MODEL, device=device)
            times = alternate(
                {
                    "rnn_loop": lambda x=x: scratch(x),
                    "torch_rnn": lambda x=x: fused(x),
                    "attention": lambda x=x: attn(x, x, x, need_weights=False),
                },
                args.rounds,
                warmup=1,
                device=device,
            )
            out.append(
                {
                    "T": t,
                    "rnn loop ms": 1e3 * times["rnn_loop"],
                    "torch RNN ms": 1e3 * times["torch_rnn"],
                    "attention ms": 1e3 * times["attention"],
                    "ratio rnn loop/attention": times["rnn_loop"] / times["attention"],
                    "ratio torch RNN/attention": times["torch_rnn"] / times["attention"],
                }
            )
            print(out[-1], flush=True)
    upper = out[max(len(out) // 2 - 1, 0) :]
    xs = [r["T"] for r in upper]
    slopes = (
        {
            name: fit_loglog_slope(xs, [r[f"{name} ms"] for r in upper])
            for name in ("rnn loop", "torch RNN", "attention")
        }
        if len(xs) > 1
        else {}
    )
    notes = (
        f"Device {device}, batch {BATCH}, d_model {D_MODEL}, {HEADS} heads, forward only, median "
        f"of {args.rounds} alternated rounds. Log-log slopes over T >= {xs[0]}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items())
        + ". The RNN needs T dependent steps (slope ~1); attention does O(T^2 d) work in a few "
        "parallel products, so on a CPU its time eventually grows faster, while parallel hardware "
        "hides that up to long lengths."
    )
    path = save_results(
        "rnn_vs_attention",
        f"RNN time loop vs one self-attention layer ({device})",
        out,
        notes=notes,
        device=device,
        quick=args.quick,
    )
    print(notes)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
