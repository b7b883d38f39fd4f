"""coursekit.exercises.answer_key: the instructors' answer key, generated from the registry."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from coursekit.exercises import answer_key
from coursekit.exercises.registry import all_exercises, all_quiz_questions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_registry(monkeypatch):
    """Two notebooks with known exercises and quiz questions, in place of the registry."""
    ex = [
        SimpleNamespace(
            id="01.1", notebook="01", title="BPE merges", asks="a", difficulty=1, minutes=5
        ),
        SimpleNamespace(
            id="01.2", notebook="01", title="Skip-gram", asks="b", difficulty=2, minutes=15
        ),
        SimpleNamespace(
            id="03.1", notebook="03", title="Attention", asks="c|d", difficulty=3, minutes=20
        ),
    ]
    qs = [
        SimpleNamespace(id="01.q1", notebook="01"),
        SimpleNamespace(id="03.q1", notebook="03"),
        SimpleNamespace(id="03.q2", notebook="03"),
    ]
    monkeypatch.setattr(answer_key, "all_exercises", lambda: ex)
    monkeypatch.setattr(answer_key, "all_quiz_questions", lambda: qs)
    return ex, qs


def test_answer_key_lists_every_registered_exercise():
    key = answer_key.answer_key_markdown()
    rows = [line for line in key.splitlines() if re.match(r"^\| \S+ \| `[^`]+` [^|]", line)]
    assert len(rows) == len(all_exercises())
    for ex in all_exercises():
        assert f"`{ex.id}` {ex.title}" in key
    assert f"{len(all_quiz_questions())} quiz questions" in key
    for q in all_quiz_questions():
        letter = "abcdefgh"[q.answer]
        assert re.search(rf"\| `{re.escape(q.id)}` \|.*\| \({letter}\) [^|]*\|$", key, re.M), q.id


def test_answer_key_lists_the_feedback_on_each_wrong_option():
    key = answer_key.answer_key_markdown()
    with_feedback = [q for q in all_quiz_questions() if q.feedback]
    assert with_feedback
    for q in with_feedback:
        block = key.split(f"- `{q.id}`, right answer ({'abcdefgh'[q.answer]}):\n", 1)[1]
        block = block.split("\n- ", 1)[0]
        for i, text in enumerate(q.feedback):
            line = (
                f"  - ({'abcdefgh'[i]}) {answer_key._cell(q.options[i])}: {answer_key._cell(text)}"
            )
            assert (line in block) == (i != q.answer), (q.id, i)


def test_answer_key_escapes_table_cells(fake_registry):
    key = answer_key.answer_key_markdown()
    assert "c\\|d" in key and "| hard | 20 |" in key
    assert "3 exercises in 2 notebooks, about 40 minutes" in key


def test_answer_key_of_given_exercises_and_questions(fake_registry):
    ex, qs = fake_registry
    assert answer_key.answer_key_markdown(ex, qs) == answer_key.answer_key_markdown()
    only_03 = answer_key.answer_key_markdown(ex[2:], [])
    assert "1 exercises in 1 notebooks, about 20 minutes" in only_03 and "0 quiz" in only_03


def test_update_answer_key_between_markers(tmp_path, fake_registry):
    doc = tmp_path / "guide.md"
    doc.write_text(f"intro\n{answer_key.KEY_BEGIN}\nold table\n{answer_key.KEY_END}\noutro\n")
    assert answer_key.update_answer_key(doc) is True
    text = doc.read_text()
    assert "old table" not in text and "`03.1`" in text and text.endswith("outro\n")
    assert answer_key.update_answer_key(doc) is False
    (tmp_path / "bad.md").write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        answer_key.update_answer_key(tmp_path / "bad.md")


def test_module_command_prints_or_fills_the_key(tmp_path, fake_registry, capsys):
    assert answer_key.main([]) == 0
    assert capsys.readouterr().out.strip() == answer_key.answer_key_markdown().strip()
    doc = tmp_path / "guide.md"
    doc.write_text(f"{answer_key.KEY_BEGIN}\n{answer_key.KEY_END}\n")
    assert answer_key.main([str(doc)]) == 0
    assert "updated" in capsys.readouterr().out
    assert answer_key.main([str(doc)]) == 0
    assert "already up to date" in capsys.readouterr().out
    assert answer_key.main([str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in capsys.readouterr().err


def test_instructors_guide_answer_key_is_up_to_date():
    doc = ROOT / "docs" / "instructors.md"
    text = doc.read_text(encoding="utf-8")
    inside = text.split(answer_key.KEY_BEGIN, 1)[1].split(answer_key.KEY_END, 1)[0].strip()
    assert inside == answer_key.answer_key_markdown().strip(), (
        "docs/instructors.md's answer key is out of date: run "
        "`python -m coursekit.exercises.answer_key docs/instructors.md`"
    )
