"""Test-session settings shared by the unit tests and the notebook runs (nbval).

Set before any kernel starts, so executed notebooks inherit them:
* ``COURSEKIT_PROFILE`` defaults to ``smoke`` (tiny sizes) unless already set;
* ``COURSEKIT_STRICT_CHECKS=1`` makes a failing exercise check fail the notebook;
* ``COURSEKIT_HOME`` points at a temporary folder so tests never touch a learner's progress;
* ``MPLBACKEND=Agg`` so no test needs a display.
Also prints each notebook's total run time at the end of the session.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("COURSEKIT_PROFILE", "smoke")
os.environ["COURSEKIT_STRICT_CHECKS"] = "1"
os.environ.setdefault("COURSEKIT_HOME", tempfile.mkdtemp(prefix="coursekit-home-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

_notebook_seconds: dict[str, float] = defaultdict(float)
_notebook_failed: set[str] = set()


def pytest_runtest_logreport(report) -> None:  # noqa: ANN001 - pytest hook
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] += report.duration
        if report.failed:
            _notebook_failed.add(path)


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    if not _notebook_seconds:
        return
    profile = os.environ.get("COURSEKIT_PROFILE")
    terminalreporter.section(f"notebook run times (profile {profile})")
    for path in sorted(_notebook_seconds):
        status = "FAILED" if path in _notebook_failed else "ok"
        name = Path(path).name
        terminalreporter.write_line(f"{name:<40} {_notebook_seconds[path]:7.1f} s  {status}")
    terminalreporter.write_line(f"{'total':<40} {sum(_notebook_seconds.values()):7.1f} s")
