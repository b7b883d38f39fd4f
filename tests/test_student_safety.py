"""`coursekit student` never destroys solutions: refused destinations, all-or-nothing writes,
misspelt markers, valid stubs, and one-line errors. (What the stubs contain, and that learner
versions run to the end: tests/test_student_versions.py.)"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import pytest

from coursekit.cli import main
from coursekit.exercises import student
from coursekit.exercises.student import (
    SolutionMarkerError,
    StudentVersionError,
    make_student_notebook,
    strip_solutions,
    write_student_versions,
)

SOLVED = "answer = None\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\ncheck(answer)"


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# An exercise")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A folder of two solution notebooks."""
    folder = tmp_path / "notebooks"
    _notebook(folder / "01_one.ipynb", SOLVED)
    _notebook(folder / "02_two.ipynb", SOLVED.replace("42", "43"))
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["student", *args])
    err = capsys.readouterr().err.strip()
    return code, err


# -- destinations that would destroy solutions ------------------------------------------------


def test_dest_equal_to_src_is_refused(course, capsys):
    before = _snapshot(course)
    code, err = _cli(capsys, str(course), str(course))
    assert code == 2 and "source folder" in err and len(err.splitlines()) == 1
    assert _snapshot(course) == before


def test_one_notebook_into_its_own_folder_is_refused(course, capsys):
    before = _snapshot(course)
    code, err = _cli(capsys, str(course / "01_one.ipynb"), str(course))
    assert code == 2 and "01_one.ipynb" in err and "solution notebook" in err
    assert _snapshot(course) == before


def test_dest_inside_src_is_refused(course, capsys):
    code, err = _cli(capsys, str(course), str(course / "learner"))
    assert code == 2 and "inside the source folder" in err
    assert not (course / "learner").exists()


def test_dest_through_a_symlink_to_src_is_refused(course, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(course, target_is_directory=True)
    before = _snapshot(course)
    assert _cli(capsys, str(course), str(link))[0] == 2
    assert _cli(capsys, str(course / "01_one.ipynb"), str(link))[0] == 2
    assert _cli(capsys, str(link), str(course))[0] == 2
    assert _snapshot(course) == before


def test_dest_file_linked_to_a_source_notebook_is_refused(course, tmp_path):
    dest = tmp_path / "learner"
    dest.mkdir()
    (dest / "01_one.ipynb").symlink_to(course / "01_one.ipynb")
    before = _snapshot(course)
    with pytest.raises(StudentVersionError, match="solution notebook"):
        write_student_versions(course, dest)
    assert _snapshot(course) == before


def test_dest_that_is_a_file_is_one_line(course, tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("keep me")
    code, err = _cli(capsys, str(course), str(target))
    assert code == 2 and "is a file" in err and len(err.splitlines()) == 1
    assert target.read_text() == "keep me"


def test_invalid_notebook_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{oops")
    code, err = _cli(capsys, str(bad), str(tmp_path / "out"))
    assert code == 2 and "bad.ipynb is not a valid notebook" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_good_run_still_works(course, tmp_path, capsys):
    assert main(["student", str(course), str(tmp_path / "learner")]) == 0
    out = capsys.readouterr().out
    assert "01_one.ipynb: 1 solution(s) replaced" in out
    learner = nbformat.read(tmp_path / "learner" / "02_two.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in learner.cells)  # not the file: cell ids are random
    assert "43" not in text and "answer = NotDone()" in text


# -- all or nothing ----------------------------------------------------------------------------


def test_a_bad_later_notebook_writes_nothing(course, tmp_path):
    _notebook(course / "03_bad.ipynb", "### BEGIN SOLUTION\nx = 1\n")  # never closed
    dest = tmp_path / "learner"
    with pytest.raises(SolutionMarkerError, match="03_bad.ipynb cell 1, line 1"):
        write_student_versions(course, dest)
    assert not dest.exists() or not any(dest.iterdir())


def test_a_failed_write_removes_this_runs_files(course, tmp_path, monkeypatch):
    dest = tmp_path / "learner"
    dest.mkdir()
    (dest / "01_one.ipynb").write_text("an older learner version")
    real = student.atomic_write_text
    calls = []

    def failing(path, text, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, text, **kwargs)

    monkeypatch.setattr(student, "atomic_write_text", failing)
    with pytest.raises(StudentVersionError, match="No space left on device"):
        write_student_versions(course, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["01_one.ipynb"]
    assert (dest / "01_one.ipynb").read_text() == "an older learner version"


# -- markers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "marker",
    [
        "## BEGIN SOLUTION",
        "### Begin Solution",
        "#BEGIN SOLUTION",
        "###BEGIN SOLUTION",
        "### BEGIN  SOLUTION",
        "### BEGIN_SOLUTION",
        "### begin solution",
        "#### BEGIN SOLUTION",
        "### BEGIN SOLUTION ###",
        "x = 1  # BEGIN SOLUTION",
    ],
)
def test_near_miss_begin_markers_are_errors(marker):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("print('setup')"),
        nbformat.v4.new_code_cell(f"answer = None\n{marker}\nanswer = 42\n### END SOLUTION"),
    ]
    with pytest.raises(SolutionMarkerError) as info:
        make_student_notebook(nb, name="03_attention.ipynb")
    message = str(info.value)
    assert "03_attention.ipynb cell 1, line 2" in message and marker.strip() in message


@pytest.mark.parametrize(
    "marker", ["### END SOLUTIONS", "## END SOLUTION", "### End Solution", "#END SOLUTION"]
)
def test_near_miss_end_markers_are_errors(marker):
    with pytest.raises(SolutionMarkerError, match="line 3"):
        strip_solutions(f"answer = None\n### BEGIN SOLUTION\n{marker}\nanswer = 42")


def test_exact_markers_with_surrounding_whitespace_are_accepted():
    source = "x = 0\n   ### BEGIN SOLUTION  \nx = 1\n\t### END SOLUTION\t\ny = x"
    stripped, count = strip_solutions(source)
    assert count == 1 and "x = 1" not in stripped and stripped.endswith("y = x")


def test_marker_in_a_markdown_cell_is_an_error():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Answer:\n### BEGIN SOLUTION\n42\n### END SOLUTION")]
    with pytest.raises(SolutionMarkerError, match="markdown cell"):
        make_student_notebook(nb, name="x.ipynb")


@pytest.mark.parametrize(
    "source",
    [
        """
        def f(x):
            y = 1
            ### BEGIN SOLUTION
            return x + y
            ### END SOLUTION
        """,
        """
        class Model:
            def forward(self, x):
                ### BEGIN SOLUTION
                h = x * 2
                return h
                ### END SOLUTION

            def extra(self):
                return 0
        """,
        """
        def f(x):
        ### BEGIN SOLUTION
            return x
        ### END SOLUTION
        """,
        """
        for i in range(3):
          ### BEGIN SOLUTION
            total = i
          ### END SOLUTION
            print(i)
        """,
        """
        def f(x):
            ### BEGIN SOLUTION
            ### END SOLUTION
        """,
    ],
    ids=["def", "method", "marker-at-column-0", "marker-shallower", "empty-region"],
)
def test_stub_inside_a_block_compiles(source):
    source = textwrap.dedent(source).strip("\n")
    stripped, count = strip_solutions(source)
    in_a_function = source.startswith(("def", "class"))
    expected = "raise NotImplementedError(" if in_a_function else "total = NotDone()"
    assert count == 1 and expected in stripped
    compile(stripped, "<learner>", "exec")  # a valid stub, not a SyntaxError in the learner's cell


def test_stub_takes_the_solution_indentation():
    stripped, _ = strip_solutions(
        "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    )
    assert stripped == (
        "def f():\n"
        '    raise NotImplementedError("This exercise is not done yet: write your code in place '
        'of this line.")'
    )
