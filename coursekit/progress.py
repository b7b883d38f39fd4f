"""Self-paced progress: which exercises passed and which quiz questions were answered correctly.

Every :func:`coursekit.exercises.check` call and every quiz answer is recorded in one small JSON
file, ``progress.json``, in the folder named by ``COURSEKIT_HOME`` (default ``~/.coursekit``).
The file lives in the learner's home, never in the course repository: a ``COURSEKIT_HOME`` that
points inside the checkout is refused (with a message) in favour of the default.

Guarantees:

* **Atomic writes.** Every write goes through :func:`coursekit.files.atomic_write_with`: a crash
  mid-write leaves the previous file intact. A lock file serialises two kernels recording at the
  same moment (POSIX only); temporary files a killed write left behind are removed by the next
  recording.
* **Viewing only reads.** :func:`load_progress`, :func:`progress_summary`,
  :func:`progress_table` and ``coursekit progress`` never change the file, whatever is in it.
* **Nothing lost.** A file written by a newer coursekit (a higher ``schema``), or with a schema
  that is not a version number, is left untouched: it is reported, and recording into it is
  refused rather than downgrading it. One malformed entry is skipped with a message; the next
  recording keeps a copy of the file as it was (``progress.json.before-repair-<time>``) and
  writes it without that entry. Only a file that is not JSON, or not a JSON object at all, is
  moved aside (``progress.json.corrupt-<time>``) by the next recording, which starts a fresh
  record. A folder that cannot be written prints one message and the course goes on without
  saving.
* **A pass is kept.** Once an exercise passed (or a quiz question was answered correctly), a
  later failing attempt does not erase it; the attempt counters still grow.

This module knows nothing of the exercises themselves (it sits below
:mod:`coursekit.exercises`, which records into it): :func:`progress_summary` and
:func:`progress_table` count against a :class:`Catalogue` of the registered exercises and quiz
questions that the caller passes in (:func:`coursekit.exercises.progress_catalogue`).
``coursekit progress`` prints :func:`progress_table`; each notebook's last cell
(``show_progress("NN")``) prints the same table for that notebook with one line per exercise.
``python -m coursekit.progress --reset [NOTEBOOK]`` forgets progress. The instructors' answer key
is written by :mod:`coursekit.exercises.answer_key`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coursekit.files import TMP_SUFFIX, atomic_write_with, checkout_root
from coursekit.runtime import display_path

HOME_ENV = "COURSEKIT_HOME"
DISABLE_ENV = "COURSEKIT_PROGRESS"  # "off" (or "0") disables recording, e.g. for benchmarks
FILE_NAME = "progress.json"
SCHEMA_VERSION = 1

_said: set[str] = set()


# --------------------------------------------------------------------------------------------
# where the file lives


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
    root = checkout_root()
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
# reading (never writes)


def _empty() -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "exercises": {}, "quiz": {}}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


_SECTIONS = (("exercises", "passed"), ("quiz", "correct"))

FileState = Literal["missing", "ok", "newer", "invalid-schema", "corrupt", "unreadable"]


@dataclass(frozen=True)
class ProgressFile:
    """The progress file as read, without changing it.

    ``state``: ``missing`` (no file yet), ``ok`` (usable; ``skipped`` lists malformed entries
    left out of ``data``), ``newer`` (a higher ``schema`` than this coursekit knows),
    ``invalid-schema``, ``corrupt`` (not JSON, not UTF-8, or not an object) or ``unreadable``
    (the file system refused). ``data`` is the usable record: empty unless ``ok``.
    """

    path: Path
    state: FileState
    data: dict[str, Any]
    reason: str = ""
    skipped: tuple[str, ...] = ()
    schema: Any = None

    @property
    def usable(self) -> bool:
        """True if the record can be shown and recorded into."""
        return self.state in ("missing", "ok")

    def describe(self) -> str:
        """One sentence on what is wrong with the file (empty when nothing is)."""
        path = self.path
        if self.state == "newer":
            return (
                f"your progress file {path} was written by a newer coursekit (schema "
                f"{self.schema!r}; this coursekit knows schema {SCHEMA_VERSION}). It is left "
                "untouched and nothing is recorded into it: upgrade coursekit (`git pull`, then "
                '`pip install -e ".[lab]"` in the course folder) to see and record your progress.'
            )
        if self.state == "invalid-schema":
            return (
                f"your progress file {path} has an invalid schema {self.schema!r} (expected a "
                f"version number such as {SCHEMA_VERSION}). It is left untouched and nothing is "
                f'recorded into it: set "schema" to {SCHEMA_VERSION} in the file, or move it '
                "aside to start a fresh record."
            )
        if self.state == "corrupt":
            return (
                f"your progress file {path} could not be read ({self.reason}). It is left as it "
                "is for now; the next recorded check moves it aside (progress.json.corrupt-<time>)"
                " and starts a fresh progress record."
            )
        if self.state == "unreadable":
            return (
                f"could not read your progress file {path} ({self.reason}); showing no progress, "
                "and nothing is recorded until it can be read: check its permissions."
            )
        if self.skipped:
            return (
                f"skipped {len(self.skipped)} malformed entr{'y' if len(self.skipped) == 1 else 'ies'}"
                f" in your progress file {path}: {'; '.join(self.skipped)}. The rest of your "
                "progress is read as usual; re-run those exercises' check cells to record them "
                "again."
            )
        return ""


def _parse_schema(value: Any) -> int | None:
    """The schema version as an int (``1``, ``"1"``, ``1.0``), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _normalise_entry(value: Any, flag: str) -> dict[str, Any]:
    """One exercise/quiz entry as a dict; accepts the early format where it was a bare bool."""
    if isinstance(value, bool):
        return {flag: value, "attempts": 1 if value else 0}
    if isinstance(value, dict) and isinstance(value.get(flag, False), bool):
        entry = dict(value)
        entry.setdefault(flag, False)
        attempts = entry.get("attempts", 0)
        entry["attempts"] = (
            attempts
            if isinstance(attempts, int) and not isinstance(attempts, bool) and attempts >= 0
            else 0
        )
        return entry
    raise ValueError(f"is {value!r}, expected an object with a boolean {flag!r}")


def _validate(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A clean record from a loaded JSON object, and one line per malformed part skipped."""
    clean = _empty()
    for key, value in data.items():  # keep what a later version of this schema added
        if key not in clean:
            clean[key] = value
    skipped: list[str] = []
    for section, flag in _SECTIONS:
        notebooks = data.get(section, {})
        if not isinstance(notebooks, dict):
            skipped.append(f"{section!r} is {notebooks!r}, not an object")
            continue
        for notebook, entries in notebooks.items():
            if not isinstance(entries, dict):
                skipped.append(f"{section}[{notebook!r}] is {entries!r}, not an object")
                continue
            kept = clean[section].setdefault(str(notebook), {})
            for item, value in entries.items():
                try:
                    kept[str(item)] = _normalise_entry(value, flag)
                except ValueError as exc:
                    skipped.append(f"{section}[{notebook!r}][{item!r}] {exc}")
    return clean, skipped


def read_progress_file(path: Path | None = None) -> ProgressFile:
    """Read the progress file (default :func:`progress_path`) and say what state it is in.

    Never writes, never prints, never raises.
    """
    path = progress_path() if path is None else path
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return ProgressFile(path, "missing", _empty())
    except OSError as exc:
        return ProgressFile(path, "unreadable", _empty(), reason=exc.strerror or str(exc))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ProgressFile(path, "corrupt", _empty(), reason="it is not UTF-8 text")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return ProgressFile(
            path, "corrupt", _empty(), reason=f"not valid JSON: {exc.msg} at line {exc.lineno}"
        )
    except RecursionError:
        return ProgressFile(path, "corrupt", _empty(), reason="not valid JSON: nested too deeply")
    if not isinstance(data, dict):
        return ProgressFile(
            path,
            "corrupt",
            _empty(),
            reason=f"the top level is a {type(data).__name__}, not an object",
        )
    given = data.get("schema", SCHEMA_VERSION)
    schema = _parse_schema(given)
    if schema is None or schema < 1:
        return ProgressFile(path, "invalid-schema", _empty(), schema=given)
    if schema > SCHEMA_VERSION:
        return ProgressFile(path, "newer", _empty(), schema=given)
    clean, skipped = _validate(data)
    return ProgressFile(path, "ok", clean, skipped=tuple(skipped), schema=given)


def _report(info: ProgressFile) -> None:
    """Say (once per process and problem) what is wrong with the file, if anything."""
    text = info.describe()
    if text:
        _message(text, key=f"{info.state}:{info.path}:{info.schema!r}:{info.reason}:{info.skipped}")


def load_progress() -> dict[str, Any]:
    """The progress record ``{"schema", "exercises": {nb: {id: entry}}, "quiz": {...}}``.

    A missing file gives an empty record. A file that cannot be used (corrupt, written by a newer
    coursekit, unreadable) gives an empty record and a message; a malformed entry is left out
    with a message. Never raises and never changes the file.
    """
    info = read_progress_file()
    _report(info)
    return info.data


# --------------------------------------------------------------------------------------------
# writing (under the lock, atomically)


def _aside(path: Path, tag: str) -> Path:
    """A free name beside ``path`` for a copy of it: ``<name>.<tag>-<time>[-n]``."""
    stem = f"{path.name}.{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate = path.with_name(stem)
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{stem}-{n}")
        n += 1
    return candidate


def _quarantine(path: Path, reason: str) -> bool:
    """Move a corrupt progress file aside and say so; True if it is out of the way."""
    backup = _aside(path, "corrupt")
    try:
        os.replace(path, backup)
    except OSError as exc:
        _message(
            f"your progress file {path} could not be read ({reason}) and could not be moved "
            f"aside ({exc.strerror or exc}); it is left as it is and nothing is recorded.",
            key=f"quarantine:{path}",
        )
        return False
    _message(
        f"your progress file {path} could not be read ({reason}). It was moved to {backup}, and "
        "a fresh progress record was started: re-run the check cells of the exercises you had "
        "done to record them again."
    )
    return True


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (:func:`coursekit.files.atomic_write_with`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")

    atomic_write_with(path, write)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``<path>.lock`` (POSIX ``flock``); yields whether it is real."""
    try:
        import fcntl
    except ImportError:  # Windows: writes stay atomic, only simultaneous updates may race
        yield False
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.progress.json.*.tmp`` files a killed write left (call only under the lock)."""
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _writable_record(path: Path, *, real_lock: bool) -> dict[str, Any] | None:
    """The record to update (call under the lock), or None when the file must be left alone.

    A corrupt file is moved aside; a file with malformed entries is copied aside before it is
    rewritten without them; a newer, invalid or unreadable one is reported and left untouched.
    """
    if real_lock:
        _remove_stale_temporaries(path)
    info = read_progress_file(path)
    if info.state in ("newer", "invalid-schema", "unreadable"):
        _report(info)
        return None
    if info.state == "corrupt":
        return _empty() if _quarantine(path, info.reason) else None
    if info.skipped:
        backup = _aside(path, "before-repair")
        try:
            shutil.copy2(path, backup)
        except OSError as exc:
            _message(
                f"{info.describe()} It could not be copied aside ({exc.strerror or exc}), so "
                "nothing is recorded into it.",
                key=f"repair:{path}",
            )
            return None
        _message(
            f"{info.describe()} The file as it was is kept in {backup}; it is now rewritten "
            "without those entries."
        )
    return info.data


def _update(section: str, flag: str, notebook: str, item_id: str, success: bool) -> None:
    """Read, change one entry, write back: under the lock, atomically, never raising."""
    if not _enabled():
        return
    path = progress_path()
    try:
        with _locked(path) as real_lock:
            data = _writable_record(path, real_lock=real_lock)
            if data is None:
                return
            entries = data[section].setdefault(normalise_notebook(notebook), {})
            entry = entries.get(str(item_id), {flag: False, "attempts": 0})
            entry["attempts"] = int(entry.get("attempts", 0)) + 1
            entry["last_attempt"] = _now()
            entry[f"last_{flag}"] = bool(success)
            if success and not entry.get(flag):
                entry[f"first_{flag}"] = entry["last_attempt"]
            entry[flag] = bool(entry.get(flag)) or bool(success)
            entries[str(item_id)] = entry
            data["schema"] = SCHEMA_VERSION
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


def reset_progress(notebook: str | None = None) -> bool:
    """Forget the progress of one notebook, or all of it (the file is rewritten, not deleted).

    A file this coursekit cannot safely rewrite (newer schema, invalid schema, unreadable) is
    left untouched with a message. Returns True if the reset was written.
    """
    path = progress_path()
    try:
        with _locked(path) as real_lock:
            data = _writable_record(path, real_lock=real_lock)
            if data is None:
                return False
            if notebook is None:
                data = _empty()
            else:
                for section, _ in _SECTIONS:
                    data[section].pop(normalise_notebook(notebook), None)
            _write_atomic(path, data)
    except OSError as exc:
        _message(f"could not reset your progress in {path} ({exc.strerror or exc}).")
        return False
    return True


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


@dataclass(frozen=True)
class CatalogueEntry:
    """One registered exercise or quiz question, as far as progress needs to know it."""

    notebook: str
    id: str
    title: str = ""


@dataclass(frozen=True)
class Catalogue:
    """What there is to do: the registered exercises and quiz questions (registry order).

    Built by the caller from the exercise registry
    (:func:`coursekit.exercises.progress_catalogue`); progress only counts against it.
    """

    exercises: tuple[CatalogueEntry, ...] = ()
    quiz: tuple[CatalogueEntry, ...] = ()

    @classmethod
    def of(cls, exercises: Iterable[Any] = (), quiz: Iterable[Any] = ()) -> Catalogue:
        """A catalogue from objects with ``notebook``, ``id`` and (optionally) ``title``."""

        def entries(items: Iterable[Any]) -> tuple[CatalogueEntry, ...]:
            return tuple(
                CatalogueEntry(str(item.notebook), str(item.id), str(getattr(item, "title", "")))
                for item in items
            )

        return cls(entries(exercises), entries(quiz))

    def by_notebook(
        self,
    ) -> tuple[dict[str, list[CatalogueEntry]], dict[str, list[CatalogueEntry]]]:
        """Exercises and quiz questions grouped by normalised notebook (``"03"``)."""
        by_nb_ex: dict[str, list[CatalogueEntry]] = {}
        by_nb_q: dict[str, list[CatalogueEntry]] = {}
        for ex in self.exercises:
            by_nb_ex.setdefault(normalise_notebook(ex.notebook), []).append(ex)
        for q in self.quiz:
            by_nb_q.setdefault(normalise_notebook(q.notebook), []).append(q)
        return by_nb_ex, by_nb_q


def progress_summary(catalogue: Catalogue, notebook: str | None = None) -> list[NotebookProgress]:
    """Per-notebook progress against ``catalogue`` (one notebook, or all it knows).

    Totals come from the catalogue (the exercise registry); ids recorded in the file but no
    longer registered (an exercise renamed since) are not counted.
    """
    return _summary(read_progress_file(), catalogue, notebook)


def _summary(
    info: ProgressFile, catalogue: Catalogue, notebook: str | None
) -> list[NotebookProgress]:
    _report(info)
    data = info.data
    ex_by_nb, q_by_nb = catalogue.by_notebook()
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


_SHORT_STATE = {
    "newer": "the progress file was written by a newer coursekit (schema {schema!r}); "
    "upgrade coursekit",
    "invalid-schema": "the progress file has an invalid schema; see the message above",
    "corrupt": "the progress file is corrupt; see the message above",
    "unreadable": "the progress file cannot be read; see the message above",
}


def _fraction(done: int, total: int) -> str:
    return f"{done} / {total}" if total else "-"


def progress_table(catalogue: Catalogue, notebook: str | None = None) -> str:
    """A plain-text table of passed / total exercises and correct / total quiz answers.

    Totals come from ``catalogue``. Without ``notebook``: one row per notebook with registered
    exercises, and a total row. With ``notebook``: its row, then one line per exercise (passed,
    or not yet and how often it was tried).
    """
    info = read_progress_file()
    rows = _summary(info, catalogue, notebook)
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
    if not info.usable:
        why = _SHORT_STATE[info.state].format(schema=info.schema)
        lines.append(f"(your recorded progress is not shown: {why})")
    if not _enabled():
        lines.append(f"(recording is switched off: {DISABLE_ENV}={os.environ.get(DISABLE_ENV)})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line


def main(argv: list[str] | None = None) -> int:
    """``python -m coursekit.progress --reset [NOTEBOOK]``: forget progress (of NOTEBOOK, or all).

    Showing progress needs the exercise registry, which lives above this module: use
    ``coursekit progress [NOTEBOOK]``. The answer key: ``python -m coursekit.exercises.answer_key``.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m coursekit.progress", description=main.__doc__)
    parser.add_argument("notebook", nargs="?", default=None)
    parser.add_argument(
        "--reset", action="store_true", help="forget progress (of NOTEBOOK, or all)"
    )
    parser.add_argument("--answer-key", nargs="?", const="-", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.answer_key is not None:
        doc = "" if args.answer_key == "-" else f" {args.answer_key}"
        print(
            "The answer key moved: run `python -m coursekit.exercises.answer_key" + doc + "`.",
            file=sys.stderr,
        )
        return 2
    if not args.reset:
        shown = f" {args.notebook}" if args.notebook else ""
        print(
            f"To see your progress run `coursekit progress{shown}`; this module only resets it "
            f"(`python -m coursekit.progress --reset{shown}`).",
            file=sys.stderr,
        )
        return 2
    if not reset_progress(args.notebook):
        print("Progress was not reset (see the message above).", file=sys.stderr)
        return 1
    print(f"Progress of notebook {args.notebook} reset." if args.notebook else "Progress reset.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
