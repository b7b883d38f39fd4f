"""coursekit.train.optim: AdamW with weight decay on matrices only, fused where available."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from coursekit.train.optim import make_optimizer, param_groups

pytestmark = pytest.mark.usefixtures("one_thread")


class _Small(nn.Module):
    """Embedding tied to the output projection, a linear layer with bias, a LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(13, 8)
        self.mix = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.out = nn.Linear(8, 13, bias=False)
        self.out.weight = self.emb.weight
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(torch.tanh(self.mix(self.emb(ids)))))


def _ids(groups) -> list[set[int]]:
    return [{id(p) for p in g["params"]} for g in groups]


def test_groups_split_matrices_from_vectors_tied_once_frozen_left_out() -> None:
    model = _Small()
    decay, no_decay = param_groups(model, weight_decay=0.1)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    assert _ids([decay]) == [{id(model.emb.weight), id(model.mix.weight)}]
    assert _ids([no_decay]) == [{id(model.mix.bias), id(model.norm.weight), id(model.norm.bias)}]
    all_ids = [id(p) for g in (decay, no_decay) for p in g["params"]]
    assert len(all_ids) == len(set(all_ids)) == 5  # the tied matrix once, frozen ones out
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(model, weight_decay=-1.0)


def test_make_optimizer_groups_and_defaults() -> None:
    model = _Small()
    opt = make_optimizer(model, lr=3e-3, weight_decay=0.05, betas=(0.9, 0.95), eps=1e-6)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["lr"] == 3e-3 and g["betas"] == (0.9, 0.95) for g in opt.param_groups)
    assert _ids(opt.param_groups) == _ids(param_groups(model, weight_decay=0.05))
    assert opt.defaults["fused"] or opt.defaults["foreach"]
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer(nn.Linear(2, 2).requires_grad_(False), lr=1e-3)


def test_steps_and_decays_only_the_matrices() -> None:
    model = _Small()
    opt = make_optimizer(model, lr=0.1, weight_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradients: only the decoupled decay moves weights
    opt.step()
    for name, p in model.named_parameters():
        decayed = p.requires_grad and p.dim() >= 2
        expected = before[name] * (1 - 0.05) if decayed else before[name]
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7)
    ids = torch.randint(0, 13, (4, 6))
    loss = model(ids).logsumexp(-1).mean()
    loss.backward()
    opt.step()
    assert not torch.equal(model.mix.bias.detach(), before["mix.bias"])


def test_fused_matches_foreach() -> None:
    """The fused kernel (used where available, CPU included) agrees with foreach to ~1e-6."""
    torch.manual_seed(0)
    model = _Small()
    fused_opt = make_optimizer(model, lr=1e-2, weight_decay=0.1)
    if not fused_opt.defaults.get("fused"):
        pytest.skip("this PyTorch has no fused AdamW for CPU")
    twin = copy.deepcopy(model)
    foreach_opt = torch.optim.AdamW(
        param_groups(twin, weight_decay=0.1), lr=1e-2, foreach=True, fused=False
    )
    ids = torch.randint(0, 13, (4, 6), generator=torch.Generator().manual_seed(1))
    for _ in range(20):
        for m, opt in ((model, fused_opt), (twin, foreach_opt)):
            opt.zero_grad()
            m(ids).logsumexp(-1).mean().backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_falls_back_to_foreach_where_fused_is_refused(monkeypatch) -> None:
    real = torch.optim.AdamW

    def no_fused(*args, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be ...")
        return real(*args, fused=fused, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    opt = make_optimizer(_Small(), lr=1e-3)
    assert opt.defaults["foreach"] and not opt.defaults["fused"]
