"""models.bert: configuration, parameter counts, initialisation, masking, heads, losses, dtypes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coursekit import runtime
from coursekit.layers import LayerNorm, TransformerBlock
from coursekit.models.bert import (
    Bert,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertMLMHead,
    classification_loss,
    mlm_loss,
    nsp_loss,
    span_loss,
    token_classification_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")

V = 50


def _config(**kw) -> BertConfig:
    base = dict(
        vocab_size=V, max_positions=32, d_model=32, n_layers=2, n_heads=4, d_ff=64, dropout=0.0
    )
    base.update(kw)
    return BertConfig(**base)  # type: ignore[arg-type]


def _batch(b: int = 3, t: int = 10, seed: int = 0):
    """ids, segment ids, HF attention mask (row 1 padded after 6 tokens, row 2 after 3)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (b, t), generator=g)
    ids[:, 0] = 1  # [CLS]
    types = torch.zeros_like(ids)
    types[:, t // 2 :] = 1
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 0  # [PAD]
    return ids, types, mask


def _model(config: BertConfig | None = None, seed: int = 0) -> Bert:
    torch.manual_seed(seed)
    return Bert(config or _config()).eval()


# ---- configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(d_model=30, n_heads=4), "divisible by n_heads"),
        (dict(vocab_size=0), "vocab_size must be a positive integer"),
        (dict(n_layers=-1), "n_layers"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(attn_dropout=-0.1), "attn_dropout must be in"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps must be positive"),
        (dict(activation="swiglu"), "activation"),
        (dict(mask_id=V), "mask_id=50 is outside the vocabulary"),
        (dict(cls_id=0), "distinct"),
        (dict(max_positions=0), "max_positions"),
    ],
)
def test_config_rejects_bad_values(kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**kw)


def test_published_configurations() -> None:
    base, large = BertConfig.base(), BertConfig.large()
    assert (base.n_layers, base.d_model, base.n_heads, base.d_ff) == (12, 768, 12, 3072)
    assert (large.n_layers, large.d_model, large.n_heads, large.d_ff) == (24, 1024, 16, 4096)
    for c in (base, large):
        assert (c.vocab_size, c.max_positions, c.type_vocab_size) == (30522, 512, 2)
        assert (c.layer_norm_eps, c.dropout, c.activation) == (1e-12, 0.1, "gelu")
        assert (c.pad_id, c.cls_id, c.sep_id, c.mask_id) == (0, 101, 102, 103)
    assert BertConfig.base(n_layers=6).n_layers == 6  # overrides (e.g. a DistilBERT-sized student)


@pytest.mark.parametrize(
    ("make", "expected", "published"),
    [(BertConfig.base, 109_482_240, 110e6), (BertConfig.large, 335_141_888, 340e6)],
)
def test_published_parameter_counts_on_meta(make, expected, published) -> None:
    config = make()
    with torch.device("meta"):  # no memory for 340M parameters
        bert = Bert(config)
        pretraining = BertForPreTraining(Bert(config))
    assert next(bert.parameters()).is_meta
    assert bert.num_parameters() == config.expected_parameters() == expected
    assert abs(expected - published) / published < 0.02  # "110M" and "340M" in the paper
    counted = sum(p.numel() for p in pretraining.parameters())
    assert counted == config.expected_parameters(mlm_head=True, nsp_head=True)


@pytest.mark.parametrize("pooler", [True, False])
@pytest.mark.parametrize("n_layers", [0, 1, 3])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_parameter_count_equals_closed_form(pooler, n_layers, activation) -> None:
    c = _config(pooler=pooler, n_layers=n_layers, activation=activation, type_vocab_size=3)
    with torch.device("meta"):
        bert = Bert(c)
        mlm = BertForMaskedLM(c)  # from a config: no pooler, as transformers
    assert bert.num_parameters() == c.expected_parameters()
    assert sum(p.numel() for p in mlm.parameters()) == c.expected_parameters(
        mlm_head=True, pooler=False
    )


# ---- structure and initialisation -----------------------------------------------------------
def test_built_from_the_one_post_norm_block() -> None:
    bert = _model()
    assert len(bert.encoder.layers) == 2 and bert.encoder.norm is None
    for layer in bert.encoder.layers:
        assert isinstance(layer, TransformerBlock)
        assert not layer.norm_first and layer.ffn.activation == "gelu"
        assert layer.ffn.dropout.p == 0.0  # BERT: no dropout inside the FFN
        assert layer.self_attn_norm.eps == 1e-12 and layer.ffn_norm.eps == 1e-12
    assert bert.embeddings.norm.eps == 1e-12


def test_bert_initialisation() -> None:
    torch.manual_seed(0)
    bert = Bert(_config(vocab_size=2000, d_model=128, n_heads=4, d_ff=256, max_positions=512))
    for name, p in bert.named_parameters():
        if name.endswith("norm.weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        elif p.numel() > 1000:
            assert abs(p.std().item() - 0.02) < 0.002, name
            assert abs(p.mean().item()) < 0.002, name
    assert torch.equal(bert.embeddings.word_embeddings.weight[0], torch.zeros(128))  # [PAD] row


# ---- forward and masking --------------------------------------------------------------------
def test_output_shape_and_default_segments() -> None:
    bert = _model()
    ids, _, _ = _batch()
    out = bert(ids)
    assert out.shape == (3, 10, 32) and out.dtype == torch.float32
    assert torch.equal(out, bert(ids, torch.zeros_like(ids)))


def test_padded_keys_are_never_attended_to() -> None:
    bert = _model()
    ids, types, mask = _batch()
    real = mask.bool()
    out = bert(ids, types, mask)

    other_ids = torch.where(real, ids, torch.full_like(ids, 7))  # change the padded tokens' ids
    other_types = torch.where(real, types, 1 - types)
    changed = bert(other_ids, other_types, mask)
    torch.testing.assert_close(changed[real], out[real], rtol=0, atol=1e-6)
    assert not torch.allclose(changed[~real], out[~real])  # the padded outputs did change

    with torch.no_grad():  # change the embedding of the token that only sits at padded places
        bert.embeddings.word_embeddings.weight[0].normal_()
    torch.testing.assert_close(bert(ids, types, mask)[real], out[real], rtol=0, atol=1e-6)

    # and without the mask the padding does leak into the real tokens (the test is not vacuous)
    assert not torch.allclose(bert(other_ids, other_types)[real], bert(ids, types)[real])


def test_padded_sequence_equals_the_sequence_alone() -> None:
    bert = _model()
    ids, types, mask = _batch()
    out = bert(ids, types, mask)
    alone = bert(ids[2:, :3], types[2:, :3])
    torch.testing.assert_close(out[2:, :3], alone, rtol=0, atol=1e-5)
    # boolean and 0/1 masks mean the same
    torch.testing.assert_close(bert(ids, types, mask.bool()), out, rtol=0, atol=0)


def test_dropout_only_in_training() -> None:
    bert = _model(_config(dropout=0.3))
    ids, types, mask = _batch()
    torch.testing.assert_close(bert(ids, types, mask), bert(ids, types, mask))
    bert.train()
    assert not torch.allclose(bert(ids, types, mask), bert(ids, types, mask))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ids, types, mask: (ids.float(), None, None), "integer input_ids"),
        (lambda ids, types, mask: (ids + V, None, None), "outside the vocabulary"),
        (lambda ids, types, mask: (torch.ones(2, 40, dtype=torch.long), None, None), "positions"),
        (lambda ids, types, mask: (ids, types[:, :4], None), "token_type_ids must have"),
        (lambda ids, types, mask: (ids, types + 1, None), "token_type_ids: id 2"),
        (lambda ids, types, mask: (ids, None, mask[:, :4]), "attention_mask must have"),
        (lambda ids, types, mask: (ids[0], None, None), r"\(B, T\)"),
    ],
)
def test_input_errors(make, message) -> None:
    bert = _model()
    with pytest.raises(ValueError, match=message):
        bert(*make(*_batch()))


# ---- heads and losses -----------------------------------------------------------------------
def test_mlm_head_is_tied_and_its_loss_ignores_unselected() -> None:
    torch.manual_seed(0)
    model = BertForMaskedLM(_config()).eval()
    assert model.mlm.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.bert.pooler is None
    ids, types, mask = _batch()
    logits = model(ids, types, mask)
    assert logits.shape == (3, 10, V)
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 4] = 9, 11
    expected = F.cross_entropy(logits[[0, 1], [2, 4]], torch.tensor([9, 11]))
    torch.testing.assert_close(model.loss(ids, labels, types, mask), expected)
    torch.testing.assert_close(mlm_loss(logits, labels), expected)
    untied = BertMLMHead(model.config)
    assert untied.decoder.weight is not model.bert.embeddings.word_embeddings.weight


def test_pretraining_heads_and_loss() -> None:
    torch.manual_seed(0)
    model = BertForPreTraining(_config()).eval()
    ids, types, mask = _batch()
    mlm_logits, nsp_logits = model(ids, types, mask)
    assert mlm_logits.shape == (3, 10, V) and nsp_logits.shape == (3, 2)
    hidden = model.bert(ids, types, mask)
    pooled = model.bert.pool(hidden)
    torch.testing.assert_close(pooled, torch.tanh(model.bert.pooler.dense(hidden[:, 0])))
    labels = torch.full_like(ids, -100)
    labels[:, 1] = ids[:, 1]
    nsp = torch.tensor([0, 1, 0])
    loss = model.loss(ids, labels, nsp, types, mask)
    torch.testing.assert_close(loss, mlm_loss(mlm_logits, labels) + nsp_loss(nsp_logits, nsp))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_sequence_classification() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(_config(), n_labels=3).eval()
    ids, types, mask = _batch()
    logits = model(ids, types, mask)
    assert logits.shape == (3, 3)
    labels = torch.tensor([0, 2, 1])
    torch.testing.assert_close(
        model.loss(ids, labels, types, mask), F.cross_entropy(logits, labels)
    )
    torch.testing.assert_close(classification_loss(logits, labels), F.cross_entropy(logits, labels))


def test_token_classification_ignores_special_and_padding() -> None:
    torch.manual_seed(0)
    model = BertForTokenClassification(_config(), n_labels=5).eval()
    ids, types, mask = _batch()
    logits = model(ids, types, mask)
    assert logits.shape == (3, 10, 5)
    labels = torch.randint(0, 5, ids.shape)
    labels[mask == 0] = -100
    labels[:, 0] = -100
    keep = labels != -100
    expected = F.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(model.loss(ids, labels, types, mask), expected)
    torch.testing.assert_close(token_classification_loss(logits, labels), expected)


def test_question_answering_span_loss() -> None:
    torch.manual_seed(0)
    model = BertForQuestionAnswering(_config()).eval()
    ids, types, mask = _batch()
    start, end = model(ids, types, mask)
    assert start.shape == end.shape == (3, 10)
    s, e = torch.tensor([1, 2, 1]), torch.tensor([3, 5, 2])
    expected = (F.cross_entropy(start, s) + F.cross_entropy(end, e)) / 2
    torch.testing.assert_close(model.loss(ids, s, e, types, mask), expected)
    torch.testing.assert_close(span_loss(start, end, s, e), expected)


def test_fine_tuning_reuses_the_pretrained_backbone() -> None:
    bert = _model()
    mlm = BertForMaskedLM(bert)
    clf = BertForSequenceClassification(bert, n_labels=2)
    assert clf.bert is mlm.bert is bert
    with pytest.raises(ValueError, match="pooler=True"):
        BertForSequenceClassification(Bert(_config(pooler=False)), n_labels=2)
    with pytest.raises(ValueError, match="no pooler"):
        Bert(_config(pooler=False)).pool(torch.zeros(1, 2, 32))
    with pytest.raises(TypeError, match="Bert or a BertConfig"):
        BertForQuestionAnswering(nn.Linear(2, 2))  # type: ignore[arg-type]


def test_a_few_steps_learn_a_classification() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(_config(), n_labels=2)
    ids, types, mask = _batch(b=8, seed=1)
    labels = torch.tensor([0, 1] * 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        loss = model.loss(ids, labels, types, mask)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


# ---- dtypes and the written-out variant -------------------------------------------------------
def test_float64_in_float64_out() -> None:
    torch.manual_seed(0)
    model = BertForPreTraining(_config()).double().eval()
    ids, types, mask = _batch()
    hidden = model.bert(ids, types, mask)
    mlm_logits, nsp_logits = model(ids, types, mask)
    assert hidden.dtype == mlm_logits.dtype == nsp_logits.dtype == torch.float64
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    assert model.loss(ids, labels, torch.tensor([0, 1, 1]), types, mask).dtype == torch.float64
    qa = BertForQuestionAnswering(model.bert)
    assert all(t.dtype == torch.float64 for t in qa(ids, types, mask))


def test_scratch_variant_equals_default() -> None:
    torch.manual_seed(0)
    fast = BertForPreTraining(_config()).double().eval()
    slow = BertForPreTraining(_config(scratch=True)).double().eval()
    slow.load_state_dict(fast.state_dict())
    assert isinstance(slow.bert.embeddings.norm, LayerNorm)
    assert slow.bert.encoder.layers[0].self_attn.scratch
    ids, types, mask = _batch()
    for a, b in zip(fast(ids, types, mask), slow(ids, types, mask), strict=True):
        torch.testing.assert_close(
            a[mask.bool()] if a.dim() == 3 else a,
            b[mask.bool()] if b.dim() == 3 else b,
            rtol=0,
            atol=1e-10,
        )
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    nsp = torch.tensor([0, 1, 1])
    torch.testing.assert_close(
        fast.loss(ids, labels, nsp, types, mask),
        slow.loss(ids, labels, nsp, types, mask),
        rtol=0,
        atol=1e-10,
    )


def test_bfloat16_forward_and_loss() -> None:
    torch.manual_seed(0)
    model = BertForMaskedLM(_config()).to(torch.bfloat16).eval()
    ids, types, mask = _batch()
    logits = model(ids, types, mask)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    assert torch.isfinite(model.loss(ids, labels, types, mask))


# ---- no host-device synchronisation ----------------------------------------------------------
READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")


def test_a_training_step_reads_no_tensor_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a value (a GPU stall) raises here; the id checks are off as on a GPU."""
    torch.manual_seed(0)
    model = BertForPreTraining(_config(dropout=0.1))
    ids, types, mask = _batch()
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    nsp = torch.tensor([0, 1, 0])

    def forbidden(name: str):  # noqa: ANN202
        def fail(self: torch.Tensor, *args: object, **kwargs: object) -> object:
            raise AssertionError(f"tensor.{name}() read a value (a host-device sync on a GPU)")

        return fail

    with monkeypatch.context() as m:
        m.setattr(runtime, "VALUE_CHECKS_ON_CPU", False)
        for name in READS:
            m.setattr(torch.Tensor, name, forbidden(name))
        loss = model.loss(ids, labels, nsp, types, mask)
        loss.backward()
        with pytest.raises(AssertionError, match="read a value"):
            bool(loss > 0)  # the guard works
