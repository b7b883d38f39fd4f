"""Every committed notebook is stored executed, in order, clean and small."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from coursekit.hosted import is_hosted_cell

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:work|root|tmp|home|Users|private/var)/[\w.-]+")
MAX_BYTES = 2_000_000


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    assert NOTEBOOKS[0].name == "00_welcome.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(path: Path):
    raw = path.read_text(encoding="utf-8")
    assert len(raw.encode()) < MAX_BYTES, f"{path.name} is {len(raw.encode()):,} bytes (limit 2 MB)"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    # the hosted set-up cell (coursekit/hosted.py) prints nothing in a normal install; it is
    # executed like every other cell
    hosted = [c for c in code if is_hosted_cell(c)]
    assert all(not c.outputs for c in hosted), f"{path.name}: the hosted set-up cell has outputs"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name} has error outputs: {[e.get('ename') for e in errors]}"
    unexecuted = [i for i, c in enumerate(code) if c.source.strip() and c.execution_count is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never executed"
    counts = [c.execution_count for c in code if c.execution_count is not None]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name} was not run top to bottom once"
    found = ABSOLUTE_PATH.search(raw)
    assert found is None, f"{path.name} contains an absolute path: {found.group(0)!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercise_cells_follow_the_convention(path: Path):
    """Solution cells carry nbgrader metadata and are followed by a check cell."""
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    grade_ids = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code" or "### BEGIN SOLUTION" not in cell.source:
            continue
        meta = cell.metadata.get("nbgrader", {})
        assert meta.get("solution") is True, (
            f"{path.name} cell {i}: solution cell lacks nbgrader metadata"
        )
        grade_ids.append(meta["grade_id"])
        following = next(c for c in cells[i + 1 :] if c.cell_type == "code")
        assert "check(" in following.source, (
            f"{path.name} cell {i}: no check cell after the solution"
        )
    assert len(grade_ids) == len(set(grade_ids)), f"{path.name}: duplicate nbgrader grade_ids"


#: notebook file name prefix -> why the newer checks below skip it for now (the lead empties it).
PENDING: dict[str, str] = {}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_stored_check_passed(path: Path):
    """The solution notebooks are stored with every exercise check passing.

    A learner version's placeholders are reported as "not done yet" without failing even in
    strict mode, so a placeholder left in a solution notebook would show here, as a check cell
    whose stored output is not a pass.
    """
    reason = next((why for prefix, why in PENDING.items() if path.name.startswith(prefix)), None)
    if reason:
        pytest.skip(f"PENDING: {reason}")
    nb = nbformat.read(path, as_version=4)
    not_passed = []
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("solution", True) or "check(" not in cell.source:
            continue
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        if "✓" not in printed or "passed" not in printed:
            not_passed.append(f"cell {index}: {printed.strip()[:120]!r}")
    assert not not_passed, f"{path.name}: check cells stored without a pass: {not_passed}"
