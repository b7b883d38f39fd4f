"""Run-time choices shared by every notebook: device, seeds, run profiles, environment report."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import nn

from coursekit.files import checkout_root

Profile = Literal["smoke", "laptop", "gpu"]
PROFILES: tuple[str, ...] = ("smoke", "laptop", "gpu")
PROFILE_ENV = "COURSEKIT_PROFILE"
DEVICE_ENV = "COURSEKIT_DEVICE"

T = TypeVar("T")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the compute device: CUDA, then Apple MPS, then CPU.

    ``prefer`` (or the ``COURSEKIT_DEVICE`` environment variable) overrides the choice,
    e.g. ``"cpu"`` to compare against a laptop run. Asking for a device that is not
    available raises a ``RuntimeError`` that says which ones are.
    """
    wanted = prefer or os.environ.get(DEVICE_ENV)
    if wanted:
        name = wanted.strip().lower()
        available = available_devices()
        kind = name.split(":")[0]
        if kind not in available:
            raise RuntimeError(
                f"Device {wanted!r} was requested (argument or {DEVICE_ENV}) but is not available "
                f"here; available: {', '.join(available)}. Unset {DEVICE_ENV} to pick automatically."
            )
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    """Names of the device kinds PyTorch can use on this machine."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if _mps_available():
        found.insert(0 if "cuda" not in found else 1, "mps")
    return found


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def get_profile() -> Profile:
    """The run profile: ``COURSEKIT_PROFILE`` if set, else ``gpu`` with CUDA, else ``laptop``.

    * ``smoke``: tiny sizes, so CI executes every notebook in well under 3 minutes on 2 cores.
    * ``laptop``: a few minutes per training on a CPU; the stored notebook outputs use it.
    * ``gpu``: the full sizes.
    """
    value = os.environ.get(PROFILE_ENV, "").strip().lower()
    if value:
        if value not in PROFILES:
            raise ValueError(
                f"{PROFILE_ENV}={value!r} is not a run profile; use one of {', '.join(PROFILES)}."
            )
        return value  # type: ignore[return-value]
    return "gpu" if torch.cuda.is_available() else "laptop"


def by_profile(*, smoke: T, laptop: T, gpu: T | None = None) -> T:
    """Return the value for the active run profile (``gpu`` falls back to ``laptop``)."""
    profile = get_profile()
    if profile == "smoke":
        return smoke
    if profile == "gpu" and gpu is not None:
        return gpu
    return laptop


@dataclass(frozen=True)
class EnvironmentReport:
    """What a learner (or a bug report) needs to know about the machine."""

    python: str
    platform: str
    torch: str
    device: str
    device_name: str
    threads: int
    profile: str
    data_dir: str
    data_mirror: str | None

    def as_rows(self) -> list[tuple[str, str]]:
        return [
            ("Python", self.python),
            ("Platform", self.platform),
            ("PyTorch", self.torch),
            ("Device", f"{self.device} ({self.device_name})"),
            ("CPU threads used by torch", str(self.threads)),
            ("Run profile", self.profile),
            ("Data cache", self.data_dir),
            ("Data mirror", self.data_mirror or "(none: downloads from the public URLs)"),
        ]

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.as_rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.as_rows())


def device_name(device: torch.device) -> str:
    """A human-readable name of the device (GPU model, or the CPU's architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (Metal Performance Shaders)"
    return platform.processor() or platform.machine() or "CPU"


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as a learner would write it: relative to this checkout, or with ``~`` for home.

    Keeps reports and stored notebook outputs free of one machine's absolute paths.
    """

    resolved = Path(path).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    for base, prefix in ((checkout, ""), (Path.home().resolve(), "~/")):
        try:
            relative = resolved.relative_to(base)
        except ValueError:
            continue
        return (
            f"{prefix}{relative.as_posix()}"
            if prefix
            else f"{relative.as_posix()} (in the course folder)"
        )
    return str(resolved)


DATA_DIR_ENV = "COURSEKIT_DATA_DIR"
DATA_MIRROR_ENV = "COURSEKIT_DATA_MIRROR"


def data_cache_dir() -> Path:
    """The folder for verified data files: ``COURSEKIT_DATA_DIR``, else ``data/cache`` in the
    course checkout, else ``~/.cache/coursekit`` (not created here)."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    checkout = checkout_root()
    if checkout is not None:
        return checkout / "data" / "cache"
    return Path.home() / ".cache" / "coursekit"


def data_mirror() -> str | None:
    """The mirror folder or URL from ``COURSEKIT_DATA_MIRROR``, or None."""
    value = os.environ.get(DATA_MIRROR_ENV, "").strip()
    if not value:
        return None
    if value.startswith(("http://", "https://", "file://")):
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


def environment_report() -> EnvironmentReport:
    """Collect the environment report shown by notebook 00 and ``coursekit doctor``."""
    device = get_device()
    return EnvironmentReport(
        python=sys.version.split()[0],
        platform=f"{platform.system()} {platform.release()} ({platform.machine()})",
        torch=torch.__version__,
        device=str(device),
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        profile=get_profile(),
        data_dir=display_path(data_cache_dir()),
        data_mirror=_display_mirror(data_mirror()),
    )


def _display_mirror(mirror: str | None) -> str | None:
    if mirror is None or "://" in mirror:
        return mirror
    return display_path(mirror)


@contextlib.contextmanager
def eval_mode(model: nn.Module, *, no_grad: bool = True) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (and, by default, turn gradients off) for the ``with`` body.

    The previous train/eval mode is restored even if the body raises::

        with eval_mode(model):
            logits = model(ids)
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield model
    finally:
        model.train(was_training)


DEBUG_ENV = "COURSEKIT_DEBUG"


def debug_checks() -> bool:
    """True when ``COURSEKIT_DEBUG=1``: run checks that would stall a GPU (value checks)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


#: checks that read tensor values (e.g. token ids in range) run on CPU tensors, where reading
#: costs nothing; set False to forbid them there too (the no-synchronisation test does).
VALUE_CHECKS_ON_CPU = True


def value_checks(device: torch.device) -> bool:
    """Whether a check may read tensor values on ``device`` without stalling it.

    On a GPU reading a value waits for every queued kernel, so such checks run there only with
    ``COURSEKIT_DEBUG=1``; on the CPU they are free and on by default.
    """
    return (device.type == "cpu" and VALUE_CHECKS_ON_CPU) or debug_checks()
