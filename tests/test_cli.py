"""The command line, run as a learner runs it (a subprocess): problems end in a clear message and
an exit status, never in a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _unavailable_device() -> str:
    from coursekit.runtime import available_devices

    return next(d for d in ("cuda", "mps", "xpu") if d not in available_devices())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: progress and data in tmp_path, a local (empty) mirror: no network."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    values = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COURSEKIT_") or k == "COURSEKIT_PROGRESS"
    }
    values.update(
        COURSEKIT_HOME=str(tmp_path / "home"),
        COURSEKIT_DATA_DIR=str(tmp_path / "cache"),
        COURSEKIT_DATA_MIRROR=str(mirror),
        PYTHONWARNINGS="ignore",
    )
    return values


def _coursekit(
    *args: str, env: dict[str, str], console_script: bool = False
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("coursekit")
    if console_script and script.is_file():
        cmd = [str(script), *args]
    else:
        cmd = [sys.executable, "-m", "coursekit.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr


@pytest.mark.slow
def test_doctor_with_an_unavailable_device(env):
    env["COURSEKIT_DEVICE"] = _unavailable_device()
    done = _coursekit("doctor", env=env, console_script=True)
    _no_traceback(done)
    assert done.returncode == 1
    assert "!! Compute device:" in done.stdout and "was requested" in done.stdout
    assert "fix: Unset COURSEKIT_DEVICE" in done.stdout


@pytest.mark.slow
def test_doctor_with_a_mistyped_profile_and_unwritable_folders(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env.update(
        COURSEKIT_PROFILE="lapotp",
        COURSEKIT_DATA_DIR=str(blocker / "cache"),
        COURSEKIT_HOME=str(blocker / "home"),
    )
    done = _coursekit("doctor", env=env)
    _no_traceback(done)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    problems = [line.strip() for line in lines if line.strip().startswith("!! ")]
    assert any("Speed and run profile" in p and "lapotp" in p for p in problems), done.stdout
    assert any("Data files and network" in p and "cannot be written" in p for p in problems)
    assert any("Progress file" in p and "cannot be written" in p for p in problems)
    for index, line in enumerate(lines):  # every problem is followed by its fix
        if line.strip().startswith("!! "):
            assert lines[index + 1].strip().startswith("fix: ")


def test_data_fetch_into_a_cache_that_is_a_file(env, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env["COURSEKIT_DATA_DIR"] = str(blocker)
    done = _coursekit("data", "fetch", "tinyshakespeare", env=env)
    _no_traceback(done)
    assert done.returncode != 0
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[0] and "COURSEKIT_DATA_DIR" in err[0]


def test_student_into_its_own_folder(tmp_path, env):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 42\n### END SOLUTION")]
    nbformat.write(nb, folder / "01_x.ipynb")
    before = (folder / "01_x.ipynb").read_bytes()
    done = _coursekit(
        "student", str(folder), str(folder), env=env
    )  # more cases: test_student_safety
    _no_traceback(done)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert (folder / "01_x.ipynb").read_bytes() == before


def test_progress_of_a_newer_coursekit_is_reported_and_untouched(env, tmp_path):
    home = Path(env["COURSEKIT_HOME"])
    home.mkdir()
    path = home / "progress.json"
    path.write_text(json.dumps({"schema": 5, "exercises": {"00": {"00.1": {"passed": True}}}}))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    done = _coursekit("progress", env=env)
    _no_traceback(done)
    assert done.returncode == 0
    assert "schema 5" in done.stderr and "upgrade coursekit" in done.stderr
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
