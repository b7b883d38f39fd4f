"""Start an isolated JupyterLab server for the browser test, and drive notebooks in it.

The server listens on a loopback port with a random token; its Jupyter runtime, config, settings
and workspace folders, the learner's ``COURSEKIT_HOME`` and the notebooks it serves are copies
in a temporary folder, so nothing touches the repository or the user's own Jupyter set-up.
:meth:`LabServer.stop` shuts the server down through its REST API, then by signal, and finally
ends any kernel it left behind (found by a marker in their environment), by process id.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

MARKER_ENV = "COURSEKIT_BROWSER_TEST_ID"

#: JupyterLab settings for a deterministic run: no autosave (the copies stay as they were
#: saved explicitly), every cell kept in the DOM (no windowing), no news / update pop-ups.
LAB_SETTINGS: dict[str, dict[str, object]] = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _marked_pids(marker: str) -> list[int]:
    """Ids of live processes whose environment carries ``MARKER_ENV=marker`` (Linux /proc)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return [pid for pid in found if pid != os.getpid()]


class LabServer:
    """A JupyterLab server on a loopback port with a temporary token, in its own folders."""

    def __init__(
        self, workdir: Path, notebooks: Iterable[Path], *, env: dict[str, str] | None = None
    ):
        self.workdir = Path(workdir)
        self.root = self.workdir / "root"
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.marker = secrets.token_hex(8)
        self.log_path = self.workdir / "jupyterlab.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._notebooks = [Path(p) for p in notebooks]
        self._extra_env = dict(env or {})

    # -- paths and environment -----------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """The temporary ``COURSEKIT_HOME`` the notebooks' kernels record progress into."""
        return self.workdir / "coursekit-home"

    def notebook_copy(self, name: str) -> Path:
        return self.root / name

    def lab_url(self, notebook: str) -> str:
        return f"{self.base_url}/lab/tree/{notebook}?token={self.token}&reset"

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        folders = {
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTERLAB_SETTINGS_DIR": "lab-settings",
            "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
            "IPYTHONDIR": "ipython",
            "MPLCONFIGDIR": "matplotlib",
            "COURSEKIT_HOME": "coursekit-home",
        }
        for key, sub in folders.items():
            path = self.workdir / sub
            path.mkdir(parents=True, exist_ok=True)
            env[key] = str(path)
        env.pop("JUPYTER_TOKEN", None)
        env.pop("MPLBACKEND", None)  # as for a learner: the kernel's inline backend draws figures
        env.update(
            {
                "COURSEKIT_PROFILE": "smoke",
                "COURSEKIT_STRICT_CHECKS": "1",
                "PYTHONUNBUFFERED": "1",
                MARKER_ENV: self.marker,
            }
        )
        env.update(self._extra_env)
        return env

    def _write_settings(self) -> None:
        for rel, values in LAB_SETTINGS.items():
            path = self.workdir / "lab-settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values), encoding="utf-8")

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        """Copy the notebooks, start ``jupyter lab`` and wait until its API answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        for nb in self._notebooks:
            shutil.copy2(nb, self.root / nb.name)
        env = self._environment()
        self._write_settings()
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.allow_remote_access=False",
            "--ServerApp.disable_check_xsrf=False",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--ServerApp.terminals_enabled=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {self.process.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.api_url("/api/status"), timeout=5) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def api_url(self, path: str) -> str:
        return f"{self.base_url}{path}?token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> list[int]:
        """Shut the server and its kernels down; return the ids of processes that had to be killed."""
        killed: list[int] = []
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:  # the polite way: the server also shuts its kernels down
                request = urllib.request.Request(
                    self.api_url("/api/shutdown"), method="POST", data=b""
                )
                urllib.request.urlopen(request, timeout=10).close()
            except (urllib.error.URLError, OSError):
                pass
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                    killed.append(proc.pid)
        # kernels (or anything else) the server started and left behind: end them by id
        deadline = time.monotonic() + 5
        while _marked_pids(self.marker) and time.monotonic() < deadline:
            time.sleep(0.25)
        for pid in _marked_pids(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        if getattr(self, "_log", None) is not None:
            self._log.close()
        return killed

    def running_pids(self) -> list[int]:
        """Processes (server, kernels) still carrying this server's marker."""
        return _marked_pids(self.marker)
