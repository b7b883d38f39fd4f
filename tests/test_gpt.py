"""models.GPT: config checks, closed-form parameter count, GPT-2's initialisation, causality,
cached decoding, generation (cached == uncached, greedy, top-k/top-p sets, sliding window)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.generate import CausalLM, generate
from coursekit.models.gpt import GPT, GPTCache, GPTConfig, gpt_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(**kw) -> GPTConfig:
    base = dict(vocab_size=29, block_size=16, n_layers=2, n_heads=4, d_model=32, dropout=0.0)
    base.update(kw)
    return GPTConfig(**base)  # type: ignore[arg-type]


def _model(seed: int = 0, scale: float = 1.0, **kw) -> GPT:
    """A random GPT in eval mode; ``scale`` sharpens its logits (so decoding choices differ)."""
    torch.manual_seed(seed)
    model = GPT(_config(**kw)).eval()
    with torch.no_grad():
        for p in model.parameters():  # move off the init (norm gains, biases) so bugs show
            p.add_(torch.randn_like(p) * 0.05)
        model.lm_head.weight.mul_(scale)
    return model


MODERN = dict(positional="rope", norm="rms", activation="swiglu", bias=False, n_kv_heads=2)
RECIPES = {
    "gpt2": {},
    "modern": MODERN,
    "modern-untied": {**MODERN, "tie_embeddings": False},
    "rope-interleaved-mqa": dict(positional="rope", rope_interleaved=True, n_kv_heads=1),
}


# ------------------------------------------------------------------------------------------
# config and parameters
# ------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    d_head=st.sampled_from([2, 4, 6]),
    n_heads=st.integers(1, 4),
    kv_div=st.integers(1, 4),
    n_layers=st.integers(1, 3),
    d_ff=st.one_of(st.none(), st.integers(1, 40)),
    vocab=st.integers(2, 50),
    block=st.integers(1, 20),
    positional=st.sampled_from(["learned", "rope"]),
    norm=st.sampled_from(["layer", "rms"]),
    activation=st.sampled_from(["relu", "gelu", "gelu_tanh", "swiglu", "geglu"]),
    bias=st.booleans(),
    tie=st.booleans(),
)
def test_parameter_count_equals_closed_form(
    d_head, n_heads, kv_div, n_layers, d_ff, vocab, block, positional, norm, activation, bias, tie
) -> None:
    n_kv = n_heads // kv_div if n_heads % kv_div == 0 else None
    c = GPTConfig(
        vocab_size=vocab,
        block_size=block,
        n_layers=n_layers,
        n_heads=n_heads,
        d_model=d_head * n_heads,
        d_ff=d_ff,
        n_kv_heads=n_kv,
        positional=positional,
        norm=norm,
        activation=activation,
        bias=bias,
        tie_embeddings=tie,
    )
    model = GPT(c)
    assert model.num_parameters() == c.expected_parameters()


def test_defaults_are_gpt2_small() -> None:
    c = GPTConfig()
    # GPT-2 small: 124,439,808 parameters with the tied output matrix (Hugging Face's count)
    assert c.expected_parameters() == 124_439_808
    assert (c.d_ff, c.activation, c.positional, c.norm, c.bias, c.tie_embeddings) == (
        3072,
        "gelu_tanh",
        "learned",
        "layer",
        True,
        True,
    )


def test_config_to_dict_round_trip_and_replace() -> None:
    c = _config(**MODERN)
    assert GPTConfig(**c.to_dict()) == c
    wider = _config().replace(d_model=64)
    assert wider.d_ff == 256  # the default 4 d follows d_model
    assert _config(d_ff=50).replace(d_model=64).d_ff == 50


def test_modern_recipe_keeps_the_parameter_count() -> None:
    old = _config(d_model=128, n_layers=4, vocab_size=65, block_size=64)
    new = GPTConfig.modern(d_model=128, n_layers=4, n_heads=4, vocab_size=65, block_size=64)
    assert (new.positional, new.norm, new.activation, new.bias) == ("rope", "rms", "swiglu", False)
    assert new.d_ff == round(2 / 3 * 4 * 128) == 341
    # RoPE drops the position table, no biases: within 10 %, and the blocks within 1 %
    assert abs(new.expected_parameters() / old.expected_parameters() - 1) < 0.1
    assert abs(new.block_config().n_params() / old.block_config().n_params() - 1) < 0.01


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(d_model=30, n_heads=4), "divisible by n_heads"),
        (dict(n_kv_heads=3), "divisor of n_heads"),
        (dict(vocab_size=0), "vocab_size must be a positive integer"),
        (dict(block_size=2.5), "block_size must be a positive integer"),
        (dict(n_layers=0), "n_layers"),
        (dict(d_ff=-1), "d_ff"),
        (dict(dropout=1.0), "dropout must be in [0, 1)"),
        (dict(positional="alibi"), "'learned' (GPT-2) or 'rope'"),
        (dict(norm="batch"), "'layer' (GPT-2) or 'rms'"),
        (dict(activation="tanh"), "activation"),
        (dict(positional="rope", d_model=12, n_heads=4), "must be even"),
        (dict(eps=0.0), "eps must be positive"),
        (dict(rope_base=1.0), "rope_base"),
    ],
)
def test_config_errors_are_clear(kw, message) -> None:
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        _config(**kw)


def test_gpt2_initialisation() -> None:
    torch.manual_seed(0)
    c = _config(d_model=128, n_layers=6, d_ff=512, vocab_size=500, block_size=256)
    m = GPT(c)
    residual = 0.02 / math.sqrt(2 * c.n_layers)
    for name, p in m.named_parameters():
        if name.endswith("bias"):
            assert torch.all(p == 0), name
        elif p.dim() == 1:
            assert torch.all(p == 1), name  # norm gains
        elif name.endswith(("out_proj.weight", "ffn.w2.weight")):
            assert abs(p.std().item() - residual) < 0.15 * residual, name
        else:
            assert abs(p.std().item() - 0.02) < 0.1 * 0.02, name
    assert m.lm_head.weight is m.tok_embed.weight  # tied
    untied = GPT(_config(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.tok_embed.weight


# ------------------------------------------------------------------------------------------
# forward, loss, causality, dtypes
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_forward_shape_causality_and_loss(recipe) -> None:
    m = _model(**RECIPES[recipe])
    ids = torch.randint(0, 29, (3, 12))
    with torch.no_grad():
        logits = m(ids)
        assert logits.shape == (3, 12, 29)
        changed = ids.clone()
        changed[:, 7] = (changed[:, 7] + 1) % 29
        moved = (m(changed) - logits).abs().amax(dim=(0, 2))
    assert moved[:7].max() < 1e-6 and moved[7:].min() > 1e-4  # the past never sees the future
    targets = torch.randint(0, 29, (3, 12))
    expected = F.cross_entropy(logits.reshape(-1, 29), targets.reshape(-1))
    with torch.no_grad():
        torch.testing.assert_close(m.loss(ids, targets), expected)
        torch.testing.assert_close(gpt_loss(m, (ids, targets)), expected)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_scratch_versions_compute_the_same(recipe) -> None:
    m = _model(**RECIPES[recipe])
    scratch = GPT(_config(**RECIPES[recipe], scratch=True)).eval()
    scratch.load_state_dict(m.state_dict())
    ids, targets = torch.randint(0, 29, (2, 10)), torch.randint(0, 29, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(scratch(ids), m(ids), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(scratch.loss(ids, targets), m.loss(ids, targets))
        m.set_scratch(True)
        torch.testing.assert_close(m(ids), scratch(ids), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtypes(dtype) -> None:
    m = _model(**MODERN).to(dtype)
    ids = torch.randint(0, 29, (2, 9))
    with torch.no_grad():
        out = m(ids)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    ref = _model(**MODERN)
    if dtype == torch.float64:
        with torch.no_grad():
            torch.testing.assert_close(out.float(), ref(ids), atol=1e-4, rtol=1e-4)


def test_input_errors() -> None:
    m = _model()
    with pytest.raises(ValueError, match="outside the vocabulary of size 29"):
        m(torch.tensor([[1, 2, 29]]))
    with pytest.raises(ValueError, match="integer"):
        m(torch.rand(1, 4))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        m(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="learned positions stop at block_size - 1 = 15"):
        m(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="shape of ids"):
        m.loss(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    # RoPE has no position table: longer inputs run (quality aside)
    rope = _model(**MODERN)
    with torch.no_grad():
        assert rope(torch.zeros(1, 40, dtype=torch.long)).shape == (1, 40, 29)


def test_training_reduces_the_loss() -> None:
    torch.manual_seed(0)
    m = GPT(_config(vocab_size=7, block_size=12))
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 6] * 4)
    x, y = pattern[:12][None].repeat(8, 1), pattern[1:13][None].repeat(8, 1)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = m.loss(x, y).item()
    for _ in range(60):
        opt.zero_grad()
        m.loss(x, y).backward()
        opt.step()
    assert m.loss(x, y).item() < 0.1 * first


# ------------------------------------------------------------------------------------------
# cached decoding (the CausalLM protocol)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_cached_steps_equal_the_full_forward(recipe) -> None:
    m = _model(**RECIPES[recipe])
    assert isinstance(m, CausalLM)
    assert m.context_length == 16
    ids = torch.randint(0, 29, (2, 13))
    with torch.no_grad():
        full = m(ids)
        cache = m.new_cache()
        assert isinstance(cache, GPTCache) and cache.length == 0
        pieces = [m.step(ids[:, :5], cache)]  # a prompt, then one token at a time, then 3 at once
        assert cache.length == 5
        pieces += [m.step(ids[:, t : t + 1], cache) for t in range(5, 10)]
        pieces.append(m.step(ids[:, 10:], cache))
        assert cache.length == 13
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(m.step(ids, None), full)
    n_kv = m.config.kv_heads
    assert cache.layers[0].k.shape == (2, n_kv, 13, m.config.head_dim)
    assert cache.nbytes() == 2 * m.config.n_layers * 2 * n_kv * 13 * m.config.head_dim * 4


def test_cache_reorder_and_crop() -> None:
    m = _model(**MODERN)
    ids = torch.randint(0, 29, (3, 6))
    with torch.no_grad():
        cache = m.new_cache()
        m.step(ids, cache)
        cache.reorder(torch.tensor([2, 2, 0]))
        nxt = torch.randint(0, 29, (3, 1))
        got = m.step(nxt, cache)[:, -1]
        want = m(torch.cat([ids[[2, 2, 0]], nxt], dim=1))[:, -1]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        cache.crop(4)
        assert cache.length == 4
        again = m.step(ids[[2, 2, 0], 4:], cache)
        torch.testing.assert_close(again, m(ids[[2, 2, 0]])[:, 4:], atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------
def _greedy_by_hand(m: GPT, ids: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        for _ in range(n):
            window = ids[:, -m.config.block_size :]
            ids = torch.cat([ids, m(window)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


@pytest.mark.parametrize("recipe", ["gpt2", "modern"])
def test_generation_cached_equals_uncached(recipe) -> None:
    m = _model(scale=4.0, **RECIPES[recipe])
    prompt = torch.randint(0, 29, (3, 4))
    greedy = generate(m, prompt, 10, temperature=0.0)
    assert torch.equal(greedy, generate(m, prompt, 10, temperature=0.0, use_cache=False))
    assert torch.equal(greedy, _greedy_by_hand(m, prompt, 10))
    assert torch.equal(greedy, generate(m, prompt, 10, top_k=1))  # top-k 1 is greedy
    for kw in (dict(), dict(temperature=0.7, top_k=5), dict(top_p=0.8, repetition_penalty=1.3)):
        a = generate(m, prompt, 10, generator=torch.Generator().manual_seed(3), **kw)
        b = generate(
            m, prompt, 10, generator=torch.Generator().manual_seed(3), use_cache=False, **kw
        )
        assert torch.equal(a, b), kw
    assert m.training is False


@pytest.mark.parametrize("recipe", ["gpt2", "modern"])
def test_generation_slides_past_the_block_size(recipe) -> None:
    m = _model(scale=4.0, **RECIPES[recipe])
    prompt = torch.randint(0, 29, (2, 5))
    n = 3 * m.config.block_size  # far beyond the 16 learned positions
    cached = generate(m, prompt, n, temperature=0.0)
    assert cached.shape == (2, 5 + n)
    assert torch.equal(cached, generate(m, prompt, n, temperature=0.0, use_cache=False))
    assert torch.equal(cached, _greedy_by_hand(m, prompt, n))  # always the last 16 tokens
    sampled = generate(m, prompt, n, generator=torch.Generator().manual_seed(0))
    again = generate(m, prompt, n, generator=torch.Generator().manual_seed(0), use_cache=False)
    assert torch.equal(sampled, again)


def _next_token_probs(m: GPT, prompt: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(m(prompt)[0, -1].double(), -1)


def test_top_k_and_top_p_never_sample_outside_their_sets() -> None:
    """Statistical test: 4,000 draws of the next token from one prompt."""
    m = _model(scale=2.0)
    prompt = torch.randint(0, 29, (1, 6))
    probs = _next_token_probs(m, prompt)
    order = probs.argsort(descending=True)
    n = 4000
    batch = prompt.repeat(n, 1)
    for kind, kept in [
        ("top_k", order[:5]),
        ("top_p", order[: int((probs[order].cumsum(0) < 0.7).sum()) + 1]),
    ]:
        kw = {"top_k": 5} if kind == "top_k" else {"top_p": 0.7}
        drawn = generate(m, batch, 1, generator=torch.Generator().manual_seed(1), **kw)[:, -1]
        counts = torch.bincount(drawn, minlength=29).double()
        outside = torch.ones(29, dtype=torch.bool)
        outside[kept] = False
        assert counts[outside].sum() == 0, kind  # never outside the set
        assert (counts[kept] > 0).all(), kind  # and every member of the set is drawn
        renorm = probs[kept] / probs[kept].sum()
        chi2 = ((counts[kept] - n * renorm) ** 2 / (n * renorm)).sum().item()
        # chi-square with len(kept) - 1 degrees of freedom: far below the 1e-4 tail
        assert chi2 < 30 + 3 * len(kept), (kind, chi2)
    # plain sampling (temperature 1) follows the model's distribution
    drawn = generate(m, batch, 1, generator=torch.Generator().manual_seed(2))[:, -1]
    freq = torch.bincount(drawn, minlength=29).double() / n
    assert (freq - probs).abs().max() < 0.035


def test_low_temperature_and_repetition_penalty() -> None:
    m = _model(scale=4.0)
    prompt = torch.randint(0, 29, (4, 3))
    greedy = generate(m, prompt, 12, temperature=0.0)
    cold = generate(m, prompt, 12, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(greedy, cold)
    penalised = generate(m, prompt, 12, temperature=0.0, repetition_penalty=50.0)

    def repeats(ids: torch.Tensor) -> int:
        return sum(len(row) - len(set(row)) for row in ids[:, 3:].tolist())

    assert repeats(penalised) < repeats(greedy)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_host_device_sync_on_cuda() -> None:  # pragma: no cover - GPU only
    m = _model(**MODERN).cuda().train()
    ids = torch.randint(0, 29, (2, 12), device="cuda")
    m.loss(ids, ids)  # warm-up (kernel selection may synchronise)
    torch.cuda.set_sync_debug_mode("error")
    try:
        m.loss(ids, ids).backward()
        with torch.no_grad():
            cache = m.new_cache()
            m.step(ids, cache)
            m.step(ids[:, :1], cache)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_dropout_sits_where_gpt2_puts_it() -> None:
    m = GPT(_config(dropout=0.1))
    block = m.blocks.layers[0]
    assert m.embed_dropout.p == 0.1  # on the embeddings
    assert block.self_attn.dropout == 0.1  # on the attention weights
    assert block.dropout.p == 0.1  # on each residual branch
    assert block.ffn.dropout.p == 0.0  # not between the FFN's two matrices
    ids = torch.randint(0, 29, (2, 8))
    m.train()
    assert not torch.equal(m(ids), m(ids))  # dropout is active in training
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(ids), m(ids))
