"""The library core against PyTorch's own modules, alternated in one process.

1. Encoder-decoder training step (forward, backward, AdamW step): coursekit's ``Transformer``
   against ``torch.nn.Transformer`` with the same weights (copied with
   ``load_torch_transformer``), the same embeddings, output layer, loss and tokens.
2. Causal self-attention forward + backward: coursekit's ``MultiHeadAttention`` (causal)
   against ``torch.nn.MultiheadAttention`` with its causal mask and ``is_causal`` hint.

Run ``python benchmarks/bench_core.py [--tag after]``; the script only uses APIs that older
versions of coursekit also have, so running it with ``PYTHONPATH`` pointing at an older checkout
gives the "before" figures on the same machine (``--tag before``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save_results  # noqa: E402
from training_step import encoder_decoder_step_flops  # noqa: E402

from coursekit.attention import MultiHeadAttention  # noqa: E402
from coursekit.models import Transformer, TransformerConfig  # noqa: E402
from coursekit.positional import sinusoidal_encoding  # noqa: E402


class TorchTransformerLM(nn.Module):
    """``nn.Transformer`` with coursekit's embeddings, positions, output layer and loss."""

    def __init__(self, ours: Transformer, ref: nn.Transformer) -> None:
        super().__init__()
        c = ours.config
        self.config = c
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.src_embed.load_state_dict(ours.src_embed.state_dict())
        self.tgt_embed.load_state_dict(ours.tgt_embed.state_dict())
        self.register_buffer("pe", sinusoidal_encoding(c.max_positions, c.d_model))
        self.drop = nn.Dropout(c.dropout)
        self.ref = ref
        self.output = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.output.load_state_dict(ours.output.state_dict())

    def _embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        x = table(ids) * math.sqrt(self.config.d_model) + self.pe[: ids.shape[1]]
        return self.drop(x)

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        pad = self.config.pad_id
        tgt_in, target = tgt[:, :-1], tgt[:, 1:]
        src_pad = src == pad
        memory = self.ref.encoder(self._embed(self.src_embed, src), src_key_padding_mask=src_pad)
        t = tgt_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=src.device)
        out = self.ref.decoder(
            self._embed(self.tgt_embed, tgt_in),
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=src_pad,
        )
        logits = self.output(out)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=pad
        )


def _tokens(
    vocab: int, batch: int, length: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab, (batch, length), generator=g)
    tgt = torch.randint(4, vocab, (batch, length + 1), generator=g)
    tgt[:, 0] = 1
    lengths = torch.randint(length * 5 // 8, length + 1, (batch,), generator=g)
    for i, n in enumerate(lengths.tolist()):  # realistic padding at the end of each row
        src[i, n:] = 0
        tgt[i, n + 1 :] = 0
    return src, tgt


def _alternate(fns: dict[str, object], rounds: int, warmup: int = 3) -> dict[str, float]:
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


def bench_encoder_decoder(rounds: int, dropout: float = 0.1) -> list[dict[str, object]]:
    torch.manual_seed(0)
    vocab, d, heads, layers, d_ff, batch, length = 1000, 256, 4, 4, 1024, 32, 64
    cfg = TransformerConfig(
        vocab,
        vocab,
        d_model=d,
        n_heads=heads,
        n_encoder_layers=layers,
        n_decoder_layers=layers,
        d_ff=d_ff,
        dropout=dropout,
        final_norm=True,
    )
    ours = Transformer(cfg)
    ref_core = nn.Transformer(d, heads, layers, layers, d_ff, dropout=dropout, batch_first=True)
    ref_core.encoder.use_nested_tensor = False
    ours.load_torch_transformer(ref_core)
    ref = TorchTransformerLM(ours, ref_core)
    src, tgt = _tokens(vocab, batch, length)
    with torch.no_grad():
        ours.eval(), ref.eval()
        gap = (ours.loss(src, tgt) - ref.loss(src, tgt)).abs().item()
    ours.train(), ref.train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-4)

    def step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        model.loss(src, tgt).backward()  # type: ignore[operator]
        opt.step()

    # a 1024 x 1024 float32 product timed in the same rounds: the matmul rate for the MFU
    mm_a, mm_b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    times = _alternate(
        {
            "coursekit": lambda: step(ours, opt_ours),
            "torch": lambda: step(ref, opt_ref),
            "matmul": lambda: mm_a @ mm_b,
        },
        rounds,
    )
    rate = 2 * 1024**3 / times["matmul"]
    sizes = dict(enc=layers, dec=layers, d=d, d_ff=d_ff, src=length, tgt=length, vocab=vocab)
    flops = encoder_decoder_step_flops({**sizes, "batch": batch})
    return [
        {
            "model": f"enc-dec d{d} {layers}+{layers} layers, batch {batch} x {length}",
            "dropout": dropout,
            "coursekit ms": 1e3 * times["coursekit"],
            "nn.Transformer ms": 1e3 * times["torch"],
            "ratio": times["coursekit"] / times["torch"],
            "GFLOP/step": flops / 1e9,
            "matmul GFLOP/s": rate / 1e9,
            "MFU coursekit": flops / times["coursekit"] / rate,
            "MFU nn.Transformer": flops / times["torch"] / rate,
            "eval loss gap": gap,
        }
    ]


def bench_causal_attention(rounds: int, lengths: list[int]) -> list[dict[str, object]]:
    torch.manual_seed(0)
    d, heads, batch = 256, 4, 4
    ref = nn.MultiheadAttention(d, heads, batch_first=True)
    ours = MultiHeadAttention.from_torch(ref)
    rows = []
    for t in lengths:
        x = torch.randn(batch, t, d, requires_grad=True)
        mask = nn.Transformer.generate_square_subsequent_mask(t)

        def run_ours(x: torch.Tensor = x) -> None:
            ours(x, is_causal=True).sum().backward()

        def run_ref(x: torch.Tensor = x, mask: torch.Tensor = mask) -> None:
            ref(x, x, x, attn_mask=mask, is_causal=True, need_weights=False)[0].sum().backward()

        times = _alternate({"coursekit": run_ours, "torch": run_ref}, rounds, warmup=2)
        rows.append(
            {
                "T": t,
                "coursekit ms": 1e3 * times["coursekit"],
                "nn.MultiheadAttention ms": 1e3 * times["torch"],
                "ratio": times["coursekit"] / times["torch"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tag", default="after", help="label of this run (before / after)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--lengths", default="256,512,1024,2048")
    args = parser.parse_args()
    torch.manual_seed(0)
    enc = bench_encoder_decoder(args.rounds) + bench_encoder_decoder(args.rounds, dropout=0.0)
    att = bench_causal_attention(
        max(args.rounds // 2, 3), [int(t) for t in args.lengths.split(",")]
    )
    for row in enc + att:
        row["coursekit version"] = args.tag
        print(row)
    save_results(
        f"core_encoder_decoder_{args.tag}",
        f"Encoder-decoder training step vs nn.Transformer ({args.tag})",
        enc,
        notes="Forward, backward and AdamW step; same weights, tokens, embeddings and loss; "
        "median over alternated rounds; ratio < 1 means coursekit is faster. With dropout 0.1 "
        "nn.Transformer draws its masks with bernoulli_; coursekit (after) with coursekit.dropout "
        "(16 random bits per element); the dropout 0.0 row isolates the rest of the step. MFU: "
        "model FLOPs (training_step.encoder_decoder_step_flops) per second over the rate of a "
        "1024 x 1024 float32 matmul timed in the same rounds.",
    )
    save_results(
        f"core_causal_attention_{args.tag}",
        f"Causal self-attention forward+backward vs nn.MultiheadAttention ({args.tag})",
        att,
        notes="Batch 4, d_model 256, 4 heads; median over alternated rounds.",
    )


if __name__ == "__main__":
    main()
