"""``coursekit doctor``: detect the problems learners hit, and say how to fix each one.

Each check returns a :class:`Finding` (``name``, ``ok``, ``message``, ``fix``);
:func:`run_checks` runs them all and never raises: a check that crashes becomes a finding that
says so. ``docs/troubleshooting.md`` describes every problem with its symptom, cause and fix; the
``name`` of a finding is the heading there, so a learner can look it up.

Checks (in order): Python version, required packages, Jupyter kernel, widgets in JupyterLab,
compute device (incl. Apple MPS), memory, speed and run profile, data files and network,
disk space, progress file.

Run it as ``coursekit doctor`` or ``python -m coursekit.doctor``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

GiB = 1024**3
#: Below this many GFLOP/s (fp32 matmul on the CPU) the laptop profile is slow: suggest smoke.
SLOW_CPU_GFLOPS = 3.0
#: Below this much free memory (RAM, or GPU memory on CUDA) trainings may run out of memory.
LOW_MEMORY_GIB = 2.0
LOW_DISK_GIB = 1.0
MIN_PYTHON = (3, 10)
REQUIRED_PACKAGES = (
    "torch",
    "numpy",
    "matplotlib",
    "ipywidgets",
    "tokenizers",
    "tqdm",
    "safetensors",
    "sacrebleu",
)
WIDGET_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
TROUBLESHOOTING = "docs/troubleshooting.md"


@dataclass(frozen=True)
class Finding:
    """The outcome of one check.

    ``ok`` is False only for a problem the learner should fix; ``message`` says what was found,
    ``fix`` what to do (empty when nothing is needed).
    """

    name: str
    ok: bool
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"[{'ok' if self.ok else '!!'}] {self.name}: {self.message}"
        if self.fix and not self.ok:
            text += f"\n     fix: {self.fix}"
        return text


# --------------------------------------------------------------------------------------------
# small helpers (module level so that tests can replace them)


def _run(cmd: Sequence[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run ``cmd``; (exit code, stdout+stderr). A missing program or a timeout gives code 127/124."""
    try:
        done = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "NO_COLOR": "1"},
        )
    except FileNotFoundError as exc:
        return 127, str(exc)
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(cmd)} did not finish within {timeout:.0f} s"
    return done.returncode, (done.stdout or "") + (done.stderr or "")


def _can_connect(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _available_memory_bytes() -> int | None:
    """Free RAM the OS could give us now (Linux MemAvailable, else sysconf), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _matmul_gflops(n: int = 384, repeats: int = 5) -> float:
    """Best-of-``repeats`` fp32 ``n x n`` matmul throughput on the CPU, in GFLOP/s."""
    import torch

    from coursekit.timing import time_call

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    best = time_call(lambda: a @ b, repeats=repeats)
    return 2 * n**3 / max(best, 1e-9) / 1e9


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (made on first use), or None if they can.

    Looks at the nearest existing folder on the way: a file where a folder should be, a folder
    without write permission, or one where even a temporary file cannot be created (a read-only
    file system). The probe file is removed at once.
    """
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder, so {folder} cannot be created"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"nothing can be written in {probe} ({exc.strerror or exc})"
    return None


# --------------------------------------------------------------------------------------------
# the checks


def check_python() -> Finding:
    """Python 3.10 or newer."""
    version = ".".join(map(str, sys.version_info[:3]))
    if tuple(sys.version_info[:2]) < MIN_PYTHON:
        return Finding(
            "Python version",
            False,
            f"Python {version} is too old; the course needs 3.10 or newer.",
            "Create the environment again from environment.yml (conda) or with Python >= 3.10.",
        )
    return Finding("Python version", True, f"Python {version} ({sys.executable}).")


def check_packages() -> Finding:
    """The packages coursekit imports are installed in this environment."""
    missing = [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        return Finding(
            "Required packages",
            False,
            f"not installed in this environment ({sys.executable}): {', '.join(missing)}.",
            'From the course folder run `pip install -e ".[lab]"` in the same environment '
            "(or `conda env update -f environment.yml`).",
        )
    return Finding("Required packages", True, f"all {len(REQUIRED_PACKAGES)} are importable.")


def _kernel_python(argv: list[str]) -> str | None:
    """The interpreter a kernel spec launches (``python`` is this interpreter, as Jupyter does)."""
    if not argv:
        return None
    first = argv[0]
    if first in {
        "python",
        f"python{sys.version_info[0]}",
        "python{}.{}".format(*sys.version_info[:2]),
    }:
        return sys.executable
    return shutil.which(first) or (first if Path(first).exists() else None)


def check_kernel() -> Finding:
    """A ``python3`` Jupyter kernel exists and its interpreter can import coursekit."""
    name = "Jupyter kernel"
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    except ImportError:
        return Finding(
            name,
            False,
            "jupyter_client is not installed, so no notebook kernel can start from here.",
            'Install JupyterLab in this environment: `pip install -e ".[lab]"`.',
        )
    manager = KernelSpecManager()
    try:
        spec = manager.get_kernel_spec("python3")
    except NoSuchKernel:
        found = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        return Finding(
            name,
            False,
            f"no kernel named 'python3' (the notebooks' kernel); kernels found: {found}.",
            "In the course environment run `python -m ipykernel install --user --name python3`.",
        )
    python = _kernel_python(list(spec.argv))
    if python is None:
        return Finding(
            name,
            False,
            f"the 'python3' kernel starts {spec.argv[0]!r}, which does not exist "
            "(the environment it belonged to was removed or moved).",
            "In the course environment run `python -m ipykernel install --user --name python3` "
            "to point the kernel at it again.",
        )
    if Path(python).resolve() == Path(sys.executable).resolve():
        return Finding(name, True, f"'python3' runs this environment's Python ({python}).")
    code, output = _run(
        [
            python,
            "-c",
            "import importlib.util as u, sys; "
            "sys.exit(0 if u.find_spec('coursekit') and u.find_spec('ipykernel') else 3)",
        ],
        timeout=60,
    )
    if code != 0:
        return Finding(
            name,
            False,
            f"the 'python3' kernel runs another Python ({python}) that cannot import coursekit "
            "or ipykernel: notebooks fail with ModuleNotFoundError or never start.",
            f"In the course environment ({sys.executable}) run "
            "`python -m ipykernel install --user --name python3`, then restart JupyterLab.",
        )
    return Finding(name, True, f"'python3' runs {python}, which has coursekit and ipykernel.")


def _widget_extension_files() -> Path | None:
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return None
    for folder in jupyter_path("labextensions"):
        candidate = Path(folder, *WIDGET_EXTENSION.split("/"), "package.json")
        if candidate.is_file():
            return candidate
    return None


def check_widgets() -> Finding:
    """The JupyterLab that learners start has the ipywidgets front end (``jupyterlab_widgets``).

    Widgets are drawn by an extension of the *server's* environment; without it a widget cell
    shows only its text fallback, e.g. ``VBox(children=...)`` or "(interactive widget: ...)".
    """
    name = "Widgets in JupyterLab"
    if importlib.util.find_spec("ipywidgets") is None:
        return Finding(
            name,
            False,
            "ipywidgets is not installed in the kernel's environment.",
            "`pip install ipywidgets` in the course environment, then restart the kernel.",
        )
    import ipywidgets

    major = int(ipywidgets.__version__.split(".")[0])
    jupyter = shutil.which("jupyter")
    if jupyter is not None:
        code, output = _run([jupyter, "labextension", "list"], timeout=90)
        if code == 0 or "JupyterLab v" in output:
            lines = [line for line in output.splitlines() if WIDGET_EXTENSION in line]
            if not lines:
                return Finding(
                    name,
                    False,
                    f"the JupyterLab started by `jupyter lab` ({jupyter}) has no widget extension "
                    f"({WIDGET_EXTENSION}): explorers and quizzes show only their text fallback.",
                    "Install `jupyterlab_widgets` in the environment that runs the JupyterLab "
                    'server (`pip install jupyterlab_widgets`, or `pip install -e ".[lab]"` there),'
                    " then restart JupyterLab and reload the browser tab.",
                )
            line = lines[0]
            if "disabled" in line:
                return Finding(
                    name,
                    False,
                    f"the widget extension is installed but disabled: {line.strip()}",
                    f"`jupyter labextension enable {WIDGET_EXTENSION}`, then restart JupyterLab.",
                )
            ext_major = _extension_major(line)
            # ipywidgets 8 speaks to jupyterlab-manager 5 (jupyterlab_widgets 3); 7 to 3 (1.x)
            expected = {8: 5, 7: 3}.get(major)
            if expected is not None and ext_major is not None and ext_major != expected:
                return Finding(
                    name,
                    False,
                    f"ipywidgets {ipywidgets.__version__} in the kernel does not match the "
                    f"server's widget extension ({line.strip()}): widgets fail to render with "
                    "'Error displaying widget'.",
                    "Install matching versions in both environments: `pip install -U ipywidgets "
                    "jupyterlab_widgets`.",
                )
            return Finding(
                name,
                True,
                f"JupyterLab's widget extension is enabled ({' '.join(line.split()[:2])}) "
                f"and ipywidgets {ipywidgets.__version__} is in the kernel.",
            )
        # `jupyter` exists but `labextension` failed: JupyterLab is probably not installed there
    files = _widget_extension_files()
    if files is None:
        where = (
            f"`jupyter` ({jupyter}) could not list lab extensions"
            if jupyter
            else "`jupyter` is not on PATH"
        )
        return Finding(
            name,
            False,
            f"{where}, and no widget extension files were found for this environment.",
            "Install JupyterLab and the widget front end where you start the server: "
            '`pip install -e ".[lab]"` (it brings `jupyterlab_widgets`).',
        )
    return Finding(
        name,
        True,
        f"the widget extension is installed for this environment ({files.parent}); "
        "start JupyterLab from this environment so it is used.",
    )


def _extension_major(line: str) -> int | None:
    for word in line.split():
        if word.startswith("v") and word[1:2].isdigit():
            try:
                return int(word[1:].split(".")[0])
            except ValueError:
                return None
    return None


def check_device() -> Finding:
    """The compute device coursekit will use; MPS gets a note on numerical differences."""
    name = "Compute device"
    from coursekit.runtime import device_name, get_device

    try:
        device = get_device()
    except RuntimeError as exc:
        return Finding(name, False, str(exc), "Unset COURSEKIT_DEVICE, or set it to cpu.")
    label = f"{device} ({device_name(device)})"
    if device.type == "mps":
        return Finding(
            name,
            True,
            f"{label}. Apple MPS results differ from the CPU's in the last digits (float32 "
            "kernels sum in another order, some ops fall back to the CPU), so a loss or an "
            "assert with a tight tolerance can differ slightly from the stored outputs; see "
            f"'MPS numerical differences' in {TROUBLESHOOTING}.",
        )
    if device.type == "cpu":
        return Finding(name, True, f"{label}: no GPU found; the laptop profile is sized for a CPU.")
    return Finding(name, True, label)


def check_memory() -> Finding:
    """Enough free RAM (and GPU memory on CUDA) for the laptop-profile trainings."""
    name = "Memory"
    try:
        import torch

        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            if free < LOW_MEMORY_GIB * GiB:
                return Finding(
                    name,
                    False,
                    f"only {free / GiB:.1f} of {total / GiB:.1f} GiB GPU memory is free: trainings "
                    "may stop with 'CUDA out of memory'.",
                    "Shut down other notebooks' kernels (Kernel > Shut Down All Kernels) or "
                    "processes using the GPU (`nvidia-smi`), or use COURSEKIT_PROFILE=laptop.",
                )
    except Exception:  # noqa: BLE001 - a broken CUDA set-up is reported by the device check
        pass
    available = _available_memory_bytes()
    if available is None:
        return Finding(name, True, "could not read the free memory of this system.")
    if available < LOW_MEMORY_GIB * GiB:
        return Finding(
            name,
            False,
            f"only {available / GiB:.1f} GiB of RAM is free: larger trainings may be killed "
            "(the kernel dies and restarts) or raise 'out of memory'.",
            "Close other programs and shut down kernels you are not using; run with "
            "COURSEKIT_PROFILE=smoke (smaller models and batches).",
        )
    return Finding(name, True, f"{available / GiB:.1f} GiB of RAM free.")


def check_speed() -> Finding:
    """The run profile is valid and fits the machine's speed (slow CPU -> suggest smoke)."""
    name = "Speed and run profile"
    import torch

    from coursekit.runtime import get_profile

    try:
        profile = get_profile()
    except ValueError as exc:
        return Finding(name, False, str(exc), "Set COURSEKIT_PROFILE to smoke, laptop or gpu.")
    has_cuda = torch.cuda.is_available()
    if profile == "gpu" and not has_cuda:
        return Finding(
            name,
            False,
            "COURSEKIT_PROFILE=gpu without a CUDA GPU: the full sizes would take hours here.",
            "Unset COURSEKIT_PROFILE (laptop is the CPU default) or use smoke.",
        )
    threads = torch.get_num_threads()
    cores = os.cpu_count() or 1
    gflops = _matmul_gflops()
    message = (
        f"profile {profile}; CPU matmul {gflops:.1f} GFLOP/s with {threads} of {cores} threads."
    )
    if not has_cuda and profile != "smoke" and gflops < SLOW_CPU_GFLOPS:
        return Finding(
            name,
            False,
            message + " That is slow for the laptop profile: a training cell may take many "
            "minutes.",
            "Run with COURSEKIT_PROFILE=smoke (tiny sizes; the asserts still hold): "
            "`export COURSEKIT_PROFILE=smoke` before `jupyter lab`, or "
            "`%env COURSEKIT_PROFILE=smoke` in the first cell. Close other heavy programs.",
        )
    if threads < cores and threads == 1 and cores > 1:
        return Finding(
            name,
            True,
            message + " PyTorch uses one thread (OMP_NUM_THREADS=1?); unset it to use all cores.",
        )
    return Finding(name, True, message)


def check_data(*, probe_network: bool = True) -> Finding:
    """Every data file is in the cache or the mirror; otherwise the network must reach it."""
    name = "Data files and network"
    from coursekit.data.download import (
        CACHE_ENV,
        MIRROR_ENV,
        DataError,
        cache_dir,
        is_verified,
        mirror_location,
    )
    from coursekit.data.registry import REGISTRY, DataSet

    cache = cache_dir()
    why = _unwritable(cache)
    if why is not None:
        source = (
            f"{CACHE_ENV}={os.environ[CACHE_ENV]}"
            if os.environ.get(CACHE_ENV)
            else f"the default, {CACHE_ENV} is not set"
        )
        return Finding(
            name,
            False,
            f"the data cache {cache} ({source}) cannot be written: {why}. Downloads will stop "
            "with a DataError.",
            f"Set {CACHE_ENV} to a folder you can write (e.g. `export {CACHE_ENV}=~/coursekit-data`)"
            ", or fix the permissions of that path.",
        )
    mirror = mirror_location()
    local_mirror = None
    if mirror is not None and not mirror.startswith(("http://", "https://", "file://")):
        local_mirror = Path(mirror)
        if not local_mirror.is_dir():
            return Finding(
                name,
                False,
                f"{MIRROR_ENV} points at {mirror}, which is not a folder.",
                f"Point {MIRROR_ENV} at the folder that holds the data files, or unset it.",
            )
    cached: list[DataSet] = []
    in_mirror: list[DataSet] = []
    corrupt: list[DataSet] = []
    missing: list[DataSet] = []
    for dataset in REGISTRY.values():
        path = cache / dataset.filename
        if path.exists():
            try:
                verified = is_verified(path, dataset)
            except DataError as exc:
                return Finding(
                    name,
                    False,
                    f"the cached file {path} cannot be read ({exc.__cause__ or exc}).",
                    f"Fix its permissions or delete it (`coursekit data fetch` gets it again), or "
                    f"set {CACHE_ENV} to another folder.",
                )
            (cached if verified else corrupt).append(dataset)
        elif local_mirror is not None and (local_mirror / dataset.filename).is_file():
            in_mirror.append(dataset)
        else:
            missing.append(dataset)
    summary = f"{len(cached)} of {len(REGISTRY)} data files cached in {cache}" + (
        f", {len(in_mirror)} available from the mirror {mirror}" if in_mirror else ""
    )
    if corrupt:
        return Finding(
            name,
            False,
            summary + f"; corrupted in the cache: {', '.join(d.filename for d in corrupt)}.",
            "`coursekit data fetch` replaces them (from the mirror, or the network).",
        )
    if not missing:
        return Finding(name, True, summary + ".")
    names = ", ".join(d.filename for d in missing)
    if mirror is not None and local_mirror is None:
        return Finding(name, True, summary + f"; {names} will come from the mirror URL {mirror}.")
    if local_mirror is not None:
        return Finding(
            name,
            False,
            summary + f"; the mirror {mirror} lacks {names}.",
            f"Copy those files into {mirror} (the course's data/README.md lists their sources), "
            "or unset the mirror to download them.",
        )
    hosts = sorted({urlparse(d.url).hostname or "" for d in missing} - {""})
    if not probe_network:
        return Finding(name, True, summary + f"; {names} will be downloaded on first use.")
    unreachable = [h for h in hosts if not _can_connect(h)]
    if unreachable:
        return Finding(
            name,
            False,
            summary + f"; {names} not available locally and {', '.join(unreachable)} cannot be "
            "reached (no network?): the notebooks that need them will stop with a DataError.",
            f"On a machine with network run `coursekit data fetch` and copy the files, or set "
            f"{MIRROR_ENV} to a folder (or URL) holding them, e.g. a USB stick or a shared drive.",
        )
    return Finding(name, True, summary + f"; {names} will be downloaded on first use.")


def check_disk() -> Finding:
    """Free disk space where data and checkpoints are written."""
    name = "Disk space"
    from coursekit.data.download import cache_dir

    folder = cache_dir()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < LOW_DISK_GIB * GiB:
        return Finding(
            name,
            False,
            f"only {free / GiB:.2f} GiB free at {probe}: data downloads and checkpoints may fail.",
            "Free some space, or set COURSEKIT_DATA_DIR to a folder on a larger disk.",
        )
    return Finding(name, True, f"{free / GiB:.1f} GiB free for data and checkpoints.")


def check_progress() -> Finding:
    """The progress file's folder is writable and the file (if any) is one this coursekit can use.

    Only looks: a problem file is reported, never moved or rewritten.
    """
    name = "Progress file"
    from coursekit import progress

    path = progress.progress_path()
    why = _unwritable(path.parent)
    if why is not None:
        return Finding(
            name,
            False,
            f"the progress folder {path.parent} cannot be written: {why}, so passed exercises "
            "cannot be recorded.",
            f"Set {progress.HOME_ENV} to a writable folder outside the course repository.",
        )
    info = progress.read_progress_file(path)
    if info.state == "missing":
        return Finding(name, True, f"no progress yet; it will be kept in {path}.")
    if info.state == "corrupt":
        return Finding(
            name,
            False,
            f"{path} is corrupt ({info.reason}).",
            "Nothing to lose but the record: the next check moves it aside and starts a fresh "
            "one automatically, or run `python -m coursekit.progress --reset` now.",
        )
    if info.state == "newer":
        return Finding(
            name,
            False,
            f"{path} was written by a newer coursekit (schema {info.schema!r}; this one knows "
            f"schema {progress.SCHEMA_VERSION}): it is left untouched and nothing is recorded.",
            'Upgrade coursekit: `git pull`, then `pip install -e ".[lab]"` in the course folder.',
        )
    if info.state == "invalid-schema":
        return Finding(
            name,
            False,
            f"{path} has an invalid schema {info.schema!r}: it is left untouched and nothing is "
            "recorded.",
            f'Set "schema" to {progress.SCHEMA_VERSION} in that file, or move the file aside to '
            "start a fresh record.",
        )
    if info.state == "unreadable":
        return Finding(
            name,
            False,
            f"{path} cannot be read ({info.reason}): progress is neither shown nor recorded.",
            f"Fix the file's permissions, or set {progress.HOME_ENV} to another folder.",
        )
    if info.skipped:
        return Finding(
            name,
            False,
            f"{path} has {len(info.skipped)} malformed entr"
            f"{'y' if len(info.skipped) == 1 else 'ies'}: {'; '.join(info.skipped)}.",
            "Nothing to do for the rest of your progress: the next recorded check keeps a copy "
            "of the file and rewrites it without them; re-run those exercises' check cells.",
        )
    return Finding(name, True, f"{path} is readable.")


def environment_text() -> str:
    """The environment report (as notebook 00 shows it), for the top of ``coursekit doctor``.

    Never raises: a value that cannot be determined (an unavailable ``COURSEKIT_DEVICE``, an
    unknown ``COURSEKIT_PROFILE``) is shown as such, and the checks below explain it.
    """
    import platform

    from coursekit import runtime

    try:
        return str(runtime.environment_report())
    except Exception:  # noqa: BLE001 - fall back to the rows one by one
        pass

    def value(get: Callable[[], object], check: str) -> str:
        try:
            return str(get())
        except Exception:  # noqa: BLE001 - the named check reports the problem and its fix
            return f"(not usable: see '{check}' below)"

    def device() -> str:
        chosen = runtime.get_device()
        return f"{chosen} ({runtime.device_name(chosen)})"

    def data_dir() -> str:
        from coursekit.data.download import cache_dir

        return runtime.display_path(cache_dir())

    def mirror() -> str:
        from coursekit.data.download import mirror_location

        return mirror_location() or "(none: downloads from the public URLs)"

    rows = [
        ("Python", sys.version.split()[0]),
        ("Platform", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("PyTorch", value(lambda: __import__("torch").__version__, "Required packages")),
        ("Device", value(device, "Compute device")),
        (
            "CPU threads used by torch",
            value(lambda: __import__("torch").get_num_threads(), "Speed and run profile"),
        ),
        ("Run profile", value(runtime.get_profile, "Speed and run profile")),
        ("Data cache", value(data_dir, "Data files and network")),
        ("Data mirror", value(mirror, "Data files and network")),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {text}" for label, text in rows)


def data_status_rows() -> list[tuple[str, str]]:
    """(data set, state) rows for the report; only looks (leftovers are reported, not removed)."""
    from coursekit.data.download import status

    try:
        return status(clean=False)
    except Exception as exc:  # noqa: BLE001 - the data check reports the problem and its fix
        return [("(all)", f"cannot be listed ({type(exc).__name__}: {exc})")]


CHECKS: tuple[Callable[[], Finding], ...] = (
    check_python,
    check_packages,
    check_kernel,
    check_widgets,
    check_device,
    check_memory,
    check_speed,
    check_data,
    check_disk,
    check_progress,
)


def run_checks(checks: Sequence[Callable[[], Finding]] | None = None) -> list[Finding]:
    """Run every check (or those given); a check that crashes becomes a failed finding."""
    findings = []
    for check in checks or CHECKS:
        try:
            findings.append(check())
        except Exception as exc:  # noqa: BLE001 - the doctor must always finish its report
            label = (check.__doc__ or check.__name__).strip().splitlines()[0]
            findings.append(
                Finding(
                    check.__name__.removeprefix("check_").replace("_", " ").capitalize(),
                    False,
                    f"the check itself failed ({type(exc).__name__}: {exc}) while checking: {label}",
                    "Please report this with the output of `coursekit doctor`.",
                )
            )
    return findings


def format_findings(findings: Sequence[Finding]) -> str:
    """The findings as text, with a closing line that counts the problems."""
    problems = sum(not f.ok for f in findings)
    tail = (
        "No problems found."
        if not problems
        else f"{problems} problem(s) found; each is explained in {TROUBLESHOOTING}."
    )
    return "\n".join([*(str(f) for f in findings), tail])


def main() -> int:
    """Print the report; exit status 1 if any problem was found."""
    findings = run_checks()
    print(format_findings(findings))
    return 1 if any(not f.ok for f in findings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
