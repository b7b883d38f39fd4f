"""Efficiency: int8 / 4-bit weight-only linear layers vs float32, LoRA vs full fine-tuning.

Run: ``python benchmarks/bench_efficiency.py [--device cuda] [--quick] [--threads 1]``.

* ``efficiency_quantized.json``: a float32 ``nn.Linear`` (no bias) of each ``--sizes`` weight
  (default 1024 x 1024 and 4096 x 4096) against ``coursekit.efficient.Int8Linear`` (one scale
  per output row) and ``Int4Linear`` (one scale per 64 input columns, two values per byte) made
  from it with ``from_linear``: milliseconds per forward of a batch of 16 tokens (no gradients),
  the weight's bytes (quantized values and their scales, ``model_size_bytes``), bits per weight
  and the relative error of the output. Ratios are against the float32 layer.
* ``efficiency_lora.json``: a training step (forward, loss, backward, AdamW step) of
  ``coursekit.models.GPT`` at nanoGPT's CPU size (4 layers, 4 heads, width 128, context 64,
  batch 12, vocabulary 65): every weight trained (full fine-tuning) against LoRA (``apply_lora``,
  rank 8 on the attention projections ``qkv_proj`` and ``out_proj``, everything else frozen),
  from the same weights and on the same tokens: time per step, trainable parameters, AdamW's
  state (two moments per trained value) and the peak memory of one step.

All calls of one table are alternated round by round (medians). One torch thread unless
``--threads`` says otherwise (``--threads 0``: torch's default), as the GPT benchmark.
"""

from __future__ import annotations

import argparse
import copy
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import alternate, bench_parser, gpt_config, peak_memory_bytes, setup, write_results  # noqa: E402

from coursekit.efficient import (  # noqa: E402
    Int4Linear,
    Int8Linear,
    apply_lora,
    lora_parameter_count,
    model_size_bytes,
)
from coursekit.models.gpt import GPT  # noqa: E402

FULL = dict(
    sizes="1024x1024,4096x4096", tokens=16, group=64,
    vocab=65, layers=4, heads=4, d=128, block=64, batch=12, rank=8,
)  # fmt: skip
QUICK = dict(
    sizes="128x128,256x256", tokens=4, group=64,
    vocab=65, layers=2, heads=2, d=32, block=16, batch=4, rank=4,
)  # fmt: skip
LORA_TARGETS = ("qkv_proj", "out_proj")


def _sizes(text: str) -> list[tuple[int, int]]:
    """``"OUTxIN,OUTxIN"`` -> [(out, in), ...]."""
    sizes = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        try:
            n_out, n_in = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise SystemExit(f"--sizes: {part!r} is not OUTxIN (e.g. 1024x1024)") from None
        sizes.append((n_out, n_in))
    return sizes


# --------------------------------------------------------------------------------------------
# (a) quantized linear layers
# --------------------------------------------------------------------------------------------
def bench_quantized(c: dict, args: argparse.Namespace) -> list[dict[str, object]]:
    device = args.device
    gen = torch.Generator().manual_seed(0)
    rows: list[dict[str, object]] = []
    for n_out, n_in in _sizes(args.sizes or str(c["sizes"])):
        if n_in % c["group"]:
            raise SystemExit(f"--sizes: in_features {n_in} is not a multiple of {c['group']}")
        torch.manual_seed(0)
        dense = nn.Linear(n_in, n_out, bias=False).to(device)
        layers: dict[str, nn.Module] = {
            "float32 nn.Linear": dense,
            "int8 Int8Linear": Int8Linear.from_linear(dense),
            f"4-bit Int4Linear (group {c['group']})": Int4Linear.from_linear(
                dense, group_size=c["group"]
            ),
        }
        x = torch.randn(c["tokens"], n_in, generator=gen).to(device)
        fns: dict[str, Callable[[], object]] = {
            name: functools.partial(layer, x) for name, layer in layers.items()
        }
        with torch.no_grad():
            exact = dense(x)
            errors = {
                name: float((layer(x) - exact).norm() / exact.norm())
                for name, layer in layers.items()
            }
            times = alternate(fns, args.rounds, warmup=2, device=device)
        base_time, base_bytes = times["float32 nn.Linear"], model_size_bytes(dense)
        for name, layer in layers.items():
            size = model_size_bytes(layer)
            rows.append(
                {
                    "weight (out x in)": f"{n_out} x {n_in}",
                    "layer": name,
                    "ms per forward": 1e3 * times[name],
                    "ratio time": times[name] / base_time,
                    "weight bytes": size,
                    "ratio bytes": size / base_bytes,
                    "bits per weight": 8 * size / (n_out * n_in),
                    "output rel. error": errors[name],
                }
            )
            print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------------------------
# (b) LoRA vs full fine-tuning
# --------------------------------------------------------------------------------------------
def _optimizer_state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's state (AdamW: two moments and a step count per
    trained tensor)."""
    return sum(
        v.numel() * v.element_size()
        for state in opt.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor)
    )


def bench_lora(c: dict, args: argparse.Namespace) -> list[dict[str, object]]:
    device = args.device
    torch.manual_seed(0)
    full = GPT(gpt_config(c)).to(device).train()
    lora = apply_lora(copy.deepcopy(full), list(LORA_TARGETS), rank=c["rank"]).train()
    assert isinstance(lora, GPT)
    gen = torch.Generator().manual_seed(0)
    x, y = (
        torch.randint(0, c["vocab"], (c["batch"], c["block"]), generator=gen).to(device)
        for _ in range(2)
    )
    models = {"full fine-tuning": full, f"LoRA rank {c['rank']}": lora}
    optimizers = {
        name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        for name, m in models.items()
    }
    with torch.no_grad():
        gap = float((full.loss(x, y) - lora.loss(x, y)).abs())  # B = 0: the same function

    def step_of(model: GPT, opt: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            opt.zero_grad(set_to_none=True)
            model.loss(x, y).backward()
            opt.step()

        return step

    steps = {name: step_of(m, optimizers[name]) for name, m in models.items()}
    times = alternate(steps, args.rounds, warmup=2, device=device)  # warm-up fills the states
    peaks = {name: peak_memory_bytes(step, device) for name, step in steps.items()}
    counts = {name: lora_parameter_count(m) for name, m in models.items()}
    states = {name: _optimizer_state_bytes(opt) for name, opt in optimizers.items()}
    base = "full fine-tuning"
    rows: list[dict[str, object]] = []
    for name in models:
        rows.append(
            {
                "method": name,
                "trained layers": "all" if name == base else ", ".join(LORA_TARGETS),
                "trainable params": counts[name].trainable,
                "share trainable": counts[name].share,
                "ms per step": 1e3 * times[name],
                "ratio time": times[name] / times[base],
                "ratio trainable": counts[name].trainable / counts[base].trainable,
                "optimizer state bytes": states[name],
                "ratio optimizer state": states[name] / states[base],
                "peak MiB": peaks[name] / 2**20,
                "ratio peak": peaks[name] / max(peaks[base], 1),
                "initial loss gap": gap,
            }
        )
        print(rows[-1], flush=True)
    return rows


class Part(NamedTuple):
    """One table of the benchmark."""

    name: str  # of the results file
    title: str  # without the device
    bench: Callable[[dict, argparse.Namespace], list[dict[str, object]]]
    notes: str  # str.format'ed with the sizes, ``rounds`` and ``targets``


#: the parts, in the order they run
PARTS = {
    "quantized": Part(
        "efficiency_quantized",
        "Weight-only int8 and 4-bit linear layers vs float32 nn.Linear",
        bench_quantized,
        "coursekit.efficient Int8Linear (per-row scales) and Int4Linear (a scale per {group} "
        "input columns, two values per byte) made from the float32 layer (no bias); forward of "
        "{tokens} tokens, no gradients; median of {rounds} alternated rounds. 'ratio bytes' < 1: "
        "the point of quantization, the weight stored in a quarter (int8) or about a seventh "
        "(4 bits, scales included) of the memory. 'ratio time' > 1 is expected, above all on a "
        "CPU: the package dequantizes the whole weight to float in PyTorch at every forward and "
        "then runs the float matmul, so it does more work than the float layer (no fused "
        "low-bit kernel); the speed-up of real low-bit kernels comes from reading fewer bytes "
        "when the matmul is memory-bound (large weights, few tokens, mostly on GPUs). 'output "
        "rel. error': ||y_q - y|| / ||y||.",
    ),
    "lora": Part(
        "efficiency_lora",
        "LoRA vs full fine-tuning: GPT training step",
        bench_lora,
        "coursekit.models.GPT, {layers} layers, {heads} heads, width {d}, context {block}, "
        "batch {batch}, vocabulary {vocab}; LoRA (apply_lora, rank {rank}, alpha = rank) on "
        "{targets}, everything else frozen; torch.optim.AdamW over the trainable parameters; "
        "same weights and tokens; median of {rounds} alternated rounds. Ratios are against full "
        "fine-tuning (< 1: LoRA is faster or smaller). The optimizer state shrinks with the "
        "trainable parameters; the time much less: the backward pass still runs through every "
        "frozen layer to reach the adapters, and all LoRA skips is the frozen weights' "
        "gradients and their AdamW updates, while the adapters add two thin products per "
        "wrapped layer (at tiny sizes LoRA can even be slower). Peak memory of one step (CUDA: "
        "max_memory_allocated; CPU: torch.profiler).",
    ),
}


def main(argv: list[str] | None = None) -> None:
    # one thread, as bench_gpt's results: small models, steadier on one thread
    parser = bench_parser(__doc__, rounds=10, threads=1)
    parser.add_argument(
        "--sizes",
        default=None,
        help="weights OUTxIN[,OUTxIN] of the quantized layers (default 1024x1024,4096x4096)",
    )
    parser.add_argument(
        "--parts", default="quantized,lora", help="quantized, lora or both (default both)"
    )
    args = setup(parser.parse_args(argv))
    c = QUICK if args.quick else FULL
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"--parts: unknown part(s) {', '.join(sorted(unknown))} (quantized, lora)")
    for part, (name, title, bench, notes) in PARTS.items():
        if part in parts:
            write_results(
                name,
                f"{title} ({args.device})",
                bench(c, args),
                notes=notes.format(**c, rounds=args.rounds, targets=", ".join(LORA_TARGETS)),
                args=args,
            )


if __name__ == "__main__":
    main()
