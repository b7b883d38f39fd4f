"""Shared helpers for benchmark scripts: timing against a reference in the same run, peak
memory, the machine record, JSON results and the command line.

Every benchmark reports *ratios* (ours / reference; < 1 means coursekit is faster or smaller)
measured in one process on one machine, with the calls of the compared functions alternated
round by round and the median taken: far steadier than absolute seconds on a shared machine.

Results go to ``benchmarks/results/`` unless ``$COURSEKIT_BENCH_RESULTS`` (or a script's
``--results-dir``) names another folder; a ``--quick`` run without one writes to a temporary
folder, so quick (test-sized) numbers never replace the committed ones. CPU results are
``<name>.json``, CUDA results ``<name>_cuda.json`` beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from coursekit.files import atomic_write_text
from coursekit.timing import synchronize, time_call

__all__ = [
    "DEFAULT_RESULTS",
    "QUICK_RESULTS",
    "RESULTS",
    "RESULTS_ENV",
    "add_common_args",
    "alternate",
    "bench_parser",
    "cpu_model",
    "device_kind",
    "gpt_config",
    "machine",
    "need_transformers",
    "peak_memory_bytes",
    "results_dir",
    "result_path",
    "rows_by_name",
    "save_results",
    "setup",
    "synchronize",
    "time_call",
    "write_results",
]

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"
RESULTS = DEFAULT_RESULTS  # the committed results (kept for scripts that import it)
RESULTS_ENV = "COURSEKIT_BENCH_RESULTS"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "coursekit-bench-quick"


# --------------------------------------------------------------------------------------------
# where results go
# --------------------------------------------------------------------------------------------
def results_dir() -> Path:
    """``$COURSEKIT_BENCH_RESULTS`` if set, else ``benchmarks/results``."""
    value = os.environ.get(RESULTS_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else DEFAULT_RESULTS


def device_kind(device: torch.device | str | None) -> str:
    return torch.device(device).type if device is not None else "cpu"


def result_path(name: str, device: torch.device | str | None = "cpu") -> Path:
    """``<results>/<name>.json`` on the CPU, ``<results>/<name>_<kind>.json`` elsewhere."""
    kind = device_kind(device)
    return results_dir() / (f"{name}.json" if kind == "cpu" else f"{name}_{kind}.json")


# --------------------------------------------------------------------------------------------
# the machine record
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``, ``sysctl`` on macOS), else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                name = line.split(":", 1)[1].strip()
                if name:
                    return " ".join(name.split())
    except OSError:
        pass
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            if out:
                return out
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(device: torch.device | str | None = None) -> dict[str, Any]:
    """What the numbers were measured on: CPU model and cores, torch version and threads, the
    CUDA device's name (None without CUDA), and the device the benchmark ran on."""
    cuda = torch.cuda.is_available()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if cuda else None,
        "cuda_version": torch.version.cuda if cuda else None,
        "device": device_kind(device),
    }


def save_results(
    name: str,
    title: str,
    rows: list[dict[str, Any]],
    *,
    notes: str = "",
    device: torch.device | str | None = "cpu",
    quick: bool = False,
) -> Path:
    """Write ``<results>/<name>[_cuda].json`` atomically:
    {name, title, notes, device, quick, machine, rows}.

    Each row is a flat dict; the report shows every key as a column, in order. Columns whose
    name starts with ``ratio`` are ours / reference (< 1: coursekit is faster or smaller).
    """
    target = result_path(name, device)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "title": title,
        "notes": notes,
        "device": device_kind(device),
        "quick": quick,
        "machine": machine(device),
        "rows": rows,
    }
    atomic_write_text(target, json.dumps(payload, indent=1) + "\n")
    return target


def write_results(
    name: str, title: str, rows: list[dict[str, Any]], *, notes: str, args: argparse.Namespace
) -> Path:
    """:func:`save_results` on ``args.device``, quick or not as ``args.quick``; says where."""
    path = save_results(name, title, rows, notes=notes, device=args.device, quick=args.quick)
    print(f"wrote {path}")
    return path


# --------------------------------------------------------------------------------------------
# command line shared by the scripts
# --------------------------------------------------------------------------------------------
def add_common_args(
    parser: argparse.ArgumentParser, *, rounds: int = 7, quick_rounds: int = 2
) -> None:
    """``--device``, ``--quick``, ``--rounds`` (default ``rounds``, ``quick_rounds`` with
    ``--quick``), ``--threads``, ``--results-dir``."""
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests, smoke checks)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"timed alternated rounds (default {rounds}; quick: {quick_rounds})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; 1 in a --quick run)",
    )
    parser.add_argument(
        "--results-dir",
        default=None,
        help=f"folder for the JSON results (default ${RESULTS_ENV} or benchmarks/results; "
        f"a --quick run: {QUICK_RESULTS})",
    )
    parser.set_defaults(_default_rounds=rounds, _quick_rounds=quick_rounds)


def bench_parser(
    doc: str | None, *, rounds: int = 7, quick_rounds: int = 2, threads: int | None = None
) -> argparse.ArgumentParser:
    """A script's parser: the first paragraph of ``doc`` (its docstring) as the description, and
    :func:`add_common_args`; ``threads``, when given, is ``--threads``' default."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    add_common_args(parser, rounds=rounds, quick_rounds=quick_rounds)
    if threads is not None:
        parser.set_defaults(threads=threads)
    return parser


def rows_by_name(
    text: str,
    known: Sequence[str],
    bench: Callable[[str], dict[str, object]],
    *,
    option: str,
    what: str,
) -> list[dict[str, object]]:
    """``bench(name)`` for each name of the comma-separated ``text`` (the value of ``option``),
    each row printed as it comes; a name not in ``known`` (a ``what``) stops the script."""
    rows = []
    for name in [n.strip() for n in text.split(",") if n.strip()]:
        if name not in known:
            raise SystemExit(f"{option}: unknown {what} {name!r} ({', '.join(known)})")
        rows.append(bench(name))
        print(rows[-1], flush=True)
    return rows


def need_transformers(script: str) -> ModuleType:
    """``transformers``, or the script stops saying how to install it."""
    try:
        import transformers
    except ImportError:
        raise SystemExit(f"{script} needs transformers: pip install -e '.[lab]'") from None
    return transformers


def gpt_config(c: Mapping[str, int], **extra: Any) -> Any:
    """``coursekit.models.gpt.GPTConfig`` of a size dict (vocab, block, layers, heads, d)."""
    from coursekit.models.gpt import GPTConfig

    return GPTConfig(
        vocab_size=c["vocab"],
        block_size=c["block"],
        n_layers=c["layers"],
        n_heads=c["heads"],
        d_model=c["d"],
        **extra,
    )


def setup(args: argparse.Namespace) -> argparse.Namespace:
    """Apply the common options: threads, the results folder, the device check, the rounds."""
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.quick:  # tiny tensors: one thread is fastest and does not fight other processes
        torch.set_num_threads(1)
    if args.results_dir:
        os.environ[RESULTS_ENV] = str(Path(args.results_dir).expanduser().resolve())
    elif args.quick and not os.environ.get(RESULTS_ENV, "").strip():
        os.environ[RESULTS_ENV] = str(QUICK_RESULTS)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"{Path(sys.argv[0]).name}: --device cuda asked for, but torch {torch.__version__} "
            "sees no CUDA device (a CPU build of PyTorch, or no GPU on this machine)."
        )
    if args.rounds is None:
        args.rounds = args._quick_rounds if args.quick else args._default_rounds
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}.")
    torch.manual_seed(0)
    return args


# --------------------------------------------------------------------------------------------
# timing and memory
# --------------------------------------------------------------------------------------------
def alternate(
    fns: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    warmup: int = 2,
    device: torch.device | str | None = "cpu",
) -> dict[str, float]:
    """Median seconds per call of each function, the calls alternated round by round.

    ``warmup`` untimed rounds come first (allocation, kernel selection, caches). On CUDA each
    call is timed with CUDA events and waited for; elsewhere with ``time.perf_counter``.
    Alternating means a burst of load from another process hits every function alike.
    """
    if rounds < 1:
        raise ValueError(f"alternate needs rounds >= 1, got {rounds}.")
    cuda = device_kind(device) == "cuda"
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            if cuda:
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                fn()
                end.record()
                end.synchronize()
                samples[name].append(start.elapsed_time(end) / 1e3)
            else:
                synchronize(device)
                t0 = time.perf_counter()
                fn()
                synchronize(device)
                samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C++ profiler's start/stop lines (written straight to file descriptor 2)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            sys.stderr.flush()
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str | None = "cpu") -> int:
    """Peak bytes allocated by one call of ``fn()`` above what was allocated before it.

    CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak. CPU:
    ``torch.profiler`` with ``profile_memory=True`` records every allocation and free of
    PyTorch's CPU allocator (kernels' internal buffers included); the running sum of those
    events, in time order, gives the peak. Tensors still alive at the end (the output) count.
    """
    kind = device_kind(device)
    if kind == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        result = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del result
        return int(peak)
    if kind != "cpu":
        raise ValueError(f"peak memory is measured on cpu and cuda, not {kind}.")
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    del result
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return int(peak)
