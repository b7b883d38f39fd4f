"""Self-paced progress: which exercises passed and which quiz questions were answered correctly.

Every :func:`coursekit.exercises.check` call and every quiz answer is recorded in one small JSON
file, ``progress.json``, in the folder named by ``COURSEKIT_HOME`` (default ``~/.coursekit``).
The file lives in the learner's home, never in the course repository: a ``COURSEKIT_HOME`` that
points inside the checkout is refused (with a message) in favour of the default.

Guarantees:

* **Atomic writes.** The new content goes to a temporary file in the same folder, is flushed to
  disk, and replaces the old file with :func:`os.replace`; a crash mid-write leaves the previous
  file intact. A lock file serialises two kernels recording at the same moment (POSIX only).
* **Never fatal.** A missing file is an empty record. A corrupt file (not JSON, wrong shape) is
  moved aside as ``progress.json.corrupt-<time>``, a message says so, and a fresh record starts.
  A folder that cannot be written prints one message and the course goes on without saving.
* **A pass is kept.** Once an exercise passed (or a quiz question was answered correctly), a
  later failing attempt does not erase it; the attempt counters still grow.

``coursekit progress`` prints :func:`progress_table`; each notebook's last cell
(``show_progress("NN")``) prints the same table for that notebook with one line per exercise.
:func:`answer_key_markdown` writes the instructors' answer-key table from the exercise registry
(``python -m coursekit.progress --answer-key``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coursekit.runtime import display_path

HOME_ENV = "COURSEKIT_HOME"
DISABLE_ENV = "COURSEKIT_PROGRESS"  # "off" (or "0") disables recording, e.g. for benchmarks
FILE_NAME = "progress.json"
SCHEMA_VERSION = 1

_said: set[str] = set()


# --------------------------------------------------------------------------------------------
# where the file lives


def _checkout_root() -> Path | None:
    """The course repository this package runs from (editable install), or None."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "coursekit").is_dir():
        return root
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def default_home() -> Path:
    """``~/.coursekit``: the progress folder when ``COURSEKIT_HOME`` is not set."""
    return Path.home() / ".coursekit"


def progress_home() -> Path:
    """The folder that holds ``progress.json``: ``COURSEKIT_HOME`` or ``~/.coursekit``.

    A ``COURSEKIT_HOME`` inside the course repository is ignored with a message, so progress
    (personal, per learner) can never end up committed with the course.
    """
    value = os.environ.get(HOME_ENV, "").strip()
    if not value:
        return default_home()
    home = Path(value).expanduser().resolve()
    root = _checkout_root()
    if root is not None and _inside(home, root):
        _message(
            f"{HOME_ENV}={value} is inside the course repository ({root}); progress is personal "
            f"and is kept outside it, in {default_home()}. Point {HOME_ENV} elsewhere to silence "
            "this message.",
            key=f"inside:{home}",
        )
        return default_home()
    return home


def progress_path() -> Path:
    """The progress file: ``<progress_home()>/progress.json``."""
    return progress_home() / FILE_NAME


def _enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("off", "0", "false", "no")


def _message(text: str, *, key: str | None = None) -> None:
    """Tell the learner something about their progress file (once per ``key``)."""
    if key is not None:
        if key in _said:
            return
        _said.add(key)
    print(f"coursekit: {text}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# reading and writing


def _empty() -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "exercises": {}, "quiz": {}}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _normalise_entry(value: Any, flag: str) -> dict[str, Any]:
    """One exercise/quiz entry as a dict; accepts the early format where it was a bare bool."""
    if isinstance(value, bool):
        return {flag: value, "attempts": 1 if value else 0}
    if isinstance(value, dict) and isinstance(value.get(flag, False), bool):
        entry = dict(value)
        entry.setdefault(flag, False)
        attempts = entry.get("attempts", 0)
        entry["attempts"] = attempts if isinstance(attempts, int) and attempts >= 0 else 0
        return entry
    raise ValueError(f"an entry is {value!r}, expected an object with a boolean {flag!r}")


def _validate(data: Any) -> dict[str, Any]:
    """Check the shape of a loaded progress record; raise ValueError naming the problem."""
    if not isinstance(data, dict):
        raise ValueError(f"the top level is a {type(data).__name__}, not an object")
    schema = data.get("schema", SCHEMA_VERSION)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise ValueError(
            f"schema {schema!r} is newer than this coursekit understands ({SCHEMA_VERSION})"
        )
    clean = _empty()
    for section, flag in (("exercises", "passed"), ("quiz", "correct")):
        notebooks = data.get(section, {})
        if not isinstance(notebooks, dict):
            raise ValueError(f"{section!r} is not an object")
        for notebook, entries in notebooks.items():
            if not isinstance(entries, dict):
                raise ValueError(f"{section}[{notebook!r}] is not an object")
            clean[section][str(notebook)] = {
                str(item): _normalise_entry(value, flag) for item, value in entries.items()
            }
    return clean


def _quarantine(path: Path, reason: str) -> None:
    """Move a corrupt progress file aside and say so; never raises."""
    backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, backup)
        where = f"It was moved to {backup}"
    except OSError:
        where = "It could not be moved aside and will be overwritten"
    else:
        with contextlib.suppress(OSError):
            _write_atomic(path, _empty())
    _message(
        f"your progress file {path} could not be read ({reason}). {where}, and a fresh progress "
        "record was started: re-run the check cells of the exercises you had done to record them "
        "again."
    )


def load_progress() -> dict[str, Any]:
    """The progress record ``{"schema", "exercises": {nb: {id: entry}}, "quiz": {...}}``.

    A missing file gives an empty record. A corrupt one is moved aside with a message and an
    empty record is returned. Never raises.
    """
    path = progress_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _empty()
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            _quarantine(path, "it is not UTF-8 text")
        else:
            _message(f"could not read {path} ({exc}); showing no progress.", key=f"read:{path}")
        return _empty()
    try:
        return _validate(json.loads(text))
    except json.JSONDecodeError as exc:
        _quarantine(path, f"not valid JSON: {exc.msg} at line {exc.lineno}")
    except ValueError as exc:
        _quarantine(path, str(exc))
    return _empty()


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (POSIX ``flock``; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: writes stay atomic, only simultaneous updates may race
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _update(section: str, flag: str, notebook: str, item_id: str, success: bool) -> None:
    """Read, change one entry, write back: under the lock, atomically, never raising."""
    if not _enabled():
        return
    path = progress_path()
    try:
        with _locked(path):
            data = load_progress()
            entries = data[section].setdefault(normalise_notebook(notebook), {})
            entry = entries.get(str(item_id), {flag: False, "attempts": 0})
            entry["attempts"] = int(entry.get("attempts", 0)) + 1
            entry["last_attempt"] = _now()
            entry[f"last_{flag}"] = bool(success)
            if success and not entry.get(flag):
                entry[f"first_{flag}"] = entry["last_attempt"]
            entry[flag] = bool(entry.get(flag)) or bool(success)
            entries[str(item_id)] = entry
            _write_atomic(path, data)
    except OSError as exc:
        _message(
            f"could not save your progress to {path} ({exc.strerror or exc}). The course works "
            f"without it; set {HOME_ENV} to a writable folder to keep your progress.",
            key=f"write:{path}",
        )
    except Exception as exc:  # noqa: BLE001 - recording progress must never break a check
        _message(f"could not record progress ({type(exc).__name__}: {exc}).", key=f"bug:{exc}")


def normalise_notebook(notebook: str | int) -> str:
    """``3``, ``"3"``, ``"03"`` and ``"03_attention.ipynb"`` all name notebook ``"03"``."""
    text = str(notebook).strip()
    head = text.split("_", 1)[0].removesuffix(".ipynb")
    if head.isdigit():
        return f"{int(head):02d}"
    if not text:
        raise ValueError("A notebook is named by its number, e.g. '03'; got an empty string.")
    return text


def record_exercise(notebook: str, exercise_id: str, passed: bool) -> None:
    """Record one check of ``exercise_id``: a pass is kept even if a later attempt fails."""
    _update("exercises", "passed", notebook, exercise_id, passed)


def record_quiz(notebook: str, question_id: str, correct: bool) -> None:
    """Record one answer to quiz question ``question_id``: a correct answer is kept."""
    _update("quiz", "correct", notebook, question_id, correct)


def reset_progress(notebook: str | None = None) -> None:
    """Forget the progress of one notebook, or all of it (the file is rewritten, not deleted)."""
    path = progress_path()
    try:
        with _locked(path):
            data = load_progress() if notebook is not None else _empty()
            if notebook is not None:
                for section in ("exercises", "quiz"):
                    data[section].pop(normalise_notebook(notebook), None)
            _write_atomic(path, data)
    except OSError as exc:
        _message(f"could not reset your progress in {path} ({exc.strerror or exc}).")


# --------------------------------------------------------------------------------------------
# summaries


@dataclass(frozen=True)
class NotebookProgress:
    """Progress in one notebook: exercise and quiz ids with their state."""

    notebook: str
    exercises: dict[str, bool] = field(default_factory=dict)  # id -> passed (registry order)
    quiz: dict[str, bool] = field(default_factory=dict)  # id -> answered correctly
    titles: dict[str, str] = field(default_factory=dict)  # exercise id -> title
    attempts: dict[str, int] = field(default_factory=dict)  # exercise id -> checks run

    @property
    def exercises_passed(self) -> int:
        return sum(self.exercises.values())

    @property
    def quiz_correct(self) -> int:
        return sum(self.quiz.values())


def _catalogue() -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Registered exercises and quiz questions by notebook (empty if the registry fails)."""
    try:
        from coursekit.exercises.registry import all_exercises, all_quiz_questions

        exercises, questions = all_exercises(), all_quiz_questions()
    except Exception as exc:  # noqa: BLE001 - a broken nbNN module must not hide progress
        _message(f"could not load the exercise registry ({type(exc).__name__}: {exc}).")
        exercises, questions = [], []
    by_nb_ex: dict[str, list[Any]] = {}
    by_nb_q: dict[str, list[Any]] = {}
    for ex in exercises:
        by_nb_ex.setdefault(normalise_notebook(ex.notebook), []).append(ex)
    for q in questions:
        by_nb_q.setdefault(normalise_notebook(q.notebook), []).append(q)
    return by_nb_ex, by_nb_q


def progress_summary(notebook: str | None = None) -> list[NotebookProgress]:
    """Per-notebook progress against the exercise registry (one notebook, or all known ones).

    Totals come from the registry; ids recorded in the file but no longer registered (an
    exercise renamed since) are not counted.
    """
    data = load_progress()
    ex_by_nb, q_by_nb = _catalogue()
    if notebook is not None:
        notebooks = [normalise_notebook(notebook)]
    else:
        notebooks = sorted(set(ex_by_nb) | set(q_by_nb))
    rows = []
    for nb in notebooks:
        done_ex = data["exercises"].get(nb, {})
        done_q = data["quiz"].get(nb, {})
        rows.append(
            NotebookProgress(
                notebook=nb,
                exercises={
                    e.id: bool(done_ex.get(e.id, {}).get("passed")) for e in ex_by_nb.get(nb, [])
                },
                quiz={q.id: bool(done_q.get(q.id, {}).get("correct")) for q in q_by_nb.get(nb, [])},
                titles={e.id: e.title for e in ex_by_nb.get(nb, [])},
                attempts={
                    e.id: int(done_ex.get(e.id, {}).get("attempts", 0))
                    for e in ex_by_nb.get(nb, [])
                },
            )
        )
    return rows


def _fraction(done: int, total: int) -> str:
    return f"{done} / {total}" if total else "-"


def progress_table(notebook: str | None = None) -> str:
    """A plain-text table of passed / total exercises and correct / total quiz answers.

    Without ``notebook``: one row per notebook with registered exercises, and a total row.
    With ``notebook``: its row, then one line per exercise (passed, or not yet and how often
    it was tried).
    """
    rows = progress_summary(notebook)
    header = ("notebook", "exercises passed", "quiz correct")
    body = [
        (
            r.notebook,
            _fraction(r.exercises_passed, len(r.exercises)),
            _fraction(r.quiz_correct, len(r.quiz)),
        )
        for r in rows
    ]
    if notebook is None and rows:
        body.append(
            (
                "total",
                _fraction(
                    sum(r.exercises_passed for r in rows), sum(len(r.exercises) for r in rows)
                ),
                _fraction(sum(r.quiz_correct for r in rows), sum(len(r.quiz) for r in rows)),
            )
        )
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(3)]

    def fmt(line: tuple[str, str, str]) -> str:
        return "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()

    if notebook is None:
        title = f"Your progress (kept in {display_path(progress_path())})"
    else:  # shown in notebooks' stored outputs: no machine-specific path here
        title = "Your progress (all notebooks: `coursekit progress` in a terminal)"
    lines = [title, fmt(header)]
    lines.append("  ".join("-" * w for w in widths))
    lines += [fmt(line) for line in body]
    if not rows:
        lines.append("(no exercises are registered yet)")
    if notebook is not None and rows:
        row = rows[0]
        if not row.exercises and not row.quiz:
            lines.append(f"(notebook {row.notebook} has no registered exercises or quiz)")
        for ex_id, passed in row.exercises.items():
            tries = row.attempts.get(ex_id, 0)
            state = "passed " if passed else ("not yet" if tries == 0 else f"tried {tries}x")
            lines.append(
                f"  [{'x' if passed else ' '}] {ex_id:<8} {state:<9} {row.titles.get(ex_id, '')}"
            )
    if not _enabled():
        lines.append(f"(recording is switched off: {DISABLE_ENV}={os.environ.get(DISABLE_ENV)})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the instructors' answer key


_DIFFICULTY = {1: "easy", 2: "medium", 3: "hard"}


def _cell(text: str) -> str:
    """Make ``text`` safe for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


_HELPER_PHRASES = {
    "expect_close": "values against a reference (within a tolerance)",
    "expect_shape": "shape",
    "expect_dtype": "dtype",
    "expect_equal": "exact value",
    "expect_true": "conditions on the answer (type, range)",
    "expect_tensor": "returns a tensor",
}


def _check_summary(fn: Any) -> str:
    """What a check verifies: its docstring's first paragraph, else the helpers it calls."""
    import inspect

    doc = inspect.getdoc(fn)
    if doc:
        return " ".join(doc.split("\n\n", 1)[0].split())
    try:
        import ast
        import textwrap

        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return "see its source"
    used: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            phrase = _HELPER_PHRASES.get(name or "")
            if phrase and phrase not in used:
                used.append(phrase)
    return "checks " + "; ".join(used) if used else "see its source"


def answer_key_markdown() -> str:
    """The answer-key overview (notebook, exercise, what it asks, difficulty, minutes) in Markdown.

    Generated from :mod:`coursekit.exercises.registry`, so it follows the checks exactly;
    ``docs/instructors.md`` embeds it between ``<!-- answer-key:begin -->`` and ``:end``.
    Below the table, one line per exercise names the check function and what it verifies.
    """
    ex_by_nb, q_by_nb = _catalogue()
    lines = [
        "| notebook | exercise | what it asks | difficulty | minutes |",
        "|---|---|---|---|---|",
    ]
    checks: list[str] = []
    total_minutes = 0
    count = 0
    for nb in sorted(ex_by_nb):
        for ex in ex_by_nb[nb]:
            lines.append(
                f"| {nb} | `{ex.id}` {_cell(ex.title)} | {_cell(ex.asks)} | "
                f"{_DIFFICULTY.get(ex.difficulty, ex.difficulty)} | {ex.minutes} |"
            )
            fn = getattr(ex, "check", None)
            if fn is not None:
                module = getattr(fn, "__module__", "") or f"coursekit.exercises.nb{nb}"
                where = f"`{module.replace('.', '/')}.py`, `{getattr(fn, '__name__', 'check')}`"
                checks.append(f"- `{ex.id}` ({where}): {_cell(_check_summary(fn)).rstrip('.')}.")
            total_minutes += int(ex.minutes)
            count += 1
    quiz_total = sum(len(v) for v in q_by_nb.values())
    lines.append("")
    lines.append(
        f"{count} exercises in {len(ex_by_nb)} notebooks, about {total_minutes} minutes of "
        f"exercise work in all; {quiz_total} quiz questions."
    )
    if checks:
        lines += [
            "",
            "What each check verifies (its function, and its docstring or the comparisons it makes):",
            "",
        ]
        lines += checks
    quiz_rows = []
    for nb in sorted(q_by_nb):
        for q in q_by_nb[nb]:
            options = getattr(q, "options", None)
            answer = getattr(q, "answer", None)
            if options is None or answer is None:
                continue
            right = f"({'abcdefgh'[answer]}) {_cell(options[answer])}"
            quiz_rows.append(f"| {nb} | `{q.id}` | {_cell(q.question)} | {right} |")
    if quiz_rows:
        lines += ["", "Quiz answers:", "", "| notebook | question | asks | right answer |"]
        lines += ["|---|---|---|---|", *quiz_rows]
    return "\n".join(lines)


KEY_BEGIN = "<!-- answer-key:begin -->"
KEY_END = "<!-- answer-key:end -->"


def update_answer_key(doc: Path) -> bool:
    """Replace the text between the answer-key markers in ``doc``; True if it changed."""
    text = doc.read_text(encoding="utf-8")
    if KEY_BEGIN not in text or KEY_END not in text:
        raise ValueError(f"{doc} has no '{KEY_BEGIN}' ... '{KEY_END}' markers to fill.")
    head, rest = text.split(KEY_BEGIN, 1)
    _, tail = rest.split(KEY_END, 1)
    new = f"{head}{KEY_BEGIN}\n{answer_key_markdown()}\n{KEY_END}{tail}"
    if new != text:
        doc.write_text(new, encoding="utf-8")
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """``python -m coursekit.progress [NOTEBOOK] [--answer-key [DOC]] [--reset [NB]]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m coursekit.progress", description=main.__doc__)
    parser.add_argument("notebook", nargs="?", default=None)
    parser.add_argument(
        "--answer-key",
        nargs="?",
        const="-",
        metavar="DOC",
        help="print the answer-key table, or fill it into DOC between its markers",
    )
    parser.add_argument(
        "--reset", action="store_true", help="forget progress (of NOTEBOOK, or all)"
    )
    args = parser.parse_args(argv)
    if args.answer_key is not None:
        if args.answer_key == "-":
            print(answer_key_markdown())
        else:
            changed = update_answer_key(Path(args.answer_key))
            print(f"{args.answer_key}: {'updated' if changed else 'already up to date'}")
        return 0
    if args.reset:
        reset_progress(args.notebook)
        print(
            f"Progress {'of notebook ' + args.notebook if args.notebook else ''} reset.".replace(
                "  ", " "
            )
        )
        return 0
    print(progress_table(args.notebook))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
