"""The instructors' answer key, generated from the exercise registry.

:func:`answer_key_markdown` writes the overview table (notebook, exercise, what it asks,
difficulty, minutes), one line per exercise naming its check function and what it verifies, the
quiz answers, and the feedback on each wrong option of the questions that have it.
``docs/instructors.md`` embeds it between ``<!-- answer-key:begin -->`` and
``<!-- answer-key:end -->``; :func:`update_answer_key` refreshes it there::

    python -m coursekit.exercises.answer_key docs/instructors.md   # fill it in
    python -m coursekit.exercises.answer_key                       # print it
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coursekit.exercises.registry import all_exercises, all_quiz_questions
from coursekit.files import atomic_write_text
from coursekit.progress import normalise_notebook

KEY_BEGIN = "<!-- answer-key:begin -->"
KEY_END = "<!-- answer-key:end -->"

_DIFFICULTY = {1: "easy", 2: "medium", 3: "hard"}

_HELPER_PHRASES = {
    "expect_close": "values against a reference (within a tolerance)",
    "expect_shape": "shape",
    "expect_dtype": "dtype",
    "expect_equal": "exact value",
    "expect_true": "conditions on the answer (type, range)",
    "expect_tensor": "returns a tensor",
}


def _cell(text: str) -> str:
    """Make ``text`` safe for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _check_summary(fn: Any) -> str:
    """What a check verifies: its docstring's first paragraph, else the helpers it calls."""
    doc = inspect.getdoc(fn)
    if doc:
        return " ".join(doc.split("\n\n", 1)[0].split())
    try:
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


def _by_notebook(items: Sequence[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for item in items:
        grouped.setdefault(normalise_notebook(item.notebook), []).append(item)
    return grouped


def answer_key_markdown(
    exercises: Sequence[Any] | None = None, questions: Sequence[Any] | None = None
) -> str:
    """The answer-key overview (notebook, exercise, what it asks, difficulty, minutes) in Markdown.

    Generated from :mod:`coursekit.exercises.registry` (or the ``exercises`` and ``questions``
    given), so it follows the checks exactly; ``docs/instructors.md`` embeds it between
    ``<!-- answer-key:begin -->`` and ``:end``. Below the table, one line per exercise names the
    check function and what it verifies.
    """
    ex_by_nb = _by_notebook(all_exercises() if exercises is None else exercises)
    q_by_nb = _by_notebook(all_quiz_questions() if questions is None else questions)
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
    why_wrong: list[str] = []
    for nb in sorted(q_by_nb):
        for q in q_by_nb[nb]:
            options = getattr(q, "options", None)
            answer = getattr(q, "answer", None)
            if options is None or answer is None:
                continue
            right = f"({'abcdefgh'[answer]}) {_cell(options[answer])}"
            quiz_rows.append(f"| {nb} | `{q.id}` | {_cell(q.question)} | {right} |")
            feedback = getattr(q, "feedback", ())
            if feedback:
                why_wrong.append(f"- `{q.id}`, right answer ({'abcdefgh'[answer]}):")
                why_wrong += [
                    f"  - ({'abcdefgh'[i]}) {_cell(options[i])}: {_cell(text)}"
                    for i, text in enumerate(feedback)
                    if i != answer
                ]
    if quiz_rows:
        lines += ["", "Quiz answers:", "", "| notebook | question | asks | right answer |"]
        lines += ["|---|---|---|---|", *quiz_rows]
    if why_wrong:
        lines += [
            "",
            "Why each wrong option is wrong (the feedback a learner sees on picking it):",
            "",
            *why_wrong,
        ]
    return "\n".join(lines)


def update_answer_key(doc: Path) -> bool:
    """Replace the text between the answer-key markers in ``doc``; True if it changed."""
    text = doc.read_text(encoding="utf-8")
    if KEY_BEGIN not in text or KEY_END not in text:
        raise ValueError(f"{doc} has no '{KEY_BEGIN}' ... '{KEY_END}' markers to fill.")
    head, rest = text.split(KEY_BEGIN, 1)
    _, tail = rest.split(KEY_END, 1)
    new = f"{head}{KEY_BEGIN}\n{answer_key_markdown()}\n{KEY_END}{tail}"
    if new != text:
        atomic_write_text(doc, new)
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """``python -m coursekit.exercises.answer_key [DOC]``: print the key, or fill it into DOC."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m coursekit.exercises.answer_key", description=main.__doc__
    )
    parser.add_argument(
        "doc", nargs="?", default=None, help="a Markdown file with the answer-key markers"
    )
    args = parser.parse_args(argv)
    if args.doc is None:
        print(answer_key_markdown())
        return 0
    try:
        changed = update_answer_key(Path(args.doc))
    except (OSError, ValueError) as exc:
        print(f"python -m coursekit.exercises.answer_key: {exc}", file=sys.stderr)
        return 2
    print(f"{args.doc}: {'updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
