"""coursekit.long_context: sliding windows with global tokens, Linformer, Performer, RoPE extension."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from coursekit.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    scaled_dot_product_attention,
)
from coursekit.long_context import (
    LinformerAttention,
    PerformerAttention,
    SlidingWindowAttention,
    banded_score_elements,
    extend_rope,
    linformer_project,
    ntk_scaled_base,
    orthogonal_random_features,
    performer_attention,
    performer_features,
    sliding_window_attention,
    sliding_window_mask,
)
from coursekit.models import GPT, GPTConfig
from coursekit.positional import RotaryEmbedding, alibi_bias, apply_rope, rope_frequencies

pytestmark = pytest.mark.usefixtures("one_thread")


def _qkv(b, h, t, d, dtype=torch.float32, seed=0, std=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, t, d, generator=g, dtype=dtype) * std for _ in range(3))


def _brute_mask(t, window, causal, global_tokens):
    out = torch.zeros(t, t, dtype=torch.bool)
    for i in range(t):
        for j in range(t):
            if causal:
                ok = i - window < j <= i or ((i in global_tokens or j in global_tokens) and j <= i)
            else:
                ok = abs(i - j) < window or i in global_tokens or j in global_tokens
            out[i, j] = ok
    return out


# --------------------------------------------------------------------------------------------
# the mask
# --------------------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    t=st.integers(0, 24),
    window=st.integers(1, 30),
    causal=st.booleans(),
    data=st.data(),
)
def test_mask_matches_brute_force(t, window, causal, data):
    glob = data.draw(st.lists(st.integers(0, t - 1), max_size=3)) if t else []
    mask = sliding_window_mask(t, window, causal=causal, global_tokens=glob)
    assert mask.dtype == torch.bool and mask.shape == (t, t)
    assert torch.equal(mask, _brute_mask(t, window, causal, set(glob)))


def test_mask_example_and_limits():
    assert sliding_window_mask(5, 2).int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    assert torch.equal(sliding_window_mask(6, 6), causal_mask(6))
    assert sliding_window_mask(6, 6, causal=False).all()
    assert torch.equal(sliding_window_mask(6, 1, causal=False), torch.eye(6, dtype=torch.bool))
    m = sliding_window_mask(6, 1, global_tokens=(2,))
    assert m[2, :3].all() and not m[2, 3:].any() and m[3:, 2].all() and not m[:2, 2].any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(t=5, window=0), "window must be a positive integer"),
        (dict(t=5, window=-2), "window must be a positive integer"),
        (dict(t=-1, window=2), "non-negative"),
        (dict(t=5, window=2, global_tokens=(5,)), "out of range"),
        (dict(t=5, window=2, global_tokens=(-1,)), "non-negative integer positions"),
    ],
)
def test_mask_errors(kwargs, match):
    t = kwargs.pop("t")
    window = kwargs.pop("window")
    with pytest.raises(ValueError, match=match):
        sliding_window_mask(t, window, **kwargs)


# --------------------------------------------------------------------------------------------
# sliding-window attention
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("banded", [True, False])
def test_full_window_is_full_attention(causal, banded):
    q, k, v = _qkv(2, 3, 10, 8)
    ref = scaled_dot_product_attention(q, k, v, causal_mask(10) if causal else None)
    for window in (10, 11, 64):
        out = sliding_window_attention(q, k, v, window, causal=causal, banded=banded)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("banded", [True, False])
def test_class_with_full_window_equals_multihead(causal, banded):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, n_kv_heads=2).eval()
    swa = SlidingWindowAttention(16, 4, n_kv_heads=2, window=12, banded=banded).eval()
    swa.load_state_dict(mha.state_dict())  # same parameters: a module swap
    x = torch.randn(2, 12, 16)
    torch.testing.assert_close(
        swa(x, is_causal=causal), mha(x, is_causal=causal), atol=1e-5, rtol=1e-5
    )


LENGTHS = [1, 3, 7, 8, 9, 31, 64, 100]
WINDOWS = [1, 4, 8, 16]
GLOBALS = [(), (0,), (0, 5)]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("t", LENGTHS)
def test_banded_equals_masked(t, causal):
    q32, k32, v32 = _qkv(2, 2, t, 8, seed=t)
    for window, glob in itertools.product(WINDOWS, GLOBALS):
        if any(g >= t for g in glob):
            continue
        kw = dict(causal=causal, global_tokens=glob)
        banded = sliding_window_attention(q32, k32, v32, window, banded=True, **kw)
        masked = sliding_window_attention(q32, k32, v32, window, banded=False, **kw)
        torch.testing.assert_close(banded, masked, atol=1e-5, rtol=1e-5)
        # float64, with gradients
        q, k, v = (x.double().requires_grad_(True) for x in (q32, k32, v32))
        w = torch.randn(masked.shape, generator=torch.Generator().manual_seed(1), dtype=q.dtype)
        b64 = sliding_window_attention(q, k, v, window, banded=True, **kw)
        grads_b = torch.autograd.grad((b64 * w).sum(), (q, k, v))
        m64 = sliding_window_attention(q, k, v, window, banded=False, **kw)
        grads_m = torch.autograd.grad((m64 * w).sum(), (q, k, v))
        assert b64.dtype == torch.float64
        torch.testing.assert_close(b64, m64, atol=1e-10, rtol=1e-10)
        for gb, gm in zip(grads_b, grads_m, strict=True):
            torch.testing.assert_close(gb, gm, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("causal", [True, False])
def test_banded_supports_padding_masks_and_biases(causal):
    t, window = 19, 4
    q, k, v = _qkv(2, 4, t, 8, dtype=torch.float64)
    valid = torch.ones(2, t, dtype=torch.bool)
    valid[1, 13:] = False
    key_mask = valid[:, None, None, :]
    bias = alibi_bias(4, t, dtype=torch.float64).unsqueeze(0)
    for glob in [(), (0, 7)]:
        kw = dict(causal=causal, global_tokens=glob, mask=key_mask, bias=bias)
        banded = sliding_window_attention(q, k, v, window, banded=True, **kw)
        masked = sliding_window_attention(q, k, v, window, banded=False, **kw)
        torch.testing.assert_close(banded, masked, atol=1e-12, rtol=1e-12)
    # the module: key_padding_mask and GQA, banded against masked
    torch.manual_seed(0)
    a = SlidingWindowAttention(16, 4, n_kv_heads=2, window=3, global_tokens=(0,)).double().eval()
    b = SlidingWindowAttention(16, 4, n_kv_heads=2, window=3, global_tokens=(0,), banded=False)
    b = b.double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, t, 16, dtype=torch.float64)
    out_a = a(x, key_padding_mask=valid, is_causal=causal)
    out_b = b(x, key_padding_mask=valid, is_causal=causal)
    torch.testing.assert_close(out_a, out_b, atol=1e-12, rtol=1e-12)


def test_empty_row_gives_zeros_not_nan():
    q, k, v = _qkv(1, 1, 6, 4)
    valid = torch.tensor([[False, False, True, True, True, True]])[:, None, None, :]
    for banded in (True, False):
        out = sliding_window_attention(q, k, v, 2, mask=valid, banded=banded)
        assert torch.isfinite(out).all()
        assert torch.equal(out[..., :2, :], torch.zeros_like(out[..., :2, :]))  # rows 0, 1: no key


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("banded", [True, False])
def test_global_tokens_see_all_and_are_seen_by_all(causal, banded):
    t, window, glob = 40, 4, (0, 21)
    q, k, v = _qkv(1, 2, t, 8, dtype=torch.float64)
    base = sliding_window_attention(
        q, k, v, window, causal=causal, global_tokens=glob, banded=banded
    )
    mask = sliding_window_mask(t, window, causal=causal, global_tokens=glob)
    for j in (0, 21, 30, 39):
        v2 = v.clone()
        v2[..., j, :] += 1.0
        out = sliding_window_attention(
            q, k, v2, window, causal=causal, global_tokens=glob, banded=banded
        )
        changed = (out - base).abs().amax(dim=(0, 1, 3)) > 1e-12  # per query row
        assert torch.equal(changed, mask[:, j]), j
    # a global key is seen by every (later) query; a global query sees every (earlier) key
    assert mask[:, 0].all() and mask[0, :].sum() == (1 if causal else t)
    assert mask[21, :22].all() and (causal or mask[21].all())


class _LargestStorage(TorchDispatchMode):
    """Records the largest storage (elements of 4 bytes) of any tensor an op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        out = func(*args, **(kwargs or {}))
        for x in out if isinstance(out, tuple | list) else (out,):
            if isinstance(x, torch.Tensor):
                n = x.untyped_storage().nbytes() // x.element_size()
                self.largest = max(self.largest, n)
        return out


def _largest(t, window, banded, causal=True, glob=()):
    q, k, v = _qkv(1, 1, t, 8)
    with _LargestStorage() as mode:
        sliding_window_attention(q, k, v, window, causal=causal, global_tokens=glob, banded=banded)
    return mode.largest


@pytest.mark.parametrize("causal", [True, False])
def test_banded_memory_is_linear(causal):
    window = 16
    for n_global in (0, 2):
        counts = [
            banded_score_elements(t, window, causal=causal, n_global=n_global)
            for t in (256, 512, 1024)
        ]
        assert counts[1] == 2 * counts[0] and counts[2] == 2 * counts[1]
    assert banded_score_elements(1000, 16) < 1000 * 1000 / 25
    glob = (0, 3)
    banded = [_largest(t, window, True, causal, glob) for t in (256, 512)]
    masked = [_largest(t, window, False, causal, glob) for t in (256, 512)]
    # the largest tensor the banded kernel makes holds about the counted scores, and it
    # doubles with the length, while the masked version's T x T matrix quadruples
    assert banded[0] <= banded_score_elements(256, window, causal=causal, n_global=2)
    assert banded[1] <= 2.1 * banded[0]
    assert masked[1] >= 3.9 * masked[0] and masked[0] >= 256 * 256


def test_class_cache_masked_path_and_banded_error():
    torch.manual_seed(0)
    swa = SlidingWindowAttention(16, 2, window=3, global_tokens=(1,), banded=False).eval()
    x = torch.randn(1, 9, 16)
    full = swa(x, is_causal=True)
    cache = KVCache()
    steps = [swa(x[:, :4], is_causal=True, cache=cache)]
    steps += [swa(x[:, i : i + 1], is_causal=True, cache=cache) for i in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    banded = SlidingWindowAttention(16, 2, window=3).eval()
    cache = KVCache()
    banded(x[:, :4], is_causal=True, cache=cache)
    with pytest.raises(NotImplementedError, match="banded=False"):
        banded(x[:, 4:5], is_causal=True, cache=cache)


def test_class_return_weights_show_the_window():
    torch.manual_seed(0)
    swa = SlidingWindowAttention(16, 2, window=3, global_tokens=(0,)).eval()
    out, w = swa(torch.randn(1, 8, 16), is_causal=True, return_weights=True)
    assert out.shape == (1, 8, 16) and w.shape == (1, 2, 8, 8)
    allowed = sliding_window_mask(8, 3, global_tokens=(0,))
    assert (w[..., ~allowed] == 0).all() and (w[..., allowed] > 0).all()


def test_sliding_window_errors():
    q, k, v = _qkv(1, 1, 5, 4)
    with pytest.raises(ValueError, match="window"):
        sliding_window_attention(q, k, v, 0)
    with pytest.raises(ValueError, match="out of range"):
        sliding_window_attention(q, k, v, 2, global_tokens=(9,))
    with pytest.raises(ValueError, match="same length"):
        sliding_window_attention(q, k[..., :3, :], v[..., :3, :], 2)
    with pytest.raises(ValueError, match="window"):
        SlidingWindowAttention(8, 2, window=0)
    with pytest.raises(ValueError, match="out of range"):
        SlidingWindowAttention(8, 2, window=2, global_tokens=(7,))(torch.randn(1, 5, 8))


# --------------------------------------------------------------------------------------------
# Linformer
# --------------------------------------------------------------------------------------------
def test_linformer_identity_projection_is_full_attention():
    torch.manual_seed(0)
    n = 12
    mha = MultiHeadAttention(16, 4).eval()
    lin = LinformerAttention(16, 4, seq_len=n, k=n).eval()
    lin.load_state_dict({**mha.state_dict(), "E": torch.eye(n), "F": torch.eye(n)})
    x = torch.randn(2, n, 16)
    torch.testing.assert_close(lin(x), mha(x), atol=1e-5, rtol=1e-5)
    kp, vp = linformer_project(
        torch.ones(3, 5, 2), torch.ones(3, 5, 7), torch.eye(4, 6), torch.eye(4, 6)
    )
    assert kp.shape == (3, 4, 2) and vp.shape == (3, 4, 7)


def test_linformer_shapes_padding_and_errors():
    torch.manual_seed(0)
    lin = LinformerAttention(16, 4, n_kv_heads=2, seq_len=32, k=8).eval()
    assert lin.E.shape == lin.F.shape == (8, 32)
    for t in (1, 20, 32):
        out, w = lin(torch.randn(2, t, 16), return_weights=True)
        assert out.shape == (2, t, 16) and w.shape == (2, 4, t, 8)
    # padded keys are zeroed before the projection: their content does not matter
    x = torch.randn(2, 10, 16)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[0, 6:] = False
    y = x.clone()
    y[0, 6:] = torch.randn(4, 16)
    a, b = lin(x, key_padding_mask=valid), lin(y, key_padding_mask=valid)
    torch.testing.assert_close(a[0, :6], b[0, :6])
    with pytest.raises(ValueError, match="cannot be causal"):
        lin(x, is_causal=True)
    with pytest.raises(ValueError, match="seq_len"):
        lin(torch.randn(1, 33, 16))
    with pytest.raises(NotImplementedError, match="key padding mask"):
        lin(x, mask=causal_mask(10))
    with pytest.raises(ValueError, match="positive integer"):
        LinformerAttention(16, 4, seq_len=32, k=0)


# --------------------------------------------------------------------------------------------
# Performer
# --------------------------------------------------------------------------------------------
FEATURES = (16, 64, 256, 1024)


def performer_errors(seeds=range(4)):
    """Mean relative (Frobenius) error of Performer's output against softmax attention."""
    q, k, _ = _qkv(1, 2, 32, 16, dtype=torch.float64, seed=1, std=0.3)
    v = _qkv(1, 2, 32, 16, dtype=torch.float64, seed=2)[2]
    ref = scaled_dot_product_attention(q, k, v)
    errors = {}
    for m in FEATURES:
        errs = []
        for s in seeds:
            out = performer_attention(
                q, k, v, n_features=m, generator=torch.Generator().manual_seed(s)
            )
            errs.append(((out - ref).norm() / ref.norm()).item())
        errors[m] = sum(errs) / len(errs)
    return errors


def test_performer_converges_to_softmax_attention():
    err = performer_errors()
    assert err[1024] < 0.5 * err[16]
    assert err[1024] < err[256] < err[16]
    assert err[1024] < 0.06  # measured about 0.02


def test_performer_features_are_positive_and_unbiased():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64) * 0.25
    y = torch.randn(5, 8, generator=g, dtype=torch.float64) * 0.25
    m = 50_000
    w = orthogonal_random_features(m, 8, generator=g, dtype=torch.float64)
    phi_x, phi_y = performer_features(x, w), performer_features(y, w)
    assert phi_x.shape == (5, m) and (phi_x > 0).all() and (phi_y > 0).all()
    est = phi_x @ phi_y.T  # the mean over m features of exp(w.x - |x|^2/2) exp(w.y - |y|^2/2)
    torch.testing.assert_close(est, torch.exp(x @ y.T), rtol=0.05, atol=0.0)
    # stabilising multiplies by constants that cancel in attention's ratio
    rows = performer_features(x, w, stabilize="row")
    assert (rows > 0).all() and rows.amax(dim=-1).allclose(
        torch.full((5,), m**-0.5, dtype=rows.dtype)
    )
    ratio = performer_features(y, w, stabilize="global") / phi_y
    torch.testing.assert_close(ratio, ratio[0, 0].expand_as(ratio))
    # each block of d rows is orthogonal
    block = w[:8]
    gram = block @ block.T
    torch.testing.assert_close(
        gram - torch.diag(torch.diagonal(gram)), torch.zeros(8, 8, dtype=gram.dtype)
    )


@pytest.mark.parametrize("t", [1, 5, 64, 70])
def test_performer_causal_prefix_sums_equal_the_quadratic_loop(t):
    q, k, v = _qkv(2, 2, t, 8, dtype=torch.float64, std=0.5)
    w = orthogonal_random_features(32, 8, generator=torch.Generator().manual_seed(3), dtype=q.dtype)
    out = performer_attention(q, k, v, projection=w, causal=True, chunk_size=16)
    phi_q, phi_k = performer_features(q * 8**-0.25, w), performer_features(k * 8**-0.25, w)
    ref = torch.empty_like(out)
    for i in range(t):
        a = (phi_q[..., i : i + 1, :] * phi_k[..., : i + 1, :]).sum(-1)  # (B, H, i + 1)
        ref[..., i, :] = (a.unsqueeze(-1) * v[..., : i + 1, :]).sum(-2) / a.sum(-1, keepdim=True)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    # non-causal: the same features without the restriction
    full = performer_attention(q, k, v, projection=w)
    a = phi_q @ phi_k.transpose(-2, -1)
    torch.testing.assert_close(full, (a @ v) / a.sum(-1, keepdim=True), atol=1e-10, rtol=1e-10)
    # the implied weights agree with both
    out_w, weights = performer_attention(q, k, v, projection=w, causal=True, return_weights=True)
    torch.testing.assert_close(out_w, out, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))


def test_performer_module_cache_mask_and_redraw():
    torch.manual_seed(0)
    perf = PerformerAttention(16, 4, n_kv_heads=2, n_features=32, seed=5, chunk_size=4).eval()
    assert perf.projection.shape == (32, 4)
    x = torch.randn(2, 11, 16)
    full = perf(x, is_causal=True)
    cache = KVCache()
    steps = [perf(x[:, :5], is_causal=True, cache=cache)]
    steps += [perf(x[:, i : i + 1], is_causal=True, cache=cache) for i in range(5, 11)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    # padded keys do not matter
    valid = torch.ones(2, 11, dtype=torch.bool)
    valid[1, 7:] = False
    y = x.clone()
    y[1, 7:] = 5 * torch.randn(4, 16)
    a, b = perf(x, key_padding_mask=valid), perf(y, key_padding_mask=valid)
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1, :7], b[1, :7])  # the padded rows have other queries
    # same seed, same features; redraw gives new ones, reproducibly
    again = PerformerAttention(16, 4, n_kv_heads=2, n_features=32, seed=5)
    assert torch.equal(again.projection, perf.projection)
    before = perf.projection.clone()
    perf.redraw()
    again.redraw()
    assert not torch.equal(perf.projection, before)
    assert torch.equal(perf.projection, again.projection)
    assert "projection" in perf.state_dict()
    with pytest.raises(NotImplementedError, match="key padding mask"):
        perf(x, mask=causal_mask(11))


def test_performer_errors():
    q, k, v = _qkv(1, 1, 4, 8)
    with pytest.raises(ValueError, match="n_features must be a positive integer"):
        performer_attention(q, k, v, n_features=0)
    with pytest.raises(ValueError, match="n_features must be a positive integer"):
        PerformerAttention(16, 2, n_features=0)
    with pytest.raises(ValueError, match="n_features"):
        performer_attention(q, k, v)
    with pytest.raises(ValueError, match="dropout"):
        PerformerAttention(16, 2, dropout=0.1)


# --------------------------------------------------------------------------------------------
# RoPE context extension
# --------------------------------------------------------------------------------------------
def test_interpolation_maps_positions_exactly():
    head_dim, factor = 8, 4
    trained = RotaryEmbedding(head_dim, max_positions=16).double()
    extended = extend_rope(
        RotaryEmbedding(head_dim, max_positions=16).double(), method="interpolation", factor=factor
    )
    assert isinstance(extended, RotaryEmbedding) and extended.scale == factor
    x = torch.randn(1, 64, head_dim, dtype=torch.float64)
    long_rot = extended(x)  # positions 0..63 -> 0, 0.25, ..., 15.75
    short_rot = trained(x[:, ::factor])  # positions 0..15 of the trained table
    torch.testing.assert_close(long_rot[:, ::factor], short_rot, atol=1e-12, rtol=1e-12)
    frac = apply_rope(x, torch.arange(64, dtype=torch.float64) / factor)
    torch.testing.assert_close(long_rot, frac, atol=1e-12, rtol=1e-12)


def test_ntk_base_formula():
    d, base, s = 16, 10000.0, 4.0
    assert ntk_scaled_base(base, d, s) == pytest.approx(base * s ** (d / (d - 2)))
    rot = extend_rope(RotaryEmbedding(d), method="ntk", factor=s)
    assert rot.base == pytest.approx(base * s ** (d / (d - 2))) and rot.scale == 1.0
    old = rope_frequencies(d, base=base)
    new = rope_frequencies(d, base=rot.base)
    assert new[0].item() == old[0].item() == 1.0  # the fastest pair is untouched
    assert new[-1].item() == pytest.approx(
        old[-1].item() / s, rel=1e-12
    )  # the slowest one is interpolated
    stretch = old / new
    assert (stretch[1:] > stretch[:-1]).all()  # slower pairs are stretched more
    with pytest.raises(ValueError, match="head_dim >= 4"):
        ntk_scaled_base(base, 2, s)


@pytest.mark.parametrize("method", ["none", "interpolation", "ntk"])
def test_factor_one_is_a_no_op(method):
    rot = RotaryEmbedding(8, max_positions=32)
    cos, sin = rot.cos.clone(), rot.sin.clone()
    assert extend_rope(rot, method=method, factor=1) is rot
    assert torch.equal(rot.cos, cos) and torch.equal(rot.sin, sin)


def _tiny_gpt(positional="rope"):
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=40, block_size=16, n_layers=2, n_heads=2, d_model=16, positional=positional
    )
    return GPT(cfg).eval()


@pytest.mark.parametrize("method", ["none", "interpolation", "ntk"])
def test_extend_gpt(method):
    model = _tiny_gpt()
    old_config = model.config
    ids = torch.randint(0, 40, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids[:, :16])
        assert extend_rope(model, method=method, factor=2) is model
        assert model.context_length == 32 and old_config.block_size == 16
        assert model.rotary is model.blocks.blocks()[0].self_attn.rotary
        logits = model(ids)
    assert logits.shape == (2, 32, 40) and torch.isfinite(logits).all()
    if method == "none":
        torch.testing.assert_close(logits[:, :16], before)
        torch.testing.assert_close(model(ids[:, :16]), before)
    else:
        assert not torch.allclose(logits[:, :16], before)


def test_extend_rope_errors():
    rot = RotaryEmbedding(8)
    with pytest.raises(ValueError, match="factor must be a finite number >= 1"):
        extend_rope(rot, method="interpolation", factor=0.5)
    with pytest.raises(ValueError, match="method must be one of"):
        extend_rope(rot, method="yarn", factor=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Learned absolute positions"):
        extend_rope(_tiny_gpt("learned"), method="interpolation", factor=2)
