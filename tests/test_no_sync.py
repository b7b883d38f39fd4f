"""No host-device synchronisation in a forward pass or a training step.

On a GPU, reading a tensor's value (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``) waits
for every queued kernel. On the CPU the same reads are free but still visible: these tests make
every such read raise while the model runs, so a hidden synchronisation fails here before it
slows a learner's GPU. On CUDA the GPU workflow also runs them under
``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from coursekit import runtime
from coursekit.attention import KVCache, MultiHeadAttention
from coursekit.models import Transformer, TransformerConfig
from coursekit.positional import RotaryEmbedding

READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def no_value_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def forbidden(name: str):  # noqa: ANN202
        def fail(self: torch.Tensor, *args: object, **kwargs: object) -> object:
            raise AssertionError(f"tensor.{name}() read a value (a host-device sync on a GPU)")

        return fail

    with monkeypatch.context() as m:
        m.setattr(runtime, "VALUE_CHECKS_ON_CPU", False)
        for name in READS:
            m.setattr(torch.Tensor, name, forbidden(name))
        sync = torch.cuda.is_available()
        if sync:
            torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            if sync:
                torch.cuda.set_sync_debug_mode("default")


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_the_guard_catches_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.ones(2)
    with no_value_reads(monkeypatch), pytest.raises(AssertionError, match="read a value"):
        bool(x.sum() > 0)


def test_encoder_decoder_training_step_reads_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    device = _device()
    torch.manual_seed(0)
    cfg = TransformerConfig(
        20, 20, d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=64, dropout=0.1
    )
    model = Transformer(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    src = torch.randint(3, 20, (4, 9), device=device)
    src[1, 6:] = 0  # padding
    tgt = torch.randint(3, 20, (4, 7), device=device)
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        with no_value_reads(monkeypatch):
            model.loss(src, tgt, label_smoothing=0.1).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        # PyTorch's AdamW reads its step counter, a CPU scalar even for GPU models (no device
        # sync); it is outside the guard.
        opt.step()


@pytest.mark.parametrize("n_kv_heads", [4, 2])
def test_cached_decoding_reads_no_value(monkeypatch: pytest.MonkeyPatch, n_kv_heads: int) -> None:
    device = _device()
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, n_kv_heads=n_kv_heads, rotary=RotaryEmbedding(8)).to(device)
    mha.eval()
    x = torch.randn(2, 6, 32, device=device)
    cache = KVCache()
    with no_value_reads(monkeypatch), torch.no_grad():
        mha(x[:, :3], is_causal=True, cache=cache)  # the prompt
        for i in range(3, 6):
            mha(x[:, i : i + 1], is_causal=True, cache=cache)  # one token, no mask
    assert cache.length == 6
