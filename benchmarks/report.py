"""Rebuild the benchmark tables from ``results/*.json``: ``benchmarks/RESULTS.md`` and the README
section between ``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->``.

The tables are grouped by the device they were measured on (CPU results first, then GPU
results), each group headed by the hardware it ran on; every table also says its machine.

    python benchmarks/report.py                       # results/ -> README + RESULTS.md
    python benchmarks/report.py --results-dir DIR     # DIR/*.json -> DIR/RESULTS.md only
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
RESULTS_MD = HERE / "RESULTS.md"
DEFAULT_RESULTS = HERE / "results"
RESULTS_ENV = "COURSEKIT_BENCH_RESULTS"  # the same variable as common.py (no torch import here)
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
GROUPS = {"cpu": "CPU", "cuda": "GPU (CUDA)", "mps": "GPU (Apple MPS)"}


def _fmt(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def default_results_dir() -> Path:
    value = os.environ.get(RESULTS_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else DEFAULT_RESULTS


def _device_of(data: dict[str, Any], path: Path) -> str:
    """The device of a results file; files written before the device was recorded: from the
    name (``*_cuda.json``), else the CPU."""
    device = data.get("device") or (data.get("machine") or {}).get("device")
    if device:
        return str(device)
    return "cuda" if path.stem.endswith("_cuda") else "cpu"


def load_results(results_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every results file of ``results_dir``, each with ``device`` and ``path`` filled in."""
    folder = default_results_dir() if results_dir is None else Path(results_dir)
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "rows" not in data or "machine" not in data:
            continue  # not a benchmark result
        data["device"] = _device_of(data, path)
        data["path"] = path
        out.append(data)
    return out


def hardware(m: dict[str, Any], device: str) -> str:
    """One line naming the hardware of a machine record."""
    cpu = m.get("cpu_model") or m.get("processor") or "unknown CPU"
    threads = m.get("torch_threads")
    torch_part = f"torch {m.get('torch', '?')}" + (f" ({threads} threads)" if threads else "")
    if device == "cuda":
        cuda = m.get("cuda") or "unknown GPU"
        version = f", CUDA {m['cuda_version']}" if m.get("cuda_version") else ""
        return f"{cuda}{version}, host CPU {cpu} ({m.get('cpu_count', '?')} cores), {torch_part}"
    return f"{cpu}, {m.get('cpu_count', '?')} cores, {torch_part}, GPU: {m.get('cuda') or 'none'}"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    return columns


def _table(data: dict[str, Any], heading: str) -> list[str]:
    title = data["title"] + (" (quick sizes: not representative)" if data.get("quick") else "")
    parts = [
        f"{heading} {title}",
        "",
        f"Measured on: {hardware(data['machine'], data['device'])}.",
        "",
    ]
    if data.get("notes"):
        parts += [data["notes"], ""]
    rows = data["rows"]
    if rows:
        columns = _columns(rows)
        parts.append("| " + " | ".join(columns) + " |")
        parts.append("|" + "---|" * len(columns))
        parts += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
        parts.append("")
    return parts


def render_tables(heading: str = "###", results_dir: Path | None = None) -> str:
    """The markdown of every result, one section per device (``heading`` level), one table per
    results file (one level below), each with the machine it was measured on."""
    results = load_results(results_dir)
    if not results:
        return "(no results yet: run `coursekit bench`)\n"
    order = list(GROUPS) + sorted({r["device"] for r in results} - set(GROUPS))
    parts: list[str] = []
    for device in order:
        group = [r for r in results if r["device"] == device]
        if not group:
            continue
        machines = {hardware(r["machine"], device) for r in group}
        label = GROUPS.get(device, device.upper())
        title = f"{label}: {next(iter(machines))}" if len(machines) == 1 else label
        parts += [f"{heading} {title}", ""]
        for data in group:
            parts += _table(data, heading + "#")
    return "\n".join(parts)


def update_readme(tables: str, readme: Path = README) -> bool:
    """Replace the README's benchmark section; False if the markers are missing."""
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{tables}\n{END}{tail}", encoding="utf-8")
    return True


def write_results_md(path: Path, results_dir: Path | None = None) -> Path:
    """Write RESULTS.md: every table of ``results_dir`` (default: as :func:`load_results`)."""
    folder = default_results_dir() if results_dir is None else Path(results_dir).resolve()
    committed = folder == DEFAULT_RESULTS.resolve()
    source = "benchmarks/results/*.json" if committed else f"{folder}/*.json"
    header = (
        "# Benchmark results\n\n"
        f"Generated by `python benchmarks/report.py` from `{source}`.\n"
        "Ratios are coursekit / reference measured in the same run (< 1: coursekit is faster or "
        "smaller).\n\n"
    )
    path.write_text(header + render_tables("##", folder), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results-dir",
        default=None,
        help=f"folder of the JSON results (default ${RESULTS_ENV} or benchmarks/results)",
    )
    parser.add_argument(
        "--readme",
        default=None,
        help="README to update (default: the course README, only for the committed results)",
    )
    parser.add_argument(
        "--results-md",
        default=None,
        help="RESULTS.md to write (default: benchmarks/RESULTS.md for the committed results, "
        "else RESULTS.md inside the results folder)",
    )
    args = parser.parse_args(argv)
    folder = Path(args.results_dir).resolve() if args.results_dir else default_results_dir()
    committed = folder == DEFAULT_RESULTS.resolve()
    md = (
        Path(args.results_md)
        if args.results_md
        else (RESULTS_MD if committed else folder / "RESULTS.md")
    )
    write_results_md(md, folder)
    print(f"wrote {md}")
    readme = Path(args.readme) if args.readme else (README if committed else None)
    if readme is None:
        print("README left alone (results from another folder than benchmarks/results)")
    elif update_readme(render_tables("###", folder), readme):
        print(f"{readme} updated")
    else:
        print(f"{readme} has no benchmark markers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
