"""GPT: a decoder-only Transformer language model, built from the course's one block.

Embeddings + ``n_layers`` x :class:`~coursekit.layers.TransformerBlock` (causal self-attention
and a feed-forward network, no cross-attention) + a final norm + a linear head::

    ids (B, T) --token embedding (+ learned positions)--> N x block --> norm --> Linear --> logits (B, T, V)

The defaults are GPT-2's recipe: learned absolute positions, pre-norm LayerNorm, GELU in its
tanh form, biases everywhere, the output matrix tied to the token embedding, and GPT-2's
initialisation (every weight N(0, 0.02), the two residual projections of each block, the
attention's ``out_proj`` and the FFN's ``w2``, scaled down by 1/sqrt(2 n_layers)).

Flags switch on the modern (LLaMA-style) recipe one piece at a time: ``positional="rope"``
(rotary positions on queries and keys, no position table), ``norm="rms"``,
``activation="swiglu"`` (a gated FFN; pick ``d_ff`` about 2/3 of 4d to keep the parameter
count), ``bias=False`` and ``n_kv_heads`` < ``n_heads`` (grouped-query attention).
:meth:`GPTConfig.modern` sets them all.

A :class:`GPT` is a :class:`coursekit.generate.CausalLM` (``context_length``, ``new_cache``,
``step``): ``coursekit.generate.generate(model, prompt, n)`` decodes with a KV cache.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from coursekit.attention import KVCache
from coursekit.dropout import Dropout
from coursekit.layers import ACTIVATIONS, Activation, BlockConfig, LayerNorm, NormKind, RMSNorm
from coursekit.models.transformer import TransformerStack, check_token_ids, set_attention_scratch
from coursekit.positional import LearnedPositionalEmbedding, RotaryEmbedding
from coursekit.train.losses import cross_entropy_loss

__all__ = ["GPT", "GPTCache", "GPTConfig", "Positional", "gpt_loss"]

Positional = Literal["learned", "rope"]
POSITIONALS: tuple[str, ...] = ("learned", "rope")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass
class GPTConfig:
    """Sizes and switches of a :class:`GPT`. The defaults are GPT-2 small (124M parameters).

    * ``vocab_size``, ``block_size`` (the context window: learned positions cannot go beyond),
      ``n_layers``, ``n_heads``, ``d_model``, ``d_ff`` (default ``4 * d_model``);
    * ``dropout``: on the embeddings, the attention weights and each residual branch, as GPT-2
      (0.1 for its pre-training; small data sets want more, or none for short runs);
    * recipe: ``positional`` (``"learned"`` or ``"rope"``), ``norm`` (``"layer"`` or ``"rms"``),
      ``activation`` (``"gelu_tanh"``, ``"gelu"``, ``"relu"``, ``"swiglu"``, ``"geglu"``),
      ``bias``, ``n_kv_heads`` (None = ``n_heads``; fewer = grouped-query attention),
      ``tie_embeddings`` (output matrix = token embedding), ``eps`` of the norms,
      ``rope_base`` and ``rope_interleaved`` (channel pairing; False is the GPT-NeoX / LLaMA
      layout that pairs channel i with i + d_head/2);
    * ``init_std``: the standard deviation of the initial weights (0.02);
    * ``scratch``: run the course's written-out norms, attention and loss (same maths).
    """

    vocab_size: int = 50257
    block_size: int = 1024
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int | None = None
    dropout: float = 0.0
    positional: Positional = "learned"
    norm: NormKind = "layer"
    activation: Activation = "gelu_tanh"
    bias: bool = True
    n_kv_heads: int | None = None
    tie_embeddings: bool = True
    eps: float = 1e-5
    rope_base: float = 10000.0
    rope_interleaved: bool = False
    init_std: float = 0.02
    scratch: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layers", "n_heads", "d_model"):
            value = getattr(self, name)
            if not _positive_int(value):
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}.")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if not _positive_int(self.d_ff):
            raise ValueError(
                f"GPTConfig.d_ff must be a positive integer (or None = 4 d_model), got {self.d_ff!r}."
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"GPTConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                f"(each head gets d_model / n_heads channels; GPT-2 small: 768 = 12 x 64)."
            )
        kv = self.n_heads if self.n_kv_heads is None else self.n_kv_heads
        if not _positive_int(kv) or self.n_heads % kv:
            raise ValueError(
                f"GPTConfig.n_kv_heads={self.n_kv_heads!r} must be a positive divisor of "
                f"n_heads={self.n_heads} (None or n_heads: MHA; 1: MQA; in between: GQA)."
            )
        if self.positional not in POSITIONALS:
            raise ValueError(
                f"GPTConfig.positional={self.positional!r}: use 'learned' (GPT-2) or 'rope' (LLaMA)."
            )
        if self.positional == "rope" and self.head_dim % 2:
            raise ValueError(
                f"RoPE rotates channel pairs, so the head size d_model / n_heads must be even; "
                f"got {self.d_model} / {self.n_heads} = {self.head_dim}."
            )
        if self.norm not in ("layer", "rms"):
            raise ValueError(f"GPTConfig.norm={self.norm!r}: use 'layer' (GPT-2) or 'rms' (LLaMA).")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"GPTConfig.activation={self.activation!r}: use one of {', '.join(ACTIVATIONS)}."
            )
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}.")
        if not self.eps > 0:
            raise ValueError(f"GPTConfig.eps must be positive, got {self.eps}.")
        if not (math.isfinite(self.rope_base) and self.rope_base > 1):
            raise ValueError(
                f"GPTConfig.rope_base must be a finite number > 1, got {self.rope_base}."
            )
        if not self.init_std > 0:
            raise ValueError(f"GPTConfig.init_std must be positive, got {self.init_std}.")

    # ---- derived sizes ------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    def block_config(self) -> BlockConfig:
        """The :class:`~coursekit.layers.BlockConfig` of every block (pre-norm, no cross-attention)."""
        assert self.d_ff is not None
        return BlockConfig(
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            n_kv_heads=self.n_kv_heads,
            activation=self.activation,
            norm=self.norm,
            norm_first=True,
            eps=self.eps,
            bias=self.bias,
            dropout=self.dropout,
            ffn_dropout=0.0,  # GPT-2 drops the FFN's output (a residual branch), not its inside
            cross_attention=False,
            scratch=self.scratch,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def expected_parameters(self) -> int:
        """The closed-form parameter count (a tied output matrix counted once).

        With ``d = d_model``, ``d_kv = n_kv_heads * d_head`` and ``V = vocab_size``:

        * token embedding ``V d``; learned positions ``block_size * d`` (RoPE has none);
        * per block: attention ``d (d + 2 d_kv) + d^2`` (+ ``2d + 2 d_kv`` biases),
          FFN ``2 d d_ff`` (``3 d d_ff`` gated) (+ ``d_ff + d`` or ``2 d_ff + d`` biases),
          two norms of ``2d`` (LayerNorm with bias) or ``d`` (RMSNorm, or no bias);
        * the final norm; the output matrix ``d V`` unless tied.
        """
        d, v = self.d_model, self.vocab_size
        norm = 2 * d if (self.norm == "layer" and self.bias) else d
        embed = v * d + (self.block_size * d if self.positional == "learned" else 0)
        head = 0 if self.tie_embeddings else d * v
        return embed + self.n_layers * self.block_config().n_params() + norm + head

    # ---- recipes --------------------------------------------------------------------------------
    @staticmethod
    def swiglu_width(d_model: int, multiple_of: int = 1) -> int:
        """``2/3 * 4 d_model`` rounded (to a multiple of ``multiple_of``): SwiGLU's three
        matrices then hold about as many weights as a GELU network's two of width 4d."""
        width = round(8 * d_model / 3)
        return max(multiple_of, multiple_of * round(width / multiple_of))

    @classmethod
    def modern(cls, **kwargs: Any) -> GPTConfig:
        """The LLaMA-style recipe: RoPE, RMSNorm, SwiGLU with d_ff = 2/3 * 4d, no biases.

        Keyword arguments override any field (e.g. ``n_kv_heads=2`` for grouped-query
        attention, ``tie_embeddings=False`` as in LLaMA)."""
        d_model = kwargs.get("d_model", cls.d_model)
        defaults: dict[str, Any] = dict(
            positional="rope",
            norm="rms",
            activation="swiglu",
            bias=False,
            d_ff=cls.swiglu_width(d_model),
        )
        return cls(**{**defaults, **kwargs})

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed (validated again); ``d_ff`` follows ``d_model`` if
        it was the default 4d and is not given."""
        if "d_model" in changes and "d_ff" not in changes and self.d_ff == 4 * self.d_model:
            changes["d_ff"] = None
        return dataclasses.replace(self, **changes)


class GPTCache:
    """The decoding cache of a :class:`GPT`: one preallocated :class:`~coursekit.attention.KVCache`
    per block (keys and values ``(B, n_kv_heads, T, d_head)``) and the number of tokens seen."""

    def __init__(self, n_layers: int, max_len: int | None = None) -> None:
        self.layers = [KVCache(max_len) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search)."""
        for cache in self.layers:
            cache.reorder(index)

    def crop(self, length: int) -> None:
        """Forget every position after the first ``length``."""
        for cache in self.layers:
            cache.crop(length)

    def nbytes(self) -> int:
        """Memory held by the cached keys and values, in bytes."""
        return sum(cache.nbytes() for cache in self.layers)


class GPT(nn.Module):
    """A decoder-only Transformer language model (see the module docstring).

    * ``forward(ids)``: ``(B, T)`` token ids -> next-token logits ``(B, T, V)``;
    * :meth:`loss` ``(ids, targets)``: mean cross-entropy (``targets`` = ids shifted left);
    * :meth:`step`, :meth:`new_cache`, ``context_length``: the CausalLM protocol of
      :mod:`coursekit.generate`.

    Submodules: ``tok_embed``, ``pos_embed`` (learned positions only), ``rotary`` (RoPE only,
    shared by every block), ``blocks`` (a :class:`~coursekit.models.transformer.TransformerStack`:
    ``blocks.layers[i]`` and the final norm ``blocks.norm``), ``lm_head``.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.scratch = c.scratch  # the loss's version; set_scratch() switches everything
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed = (
            LearnedPositionalEmbedding(c.block_size, c.d_model, init_std=c.init_std)
            if c.positional == "learned"
            else None
        )
        self.embed_dropout = Dropout(c.dropout)
        self.blocks = TransformerStack(c.block_config(), c.n_layers, final_norm=True)
        self.rotary: RotaryEmbedding | None = None
        if c.positional == "rope":
            self.rotary = RotaryEmbedding(
                c.head_dim,
                base=c.rope_base,
                interleaved=c.rope_interleaved,
                max_positions=c.block_size,
            )
            for layer in self.blocks.blocks():  # one table shared by every attention
                layer.self_attn.rotary = self.rotary
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.reset_parameters()
        if c.tie_embeddings:
            self.lm_head.weight = self.tok_embed.weight

    # ---- initialisation -------------------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """GPT-2's initialisation.

        Every matrix and embedding ~ N(0, init_std), biases 0, norm gains 1; the matrices that
        write into the residual stream (``out_proj`` and ``ffn.w2`` of each block) ~
        N(0, init_std / sqrt(2 n_layers)): the stream adds two branches per block, so without
        the scaling its variance would grow with depth.
        """
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                is_residual = name.endswith("out_proj") or name.endswith("ffn.w2")
                nn.init.normal_(module.weight, 0.0, residual_std if is_residual else std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, std)
            elif isinstance(module, LearnedPositionalEmbedding):
                nn.init.normal_(module.weight, 0.0, std)
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm, LayerNorm, RMSNorm)):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                bias = getattr(module, "bias", None)
                if bias is not None:
                    nn.init.zeros_(bias)

    # ---- the CausalLM protocol --------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        """How many positions the model sees: ``block_size`` (learned positions stop there; a
        RoPE model was trained on that window and generates within it by default)."""
        return self.config.block_size

    def new_cache(self) -> GPTCache:
        """An empty :class:`GPTCache` (storage for ``block_size`` positions, grown if needed)."""
        return GPTCache(self.config.n_layers, self.config.block_size)

    def step(self, ids: torch.Tensor, cache: GPTCache | None = None) -> torch.Tensor:
        """Logits ``(B, T, V)`` for ``ids`` ``(B, T)`` that continue ``cache`` (extended in place),
        or for the whole context when ``cache`` is None."""
        return self.lm_head(self.hidden_states(ids, cache=cache))

    # ---- forward --------------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Token embeddings (+ learned positions ``offset ..``), after dropout: ``(B, T, d)``."""
        c = self.config
        if not torch.compiler.is_compiling():  # reading values would break a compiled graph
            check_token_ids(ids, c.vocab_size)
        x = self.tok_embed(ids)
        if self.pos_embed is not None:
            if offset + ids.shape[1] > c.block_size:
                raise ValueError(
                    f"positions {offset}..{offset + ids.shape[1] - 1} requested, but this GPT's "
                    f"learned positions stop at block_size - 1 = {c.block_size - 1}: pass at most "
                    f"{c.block_size} tokens (generate() slides a window of that size)."
                )
            x = self.pos_embed(x, offset=offset)
        return self.embed_dropout(x)

    def hidden_states(self, ids: torch.Tensor, *, cache: GPTCache | None = None) -> torch.Tensor:
        """The final normalised hidden states ``(B, T, d)`` (the input of ``lm_head``)."""
        offset = 0 if cache is None else cache.length
        x = self.embed(ids, offset)
        return self.blocks(x, is_causal=True, caches=None if cache is None else cache.layers)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` ``(B, T)`` -> next-token logits ``(B, T, V)`` (position t predicts token t+1)."""
        return self.lm_head(self.hidden_states(ids))

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy; ``targets`` ``(B, T)`` are the ids shifted left
        (``coursekit.data.random_windows`` gives such ``(x, y)`` pairs); -100 is ignored."""
        if targets.shape != ids.shape:
            raise ValueError(
                f"targets {tuple(targets.shape)} must have the shape of ids {tuple(ids.shape)} "
                "(the same windows shifted left by one token)."
            )
        return cross_entropy_loss(self(ids), targets, scratch=self.scratch)

    # ---- helpers ---------------------------------------------------------------------------------
    def num_parameters(self, *, exclude_embeddings: bool = False) -> int:
        """Trainable parameters, a tied matrix counted once; ``exclude_embeddings`` leaves out
        the token and position tables (the convention of scaling-law papers)."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.tok_embed.weight.numel()
            if self.pos_embed is not None:
                n -= self.pos_embed.weight.numel()
        return n

    def set_scratch(self, scratch: bool = True) -> GPT:
        """Switch every attention to the written-out version (True) or PyTorch's kernel, and the
        loss to the written-out cross-entropy (norms keep the class they were built with)."""
        set_attention_scratch(self, scratch)
        self.scratch = scratch
        return self

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{c.n_layers} layers, d_model={c.d_model}, heads={c.n_heads}/{c.kv_heads} kv, "
            f"{c.positional} positions, {c.norm} norm, {c.activation}, bias={c.bias}, "
            f"tied={c.tie_embeddings}"
        )


def gpt_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``loss_fn`` for :func:`coursekit.train.train`: ``model.loss(x, y)`` of an ``(x, y)`` batch."""
    x, y = batch
    return model.loss(x, y)  # type: ignore[operator]
