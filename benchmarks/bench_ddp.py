"""Data-parallel training throughput on this machine: 1 process vs 2 (CPU, gloo).

Run: ``python benchmarks/bench_ddp.py [--quick] [--rounds 3]``.

``coursekit.distributed.measure_throughput`` launches ``torchrun`` with 1 and then 2 processes
(one torch thread each), trains a tiny GPT on random tokens with the same global batch, and
times the steps after warm-up on rank 0. Launches of 1 and 2 processes are alternated round by
round, and the median tokens per second is kept. Writes ``ddp.json``: per process count,
tokens/s, seconds per step, ratio = time per token / that of 1 process (< 1: faster), the
speed-up and the parallel efficiency (speed-up / processes). CPU only: the processes share this
machine's cores and memory bandwidth, and every step all-reduces the gradients through gloo.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_args, save_results, setup  # noqa: E402

from coursekit.distributed import measure_throughput  # noqa: E402

FULL = dict(steps=30, warmup_steps=5, global_batch_size=16, block_size=64, n_layers=2, d_model=64)
QUICK = dict(steps=6, warmup_steps=2, global_batch_size=4, block_size=16, n_layers=1, d_model=32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser, rounds=3, quick_rounds=1)
    parser.add_argument(
        "--nprocs", default="1,2", help="process counts (the first is the reference)"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per launch")
    args = setup(parser.parse_args(argv))
    if args.device != "cpu":
        raise SystemExit(
            "bench_ddp measures CPU data parallelism (gloo); run it with --device cpu."
        )
    sizes = QUICK if args.quick else FULL
    nprocs = [int(n) for n in args.nprocs.split(",")]
    samples: dict[int, list[float]] = {n: [] for n in nprocs}
    steps: dict[int, list[float]] = {n: [] for n in nprocs}
    for r in range(args.rounds):
        order = nprocs if r % 2 == 0 else nprocs[::-1]  # alternate which launch goes first
        results = measure_throughput(
            order,
            steps=sizes["steps"],
            warmup_steps=sizes["warmup_steps"],
            global_batch_size=sizes["global_batch_size"],
            block_size=sizes["block_size"],
            n_layers=sizes["n_layers"],
            d_model=sizes["d_model"],
            n_heads=4,
            timeout_s=args.timeout,
        )
        for result in results:
            samples[result.nproc].append(result.tokens_per_second)
            steps[result.nproc].append(result.seconds_per_step)
            print(result, flush=True)
    ref = statistics.median(samples[nprocs[0]])
    rows = []
    for n in nprocs:
        tps = statistics.median(samples[n])
        rows.append(
            {
                "processes": n,
                "tokens/s": tps,
                "s/step": statistics.median(steps[n]),
                "ratio": ref / tps,
                "speed-up": tps / ref,
                "efficiency": tps / ref / (n / nprocs[0]),
            }
        )
        print(rows[-1], flush=True)
    notes = (
        f"Tiny GPT ({sizes['n_layers']} layers, d_model {sizes['d_model']}), global batch "
        f"{sizes['global_batch_size']} x {sizes['block_size']} tokens, steps "
        f"{sizes['warmup_steps']}..{sizes['steps']} timed, 1 torch thread per process, gloo "
        f"all-reduce; median of {args.rounds} alternated launch rounds; this machine has "
        f"{os.cpu_count()} cores. ratio < 1: more processes are faster; efficiency 1 would be "
        "perfect scaling. A small model on a shared CPU pays for the all-reduce and for the "
        "cores the other processes use."
    )
    path = save_results(
        "ddp",
        "Data-parallel training throughput: 1 vs 2 processes (cpu, gloo)",
        rows,
        notes=notes,
        device="cpu",
        quick=args.quick,
    )
    print(notes)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
