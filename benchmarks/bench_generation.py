"""Generation speed: with and without the KV cache, MHA vs GQA vs MQA, and vs transformers.

Run: ``python benchmarks/bench_generation.py [--device cuda] [--quick] [--threads 1]``.

A small decoder from the package (``coursekit.models.gpt.GPT``, GPT-2's recipe with
``n_kv_heads``; ``--model tiny`` or a checkout without it: a decoder assembled here from
``coursekit.layers.TransformerBlock`` that speaks the ``coursekit.generate.CausalLM`` protocol),
4 layers, d_model 256, 8 query heads, vocabulary 4096, decodes greedily
(``coursekit.generate.generate``, ``temperature=0``) 64 tokens after a 32-token prompt, batch 4.

* ``generation.json``: per attention variant (MHA: 8 key/value heads, GQA: 2, MQA: 1), tokens
  per second with the cache and without it (the whole context recomputed at every step), the
  ratio of the two times (< 1: the cache is faster), the cached time against MHA's, and the size
  of the keys and values cached for the final length. Greedy decoding with and without the cache
  must give the same tokens (checked).
* ``generation_hf.json``: the same GPT-2-layout weights in ``transformers.GPT2LMHeadModel``,
  converted with ``coursekit.hf.gpt.gpt_from_hf``: coursekit's ``generate`` against
  ``transformers``' ``generate`` (greedy, cache on), same tokens checked. Skipped, with a note,
  when the converter is not there.

All calls of one table are alternated round by round (medians).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import alternate, bench_parser, gpt_config, setup, write_results  # noqa: E402

from coursekit.attention import KVCache  # noqa: E402
from coursekit.generate import generate  # noqa: E402
from coursekit.layers import BlockConfig, TransformerBlock  # noqa: E402

FULL = dict(vocab=4096, block=512, layers=4, d=256, heads=8, batch=4, prompt=32, new=64)
QUICK = dict(vocab=256, block=64, layers=2, d=64, heads=4, batch=2, prompt=8, new=12)


class _TinyCache:
    """One :class:`KVCache` per block and the number of tokens seen."""

    def __init__(self, n_layers: int, max_len: int) -> None:
        self.layers = [KVCache(max_len) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length

    def reorder(self, index: torch.Tensor) -> None:
        for cache in self.layers:
            cache.reorder(index)


class TinyDecoder(nn.Module):
    """Token + learned position embeddings, pre-norm ``TransformerBlock`` s, final LayerNorm,
    tied output layer: a :class:`coursekit.generate.CausalLM`."""

    def __init__(
        self, *, vocab: int, block: int, layers: int, d: int, heads: int, kv_heads: int
    ) -> None:
        super().__init__()
        self.block = block
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(block, d)
        cfg = BlockConfig(
            d_model=d, n_heads=heads, d_ff=4 * d, n_kv_heads=kv_heads, activation="gelu_tanh"
        )
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight

    @property
    def context_length(self) -> int:
        return self.block

    def new_cache(self) -> _TinyCache:
        return _TinyCache(len(self.blocks), self.block)

    def step(self, ids: torch.Tensor, cache: _TinyCache | None = None) -> torch.Tensor:
        offset = 0 if cache is None else cache.length
        positions = torch.arange(offset, offset + ids.shape[1], device=ids.device)
        x = self.tok(ids) + self.pos(positions)
        caches: list[KVCache | None] = (
            [None] * len(self.blocks) if cache is None else list(cache.layers)
        )
        for block, layer_cache in zip(self.blocks, caches):
            x = block(x, is_causal=True, cache=layer_cache)
        return self.head(self.norm(x))


def build_decoder(c: dict[str, int], kv_heads: int, kind: str) -> tuple[nn.Module, str]:
    """coursekit's GPT when it imports (``kind`` auto or gpt), else the TinyDecoder."""
    if kind in ("auto", "gpt"):
        try:
            from coursekit.models.gpt import GPT
        except ImportError:
            if kind == "gpt":
                raise
        else:
            return GPT(gpt_config(c, n_kv_heads=kv_heads)), "coursekit.models.gpt.GPT"
    dims = {k: c[k] for k in ("vocab", "block", "layers", "d", "heads")}
    return TinyDecoder(**dims, kv_heads=kv_heads), "TinyDecoder (coursekit.layers.TransformerBlock)"


def _gpt_from_hf() -> Any:
    try:
        from coursekit.hf import gpt_from_hf  # type: ignore[attr-defined]
    except ImportError:
        try:
            from coursekit.hf.gpt import gpt_from_hf
        except ImportError:
            return None
    return gpt_from_hf


def bench_variants(c: dict[str, int], args: argparse.Namespace) -> tuple[list[dict], str]:
    device = args.device
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, c["vocab"], (c["batch"], c["prompt"]), generator=gen).to(device)
    variants = {"MHA": c["heads"], "GQA": max(c["heads"] // 4, 2), "MQA": 1}
    fns: dict[str, Callable[[], object]] = {}
    same: dict[str, bool] = {}
    kind = ""
    for name, kv in variants.items():
        torch.manual_seed(0)
        model, kind = build_decoder(c, kv, args.model)
        model = model.to(device).eval()
        with_cache = generate(model, prompt, c["new"], temperature=0.0)
        without = generate(model, prompt, c["new"], temperature=0.0, use_cache=False)
        same[name] = bool(torch.equal(with_cache, without))
        fns[f"{name} cache"] = lambda m=model: generate(m, prompt, c["new"], temperature=0.0)
        fns[f"{name} no cache"] = lambda m=model: generate(
            m, prompt, c["new"], temperature=0.0, use_cache=False
        )
    times = alternate(fns, args.rounds, warmup=1, device=device)
    n_tokens = c["batch"] * c["new"]
    final = c["prompt"] + c["new"]
    d_head = c["d"] // c["heads"]
    rows = []
    for name, kv in variants.items():
        cached, uncached = times[f"{name} cache"], times[f"{name} no cache"]
        rows.append(
            {
                "attention": name,
                "kv heads": kv,
                "cache tokens/s": n_tokens / cached,
                "no cache tokens/s": n_tokens / uncached,
                "ratio cache/no cache": cached / uncached,
                "ratio vs MHA (cache)": cached / times["MHA cache"],
                "KV cache KiB": 2 * c["layers"] * c["batch"] * kv * final * d_head * 4 / 1024,
                "same tokens": same[name],
            }
        )
        print(rows[-1], flush=True)
    return rows, kind


def bench_hf(c: dict[str, int], args: argparse.Namespace) -> tuple[list[dict], str]:
    gpt_from_hf = _gpt_from_hf()
    if gpt_from_hf is None:
        return [], "skipped: coursekit.hf.gpt.gpt_from_hf is not available"
    try:
        import transformers
    except ImportError:
        return [], "skipped: transformers is not installed"
    device = args.device
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=c["layers"],
        n_head=c["heads"],
        n_embd=c["d"],
        vocab_size=c["vocab"],
        n_positions=c["block"],
        bos_token_id=None,
        eos_token_id=None,
        attn_implementation="sdpa",
    )
    ref = transformers.GPT2LMHeadModel(config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # weights away from the initialisation: decisive greedy choices
        for p in ref.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    ref = ref.to(device).eval()
    ours = gpt_from_hf(ref).to(device).eval()
    gen_config = transformers.GenerationConfig(
        do_sample=False,
        max_new_tokens=c["new"],
        min_new_tokens=c["new"],
        eos_token_id=None,
        pad_token_id=0,
        bos_token_id=None,
        num_beams=1,
        use_cache=True,
    )
    prompt = torch.randint(0, c["vocab"], (c["batch"], c["prompt"]), generator=g).to(device)
    mask = torch.ones_like(prompt)

    def run_ref() -> torch.Tensor:
        with torch.no_grad():
            return ref.generate(prompt, generation_config=gen_config, attention_mask=mask)

    def run_ours() -> torch.Tensor:
        return generate(ours, prompt, c["new"], temperature=0.0)

    same = bool(torch.equal(run_ours(), run_ref()))
    times = alternate(
        {"coursekit": run_ours, "transformers": run_ref}, args.rounds, warmup=1, device=device
    )
    n_tokens = c["batch"] * c["new"]
    row = {
        "model": f"GPT-2 layout, {c['layers']} layers, d_model {c['d']}",
        "coursekit tokens/s": n_tokens / times["coursekit"],
        "transformers tokens/s": n_tokens / times["transformers"],
        "ratio": times["coursekit"] / times["transformers"],
        "same tokens": same,
    }
    print(row, flush=True)
    return [row], f"transformers {transformers.__version__} (SDPA attention)"


def main(argv: list[str] | None = None) -> None:
    parser = bench_parser(__doc__, rounds=5)
    parser.add_argument(
        "--model",
        default="auto",
        choices=["auto", "gpt", "tiny"],
        help="auto: coursekit.models.gpt.GPT if it imports, else the TinyDecoder",
    )
    args = setup(parser.parse_args(argv))
    device = args.device
    c = QUICK if args.quick else FULL
    shape = (
        f"{c['layers']} layers, d_model {c['d']}, {c['heads']} query heads, vocab {c['vocab']}, "
        f"batch {c['batch']}, {c['prompt']}-token prompt + {c['new']} new tokens, greedy"
    )
    with torch.no_grad():
        rows, kind = bench_variants(c, args)
    write_results(
        "generation",
        f"Generation: KV cache on/off, MHA vs GQA vs MQA ({device})",
        rows,
        notes=f"{kind}; {shape}; median of {args.rounds} alternated rounds. 'ratio cache/no "
        "cache' < 1: the cache is faster (no cache recomputes the whole context per token). "
        "'ratio vs MHA' compares cached decoding: GQA/MQA shrink the key/value projections and "
        "the cache (memory traffic), which pays off most with long contexts and large batches on "
        "a GPU; at this size on a CPU the difference is small.",
        args=args,
    )
    hf_rows, hf_note = bench_hf(c, args)
    if hf_rows:
        write_results(
            "generation_hf",
            f"Generation: coursekit generate vs transformers generate, same GPT-2 weights ({device})",
            hf_rows,
            notes=f"{hf_note}; {shape}; weights converted with gpt_from_hf; median of "
            f"{args.rounds} alternated rounds; ratio < 1: coursekit is faster.",
            args=args,
        )
    else:
        print(f"transformers comparison {hf_note}")


if __name__ == "__main__":
    main()
