"""Mixed precision: which autocast dtype a device gets, and the gradient scaler fp16 needs.

* CUDA: bf16 where the GPU supports it (Ampere and later), else fp16;
* CPU: bf16 (CPU autocast runs matmuls in bf16);
* Apple MPS: fp16 where this PyTorch's autocast supports MPS, else no autocast.

fp16 has a narrow exponent range, so small gradients underflow to zero; a
``torch.amp.GradScaler`` multiplies the loss before ``backward`` and divides the gradients
back before the optimizer step. bf16 has fp32's range and needs no scaler. Parameters,
gradients and optimizer state stay in fp32 either way (autocast only changes the dtype of
the operations inside the ``with``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["amp_dtype", "autocast_context", "make_grad_scaler"]


def _device(device: torch.device | str) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


def _autocast_available(device_type: str) -> bool:
    check = getattr(torch.amp, "is_autocast_available", None)
    if check is None:  # older torch: autocast covered cuda and cpu only
        return device_type in ("cuda", "cpu")
    return bool(check(device_type))


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16, fp16, or ``None`` (no autocast there)."""
    kind = _device(device).type
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "cpu":
        return torch.bfloat16
    if kind == "mps":
        return torch.float16 if _autocast_available("mps") else None
    return None


def autocast_context(
    device: torch.device | str, enabled: bool, dtype: torch.dtype | None = None
) -> contextlib.AbstractContextManager[Any]:
    """Autocast in ``dtype`` (default :func:`amp_dtype`) when ``enabled``; else a no-op context."""
    device = _device(device)
    if not enabled:
        return contextlib.nullcontext()
    dtype = dtype if dtype is not None else amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device | str, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A ``torch.amp.GradScaler``, enabled only for fp16 autocast on CUDA (a no-op otherwise).

    A disabled scaler's ``scale`` returns the loss unchanged and its ``step`` simply calls
    ``optimizer.step()``, so the loop can use it unconditionally.
    """
    device = _device(device)
    enabled = device.type == "cuda" and dtype == torch.float16
    if not hasattr(torch.amp, "GradScaler"):  # torch < 2.3
        return torch.cuda.amp.GradScaler(enabled=enabled)
    return torch.amp.GradScaler(device.type, enabled=enabled)
