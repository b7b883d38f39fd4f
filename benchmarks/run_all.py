"""Run every benchmark, then rebuild the tables (README section and benchmarks/RESULTS.md).

    python benchmarks/run_all.py                         # everything, full sizes, CPU
    python benchmarks/run_all.py --device cuda           # the GPU path: results/<name>_cuda.json
    python benchmarks/run_all.py --quick                 # tiny sizes, into a temporary folder
    python benchmarks/run_all.py --only attention,bert   # some of them
    python benchmarks/run_all.py --list

``coursekit bench`` runs this script with the same options. Each benchmark is a script of this
folder run with the current Python in its own process (warm-up, alternated rounds, medians and
the machine record are the scripts' business, through ``common.py``); a failing one is reported
and the others still run. Results go to ``benchmarks/results/`` (``--results-dir`` or
``$COURSEKIT_BENCH_RESULTS`` for another folder; ``--quick`` alone writes to a temporary folder,
so test-sized numbers never replace the committed ones). The README and RESULTS.md are rebuilt
only from ``benchmarks/results/``; another folder gets its own RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "results"
RESULTS_ENV = "COURSEKIT_BENCH_RESULTS"  # as in common.py (this script does not import torch)


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    what: str
    #: devices it measures; others are skipped with a message
    devices: tuple[str, ...] = ("cpu", "cuda")
    #: (flag, value) pairs of a quick run for a script without ``--quick``; a flag the script
    #: does not know is left out
    quick_fallback: tuple[tuple[str, str], ...] | None = None
    #: arguments always passed
    args: tuple[str, ...] = field(default=())
    #: True: the script may not exist yet (skipped with a message)
    optional: bool = False


BENCHMARKS = [
    Benchmark("attention", "bench_attention.py", "attention time and memory vs torch SDPA"),
    Benchmark("rnn_vs_attention", "bench_rnn_vs_attention.py", "RNN loop vs self-attention"),
    Benchmark(
        "core",
        "bench_core.py",
        "encoder-decoder training step vs nn.Transformer, causal MHA vs nn.MultiheadAttention",
        quick_fallback=(("--rounds", "2"), ("--lengths", "64,128")),
    ),
    Benchmark("bert", "bench_bert.py", "BERT training step vs transformers, MFU"),
    Benchmark(
        "gpt",
        "bench_gpt.py",
        "GPT training step, training run, MFU and generation vs transformers",
        quick_fallback=(("--rounds", "2"), ("--train-steps", "0"), ("--gen-tokens", "16")),
        optional=True,
    ),
    Benchmark("generation", "bench_generation.py", "KV cache, MHA/GQA/MQA, vs transformers"),
    Benchmark("t5", "bench_t5.py", "T5 training step vs transformers, MFU"),
    Benchmark(
        "efficiency",
        "bench_efficiency.py",
        "int8/4-bit linear vs float32 (time, bytes), LoRA vs full fine-tuning step",
    ),
    Benchmark("tokenizers", "bench_tokenizers.py", "BPE vs the tokenizers library", ("cpu",)),
    Benchmark("ddp", "bench_ddp.py", "data-parallel throughput, 1 vs 2 processes", ("cpu",)),
]
NAMES = [b.name for b in BENCHMARKS]


@dataclass
class Outcome:
    name: str
    status: str  # ok, failed, skipped
    detail: str = ""
    seconds: float = 0.0


def _accepts(source: str, flag: str) -> bool:
    """Whether a script's argparse knows ``flag``, read from its source (no import, no torch):
    the flag itself, or ``common.add_common_args`` (--device, --quick, --rounds, ...), which
    ``common.bench_parser`` calls."""
    if f'"{flag}"' in source or f"'{flag}'" in source:
        return True
    return "add_common_args(" in source or "bench_parser(" in source


def command_for(bench: Benchmark, *, quick: bool, device: str) -> list[str] | str:
    """The command line of one benchmark, or the reason it is skipped."""
    script = HERE / bench.script
    if not script.is_file():
        return f"{bench.script} does not exist (yet)" if bench.optional else f"{script} is missing"
    source = script.read_text(encoding="utf-8")
    cmd = [sys.executable, str(script), *bench.args]
    if device not in bench.devices:
        return f"measures {'/'.join(bench.devices)} only"
    if device != "cpu":
        if not _accepts(source, "--device"):
            return f"{bench.script} has no --device option (CPU only)"
        cmd += ["--device", device]
    if quick:
        if _accepts(source, "--quick"):
            cmd.append("--quick")
        elif bench.quick_fallback is not None:
            for flag, value in bench.quick_fallback:
                if _accepts(source, flag):
                    cmd += [flag, value]
        else:
            return f"{bench.script} has no --quick option"
    return cmd


def _selected(only: str | None) -> list[Benchmark]:
    if not only:
        return BENCHMARKS
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in NAMES]
    if unknown:
        raise SystemExit(
            f"run_all: unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}."
        )
    return [b for b in BENCHMARKS if b.name in wanted]


def _cuda_available() -> bool:
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests, smoke checks)")
    parser.add_argument("--only", default=None, help=f"NAME[,NAME]: some of {', '.join(NAMES)}")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--results-dir",
        default=None,
        help=f"folder for the JSON results (default ${RESULTS_ENV} or benchmarks/results; "
        "--quick: a temporary folder)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not rebuild the tables")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds allowed to each benchmark"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser.parse_args(argv)


def results_folder(args: argparse.Namespace) -> Path:
    if args.results_dir:
        return Path(args.results_dir).expanduser().resolve()
    env = os.environ.get(RESULTS_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    if args.quick:
        import tempfile

        return Path(tempfile.gettempdir()) / "coursekit-bench-quick"
    return DEFAULT_RESULTS


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = _selected(args.only)
    if args.list:
        for b in BENCHMARKS:
            present = "" if (HERE / b.script).is_file() else "  (not there yet)"
            print(f"{b.name:<18} {b.script:<28} {b.what} [{'/'.join(b.devices)}]{present}")
        return 0
    if args.device == "cuda" and not _cuda_available():
        print(
            "run_all: --device cuda asked for, but PyTorch sees no CUDA device here.",
            file=sys.stderr,
        )
        return 2
    folder = results_folder(args)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, RESULTS_ENV: str(folder)}
    print(f"results: {folder}", flush=True)
    outcomes: list[Outcome] = []
    for bench in selected:
        cmd = command_for(bench, quick=args.quick, device=args.device)
        if isinstance(cmd, str):
            print(f"== {bench.name}: skipped: {cmd}", flush=True)
            outcomes.append(Outcome(bench.name, "skipped", cmd))
            continue
        print(f"== {bench.name}: {' '.join([Path(cmd[1]).name, *cmd[2:]])}", flush=True)
        start = time.perf_counter()
        try:
            code = subprocess.run(cmd, env=env, cwd=HERE.parent, timeout=args.timeout).returncode
            detail = "" if code == 0 else f"exit status {code}"
        except subprocess.TimeoutExpired:
            code, detail = -1, f"timed out after {args.timeout:.0f} s"
        elapsed = time.perf_counter() - start
        outcomes.append(Outcome(bench.name, "ok" if code == 0 else "failed", detail, elapsed))

    print("\nSummary:")
    for o in outcomes:
        took = f"{o.seconds:6.1f} s" if o.status != "skipped" else " " * 8
        print(f"  {o.name:<18} {o.status:<8} {took}  {o.detail}")
    failed = [o for o in outcomes if o.status == "failed"]
    if not args.no_report:
        sys.path.insert(0, str(HERE))
        import report

        report.main(["--results-dir", str(folder)])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
