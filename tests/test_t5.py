"""models.T5: the one block configured as T5 (pre-norm RMSNorm, no biases, one relative bias
per stack, unscaled scores, shared embedding with output scaling), its parameter count,
masking, cached decoding, dtypes and training; hf.t5_from_hf: logits equal to transformers'
T5ForConditionalGeneration (built offline from small configs), every weight carried over."""

from __future__ import annotations

import pytest
import torch

from coursekit.generate import greedy_decode
from coursekit.layers import TransformerBlock
from coursekit.models import T5, T5Config
from coursekit.models.t5 import shift_right

pytestmark = pytest.mark.usefixtures("one_thread")

V = 61


def _config(**kw) -> T5Config:
    base = dict(
        vocab_size=V, d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=48,
        num_buckets=8, max_distance=16, dropout=0.0,
    )  # fmt: skip
    base.update(kw)
    return T5Config(**base)


def _batch(seed: int = 0, b: int = 3, s: int = 12, t: int = 7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, V, (b, s), generator=g)
    ids[1, 8:] = 0  # padding
    ids[2, 4:] = 0
    labels = torch.randint(2, V, (b, t), generator=g)
    labels[:, -1] = 1
    labels[0, 4:] = 0
    return ids, labels


# ---- config and structure ------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"activation": "geglu"},
        {"tie_embeddings": False},
        {"n_decoder_layers": 3},
        {"num_buckets": 32, "max_distance": 128},
    ],
)
def test_parameter_count_equals_closed_form(kw) -> None:
    config = _config(**kw)
    assert T5(config).num_parameters() == config.expected_parameters()


def test_defaults_are_t5_small() -> None:
    config = T5Config()
    assert (config.d_model, config.n_heads, config.d_ff, config.n_encoder_layers) == (
        512, 8, 2048, 6,
    )  # fmt: skip
    assert config.n_decoder_layers == 6 and config.scale_output and config.tie_embeddings
    # T5-small v1.0 has 60,506,624 parameters (the published checkpoint's count)
    assert config.expected_parameters() == 60_506_624
    v11 = T5Config.v1_1()
    assert v11.activation == "geglu" and not v11.tie_embeddings and not v11.scale_output


def test_no_biases_rms_norm_pre_norm_unscaled_scores() -> None:
    model = T5(_config())
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.endswith(".bias") for n in names), names
    for stack in (model.encoder, model.decoder):
        for block in stack.blocks():
            assert isinstance(block, TransformerBlock)
            c = block.config
            assert c.norm == "rms" and c.norm_first and not c.bias and c.attn_scale == 1.0
        assert isinstance(stack.norm, torch.nn.RMSNorm)
    assert model.encoder.relative_bias.bidirectional
    assert not model.decoder.relative_bias.bidirectional
    assert model.lm_head.weight is model.shared.weight
    # one bias table per stack, not one per layer
    assert sum("relative_attention_bias" in n for n in names) == 2


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"d_model": 30}, "divisible by n_heads"),
        ({"activation": "tanh"}, "activation"),
        ({"num_buckets": 2}, "num_buckets"),
        ({"max_distance": 2}, "max_distance"),
        ({"num_buckets": 32, "max_distance": 16}, "max_distance"),
        ({"dropout": 1.0}, "dropout"),
        ({"eos_id": V}, "eos_id"),
        ({"n_encoder_layers": 0}, "n_encoder_layers"),
    ],
)
def test_config_errors_are_clear(kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**kw)


def test_shift_right() -> None:
    labels = torch.tensor([[5, 6, 1, -100], [7, 1, -100, -100]])
    assert shift_right(labels).tolist() == [[0, 5, 6, 1], [0, 7, 1, 0]]


# ---- behaviour ------------------------------------------------------------------------------
def test_padding_does_not_change_the_answer() -> None:
    model = T5(_config()).eval()
    ids, labels = _batch()
    dec = shift_right(labels)
    with torch.no_grad():
        full = model(ids, dec)
        for row, n in ((1, 8), (2, 4)):
            alone = model(ids[row : row + 1, :n], dec[row : row + 1])
            torch.testing.assert_close(full[row : row + 1], alone, atol=1e-5, rtol=1e-5)


def test_explicit_attention_mask_equals_the_pad_default() -> None:
    model = T5(_config()).eval()
    ids, labels = _batch()
    dec = shift_right(labels)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, dec), model(ids, dec, (ids != 0).long()))
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, dec, torch.ones(3, 5))


def test_decoder_is_causal() -> None:
    model = T5(_config()).eval()
    ids, labels = _batch()
    dec = shift_right(labels)
    changed = dec.clone()
    changed[:, 4:] = 3
    with torch.no_grad():
        torch.testing.assert_close(model(ids, dec)[:, :4], model(ids, changed)[:, :4])


def test_loss_ignores_padding_and_matches_cross_entropy() -> None:
    model = T5(_config()).eval()
    ids, labels = _batch()
    with torch.no_grad():
        loss = model.loss(ids, labels)
        logits = model(ids, shift_right(labels.masked_fill(labels == 0, -100)))
        ref = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), labels.masked_fill(labels == 0, -100).reshape(-1)
        )
    torch.testing.assert_close(loss, ref)


@pytest.mark.parametrize("activation", ["relu", "geglu"])
def test_scratch_versions_compute_the_same(activation) -> None:
    torch.manual_seed(0)
    fused = T5(_config(activation=activation)).eval()
    scratch = T5(_config(activation=activation, scratch=True)).eval()
    scratch.load_state_dict(fused.state_dict())
    ids, labels = _batch()
    with torch.no_grad():
        torch.testing.assert_close(fused.loss(ids, labels), scratch.loss(ids, labels))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtypes(dtype) -> None:
    model = T5(_config()).to(dtype).eval()
    ids, labels = _batch()
    with torch.no_grad():
        out = model(ids, shift_right(labels))
    assert out.dtype == dtype and torch.isfinite(out).all()


def test_input_errors() -> None:
    model = T5(_config())
    ids, labels = _batch()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(ids + V, shift_right(labels))
    with pytest.raises(ValueError, match="integer"):
        model(ids.float(), shift_right(labels))


def test_cached_decoding_equals_the_full_forward() -> None:
    torch.manual_seed(1)
    model = T5(_config(activation="geglu")).eval()
    ids, labels = _batch()
    dec = shift_right(labels)
    with torch.no_grad():
        full = model(ids, dec)
        memory, valid = model.encode(ids)
        cache = model.new_cache()
        steps = [model.decode(dec[:, i : i + 1], memory, valid, cache=cache) for i in range(7)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_greedy_decode_cached_equals_uncached() -> None:
    torch.manual_seed(2)
    model = T5(_config()).eval()
    ids, _ = _batch()
    a = greedy_decode(model, ids, max_len=9)
    b = greedy_decode(model, ids, max_len=9, use_cache=False)
    assert torch.equal(a, b)


def test_training_learns_a_copy_task() -> None:
    torch.manual_seed(0)
    model = T5(_config(d_model=64, d_ff=128))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = last = 0.0
    for step in range(300):
        ids = torch.randint(2, 12, (16, 6), generator=g)
        labels = torch.cat([ids, torch.ones(16, 1, dtype=torch.long)], dim=1)
        loss = model.loss(ids, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if step == 0 else first
        last = loss.item()
    # a model that learnt only which tokens occur would sit at ln 10 = 2.3 (0.47 x the start)
    assert last < 0.25 * first, (first, last)
    ids = torch.randint(2, 12, (64, 6), generator=g)
    out = greedy_decode(model.eval(), ids, max_len=7)
    assert (out[:, :6] == ids).float().mean() > 0.3  # chance: 0.1


def test_dropout_is_active_in_training_only() -> None:
    model = T5(_config(dropout=0.3))
    ids, labels = _batch()
    a, b = model.loss(ids, labels), model.loss(ids, labels)
    assert a.item() != b.item()
    model.eval()
    with torch.no_grad():
        assert model.loss(ids, labels).item() == model.loss(ids, labels).item()


# ---- parity with transformers ----------------------------------------------------------------
transformers = pytest.importorskip("transformers")


def _hf(proj: str = "relu", tie: bool | None = None, seed: int = 0, **kw):
    cfg = dict(
        vocab_size=V, d_model=32, d_kv=8, num_heads=4, d_ff=48, num_layers=2,
        num_decoder_layers=3, feed_forward_proj=proj, dropout_rate=0.0,
        relative_attention_num_buckets=8, relative_attention_max_distance=20,
        decoder_start_token_id=0,
    )  # fmt: skip
    if tie is not None:
        cfg["tie_word_embeddings"] = tie
    cfg.update(kw)
    torch.manual_seed(seed)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**cfg))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # move gains off 1 so that a weight not copied shows
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


@pytest.mark.parametrize(("proj", "tie"), [("relu", None), ("gated-gelu", False), ("gelu", True)])
@pytest.mark.parametrize("padding", [False, True])
def test_logits_equal_transformers(proj, tie, padding) -> None:
    from coursekit.hf import t5_from_hf

    hf = _hf(proj, tie)
    ours = t5_from_hf(hf)
    n_theirs = sum(p.numel() for p in hf.parameters())  # tied matrices counted once
    assert ours.num_parameters() == n_theirs == ours.config.expected_parameters()
    ids, labels = _batch(s=30, t=11)
    mask = (ids != 0).long() if padding else torch.ones_like(ids)
    if not padding:
        ids = ids.masked_fill(ids == 0, 5)
    dec = shift_right(labels)
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        mine = ours(ids, dec, mask)
        hf_loss = hf(
            input_ids=ids, attention_mask=mask, labels=labels.masked_fill(labels == 0, -100)
        ).loss
        my_loss = ours.loss(ids, labels, mask)
    assert theirs.abs().max() > 1.0  # large enough for the comparison to mean something
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(my_loss, hf_loss, atol=1e-5, rtol=1e-5)


def test_every_weight_is_carried_over() -> None:
    from coursekit.hf import t5_from_hf

    hf = _hf("gated-gelu")
    ours = t5_from_hf(hf)
    ids, labels = _batch()
    dec = shift_right(labels)
    for name, p in hf.named_parameters():  # changing any one weight changes both models alike
        with torch.no_grad():
            p.add_(0.5)
            ours2 = t5_from_hf(hf)
            p.sub_(0.5)
            diff = (ours2(ids, dec) - ours(ids, dec)).abs().max()
        assert diff > 0, name


def test_greedy_generation_equals_transformers() -> None:
    from coursekit.hf import t5_from_hf

    # (equal stack depths: transformers' generate() sizes its cache by the encoder's depth)
    hf = _hf("relu", seed=3, num_decoder_layers=2)
    ours = t5_from_hf(hf)
    ids, _ = _batch(seed=3, s=15)
    mask = (ids != 0).long()
    theirs = hf.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False, num_beams=1,
        min_new_tokens=8, eos_token_id=None,
    )  # fmt: skip
    mine = greedy_decode(ours, ids, max_len=8, eos_id=-1)
    assert torch.equal(mine, theirs[:, 1:])


def test_converter_rejects_other_models() -> None:
    from coursekit.hf import t5_from_hf

    with pytest.raises(TypeError, match="T5ForConditionalGeneration"):
        t5_from_hf(torch.nn.Linear(2, 2))
