"""Convert a Hugging Face ``transformers`` T5 into the course's :class:`~coursekit.models.t5.T5`.

:func:`t5_from_hf` takes a ``T5ForConditionalGeneration`` and carries every weight over, so
the two models have the same parameter count and the same logits. The mapping::

    shared                                          -> shared (encoder, decoder and tied output)
    {encoder,decoder}.block.0.layer.0.SelfAttention
        .relative_attention_bias                    -> {encoder,decoder}.relative_bias
    block.i.layer.0.SelfAttention.q / k / v         -> layers[i].self_attn.qkv_proj (rows q, k, v)
    block.i.layer.0.SelfAttention.o                 -> layers[i].self_attn.out_proj
    block.i.layer.0.layer_norm                      -> layers[i].self_attn_norm
    decoder block.i.layer.1.EncDecAttention / norm  -> layers[i].cross_attn / cross_attn_norm
    DenseReluDense.wi / wo                          -> ffn.w1 / ffn.w2
    DenseReluDense.wi_0 / wi_1 / wo (gated)         -> ffn.w1 / ffn.w3 / ffn.w2
    last layer's layer_norm                         -> ffn_norm
    {encoder,decoder}.final_layer_norm              -> {encoder,decoder}.norm
    lm_head (when not tied to shared)               -> lm_head

Whether the decoder output is scaled by ``d_model^-0.5`` follows the original's config
(``scale_decoder_outputs`` where ``transformers`` has it, else ``tie_word_embeddings``).

``transformers`` is imported lazily, inside :func:`t5_from_hf`: it is an optional dependency.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from coursekit.layers import TransformerBlock
from coursekit.models.t5 import T5, T5Config, T5Stack

__all__ = ["t5_config_from_hf", "t5_from_hf"]

_ACTIVATIONS = {
    "relu": "relu",
    "gelu": "gelu",
    "gated-gelu": "geglu",
    "gated-gelu_new": "geglu",
    "gated-gelu_pytorch_tanh": "geglu",
    "gated-silu": "swiglu",
}


def t5_config_from_hf(hf_config: Any, *, tied: bool = True) -> T5Config:
    """A :class:`T5Config` with the sizes of a ``transformers.T5Config``; ``tied``: whether
    the original's output matrix is its shared embedding."""
    proj = getattr(hf_config, "feed_forward_proj", "relu")
    if proj not in _ACTIVATIONS:
        raise ValueError(
            f"feed_forward_proj={proj!r} is not supported: use one of {', '.join(_ACTIVATIONS)}."
        )
    if hf_config.d_kv * hf_config.num_heads != hf_config.d_model:
        raise ValueError(
            f"d_kv x num_heads = {hf_config.d_kv} x {hf_config.num_heads} must equal d_model="
            f"{hf_config.d_model}: the course's attention splits d_model evenly across the heads."
        )
    scale = getattr(hf_config, "scale_decoder_outputs", None)
    if scale is None:
        scale = bool(getattr(hf_config, "tie_word_embeddings", True))
    pad = hf_config.pad_token_id if hf_config.pad_token_id is not None else 0
    eos = hf_config.eos_token_id
    eos = eos[0] if isinstance(eos, (list, tuple)) else (1 if eos is None else eos)
    start = getattr(hf_config, "decoder_start_token_id", None)
    return T5Config(
        vocab_size=hf_config.vocab_size,
        d_model=hf_config.d_model,
        n_heads=hf_config.num_heads,
        n_encoder_layers=hf_config.num_layers,
        n_decoder_layers=hf_config.num_decoder_layers,
        d_ff=hf_config.d_ff,
        activation=_ACTIVATIONS[proj],  # type: ignore[arg-type]
        num_buckets=hf_config.relative_attention_num_buckets,
        max_distance=hf_config.relative_attention_max_distance,
        dropout=hf_config.dropout_rate,
        eps=hf_config.layer_norm_epsilon,
        tie_embeddings=tied,
        scale_output=bool(scale),
        pad_id=pad,
        eos_id=int(eos),
        decoder_start_id=pad if start is None else int(start),
        init_factor=getattr(hf_config, "initializer_factor", 1.0),
    )


def _gain(norm: nn.Module | None) -> torch.Tensor:
    """The gain vector of one of our RMSNorms."""
    weight = getattr(norm, "weight", None)
    assert isinstance(weight, torch.Tensor)
    return weight


@torch.no_grad()
def _load_stack(ours: T5Stack, theirs: Any, *, decoder: bool) -> None:
    blocks = list(theirs.block)
    if len(blocks) != len(ours.layers):
        raise ValueError(f"{len(blocks)} blocks in the original, {len(ours.layers)} here.")
    table = blocks[0].layer[0].SelfAttention.relative_attention_bias
    ours.relative_bias.relative_attention_bias.weight.copy_(table.weight)
    for block, layer in zip(ours.layers, blocks, strict=True):
        assert isinstance(block, TransformerBlock)
        sa = layer.layer[0].SelfAttention
        block.self_attn.qkv_proj.weight.copy_(torch.cat([sa.q.weight, sa.k.weight, sa.v.weight]))
        block.self_attn.out_proj.weight.copy_(sa.o.weight)
        _gain(block.self_attn_norm).copy_(layer.layer[0].layer_norm.weight)
        if decoder:
            assert block.cross_attn is not None and block.cross_attn_norm is not None
            ca = layer.layer[1].EncDecAttention
            block.cross_attn.qkv_proj.weight.copy_(
                torch.cat([ca.q.weight, ca.k.weight, ca.v.weight])
            )
            block.cross_attn.out_proj.weight.copy_(ca.o.weight)
            _gain(block.cross_attn_norm).copy_(layer.layer[1].layer_norm.weight)
        ff = layer.layer[-1]
        dense = ff.DenseReluDense
        if block.ffn.w3 is not None:
            block.ffn.w1.weight.copy_(dense.wi_0.weight)
            block.ffn.w3.weight.copy_(dense.wi_1.weight)
        else:
            block.ffn.w1.weight.copy_(dense.wi.weight)
        block.ffn.w2.weight.copy_(dense.wo.weight)
        _gain(block.ffn_norm).copy_(ff.layer_norm.weight)
    _gain(ours.norm).copy_(theirs.final_layer_norm.weight)


def t5_from_hf(model: Any) -> T5:
    """A coursekit :class:`T5` with the weights of a ``transformers`` ``T5ForConditionalGeneration``.

    The result is on the original's device and dtype, in the same train/eval mode, and
    ``T5(input_ids, decoder_input_ids, attention_mask)`` equals the original's ``logits``.
    """
    import transformers  # optional dependency, imported only here

    if not isinstance(model, transformers.T5ForConditionalGeneration):
        raise TypeError(
            f"t5_from_hf converts a T5ForConditionalGeneration, got {type(model).__name__}."
        )
    tied = model.lm_head.weight is model.shared.weight
    ours = T5(t5_config_from_hf(model.config, tied=tied))
    # same device and dtype first, so that float64 weights are copied without rounding
    reference = next(model.parameters())
    ours.to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        ours.shared.weight.copy_(model.shared.weight)
        if not tied:
            ours.lm_head.weight.copy_(model.lm_head.weight)
        _load_stack(ours.encoder, model.encoder, decoder=False)
        _load_stack(ours.decoder, model.decoder, decoder=True)
    return ours.train(model.training)
