"""coursekit.layers against PyTorch's own modules and the formulas they implement."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.layers import FeedForward, LayerNorm, ResidualBlock, RMSNorm, make_norm

pytestmark = pytest.mark.usefixtures("one_thread")


@settings(max_examples=30, deadline=None)
@given(
    d=st.integers(1, 48),
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    scale=st.floats(0.01, 100.0),
    seed=st.integers(0, 10_000),
)
def test_layernorm_equals_torch(d: int, lead: list[int], scale: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, d, generator=g, dtype=torch.float64) * scale + 3.0
    ours = LayerNorm(d).double()
    ref = torch.nn.LayerNorm(d).double()
    with torch.no_grad():
        ours.weight.copy_(torch.randn(d, generator=g))
        ours.bias.copy_(torch.randn(d, generator=g))
    ref.load_state_dict(ours.state_dict())  # same parameter names
    torch.testing.assert_close(ours(x), ref(x))


def test_layernorm_normalises_each_position() -> None:
    x = torch.randn(3, 7, 16) * 5 + 2
    y = LayerNorm(16)(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(3, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(3, 7), atol=1e-3, rtol=0)


def test_layernorm_without_bias_and_bad_shape() -> None:
    ln = LayerNorm(8, bias=False)
    assert ln.bias is None and sum(p.numel() for p in ln.parameters()) == 8
    ref = torch.nn.LayerNorm(8, bias=False)
    x = torch.randn(4, 8)
    torch.testing.assert_close(ln(x), ref(x))
    with pytest.raises(ValueError, match="last dimension of 8"):
        ln(torch.randn(4, 9))


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 40), seed=st.integers(0, 10_000))
def test_rmsnorm_equals_torch(d: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, d, generator=g, dtype=torch.float64)
    ours = RMSNorm(d, eps=1e-6).double()
    with torch.no_grad():
        ours.weight.copy_(torch.randn(d, generator=g))
    ref = torch.nn.RMSNorm(d, eps=1e-6).double()
    ref.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x), ref(x))


def test_rmsnorm_does_not_centre() -> None:
    x = torch.full((2, 4), 3.0)
    y = RMSNorm(4)(x)  # LayerNorm would give zeros; RMSNorm keeps the sign and scale 1
    torch.testing.assert_close(y, torch.ones(2, 4), atol=1e-5, rtol=0)
    assert torch.allclose(LayerNorm(4)(x), torch.zeros(2, 4))


def test_make_norm_rejects_unknown_kind() -> None:
    assert isinstance(make_norm("rms", 4, scratch=True), RMSNorm)
    assert isinstance(make_norm("rms", 4), torch.nn.RMSNorm)  # the running version
    assert isinstance(make_norm("layer", 4), torch.nn.LayerNorm)
    with pytest.raises(ValueError, match="Unknown norm kind"):
        make_norm("batch", 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("activation", ["relu", "gelu", "swiglu"])
@pytest.mark.parametrize("bias", [True, False])
def test_feedforward_formula_and_param_count(activation: str, bias: bool) -> None:
    torch.manual_seed(0)
    ffn = FeedForward(12, 20, activation=activation, bias=bias)  # type: ignore[arg-type]
    x = torch.randn(3, 5, 12)
    w1, w2 = ffn.w1.weight, ffn.w2.weight
    b1 = ffn.w1.bias if bias else 0.0
    b2 = ffn.w2.bias if bias else 0.0
    pre = x @ w1.T + b1
    if activation == "relu":
        hidden = torch.clamp(pre, min=0)  # max(0, x W1 + b1)
    elif activation == "gelu":
        hidden = 0.5 * pre * (1 + torch.erf(pre / 2**0.5))
    else:
        b3 = ffn.w3.bias if bias else 0.0
        gate = x @ ffn.w3.weight.T + b3
        hidden = pre * torch.sigmoid(pre) * gate
    expected = hidden @ w2.T + b2
    torch.testing.assert_close(ffn(x), expected)
    n = sum(p.numel() for p in ffn.parameters())
    assert n == FeedForward.n_params(12, 20, activation, bias)  # type: ignore[arg-type]


def test_feedforward_matches_torch_encoder_layer_ffn() -> None:
    torch.manual_seed(1)
    ref = torch.nn.TransformerEncoderLayer(
        16, 2, 32, dropout=0.0, activation="gelu", batch_first=True
    )
    ffn = FeedForward(16, 32, activation="gelu")
    ffn.w1.load_state_dict(ref.linear1.state_dict())
    ffn.w2.load_state_dict(ref.linear2.state_dict())
    x = torch.randn(2, 3, 16)
    torch.testing.assert_close(ffn(x), ref.linear2(F.gelu(ref.linear1(x))))


def test_feedforward_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="Unknown activation"):
        FeedForward(4, 8, activation="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="last dimension"):
        FeedForward(4, 8)(torch.randn(2, 5))


def test_residual_block_post_and_pre_norm() -> None:
    torch.manual_seed(2)
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8) * 3
    post = ResidualBlock(8, norm_first=False)
    pre = ResidualBlock(8, norm_first=True)
    ln = torch.nn.LayerNorm(8)
    torch.testing.assert_close(post(x, lin), ln(x + lin(x)))
    torch.testing.assert_close(pre(x, lin), x + lin(ln(x)))
    # the seed text's "x + LayerNorm(Sublayer(x))" is neither of the two
    wrong = x + ln(lin(x))
    assert not torch.allclose(post(x, lin), wrong)
    # post-norm output is normalised; pre-norm keeps the un-normalised residual stream
    assert torch.allclose(post(x, lin).mean(-1), torch.zeros(4), atol=1e-5)
    assert not torch.allclose(pre(x, lin).mean(-1), torch.zeros(4), atol=1e-2)


def test_residual_block_with_identity_sublayer_and_zero_output() -> None:
    x = torch.randn(3, 6)
    zero = lambda h: torch.zeros_like(h)  # noqa: E731
    # pre-norm: a sub-layer that outputs zero leaves x unchanged (the clean residual path)
    torch.testing.assert_close(ResidualBlock(6, norm_first=True)(x, zero), x)
    torch.testing.assert_close(
        ResidualBlock(6, norm="rms")(x, zero), torch.nn.RMSNorm(6, eps=1e-5)(x)
    )
