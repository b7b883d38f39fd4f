"""Learner versions of the notebooks: each solution replaced by a stub that still runs.

A solution sits between a line ``### BEGIN SOLUTION`` and a line ``### END SOLUTION`` (nbgrader
markup; surrounding whitespace is allowed, nothing else). A line that looks like a marker but is
not exactly one (``## BEGIN SOLUTION``, ``### Begin Solution``, ``#BEGIN SOLUTION``,
``### END SOLUTIONS``...) is an error naming the notebook, cell and line: a typo must never leave a
solution in the learner version. The source notebooks keep their markers and nbgrader metadata,
so ``nbgrader generate_assignment`` works on them as well (with nbgrader's own stub text).

**The stub keeps every name the solution defines**, so that Run All on a learner version reaches
the end and each check cell reports "not done yet" (see :mod:`coursekit.exercises.checking`):

* a solution inside a function body becomes
  ``raise NotImplementedError("Exercise 02.1 is not done yet: ...")``;
* a ``def`` (or a method of a ``class``) in the solution keeps its decorators, signature and
  docstring, and its body becomes that same ``raise``;
* every other name the solution binds outside a function (``answer = ...``, ``a, b = ...``,
  ``for x in ...``, ``with ... as f``) becomes ``name = NotDone("02.4")``, after
  ``from coursekit.exercises.checking import NotDone``; imports in the solution are kept as they
  are; a solution that binds nothing becomes ``pass``.

The exercise id comes from the check cell that follows (``check("02.4", ...)``), else from the
cell's nbgrader ``grade_id`` (``ex-02-4``). The stub takes the indentation of the solution it
replaces; a cell that compiled before and would not compile after is an error. A solution that
cannot be parsed on its own (IPython magics, a fragment of a statement) falls back to the
``raise`` stub.

:func:`write_student_versions` never touches the solutions: a destination that is the source
folder, lies inside it, or would overwrite a source notebook (paths resolved, symlinks included)
is refused. All learner versions are built in memory first and then written atomically; if a
write fails, the files written in that run are removed again (or restored to what they were).
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import textwrap
import tokenize
import warnings
from pathlib import Path

import nbformat

from coursekit.exercises.checking import not_done_message
from coursekit.files import atomic_write_bytes, atomic_write_text

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
#: The line that makes the placeholder importable where a stub assigns one.
SENTINEL_IMPORT = "from coursekit.exercises.checking import NotDone"
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


def _quoted(text: str) -> str:
    """``text`` as a Python string literal, in double quotes where possible (as ruff writes)."""
    return f'"{text}"' if '"' not in text and "\\" not in text else repr(text)


def _raise_line(exercise_id: str | None) -> str:
    message = (
        not_done_message(exercise_id)
        if exercise_id
        else "This exercise is not done yet: write your code in place of this line."
    )
    return f"raise NotImplementedError({_quoted(message)})"


_Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _header_lines(lines: list[str], node: _Definition) -> list[str] | None:
    """The source of ``node``'s decorators and ``def``/``class`` line(s), up to its colon."""
    start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    text = "\n".join(lines[start - 1 :]) + "\n"
    keyword = "class" if isinstance(node, ast.ClassDef) else "def"
    depth, seen_keyword = 0, False
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string == keyword and depth == 0:
                seen_keyword = True
            elif tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
            elif tok.type == tokenize.OP and tok.string == ":" and depth == 0 and seen_keyword:
                row, col = tok.end
                header = text.splitlines()[:row]
                header[-1] = header[-1][:col]
                return header
    except (tokenize.TokenError, SyntaxError):
        return None
    return None


def _docstring_lines(lines: list[str], node: _Definition) -> list[str]:
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
        and body[0].lineno > node.lineno
    ):
        return lines[body[0].lineno - 1 : body[0].end_lineno]
    return []


def _body_indent(lines: list[str], node: _Definition, header_indent: str) -> str:
    body = node.body
    if body and body[0].lineno > node.lineno:
        match = _INDENT.match(lines[body[0].lineno - 1])
        if match and len(match.group(0)) > len(header_indent):
            return match.group(0)
    return header_indent + "    "


class _Names(ast.NodeVisitor):
    """The names a statement binds in the scope it runs in, for the code after it: assignments,
    definitions and imports, not loop variables, ``as`` names or names in nested scopes."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def _add(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self._add(node.id)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._add(node.name)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._add(node.name)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._add(node.name)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return

    def _comprehension(self, node: ast.AST) -> None:
        return  # its loop variables are local to it

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        for child in [*node.body, *node.orelse]:  # the loop variable is incidental
            self.visit(child)

    visit_AsyncFor = visit_For

    def visit_withitem(self, node: ast.withitem) -> None:
        self.visit(node.context_expr)  # so is the name after ``as``

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        for child in node.body:
            self.visit(child)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)  # ``x += 1`` needs an ``x`` that exists already

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._add(alias.asname or alias.name)


def _bound_names(node: ast.stmt) -> list[str]:
    finder = _Names()
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        finder._add(node.name)
    else:
        finder.visit(node)
    return finder.names


def _indent_of(line: str) -> str:
    match = _INDENT.match(line)
    return match.group(0) if match else ""


def _relative(lines: list[str], indent: str) -> list[str]:
    """``lines`` with the leading ``indent`` removed (lines indented less keep their text)."""
    return [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines]


def _stub_block(
    lines: list[str], body: list[ast.stmt], exercise_id: str | None, *, in_class: bool = False
) -> tuple[list[str], bool] | None:
    """Stub lines for the statements ``body`` of ``lines``, relative to their indentation; also
    whether they use the NotDone placeholder. None when a header cannot be recovered."""
    out: list[str] = []
    uses_sentinel = False
    placeholder = f"NotDone({_quoted(exercise_id)})" if exercise_id else "NotDone()"
    done: set[str] = set()
    for node in body:
        indent = _indent_of(lines[node.lineno - 1])
        if isinstance(node, ast.Import | ast.ImportFrom):  # kept: the learner needs them too
            out += _relative(lines[node.lineno - 1 : node.end_lineno], indent)
            done.update(_bound_names(node))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            header = _header_lines(lines, node)
            if header is None:
                return None
            inner = _body_indent(lines, node, indent)
            block = [*header, *_docstring_lines(lines, node)]
            if isinstance(node, ast.ClassDef):
                members = _stub_block(lines, node.body, exercise_id, in_class=True)
                if members is None:
                    return None
                member_lines, member_sentinel = members
                uses_sentinel |= member_sentinel
                block += [inner + line for line in member_lines] or [inner + "pass"]
            else:
                block.append(inner + _raise_line(exercise_id))
            out += _relative(block, indent)
            done.add(node.name)
        elif in_class and isinstance(node, ast.Expr):
            continue  # a docstring, or an expression in a class body
        else:
            for name in _bound_names(node):
                if name not in done:
                    out.append(f"{name} = {placeholder}")
                    done.add(name)
                    uses_sentinel = True
    return out, uses_sentinel


def _module_stub(region: list[str], exercise_id: str | None) -> list[str] | None:
    """The stub for a solution outside any function (unindented lines); None if unparsable."""
    text = textwrap.dedent("\n".join(region))
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    built = _stub_block(text.splitlines(), tree.body, exercise_id)
    if built is None:
        return None
    lines, uses_sentinel = built
    tag = f"Exercise {exercise_id}: your code here" if exercise_id else "your code here"
    if uses_sentinel:
        return [f"{SENTINEL_IMPORT}  # {tag}", *lines]
    return [f"# {tag}", *lines] if lines else [f"pass  # {tag}"]


def _python_only(lines: list[str]) -> list[str]:
    """IPython magics and shell lines blanked out, so that the rest can be parsed."""
    return ["" if line.lstrip().startswith(("%", "!")) else line for line in lines]


def _in_function(probe: list[str], line_number: int) -> bool | None:
    """Whether line ``line_number`` of ``probe`` lies inside a function (None: cannot parse)."""
    try:
        tree = ast.parse("\n".join(_python_only(probe)))
    except (SyntaxError, ValueError):
        return None
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

    def inside(node: ast.AST, in_function: bool) -> bool | None:
        for child in ast.iter_child_nodes(node):
            deeper = in_function or isinstance(child, functions)
            start, end = getattr(child, "lineno", None), getattr(child, "end_lineno", None)
            if start is not None and end is not None and start == end == line_number:
                if isinstance(child, ast.stmt):
                    return in_function
            found = inside(child, deeper)
            if found is not None:
                return found
        return None

    return inside(tree, False)


def strip_solutions(
    source: str, *, where: str = "cell", exercise_id: str | None = None
) -> tuple[str, int]:
    """Replace each solution region of ``source`` by its stub; return (new source, regions replaced).

    ``exercise_id`` (e.g. ``"02.4"``) goes into the stub's messages and placeholders. Raises
    :class:`SolutionMarkerError` (naming ``where`` and the line) for an unbalanced or misspelt
    marker, or when the stub would not compile although the cell did.
    """
    out: list[str] = []
    regions: list[tuple[int, str, list[str]]] = []  # (index in out, indentation, solution lines)
    region: list[str] = []
    begin_line = 0
    marker_indent = ""
    inside = False
    for number, line in enumerate(source.splitlines(), start=1):
        begin = _BEGIN_LINE.match(line)
        if begin:
            if inside:
                raise SolutionMarkerError(
                    f"{where}, line {number}: nested '{BEGIN}' (the one on line {begin_line} "
                    f"is not closed by '{END}')."
                )
            inside, begin_line, marker_indent, region = True, number, begin.group("indent"), []
            continue
        if _END_LINE.match(line):
            if not inside:
                raise SolutionMarkerError(f"{where}, line {number}: '{END}' without '{BEGIN}'.")
            indent = _stub_indent(marker_indent, region)
            regions.append((len(out), indent, region))
            out.append(f"{indent}pass")  # a placeholder, replaced below
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
    result_lines = list(out)
    for index, indent, solution in reversed(regions):
        stub: list[str] | None = None
        if not _in_function(out, index + 1):
            stub = _module_stub(solution, exercise_id)
        if stub is None:  # inside a function, or not parsable on its own
            stub = [_raise_line(exercise_id)]
        result_lines[index : index + 1] = [f"{indent}{line}" if line else "" for line in stub]
    result = "\n".join(result_lines)
    if regions and _compiles(source) and not _compiles(result):
        raise SolutionMarkerError(
            f"{where}: the learner version of this cell would not compile (check the "
            "indentation of its solution markers, which must sit where a statement can)."
        )
    return result, len(regions)


_CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](?P<id>[^"']+)["']""")
_GRADE_ID = re.compile(r"^ex-(?P<notebook>\w+?)-(?P<number>\w+)$")


def _exercise_id(cells: list[nbformat.NotebookNode], index: int) -> str | None:
    """The id of the exercise solved in cell ``index``: the one its check names (in the cell
    after the solution, or in the next code cell), else the one its nbgrader grade_id spells."""
    source = str(cells[index].source)
    after_solution = source[source.rfind(END) :]
    following = next((c for c in cells[index + 1 :] if c.cell_type == "code"), None)
    for text in (after_solution, str(following.source) if following is not None else ""):
        match = _CHECK_CALL.search(text)
        if match:
            return match.group("id")
    grade = _GRADE_ID.match(str(cells[index].metadata.get("nbgrader", {}).get("grade_id", "")))
    return f"{grade.group('notebook')}.{grade.group('number')}" if grade else None


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
        cell.source, replaced = strip_solutions(
            cell.source,
            where=f"{name} cell {index}",
            exercise_id=_exercise_id(student.cells, index) if BEGIN in cell.source else None,
        )
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
