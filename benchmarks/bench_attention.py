"""coursekit attention vs PyTorch's fused attention, and the tiled (flash) version's memory.

Run: ``python benchmarks/bench_attention.py [--device cuda] [--threads 1]``.
Writes ``benchmarks/results/attention.json``: per sequence length T (d = 64, 4 heads, batch 2),
the forward time of ``coursekit.attention.scaled_dot_product_attention`` (explicit, materialises
the T x T weights), ``coursekit.attention.flash_attention`` (tiled, online softmax) and
``torch.nn.functional.scaled_dot_product_attention`` (the reference), their ratios to the
reference measured in the same run, the largest difference from the reference, the size of the
score matrix the explicit version allocates and the fitted log-log slope of time vs T.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save_results, time_call  # noqa: E402

from coursekit.attention import flash_attention, scaled_dot_product_attention  # noqa: E402
from coursekit.scaling import fit_loglog_slope  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--lengths", default="128,256,512,1024,2048")
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [int(v) for v in args.lengths.split(",")]
    rows = []
    gen = torch.Generator().manual_seed(0)
    for t in lengths:
        q, k, v = (torch.randn(2, 4, t, 64, generator=gen).to(args.device) for _ in range(3))
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        mask = torch.ones(t, t, dtype=torch.bool, device=args.device).tril()
        ours = scaled_dot_product_attention(q, k, v, mask)
        tiled = flash_attention(q, k, v, causal=True, block_size=args.block_size)
        t_ref = time_call(
            lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            device=args.device,
            repeats=args.repeats,
            warmup=2,
            statistic="median",
        )
        t_ours = time_call(
            lambda q=q, k=k, v=v, mask=mask: scaled_dot_product_attention(q, k, v, mask),
            device=args.device,
            repeats=args.repeats,
            warmup=2,
            statistic="median",
        )
        t_tiled = time_call(
            lambda q=q, k=k, v=v: flash_attention(q, k, v, causal=True, block_size=args.block_size),
            device=args.device,
            repeats=args.repeats,
            warmup=2,
            statistic="median",
        )
        rows.append(
            {
                "seq_len": t,
                "torch_sdpa_ms": round(1e3 * t_ref, 3),
                "coursekit_ms": round(1e3 * t_ours, 3),
                "tiled_ms": round(1e3 * t_tiled, 3),
                "coursekit_over_torch": round(t_ours / t_ref, 2),
                "tiled_over_torch": round(t_tiled / t_ref, 2),
                "max_abs_diff": float(max((ours - ref).abs().max(), (tiled - ref).abs().max())),
                "score_matrix_MiB": round(2 * 4 * t * t * 4 / 2**20, 1),
                "tiled_block_MiB": round(2 * 4 * args.block_size**2 * 4 / 2**20, 2),
            }
        )
        print(rows[-1])
    slope = fit_loglog_slope(lengths, [r["coursekit_ms"] for r in rows])
    path = save_results(
        "attention",
        "Attention: coursekit explicit and tiled vs torch SDPA (causal, B=2, H=4, d=64)",
        rows,
        notes=f"time of coursekit's explicit attention grows as T^{slope:.2f} (quadratic: 2)",
    )
    print(f"slope {slope:.2f}; wrote {path}")


if __name__ == "__main__":
    main()
