"""models.Transformer: parameter count, parity with torch.nn.Transformer, masking, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from coursekit.models import Transformer, TransformerConfig
from coursekit.positional import sinusoidal_encoding

pytestmark = pytest.mark.usefixtures("one_thread")


def _small(**kw) -> TransformerConfig:
    base = dict(
        src_vocab_size=23,
        tgt_vocab_size=19,
        d_model=32,
        n_heads=4,
        n_encoder_layers=2,
        n_decoder_layers=2,
        d_ff=64,
        dropout=0.0,
    )
    base.update(kw)
    return TransformerConfig(**base)  # type: ignore[arg-type]


def _batch(c: TransformerConfig, b: int = 3, s: int = 7, t: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, c.src_vocab_size, (b, s), generator=g)
    src[0, -3:] = c.pad_id  # padded source
    tgt = torch.randint(3, c.tgt_vocab_size, (b, t), generator=g)
    tgt[:, 0] = c.bos_id
    return src, tgt


@settings(max_examples=30, deadline=None)
@given(
    d_head=st.integers(1, 8),
    n_heads=st.integers(1, 4),
    n_enc=st.integers(0, 3),
    n_dec=st.integers(1, 3),
    d_ff=st.integers(1, 40),
    v_src=st.integers(4, 40),
    v_tgt=st.integers(4, 40),
    activation=st.sampled_from(["relu", "gelu", "swiglu"]),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["layer", "rms"])),
    final_norm=st.sampled_from([None, True, False]),
)
def test_parameter_count_equals_closed_form(
    d_head, n_heads, n_enc, n_dec, d_ff, v_src, v_tgt, activation, flags, final_norm
) -> None:
    norm_first, bias, tie, norm = flags
    c = TransformerConfig(
        v_src, v_tgt, d_model=d_head * n_heads, n_heads=n_heads, n_encoder_layers=n_enc,
        n_decoder_layers=n_dec, d_ff=d_ff, activation=activation, norm_first=norm_first,
        bias=bias, tie_output=tie, norm=norm, final_norm=final_norm,
    )  # fmt: skip
    assert Transformer(c).num_parameters() == c.expected_parameters()


def test_paper_base_model_size() -> None:
    # base model, shared 37k BPE vocabulary with tied embeddings: about 63M (the paper rounds to 65M)
    c = TransformerConfig(37000, 37000, share_embeddings=True, tie_output=True)
    n = c.expected_parameters()
    d, dff = 512, 2048
    layer_attn = 4 * d * d + 4 * d
    layer_ffn = 2 * d * dff + dff + d
    by_hand = (
        6 * (layer_attn + layer_ffn + 4 * d) + 6 * (2 * layer_attn + layer_ffn + 6 * d) + 37000 * d
    )
    assert n == by_hand and 60e6 < n < 66e6


@pytest.mark.filterwarnings("ignore:.*nested tensor:UserWarning")
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_equal_to_torch_transformer(norm_first: bool, activation: str) -> None:
    torch.manual_seed(0)
    c = _small(norm_first=norm_first, activation=activation, final_norm=True)
    ours = Transformer(c).eval()
    ref = nn.Transformer(
        d_model=c.d_model, nhead=c.n_heads, num_encoder_layers=c.n_encoder_layers,
        num_decoder_layers=c.n_decoder_layers, dim_feedforward=c.d_ff, dropout=0.0,
        activation=activation, batch_first=True, norm_first=norm_first,
    ).eval()  # fmt: skip
    ours.load_torch_transformer(ref)
    src, tgt = _batch(c)
    x = ours._embed(ours.src_embed, src)
    y = ours._embed(ours.tgt_embed, tgt)
    src_valid = src != c.pad_id
    with torch.no_grad():
        memory, valid = ours.encode(src)
        ref_memory = ref.encoder(x, src_key_padding_mask=~src_valid)
        torch.testing.assert_close(memory[src_valid], ref_memory[src_valid], atol=1e-5, rtol=1e-4)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        ref_out = ref.decoder(
            y, ref_memory, tgt_mask=causal, memory_key_padding_mask=~src_valid, tgt_is_causal=True
        )
        torch.testing.assert_close(
            ours.decode(tgt, memory, valid), ours.output(ref_out), atol=1e-5, rtol=1e-4
        )
        torch.testing.assert_close(ours(src, tgt), ours.output(ref_out), atol=1e-5, rtol=1e-4)


def test_paper_post_norm_equals_torch_without_final_norms() -> None:
    torch.manual_seed(1)
    c = _small()  # post-norm, no final norm: exactly the 2017 stack
    assert c.use_final_norm is False
    ours = Transformer(c).eval()
    ref = nn.Transformer(c.d_model, c.n_heads, 2, 2, c.d_ff, dropout=0.0, batch_first=True).eval()
    ref.encoder.norm = None
    ref.decoder.norm = None
    ours.load_torch_transformer(ref)
    src, tgt = _batch(c, seed=3)
    src[src == c.pad_id] = 5  # no padding this time
    with torch.no_grad():
        x, y = ours._embed(ours.src_embed, src), ours._embed(ours.tgt_embed, tgt)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        expected = ours.output(ref(x, y, tgt_mask=causal))
        torch.testing.assert_close(ours(src, tgt), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="final_norm"):
        Transformer(_small(final_norm=True)).load_torch_transformer(ref)


def test_embedding_is_scaled_and_position_encoded() -> None:
    c = _small()
    m = Transformer(c).eval()
    ids = torch.tensor([[1, 5, 7, 9]])
    expected = m.tgt_embed.weight[ids] * math.sqrt(c.d_model) + sinusoidal_encoding(4, c.d_model)
    torch.testing.assert_close(m._embed(m.tgt_embed, ids), expected)


def test_decoder_is_causal_and_ignores_source_padding() -> None:
    torch.manual_seed(2)
    c = _small()
    m = Transformer(c).eval()
    src, tgt = _batch(c)
    with torch.no_grad():
        base = m(src, tgt)
        changed = tgt.clone()
        changed[:, 4] = 7  # change a future token: positions < 4 must not move
        out = m(src, changed)
        torch.testing.assert_close(out[:, :4], base[:, :4])
        assert not torch.allclose(out[:, 4:], base[:, 4:])
        # different content under the source padding changes nothing
        src2 = src.clone()
        src2[0, -3:] = c.pad_id
        longer = torch.cat([src2, torch.full((3, 2), c.pad_id)], dim=1)
        torch.testing.assert_close(m(longer, tgt), m(src2, tgt), atol=1e-5, rtol=1e-5)


def test_tied_and_shared_weights() -> None:
    c = _small(src_vocab_size=19, tie_output=True, share_embeddings=True)
    m = Transformer(c)
    assert m.output.weight is m.tgt_embed.weight and m.src_embed is m.tgt_embed
    with pytest.raises(ValueError, match="joint vocabulary"):
        _small(share_embeddings=True)


def test_loss_matches_cross_entropy_and_trains() -> None:
    torch.manual_seed(0)
    c = _small()
    m = Transformer(c)
    src, tgt = _batch(c)
    tgt[1, -2:] = c.pad_id
    logits = m(src, tgt[:, :-1])
    ref = nn.functional.cross_entropy(
        logits.reshape(-1, c.tgt_vocab_size),
        tgt[:, 1:].reshape(-1),
        ignore_index=c.pad_id,
        label_smoothing=0.1,
    )
    torch.testing.assert_close(m.loss(src, tgt, label_smoothing=0.1), ref)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = float(m.loss(src, tgt).detach())
    for _ in range(30):
        opt.zero_grad()
        m.loss(src, tgt).backward()
        opt.step()
    assert float(m.loss(src, tgt).detach()) < 0.3 * first


def test_cross_attention_weights_shape_and_rows() -> None:
    c = _small()
    m = Transformer(c)
    src, tgt = _batch(c)
    w = m.cross_attention_weights(src, tgt)
    assert w.shape == (3, c.n_heads, tgt.shape[1], src.shape[1])
    torch.testing.assert_close(w.sum(-1), torch.ones(3, c.n_heads, tgt.shape[1]))
    assert float(w[0, :, :, -3:].abs().max()) == 0.0  # padding gets no attention


def test_bad_inputs_and_configs() -> None:
    with pytest.raises(ValueError, match="divisible"):
        _small(n_heads=5)
    m = Transformer(_small())
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m(torch.tensor([[1, 99]]), torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="integer token ids"):
        m(torch.randn(1, 3), torch.tensor([[1, 2]]))


def test_decode_last_only_equals_full_decode() -> None:
    c = _small()
    m = Transformer(c).eval()
    src, tgt = _batch(c)
    with torch.no_grad():
        memory, valid = m.encode(src)
        full = m.decode(tgt, memory, valid)
        last = m.decode(tgt, memory, valid, last_only=True)
    assert last.shape == (3, 1, c.tgt_vocab_size)
    torch.testing.assert_close(last, full[:, -1:], atol=1e-5, rtol=1e-5)
