"""The blocks the notebooks write out by hand equal the package's one ``TransformerBlock``.

Notebooks 03 and 04 use a pre-norm block (GELU, biases everywhere, positions added, rotated
in or added as a score bias); notebook 05 teaches the post-norm encoder and decoder layers of
the 2017 paper. Each is written here with plain torch operations from its own weight tensors,
the weights are copied into a :class:`~coursekit.layers.TransformerBlock` (fused ``qkv_proj``:
query rows, then key rows, then value rows) and the outputs must agree in float64 to 1e-10,
for the running (PyTorch kernels) and the teaching (``scratch=True``) variants. The last tests
pin exercise 05.2's check: it accepts the paper's layer and rejects the usual mistakes.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from coursekit.exercises import check
from coursekit.layers import BlockConfig, LayerNorm, RMSNorm, TransformerBlock
from coursekit.positional import ALiBiBias, RotaryEmbedding, T5RelativeBias

pytestmark = pytest.mark.usefixtures("one_thread")

D, H, FF = 16, 4, 40  # d_model, heads, feed-forward width
TOL = dict(atol=1e-10, rtol=1e-10)


# ---- weights, and the block written out with plain torch operations ----------------------------
def random_params(seed: int, *, cross: bool = False) -> dict:
    """Independent float64 tensors for every weight; norms with non-trivial gamma and beta."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    def attn() -> dict:
        return {name: t(D, D) for name in ("wq", "wk", "wv", "wo")} | {
            name: t(D) for name in ("bq", "bk", "bv", "bo")
        }

    def norm() -> tuple[torch.Tensor, torch.Tensor]:
        return 1.0 + t(D), t(D)

    p = {"attn": attn(), "w1": t(FF, D), "b1": t(FF), "w2": t(D, FF), "b2": t(D)}
    p |= {"norm1": norm(), "norm3": norm()}
    if cross:
        p |= {"cross": attn(), "norm2": norm()}
    return p


@torch.no_grad()
def load_block(block: TransformerBlock, p: dict) -> TransformerBlock:
    """Copy the written-out weights into the package's block."""

    def attn(module, a: dict) -> None:
        module.qkv_proj.weight.copy_(torch.cat([a["wq"], a["wk"], a["wv"]]))
        module.qkv_proj.bias.copy_(torch.cat([a["bq"], a["bk"], a["bv"]]))
        module.out_proj.weight.copy_(a["wo"])
        module.out_proj.bias.copy_(a["bo"])

    def norm(module, gb: tuple[torch.Tensor, torch.Tensor]) -> None:
        module.weight.copy_(gb[0])
        module.bias.copy_(gb[1])

    attn(block.self_attn, p["attn"])
    norm(block.self_attn_norm, p["norm1"])
    if "cross" in p:
        attn(block.cross_attn, p["cross"])
        norm(block.cross_attn_norm, p["norm2"])
    block.ffn.w1.weight.copy_(p["w1"])
    block.ffn.w1.bias.copy_(p["b1"])
    block.ffn.w2.weight.copy_(p["w2"])
    block.ffn.w2.bias.copy_(p["b2"])
    norm(block.ffn_norm, p["norm3"])
    return block


def layer_norm(x: torch.Tensor, gb: tuple[torch.Tensor, torch.Tensor], eps: float = 1e-5):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gb[0] + gb[1]


def attention(x, context, a: dict, *, mask=None, bias=None, rotary=None) -> torch.Tensor:
    """Multi-head attention from ``x`` to ``context`` with separate W^Q, W^K, W^V matrices."""
    b, t, _ = x.shape
    s = context.shape[1]

    def heads(z: torch.Tensor, n: int) -> torch.Tensor:
        return z.view(b, n, H, D // H).transpose(1, 2)

    q = heads(x @ a["wq"].T + a["bq"], t)
    k = heads(context @ a["wk"].T + a["bk"], s)
    v = heads(context @ a["wv"].T + a["bv"], s)
    if rotary is not None:
        q, k = rotary(q), rotary(k)
    scores = q @ k.transpose(-2, -1) / math.sqrt(D // H)
    if bias is not None:
        scores = scores + bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(b, t, D) @ a["wo"].T + a["bo"]


def gelu(h: torch.Tensor) -> torch.Tensor:
    return 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))


def ffn(x: torch.Tensor, p: dict, act) -> torch.Tensor:
    return act(x @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"]


def causal(t: int) -> torch.Tensor:
    return torch.ones(t, t, dtype=torch.bool).tril()


def written_pre_norm_block(x, p, *, is_causal=False, bias=None, rotary=None) -> torch.Tensor:
    """Notebooks 03/04: x + attn(LN(x)), then x + MLP(LN(x)) with a GELU MLP."""
    mask = causal(x.shape[1]) if is_causal else None
    h = layer_norm(x, p["norm1"])
    x = x + attention(h, h, p["attn"], mask=mask, bias=bias, rotary=rotary)
    return x + ffn(layer_norm(x, p["norm3"]), p, gelu)


def written_post_norm_encoder(x, valid, p) -> torch.Tensor:
    """The 2017 encoder layer: LN(x + attn(x)), LN(x + FFN(x)), ReLU, padded keys masked."""
    x = layer_norm(x + attention(x, x, p["attn"], mask=valid[:, None, None, :]), p["norm1"])
    return layer_norm(x + ffn(x, p, torch.relu), p["norm3"])


def written_post_norm_decoder(y, memory, src_valid, p) -> torch.Tensor:
    """The 2017 decoder layer: causal self-attention, cross-attention, FFN, each post-norm."""
    y = layer_norm(y + attention(y, y, p["attn"], mask=causal(y.shape[1])), p["norm1"])
    y = layer_norm(
        y + attention(y, memory, p["cross"], mask=src_valid[:, None, None, :]), p["norm2"]
    )
    return layer_norm(y + ffn(y, p, torch.relu), p["norm3"])


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 7, D, generator=g, dtype=torch.float64) * 2
    memory = torch.randn(2, 9, D, generator=g, dtype=torch.float64)
    valid = torch.ones(2, 9, dtype=torch.bool)
    valid[1, 6:] = False  # the second sequence has 3 padding tokens
    return x, memory, valid


# ---- the written-out blocks equal TransformerBlock -------------------------------------------
@pytest.mark.parametrize("scratch", [False, True], ids=["running", "scratch"])
@pytest.mark.parametrize("scheme", ["none", "causal", "alibi", "t5", "rope"])
def test_written_pre_norm_block_equals_transformer_block(scheme: str, scratch: bool) -> None:
    """Notebook 04's TinyLM positions: added (none), causal, ALiBi / T5 bias, RoPE."""
    x, _, _ = inputs()
    t = x.shape[1]
    rotary = RotaryEmbedding(D // H).double() if scheme == "rope" else None
    bias = None
    if scheme == "alibi":
        bias = ALiBiBias(H)(t, dtype=torch.float64)
    elif scheme == "t5":
        torch.manual_seed(0)
        bias = T5RelativeBias(H, bidirectional=False, num_buckets=8, max_distance=t).double()(t)
    is_causal = scheme != "none"
    config = BlockConfig(D, H, FF, activation="gelu", norm_first=True, scratch=scratch)
    block = TransformerBlock(config, rotary=rotary).double().eval()
    p = random_params(1)
    load_block(block, p)
    with torch.no_grad():
        ours = block(x, is_causal=is_causal, bias=bias)
        written = written_pre_norm_block(x, p, is_causal=is_causal, bias=bias, rotary=rotary)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, written, **TOL)


@pytest.mark.parametrize("scratch", [False, True], ids=["running", "scratch"])
def test_written_post_norm_encoder_layer_equals_transformer_block(scratch: bool) -> None:
    x, _, _ = inputs()
    valid = torch.ones(2, x.shape[1], dtype=torch.bool)
    valid[0, 5:] = False
    config = BlockConfig(D, H, FF, activation="relu", norm_first=False, scratch=scratch)
    p = random_params(2)
    block = load_block(TransformerBlock(config).double().eval(), p)
    with torch.no_grad():
        ours = block(x, mask=valid[:, None, None, :])
    torch.testing.assert_close(ours, written_post_norm_encoder(x, valid, p), **TOL)


@pytest.mark.parametrize("scratch", [False, True], ids=["running", "scratch"])
def test_written_post_norm_decoder_layer_equals_transformer_block(scratch: bool) -> None:
    y, memory, src_valid = inputs(3)
    config = BlockConfig(
        D, H, FF, activation="relu", norm_first=False, cross_attention=True, scratch=scratch
    )
    p = random_params(4, cross=True)
    block = load_block(TransformerBlock(config).double().eval(), p)
    with torch.no_grad():
        ours = block(y, is_causal=True, memory=memory, memory_mask=src_valid[:, None, None, :])
    torch.testing.assert_close(ours, written_post_norm_decoder(y, memory, src_valid, p), **TOL)


# ---- teaching (scratch) and running versions of the block agree ------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(norm_first=True, activation="gelu"),
        dict(norm_first=False, activation="relu", cross_attention=True),
        dict(norm_first=True, norm="rms", activation="swiglu", bias=False, n_kv_heads=2),
        dict(norm_first=True, activation="geglu", cross_attention=True, n_kv_heads=1),
        dict(norm_first=False, activation="gelu_tanh", norm="rms"),
    ],
    ids=["pre-gelu", "post-decoder", "rms-swiglu-gqa", "geglu-mqa-cross", "post-rms"],
)
@pytest.mark.parametrize("rope", [False, True], ids=["added", "rope"])
def test_scratch_block_equals_running_block(kwargs: dict, rope: bool) -> None:
    torch.manual_seed(5)
    rotary = RotaryEmbedding(D // H).double() if rope else None
    running = TransformerBlock(BlockConfig(D, H, FF, **kwargs), rotary=rotary).double().eval()
    with torch.no_grad():  # nothing left at its identity initialisation
        for param in running.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    scratch = TransformerBlock(BlockConfig(D, H, FF, scratch=True, **kwargs), rotary=rotary)
    scratch = scratch.double().eval()
    scratch.load_state_dict(running.state_dict())
    norm_class = RMSNorm if kwargs.get("norm") == "rms" else LayerNorm
    assert isinstance(scratch.ffn_norm, norm_class) and scratch.self_attn.scratch
    assert not isinstance(running.ffn_norm, norm_class) and not running.self_attn.scratch

    x, memory, src_valid = inputs(6)
    cross = kwargs.get("cross_attention", False)
    calls = [dict(), dict(is_causal=True), dict(bias=ALiBiBias(H)(x.shape[1], dtype=x.dtype))]
    key_mask = torch.ones(2, x.shape[1], dtype=torch.bool)
    key_mask[1, 4:] = False
    calls.append(dict(mask=key_mask[:, None, None, :], is_causal=True))
    with torch.no_grad():
        for call in calls:
            if cross:
                call = call | dict(memory=memory, memory_mask=src_valid[:, None, None, :])
            torch.testing.assert_close(scratch(x, **call), running(x, **call), **TOL)


# ---- exercise 05.2: the check accepts the paper's layer and rejects the usual mistakes -------
def reference_decoder_layer(
    y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3
):
    y = norm1(y + self_attn(y, is_causal=True))
    y = norm2(y + cross_attn(y, memory, key_padding_mask=src_valid))
    return norm3(y + ffn(y))


def pre_norm(y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3):
    y = y + self_attn(norm1(y), is_causal=True)
    y = y + cross_attn(norm2(y), memory, key_padding_mask=src_valid)
    return y + ffn(norm3(y))


def norms_swapped(y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3):
    y = norm2(y + self_attn(y, is_causal=True))
    y = norm1(y + cross_attn(y, memory, key_padding_mask=src_valid))
    return norm3(y + ffn(y))


def parameter_free_norms(y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3):
    d = y.shape[-1]
    y = F.layer_norm(y + self_attn(y, is_causal=True), (d,))
    y = F.layer_norm(y + cross_attn(y, memory, key_padding_mask=src_valid), (d,))
    return F.layer_norm(y + ffn(y), (d,))


def not_causal(y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3):
    y = norm1(y + self_attn(y))
    y = norm2(y + cross_attn(y, memory, key_padding_mask=src_valid))
    return norm3(y + ffn(y))


def padding_ignored(y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3):
    y = norm1(y + self_attn(y, is_causal=True))
    y = norm2(y + cross_attn(y, memory))
    return norm3(y + ffn(y))


def padding_inverted(y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3):
    y = norm1(y + self_attn(y, is_causal=True))
    y = norm2(y + cross_attn(y, memory, key_padding_mask=~src_valid))
    return norm3(y + ffn(y))


def no_residual(y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3):
    y = norm1(self_attn(y, is_causal=True))
    y = norm2(cross_attn(y, memory, key_padding_mask=src_valid))
    return norm3(ffn(y))


def cross_attention_skipped(
    y, memory, src_valid, *, self_attn, cross_attn, ffn, norm1, norm2, norm3
):
    y = norm1(y + self_attn(y, is_causal=True))
    return norm3(y + ffn(y))


def test_decoder_layer_check_accepts_the_reference(capsys) -> None:
    assert check("05.2", reference_decoder_layer, strict=False) is True
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (pre_norm, "pre-norm"),
        (norms_swapped, "wrong places"),
        (parameter_free_norms, "parameter-free"),
        (not_causal, "see the future"),
        (padding_ignored, "reads the source's padding"),
        (padding_inverted, "True marks a real token"),
        (no_residual, "residual connection"),
        (cross_attention_skipped, "differs from the reference"),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_decoder_layer_check_rejects_common_mistakes(answer, expected: str, capsys) -> None:
    assert check("05.2", answer, strict=False) is False
    out = capsys.readouterr().out
    assert expected in out, out
    assert "Traceback" not in out


def test_decoder_layer_check_leaves_the_global_seed_alone() -> None:
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    check("05.2", reference_decoder_layer, strict=False)
    torch.testing.assert_close(torch.rand(3), want)
