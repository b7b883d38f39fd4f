"""The dtype x device matrix: every core path keeps the input's dtype and runs on every device.

{float32, bfloat16, float64} x {cpu, cuda, mps where present}. float64 is skipped on MPS (the
device has no float64); bf16 on MPS only where PyTorch supports it. The GPU workflow runs this
file on CUDA.
"""

from __future__ import annotations

import pytest
import torch

from coursekit.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    flash_attention,
    fused_attention,
    scaled_dot_product_attention,
)
from coursekit.layers import BlockConfig, FeedForward, LayerNorm, RMSNorm, TransformerBlock
from coursekit.models import Transformer, TransformerConfig
from coursekit.positional import (
    ALiBiBias,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    T5RelativeBias,
    alibi_bias,
    apply_rope,
)
from coursekit.runtime import available_devices
from coursekit.train.losses import cross_entropy_loss, label_smoothing_loss

DEVICES = available_devices()
DTYPES = [torch.float32, torch.bfloat16, torch.float64]
MATRIX = [
    pytest.param(device, dtype, id=f"{device}-{str(dtype).split('.')[-1]}")
    for device in DEVICES
    for dtype in DTYPES
    if not (device == "mps" and dtype == torch.float64)
]
# how close two ways of computing the same thing must be in each dtype
TOL = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float64: 1e-10}


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> None:
    torch.testing.assert_close(a.float(), b.float(), atol=TOL[dtype] * 10, rtol=TOL[dtype] * 10)


@pytest.mark.parametrize(("device", "dtype"), MATRIX)
def test_attention_functions(device: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g).to(device, dtype) for _ in range(3))
    bias = alibi_bias(3, 6, device=device, dtype=dtype)
    mask = causal_mask(6, device=device)
    ref = scaled_dot_product_attention(q, k, v, mask, bias=bias)
    assert ref.dtype == dtype and ref.device.type == device
    fused = fused_attention(q, k, v, bias=bias, is_causal=True)
    assert fused.dtype == dtype
    _close(fused, ref, dtype)
    flash = flash_attention(q, k, v, causal=True, block_size=4)
    assert flash.dtype == dtype
    _close(flash, scaled_dot_product_attention(q, k, v, mask), dtype)


@pytest.mark.parametrize(("device", "dtype"), MATRIX)
@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_multi_head_attention_paths(device: str, dtype: torch.dtype, n_kv_heads: int) -> None:
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, n_kv_heads=n_kv_heads, rotary=RotaryEmbedding(8))
    mha = mha.to(device, dtype).eval()
    x = torch.randn(2, 7, 32, device=device, dtype=dtype)
    alibi = ALiBiBias(4).to(device)(7, dtype=dtype)
    for kwargs in ({"is_causal": True}, {"bias": alibi, "is_causal": True}, {}):
        fused = mha(x, **kwargs)
        explicit, _ = mha(x, return_weights=True, **kwargs)
        assert fused.dtype == dtype and fused.device.type == device
        _close(fused, explicit, dtype)
    cache = KVCache()
    steps = torch.cat([mha(x[:, i : i + 1], is_causal=True, cache=cache) for i in range(7)], 1)
    _close(steps, mha(x, is_causal=True), dtype)


@pytest.mark.parametrize(("device", "dtype"), MATRIX)
def test_positional_tables(device: str, dtype: torch.dtype) -> None:
    x = torch.randn(2, 4, 10, 16, device=device, dtype=dtype)
    rope = RotaryEmbedding(16, max_positions=4).to(device, dtype)
    assert rope.cos.dtype == dtype  # the table is cached in the model's dtype
    out = rope(x)
    assert out.dtype == dtype
    _close(out, apply_rope(x), dtype)
    t5 = T5RelativeBias(4, num_buckets=8, max_distance=16).to(device, dtype)
    assert t5(5, 7).dtype == dtype
    sin = SinusoidalPositionalEncoding(16).to(device)
    assert sin(torch.zeros(1, 3, 16, device=device, dtype=dtype)).dtype == dtype
    assert alibi_bias(4, 3, 5, device=device, dtype=dtype).dtype == dtype


@pytest.mark.parametrize(("device", "dtype"), MATRIX)
@pytest.mark.parametrize("scratch", [False, True])
def test_layers_forward_backward(device: str, dtype: torch.dtype, scratch: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16, device=device, dtype=dtype, requires_grad=True)
    for norm in (LayerNorm(16), RMSNorm(16)):
        assert norm.to(device, dtype)(x).dtype == dtype
    assert FeedForward(16, 32, activation="swiglu").to(device, dtype)(x).dtype == dtype
    for cfg in (
        BlockConfig(16, 4, 32, norm_first=False, activation="relu", scratch=scratch),
        BlockConfig(
            16,
            4,
            32,
            norm="rms",
            activation="swiglu",
            bias=False,
            n_kv_heads=2,
            cross_attention=True,
            scratch=scratch,
        ),
    ):
        block = TransformerBlock(cfg, rotary=RotaryEmbedding(4)).to(device, dtype)
        memory = torch.randn(2, 3, 16, device=device, dtype=dtype)
        y = block(x, is_causal=True, memory=memory if cfg.cross_attention else None)
        assert y.dtype == dtype
        y.float().sum().backward()
        assert x.grad is not None and x.grad.dtype == dtype and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(("device", "dtype"), MATRIX)
def test_transformer_forward_backward_and_loss(device: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        11, 13, d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.0
    )
    model = Transformer(cfg).to(device, dtype)
    src = torch.tensor([[4, 5, 6, 0], [7, 8, 9, 10]], device=device)
    tgt = torch.tensor([[1, 4, 5, 2, 0], [1, 6, 7, 8, 2]], device=device)
    logits = model(src, tgt[:, :-1])
    assert logits.dtype == dtype and logits.shape == (2, 4, 13)
    loss = model.loss(src, tgt, label_smoothing=0.1)
    assert loss.dtype == dtype and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == dtype for g in grads)


@pytest.mark.parametrize(("device", "dtype"), MATRIX)
def test_losses_keep_dtype(device: str, dtype: torch.dtype) -> None:
    logits = torch.randn(3, 4, 7, device=device, dtype=dtype)
    target = torch.tensor([[1, 2, 3, 0], [4, 5, 6, -100], [0, 0, 1, 1]], device=device)
    scratch = label_smoothing_loss(logits, target, eps=0.1)
    running = cross_entropy_loss(logits, target, label_smoothing=0.1)
    assert scratch.dtype == running.dtype == dtype
    _close(scratch, running, dtype)
