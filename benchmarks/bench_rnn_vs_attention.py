"""Wall time of an RNN layer (time-step loop) vs one self-attention layer as the length grows.

Run: ``python benchmarks/bench_rnn_vs_attention.py [--device cuda] [--threads 1]``.
Writes ``benchmarks/results/rnn_vs_attention.json``: per sequence length, the forward time of
coursekit's RNN (a Python loop over steps), ``torch.nn.RNN`` (fused loop) and
``torch.nn.MultiheadAttention``, with ratios against the attention layer measured in the same run
and the fitted log-log slopes (time ∝ T^slope).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save_results  # noqa: E402

from coursekit.rnn import time_rnn_vs_attention  # noqa: E402
from coursekit.scaling import fit_loglog_slope  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--lengths", default="64,128,256,512,1024,2048")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [int(v) for v in args.lengths.split(",")]
    rows = time_rnn_vs_attention(lengths, repeats=args.repeats, device=args.device, progress=False)
    out = [
        {
            "seq_len": r.seq_len,
            "rnn_loop_ms": 1e3 * r.rnn_loop,
            "torch_rnn_ms": 1e3 * r.torch_rnn,
            "attention_ms": 1e3 * r.attention,
            "rnn_loop_over_attention": r.rnn_loop / r.attention,
            "torch_rnn_over_attention": r.torch_rnn / r.attention,
        }
        for r in rows
    ]
    upper = rows[len(rows) // 2 - 1 :]
    xs = [r.seq_len for r in upper]
    slopes = {
        name: fit_loglog_slope(xs, [getattr(r, name) for r in upper])
        for name in ("rnn_loop", "torch_rnn", "attention")
    }
    notes = (
        f"Device {args.device}, batch 8, d_model 128, 4 heads, forward only, best of "
        f"{args.repeats}. Log-log slopes over T >= {xs[0]}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items())
        + ". The RNN needs T dependent steps (slope ~1); attention does O(T^2 d) work in a few "
        "parallel products, so on a CPU its time eventually grows faster, while parallel hardware "
        "hides that up to long lengths."
    )
    path = save_results(
        "rnn_vs_attention", "RNN time loop vs one self-attention layer", out, notes=notes
    )
    print(notes)
    for row in out:
        print(row)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
