"""coursekit.positional: formulas, properties and the T5 reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    T5RelativeBias,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    sinusoidal_encoding,
    sinusoidal_shift_matrix,
    t5_relative_position_bucket,
)


def test_sinusoidal_formula():
    n, d = 50, 16
    pe = sinusoidal_encoding(n, d, dtype=torch.float64)
    assert pe.shape == (n, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-12)
            assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-12)
    assert sinusoidal_encoding(4, 7).shape == (4, 7)  # odd widths work too


@pytest.mark.parametrize("k", [1, 3, 17, 100])
def test_sinusoidal_linear_shift(k):
    d = 32
    pe = sinusoidal_encoding(300, d, dtype=torch.float64)
    m = sinusoidal_shift_matrix(k, d)
    # the same matrix works for every position
    torch.testing.assert_close(pe[k : k + 200], pe[:200] @ m.T, atol=1e-9, rtol=0)
    # M_k is a rotation (orthogonal) and shifts compose: M_a M_b = M_(a+b)
    torch.testing.assert_close(m @ m.T, torch.eye(d, dtype=torch.float64))
    torch.testing.assert_close(sinusoidal_shift_matrix(2, d) @ m, sinusoidal_shift_matrix(k + 2, d))


def test_sinusoidal_module_adds_table():
    mod = SinusoidalPositionalEncoding(8, max_positions=4)
    x = torch.zeros(2, 10, 8)  # longer than the initial table: grows
    torch.testing.assert_close(mod(x)[0], sinusoidal_encoding(10, 8))
    torch.testing.assert_close(mod(x[:, :3], offset=5)[1], sinusoidal_encoding(8, 8)[5:])


def test_learned_positional_limit():
    emb = LearnedPositionalEmbedding(16, 8)
    x = torch.zeros(1, 16, 8)
    torch.testing.assert_close(emb(x)[0], emb.weight)
    with pytest.raises(IndexError, match="only has 16 positions"):
        emb(torch.zeros(1, 17, 8))
    with pytest.raises(IndexError, match="cannot extrapolate"):
        emb(torch.zeros(1, 4, 8), offset=13)


def test_rope_preserves_norm_and_is_relative():
    torch.manual_seed(0)
    x = torch.randn(3, 20, 16, dtype=torch.float64)
    r = apply_rope(x)
    torch.testing.assert_close(r.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(apply_rope(x, torch.zeros(20)), x)  # position 0: identity
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)

    def score(m, n):
        qm = apply_rope(q.view(1, 16), torch.tensor([m]))
        kn = apply_rope(k.view(1, 16), torch.tensor([n]))
        return float((qm * kn).sum())

    for m, n in [(5, 2), (12, 9), (103, 100), (3.5, 0.5)]:
        assert math.isclose(score(m, n), score(m - n, 0), rel_tol=1e-9, abs_tol=1e-9)
    assert not math.isclose(score(5, 2), score(5, 3), rel_tol=1e-3)


def test_rope_matches_complex_multiplication_and_layouts():
    torch.manual_seed(1)
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    theta = 10000 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    pos = torch.arange(6, dtype=torch.float64)
    z = torch.view_as_complex(x.reshape(2, 6, 4, 2).contiguous())
    ref = torch.view_as_real(
        z * torch.polar(torch.ones(6, 4, dtype=torch.float64), pos[:, None] * theta)
    )
    torch.testing.assert_close(apply_rope(x), ref.reshape(2, 6, 8))
    # half-split layout = interleaved layout after permuting channels
    perm = torch.cat([torch.arange(0, 8, 2), torch.arange(1, 8, 2)])
    torch.testing.assert_close(
        apply_rope(x[..., perm], interleaved=False), apply_rope(x)[..., perm]
    )
    # position interpolation: scale 2 at position 2p equals scale 1 at position p
    torch.testing.assert_close(apply_rope(x, 2 * pos, scale=2.0), apply_rope(x, pos))
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.randn(2, 3, 5))


def test_alibi_slopes_and_bias():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    torch.testing.assert_close(
        alibi_slopes(4), torch.tensor([2.0 ** (-2 * i) for i in range(1, 5)])
    )
    # non power of two (paper's rule): 4 slopes of n=4, then every other slope of n=8
    torch.testing.assert_close(
        alibi_slopes(6), torch.tensor([1 / 4, 1 / 16, 1 / 64, 1 / 256, 1 / 2, 1 / 8])
    )
    b = alibi_bias(2, 4)
    assert b.shape == (2, 4, 4)
    torch.testing.assert_close(
        b[0, 3], -torch.tensor([3.0, 2.0, 1.0, 0.0]) / 16
    )  # 2 heads: 2^-4, 2^-8
    torch.testing.assert_close(alibi_bias(2, 1, 4)[:, 0], b[:, 3])  # cached decoding row


def _hf_bucket():
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    return t5.T5Attention._relative_position_bucket


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (16, 40), (8, 20)])
def test_t5_buckets_equal_transformers(bidirectional, num_buckets, max_distance):
    ref = _hf_bucket()
    rel = torch.arange(-300, 301)
    ours = t5_relative_position_bucket(
        rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    theirs = ref(
        rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    assert torch.equal(ours, theirs)


def test_t5_exact_buckets_then_log():
    b = t5_relative_position_bucket(
        torch.arange(0, 20), bidirectional=True, num_buckets=16, max_distance=128
    )
    assert b[:4].tolist() == [0, 9, 10, 11]  # keys after the query use buckets 8 + distance
    neg = t5_relative_position_bucket(-torch.arange(0, 4), bidirectional=True, num_buckets=16)
    assert neg.tolist() == [0, 1, 2, 3]  # exact buckets for distances 0-3
    assert len(set(b[4:].tolist())) < 16  # larger distances share log-spaced buckets


def test_t5_bad_max_distance():
    with pytest.raises(ValueError, match="max_distance"):
        t5_relative_position_bucket(torch.arange(5), num_buckets=64, max_distance=16)


def test_t5_relative_bias_module_equals_transformers():
    tr = pytest.importorskip("transformers")
    cfg = tr.T5Config(
        d_model=16,
        d_kv=4,
        num_heads=4,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        is_decoder=False,
    )
    from transformers.models.t5.modeling_t5 import T5Attention

    torch.manual_seed(0)
    ref = T5Attention(cfg, has_relative_attention_bias=True)
    ours = T5RelativeBias(4, bidirectional=True, num_buckets=32, max_distance=128)
    ours.relative_attention_bias.weight.data.copy_(ref.relative_attention_bias.weight.data)
    torch.testing.assert_close(ours(12, 12), ref.compute_bias(12, 12))


@settings(max_examples=30, deadline=None)
@given(
    rel=st.lists(st.integers(-1000, 1000), min_size=1, max_size=40),
    bidirectional=st.booleans(),
    num_buckets=st.sampled_from([8, 16, 32, 64]),
    max_distance=st.integers(64, 256),
)
def test_property_t5_buckets(rel, bidirectional, num_buckets, max_distance):
    ref = _hf_bucket()
    r = torch.tensor(rel)
    ours = t5_relative_position_bucket(
        r, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    assert torch.equal(
        ours,
        ref(r, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance),
    )
    assert int(ours.min()) >= 0 and int(ours.max()) < num_buckets


@settings(max_examples=25, deadline=None)
@given(
    d_half=st.integers(1, 16), m=st.integers(0, 500), n=st.integers(0, 500), seed=st.integers(0, 99)
)
def test_property_rope_relative(d_half, m, n, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 2 * d_half, generator=g, dtype=torch.float64)
    k = torch.randn(1, 2 * d_half, generator=g, dtype=torch.float64)
    a = (apply_rope(q, torch.tensor([m])) * apply_rope(k, torch.tensor([n]))).sum()
    b = (apply_rope(q, torch.tensor([m - n])) * k).sum()
    torch.testing.assert_close(a, b)
