"""The package's GPT against ``transformers``' GPT2LMHeadModel, alternated in one process.

1. **Training step** (forward, backward, AdamW step) at nanoGPT's CPU configuration (4 blocks,
   4 heads, width 128, context 64, batch 12, vocabulary 65), plain eager float32, the same
   weights (converted with ``gpt_from_hf``), tokens, loss and optimizer, the same threads.
   Median over alternated rounds; ratio < 1 means coursekit is faster. ``--profile`` prints
   where coursekit's step spends its time (torch.profiler).
2. **The course's training path** at nanoGPT's configuration: ``coursekit.train.train`` with
   ``make_optimizer`` (fused AdamW where available), nanoGPT's schedule (warm-up 100, cosine
   1e-3 -> 1e-4, beta2 0.99, weight decay 0.1, clipping 1.0), evaluation every 250 iterations
   (20 batches) included in the wall time. Variants: GPT-2's recipe over 2,000 iterations; the
   modern recipe (RoPE, RMSNorm, SwiGLU, no biases, same sizes) over 2,000 and over 1,000
   iterations (the time to reach nanoGPT's 1.88); ``torch.compile`` of the loss; bf16 autocast
   where the CPU has native bf16 (else skipped). ``--train-steps 0`` skips this part.
3. **Model-FLOP utilisation** of the training step against a measured matmul rate.
4. **Generation** tokens per second, greedy, batch 1: coursekit with and without the KV cache
   against ``transformers``' ``generate`` (with its cache), same weights, 1,024 positions.

``python benchmarks/bench_gpt.py [--rounds 30] [--threads N] [--train-steps 2000] [--profile]``
writes ``results/gpt_train_step.json``, ``results/gpt_training_run.json`` and
``results/gpt_generation.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save_results  # noqa: E402

from coursekit.data import load_tiny_shakespeare, random_windows  # noqa: E402
from coursekit.generate import generate  # noqa: E402
from coursekit.hf.gpt import gpt_from_hf  # noqa: E402
from coursekit.models.gpt import GPT, GPTConfig, gpt_loss  # noqa: E402
from coursekit.scaling import flops_per_token  # noqa: E402
from coursekit.tokenize import CharTokenizer  # noqa: E402
from coursekit.train import TrainConfig, evaluate, make_optimizer, train  # noqa: E402

NANOGPT_CPU = dict(n_layer=4, n_head=4, n_embd=128, vocab_size=65, n_positions=64)
BATCH, BLOCK = 12, 64


def _alternate(fns: dict[str, object], rounds: int, warmup: int = 5) -> dict[str, float]:
    """Median seconds per call of each function, calls alternated round by round."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()  # type: ignore[operator]
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def _hf_gpt2(attn: str, **overrides: object):
    import transformers

    transformers.logging.set_verbosity_error()
    cfg = dict(NANOGPT_CPU, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0,
               bos_token_id=None, eos_token_id=None, attn_implementation=attn)  # fmt: skip
    cfg.update(overrides)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg))


def _tokens(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 65, (BATCH, BLOCK), generator=g)
    return x, torch.randint(0, 65, (BATCH, BLOCK), generator=g)


# ------------------------------------------------------------------------------------------
# 1. training step
# ------------------------------------------------------------------------------------------
def bench_train_step(rounds: int, profile: bool) -> list[dict[str, object]]:
    x, y = _tokens()
    rows = []
    for attn in ("sdpa", "eager"):
        torch.manual_seed(0)
        ref = _hf_gpt2(attn).train()
        ours = gpt_from_hf(ref).train()
        with torch.no_grad():
            gap = (ours.loss(x, y) - F.cross_entropy(ref(x).logits.view(-1, 65), y.view(-1))).abs()
        opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)  # the same (default) AdamW
        opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-4)
        step_ours = _train_step(lambda m=ours: m.loss(x, y), opt_ours)
        step_ref = _train_step(
            lambda m=ref: F.cross_entropy(m(x).logits.view(-1, 65), y.view(-1)), opt_ref
        )

        # the package's own optimizer set-up (fused AdamW where available) on a twin model
        twin = gpt_from_hf(ref).train()
        step_fused = _train_step(lambda m=twin: m.loss(x, y), make_optimizer(twin, lr=1e-4))
        fns = {"coursekit": step_ours, "transformers": step_ref, "coursekit fused": step_fused}
        times = _alternate(fns, rounds)
        rows.append(
            {
                "step": "forward + backward + AdamW, float32",
                "transformers attention": attn,
                "coursekit ms": 1e3 * times["coursekit"],
                "transformers ms": 1e3 * times["transformers"],
                "ratio": times["coursekit"] / times["transformers"],
                "coursekit + make_optimizer ms": 1e3 * times["coursekit fused"],
                "ratio with make_optimizer": times["coursekit fused"] / times["transformers"],
                "loss gap": float(gap),
            }
        )
        print(rows[-1], flush=True)
        if profile and attn == "sdpa":
            _profile(step_ours, "coursekit")
            _profile(step_ref, "transformers")
    return rows


def _train_step(
    loss: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer
) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()

    return step


def _profile(step: object, name: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step()  # type: ignore[operator]
    print(f"\n--- {name}: 10 training steps, by self CPU time ---")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


# ------------------------------------------------------------------------------------------
# 2. the course's training path at nanoGPT's configuration
# ------------------------------------------------------------------------------------------
def _bf16_native() -> bool:
    """True when this CPU has native bf16 arithmetic (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


#: name -> (recipe, share of the iterations, torch.compile, bf16 autocast)
VARIANTS: dict[str, tuple[str, float, bool, bool]] = {
    "gpt2": ("gpt2", 1.0, False, False),
    "gpt2-compile": ("gpt2", 1.0, True, False),
    "gpt2-bf16": ("gpt2", 1.0, False, True),
    "modern": ("modern", 1.0, False, False),
    "modern-half": ("modern", 0.5, False, False),
    "modern-half-compile": ("modern", 0.5, True, False),
}


def bench_training_run(steps: int, variants: list[str]) -> list[dict[str, object]]:
    """Full runs of ``coursekit.train.train``; each variant's schedule spans its own iterations."""
    data = load_tiny_shakespeare()
    tok = CharTokenizer.train(data.train)
    train_ids = torch.tensor(tok.encode(data.train))
    val_ids = torch.tensor(tok.encode(data.val))
    base = GPTConfig(
        vocab_size=tok.vocab_size, block_size=BLOCK, n_layers=4, n_heads=4, d_model=128
    )
    recipes = {
        "gpt2": base,
        "modern": base.replace(
            positional="rope", norm="rms", activation="swiglu", d_ff=GPTConfig.swiglu_width(128),
            bias=False,
        ),
    }  # fmt: skip
    rows = []
    for variant in variants:
        recipe, share, compiled, amp = VARIANTS[variant]
        n_steps = max(int(steps * share), 1)
        torch.manual_seed(0)
        model = GPT(recipes[recipe])
        gen = torch.Generator().manual_seed(0)

        def get_batch(split: str, gen: torch.Generator = gen) -> tuple[torch.Tensor, torch.Tensor]:
            ids = train_ids if split == "train" else val_ids
            return random_windows(ids, BLOCK, BATCH, generator=gen)

        loss_fn = gpt_loss
        if compiled:
            compiled_loss = torch.compile(model.loss)
            loss_fn = lambda m, b, f=compiled_loss: f(*b)  # noqa: E731
        tc = TrainConfig(
            steps=n_steps, lr=1e-3, weight_decay=0.1, warmup_steps=min(100, n_steps // 10),
            schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0, eval_every=250, eval_batches=20,
            amp=amp, progress=False, desc=variant,
        )  # fmt: skip
        optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
        start = time.perf_counter()
        history = train(model, get_batch, loss_fn, tc, optimizer=optimizer)
        seconds = time.perf_counter() - start
        val = _validation_loss(model, val_ids)
        rows.append(
            {
                "variant": variant,
                "recipe": recipe,
                "torch.compile": compiled,
                "bf16 autocast": amp,
                "optimizer": "fused AdamW" if optimizer.defaults.get("fused") else "foreach AdamW",
                "iterations": n_steps,
                "wall s (evaluation included)": seconds,
                "ms per iteration": 1e3 * seconds / n_steps,
                "val loss (200 x 12 windows)": val,
                "val loss (last 20-batch estimate)": history.val_loss[-1],
            }
        )
        print(rows[-1], flush=True)
    return rows


def _validation_loss(model: GPT, val_ids: torch.Tensor, n_batches: int = 200) -> float:
    """nanoGPT's estimate: the mean loss over random validation windows (fixed seed)."""
    gen = torch.Generator().manual_seed(1234)
    return evaluate(
        model,
        lambda split: random_windows(val_ids, BLOCK, BATCH, generator=gen),
        gpt_loss,
        n_batches,
    )


# ------------------------------------------------------------------------------------------
# 3. model-FLOP utilisation
# ------------------------------------------------------------------------------------------
def matmul_rate(repeats: int = 20) -> float:
    """FLOP/s of float32 matrix products of the model's shapes (768 x 128 x 512 and transposes)."""
    a, b = torch.randn(BATCH * BLOCK, 128), torch.randn(128, 512)
    c = torch.randn(BATCH * BLOCK, 512)

    def work() -> None:
        a @ b  # forward: (768, 128) x (128, 512)
        c @ b.T  # backward, input gradient
        a.T @ c  # backward, weight gradient

    for _ in range(3):
        work()
    best = min(_timed(work) for _ in range(repeats))
    return 3 * 2 * a.shape[0] * a.shape[1] * b.shape[1] / best


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def mfu_row(step_ms: float, rate: float) -> dict[str, object]:
    config = GPTConfig(vocab_size=65, block_size=BLOCK, n_layers=4, n_heads=4, d_model=128)
    flops = flops_per_token(config, include_head=True).training * BATCH * BLOCK
    achieved = flops / (step_ms / 1e3)
    return {
        "model FLOPs per step": flops,
        "measured matmul GFLOP/s": rate / 1e9,
        "achieved GFLOP/s": achieved / 1e9,
        "MFU": achieved / rate,
    }


# ------------------------------------------------------------------------------------------
# 4. generation
# ------------------------------------------------------------------------------------------
def bench_generation(new_tokens: int, rounds: int) -> list[dict[str, object]]:
    import transformers

    torch.manual_seed(0)
    ref = _hf_gpt2("sdpa", n_positions=1024).eval()
    ours = gpt_from_hf(ref).eval()
    prompt = torch.randint(0, 65, (1, 8), generator=torch.Generator().manual_seed(0))
    hf_config = transformers.GenerationConfig(
        do_sample=False, max_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0,
        bos_token_id=None, use_cache=True,
    )  # fmt: skip
    mask = torch.ones_like(prompt)

    def hf() -> torch.Tensor:
        with torch.no_grad():
            return ref.generate(prompt, generation_config=hf_config, attention_mask=mask)

    def cached() -> torch.Tensor:
        return generate(ours, prompt, new_tokens, temperature=0.0)

    def uncached() -> torch.Tensor:
        return generate(ours, prompt, new_tokens, temperature=0.0, use_cache=False)

    same = torch.equal(hf(), cached()) and torch.equal(cached(), uncached())
    times = _alternate(
        {"coursekit cached": cached, "coursekit uncached": uncached, "transformers": hf},
        rounds,
        warmup=1,
    )
    row: dict[str, object] = {"new tokens": new_tokens, "same tokens": same}
    for name, seconds in times.items():
        row[f"{name} tok/s"] = new_tokens / seconds
    row["cached / transformers time"] = times["coursekit cached"] / times["transformers"]
    row["KV-cache speed-up"] = times["coursekit uncached"] / times["coursekit cached"]
    print(row, flush=True)
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: keep)")
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument(
        "--variants", default="gpt2,modern,modern-half,modern-half-compile,gpt2-bf16"
    )
    parser.add_argument("--gen-tokens", type=int, default=256)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch threads {threads}, load average {load:.1f}", flush=True)

    step_rows = bench_train_step(args.rounds, args.profile)
    rate = matmul_rate()
    for row in step_rows:
        row.update(mfu_row(float(row["coursekit ms"]), rate))  # type: ignore[arg-type]
        row["threads"] = threads
    save_results(
        "gpt_train_step",
        "GPT training step vs transformers GPT2LMHeadModel (nanoGPT CPU configuration)",
        step_rows,
        notes="4 blocks, 4 heads, width 128, context 64, batch 12, vocabulary 65; same weights, "
        "tokens, loss (F.cross_entropy over (B*T, V)) and torch.optim.AdamW (foreach) on both "
        "sides; 'with make_optimizer': coursekit's own set-up (fused AdamW); float32 eager; "
        f"median of {args.rounds} alternated rounds; ratio < 1 means coursekit is faster. MFU: "
        "model FLOPs (6N + attention, scaling.flops_per_token) per second over the measured "
        f"rate of the model's matmul shapes. Load average at start {load:.1f}.",
    )

    if not args.skip_generation:
        _generation(args)
    if args.train_steps:
        _training(args, threads, load)


def _generation(args: argparse.Namespace) -> None:
    gen_rows = bench_generation(args.gen_tokens, max(args.rounds // 6, 3))
    save_results(
        "gpt_generation",
        "Greedy generation: coursekit GPT (KV cache / none) vs transformers generate()",
        gen_rows,
        notes="GPT-2 architecture of the training benchmark with 1,024 positions, random weights, "
        "batch 1, prompt 8 tokens; median over alternated rounds.",
    )


def _training(args: argparse.Namespace, threads: int, load: float) -> None:
    variants = [v for v in args.variants.split(",") if v]
    if not _bf16_native() and any(VARIANTS[v][3] for v in variants):
        print("bf16 autocast skipped: this CPU has no native bf16 (no AVX512-BF16 / AMX)")
        variants = [v for v in variants if not VARIANTS[v][3]]
    run_rows = bench_training_run(args.train_steps, variants)
    save_results(
        "gpt_training_run",
        "The course's training path at nanoGPT's CPU configuration",
        run_rows,
        notes="coursekit.train.train with make_optimizer; nanoGPT's schedule; validation "
        "every 250 iterations (20 batches) included in the wall time; final loss over "
        f"200 x 12 random validation windows; {threads} threads; load average at start "
        f"{load:.1f}.",
    )


if __name__ == "__main__":
    main()
