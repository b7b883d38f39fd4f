"""hf.gpt_from_hf / hf.llama_from_hf: logits equal to transformers' GPT2LMHeadModel and
LlamaForCausalLM (models built offline from small configs), every weight carried over, and
greedy generation equal to transformers' own generate()."""

from __future__ import annotations

import pytest
import torch

from coursekit.generate import generate
from coursekit.hf.gpt import gpt_from_hf, llama_from_hf

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTHS = (1, 5, 17, 32)


def _randomise(model: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    """Move every parameter off its initial value (norm gains 1 and biases 0 would hide a
    weight that was not copied) and make the logits large enough to compare meaningfully."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def _gpt2(attn: str = "eager", seed: int = 0, scale: float = 0.1, **kw):
    cfg = dict(
        n_layer=2, n_head=4, n_embd=64, vocab_size=101, n_positions=32,
        bos_token_id=None, eos_token_id=None, attn_implementation=attn,
    )  # fmt: skip
    cfg.update(kw)
    torch.manual_seed(seed)
    return _randomise(transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg)), seed, scale)


def _llama(attn: str = "eager", seed: int = 0, scale: float = 0.1, **kw):
    cfg = dict(
        vocab_size=101, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=48,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        bos_token_id=None, eos_token_id=None, attn_implementation=attn,
    )  # fmt: skip
    cfg.update(kw)
    torch.manual_seed(seed)
    return _randomise(transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)), seed, scale)


def _max_logit_gap(ours, ref, t: int, batch: int = 3, seed: int = 0) -> float:
    ids = torch.randint(
        0, ref.config.vocab_size, (batch, t), generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        mine, theirs = ours(ids), ref(ids).logits
    assert mine.shape == theirs.shape
    assert theirs.abs().max() > 0.5  # the comparison is not between near-zero numbers
    return (mine - theirs).abs().max().item()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"tie_word_embeddings": False},
        {"n_inner": 80, "activation_function": "gelu"},
        {"activation_function": "relu", "layer_norm_epsilon": 1e-3},
    ],
    ids=["gpt2", "untied", "n_inner-gelu", "relu-eps"],
)
def test_gpt2_logits_equal_transformers(attn, kw) -> None:
    ref = _gpt2(attn, **kw)
    ours = gpt_from_hf(ref)
    assert ours.num_parameters() == ref.num_parameters() == sum(p.numel() for p in ref.parameters())
    assert ours.config.tie_embeddings == ref.config.tie_word_embeddings
    assert not ours.training  # the mode follows the reference
    for t in LENGTHS:
        assert _max_logit_gap(ours, ref, t) < 1e-5, t


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize(
    "kw",
    [{}, {"tie_word_embeddings": True}, {"num_key_value_heads": 8}, {"num_key_value_heads": 1}],
    ids=["gqa", "tied", "mha", "mqa"],
)
def test_llama_logits_equal_transformers(attn, kw) -> None:
    ref = _llama(attn, **kw)
    ours = llama_from_hf(ref)
    c = ours.config
    assert ours.num_parameters() == ref.num_parameters() == sum(p.numel() for p in ref.parameters())
    assert (c.positional, c.norm, c.activation, c.bias) == ("rope", "rms", "swiglu", False)
    assert (c.n_kv_heads, c.eps, c.rope_base, c.rope_interleaved) == (
        ref.config.num_key_value_heads,
        1e-5,
        500.0,
        False,
    )
    assert c.tie_embeddings == ref.config.tie_word_embeddings
    for t in (*LENGTHS, 48):
        assert _max_logit_gap(ours, ref, t) < 1e-5, t


def test_bare_backbones_and_dtype() -> None:
    ref = _gpt2()
    ours = gpt_from_hf(ref.transformer)  # GPT2Model: the head is the tied embedding
    ids = torch.randint(0, 101, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), ref(ids).logits, atol=1e-5, rtol=1e-5)
    double = gpt_from_hf(_gpt2().double())
    assert next(double.parameters()).dtype == torch.float64
    llama = _llama(tie_word_embeddings=True)
    bare = llama_from_hf(llama.model)
    with torch.no_grad():
        torch.testing.assert_close(bare(ids), llama(ids).logits, atol=1e-5, rtol=1e-5)


def test_unsupported_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="scale_attn_by_inverse_layer_idx"):
        gpt_from_hf(_gpt2(scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(ValueError, match="dropout rates differ"):
        gpt_from_hf(_gpt2(attn_pdrop=0.0))
    with pytest.raises(ValueError, match="head_dim"):
        llama_from_hf(_llama(head_dim=16))
    with pytest.raises(ValueError, match="attention_bias"):
        llama_from_hf(_llama(attention_bias=True))
    with pytest.raises(ValueError, match="rope type"):
        llama_from_hf(
            _llama(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4})
        )


def _hf_greedy(ref, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """transformers' generate(), greedy, with nothing that could stop or alter it early."""
    config = transformers.GenerationConfig(
        do_sample=False, max_new_tokens=n, eos_token_id=None,
        pad_token_id=0, bos_token_id=None, repetition_penalty=1.0, num_beams=1,
    )  # fmt: skip
    with torch.no_grad():
        return ref.generate(
            prompt, generation_config=config, attention_mask=torch.ones_like(prompt)
        )


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_greedy_generation_equals_transformers(family) -> None:
    ref = _gpt2(scale=0.3) if family == "gpt2" else _llama(scale=0.3)
    ours = gpt_from_hf(ref) if family == "gpt2" else llama_from_hf(ref)
    prompt = torch.randint(0, 101, (3, 6), generator=torch.Generator().manual_seed(1))
    n = 20
    theirs = _hf_greedy(ref, prompt, n)
    mine = generate(ours, prompt, n, temperature=0.0)
    assert torch.equal(mine, theirs)
    assert torch.equal(generate(ours, prompt, n, temperature=0.0, use_cache=False), theirs)
    assert len(set(mine[:, 6:].flatten().tolist())) > 3  # a real test: not one repeated token
