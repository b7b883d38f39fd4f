"""coursekit.attention against PyTorch's own attention ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    flash_attention,
    lengths_to_mask,
    padding_mask,
    padding_to_attention_mask,
    scaled_dot_product_attention,
)
from coursekit.positional import RotaryEmbedding


def _qkv(b, h, tq, tk, d, dv, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, tq, d, generator=g, dtype=dtype)
    k = torch.randn(b, h, tk, d, generator=g, dtype=dtype)
    v = torch.randn(b, h, tk, dv, generator=g, dtype=dtype)
    return q, k, v


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["none", "bool", "causal"])
def test_sdpa_matches_torch(dtype, kind):
    q, k, v = _qkv(2, 3, 6, 6, 8, 5, dtype)
    if kind == "none":
        mask = None
    elif kind == "causal":
        mask = causal_mask(6)
    else:
        mask = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1)) > 0.3
        mask[..., 0] = True  # torch's op returns NaN on empty rows; keep one key per row
    ours = scaled_dot_product_attention(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_sdpa_scale_and_weights():
    q, k, v = _qkv(1, 2, 4, 7, 8, 8)
    out, w = scaled_dot_product_attention(q, k, v, scale=0.3, return_weights=True)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert w.shape == (1, 2, 4, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 2, 4))


def test_fully_masked_row_gives_zeros_and_finite_grad():
    q, k, v = _qkv(1, 1, 3, 4, 8, 8)
    q.requires_grad_(True)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    out = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, 0, 1], torch.zeros(8))
    out.sum().backward()
    assert torch.isfinite(q.grad).all()
    # MultiHeadAttention too (it must fall back from the fused kernel)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(1, 3, 8)
    m3 = torch.ones(3, 3, dtype=torch.bool)
    m3[1] = False
    y, w = mha(x, mask=m3, return_weights=True)
    assert torch.isfinite(y).all() and torch.equal(w[0, :, 1], torch.zeros(2, 3))
    torch.testing.assert_close(mha(x, mask=m3), y)


def test_stable_softmax_large_scores():
    q = torch.full((1, 2, 4), 1000.0)
    out = scaled_dot_product_attention(q, q, torch.randn(1, 2, 3), scale=1.0)
    assert torch.isfinite(out).all()


def test_causal_no_future_leak_gradient():
    t = 7
    x = torch.randn(1, t, 16, requires_grad=True)
    mha = MultiHeadAttention(16, 4)
    y = mha(x, is_causal=True)
    for i in range(t):
        (g,) = torch.autograd.grad(y[0, i].sum(), x, retain_graph=True)
        assert torch.all(g[0, i + 1 :] == 0), f"position {i} sees the future"
        assert g[0, : i + 1].abs().sum() > 0
    # and the plain function
    q = torch.randn(1, t, 4, requires_grad=True)
    out = scaled_dot_product_attention(q, q, q, causal_mask(t))
    (g,) = torch.autograd.grad(out[0, 2].sum(), q)
    assert torch.all(g[0, 3:] == 0)


def test_causal_mask_offset_convention():
    m = causal_mask(2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True] * 5]
    assert torch.equal(causal_mask(4), torch.ones(4, 4).tril().bool())


def test_errors_are_clear():
    q, k, v = _qkv(1, 1, 3, 4, 8, 8)
    with pytest.raises(ValueError, match="feature sizes"):
        scaled_dot_product_attention(q, k[..., :5], v)
    with pytest.raises(ValueError, match="same length"):
        scaled_dot_product_attention(q, k, v[..., :3, :])
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 4))
    with pytest.raises(ValueError, match="broadcast"):
        scaled_dot_product_attention(q, k, v, torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="divisor"):
        MultiHeadAttention(16, 4, n_kv_heads=3)
    with pytest.raises(ValueError, match="d_model"):
        MultiHeadAttention(16, 4)(torch.randn(2, 3, 8))


@pytest.mark.parametrize("bias", [True, False])
def test_mha_equals_torch_multihead(bias):
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(32, 4, bias=bias, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    x = torch.randn(2, 6, 32)
    mem = torch.randn(2, 9, 32)
    for kwargs in [{}, {"return_weights": True}]:
        out = ours(x, **kwargs)
        out = out[0] if isinstance(out, tuple) else out
        torch.testing.assert_close(out, ref(x, x, x, need_weights=False)[0], atol=1e-5, rtol=1e-5)
    # causal self-attention: torch's attn_mask uses True = NOT allowed
    cm = causal_mask(6)
    torch.testing.assert_close(
        ours(x, is_causal=True),
        ref(x, x, x, attn_mask=~cm, need_weights=False)[0],
        atol=1e-5,
        rtol=1e-5,
    )
    # cross-attention with key padding (torch: True = ignore)
    valid = lengths_to_mask([9, 5])
    out, w = ours(x, mem, key_padding_mask=valid, return_weights=True)
    ref_out, ref_w = ref(x, mem, mem, key_padding_mask=~valid, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=1e-5, rtol=1e-5)


def test_gqa_with_all_heads_equals_mha_and_mqa_shapes():
    torch.manual_seed(0)
    mha = MultiHeadAttention(24, 6)
    gqa = MultiHeadAttention(24, 6, n_kv_heads=6)
    gqa.load_state_dict(mha.state_dict())
    x = torch.randn(2, 5, 24)
    torch.testing.assert_close(gqa(x, is_causal=True), mha(x, is_causal=True))
    for n_kv in (3, 2, 1):
        m = MultiHeadAttention(24, 6, n_kv_heads=n_kv)
        assert m.qkv_proj.weight.shape == ((6 + 2 * n_kv) * 4, 24)
        y, w = m(x, return_weights=True)
        assert y.shape == (2, 5, 24) and w.shape == (2, 6, 5, 5)
        torch.testing.assert_close(m(x), y, atol=1e-5, rtol=1e-5)  # fused path equals explicit


def test_gqa_equals_repeated_kv_reference():
    torch.manual_seed(1)
    m = MultiHeadAttention(16, 4, n_kv_heads=2, bias=False)
    x = torch.randn(1, 5, 16)
    wq, wk, wv = m.qkv_proj.weight.split([16, 8, 8])
    q = (x @ wq.T).view(1, 5, 4, 4).transpose(1, 2)
    k = (x @ wk.T).view(1, 5, 2, 4).transpose(1, 2).repeat_interleave(2, dim=1)
    v = (x @ wv.T).view(1, 5, 2, 4).transpose(1, 2).repeat_interleave(2, dim=1)
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, 5, 16)
    torch.testing.assert_close(m(x), m.out_proj(ref), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rope", [False, True])
def test_kv_cache_matches_full_pass(rope):
    torch.manual_seed(0)
    rotary = RotaryEmbedding(4, max_positions=2) if rope else None  # grows past 2 on demand
    m = MultiHeadAttention(16, 4, n_kv_heads=2, rotary=rotary).eval()
    x = torch.randn(2, 7, 16)
    full = m(x, is_causal=True)
    cache = KVCache()
    steps = [m(x[:, i : i + 1], is_causal=True, cache=cache) for i in range(7)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 7 and cache.nbytes() == 2 * 2 * 2 * 7 * 4 * 4


def test_padding_helpers():
    ids = torch.tensor([[5, 6, 0], [7, 0, 0]])
    valid = padding_mask(ids, 0)
    assert valid.tolist() == [[True, True, False], [True, False, False]]
    assert torch.equal(lengths_to_mask([2, 1], 3), valid)
    m = padding_to_attention_mask(valid)
    assert m.shape == (2, 1, 1, 3)
    m2 = padding_to_attention_mask(valid, valid, heads=False)
    assert m2.shape == (2, 3, 3) and not m2[1, 1].any()
    with pytest.raises(TypeError):
        padding_mask(ids.float(), 0)
    with pytest.raises(TypeError):
        padding_to_attention_mask(ids)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("tq,tk,block", [(10, 10, 3), (5, 13, 4), (64, 64, 16), (1, 9, 2)])
def test_flash_attention_exact(causal, tq, tk, block):
    q, k, v = _qkv(2, 2, tq, tk, 8, 6, torch.float64)
    mask = causal_mask(tq, tk) if causal else None
    ref = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(flash_attention(q, k, v, causal=causal, block_size=block), ref)


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(1, 3),
    h=st.integers(1, 3),
    tq=st.integers(1, 9),
    tk=st.integers(1, 9),
    d=st.integers(1, 8),
    dv=st.integers(1, 6),
    causal=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_property_sdpa_and_flash_match_torch(b, h, tq, tk, d, dv, causal, seed):
    q, k, v = _qkv(b, h, tq, tk, d, dv, torch.float64, seed)
    mask = causal_mask(tq, tk) if causal else None
    ours = scaled_dot_product_attention(q, k, v, mask)
    assert ours.shape == (b, h, tq, dv)
    if causal and tk < tq:
        # early queries see no key at all: zeros, where torch returns NaN
        empty = ~mask.any(-1)
        assert torch.all(ours[..., empty, :] == 0)
        keep = ~empty
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)[..., keep, :]
        ours_cmp = ours[..., keep, :]
    else:
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ours_cmp = ours
    torch.testing.assert_close(ours_cmp, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(flash_attention(q, k, v, causal=causal, block_size=3), ours)


@settings(max_examples=20, deadline=None)
@given(
    n_heads=st.sampled_from([1, 2, 4]),
    d_head=st.integers(1, 6),
    t=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_property_mha_matches_torch(n_heads, d_head, t, seed):
    torch.manual_seed(seed)
    d = n_heads * d_head
    ref = torch.nn.MultiheadAttention(d, n_heads, batch_first=True).double().eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    x = torch.randn(2, t, d, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x, x, x, need_weights=False)[0])
