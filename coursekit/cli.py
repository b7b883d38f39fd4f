"""Command line: ``coursekit doctor | data | student | progress | bench``."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path


def _doctor(_: argparse.Namespace) -> int:
    from coursekit.data.download import status
    from coursekit.runtime import environment_report

    print(environment_report())
    print("\nData sets:")
    for name, state in status():
        print(f"  {name:<16} {state}")
    problems = 0
    if importlib.util.find_spec("coursekit.doctor") is not None:
        from coursekit.doctor import run_checks

        print("\nChecks:")
        for finding in run_checks():
            mark = "ok " if finding.ok else "!! "
            print(f"  {mark}{finding.name}: {finding.message}")
            if not finding.ok:
                problems += 1
                if finding.fix:
                    print(f"      fix: {finding.fix}")
    return 1 if problems else 0


def _data(args: argparse.Namespace) -> int:
    from coursekit.data.download import DataError, fetch, status
    from coursekit.data.registry import REGISTRY

    if args.action == "list":
        for name, ds in REGISTRY.items():
            print(f"{name:<16} {ds.size:>12,} B  {ds.url}\n{'':<16} license: {ds.license}")
        return 0
    if args.action == "status":
        for name, state in status():
            print(f"{name:<16} {state}")
        return 0
    names = args.names or list(REGISTRY)
    failed = 0
    for name in names:
        try:
            print(f"{name}: {fetch(name)}")
        except (DataError, KeyError) as exc:
            print(f"{name}: FAILED\n  {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _student(args: argparse.Namespace) -> int:
    from coursekit.exercises.student import SolutionMarkerError, write_student_versions

    try:
        written = write_student_versions(Path(args.src), Path(args.dest))
    except (FileNotFoundError, SolutionMarkerError) as exc:
        print(f"coursekit student: {exc}", file=sys.stderr)
        return 2
    for path, count in written:
        print(f"{path}: {count} solution(s) replaced")
    return 0


def _progress(args: argparse.Namespace) -> int:
    from coursekit.progress import progress_table

    print(progress_table(args.notebook))
    return 0


def _bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = sorted(root.glob("bench_*.py"))
    if args.name:
        scripts = [s for s in scripts if args.name in s.stem]
    if not scripts:
        print(f"No benchmark scripts found in {root}.", file=sys.stderr)
        return 2
    for script in scripts:
        print(f"== {script.name}")
        code = subprocess.call([sys.executable, str(script)])
        if code:
            return code
    return subprocess.call([sys.executable, str(root / "report.py")])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="report the environment and detect common problems").set_defaults(
        func=_doctor
    )
    data = sub.add_parser("data", help="list, check or fetch the course's data sets")
    data.add_argument("action", choices=["list", "status", "fetch"])
    data.add_argument("names", nargs="*", help="data sets to fetch (default: all)")
    data.set_defaults(func=_data)
    student = sub.add_parser("student", help="write learner versions of notebooks")
    student.add_argument("src", help="a notebook or a folder of notebooks")
    student.add_argument("dest", help="folder for the learner versions")
    student.set_defaults(func=_student)
    progress = sub.add_parser("progress", help="show your exercise and quiz progress")
    progress.add_argument("notebook", nargs="?", default=None)
    progress.set_defaults(func=_progress)
    bench = sub.add_parser("bench", help="run the benchmarks (from a source checkout)")
    bench.add_argument(
        "name", nargs="?", default=None, help="only scripts whose name contains this"
    )
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
