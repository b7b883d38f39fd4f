"""Learner versions of the notebooks: solutions replaced by ``raise NotImplementedError``."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*$")


class SolutionMarkerError(ValueError):
    """A solution region is opened without being closed (or the reverse)."""


def strip_solutions(source: str, *, where: str = "cell") -> tuple[str, int]:
    """Replace each solution region of ``source``; return (new source, regions replaced)."""
    out: list[str] = []
    inside = False
    replaced = 0
    for line in source.splitlines():
        match = _BEGIN_LINE.match(line)
        if match:
            if inside:
                raise SolutionMarkerError(f"{where}: nested '{BEGIN}'.")
            inside = True
            replaced += 1
            out.append(f"{match.group('indent')}raise NotImplementedError  # your code here")
            continue
        if line.strip() == END:
            if not inside:
                raise SolutionMarkerError(f"{where}: '{END}' without '{BEGIN}'.")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise SolutionMarkerError(f"{where}: '{BEGIN}' is never closed by '{END}'.")
    return "\n".join(out), replaced


def make_student_notebook(
    nb: nbformat.NotebookNode, *, name: str = "notebook"
) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``nb`` with solutions stripped and all outputs cleared; also the count replaced."""
    student = nbformat.from_dict(nb)
    total = 0
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        cell.source, replaced = strip_solutions(cell.source, where=f"{name} cell {index}")
        total += replaced
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
    student.metadata.pop("widgets", None)
    return student, total


def write_student_versions(src: Path, dest: Path) -> list[tuple[Path, int]]:
    """Write learner versions of ``src`` (a notebook or a folder of them) into folder ``dest``."""
    src, dest = Path(src), Path(dest)
    if src.is_dir():
        sources = sorted(src.glob("*.ipynb"))
    elif src.suffix == ".ipynb" and src.is_file():
        sources = [src]
    else:
        raise FileNotFoundError(f"{src} is neither a notebook nor a folder of notebooks.")
    if not sources:
        raise FileNotFoundError(f"No .ipynb files in {src}.")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        student, count = make_student_notebook(nb, name=path.name)
        target = dest / path.name
        nbformat.write(student, target)
        written.append((target, count))
    return written
