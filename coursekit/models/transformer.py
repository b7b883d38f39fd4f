"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Embeddings + the course's one :class:`~coursekit.layers.TransformerBlock` + a head::

    source ids (B, S) --embed * sqrt(d) + PE--> N x block ----------------------> memory (B, S, d)
    target ids (B, T) --embed * sqrt(d) + PE--> N x block(+ cross) --> Linear --> logits (B, T, V)

* encoder blocks: self-attention over the source (padding masked), then the feed-forward net;
* decoder blocks: *causal* self-attention, cross-attention to the encoder output (queries from
  the decoder, keys/values from the memory), then the feed-forward net;
* post-norm by default (the paper), pre-norm with ``norm_first``;
* the output projection may share its matrix with the target embedding (``tie_output``).

Batches follow notebook 03's convention: ``src`` ``(B, S)`` padded with ``pad_id``;
``tgt`` ``(B, T)`` = ``<bos> y_1 ... y_n <eos> <pad>...``. Training is teacher-forced:
the decoder reads ``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol, cast

import torch
from torch import nn

from coursekit.attention import KVCache, MultiHeadAttention
from coursekit.dropout import Dropout
from coursekit.layers import (
    Activation,
    BlockConfig,
    FeedForward,
    NormKind,
    TransformerBlock,
    make_norm,
)
from coursekit.positional import SinusoidalPositionalEncoding
from coursekit.runtime import eval_mode, value_checks
from coursekit.tokenize import BOS_ID, EOS_ID, PAD_ID
from coursekit.train.losses import cross_entropy_loss

__all__ = [
    "ConditionedDecoder",
    "DecoderCache",
    "Transformer",
    "TransformerConfig",
    "TransformerStack",
    "check_token_ids",
    "set_attention_scratch",
]


@dataclass
class TransformerConfig:
    """Sizes and switches of the encoder-decoder. Defaults are the paper's base model."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    activation: Activation = "relu"
    norm_first: bool = False  # False: post-norm (the paper); True: pre-norm
    norm: NormKind = "layer"
    final_norm: bool | None = None  # a norm after each stack; default: only for pre-norm
    layer_norm_eps: float = 1e-5
    bias: bool = True
    tie_output: bool = False  # output projection = target embedding matrix
    share_embeddings: bool = False  # one embedding for source and target (joint vocabulary)
    scale_embeddings: bool = True  # multiply embeddings by sqrt(d_model)
    max_positions: int = 1024
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    scratch: bool = False  # run the course's written-out norms and attention

    def __post_init__(self) -> None:
        if self.n_heads < 1 or self.d_model < 1:
            raise ValueError(
                f"d_model and n_heads must be positive, got d_model={self.d_model}, "
                f"n_heads={self.n_heads}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig.dropout must be in [0, 1), got {self.dropout}.")
        if self.max_positions < 1:
            raise ValueError(
                f"TransformerConfig.max_positions must be positive, got {self.max_positions}."
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                "(the paper: 512 = 8 heads x 64)."
            )
        if min(self.src_vocab_size, self.tgt_vocab_size, self.d_ff) <= 0:
            raise ValueError("vocabulary sizes and d_ff must be positive.")
        if self.n_encoder_layers < 0 or self.n_decoder_layers < 1:
            raise ValueError("need n_encoder_layers >= 0 and n_decoder_layers >= 1.")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "share_embeddings needs one joint vocabulary: src_vocab_size "
                f"({self.src_vocab_size}) != tgt_vocab_size ({self.tgt_vocab_size})."
            )

    @property
    def use_final_norm(self) -> bool:
        return self.norm_first if self.final_norm is None else self.final_norm

    def block_config(self, *, cross_attention: bool) -> BlockConfig:
        """The :class:`~coursekit.layers.BlockConfig` of the encoder's or decoder's blocks."""
        return BlockConfig(
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            activation=self.activation,
            norm=self.norm,
            norm_first=self.norm_first,
            eps=self.layer_norm_eps,
            bias=self.bias,
            dropout=self.dropout,
            cross_attention=cross_attention,
            scratch=self.scratch,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def expected_parameters(self) -> int:
        """The closed-form parameter count (tied matrices counted once).

        * attention: 4 d^2 (+ 4d biases);  FFN: 2 d d_ff (3 for SwiGLU) + biases;
        * norm: 2d (LayerNorm with bias) or d (RMSNorm / no bias);
        * encoder layer: attention + FFN + 2 norms; decoder layer: 2 attentions + FFN + 3 norms;
        * embeddings: V_src d + V_tgt d (one matrix if shared); output: d V_tgt unless tied.
        """
        d = self.d_model
        attn = 4 * d * d + (4 * d if self.bias else 0)
        ffn = FeedForward.n_params(d, self.d_ff, self.activation, self.bias)
        norm = 2 * d if (self.norm == "layer" and self.bias) else d
        enc = self.n_encoder_layers * (attn + ffn + 2 * norm)
        dec = self.n_decoder_layers * (2 * attn + ffn + 3 * norm)
        emb = self.tgt_vocab_size * d + (0 if self.share_embeddings else self.src_vocab_size * d)
        out = 0 if self.tie_output else d * self.tgt_vocab_size
        final = (norm if self.n_encoder_layers else 0) + norm if self.use_final_norm else 0
        return enc + dec + emb + out + final


def set_attention_scratch(model: nn.Module, scratch: bool) -> None:
    """Switch every :class:`~coursekit.attention.MultiHeadAttention` inside ``model`` to the
    written-out attention (True) or PyTorch's fused kernel (False)."""
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.scratch = scratch


def check_token_ids(ids: torch.Tensor, vocab_size: int, *, what: str = "token ids") -> None:
    """Raise a clear error for non-integer, non-(B, T) or out-of-vocabulary ids.

    The range check reads values, which would stall a GPU once per call: it runs on CPU
    tensors, and on other devices only with ``COURSEKIT_DEBUG=1`` (PyTorch's own embedding
    still fails on a bad id, with a less friendly message).
    """
    if ids.dim() != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"expected (B, T) integer {what}, got {ids.dtype} {tuple(ids.shape)}.")
    if ids.numel() and value_checks(ids.device):
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            bad = high if high >= vocab_size else low
            raise ValueError(
                f"{what}: id {bad} is outside the vocabulary of size {vocab_size} "
                f"(valid ids 0..{vocab_size - 1}); check the tokenizer and the config."
            )


class TransformerStack(nn.Module):
    """``n_layers`` :class:`~coursekit.layers.TransformerBlock` plus the optional final norm.

    ``forward(x, **block_kwargs)`` passes the same keyword arguments to every block, except
    ``caches``/``memory_caches`` (one :class:`~coursekit.attention.KVCache` per block).
    """

    def __init__(self, config: BlockConfig, n_layers: int, *, final_norm: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(n_layers))
        self.norm = (
            make_norm(
                config.norm, config.d_model, config.eps, bias=config.bias, scratch=config.scratch
            )
            if final_norm and n_layers
            else None
        )

    def blocks(self) -> list[TransformerBlock]:
        """The stack's blocks, typed."""
        return [cast(TransformerBlock, layer) for layer in self.layers]

    def forward(
        self,
        x: torch.Tensor,
        *,
        caches: list[KVCache] | None = None,
        memory_caches: list[KVCache] | None = None,
        **block_kwargs: object,
    ) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(
                x,
                cache=None if caches is None else caches[i],
                memory_cache=None if memory_caches is None else memory_caches[i],
                **block_kwargs,
            )
        return self.norm(x) if self.norm is not None else x


class DecoderCache:
    """What cached decoding keeps per decoder block: self-attention keys/values that grow,
    and the cross-attention keys/values of the (fixed) encoder output, computed once."""

    def __init__(self, n_layers: int) -> None:
        self.self_attn = [KVCache() for _ in range(n_layers)]
        self.cross_attn = [KVCache(static=True) for _ in range(n_layers)]

    @property
    def length(self) -> int:
        return self.self_attn[0].length if self.self_attn else 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search)."""
        for cache in (*self.self_attn, *self.cross_attn):
            cache.reorder(index)


class EncoderDecoder(Protocol):
    """What :class:`ConditionedDecoder` needs of a model (:class:`Transformer`, ``T5``)."""

    training: bool

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def new_cache(self) -> DecoderCache: ...

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_valid: torch.Tensor | None = None,
        *,
        cache: DecoderCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor: ...


class ConditionedDecoder:
    """The decoder of an encoder-decoder given one batch of sources: a causal language
    model over the target (the :class:`coursekit.generate.CausalLM` protocol)."""

    def __init__(
        self, model: EncoderDecoder, memory: torch.Tensor, src_valid: torch.Tensor
    ) -> None:
        self.model, self.memory, self.src_valid = model, memory, src_valid
        self.context_length: int | None = None  # sinusoidal positions: no limit

    @property
    def training(self) -> bool:
        return self.model.training

    def eval(self) -> ConditionedDecoder:
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> ConditionedDecoder:
        self.model.train(mode)
        return self

    def new_cache(self) -> DecoderCache:
        return self.model.new_cache()

    def step(self, ids: torch.Tensor, cache: DecoderCache | None) -> torch.Tensor:
        """Logits ``(B, T, V)`` for target tokens ``ids`` (after the cached ones, if any)."""
        return self.model.decode(ids, self.memory, self.src_valid, cache=cache)


class Transformer(nn.Module):
    """The encoder-decoder Transformer built from a :class:`TransformerConfig`.

    * :meth:`encode` ``src (B, S)`` -> ``memory (B, S, d)``, ``src_valid (B, S)``
    * :meth:`decode` ``tgt_in (B, T)``, memory, src_valid -> logits ``(B, T, V_tgt)``
    * ``forward(src, tgt_in)`` = decode(tgt_in, *encode(src)) (teacher forcing)
    * :meth:`loss` ``(src, tgt)`` -> mean cross-entropy of ``tgt[:, 1:]`` given ``tgt[:, :-1]``
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.src_embed = (
            self.tgt_embed if c.share_embeddings else nn.Embedding(c.src_vocab_size, c.d_model)
        )
        self.positional = SinusoidalPositionalEncoding(c.d_model, c.max_positions)
        self.embed_dropout = Dropout(c.dropout)
        self.encoder = TransformerStack(
            c.block_config(cross_attention=False), c.n_encoder_layers, final_norm=c.use_final_norm
        )
        self.decoder = TransformerStack(
            c.block_config(cross_attention=True), c.n_decoder_layers, final_norm=c.use_final_norm
        )
        self.output = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.reset_parameters()
        if c.tie_output:
            self.output.weight = self.tgt_embed.weight

    def reset_parameters(self) -> None:
        """Xavier-uniform matrices (as PyTorch's nn.Transformer), N(0, 1/d) embeddings.

        With the sqrt(d_model) scaling the embedded inputs then have unit variance, the same
        scale as the sinusoidal encodings added to them. The fused query/key/value matrix is
        initialised as three separate ``d x d`` matrices would be.
        """
        for name, p in self.named_parameters():
            if "embed" in name:
                nn.init.normal_(p, std=self.config.d_model**-0.5)
            elif name.endswith("qkv_proj.weight"):
                for part in p.data.chunk(3, dim=0):
                    nn.init.xavier_uniform_(part)
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)

    # ---- pieces --------------------------------------------------------------------------------
    def _embed(self, table: nn.Embedding, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        check_token_ids(ids, table.num_embeddings)
        scale = math.sqrt(self.config.d_model) if self.config.scale_embeddings else 1.0
        return self.embed_dropout(self.positional(table(ids) * scale, offset=offset))

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src`` ``(B, S)`` -> memory ``(B, S, d)`` and ``src_valid`` ``(B, S)`` (non-padding)."""
        src_valid = src != self.config.pad_id
        memory = self.encoder(self._embed(self.src_embed, src), mask=src_valid[:, None, None, :])
        return memory, src_valid

    def condition(self, src: torch.Tensor) -> ConditionedDecoder:
        """Encode ``src`` ``(B, S)`` once; the result decodes step by step (see generate)."""
        memory, src_valid = self.encode(src)
        return ConditionedDecoder(self, memory, src_valid)

    def new_cache(self) -> DecoderCache:
        """An empty :class:`DecoderCache` for step-by-step decoding with :meth:`decode`."""
        return DecoderCache(len(self.decoder.layers))

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_valid: torch.Tensor | None = None,
        *,
        cache: DecoderCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """``tgt_in`` ``(B, T)`` (starting with ``<bos>``) -> next-token logits ``(B, T, V_tgt)``.

        With a ``cache`` (from :meth:`new_cache`), ``tgt_in`` holds only the tokens after the
        cached ones. ``last_only=True`` projects only the last position (``(B, 1, V)``).
        """
        offset = cache.length if cache is not None else 0
        hidden = self.decoder(
            self._embed(self.tgt_embed, tgt_in, offset),
            is_causal=True,
            memory=memory,
            memory_mask=None if src_valid is None else src_valid[:, None, None, :],
            caches=None if cache is None else cache.self_attn,
            memory_caches=None if cache is None else cache.cross_attn,
        )
        return self.output(hidden[:, -1:] if last_only else hidden)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, src_valid = self.encode(src)
        return self.decode(tgt_in, memory, src_valid)

    def loss(
        self, src: torch.Tensor, tgt: torch.Tensor, *, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        """Teacher-forced cross-entropy (optionally label-smoothed), padding ignored."""
        logits = self(src, tgt[:, :-1])
        return cross_entropy_loss(
            logits,
            tgt[:, 1:],
            label_smoothing=label_smoothing,
            ignore_index=self.config.pad_id,
            scratch=self.config.scratch,
        )

    def num_parameters(self) -> int:
        """Trainable parameters, tied matrices counted once."""
        return sum(p.numel() for p in self.parameters())

    def cross_attention_weights(
        self, src: torch.Tensor, tgt_in: torch.Tensor, *, layer: int = -1
    ) -> torch.Tensor:
        """Cross-attention weights ``(B, H, T, S)`` of one decoder layer (teacher-forced)."""
        cross = self.decoder.blocks()[layer].cross_attn
        assert cross is not None
        cross.keep_weights = True
        try:
            with eval_mode(self):
                self(src, tgt_in)
            weights = cross.last_weights
        finally:
            cross.keep_weights = False
            cross.last_weights = None
        assert weights is not None
        return weights

    # ---- interop with torch.nn.Transformer -----------------------------------------------------
    @torch.no_grad()
    def load_torch_transformer(self, ref: nn.Transformer) -> Transformer:
        """Copy the layer weights of a ``torch.nn.Transformer`` with the same sizes.

        Its encoder and decoder stacks then compute exactly what ours do (embeddings and output
        projection are ours; ``nn.Transformer`` has none). ``nn.Transformer`` puts a final norm
        after each stack even in post-norm mode: build ours with ``final_norm=True`` to match,
        or set ``ref.encoder.norm = ref.decoder.norm = None`` for the paper's exact stack.
        """

        def copy_norm(ours: nn.Module | None, theirs: nn.Module | None, where: str) -> None:
            if (ours is None) != (theirs is None):
                raise ValueError(
                    f"{where}: one model has a final norm and the other not; set final_norm="
                    f"{theirs is not None} in the TransformerConfig."
                )
            if ours is not None and theirs is not None:
                ours.load_state_dict(theirs.state_dict())

        enc_layers = list(ref.encoder.layers)
        dec_layers = list(ref.decoder.layers)
        if len(enc_layers) != len(self.encoder.layers) or len(dec_layers) != len(
            self.decoder.layers
        ):
            raise ValueError("the two models have different numbers of layers.")
        for ours, theirs in zip(self.encoder.blocks(), enc_layers, strict=True):
            ours.self_attn.load_torch(theirs.self_attn)
            ours.ffn.w1.load_state_dict(theirs.linear1.state_dict())
            ours.ffn.w2.load_state_dict(theirs.linear2.state_dict())
            ours.self_attn_norm.load_state_dict(theirs.norm1.state_dict())
            ours.ffn_norm.load_state_dict(theirs.norm2.state_dict())
        for ours, theirs in zip(self.decoder.blocks(), dec_layers, strict=True):
            assert ours.cross_attn is not None and ours.cross_attn_norm is not None
            ours.self_attn.load_torch(theirs.self_attn)
            ours.cross_attn.load_torch(theirs.multihead_attn)
            ours.ffn.w1.load_state_dict(theirs.linear1.state_dict())
            ours.ffn.w2.load_state_dict(theirs.linear2.state_dict())
            ours.self_attn_norm.load_state_dict(theirs.norm1.state_dict())
            ours.cross_attn_norm.load_state_dict(theirs.norm2.state_dict())
            ours.ffn_norm.load_state_dict(theirs.norm3.state_dict())
        copy_norm(self.encoder.norm, ref.encoder.norm, "encoder")
        copy_norm(self.decoder.norm, ref.decoder.norm, "decoder")
        return self
