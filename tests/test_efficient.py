"""coursekit.efficient: KV-cache sizing, LoRA, int8 / 4-bit weights, pruning, checkpointing."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from coursekit.attention import MultiHeadAttention, scaled_dot_product_attention
from coursekit.efficient import (
    Int4Linear,
    Int8Linear,
    LoRALinear,
    ParameterCount,
    apply_lora,
    apply_masks_,
    checkpoint_blocks,
    dequantize_4bit,
    dequantize_int8,
    head_importance,
    kv_cache_bytes,
    lora_parameter_count,
    magnitude_prune_,
    merge_lora,
    model_size_bytes,
    prune_heads_,
    quantize_4bit,
    quantize_int8,
    quantize_model_4bit,
    quantize_model_int8,
    sparsity,
)
from coursekit.layers import TransformerBlock
from coursekit.models import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _gpt(dtype=torch.float32, seed=0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=48, block_size=16, n_layers=2, n_heads=4, d_model=32)
    cfg.update(overrides)
    return GPT(GPTConfig(**cfg)).to(dtype).eval()


def _ids(b=2, t=12, vocab=48, seed=1) -> torch.Tensor:
    return torch.randint(0, vocab, (b, t), generator=torch.Generator().manual_seed(seed))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


# --------------------------------------------------------------------------------------------
# KV-cache sizing
# --------------------------------------------------------------------------------------------
def test_kv_cache_bytes_llama_sizes():
    # LLaMA-2-7B: 32 layers x 32 KV heads x 128, 4096 tokens, fp16: 2 * 32 * 32 * 128 * 4096 * 2
    seven_b = kv_cache_bytes(n_layers=32, n_kv_heads=32, head_dim=128, seq_len=4096)
    assert seven_b == 2 * 32 * 32 * 128 * 4096 * 2 == 2**31 == 2 * 2**30  # 2 GiB
    # LLaMA-2-70B with GQA: 80 layers x 8 KV heads x 128
    seventy_b = kv_cache_bytes(n_layers=80, n_kv_heads=8, head_dim=128, seq_len=4096)
    assert seventy_b == 2 * 80 * 8 * 128 * 4096 * 2 == 1_342_177_280 == int(1.25 * 2**30)
    # linear in batch and bytes per value
    assert (
        kv_cache_bytes(
            n_layers=80, n_kv_heads=8, head_dim=128, seq_len=4096, batch_size=3, bytes_per_value=4
        )
        == 6 * seventy_b
    )
    assert kv_cache_bytes(n_layers=1, n_kv_heads=1, head_dim=3, seq_len=1, bytes_per_value=0.5) == 3


def test_kv_cache_bytes_matches_a_gpt_cache():
    model = _gpt(n_kv_heads=2)
    ids = _ids(b=3, t=7)
    cache = model.new_cache()
    with torch.no_grad():
        model.step(ids, cache)
    c = model.config
    expected = kv_cache_bytes(
        n_layers=c.n_layers,
        n_kv_heads=c.kv_heads,
        head_dim=c.head_dim,
        seq_len=7,
        batch_size=3,
        bytes_per_value=4,
    )
    assert cache.nbytes() == expected


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_layers=0),
        dict(n_kv_heads=-1),
        dict(head_dim=2.0),
        dict(seq_len=True),
        dict(batch_size=0),
        dict(bytes_per_value=0),
        dict(bytes_per_value=-2),
        dict(bytes_per_value=math.inf),
    ],
)
def test_kv_cache_bytes_rejects_non_positive(bad):
    kwargs = dict(n_layers=2, n_kv_heads=2, head_dim=4, seq_len=8) | bad
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        kv_cache_bytes(**kwargs)


# --------------------------------------------------------------------------------------------
# LoRA
# --------------------------------------------------------------------------------------------
def test_lora_linear_starts_equal_to_base_and_has_the_right_shapes():
    torch.manual_seed(0)
    base = nn.Linear(20, 12)
    lora = LoRALinear(base, rank=4, alpha=8)
    x = torch.randn(3, 5, 20)
    assert torch.equal(lora(x), base(x))
    assert lora.lora_a.shape == (4, 20) and lora.lora_b.shape == (12, 4)
    assert lora.scale == 2.0 and LoRALinear(nn.Linear(20, 12), rank=4).scale == 1.0
    assert torch.count_nonzero(lora.lora_b) == 0
    bound = 1 / math.sqrt(20)
    assert lora.lora_a.abs().max() <= bound and lora.lora_a.std() > bound / 4  # U(-b, b)
    assert not any(p.requires_grad for p in base.parameters())
    assert lora.lora_a.requires_grad and lora.lora_b.requires_grad
    assert lora.lora_a.dtype == base.weight.dtype


def test_lora_linear_forward_formula_and_effective_weight():
    torch.manual_seed(0)
    base = nn.Linear(10, 6).double()
    lora = LoRALinear(base, rank=3, alpha=6)
    with torch.no_grad():
        lora.lora_b.normal_()
    x = torch.randn(4, 10, dtype=torch.float64)
    a, b = lora.lora_a, lora.lora_b
    expected = x @ base.weight.T + base.bias + 2.0 * (x @ a.T) @ b.T
    torch.testing.assert_close(lora(x), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(lora.weight, base.weight + 2.0 * b @ a, rtol=0, atol=1e-12)
    lora(x).sum().backward()
    assert base.weight.grad is None and a.grad is not None and b.grad is not None


def test_lora_rank_zero_and_other_bad_arguments():
    base = nn.Linear(8, 4)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(base, rank=0)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(base, rank=-2)
    with pytest.raises(ValueError, match="exceeds min"):
        LoRALinear(base, rank=5)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(base, rank=2, alpha=0)
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(8, 4, 1), rank=2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="already has LoRA"):
        LoRALinear(LoRALinear(base, rank=2), rank=2)  # type: ignore[arg-type]


def test_apply_lora_wraps_by_suffix_and_trains_only_lora():
    model = _gpt()
    ids = _ids()
    with torch.no_grad():
        before = model(ids)
    n_total = sum(p.numel() for p in model.parameters())
    apply_lora(model, ["qkv_proj", "self_attn.out_proj"], rank=2)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert wrapped == [
        f"blocks.layers.{i}.self_attn.{p}" for i in range(2) for p in ("qkv_proj", "out_proj")
    ]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.lora_{ab}" for n in wrapped for ab in "ab"}
    d = 32
    lora_params = 2 * (2 * (d + 3 * d) + 2 * (d + d))  # 2 blocks x rank 2 x (in + out)
    count = lora_parameter_count(model)
    assert isinstance(count, ParameterCount)
    assert count == (lora_params, n_total + lora_params)
    assert count.share == pytest.approx(lora_params / (n_total + lora_params))
    assert "trainable" in str(count)
    with torch.no_grad():
        assert torch.equal(model(ids), before)  # B = 0: the adapted model starts as the base


def test_apply_lora_errors_name_the_problem():
    model = _gpt()
    with pytest.raises(ValueError, match=r"'q_proj'.*'qkv_proj'"):
        apply_lora(model, ["qkv_proj", "q_proj"], rank=2)
    with pytest.raises(ValueError, match="'proj'"):  # suffixes are whole name components
        apply_lora(model, "proj", rank=2)
    with pytest.raises(ValueError, match="MultiHeadAttention, not an nn.Linear"):
        apply_lora(model, "self_attn", rank=2)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # nothing half-done
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="rank"):
        apply_lora(model, "qkv_proj", rank=0)
    apply_lora(model, "ffn.w1", rank=2)
    with pytest.raises(ValueError, match="merge_lora"):
        apply_lora(model, "w1", rank=2)


def _train_a_little(model: nn.Module, ids: torch.Tensor, steps: int = 3) -> None:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(ids[:, :-1], ids[:, 1:]).backward()  # type: ignore[operator]
        opt.step()
    model.eval()


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_merge_lora_gives_the_same_outputs(dtype, tol):
    model = _gpt(dtype)
    ids = _ids()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    keys = list(model.state_dict())
    apply_lora(model, ["qkv_proj", "out_proj", "w1", "w2"], rank=4, alpha=8)
    _train_a_little(model, ids)
    for n, p in model.named_parameters():  # only the updates moved
        if "lora_" not in n:
            assert torch.equal(p, frozen[n.replace(".base", "")])
    with torch.no_grad():
        adapted = model(ids)
        assert not torch.allclose(adapted, _gpt(dtype)(ids))  # training changed something
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert isinstance(model.blocks.layers[0].self_attn.qkv_proj, nn.Linear)
    assert list(model.state_dict()) == keys  # the original layout again
    with torch.no_grad():
        torch.testing.assert_close(model(ids), adapted, rtol=0, atol=tol)


def test_merge_lora_of_a_tied_head_leaves_the_embedding_alone():
    model = _gpt()
    embed = model.tok_embed.weight.detach().clone()
    apply_lora(model, "lm_head", rank=2)
    with torch.no_grad():
        model.lm_head.lora_b.normal_()
        adapted = model(_ids())
    merge_lora(model)
    assert torch.equal(model.tok_embed.weight, embed)
    with torch.no_grad():
        torch.testing.assert_close(model(_ids()), adapted, rtol=0, atol=1e-5)


def test_lora_on_cross_attention_uses_the_effective_weight():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4).double()
    x, ctx = torch.randn(2, 5, 16).double(), torch.randn(2, 7, 16).double()
    apply_lora(attn, "qkv_proj", rank=2)
    with torch.no_grad():
        attn.qkv_proj.lora_b.normal_()
        adapted = attn(x, ctx)
        merged = merge_lora(copy.deepcopy(attn))(x, ctx)
    torch.testing.assert_close(adapted, merged, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# int8
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_int8_round_trip_error_bound(dtype):
    torch.manual_seed(0)
    w = (torch.randn(24, 40) * torch.logspace(-3, 1, 24).unsqueeze(1)).to(dtype)
    w[5] = 0.0  # a row of zeros
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape
    assert scale.shape == (24, 1) and scale.dtype == dtype
    assert q.abs().max() <= 127 and (q.abs().amax(dim=1)[scale.squeeze(1) != 1] >= 126).all()
    assert scale[5].item() == 1 and torch.count_nonzero(q[5]) == 0
    deq = dequantize_int8(q, scale)
    assert deq.dtype == dtype and torch.isfinite(deq).all()
    err = (w.double() - q.double() * scale.double()).abs()
    slack = 1 + (1e-12 if dtype == torch.float64 else 1e-5)
    assert (err <= scale.double() / 2 * slack).all()


def test_int8_errors():
    with pytest.raises(TypeError, match="floating-point"):
        quantize_int8(torch.ones(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="2-D"):
        quantize_int8(torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        quantize_int8(torch.tensor([[1.0, math.nan]]))
    q, scale = quantize_int8(torch.randn(4, 6))
    with pytest.raises(ValueError, match="one per row"):
        dequantize_int8(q, scale.squeeze(1))


def test_int8_linear_matches_and_stores_one_byte_per_weight():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    q8 = Int8Linear.from_linear(lin)
    x = torch.randn(5, 64)
    assert _rel(q8(x), lin(x)) < 1e-2
    assert q8.weight_q.dtype == torch.int8 and not list(q8.parameters())
    assert set(q8.state_dict()) == {"weight_q", "weight_scale", "bias"}
    assert model_size_bytes(q8) == 32 * 64 + 32 * 4 + 32 * 4
    assert model_size_bytes(lin) == (32 * 64 + 32) * 4
    restored = Int8Linear(64, 32)
    restored.load_state_dict(q8.state_dict())
    assert torch.equal(restored(x), q8(x))


def _linear_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def test_quantized_gpt_int8_is_four_times_smaller_and_close():
    model = _gpt(d_model=384, vocab_size=32, block_size=8, n_layers=2, n_heads=6)
    ids = _ids(t=8, vocab=32)
    with torch.no_grad():
        ref = model(ids)
    f32 = model_size_bytes(model)
    quantize_model_int8(model)
    names = {n for n, m in model.named_modules() if isinstance(m, Int8Linear)}
    assert len(names) == 2 * 4
    assert isinstance(model.lm_head, nn.Linear)  # tied to the embedding: kept
    assert model.lm_head.weight is model.tok_embed.weight
    ratio = f32 / model_size_bytes(model)
    assert ratio == pytest.approx(4.0, rel=0.05), ratio
    with torch.no_grad():
        out = model(ids)
    assert torch.isfinite(out).all()
    assert _rel(out, ref) < 0.05


def test_quantize_model_int8_skip_and_untied_head():
    model = _gpt(tie_embeddings=False)
    quantize_model_int8(model, skip=["w2", "lm_head"])
    kinds = {n: type(m).__name__ for n, m in model.named_modules()}
    assert kinds["blocks.layers.1.ffn.w2"] == "Linear" and kinds["lm_head"] == "Linear"
    assert kinds["blocks.layers.1.ffn.w1"] == "Int8Linear"
    untied = quantize_model_int8(_gpt(tie_embeddings=False))
    assert isinstance(untied.lm_head, Int8Linear)
    assert isinstance(quantize_model_int8(nn.Linear(4, 4)), Int8Linear)


# --------------------------------------------------------------------------------------------
# 4 bits
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("group_size", [8, 32])
def test_4bit_round_trip_error_bound(dtype, group_size):
    torch.manual_seed(0)
    w = (torch.randn(6, 64) * torch.logspace(-2, 1, 64)).to(dtype)
    w[2, :group_size] = 0.0  # an all-zero group
    packed, scale = quantize_4bit(w, group_size=group_size)
    assert packed.dtype == torch.uint8 and packed.shape == (6, 32)
    assert scale.shape == (6, 64 // group_size) and scale.dtype == dtype
    assert scale[2, 0].item() == 1
    deq = dequantize_4bit(packed, scale)
    assert deq.shape == w.shape and deq.dtype == dtype and torch.isfinite(deq).all()
    err = (w - deq).abs().reshape(6, -1, group_size)
    slack = 1 + (1e-12 if dtype == torch.float64 else 1e-5)
    assert (err <= scale.unsqueeze(-1) / 2 * slack).all()
    # all 16 levels are in use
    levels = torch.cat([packed & 0x0F, packed >> 4]).unique()
    assert levels.numel() == 16


def test_4bit_packing_layout():
    # largest magnitude 7.5: scale 1, so the values are (nearly) the levels themselves
    w = torch.tensor([[-7.5, -7.0, 3.0, 7.0, 0.0, -1.0, 2.0, 1.0]])
    packed, scale = quantize_4bit(w, group_size=8)
    assert scale.item() == 1.0
    # levels + 8: [0.5->0 (round half to even: -7.5 -> -8), 1, 11, 15, 8, 7, 10, 9]
    low, high = packed & 0x0F, packed >> 4
    assert low.tolist() == [[0, 11, 8, 10]] and high.tolist() == [[1, 15, 7, 9]]
    assert dequantize_4bit(packed, scale).tolist() == [[-8, -7, 3, 7, 0, -1, 2, 1]]


def test_4bit_errors():
    with pytest.raises(ValueError, match="multiple of group_size=64"):
        quantize_4bit(torch.randn(4, 96), group_size=64)
    with pytest.raises(ValueError, match="even"):
        quantize_4bit(torch.randn(4, 9), group_size=3)
    packed, scale = quantize_4bit(torch.randn(4, 32), group_size=16)
    with pytest.raises(ValueError, match="groups"):
        dequantize_4bit(packed, scale[:, :1].repeat(1, 3))
    model = _gpt(d_model=48, n_heads=4)  # w2 has in_features 192 = 3 x 64; others 48
    with pytest.raises(ValueError, match=r"blocks\.layers\.0\.self_attn\.qkv_proj.*in_features=48"):
        quantize_model_4bit(model, group_size=32)
    assert not any(isinstance(m, Int4Linear) for m in model.modules())  # unchanged
    quantize_model_4bit(model, group_size=16)
    assert sum(isinstance(m, Int4Linear) for m in model.modules()) == 8


def test_quantized_gpt_4bit_is_about_eight_times_smaller_and_close():
    model = _gpt(d_model=384, vocab_size=32, block_size=8, n_layers=2, n_heads=6)
    ids = _ids(t=8, vocab=32)
    with torch.no_grad():
        ref = model(ids)
    f32 = model_size_bytes(model)
    n_lin = _linear_weights(model) - model.lm_head.weight.numel()  # the tied head stays
    quantize_model_4bit(model, group_size=64)
    q4 = model_size_bytes(model)
    # 4 bits per weight plus one float32 scale per 64 weights: 4.5 bits, the rest unchanged
    expected = f32 - n_lin * 4 + n_lin // 2 + (n_lin // 64) * 4
    assert q4 == expected
    assert f32 / q4 > 6.5  # ~32 / 4.5 = 7.1 on the linear layers
    layer = Int4Linear.from_linear(nn.Linear(256, 128, bias=False), group_size=128)
    assert (128 * 256 * 4) / model_size_bytes(layer) == pytest.approx(32 / 4.25)
    with torch.no_grad():
        out = model(ids)
    assert torch.isfinite(out).all()
    assert _rel(out, ref) < 0.3  # round-to-nearest 4 bits on random Gaussian weights


# --------------------------------------------------------------------------------------------
# pruning
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [0.0, 0.3, 0.5, 0.9])
def test_magnitude_prune_per_layer_hits_the_sparsity(target):
    model = _gpt()
    achieved = magnitude_prune_(model, target)
    layers = [
        m
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n != "lm_head"  # tied to the embedding: left alone
    ]
    total = sum(m.weight.numel() for m in layers)
    for m in layers:
        assert int((m.weight == 0).sum()) == round(target * m.weight.numel())
        assert int((~m.weight_keep).sum()) == round(target * m.weight.numel())
    assert abs(achieved - target) * total <= len(layers) / 2
    assert sparsity(model) == pytest.approx(achieved)
    assert torch.count_nonzero(model.tok_embed.weight) == model.tok_embed.weight.numel()


def test_magnitude_prune_removes_the_smallest_weights():
    torch.manual_seed(0)
    lin = nn.Linear(50, 40)
    original = lin.weight.detach().clone()
    achieved = magnitude_prune_(lin, 0.37)
    n = original.numel()
    assert achieved == round(0.37 * n) / n and sparsity(lin) == achieved
    pruned = lin.weight_keep == 0
    assert original[pruned].abs().max() <= original[~pruned].abs().min()
    assert torch.equal(lin.weight[~pruned], original[~pruned])
    assert "weight_keep" not in lin.state_dict()


def test_magnitude_prune_global_scope():
    model = _gpt()
    names = ["qkv_proj", "w2"]
    before = {
        n: m.weight.detach().clone()
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n.endswith(("qkv_proj", "w2"))
    }
    achieved = magnitude_prune_(model, 0.6, modules=names, scope="global")
    total = sum(w.numel() for w in before.values())
    assert achieved * total == round(0.6 * total)
    mods = dict(model.named_modules())
    pruned = torch.cat([w[mods[n].weight_keep == 0].abs() for n, w in before.items()])
    kept = torch.cat([w[mods[n].weight_keep].abs() for n, w in before.items()])
    assert pruned.max() <= kept.min()
    per_layer = {n: sparsity(mods[n]) for n in before}
    assert max(per_layer.values()) - min(per_layer.values()) > 0.05  # layers differ
    assert sparsity(model, modules=names) == pytest.approx(achieved)
    assert sparsity(model.blocks.layers[0].ffn.w1) == 0


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_magnitude_prune_rejects_sparsity_outside_0_1(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        magnitude_prune_(nn.Linear(4, 4), bad)


def test_magnitude_prune_other_errors():
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune_(nn.Linear(4, 4), 0.5, scope="model")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'nope'"):
        magnitude_prune_(_gpt(), 0.5, modules="nope")


def test_masks_survive_optimizer_steps():
    model = _gpt()
    ids = _ids()
    magnitude_prune_(model, 0.5)
    before = sparsity(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model.loss(ids[:, :-1], ids[:, 1:]).backward()
    opt.step()
    assert sparsity(model) < before  # the optimizer regrew the zeros ...
    apply_masks_(model)
    assert sparsity(model) == before  # ... and the masks zero them again


def _attention_without(attn: MultiHeadAttention, x, drop, *, is_causal=False):
    """The module's attention computed head by head, summing only the heads not in ``drop``."""
    q, k, v = attn.project(x)
    rep = attn.n_heads // attn.n_kv_heads
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    t = x.shape[1]
    mask = torch.ones(t, t, dtype=torch.bool).tril() if is_causal else None
    heads = scaled_dot_product_attention(q, k, v, mask)  # (B, H, T, d_head)
    out = attn.out_proj.bias.expand(*x.shape[:2], -1).clone()
    w = attn.out_proj.weight
    dh = attn.d_head
    for h in range(attn.n_heads):
        if h not in drop:
            out += heads[:, h] @ w[:, h * dh : (h + 1) * dh].T
    return out


@pytest.mark.parametrize("n_kv_heads, drop", [(4, [1, 3]), (2, [0, 1]), (2, [2]), (4, [])])
def test_prune_heads_equals_attention_without_them(n_kv_heads, drop):
    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 4, n_kv_heads=n_kv_heads).double()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    expected = _attention_without(attn, x, set(drop), is_causal=True)
    prune_heads_(attn, drop)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, is_causal=True), expected, rtol=0, atol=1e-12)
    assert attn.pruned_heads == set(drop)
    qkv = attn.qkv_proj.weight
    for h in drop:
        assert torch.count_nonzero(qkv[h * 8 : (h + 1) * 8]) == 0
        assert torch.count_nonzero(attn.out_proj.weight[:, h * 8 : (h + 1) * 8]) == 0
    kv_rows_zero = torch.count_nonzero(qkv[32:]) < qkv[32:].numel()
    assert kv_rows_zero == (n_kv_heads == 4 and bool(drop) or drop == [0, 1])


def test_pruned_heads_stay_pruned_and_score_zero():
    model = _gpt()
    attn = model.blocks.layers[1].self_attn
    prune_heads_(attn, [0])
    prune_heads_(attn, [2])
    assert attn.pruned_heads == {0, 2}
    ids = _ids()
    scores = head_importance(model, ids)
    assert set(scores) == {"blocks.layers.0.self_attn", "blocks.layers.1.self_attn"}
    s = scores["blocks.layers.1.self_attn"]
    assert s.shape == (4,) and s[0] == 0 and s[2] == 0 and (s[[1, 3]] > 0).all()
    assert (scores["blocks.layers.0.self_attn"] > 0).all()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model.loss(ids[:, :-1], ids[:, 1:]).backward()
    opt.step()
    apply_masks_(model)
    assert head_importance(model.eval(), ids)["blocks.layers.1.self_attn"][[0, 2]].abs().max() == 0


def test_prune_heads_errors():
    attn = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match=r"heads 0\.\.3"):
        prune_heads_(attn, [4])
    with pytest.raises(ValueError, match="out of range"):
        prune_heads_(attn, [-1])
    with pytest.raises(TypeError, match="MultiHeadAttention"):
        prune_heads_(nn.Linear(4, 4), [0])  # type: ignore[arg-type]
    apply_lora(attn, "qkv_proj", rank=2)
    with pytest.raises(TypeError, match="merge_lora"):
        prune_heads_(attn, [0])


# --------------------------------------------------------------------------------------------
# activation checkpointing
# --------------------------------------------------------------------------------------------
def _grads(model: GPT, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(123)  # the same dropout masks in both runs
    model.loss(ids[:, :-1], ids[:, 1:]).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_checkpointing_gives_equal_gradients_and_recomputes():
    model = _gpt(dropout=0.1).train()
    ids = _ids()
    keys = list(model.state_dict())
    plain = _grads(model, ids)
    calls = []
    model.blocks.layers[0].ffn.register_forward_hook(lambda *_: calls.append(1))
    _grads(model, ids)
    assert len(calls) == 1
    checkpoint_blocks(model)
    assert list(model.state_dict()) == keys
    calls.clear()
    checked = _grads(model, ids)
    assert len(calls) == 2  # the forward, then its recomputation in the backward pass
    for n in plain:
        torch.testing.assert_close(checked[n], plain[n], rtol=0, atol=1e-6)
    calls.clear()
    with torch.no_grad():
        model.eval()(ids)
    assert len(calls) == 1
    checkpoint_blocks(model, enabled=False)
    assert all(
        "forward" not in b.__dict__ for b in model.modules() if isinstance(b, TransformerBlock)
    )
    calls.clear()
    _grads(model.train(), ids)
    assert len(calls) == 1


def test_checkpointing_leaves_cached_decoding_and_copies_alone():
    model = checkpoint_blocks(_gpt().train())
    ids = _ids(t=6)
    cache = model.new_cache()
    out = model.step(ids[:, :4], cache)
    out = torch.cat([out, model.step(ids[:, 4:], cache)], dim=1)
    torch.testing.assert_close(out, model(ids), rtol=0, atol=1e-5)
    twin = copy.deepcopy(model)
    block = twin.blocks.layers[0]
    assert block.forward.__self__ is block  # bound to the copy, not the original
    with pytest.raises(ValueError, match="no TransformerBlock"):
        checkpoint_blocks(nn.Linear(3, 3))
