"""Edge cases of the public API: empty sequences, wrong dtypes, out-of-range arguments.

Each either gives a result of the right shape or raises an error that names the argument and
what is allowed; plus a property-based test that drives random shapes, dtypes, masks and
lengths through attention and the positional functions.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.attention import (
    MultiHeadAttention,
    causal_mask,
    flash_attention,
    fused_attention,
    scaled_dot_product_attention,
)
from coursekit.layers import BlockConfig, TransformerBlock
from coursekit.models import Transformer, TransformerConfig
from coursekit.positional import (
    RotaryEmbedding,
    alibi_bias,
    apply_rope,
    rope_frequencies,
    t5_relative_position_bucket,
)
from coursekit.rnn.seq2seq import Seq2SeqConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(("tq", "tk"), [(0, 5), (4, 0), (0, 0)])
def test_empty_sequences_give_empty_outputs(tq: int, tk: int) -> None:
    q, k, v = torch.randn(2, 3, tq, 8), torch.randn(2, 3, tk, 8), torch.randn(2, 3, tk, 6)
    for out in (
        scaled_dot_product_attention(q, k, v),
        scaled_dot_product_attention(q, k, v, causal_mask(tq, tk)),
        fused_attention(q, k, v),
        flash_attention(q, k, v),
    ):
        assert out.shape == (2, 3, tq, 6)
        assert torch.all(out == 0)  # no key: zeros, never NaN
    mha = MultiHeadAttention(16, 4)
    x, ctx = torch.randn(2, tq, 16), torch.randn(2, tk, 16)
    assert mha(x, ctx).shape == (2, tq, 16)
    out, w = mha(x, ctx, return_weights=True)
    assert out.shape == (2, tq, 16) and w.shape == (2, 4, tq, tk)


def test_empty_sequences_through_the_models() -> None:
    model = Transformer(
        TransformerConfig(
            9, 9, d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32
        )
    )
    src = torch.randint(3, 9, (2, 4))
    assert model(src, torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0, 9)
    block = TransformerBlock(BlockConfig(16, 2, 32))
    assert block(torch.randn(3, 0, 16), is_causal=True).shape == (3, 0, 16)


def test_bool_bias_is_a_type_error() -> None:
    q = torch.randn(1, 2, 4, 8)
    future = ~causal_mask(4)
    with pytest.raises(TypeError, match="boolean tensor is a mask"):
        scaled_dot_product_attention(q, q, q, bias=future)
    with pytest.raises(TypeError, match="boolean tensor is a mask"):
        MultiHeadAttention(8, 2)(torch.randn(1, 4, 8), bias=future)


@pytest.mark.parametrize(
    ("dtypes", "match"),
    [
        ((torch.long, torch.long, torch.long), "floating-point"),
        ((torch.float32, torch.float64, torch.float32), "share one dtype"),
        ((torch.float32, torch.float32, torch.int32), "floating-point"),
    ],
)
def test_integer_or_mixed_qkv_is_a_type_error(dtypes: tuple, match: str) -> None:
    q, k, v = (torch.ones(1, 3, 4).to(d) for d in dtypes)
    with pytest.raises(TypeError, match=match):
        scaled_dot_product_attention(q, k, v)
    with pytest.raises(TypeError, match=match):
        flash_attention(q, k, v)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_model": 8, "n_heads": 0}, "n_heads must be a positive integer"),
        ({"d_model": 8, "n_heads": 3}, "not divisible"),
        ({"d_model": 8, "n_heads": 4, "n_kv_heads": 3}, "positive divisor"),
        ({"d_model": 8, "n_heads": 2, "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"d_model": 8, "n_heads": 2, "scale": 0.0}, "scale must be a positive"),
    ],
)
def test_attention_arguments_are_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


@pytest.mark.parametrize(
    ("base", "scale"),
    [(0.0, 1.0), (-5.0, 1.0), (1.0, 1.0), (1e4, 0.0), (1e4, -2.0), (float("nan"), 1.0)],
)
def test_rope_base_and_scale_are_checked(base: float, scale: float) -> None:
    x = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="RoPE (base|scale)"):
        apply_rope(x, base=base, scale=scale)
    with pytest.raises(ValueError, match="RoPE (base|scale)"):
        RotaryEmbedding(8, base=base, scale=scale)
    if scale == 1.0:
        with pytest.raises(ValueError, match="RoPE base"):
            rope_frequencies(8, base=base)


@pytest.mark.parametrize("num_buckets", [0, 1, 2, 3])
def test_t5_buckets_need_at_least_four(num_buckets: int) -> None:
    with pytest.raises(ValueError, match="num_buckets must be >= 4"):
        t5_relative_position_bucket(torch.arange(-3, 4), num_buckets=num_buckets)


@pytest.mark.parametrize(("tq", "tk"), [(-1, 3), (2, -1), (4, 2)])
def test_alibi_lengths_are_checked(tq: int, tk: int) -> None:
    with pytest.raises(ValueError, match="t_q"):
        alibi_bias(4, tq, tk)


# ------------------------------------------------------------------ property-based
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
DOCUMENTED = (ValueError, TypeError)


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(0, 2),
    h=st.integers(1, 3),
    tq=st.integers(0, 6),
    tk=st.integers(0, 6),
    d=st.integers(1, 8),
    dv=st.integers(1, 5),
    dtype=st.sampled_from(DTYPES),
    mask_kind=st.sampled_from(["none", "causal", "random", "bad-shape", "float"]),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_property_attention_is_finite_or_raises_a_documented_error(
    b: int,
    h: int,
    tq: int,
    tk: int,
    d: int,
    dv: int,
    dtype: torch.dtype,
    mask_kind: str,
    bias: bool,
    seed: int,
) -> None:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, tq, d, generator=g).to(dtype)
    k = torch.randn(b, h, tk, d, generator=g).to(dtype)
    v = torch.randn(b, h, tk, dv, generator=g).to(dtype)
    mask = {
        "none": None,
        "causal": causal_mask(tq, tk),
        "random": torch.rand(b, 1, tq, tk, generator=g) > 0.5,
        "bad-shape": torch.ones(tq + 1, tk + 2, dtype=torch.bool),
        "float": torch.zeros(tq, tk),
    }[mask_kind]
    extra = torch.randn(h, tq, tk, generator=g).to(dtype) if bias else None
    for fn in (
        lambda: scaled_dot_product_attention(q, k, v, mask, bias=extra),
        lambda: fused_attention(q, k, v, mask=mask, bias=extra),
    ):
        try:
            out = fn()
        except DOCUMENTED as err:
            assert str(err), "an error must say what is wrong"
            assert mask_kind in ("bad-shape", "float"), f"unexpected error: {err}"
            continue
        except RuntimeError as err:  # PyTorch's own kernel rejecting a shape/dtype
            assert mask_kind in ("bad-shape", "float"), f"unexpected error: {err}"
            continue
        assert out.shape == (b, h, tq, dv) and out.dtype == dtype
        assert torch.isfinite(out).all()


@settings(max_examples=40, deadline=None)
@given(
    n_heads=st.integers(-1, 4),
    d_head=st.integers(1, 4),
    t=st.integers(0, 5),
    n_kv=st.integers(0, 4),
    causal=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_property_mha(
    n_heads: int, d_head: int, t: int, n_kv: int, causal: bool, dtype: torch.dtype
) -> None:
    d = max(n_heads, 1) * d_head
    try:
        mha = MultiHeadAttention(d, n_heads, n_kv_heads=n_kv).to(dtype)
    except ValueError as err:
        assert "n_heads" in str(err) or "n_kv_heads" in str(err)
        assert n_heads < 1 or n_kv < 1 or (n_heads % n_kv)
        return
    out = mha(torch.randn(2, t, d).to(dtype), is_causal=causal)
    assert out.shape == (2, t, d) and out.dtype == dtype and torch.isfinite(out).all()


@settings(max_examples=40, deadline=None)
@given(
    t=st.integers(0, 9),
    d=st.integers(1, 10),
    base=st.sampled_from([-1.0, 0.0, 0.5, 2.0, 1e4]),
    scale=st.sampled_from([0.0, 0.5, 1.0, 4.0]),
    num_buckets=st.integers(0, 12),
)
def test_property_positional(t: int, d: int, base: float, scale: float, num_buckets: int) -> None:
    x = torch.randn(2, t, d)
    try:
        out = apply_rope(x, base=base, scale=scale)
    except ValueError as err:
        assert "RoPE" in str(err) or "even" in str(err)
        assert d % 2 or base <= 1 or scale <= 0
    else:
        assert out.shape == x.shape and torch.isfinite(out).all()
    rel = torch.arange(-t, t + 1)
    try:
        buckets = t5_relative_position_bucket(rel, num_buckets=num_buckets, max_distance=64)
    except ValueError as err:
        assert "num_buckets" in str(err) or "max_distance" in str(err)
    else:
        assert buckets.shape == rel.shape
        assert int(buckets.min()) >= 0 and int(buckets.max()) < num_buckets


# ------------------------------------------------------------------ model configs validate
@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: TransformerConfig(10, 10, dropout=1.0), "dropout"),
        (lambda: TransformerConfig(10, 10, dropout=-0.1), "dropout"),
        (lambda: TransformerConfig(10, 10, n_heads=0), "n_heads"),
        (lambda: TransformerConfig(10, 10, d_model=30, n_heads=4), "divisible"),
        (lambda: TransformerConfig(10, 10, max_positions=0), "max_positions"),
        (lambda: BlockConfig(16, 4, 32, dropout=1.5), "dropout"),
        (lambda: BlockConfig(16, 4, 0), "d_ff"),
        (lambda: BlockConfig(16, 4, 32, n_kv_heads=3), "n_kv_heads"),
        (lambda: BlockConfig(16, 4, 32, eps=0.0), "eps"),
        (lambda: BlockConfig(16, 4, 32, activation="tanh"), "activation"),  # type: ignore[arg-type]
    ],
)
def test_model_configs_name_the_bad_field(build, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        build()


def test_seq2seq_config_validates() -> None:
    with pytest.raises(ValueError, match="dropout"):
        Seq2SeqConfig(10, 10, dropout=1.0)
    with pytest.raises(ValueError, match="d_hidden"):
        Seq2SeqConfig(10, 10, d_hidden=0)
    with pytest.raises(ValueError, match="eos_id"):
        Seq2SeqConfig(10, 2)
