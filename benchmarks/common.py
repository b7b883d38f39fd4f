"""Shared helpers for benchmark scripts: timing against a reference in the same run, JSON results.

Every benchmark reports *ratios* (ours / reference) measured in one process on one machine, which
are far more stable than absolute seconds on a shared machine.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from coursekit.files import atomic_write_text
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
    target = RESULTS / f"{name}.json"
    atomic_write_text(target, json.dumps(payload, indent=1) + "\n")
    return target
