"""hf.bert: a converted transformers BERT gives the same outputs, with every weight carried over.

The references are small models built offline from a ``transformers.BertConfig`` (no download).
"""

from __future__ import annotations

import pytest
import torch

from coursekit.hf.bert import bert_config_from_hf, bert_from_hf
from coursekit.models.bert import (
    Bert,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("one_thread")

V = 99
ATOL = 1e-5


def _hf_config(**kw):
    base = dict(
        vocab_size=V,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=40,
        type_vocab_size=2,
        attn_implementation="eager",
    )
    base.update(kw)
    return transformers.BertConfig(**base)


@torch.no_grad()
def _perturb(model):
    """Noise on every weight: transformers initialises biases to 0 and LayerNorms to (1, 0),
    which would hide a bias or norm carried to the wrong place."""
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.05)
    return model


def _reference(cls, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return _perturb(cls(_hf_config(**kw)).eval())


def _inputs(padded: bool, b: int = 3, t: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (b, t), generator=g)
    types = torch.zeros_like(ids)
    types[:, t // 2 :] = 1
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 8:] = 0
        mask[2, 4:] = 0
        ids[mask == 0] = 0
        types[mask == 0] = 0
    return ids, types, mask


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _max_error(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor | None = None) -> float:
    diff = (a - b).detach().abs()
    return float(diff[keep].max() if keep is not None else diff.max())


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("padded", [False, True])
def test_bert_model_hidden_states_and_pooler_match(padded, attn) -> None:
    hf = _reference(transformers.BertModel, attn_implementation=attn)
    ours = bert_from_hf(hf)
    assert isinstance(ours, Bert) and not ours.training
    assert _n_params(ours) == _n_params(hf)
    ids, types, mask = _inputs(padded)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
        hidden = ours(ids, types, mask)
    real = mask.bool()  # padded positions' outputs are not compared
    assert _max_error(hidden, ref.last_hidden_state, real) < ATOL
    assert _max_error(ours.pool(hidden), ref.pooler_output) < ATOL


def test_default_segments_and_no_mask_match() -> None:
    hf = _reference(transformers.BertModel)
    ours = bert_from_hf(hf)
    ids, _, _ = _inputs(False)
    with torch.no_grad():
        assert _max_error(ours(ids), hf(input_ids=ids).last_hidden_state) < ATOL


def test_bert_model_without_pooler() -> None:
    torch.manual_seed(0)
    hf = _perturb(transformers.BertModel(_hf_config(), add_pooling_layer=False).eval())
    ours = bert_from_hf(hf)
    assert ours.pooler is None and _n_params(ours) == _n_params(hf)
    ids, types, mask = _inputs(True)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        assert _max_error(ours(ids, types, mask), ref, mask.bool()) < ATOL


def test_float64_conversion_is_exact() -> None:
    hf = _reference(transformers.BertModel).double()
    ours = bert_from_hf(hf)
    assert next(ours.parameters()).dtype == torch.float64
    ids, types, mask = _inputs(True)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        out = ours(ids, types, mask)
    assert out.dtype == torch.float64
    assert _max_error(out, ref, mask.bool()) < 1e-12


@pytest.mark.parametrize("padded", [False, True])
def test_masked_lm_matches(padded) -> None:
    hf = _reference(transformers.BertForMaskedLM)
    ours = bert_from_hf(hf)
    assert isinstance(ours, BertForMaskedLM)
    assert ours.mlm.decoder.weight is ours.bert.embeddings.word_embeddings.weight
    assert _n_params(ours) == _n_params(hf)
    ids, types, mask = _inputs(padded)
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
        logits = ours(ids, types, mask)
        loss = ours.loss(ids, labels, types, mask)
    assert _max_error(logits, ref.logits, mask.bool()) < ATOL
    assert abs(loss.item() - ref.loss.item()) < ATOL


def test_untied_decoder_is_carried_over() -> None:
    hf = _reference(transformers.BertForMaskedLM, tie_word_embeddings=False)
    assert hf.cls.predictions.decoder.weight is not hf.bert.embeddings.word_embeddings.weight
    ours = bert_from_hf(hf)
    assert ours.mlm.decoder.weight is not ours.bert.embeddings.word_embeddings.weight
    # untied, transformers adds decoder.bias and never uses cls.predictions.bias (V values)
    assert _n_params(ours) == _n_params(hf) - V
    ids, types, mask = _inputs(True)
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).logits
        assert _max_error(ours(ids, types, mask), ref, mask.bool()) < ATOL


def test_pretraining_heads_match() -> None:
    hf = _reference(transformers.BertForPreTraining)
    ours = bert_from_hf(hf)
    assert isinstance(ours, BertForPreTraining)
    assert _n_params(ours) == _n_params(hf)
    ids, types, mask = _inputs(True)
    labels = torch.full_like(ids, -100)
    labels[:, 1] = ids[:, 1]
    nsp = torch.tensor([0, 1, 0])
    with torch.no_grad():
        ref = hf(
            input_ids=ids,
            token_type_ids=types,
            attention_mask=mask,
            labels=labels,
            next_sentence_label=nsp,
        )
        mlm, nsp_logits = ours(ids, types, mask)
        loss = ours.loss(ids, labels, nsp, types, mask)
    assert _max_error(mlm, ref.prediction_logits, mask.bool()) < ATOL
    assert _max_error(nsp_logits, ref.seq_relationship_logits) < ATOL
    assert abs(loss.item() - ref.loss.item()) < ATOL


def test_sequence_classification_matches() -> None:
    hf = _reference(transformers.BertForSequenceClassification, num_labels=3)
    ours = bert_from_hf(hf)
    assert isinstance(ours, BertForSequenceClassification)
    assert _n_params(ours) == _n_params(hf)
    ids, types, mask = _inputs(True)
    labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
        assert _max_error(ours(ids, types, mask), ref.logits) < ATOL
        assert abs(ours.loss(ids, labels, types, mask).item() - ref.loss.item()) < ATOL


def test_token_classification_matches() -> None:
    hf = _reference(transformers.BertForTokenClassification, num_labels=5)
    ours = bert_from_hf(hf)
    assert isinstance(ours, BertForTokenClassification)
    assert _n_params(ours) == _n_params(hf)
    ids, types, mask = _inputs(True)
    labels = torch.randint(0, 5, ids.shape)
    labels[mask == 0] = -100
    with torch.no_grad():
        ref = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
        assert _max_error(ours(ids, types, mask), ref.logits, mask.bool()) < ATOL
        assert abs(ours.loss(ids, labels, types, mask).item() - ref.loss.item()) < ATOL


def test_question_answering_matches() -> None:
    hf = _reference(transformers.BertForQuestionAnswering)
    ours = bert_from_hf(hf)
    assert isinstance(ours, BertForQuestionAnswering)
    assert _n_params(ours) == _n_params(hf)
    ids, types, mask = _inputs(True)
    s, e = torch.tensor([1, 2, 1]), torch.tensor([3, 5, 2])
    with torch.no_grad():
        ref = hf(
            input_ids=ids,
            token_type_ids=types,
            attention_mask=mask,
            start_positions=s,
            end_positions=e,
        )
        start, end = ours(ids, types, mask)
        loss = ours.loss(ids, s, e, types, mask)
    real = mask.bool()
    assert _max_error(start, ref.start_logits, real) < ATOL
    assert _max_error(end, ref.end_logits, real) < ATOL
    assert abs(loss.item() - ref.loss.item()) < ATOL


def test_training_mode_and_dropouts_are_carried_over() -> None:
    hf = _reference(
        transformers.BertModel, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.05
    )
    hf.train()
    ours = bert_from_hf(hf)
    assert ours.training
    assert ours.config.dropout == 0.2 and ours.config.attn_dropout == 0.05
    assert ours.encoder.layers[0].self_attn.dropout == 0.05


def test_special_ids() -> None:
    small = bert_config_from_hf(_hf_config())
    assert (small.pad_id, small.cls_id, small.sep_id, small.mask_id) == (0, 1, 2, 4)
    big = bert_config_from_hf(_hf_config(vocab_size=30522))
    assert (big.pad_id, big.cls_id, big.sep_id, big.mask_id) == (0, 101, 102, 103)
    custom = bert_config_from_hf(_hf_config(), cls_id=5, sep_id=6, mask_id=7)
    assert (custom.cls_id, custom.sep_id, custom.mask_id) == (5, 6, 7)


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        (dict(hidden_act="silu"), ValueError, "hidden_act"),
        (dict(is_decoder=True), ValueError, "encoder"),
    ],
)
def test_unsupported_configurations(kw, error, message) -> None:
    torch.manual_seed(0)
    hf = transformers.BertModel(_hf_config(**kw))
    with pytest.raises(error, match=message):
        bert_from_hf(hf)


def test_rejects_other_models() -> None:
    with pytest.raises(TypeError, match="BertModel"):
        bert_from_hf(torch.nn.Linear(2, 2))
    hf = _reference(transformers.BertForSequenceClassification, num_labels=1)  # regression
    with pytest.raises(ValueError, match="single-label"):
        bert_from_hf(hf)
