"""Command line: ``coursekit doctor | data | student | progress | bench | hosted | site``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
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
    """Run benchmarks/run_all.py: every benchmark (warm-up, alternated rounds, medians, the
    machine recorded), results as JSON under benchmarks/results/, then the README's and
    benchmarks/RESULTS.md's tables rebuilt."""
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


def _hosted(args: argparse.Namespace) -> int:
    """Insert or update the first cell of each notebook: the set-up cell that installs the
    course package on a hosted service (Colab, Kaggle) and does nothing where coursekit is
    installed; and write the 'Open in Colab' column of the README's course map. Both come from
    the repository URL in coursekit/hosted.py. Running it twice changes nothing."""
    from coursekit import hosted
    from coursekit.files import checkout_root
    from coursekit.site import course_notebooks

    notebooks = [Path(p) for p in args.notebooks]
    readme = Path(args.readme) if args.readme else None
    if not notebooks:
        root = checkout_root()
        if root is None:
            print(
                "coursekit hosted: name the notebooks (this coursekit is not installed from a "
                "checkout of the course, so there is no notebooks/ folder to default to).",
                file=sys.stderr,
            )
            return 2
        notebooks = course_notebooks(root)
        readme = readme or root / "README.md"
    updates = []
    try:
        updates += [hosted.update_notebook(path, check=args.check) for path in notebooks]
        if readme is not None:
            updates.append(hosted.update_readme(readme, check=args.check))
    except (OSError, ValueError) as exc:
        print(f"coursekit hosted: {_one_line(exc)}", file=sys.stderr)
        return 2
    stale = [u.path for u in updates if u.changed]
    for update in updates:
        state = "up to date" if not update.changed else "out of date" if args.check else "updated"
        print(f"{update.path}: {state}")
    if args.check and stale:
        print(f"{len(stale)} file(s) out of date: run `coursekit hosted`.", file=sys.stderr)
        return 1
    return 0


def _site(args: argparse.Namespace) -> int:
    """Build a static website of the course (Jupyter Book) from copies of the committed
    notebooks, with their stored outputs (nothing is executed), and docs/. Open
    OUT/_build/html/index.html."""
    from coursekit.files import checkout_root
    from coursekit.site import DEFAULT_OUT, SiteError, build_site

    root = Path(args.source) if args.source else checkout_root()
    if root is None:
        print(
            "coursekit site: the site is built from a checkout of the course repository; run it "
            "there (after `pip install -e .`), or give --source.",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out) if args.out else root / DEFAULT_OUT
    print(f"Building the site of {root} into {out} (notebooks are not executed) ...")
    try:
        built = build_site(root, out, verbose=args.verbose)
    except SiteError as exc:
        print(f"coursekit site: {exc}", file=sys.stderr)
        return 1
    for warning in built.warnings:
        print(warning)
    print(
        f"{len(built.pages)} pages in {built.seconds:.0f} s, {len(built.warnings)} warning(s): "
        f"open {built.html / 'index.html'}"
    )
    return 0


def _add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
) -> argparse.ArgumentParser:
    """``coursekit NAME``, which runs ``func(args)``: ``help`` in the list of commands, and
    ``func``'s docstring (if any) as the description of ``coursekit NAME --help``."""
    command = sub.add_parser(name, help=help, description=func.__doc__)
    command.set_defaults(func=func)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coursekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_command(sub, "doctor", _doctor, "report the environment and detect common problems")
    data = _add_command(sub, "data", _data, "list, check or fetch the course's data sets")
    data.add_argument("action", choices=["list", "status", "fetch"])
    data.add_argument("names", nargs="*", help="data sets to fetch (default: all)")
    student = _add_command(sub, "student", _student, "write learner versions of notebooks")
    student.add_argument("src", help="a notebook or a folder of notebooks")
    student.add_argument(
        "dest", help="folder for the learner versions (not SRC, nor a folder inside it)"
    )
    progress = _add_command(sub, "progress", _progress, "show your exercise and quiz progress")
    progress.add_argument("notebook", nargs="?", default=None)
    bench = _add_command(
        sub, "bench", _bench, "run the benchmarks and rebuild their tables (from a source checkout)"
    )
    bench.add_argument("names", nargs="*", help="benchmarks to run (same as --only)")
    bench.add_argument("--only", default=None, help="NAME[,NAME]: only these benchmarks")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, into a temporary folder")
    bench.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    bench.add_argument("--results-dir", default=None, help="folder for the JSON results")
    bench.add_argument("--list", action="store_true", help="list the benchmarks")
    hosted = _add_command(
        sub,
        "hosted",
        _hosted,
        "put the hosted set-up cell first in notebooks, and Colab links in the README",
    )
    hosted.add_argument(
        "notebooks", nargs="*", help="notebooks (default: every notebook, and the README)"
    )
    hosted.add_argument("--readme", default=None, help="the README whose course map gets links")
    hosted.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a file is out of date"
    )
    site = _add_command(
        sub, "site", _site, "build the course website from the executed notebooks (Jupyter Book)"
    )
    site.add_argument("--out", default=None, help="build folder (default: build/site)")
    site.add_argument("--source", default=None, help="the course repository (default: this one)")
    site.add_argument("--verbose", action="store_true", help="show Jupyter Book's output")
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
