"""coursekit.distributed: data-parallel training with DDP (gloo on CPU), launched by torchrun.

The two multi-process tests start ``torchrun`` (2 workers + its agent) on 127.0.0.1 with a free
port, each launch bounded by a timeout that kills its whole process tree. The model is built
here from the package's one block, so these tests do not depend on ``coursekit.models.gpt``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from coursekit.distributed import (
    Task,
    TaskOptions,
    WindowSampler,
    launch_local,
    lm_loss,
    shard_batch,
    train_data_parallel,
)
from coursekit.layers import BlockConfig, TransformerBlock
from coursekit.train import TrainConfig
from coursekit.train.checkpoints import load_checkpoint, read_checkpoint_meta

THIS_FILE = Path(__file__).resolve()
LAUNCH_TIMEOUT_S = 100.0

# one run configuration, shared by the 2-process runs and the 1-process reference
OPTIONS = TaskOptions(
    data="random",
    vocab_size=17,
    n_tokens=4000,
    block_size=12,
    n_layers=1,
    n_heads=2,
    d_model=16,
    d_ff=32,
    global_batch_size=8,
    seed=3,
    dtype="float64",
)
STEPS, ACCUMULATION, LR = 8, 2, 3e-3
CLI_ARGS = [
    "--task", f"{THIS_FILE}:make_task", "--device", "cpu", "--backend", "gloo",
    "--data", OPTIONS.data, "--vocab-size", str(OPTIONS.vocab_size),
    "--n-tokens", str(OPTIONS.n_tokens), "--block-size", str(OPTIONS.block_size),
    "--n-layers", str(OPTIONS.n_layers), "--n-heads", str(OPTIONS.n_heads),
    "--d-model", str(OPTIONS.d_model), "--d-ff", str(OPTIONS.d_ff),
    "--global-batch-size", str(OPTIONS.global_batch_size), "--seed", str(OPTIONS.seed),
    "--dtype", OPTIONS.dtype, "--steps", str(STEPS), "--lr", str(LR),
    "--accumulation-steps", str(ACCUMULATION), "--log-every", "2", "--timeout", "30",
]  # fmt: skip


class TinyLM(nn.Module):
    """Token + position embeddings, one causal TransformerBlock, a final norm and a head."""

    def __init__(self, o: TaskOptions) -> None:
        super().__init__()
        assert o.d_ff is not None
        self.tok = nn.Embedding(o.vocab_size, o.d_model)
        self.pos = nn.Embedding(o.block_size, o.d_model)
        self.block = TransformerBlock(
            BlockConfig(d_model=o.d_model, n_heads=o.n_heads, d_ff=o.d_ff)
        )
        self.norm = nn.LayerNorm(o.d_model)
        self.head = nn.Linear(o.d_model, o.vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids ``(B, T)`` -> logits ``(B, T, V)``."""
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        return self.head(self.norm(self.block(x, is_causal=True)))


def make_task(options: TaskOptions) -> Task:
    """The ``--task`` factory the workers load from this file."""
    g = torch.Generator().manual_seed(options.seed + 1)
    ids = torch.randint(options.vocab_size, (options.n_tokens,), generator=g)
    torch.manual_seed(options.seed)
    model = TinyLM(options).to(getattr(torch, options.dtype))
    sampler = WindowSampler(ids, options.block_size, options.global_batch_size, seed=options.seed)
    return Task(model, lm_loss, sampler, {"task": "tiny-test", "options": options.to_dict()})


def _config(steps: int = STEPS) -> TrainConfig:
    return TrainConfig(
        steps=steps, lr=LR, accumulation_steps=ACCUMULATION, log_every=2, progress=False
    )


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    """Parameters after STEPS steps of one process on the same global batches."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = make_task(OPTIONS)
        history = train_data_parallel(
            task.model, task.get_batch, task.loss_fn, _config(), seed=OPTIONS.seed, log=None
        )
    finally:
        torch.set_num_threads(before)
    assert history.steps == list(range(1, STEPS + 1))
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


def _load_params(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    model = make_task(OPTIONS).model
    ckpt = load_checkpoint(path, model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, ckpt.step


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# --------------------------------------------------------------------------------------------
# batches: fast, single process
# --------------------------------------------------------------------------------------------
def test_shards_of_a_global_batch_put_together_give_the_batch() -> None:
    ids = torch.arange(1000)
    sampler = WindowSampler(ids, 8, 12, seed=5)
    x, y = sampler(7)
    assert x.shape == y.shape == (12, 8)
    assert torch.equal(y[:, :-1], x[:, 1:])  # next-token targets
    for world in (2, 3, 4):
        parts = [sampler(7, rank, world) for rank in range(world)]
        assert torch.equal(torch.cat([p[0] for p in parts]), x)
        assert torch.equal(torch.cat([p[1] for p in parts]), y)
    assert not torch.equal(sampler(8)[0], x)  # another step, another batch
    assert torch.equal(WindowSampler(ids, 8, 12, seed=5)(7)[0], x)  # from (seed, step) alone


def test_shard_batch_handles_structures_and_rejects_uneven_splits() -> None:
    batch = {"x": torch.arange(6).view(6, 1), "n": 3, "pair": (torch.arange(6), torch.ones(6))}
    shard = shard_batch(batch, 1, 3)
    assert shard["x"].flatten().tolist() == [2, 3] and shard["n"] == 3
    assert shard["pair"][0].tolist() == [2, 3]
    with pytest.raises(ValueError, match="multiple of 4"):
        shard_batch(torch.arange(6), 0, 4)
    with pytest.raises(ValueError, match="rank"):
        shard_batch(torch.arange(6), 2, 2)


# --------------------------------------------------------------------------------------------
# two processes (torchrun, gloo)
# --------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_processes_match_one_process_on_the_same_global_batch(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    ckpt = tmp_path / "ddp.safetensors"
    run = launch_local(2, [*CLI_ARGS, "--checkpoint", str(ckpt)], timeout_s=LAUNCH_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-4000:]
    assert "2 process(es), gloo" in run.stdout
    assert "[rank 1]" not in run.stdout  # rank 0 alone logs
    params, step = _load_params(ckpt)
    assert step == STEPS
    error = _max_diff(params, reference)
    print(f"max |2-process - 1-process| parameter difference after {STEPS} steps: {error:.2e}")
    assert error < 1e-6
    # the run really trained (the parameters moved)
    initial = {k: v.detach() for k, v in make_task(OPTIONS).model.state_dict().items()}
    assert _max_diff(params, initial) > 1e-3


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_worker_fails_the_run_and_it_resumes_from_the_checkpoint(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    ckpt = tmp_path / "ddp.safetensors"
    args = [*CLI_ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", "3", "--resume"]
    # rank 1 dies (SIGKILL) after step 5: torchrun sees it, stops rank 0, and fails
    crashed = launch_local(2, [*args, "--fail-at", "1:5"], timeout_s=LAUNCH_TIMEOUT_S)
    assert crashed.returncode != 0, crashed.stdout[-4000:]
    assert "simulated crash after step 5" in crashed.stdout
    assert int(read_checkpoint_meta(ckpt)["step"]) == 3  # the last checkpoint, intact
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a new run with --resume continues from step 3 and ends where an uninterrupted run ends
    resumed = launch_local(2, args, timeout_s=LAUNCH_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    assert "resumed at step 3" in resumed.stdout
    params, step = _load_params(ckpt)
    assert step == STEPS
    error = _max_diff(params, reference)
    print(f"max |resumed - uninterrupted| parameter difference: {error:.2e}")
    assert error < 1e-6
