"""coursekit.doctor: each troubleshooting detection fires on its problem and stays quiet otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from coursekit import doctor
from coursekit.doctor import Finding

ROOT = Path(__file__).resolve().parents[1]
LAB_OK = """JupyterLab v4.6.6
/env/share/jupyter/labextensions
        jupyterlab_pygments v0.3.0 enabled OK (python, jupyterlab_pygments)
        @jupyter-widgets/jupyterlab-manager v5.0.16 enabled OK (python, jupyterlab_widgets)
"""


@pytest.fixture
def fake_jupyter(monkeypatch):
    """Pretend `jupyter` is on PATH and answers `labextension list` with the given text."""

    def install(output: str, code: int = 0):
        calls = []
        monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/env/bin/{name}")

        def run(cmd, timeout=60.0):
            calls.append(list(cmd))
            return code, output

        monkeypatch.setattr(doctor, "_run", run)
        return calls

    return install


def test_finding_has_the_fields_the_cli_uses():
    f = Finding("Widgets", False, "missing", "install it")
    assert (f.name, f.ok, f.message, f.fix) == ("Widgets", False, "missing", "install it")
    assert "fix: install it" in str(f) and str(Finding("x", True, "fine")).startswith("[ok]")


def test_a_crashing_check_becomes_a_failed_finding():
    def check_boom() -> Finding:
        """Something that breaks."""
        raise RuntimeError("kaput")

    findings = doctor.run_checks([check_boom, lambda: Finding("fine", True, "ok")])
    assert [f.ok for f in findings] == [False, True]
    assert "kaput" in findings[0].message and findings[0].name == "Boom"


def test_run_checks_covers_every_troubleshooting_topic(monkeypatch, fake_jupyter):
    fake_jupyter(LAB_OK)
    monkeypatch.setattr(doctor, "_can_connect", lambda host, port=443, timeout=3.0: True)
    findings = doctor.run_checks()
    names = [f.name for f in findings]
    assert len(names) == len(set(names)) == len(doctor.CHECKS)
    assert all(isinstance(f, Finding) and f.message for f in findings)
    guide = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    for name in names:  # every finding is explained under its own heading
        assert f"## {name}" in guide, f"docs/troubleshooting.md has no section '## {name}'"


def _section(guide: str, heading: str) -> str:
    return guide.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(
    ("heading", "words"),
    [
        ("Data files and network", "The data cache cannot be written"),
        ("Data files and network", "The cache path is a file"),
        ("Data files and network", "Leftover temporary downloads"),
        ("Progress file", "The progress folder is not writable"),
        ("Progress file", "A progress file from a newer coursekit"),
        ("Progress file", "An invalid schema"),
        ("Progress file", "Malformed entries"),
    ],
)
def test_troubleshooting_explains_each_reported_problem(heading, words):
    """Each problem the doctor and the data layer report has its paragraph, with a fix."""
    guide = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    section = _section(guide, heading)
    assert f"**{words}.**" in section, f"'## {heading}' does not explain: {words}"
    paragraph = section.split(f"**{words}.**", 1)[1].split("\n\n", 1)[0]
    assert "Fix:" in paragraph, f"the paragraph on {words!r} gives no fix"


# -- kernel ---------------------------------------------------------------------------------


def test_kernel_of_this_environment_is_ok(monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))  # ignore kernels of the user's own set-up
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    finding = doctor.check_kernel()
    assert finding.ok, finding


def test_missing_kernel_is_detected(monkeypatch):
    from jupyter_client import kernelspec

    def no_kernel(self, name):
        raise kernelspec.NoSuchKernel(name)

    monkeypatch.setattr(kernelspec.KernelSpecManager, "get_kernel_spec", no_kernel)
    finding = doctor.check_kernel()
    assert not finding.ok and "no kernel named 'python3'" in finding.message
    assert "ipykernel install" in finding.fix


def test_kernel_of_a_removed_environment_is_detected(monkeypatch):
    from jupyter_client import kernelspec

    spec = kernelspec.KernelSpec(argv=["/gone/env/bin/python", "-m", "ipykernel_launcher"])
    monkeypatch.setattr(kernelspec.KernelSpecManager, "get_kernel_spec", lambda self, n: spec)
    finding = doctor.check_kernel()
    assert not finding.ok and "does not exist" in finding.message


def test_kernel_in_another_environment_without_coursekit(monkeypatch, tmp_path):
    from jupyter_client import kernelspec

    other = tmp_path / "python"
    other.write_text("#!/bin/sh\nexit 3\n")
    other.chmod(0o755)
    spec = kernelspec.KernelSpec(argv=[str(other), "-m", "ipykernel_launcher"])
    monkeypatch.setattr(kernelspec.KernelSpecManager, "get_kernel_spec", lambda self, n: spec)
    finding = doctor.check_kernel()
    assert not finding.ok and "cannot import coursekit" in finding.message


# -- widgets ----------------------------------------------------------------------------------


def test_widget_extension_present(fake_jupyter):
    calls = fake_jupyter(LAB_OK)
    finding = doctor.check_widgets()
    assert finding.ok, finding
    assert calls == [["/env/bin/jupyter", "labextension", "list"]]


def test_widget_extension_missing_in_the_server_environment(fake_jupyter):
    fake_jupyter(
        "JupyterLab v4.6.6\n/env/share/jupyter/labextensions\n        other v1.0.0 enabled OK\n"
    )
    finding = doctor.check_widgets()
    assert not finding.ok and "no widget extension" in finding.message
    assert "jupyterlab_widgets" in finding.fix


def test_widget_extension_disabled(fake_jupyter):
    fake_jupyter(LAB_OK.replace("v5.0.16 enabled", "v5.0.16 disabled"))
    finding = doctor.check_widgets()
    assert not finding.ok and "labextension enable" in finding.fix


def test_widget_extension_of_the_wrong_generation(fake_jupyter):
    fake_jupyter(LAB_OK.replace("v5.0.16", "v3.0.9"))
    finding = doctor.check_widgets()
    assert not finding.ok and "does not match" in finding.message


def test_no_jupyter_on_path_falls_back_to_the_extension_files(monkeypatch):
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert doctor.check_widgets().ok  # this environment has jupyterlab_widgets installed
    monkeypatch.setattr(doctor, "_widget_extension_files", lambda: None)
    finding = doctor.check_widgets()
    assert not finding.ok and "not on PATH" in finding.message


# -- device, memory, speed --------------------------------------------------------------------


def test_mps_gets_a_note_on_numerical_differences(monkeypatch):
    import coursekit.runtime as runtime

    monkeypatch.setattr(runtime, "get_device", lambda prefer=None: torch.device("mps"))
    finding = doctor.check_device()
    assert finding.ok and "MPS" in finding.message and "differ" in finding.message


def test_unavailable_requested_device_is_a_problem(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.setenv("COURSEKIT_DEVICE", "cuda")
    finding = doctor.check_device()
    assert not finding.ok and "COURSEKIT_DEVICE" in finding.fix


def test_low_memory_is_detected(monkeypatch):
    monkeypatch.setattr(doctor, "_available_memory_bytes", lambda: int(0.5 * doctor.GiB))
    finding = doctor.check_memory()
    assert not finding.ok and "0.5 GiB" in finding.message and "smoke" in finding.fix
    monkeypatch.setattr(doctor, "_available_memory_bytes", lambda: 16 * doctor.GiB)
    assert doctor.check_memory().ok


def test_available_memory_is_read():
    value = doctor._available_memory_bytes()
    assert value is None or value > 0


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="the CPU-speed advice is for CPU-only machines"
)
def test_slow_cpu_suggests_the_smoke_profile(monkeypatch):
    monkeypatch.setattr(doctor, "_matmul_gflops", lambda: 1.0)
    monkeypatch.setenv("COURSEKIT_PROFILE", "laptop")
    finding = doctor.check_speed()
    assert not finding.ok and "COURSEKIT_PROFILE=smoke" in finding.fix
    monkeypatch.setenv("COURSEKIT_PROFILE", "smoke")
    assert doctor.check_speed().ok
    monkeypatch.setattr(doctor, "_matmul_gflops", lambda: 50.0)
    monkeypatch.setenv("COURSEKIT_PROFILE", "laptop")
    assert doctor.check_speed().ok


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_profile_without_a_gpu_is_a_problem(monkeypatch):
    monkeypatch.setenv("COURSEKIT_PROFILE", "gpu")
    assert not doctor.check_speed().ok


def test_unknown_profile_is_a_problem(monkeypatch):
    monkeypatch.setenv("COURSEKIT_PROFILE", "fast")
    finding = doctor.check_speed()
    assert not finding.ok and "smoke, laptop or gpu" in finding.fix


def test_matmul_speed_is_measured():
    assert doctor._matmul_gflops(n=64, repeats=2) > 0


# -- data and network -------------------------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSEKIT_DATA_DIR", str(cache))
    return cache


def test_data_in_the_mirror_is_fine(empty_cache, monkeypatch, tmp_path):
    from coursekit.data.registry import REGISTRY

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for ds in REGISTRY.values():
        (mirror / ds.filename).write_text("x")
    monkeypatch.setenv("COURSEKIT_DATA_MIRROR", str(mirror))
    finding = doctor.check_data()
    assert finding.ok and f"{len(REGISTRY)} available from the mirror" in finding.message


def test_no_network_and_no_mirror_is_detected(empty_cache, monkeypatch):
    monkeypatch.delenv("COURSEKIT_DATA_MIRROR", raising=False)
    probed = []
    monkeypatch.setattr(
        doctor, "_can_connect", lambda host, port=443, timeout=3.0: probed.append(host) or False
    )
    finding = doctor.check_data()
    assert not finding.ok and "cannot be reached" in finding.message
    assert "COURSEKIT_DATA_MIRROR" in finding.fix and probed
    monkeypatch.setattr(doctor, "_can_connect", lambda host, port=443, timeout=3.0: True)
    assert doctor.check_data().ok


def test_mirror_that_is_not_a_folder(empty_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSEKIT_DATA_MIRROR", str(tmp_path / "nowhere"))
    finding = doctor.check_data()
    assert not finding.ok and "not a folder" in finding.message


def test_mirror_missing_a_file(empty_cache, monkeypatch, tmp_path):
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("COURSEKIT_DATA_MIRROR", str(tmp_path / "mirror"))
    finding = doctor.check_data()
    assert not finding.ok and "lacks" in finding.message


def test_corrupted_cache_file(empty_cache, monkeypatch):
    from coursekit.data.registry import REGISTRY

    empty_cache.mkdir()
    name = next(iter(REGISTRY.values())).filename
    (empty_cache / name).write_text("truncated")
    finding = doctor.check_data(probe_network=False)
    assert not finding.ok and name in finding.message and "coursekit data fetch" in finding.fix


def test_low_disk_space(monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda p: usage(10, 10, 100 * 1024**2))
    assert not doctor.check_disk().ok


# -- progress file ----------------------------------------------------------------------------


def test_progress_file_states(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_HOME", str(tmp_path / "home"))
    assert doctor.check_progress().ok
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "progress.json").write_text("{oops")
    finding = doctor.check_progress()
    assert not finding.ok and "corrupt" in finding.message
    assert (tmp_path / "home" / "progress.json").read_text() == "{oops"  # the doctor only looks
    (tmp_path / "home" / "progress.json").write_text(json.dumps({"exercises": {}, "quiz": {}}))
    assert doctor.check_progress().ok


# -- the command line -------------------------------------------------------------------------


def test_cli_doctor_reports_problems_with_their_fix(monkeypatch, capsys):
    from coursekit.cli import main

    monkeypatch.setattr(
        doctor,
        "CHECKS",
        (
            lambda: Finding(
                "Widgets in JupyterLab",
                False,
                "no widget extension",
                "pip install jupyterlab_widgets",
            ),
        ),
    )
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "no widget extension" in out and "pip install jupyterlab_widgets" in out
    monkeypatch.setattr(doctor, "CHECKS", (lambda: Finding("Python version", True, "3.11"),))
    assert doctor.main() == 0


# -- never crashes, flags what it cannot write (issue "Nothing lost, nothing cryptic") ---------


def _unavailable_device() -> str:
    from coursekit.runtime import available_devices

    return next(d for d in ("cuda", "mps", "xpu") if d not in available_devices())


def test_environment_text_survives_a_bad_device_and_profile(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", _unavailable_device())
    monkeypatch.setenv("COURSEKIT_PROFILE", "lapotp")
    text = doctor.environment_text()
    assert "Device" in text and "see 'Compute device' below" in text
    assert "see 'Speed and run profile' below" in text and "Data cache" in text


def test_cli_doctor_reports_a_bad_device_and_profile(monkeypatch, capsys):
    from coursekit.cli import main

    monkeypatch.setenv("COURSEKIT_DEVICE", _unavailable_device())
    monkeypatch.setenv("COURSEKIT_PROFILE", "lapotp")
    monkeypatch.setattr(doctor, "CHECKS", (doctor.check_device, doctor.check_speed))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "!! Compute device:" in out and "COURSEKIT_DEVICE" in out
    assert "!! Speed and run profile:" in out and "'lapotp' is not a run profile" in out
    assert out.count("fix: ") == 2


@pytest.fixture
def blocker(tmp_path):
    """A regular file where a folder is expected (unwritable even for root)."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_data_cache_under_a_file_is_flagged(blocker, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA_DIR", str(blocker / "cache"))
    monkeypatch.delenv("COURSEKIT_DATA_MIRROR", raising=False)
    monkeypatch.setattr(doctor, "_can_connect", lambda host, port=443, timeout=3.0: True)
    finding = doctor.check_data()
    assert not finding.ok and "cannot be written" in finding.message
    assert str(blocker) in finding.message and "COURSEKIT_DATA_DIR" in finding.fix


def test_read_only_data_cache_is_flagged(empty_cache, monkeypatch):
    empty_cache.mkdir()

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(doctor.tempfile, "TemporaryFile", read_only)
    finding = doctor.check_data(probe_network=False)
    assert not finding.ok and "Read-only file system" in finding.message


def test_unreadable_cached_file_is_reported(empty_cache, monkeypatch):
    from coursekit.data import download
    from coursekit.data.registry import REGISTRY

    empty_cache.mkdir()
    first = next(iter(REGISTRY.values()))
    (empty_cache / first.filename).write_bytes(b"x" * first.size)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(download, "open", refuse, raising=False)
    finding = doctor.check_data(probe_network=False)
    assert not finding.ok and "cannot be read" in finding.message and finding.fix


def test_progress_home_under_a_file_is_flagged(blocker, monkeypatch):
    monkeypatch.setenv("COURSEKIT_HOME", str(blocker / "home"))
    finding = doctor.check_progress()
    assert not finding.ok and "cannot be written" in finding.message
    assert "COURSEKIT_HOME" in finding.fix


@pytest.mark.parametrize(
    ("content", "ok", "words"),
    [
        ({"schema": 2, "exercises": {}}, False, "newer coursekit (schema 2"),
        ({"schema": "abc", "exercises": {}}, False, "invalid schema 'abc'"),
        ({"schema": "1", "exercises": {"01": {"01.1": True}}}, True, "is readable"),
        ({"exercises": {"01": {"01.1": "yes", "01.2": True}}}, False, "1 malformed entry"),
    ],
)
def test_progress_file_problems_are_named(tmp_path, monkeypatch, content, ok, words):
    monkeypatch.setenv("COURSEKIT_HOME", str(tmp_path))
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(content))
    before = path.read_bytes()
    finding = doctor.check_progress()
    assert finding.ok is ok and words in finding.message
    assert ok or finding.fix
    assert path.read_bytes() == before
