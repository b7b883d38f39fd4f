"""Command line: ``coursekit doctor | data | student | progress | bench``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (a KeyError's without the quotes)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def _doctor(_: argparse.Namespace) -> int:
    from coursekit import doctor

    print(doctor.environment_text())
    print("\nData sets:")
    for name, state in doctor.data_status_rows():
        print(f"  {name:<16} {state}")
    print("\nChecks:")
    problems = 0
    for finding in doctor.run_checks():
        mark = "ok " if finding.ok else "!! "
        print(f"  {mark}{finding.name}: {finding.message}")
        if not finding.ok:
            problems += 1
            print(f"      fix: {finding.fix or 'see ' + doctor.TROUBLESHOOTING}")
    print(
        f"\n{problems} problem(s) found; each is explained in {doctor.TROUBLESHOOTING}."
        if problems
        else "\nNo problems found."
    )
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
        except (DataError, KeyError, OSError) as exc:
            print(f"coursekit data fetch: {name}: {_one_line(exc)}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _student(args: argparse.Namespace) -> int:
    from coursekit.exercises.student import StudentVersionError, write_student_versions

    try:
        written = write_student_versions(Path(args.src), Path(args.dest))
    except (StudentVersionError, OSError) as exc:
        print(f"coursekit student: {_one_line(exc)}", file=sys.stderr)
        return 2
    for path, count in written:
        print(f"{path}: {count} solution(s) replaced")
    return 0


def _progress(args: argparse.Namespace) -> int:
    from coursekit.exercises import progress_catalogue
    from coursekit.progress import progress_table

    print(progress_table(progress_catalogue(), args.notebook))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from coursekit.files import checkout_root

    checkout = checkout_root()
    if checkout is None:
        print(
            "coursekit bench: the benchmarks are scripts in the course repository's benchmarks/ "
            "folder, and this coursekit is not installed from a checkout of it. Clone the "
            "course, install it with `pip install -e .` and run `coursekit bench` there.",
            file=sys.stderr,
        )
        return 2
    runner = checkout / "benchmarks" / "run_all.py"
    if not runner.is_file():
        print(f"coursekit bench: {runner} is missing from this checkout.", file=sys.stderr)
        return 2
    only = ",".join(n for n in [args.only, *args.names] if n)
    argv = ["--device", args.device]
    if args.quick:
        argv.append("--quick")
    if only:
        argv += ["--only", only]
    if args.results_dir:
        argv += ["--results-dir", str(Path(args.results_dir).expanduser().resolve())]
    if args.list:
        argv.append("--list")
    return subprocess.call([sys.executable, str(runner), *argv], cwd=checkout)


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
    student.add_argument(
        "dest", help="folder for the learner versions (not SRC, nor a folder inside it)"
    )
    student.set_defaults(func=_student)
    progress = sub.add_parser("progress", help="show your exercise and quiz progress")
    progress.add_argument("notebook", nargs="?", default=None)
    progress.set_defaults(func=_progress)
    bench = sub.add_parser(
        "bench",
        help="run the benchmarks and rebuild their tables (from a source checkout)",
        description="Run benchmarks/run_all.py: every benchmark (warm-up, alternated rounds, "
        "medians, the machine recorded), results as JSON under benchmarks/results/, then the "
        "README's and benchmarks/RESULTS.md's tables rebuilt.",
    )
    bench.add_argument("names", nargs="*", help="benchmarks to run (same as --only)")
    bench.add_argument("--only", default=None, help="NAME[,NAME]: only these benchmarks")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, into a temporary folder")
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    bench.add_argument("--results-dir", default=None, help="folder for the JSON results")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"coursekit {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
