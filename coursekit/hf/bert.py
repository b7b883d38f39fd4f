"""Convert a Hugging Face ``transformers`` BERT into the course's :class:`~coursekit.models.bert.Bert`.

:func:`bert_from_hf` accepts

=====================================  ======================================================
``transformers`` model                  coursekit model
=====================================  ======================================================
``BertModel``                           :class:`Bert` (with its pooler if the original has one)
``BertForMaskedLM``                     :class:`BertForMaskedLM`
``BertForPreTraining``                  :class:`BertForPreTraining`
``BertForSequenceClassification``       :class:`BertForSequenceClassification`
``BertForTokenClassification``          :class:`BertForTokenClassification`
``BertForQuestionAnswering``            :class:`BertForQuestionAnswering`
=====================================  ======================================================

Every weight is carried over, so the two models have the same parameter count and the same
outputs. The mapping, per layer::

    attention.self.query / key / value    -> self_attn.qkv_proj (rows: queries, keys, values)
    attention.output.dense                -> self_attn.out_proj
    attention.output.LayerNorm            -> self_attn_norm
    intermediate.dense / output.dense     -> ffn.w1 / ffn.w2
    output.LayerNorm                      -> ffn_norm

and ``embeddings.{word,position,token_type}_embeddings`` / ``embeddings.LayerNorm`` ->
``embeddings.*`` / ``embeddings.norm``; ``pooler.dense`` -> ``pooler.dense`` (``Bert`` owns the
pooler, as ``BertModel`` does; a BertModel built with ``add_pooling_layer=False`` gives a
``Bert`` without one); ``cls.predictions.transform.{dense,LayerNorm}`` -> ``mlm.{dense,norm}``,
``cls.predictions.bias`` -> ``mlm.decoder.bias`` (the decoder matrix stays tied to the word
embeddings when the original's is; with ``tie_word_embeddings=False`` the original's output
bias is ``decoder.bias`` and its ``cls.predictions.bias`` is a parameter that its forward never
uses, the one weight not carried over), ``cls.seq_relationship`` -> ``nsp.seq_relationship``,
``classifier`` -> ``head.classifier``, ``qa_outputs`` -> ``head.qa_outputs``.

``transformers`` is imported lazily, inside :func:`bert_from_hf`: it is an optional dependency.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from coursekit.data.pairs import BERT_TOKENS, WORDPIECE_TOKENS
from coursekit.layers import TransformerBlock
from coursekit.models.bert import (
    Bert,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertMLMHead,
)

__all__ = ["bert_config_from_hf", "bert_from_hf"]

_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}


def bert_config_from_hf(
    hf_config: Any,
    *,
    pooler: bool = True,
    cls_id: int | None = None,
    sep_id: int | None = None,
    mask_id: int | None = None,
) -> BertConfig:
    """A :class:`BertConfig` with the sizes of a ``transformers.BertConfig``.

    ``transformers`` stores only the padding id; ``cls_id``, ``sep_id`` and ``mask_id`` default
    to the published WordPiece vocabulary's (101, 102, 103) when the vocabulary is that large,
    else to the course's layout (1, 2, 4).
    """
    act = getattr(hf_config, "hidden_act", "gelu")
    if not isinstance(act, str) or act not in _ACTIVATIONS:
        raise ValueError(
            f"hidden_act={act!r} is not supported: use one of {', '.join(_ACTIVATIONS)}."
        )
    if getattr(hf_config, "is_decoder", False) or getattr(hf_config, "add_cross_attention", False):
        raise ValueError("only encoder BERTs convert (is_decoder=False, no cross-attention).")
    kind = getattr(hf_config, "position_embedding_type", "absolute")
    if kind not in (None, "absolute"):
        raise ValueError(f"position_embedding_type={kind!r}: only absolute positions convert.")
    vocab = hf_config.vocab_size
    pad = hf_config.pad_token_id if hf_config.pad_token_id is not None else 0
    defaults = WORDPIECE_TOKENS if vocab > max(WORDPIECE_TOKENS.ids) else BERT_TOKENS
    cls_id = defaults.cls if cls_id is None else cls_id
    sep_id = defaults.sep if sep_id is None else sep_id
    mask_id = defaults.mask if mask_id is None else mask_id
    ids = {"cls_id": cls_id, "sep_id": sep_id, "mask_id": mask_id}
    if pad in ids.values():
        raise ValueError(f"pad_token_id={pad} collides with the special ids {ids}: pass them.")
    return BertConfig(
        vocab_size=vocab,
        max_positions=hf_config.max_position_embeddings,
        type_vocab_size=hf_config.type_vocab_size,
        d_model=hf_config.hidden_size,
        n_layers=hf_config.num_hidden_layers,
        n_heads=hf_config.num_attention_heads,
        d_ff=hf_config.intermediate_size,
        dropout=hf_config.hidden_dropout_prob,
        attn_dropout=hf_config.attention_probs_dropout_prob,
        activation=_ACTIVATIONS[act],  # type: ignore[arg-type]
        layer_norm_eps=hf_config.layer_norm_eps,
        init_std=getattr(hf_config, "initializer_range", 0.02),
        pooler=pooler,
        pad_id=pad,
        cls_id=cls_id,
        sep_id=sep_id,
        mask_id=mask_id,
    )


def _copy(dst: Any, src: Any) -> None:
    """Copy ``weight`` (and ``bias``) of a Linear / LayerNorm / Embedding-like module."""
    dst.weight.copy_(src.weight)
    if getattr(dst, "bias", None) is not None or getattr(src, "bias", None) is not None:
        if dst.bias is None or src.bias is None:
            raise ValueError(f"{type(src).__name__}: one side has a bias and the other not.")
        dst.bias.copy_(src.bias)


@torch.no_grad()
def _load_backbone(ours: Bert, hf_bert: Any) -> None:
    emb, e = ours.embeddings, hf_bert.embeddings
    _copy(emb.word_embeddings, e.word_embeddings)
    emb.position_embeddings.weight.copy_(e.position_embeddings.weight)
    _copy(emb.token_type_embeddings, e.token_type_embeddings)
    _copy(emb.norm, e.LayerNorm)
    layers = list(hf_bert.encoder.layer)
    if len(layers) != len(ours.encoder.layers):
        raise ValueError(f"{len(layers)} layers in the original, {len(ours.encoder.layers)} here.")
    for block, layer in zip(ours.encoder.layers, layers, strict=True):
        assert isinstance(block, TransformerBlock)
        att = layer.attention
        qkv = block.self_attn.qkv_proj
        qkv.weight.copy_(
            torch.cat([att.self.query.weight, att.self.key.weight, att.self.value.weight])
        )
        qkv.bias.copy_(torch.cat([att.self.query.bias, att.self.key.bias, att.self.value.bias]))
        _copy(block.self_attn.out_proj, att.output.dense)
        _copy(block.self_attn_norm, att.output.LayerNorm)
        _copy(block.ffn.w1, layer.intermediate.dense)
        _copy(block.ffn.w2, layer.output.dense)
        _copy(block.ffn_norm, layer.output.LayerNorm)
    if (ours.pooler is None) != (getattr(hf_bert, "pooler", None) is None):
        raise ValueError("one model has a pooler and the other not.")
    if ours.pooler is not None:
        _copy(ours.pooler.dense, hf_bert.pooler.dense)


@torch.no_grad()
def _load_mlm(head: BertMLMHead, predictions: Any, word_embeddings: nn.Embedding) -> None:
    _copy(head.dense, predictions.transform.dense)
    _copy(head.norm, predictions.transform.LayerNorm)
    # the output bias: ``cls.predictions.bias`` is ``decoder.bias`` in a tied model; an untied
    # one adds through ``decoder.bias`` and leaves ``cls.predictions.bias`` unused (not carried)
    head.decoder.bias.copy_(predictions.decoder.bias)
    if predictions.decoder.weight is not word_embeddings.weight:  # an untied original
        head.decoder.weight = nn.Parameter(predictions.decoder.weight.detach().clone())


def bert_from_hf(
    model: Any,
    *,
    cls_id: int | None = None,
    sep_id: int | None = None,
    mask_id: int | None = None,
) -> nn.Module:
    """A coursekit BERT with the weights of a ``transformers`` BERT (see the module docstring).

    The result is on the original's device and dtype, in the same train/eval mode, and its
    outputs equal the original's: ``Bert(ids, token_type_ids, attention_mask)`` is
    ``BertModel(...).last_hidden_state`` and ``bert.pool(hidden)`` its ``pooler_output``.
    ``cls_id``, ``sep_id``, ``mask_id``: see :func:`bert_config_from_hf`.
    """
    import transformers  # optional dependency, imported only here

    ids = {"cls_id": cls_id, "sep_id": sep_id, "mask_id": mask_id}
    hf_bert = model if isinstance(model, transformers.BertModel) else getattr(model, "bert", None)
    if not isinstance(hf_bert, transformers.BertModel):
        raise TypeError(
            f"bert_from_hf converts BertModel and BertFor{{PreTraining, MaskedLM, "
            f"SequenceClassification, TokenClassification, QuestionAnswering}}, got "
            f"{type(model).__name__}."
        )
    has_pooler = getattr(hf_bert, "pooler", None) is not None
    bert = Bert(bert_config_from_hf(model.config, pooler=has_pooler, **ids))

    ours: nn.Module
    if isinstance(model, transformers.BertModel):
        ours = bert
    elif isinstance(model, transformers.BertForPreTraining):
        ours = BertForPreTraining(bert)
    elif isinstance(model, transformers.BertForMaskedLM):
        ours = BertForMaskedLM(bert)
    elif isinstance(model, transformers.BertForSequenceClassification):
        if model.num_labels == 1 or model.config.problem_type not in (
            None,
            "single_label_classification",
        ):
            raise ValueError(
                "only single-label classification converts (num_labels >= 2); got "
                f"num_labels={model.num_labels}, problem_type={model.config.problem_type!r}."
            )
        ours = BertForSequenceClassification(
            bert, cast(int, model.num_labels), dropout=model.dropout.p
        )
    elif isinstance(model, transformers.BertForTokenClassification):
        ours = BertForTokenClassification(
            bert, cast(int, model.num_labels), dropout=model.dropout.p
        )
    elif isinstance(model, transformers.BertForQuestionAnswering):
        if model.qa_outputs.out_features != 2:
            raise ValueError(
                f"expected 2 span outputs (start, end), got {model.qa_outputs.out_features}."
            )
        ours = BertForQuestionAnswering(bert)
    else:
        raise TypeError(f"bert_from_hf does not know the head of {type(model).__name__}.")

    # same device and dtype first, so that float64 weights are copied without rounding
    reference = next(model.parameters())
    ours.to(device=reference.device, dtype=reference.dtype)
    _load_backbone(bert, hf_bert)
    with torch.no_grad():
        if isinstance(ours, BertForPreTraining | BertForMaskedLM):
            _load_mlm(ours.mlm, model.cls.predictions, hf_bert.embeddings.word_embeddings)
        if isinstance(ours, BertForPreTraining):
            _copy(ours.nsp.seq_relationship, model.cls.seq_relationship)
        elif isinstance(ours, BertForSequenceClassification | BertForTokenClassification):
            _copy(ours.head.classifier, model.classifier)
        elif isinstance(ours, BertForQuestionAnswering):
            _copy(ours.head.qa_outputs, model.qa_outputs)
    return ours.train(model.training)
