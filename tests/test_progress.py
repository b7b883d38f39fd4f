"""coursekit.progress: the local progress file and its tables (the answer key: test_answer_key)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit import progress
from coursekit.exercises import progress_catalogue
from coursekit.exercises.registry import all_exercises

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh COURSEKIT_HOME for each test; recording switched on."""
    folder = tmp_path / "ckhome"
    monkeypatch.setenv(progress.HOME_ENV, str(folder))
    monkeypatch.delenv(progress.DISABLE_ENV, raising=False)
    progress._said.clear()
    return folder


@pytest.fixture
def fake_registry():
    """Two notebooks with known exercises and quiz questions, as the catalogue progress counts."""
    ex = [
        SimpleNamespace(id="01.1", notebook="01", title="BPE merges"),
        SimpleNamespace(id="01.2", notebook="01", title="Skip-gram"),
        SimpleNamespace(id="03.1", notebook="03", title="Attention"),
    ]
    qs = [
        SimpleNamespace(id="01.q1", notebook="01"),
        SimpleNamespace(id="03.q1", notebook="03"),
        SimpleNamespace(id="03.q2", notebook="03"),
    ]
    return progress.Catalogue.of(ex, qs)


def read(home: Path) -> dict:
    return json.loads((home / "progress.json").read_text(encoding="utf-8"))


def test_default_home_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv(progress.HOME_ENV, raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(lambda: tmp_path))
    assert progress.progress_path() == tmp_path / ".coursekit" / "progress.json"
    assert "(kept in ~/.coursekit/progress.json)" in progress.progress_table(progress_catalogue())


def test_notebook_table_shows_no_machine_specific_path(home):
    """The last cell's output is stored in the notebooks: it must not contain a local path."""
    table = progress.progress_table(progress_catalogue(), "00")
    assert str(home) not in table and str(Path.home()) not in table


def test_home_inside_the_repository_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(progress.HOME_ENV, str(ROOT / "notebooks" / ".progress"))
    monkeypatch.setattr(Path, "home", staticmethod(lambda: tmp_path))
    progress._said.clear()
    assert progress.progress_home() == tmp_path / ".coursekit"
    assert "inside the course repository" in capsys.readouterr().err


def test_a_pass_is_recorded_and_kept(home, fake_registry):
    progress.record_exercise("01", "01.1", False)
    assert read(home)["exercises"]["01"]["01.1"]["passed"] is False
    progress.record_exercise("01", "01.1", True)
    progress.record_exercise("01", "01.1", False)
    entry = read(home)["exercises"]["01"]["01.1"]
    assert entry["passed"] is True and entry["last_passed"] is False
    assert entry["attempts"] == 3 and "first_passed" in entry
    assert not list(home.glob(".progress.json.*.tmp")), "temporary files left behind"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["01.1", "01.2", "03.1"]), st.booleans()), max_size=12))
def test_passed_means_passed_at_least_once(tmp_path_factory, attempts):
    folder = tmp_path_factory.mktemp("prop")
    old = os.environ.get(progress.HOME_ENV)
    os.environ[progress.HOME_ENV] = str(folder)
    try:
        for ex_id, ok in attempts:
            progress.record_exercise(ex_id[:2], ex_id, ok)
        data = progress.load_progress()
    finally:
        if old is None:
            os.environ.pop(progress.HOME_ENV, None)
        else:
            os.environ[progress.HOME_ENV] = old
    for ex_id in {e for e, _ in attempts}:
        entry = data["exercises"][ex_id[:2]][ex_id]
        assert entry["passed"] == any(ok for e, ok in attempts if e == ex_id)
        assert entry["attempts"] == sum(1 for e, _ in attempts if e == ex_id)
        assert entry["last_passed"] == [ok for e, ok in attempts if e == ex_id][-1]


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        (3, "03"),
        ("3", "03"),
        ("03", "03"),
        ("03_attention.ipynb", "03"),
        ("12", "12"),
        ("intro", "intro"),
    ],
)
def test_notebook_names_are_normalised(given_, expected):
    assert progress.normalise_notebook(given_) == expected


def test_quiz_answers_are_recorded(home, fake_registry):
    progress.record_quiz("03", "03.q1", False)
    progress.record_quiz("03", "03.q1", True)
    entry = read(home)["quiz"]["03"]["03.q1"]
    assert entry["correct"] is True and entry["attempts"] == 2


def test_table_counts_against_the_registry(home, fake_registry):
    progress.record_exercise("01", "01.1", True)
    progress.record_exercise("01", "01.2", False)
    progress.record_exercise("01", "01.old", True)  # no longer registered: not counted
    progress.record_quiz("03", "03.q2", True)
    rows = {r.notebook: r for r in progress.progress_summary(fake_registry)}
    assert (rows["01"].exercises_passed, len(rows["01"].exercises)) == (1, 2)
    assert (rows["03"].quiz_correct, len(rows["03"].quiz)) == (1, 2)
    table = progress.progress_table(fake_registry)
    lines = {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}
    assert "1 / 2" in lines["01"] and "0 / 1" in lines["01"]
    assert "0 / 1" in lines["03"] and "1 / 2" in lines["03"]
    assert "1 / 3" in lines["total"] and "1 / 3" in lines["total"].split("1 / 3", 1)[1]


def test_table_for_one_notebook_lists_each_exercise(home, fake_registry):
    progress.record_exercise("01", "01.2", False)
    progress.record_exercise("01", "01.2", False)
    progress.record_exercise("01", "01.1", True)
    table = progress.progress_table(fake_registry, "1")
    assert "[x] 01.1" in table and "passed" in table
    assert "[ ] 01.2" in table and "tried 2x" in table
    assert "total" not in table and "03" not in table.splitlines()[3]


def test_missing_file_is_an_empty_record(home, fake_registry, capsys):
    assert progress.load_progress()["exercises"] == {}
    assert "0 / 2" in progress.progress_table(fake_registry, "01")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[1, 2, 3]",
        b'"just a string"',
        b"\xff\xfe\x00garbage",
    ],
)
def test_corrupt_file_is_moved_aside_and_rebuilt(home, fake_registry, capsys, content):
    home.mkdir(parents=True)
    (home / "progress.json").write_bytes(content)
    progress.record_exercise("01", "01.1", True)  # never raises
    err = capsys.readouterr().err
    assert "could not be read" in err and "fresh progress record" in err
    backups = list(home.glob("progress.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == content
    assert read(home)["exercises"]["01"]["01.1"]["passed"] is True


# -- viewing never writes; nothing is lost ----------------------------------------------------


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize(
    "content",
    [
        b'{"schema": 1, "exercises": {"01": {"01.1": {"passed": true, "attempts": 2}}}, "quiz": {}}',
        b"{not json",
        b"[1, 2, 3]",
        b'{"schema": 2, "exercises": {"01": {"01.1": {"passed": true}}}, "quiz": {}}',
        b'{"schema": "abc", "exercises": {}, "quiz": {}}',
        b'{"exercises": {"01": {"01.1": "yes", "01.2": true}}, "quiz": {}}',
    ],
)
def test_viewing_progress_never_rewrites_the_file(home, fake_registry, capsys, content):
    from coursekit.cli import main

    home.mkdir(parents=True)
    path = home / "progress.json"
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(path)
    progress.load_progress()
    progress.progress_summary(fake_registry)
    progress.progress_table(fake_registry)
    progress.progress_table(fake_registry, "01")
    assert main(["progress"]) == 0
    assert _snapshot(path) == before
    assert sorted(p.name for p in home.iterdir()) == ["progress.json"]  # nothing moved or added


def test_newer_schema_is_left_untouched_and_reported(home, fake_registry, capsys):
    home.mkdir(parents=True)
    path = home / "progress.json"
    path.write_text(json.dumps({"schema": 2, "exercises": {"01": {"01.1": {"passed": True}}}}))
    before = _snapshot(path)
    table = progress.progress_table(fake_registry, "01")
    err = capsys.readouterr().err
    assert "schema 2" in err and "knows schema 1" in err and "upgrade coursekit" in err
    assert "newer coursekit" in table
    progress.record_exercise("01", "01.2", True)  # refused, not downgraded
    progress.reset_progress()
    assert _snapshot(path) == before
    assert sorted(p.name for p in home.iterdir()) == ["progress.json", "progress.json.lock"]


@pytest.mark.parametrize(("schema", "usable"), [("1", True), (" 1 ", True), (1.0, True), (1, True)])
def test_schema_given_as_a_string_is_accepted(home, fake_registry, capsys, schema, usable):
    home.mkdir(parents=True)
    (home / "progress.json").write_text(
        json.dumps({"schema": schema, "exercises": {"01": {"01.1": {"passed": True}}}})
    )
    assert progress.progress_summary(fake_registry, "01")[0].exercises["01.1"] is True
    assert capsys.readouterr().err == ""
    progress.record_exercise("01", "01.2", True)
    assert read(home)["schema"] == 1 and read(home)["exercises"]["01"]["01.1"]["passed"] is True


@pytest.mark.parametrize("schema", ["abc", "1.5", 1.5, True, None, [1], -1, 0])
def test_invalid_schema_is_reported_not_a_crash(home, fake_registry, capsys, schema):
    home.mkdir(parents=True)
    path = home / "progress.json"
    path.write_text(json.dumps({"schema": schema, "exercises": {}, "quiz": {}}))
    before = _snapshot(path)
    progress.progress_table(fake_registry, "01")
    assert "invalid schema" in capsys.readouterr().err
    progress.record_exercise("01", "01.1", True)
    assert _snapshot(path) == before


def test_string_schema_of_a_newer_version_is_newer(home, fake_registry, capsys):
    home.mkdir(parents=True)
    (home / "progress.json").write_text(json.dumps({"schema": "7", "exercises": {}}))
    progress.progress_table(fake_registry)
    assert "schema '7'" in capsys.readouterr().err


def test_one_malformed_entry_is_skipped_not_the_whole_record(home, fake_registry, capsys):
    home.mkdir(parents=True)
    path = home / "progress.json"
    original = json.dumps(
        {
            "schema": 1,
            "exercises": {"01": {"01.1": "yes", "01.2": {"passed": True, "attempts": 3}}},
            "quiz": {"03": ["not", "an", "object"], "01": {"01.q1": {"correct": True}}},
        }
    )
    path.write_text(original)
    row = progress.progress_summary(fake_registry, "01")[0]
    assert row.exercises == {"01.1": False, "01.2": True} and row.quiz == {"01.q1": True}
    err = capsys.readouterr().err
    assert "skipped 2 malformed entries" in err and "01.1" in err and "'03'" in err
    progress.record_exercise("01", "01.1", True)  # rewrites, keeping a copy of the file as it was
    data = read(home)
    assert data["exercises"]["01"]["01.2"]["attempts"] == 3
    assert data["exercises"]["01"]["01.1"]["passed"] is True
    assert data["quiz"]["01"]["01.q1"]["correct"] is True
    backups = list(home.glob("progress.json.before-repair-*"))
    assert len(backups) == 1 and backups[0].read_text() == original
    assert not list(home.glob("progress.json.corrupt-*"))


def test_a_section_of_the_wrong_type_is_skipped(home, fake_registry, capsys):
    home.mkdir(parents=True)
    (home / "progress.json").write_text(
        json.dumps({"exercises": [], "quiz": {"01": {"01.q1": True}}})
    )
    assert progress.progress_summary(fake_registry, "01")[0].quiz == {"01.q1": True}
    assert "'exercises' is [], not an object" in capsys.readouterr().err


def test_leftover_temporary_files_are_removed_by_the_next_recording(home, fake_registry):
    home.mkdir(parents=True)
    stale = home / ".progress.json.abc123.tmp"
    stale.write_text('{"exercises": {"01": ')  # a write killed half-way
    progress.record_exercise("01", "01.1", True)
    assert not stale.exists()
    assert read(home)["exercises"]["01"]["01.1"]["passed"] is True


def test_two_quarantines_in_one_second_keep_both_files(home, fake_registry, capsys):
    home.mkdir(parents=True)
    for content in (b"{first", b"{second"):
        (home / "progress.json").write_bytes(content)
        progress.record_exercise("01", "01.1", True)
    kept = sorted(p.read_bytes() for p in home.glob("progress.json.corrupt-*"))
    assert kept == [b"{first", b"{second"]


def test_early_format_with_bare_booleans_is_read(home, fake_registry):
    home.mkdir(parents=True)
    (home / "progress.json").write_text(
        json.dumps({"exercises": {"01": {"01.1": True}}, "quiz": {}})
    )
    assert progress.progress_summary(fake_registry, "01")[0].exercises == {
        "01.1": True,
        "01.2": False,
    }
    progress.record_exercise("01", "01.2", True)
    assert read(home)["exercises"]["01"]["01.1"]["passed"] is True


def test_unwritable_home_is_not_fatal(tmp_path, monkeypatch, capsys, fake_registry):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(progress.HOME_ENV, str(blocker / "home"))
    progress._said.clear()
    progress.record_exercise("01", "01.1", True)
    progress.record_exercise("01", "01.1", True)
    err = capsys.readouterr().err
    assert err.count("could not save your progress") == 1  # said once, not at every check
    assert "0 / 2" in progress.progress_table(fake_registry, "01")


def test_a_failed_write_leaves_the_old_file_intact(home, fake_registry, monkeypatch, capsys):
    progress.record_exercise("01", "01.1", True)
    before = (home / "progress.json").read_bytes()

    def crash(data, handle, **kwargs):
        handle.write('{"exercises": {"01": ')  # half a file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(progress.json, "dump", crash)
    progress.record_exercise("01", "01.2", True)
    assert (home / "progress.json").read_bytes() == before
    assert not list(home.glob(".progress.json.*.tmp"))
    assert "No space left on device" in capsys.readouterr().err


def _record_many(home: str, worker: int, n: int) -> None:
    os.environ[progress.HOME_ENV] = home
    for i in range(n):
        progress.record_exercise("01", f"01.{worker}", i % 2 == 0)


def test_simultaneous_kernels_do_not_lose_updates(home):
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    procs = [ctx.Process(target=_record_many, args=(str(home), w, 15)) for w in (1, 2, 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = read(home)["exercises"]["01"]
    assert [data[f"01.{w}"]["attempts"] for w in (1, 2, 3)] == [15, 15, 15]


def test_recording_can_be_switched_off(home, monkeypatch):
    monkeypatch.setenv(progress.DISABLE_ENV, "off")
    progress.record_exercise("01", "01.1", True)
    assert not (home / "progress.json").exists()


def test_reset_one_notebook_or_all(home, fake_registry):
    progress.record_exercise("01", "01.1", True)
    progress.record_exercise("03", "03.1", True)
    progress.reset_progress("3")
    assert "03" not in read(home)["exercises"] and "01" in read(home)["exercises"]
    progress.reset_progress()
    assert read(home)["exercises"] == {}


def test_check_records_progress_and_show_progress_prints_it(home, capsys):
    from coursekit.exercises import check, show_progress

    def softmax_t(x, t):
        return torch.softmax(x / t, dim=-1)

    assert check("00.2", softmax_t, strict=False) is True
    assert check("00.1", lambda n, k, m: n * k * m, strict=False) is False
    assert check("00.1", lambda n, k, m: 2 * n * k * m, strict=False, record=False) is True
    data = read(home)["exercises"]["00"]
    assert data["00.2"]["passed"] is True and data["00.1"]["passed"] is False
    capsys.readouterr()
    show_progress("00")
    out = capsys.readouterr().out
    n00 = sum(1 for e in all_exercises() if e.notebook == "00")
    assert f"1 / {n00}" in out and "[x] 00.2" in out and "[ ] 00.1" in out


def test_cli_progress_prints_every_notebook(home, capsys):
    from coursekit.cli import main

    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    for nb in {e.notebook for e in all_exercises()}:
        assert f"\n{nb} " in out
    assert "total" in out


# -- progress sits below the exercises: it is given the catalogue, it never imports it ---------


def test_progress_does_not_import_the_exercises():
    code = (
        "import sys, coursekit.progress\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('coursekit.exercises'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_catalogue_groups_by_normalised_notebook():
    catalogue = progress.Catalogue.of(
        [SimpleNamespace(id="03.1", notebook="3", title="Attention")],
        [SimpleNamespace(id="03.q1", notebook="03_attention.ipynb")],
    )
    assert catalogue.exercises == (progress.CatalogueEntry("3", "03.1", "Attention"),)
    assert catalogue.quiz[0].title == ""
    ex_by_nb, q_by_nb = catalogue.by_notebook()
    assert list(ex_by_nb) == ["03"] and list(q_by_nb) == ["03"]


def test_progress_catalogue_follows_the_registry():
    catalogue = progress_catalogue()
    assert [e.id for e in catalogue.exercises] == [e.id for e in all_exercises()]
    assert all(e.title for e in catalogue.exercises) and catalogue.quiz


def test_a_broken_registry_still_shows_progress(home, monkeypatch, capsys):
    import coursekit.exercises as exercises

    def broken():
        raise ImportError("nb07 is broken")

    monkeypatch.setattr(exercises, "all_exercises", broken)
    exercises.show_progress()
    captured = capsys.readouterr()
    assert "could not load the exercise registry (ImportError: nb07 is broken)" in captured.err
    assert "Your progress" in captured.out and "no exercises are registered" in captured.out


def test_module_command_resets_and_points_to_coursekit_progress(home, fake_registry, capsys):
    progress.record_exercise("01", "01.1", True)
    progress.record_exercise("03", "03.1", True)
    assert progress.main(["03", "--reset"]) == 0
    assert "03" not in read(home)["exercises"] and "01" in read(home)["exercises"]
    assert progress.main(["--reset"]) == 0
    assert read(home)["exercises"] == {}
    capsys.readouterr()
    assert progress.main(["03"]) == 2
    assert "coursekit progress 03" in capsys.readouterr().err
    assert progress.main(["--answer-key"]) == 2
    assert "python -m coursekit.exercises.answer_key" in capsys.readouterr().err
