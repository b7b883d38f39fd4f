"""The learner version of every notebook is consistent: its only errors are NotImplementedError
raised in exercise cells, and every check cell reports the missing work instead of crashing."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from coursekit.exercises.student import make_student_notebook

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_learner_version_runs_with_only_not_implemented_errors(path: Path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv("COURSEKIT_STRICT_CHECKS", raising=False)  # checks must fail softly here
    monkeypatch.setenv("COURSEKIT_PROFILE", os.environ.get("COURSEKIT_PROFILE", "smoke"))
    student, replaced = make_student_notebook(nbformat.read(path, as_version=4), name=path.name)
    client = NotebookClient(
        student,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    problems = []
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        is_solution_cell = cell.metadata.get("nbgrader", {}).get("solution", False)
        for output in cell.outputs:
            if output.output_type != "error":
                continue
            if output.ename != "NotImplementedError" or not is_solution_cell:
                problems.append(f"cell {index}: {output.ename}: {output.evalue}")
    assert not problems, f"{path.name} learner version: unexpected errors: {problems}"
    checks = [
        c
        for c in student.cells
        if c.cell_type == "code"
        and "check(" in c.source
        and "nbgrader" in c.metadata
        and not c.metadata["nbgrader"].get("solution")
    ]
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "✗" in text, (
            f"{path.name}: a check cell did not report the missing solution: {cell.source!r}"
        )
    assert replaced == len(checks), (
        f"{path.name}: {replaced} solutions but {len(checks)} check cells"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_learner_version_builds_and_its_stubs_compile(path: Path):
    """Fast (nothing is executed): every marker is exact, and every stubbed cell still compiles."""
    student, replaced = make_student_notebook(nbformat.read(path, as_version=4), name=path.name)
    assert replaced > 0 or "00_" not in path.name
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code" or "raise NotImplementedError" not in cell.source:
            continue
        assert "SOLUTION" not in cell.source, f"{path.name} cell {index}: a marker was left in"
        if not any(line.lstrip().startswith(("%", "!")) for line in cell.source.splitlines()):
            compile(cell.source, f"{path.name} cell {index}", "exec")
