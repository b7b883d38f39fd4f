"""Shared helpers for benchmark scripts: timing against a reference in the same run, JSON results.

Every benchmark reports *ratios* (ours / reference) measured in one process on one machine, which
are far more stable than absolute seconds on a shared machine.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch

from coursekit.timing import time_call

__all__ = ["RESULTS", "machine", "save_results", "time_call"]

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def save_results(name: str, title: str, rows: list[dict[str, Any]], *, notes: str = "") -> Path:
    """Write ``results/<name>.json`` atomically: {name, title, notes, machine, rows}.

    Each row is a flat dict; the report shows every key as a column, in order.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"name": name, "title": title, "notes": notes, "machine": machine(), "rows": rows}
    fd, tmp = tempfile.mkstemp(dir=RESULTS, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=1)
    target = RESULTS / f"{name}.json"
    os.replace(tmp, target)
    return target
