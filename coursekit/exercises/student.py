"""Learner versions of the notebooks: solutions replaced by ``raise NotImplementedError``.

A solution sits between a line ``### BEGIN SOLUTION`` and a line ``### END SOLUTION`` (nbgrader
markup; surrounding whitespace is allowed, nothing else). A line that looks like a marker but is
not exactly one (``## BEGIN SOLUTION``, ``### Begin Solution``, ``#BEGIN SOLUTION``,
``### END SOLUTIONS``...) is an error naming the notebook, cell and line: a typo must never leave a
solution in the learner version. The replacement takes the indentation of the solution it
replaces, so a solution inside a ``def`` leaves a valid stub; a cell that compiled before and
would not compile after is an error too.

:func:`write_student_versions` never touches the solutions: a destination that is the source
folder, lies inside it, or would overwrite a source notebook (paths resolved, symlinks included)
is refused. All learner versions are built in memory first and then written atomically; if a
write fails, the files written in that run are removed again (or restored to what they were).
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import warnings
from pathlib import Path

import nbformat

from coursekit.files import atomic_write_bytes, atomic_write_text

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "raise NotImplementedError  # your code here"
_BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*$")
_END_LINE = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
#: a comment that mentions beginning or ending a solution: a marker, or a near miss of one.
_MARKER_LIKE = re.compile(r"#+[ \t]*(?:begin|end)[ \t_-]*solutions?\b", re.IGNORECASE)
_INDENT = re.compile(r"^[ \t]*")


class StudentVersionError(ValueError):
    """A learner version cannot be made or written; the message says which file and why."""


class SolutionMarkerError(StudentVersionError):
    """A solution marker is unbalanced, misspelt, or misplaced (the message names the line)."""


def _compiles(source: str) -> bool:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for invalid escapes
            compile(source, "<cell>", "exec", flags=flags)
    except (SyntaxError, ValueError):
        return False
    return True


def _stub_indent(marker_indent: str, region: list[str]) -> str:
    """The stub's indentation: that of the solution's first code line, else the marker's."""
    for line in region:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            indent = _INDENT.match(line)
            return indent.group(0) if indent else marker_indent
    return marker_indent


def strip_solutions(source: str, *, where: str = "cell") -> tuple[str, int]:
    """Replace each solution region of ``source``; return (new source, regions replaced).

    Raises :class:`SolutionMarkerError` (naming ``where`` and the line) for an unbalanced or
    misspelt marker, or when the stub would not compile although the cell did.
    """
    out: list[str] = []
    region: list[str] = []
    begin_line = 0
    marker_indent = ""
    inside = False
    replaced = 0
    for number, line in enumerate(source.splitlines(), start=1):
        begin = _BEGIN_LINE.match(line)
        if begin:
            if inside:
                raise SolutionMarkerError(
                    f"{where}, line {number}: nested '{BEGIN}' (the one on line {begin_line} "
                    f"is not closed by '{END}')."
                )
            inside, begin_line, marker_indent, region = True, number, begin.group("indent"), []
            replaced += 1
            continue
        if _END_LINE.match(line):
            if not inside:
                raise SolutionMarkerError(f"{where}, line {number}: '{END}' without '{BEGIN}'.")
            out.append(f"{_stub_indent(marker_indent, region)}{STUB}")
            inside = False
            continue
        if _MARKER_LIKE.search(line):
            raise SolutionMarkerError(
                f"{where}, line {number}: {line.strip()!r} looks like a solution marker but is "
                f"not one; write exactly '{BEGIN}' or '{END}' on a line of its own (or reword the "
                "comment), so that no solution is left in the learner version."
            )
        if inside:
            region.append(line)
        else:
            out.append(line)
    if inside:
        raise SolutionMarkerError(
            f"{where}, line {begin_line}: '{BEGIN}' is never closed by '{END}'."
        )
    result = "\n".join(out)
    if replaced and _compiles(source) and not _compiles(result):
        raise SolutionMarkerError(
            f"{where}: the learner version of this cell would not compile (check the "
            "indentation of its solution markers, which must sit where a statement can)."
        )
    return result, replaced


def make_student_notebook(
    nb: nbformat.NotebookNode, *, name: str = "notebook"
) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``nb`` with solutions stripped and all outputs cleared; also the count replaced.

    Solution markers only work in code cells: one in a Markdown or raw cell is an error.
    """
    student = nbformat.from_dict(nb)
    total = 0
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            for number, line in enumerate(str(cell.get("source", "")).splitlines(), start=1):
                if _MARKER_LIKE.search(line):
                    raise SolutionMarkerError(
                        f"{name} cell {index}, line {number}: a solution marker in a "
                        f"{cell.cell_type} cell ({line.strip()!r}); solutions are stripped from "
                        "code cells only."
                    )
            continue
        cell.source, replaced = strip_solutions(cell.source, where=f"{name} cell {index}")
        total += replaced
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    student.metadata.pop("widgets", None)
    return student, total


# --------------------------------------------------------------------------------------------
# writing learner versions next to, never over, the solutions


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def _sources(src: Path) -> list[Path]:
    if src.is_dir():
        sources = sorted(p for p in src.glob("*.ipynb") if p.is_file())
        if not sources:
            raise StudentVersionError(f"No .ipynb files in {src}.")
        return sources
    if src.suffix == ".ipynb" and src.is_file():
        return [src]
    if not src.exists():
        raise StudentVersionError(f"{src} does not exist.")
    raise StudentVersionError(f"{src} is neither a notebook (.ipynb) nor a folder of notebooks.")


def _check_destination(src: Path, dest: Path, sources: list[Path]) -> None:
    """Refuse a destination from which a learner version could replace a solution notebook."""
    if dest.exists() and not dest.is_dir():
        raise StudentVersionError(
            f"DEST {dest} is a file; give a folder for the learner versions (e.g. student/)."
        )
    real_dest = dest.resolve()
    if src.is_dir():
        real_src = src.resolve()
        if _inside(real_dest, real_src) or _same_file(dest, src):
            what = (
                "is the source folder" if real_dest == real_src else "is inside the source folder"
            )
            raise StudentVersionError(
                f"refusing to write learner versions to {dest}: it {what} {src}, so they would "
                "overwrite or mix with the solution notebooks. Give a folder outside it, "
                "e.g. student/."
            )
    for source in sources:
        target = dest / source.name
        if target.resolve() == source.resolve() or _same_file(target, source):
            raise StudentVersionError(
                f"refusing to write {target}: it is the solution notebook {source} itself "
                "(same path, or a link to it). Give another folder for the learner versions, "
                "e.g. student/."
            )


def _read(path: Path) -> nbformat.NotebookNode:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nbformat.read(path, as_version=4)
    except Exception as exc:  # noqa: BLE001 - JSON, schema, encoding and file errors alike
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise StudentVersionError(f"{path} is not a valid notebook ({reason}).") from exc


def write_student_versions(src: Path, dest: Path) -> list[tuple[Path, int]]:
    """Write learner versions of ``src`` (a notebook or a folder of them) into folder ``dest``.

    Everything is checked and built before the first file is written; then each file is written
    atomically. If a write fails, the files this call wrote are removed (or restored to their
    previous content) and :class:`StudentVersionError` says what failed: all or nothing.
    """
    src, dest = Path(src), Path(dest)
    sources = _sources(src)
    _check_destination(src, dest, sources)
    built: list[tuple[Path, str, int]] = []
    for path in sources:
        student, count = make_student_notebook(_read(path), name=path.name)
        try:
            text = nbformat.writes(student)
        except Exception as exc:  # noqa: BLE001 - report which notebook could not be written
            raise StudentVersionError(f"{path}: its learner version is not valid ({exc}).") from exc
        built.append((dest / path.name, text if text.endswith("\n") else text + "\n", count))
    created_dest = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudentVersionError(
            f"cannot create the folder {dest} ({exc.strerror or exc}); nothing was written."
        ) from exc
    done: list[tuple[Path, bytes | None]] = []
    try:
        for target, text, _ in built:
            previous = target.read_bytes() if target.is_file() else None
            atomic_write_text(target, text)
            done.append((target, previous))
    except OSError as exc:
        for written, previous in reversed(done):
            with contextlib.suppress(OSError):
                if previous is None:
                    written.unlink()
                else:
                    atomic_write_bytes(written, previous)
        if created_dest:
            with contextlib.suppress(OSError):
                dest.rmdir()
        raise StudentVersionError(
            f"could not write the learner versions into {dest} ({exc.strerror or exc}); "
            "the files written before the failure were removed again, so nothing changed."
        ) from exc
    return [(target, count) for target, _, count in built]
