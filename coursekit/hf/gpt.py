"""Converters from Hugging Face ``transformers`` decoder-only models to :class:`coursekit.models.gpt.GPT`.

* :func:`gpt_from_hf`: a ``GPT2LMHeadModel`` (or ``GPT2Model``) -> a GPT with GPT-2's recipe;
* :func:`llama_from_hf`: a ``LlamaForCausalLM`` (or ``LlamaModel``) -> a GPT with the modern
  recipe (RoPE in LLaMA's channel layout, RMSNorm, SwiGLU, no biases, grouped-query attention).

Every weight is carried over (the two models have the same parameter count) and the logits are
equal to float rounding. ``transformers`` is only needed by the caller, who already has the
model: nothing here imports it.

Layout notes: GPT-2 stores its projections as ``Conv1D`` modules whose weight is ``(in, out)``,
the transpose of ``nn.Linear``'s; its ``c_attn`` columns are the queries, keys and values of all
heads in the same order as coursekit's fused ``qkv_proj`` rows. LLaMA keeps separate ``q_proj``,
``k_proj`` and ``v_proj`` (``nn.Linear``), which are stacked into ``qkv_proj``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from coursekit.models.gpt import GPT, GPTConfig

__all__ = ["gpt_from_hf", "llama_from_hf"]

_GPT2_ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
}


def _unsupported(what: str, value: Any) -> ValueError:
    return ValueError(f"cannot convert: {what} = {value!r} has no coursekit equivalent.")


def _backbone(model: Any, name: str) -> tuple[Any, Any]:
    """``(base model, lm_head or None)`` of a ``...ForCausalLM`` / ``...LMHeadModel`` or a bare model."""
    inner = getattr(model, name, None)
    if isinstance(inner, nn.Module):
        return inner, getattr(model, "lm_head", None)
    return model, None


def _place(gpt: GPT, reference: Any) -> GPT:
    """Move ``gpt`` to the reference's device and dtype, and copy its train/eval mode."""
    p = next(reference.parameters())
    return gpt.to(device=p.device, dtype=p.dtype).train(reference.training)


@torch.no_grad()
def gpt_from_hf(model: Any) -> GPT:
    """A :class:`GPT` whose logits equal those of a ``transformers`` ``GPT2LMHeadModel``.

    Also accepts a ``GPT2Model`` (no head: the output matrix is then the tied token embedding,
    as in GPT-2). Dropout rates are carried over (GPT-2 uses one rate for the embeddings, the
    attention weights and the residual branches: differing rates are refused).
    """
    hf = model.config
    body, head = _backbone(model, "transformer")
    if getattr(hf, "add_cross_attention", False):
        raise _unsupported("add_cross_attention", True)
    if getattr(hf, "scale_attn_by_inverse_layer_idx", False):
        raise _unsupported("scale_attn_by_inverse_layer_idx", True)
    if not getattr(hf, "scale_attn_weights", True):
        raise _unsupported("scale_attn_weights", False)
    activation = _GPT2_ACTIVATIONS.get(hf.activation_function)
    if activation is None:
        raise _unsupported("activation_function", hf.activation_function)
    rates = {float(hf.embd_pdrop), float(hf.attn_pdrop), float(hf.resid_pdrop)}
    if len(rates) != 1:
        raise ValueError(
            f"cannot convert: GPT-2 dropout rates differ (embd {hf.embd_pdrop}, attn "
            f"{hf.attn_pdrop}, resid {hf.resid_pdrop}); coursekit's GPT uses one rate."
        )
    tied = head is None or head.weight is body.wte.weight
    config = GPTConfig(
        vocab_size=hf.vocab_size,
        block_size=hf.n_positions,
        n_layers=hf.n_layer,
        n_heads=hf.n_head,
        d_model=hf.n_embd,
        d_ff=hf.n_inner if hf.n_inner is not None else 4 * hf.n_embd,
        dropout=rates.pop(),
        positional="learned",
        norm="layer",
        activation=activation,  # type: ignore[arg-type]
        bias=True,
        tie_embeddings=tied,
        eps=hf.layer_norm_epsilon,
        init_std=hf.initializer_range,
    )
    gpt = GPT(config)
    gpt.tok_embed.weight.copy_(body.wte.weight)
    assert gpt.pos_embed is not None
    gpt.pos_embed.weight.copy_(body.wpe.weight)
    for ours, theirs in zip(gpt.blocks.blocks(), body.h, strict=True):
        ours.self_attn_norm.load_state_dict(theirs.ln_1.state_dict())
        ours.self_attn.qkv_proj.weight.copy_(theirs.attn.c_attn.weight.T)
        ours.self_attn.qkv_proj.bias.copy_(theirs.attn.c_attn.bias)
        ours.self_attn.out_proj.weight.copy_(theirs.attn.c_proj.weight.T)
        ours.self_attn.out_proj.bias.copy_(theirs.attn.c_proj.bias)
        ours.ffn_norm.load_state_dict(theirs.ln_2.state_dict())
        ours.ffn.w1.weight.copy_(theirs.mlp.c_fc.weight.T)
        ours.ffn.w1.bias.copy_(theirs.mlp.c_fc.bias)
        ours.ffn.w2.weight.copy_(theirs.mlp.c_proj.weight.T)
        ours.ffn.w2.bias.copy_(theirs.mlp.c_proj.bias)
    assert gpt.blocks.norm is not None
    gpt.blocks.norm.load_state_dict(body.ln_f.state_dict())
    if not tied:
        assert head is not None
        if getattr(head, "bias", None) is not None:
            raise _unsupported("lm_head.bias", "present")
        gpt.lm_head.weight.copy_(head.weight)
    return _place(gpt, model)


def _rope_theta(hf: Any) -> float:
    """LLaMA's RoPE base, from ``rope_parameters`` (transformers 5) or ``rope_theta`` (4.x)."""
    params = getattr(hf, "rope_parameters", None) or {}
    scaling = getattr(hf, "rope_scaling", None) or {}
    kind = params.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if kind not in (None, "default"):
        raise _unsupported("rope type", kind)
    theta = params.get("rope_theta", getattr(hf, "rope_theta", None))
    return 10000.0 if theta is None else float(theta)


@torch.no_grad()
def llama_from_hf(model: Any) -> GPT:
    """A :class:`GPT` whose logits equal those of a ``transformers`` ``LlamaForCausalLM``.

    The modern recipe: RoPE with LLaMA's base and its non-interleaved channel pairing, RMSNorm
    with the config's ``rms_norm_eps``, SwiGLU (``gate_proj`` -> ``w1``, ``up_proj`` -> ``w3``,
    ``down_proj`` -> ``w2``), no biases, ``num_key_value_heads`` key/value heads, and the output
    matrix tied or not as configured. A ``LlamaModel`` (no head) gives a tied model.
    """
    hf = model.config
    body, head = _backbone(model, "model")
    if getattr(hf, "attention_bias", False) or getattr(hf, "mlp_bias", False):
        raise _unsupported("attention_bias / mlp_bias", True)
    if getattr(hf, "hidden_act", "silu") != "silu":
        raise _unsupported("hidden_act", hf.hidden_act)
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    if head_dim * hf.num_attention_heads != hf.hidden_size:
        raise ValueError(
            f"cannot convert: head_dim={head_dim} x {hf.num_attention_heads} heads != hidden_size="
            f"{hf.hidden_size}; coursekit's attention uses d_model / n_heads channels per head."
        )
    if getattr(hf, "pretraining_tp", 1) not in (None, 1):
        raise _unsupported("pretraining_tp", hf.pretraining_tp)
    tied = head is None or head.weight is body.embed_tokens.weight
    config = GPTConfig(
        vocab_size=hf.vocab_size,
        block_size=hf.max_position_embeddings,
        n_layers=hf.num_hidden_layers,
        n_heads=hf.num_attention_heads,
        n_kv_heads=getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads,
        d_model=hf.hidden_size,
        d_ff=hf.intermediate_size,
        dropout=float(getattr(hf, "attention_dropout", 0.0) or 0.0),
        positional="rope",
        norm="rms",
        activation="swiglu",
        bias=False,
        tie_embeddings=tied,
        eps=hf.rms_norm_eps,
        rope_base=_rope_theta(hf),
        rope_interleaved=False,
        init_std=getattr(hf, "initializer_range", 0.02),
    )
    if config.dropout:
        raise _unsupported("attention_dropout", config.dropout)  # LLaMA drops attention only
    gpt = GPT(config)
    gpt.tok_embed.weight.copy_(body.embed_tokens.weight)
    for ours, theirs in zip(gpt.blocks.blocks(), body.layers, strict=True):
        attn, mlp = theirs.self_attn, theirs.mlp
        ours.self_attn_norm.load_state_dict({"weight": theirs.input_layernorm.weight})
        ours.self_attn.qkv_proj.weight.copy_(
            torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight], dim=0)
        )
        ours.self_attn.out_proj.weight.copy_(attn.o_proj.weight)
        ours.ffn_norm.load_state_dict({"weight": theirs.post_attention_layernorm.weight})
        ours.ffn.w1.weight.copy_(mlp.gate_proj.weight)
        assert ours.ffn.w3 is not None
        ours.ffn.w3.weight.copy_(mlp.up_proj.weight)
        ours.ffn.w2.weight.copy_(mlp.down_proj.weight)
    assert gpt.blocks.norm is not None
    gpt.blocks.norm.load_state_dict({"weight": body.norm.weight})
    if not tied:
        assert head is not None
        gpt.lm_head.weight.copy_(head.weight)
    return _place(gpt, model)
