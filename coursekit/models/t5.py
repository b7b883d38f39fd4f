"""T5: the text-to-text encoder-decoder (Raffel et al., 2020), built from the course's one block.

Every task is "text in, text out": a prefix names the task (``"translate French to English: "``,
``"sentiment: "``) and the answer is text the decoder writes. The architecture is the 2017
encoder-decoder with four simplifications, each a flag of the one
:class:`~coursekit.layers.TransformerBlock`::

    input ids (B, S) --shared embedding--> N x block ----------------> final RMSNorm --> memory
    decoder ids (B, T) --shared embedding--> N x block(+ cross) --> final RMSNorm --> (x d^-0.5) --> logits

* **pre-norm** with **RMSNorm** (a gain, no bias, no mean subtraction; eps 1e-6), and a final
  norm after each stack;
* **no biases** anywhere (attention, feed-forward, norms, output);
* **relative position bias** instead of position embeddings: a learned scalar per head and
  per distance *bucket* (:func:`~coursekit.positional.t5_relative_position_bucket`), added to
  the attention scores. Each stack owns one table, computed once per forward pass and shared
  by all its layers: bidirectional buckets in the encoder, causal ones in the decoder;
  cross-attention has none;
* attention scores are **not** divided by sqrt(d_head) (the scale is folded into the query
  matrix's initialisation instead);
* one embedding matrix **shared** by encoder, decoder and (T5 v1.0) the output layer, whose
  input is then scaled by ``d_model^-0.5``;
* a ReLU feed-forward network (v1.0) or a gated GELU one (v1.1: :meth:`T5Config.v1_1`, which
  also unties the output layer).

The decoder starts from ``decoder_start_id`` (the padding id 0, as T5) and targets end in
``eos_id`` (1). A :class:`T5` is a :class:`coursekit.generate.ConditionalLM`:
``greedy_decode(model, input_ids)`` writes answers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from coursekit.attention import KVCache, MultiHeadAttention
from coursekit.dropout import Dropout
from coursekit.layers import ACTIVATIONS, Activation, BlockConfig, RMSNorm
from coursekit.models.transformer import (
    ConditionedDecoder,
    DecoderCache,
    TransformerStack,
    check_token_ids,
    set_attention_scratch,
)
from coursekit.positional import T5RelativeBias
from coursekit.train.losses import cross_entropy_loss

__all__ = ["T5", "T5Config", "T5Stack", "shift_right"]

IGNORE_INDEX = -100


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass
class T5Config:
    """Sizes and switches of a :class:`T5`. The defaults are T5-small v1.0 (60M parameters).

    * ``vocab_size``, ``d_model``, ``n_heads``, ``n_encoder_layers``, ``n_decoder_layers``
      (default: as many as the encoder), ``d_ff``;
    * ``activation``: ``"relu"`` (v1.0) or ``"geglu"`` (gated GELU, v1.1); any of the block's;
    * ``num_buckets`` / ``max_distance``: the relative-position buckets (32 and 128);
    * ``dropout``: on the embeddings, attention weights, inside the FFN, on each residual
      branch and after each stack's final norm (T5 pre-training: 0.1; short runs: 0);
    * ``tie_embeddings``: the output layer reuses the shared embedding (v1.0);
      ``scale_output`` multiplies the decoder output by ``d_model^-0.5`` before it
      (default: when tied, as v1.0);
    * ``pad_id`` / ``eos_id`` / ``decoder_start_id`` (0 / 1 / 0, as T5's vocabulary);
    * ``init_factor``: multiplies every initial standard deviation (1.0);
    * ``scratch``: run the course's written-out norms, attention and loss.
    """

    vocab_size: int = 32128
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int | None = None
    d_ff: int = 2048
    activation: Activation = "relu"
    num_buckets: int = 32
    max_distance: int = 128
    dropout: float = 0.1
    eps: float = 1e-6
    tie_embeddings: bool = True
    scale_output: bool | None = None
    pad_id: int = 0
    eos_id: int = 1
    decoder_start_id: int = 0
    init_factor: float = 1.0
    scratch: bool = False

    def __post_init__(self) -> None:
        if self.n_decoder_layers is None:
            self.n_decoder_layers = self.n_encoder_layers
        if self.scale_output is None:
            self.scale_output = self.tie_embeddings
        for name in ("vocab_size", "d_model", "n_heads", "n_decoder_layers", "d_ff"):
            value = getattr(self, name)
            if not _positive_int(value):
                raise ValueError(f"T5Config.{name} must be a positive integer, got {value!r}.")
        if not (isinstance(self.n_encoder_layers, int) and self.n_encoder_layers >= 1):
            raise ValueError(
                f"T5Config.n_encoder_layers must be a positive integer, got {self.n_encoder_layers!r}."
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"T5Config.d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                "(T5-small: 512 = 8 heads x 64)."
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"T5Config.activation={self.activation!r}: use 'relu' (T5 v1.0), 'geglu' "
                f"(v1.1) or one of {', '.join(ACTIVATIONS)}."
            )
        if not (_positive_int(self.num_buckets) and self.num_buckets >= 4):
            raise ValueError(
                f"T5Config.num_buckets must be an integer >= 4, got {self.num_buckets!r}."
            )
        exact = self.num_buckets // 2  # the decoder's (causal) buckets: half of them exact
        if not (_positive_int(self.max_distance) and self.max_distance > exact):
            raise ValueError(
                f"T5Config.max_distance={self.max_distance!r} must exceed the {exact} exact "
                f"buckets of the decoder's num_buckets={self.num_buckets}."
            )
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"T5Config.dropout must be in [0, 1), got {self.dropout!r}.")
        if not self.eps > 0:
            raise ValueError(f"T5Config.eps must be positive, got {self.eps}.")
        if not self.init_factor > 0:
            raise ValueError(f"T5Config.init_factor must be positive, got {self.init_factor}.")
        for name in ("pad_id", "eos_id", "decoder_start_id"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 <= value < self.vocab_size):
                raise ValueError(
                    f"T5Config.{name}={value!r} must be a token id in 0..{self.vocab_size - 1}."
                )

    @classmethod
    def v1_1(cls, **kwargs: Any) -> T5Config:
        """T5 v1.1: gated-GELU feed-forward, output layer not tied (and not scaled)."""
        defaults: dict[str, Any] = dict(activation="geglu", tie_embeddings=False)
        return cls(**{**defaults, **kwargs})

    def replace(self, **changes: Any) -> T5Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---- derived -------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def bos_id(self) -> int:
        """The decoder's first token (the generate module's name for ``decoder_start_id``)."""
        return self.decoder_start_id

    def block_config(self, *, cross_attention: bool) -> BlockConfig:
        """The :class:`~coursekit.layers.BlockConfig` of the encoder's or decoder's blocks."""
        return BlockConfig(
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            activation=self.activation,
            norm="rms",
            norm_first=True,
            eps=self.eps,
            bias=False,
            dropout=self.dropout,
            attn_scale=1.0,
            cross_attention=cross_attention,
            scratch=self.scratch,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def expected_parameters(self) -> int:
        """The closed-form parameter count (a tied output matrix counted once).

        Shared embedding ``V d``; per encoder layer ``4 d^2`` (attention) + FFN (``2 d d_ff``,
        ``3 d d_ff`` gated) + two RMSNorm gains ``2 d``; per decoder layer a second attention
        and a third gain; a bias table ``num_buckets x n_heads`` and a final gain ``d`` per
        stack; the output matrix ``d V`` unless tied.
        """
        assert self.n_decoder_layers is not None
        d, v = self.d_model, self.vocab_size
        enc = self.n_encoder_layers * self.block_config(cross_attention=False).n_params()
        dec = self.n_decoder_layers * self.block_config(cross_attention=True).n_params()
        stacks = 2 * (self.num_buckets * self.n_heads + d)
        return v * d + enc + dec + stacks + (0 if self.tie_embeddings else d * v)


def shift_right(
    labels: torch.Tensor, *, decoder_start_id: int = 0, pad_id: int = 0
) -> torch.Tensor:
    """The decoder's input for teacher forcing: ``labels`` ``(B, T)`` moved one step right
    after ``decoder_start_id``, with ignored positions (-100) turned into ``pad_id``."""
    if labels.dim() != 2:
        raise ValueError(f"labels must be (B, T) token ids, got shape {tuple(labels.shape)}.")
    start = labels.new_full((labels.shape[0], 1), decoder_start_id)
    shifted = torch.cat([start, labels[:, :-1]], dim=1)
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_id)


class T5Stack(TransformerStack):
    """An encoder or decoder stack of T5: blocks + final RMSNorm + one relative-bias table.

    The bias ``(1, H, T, T_past + T)`` is computed once per call and handed to every block's
    self-attention (T5 computes it in the first layer and reuses it in the others).
    ``relative_bias`` holds the table; ``layers`` and ``norm`` are the
    :class:`~coursekit.models.transformer.TransformerStack`'s.
    """

    def __init__(self, config: T5Config, *, decoder: bool) -> None:
        n_layers = config.n_decoder_layers if decoder else config.n_encoder_layers
        assert n_layers is not None
        super().__init__(config.block_config(cross_attention=decoder), n_layers, final_norm=True)
        self.is_decoder = decoder
        self.relative_bias = T5RelativeBias(
            config.n_heads,
            bidirectional=not decoder,
            num_buckets=config.num_buckets,
            max_distance=config.max_distance,
        )

    def position_bias(
        self, t_q: int, t_k: int, *, device: torch.device | None = None
    ) -> torch.Tensor:
        """The bias ``(1, H, t_q, t_k)`` for queries that are the last ``t_q`` of ``t_k`` positions."""
        return self.relative_bias(t_q, t_k, device=device)

    def forward(
        self,
        x: torch.Tensor,
        *,
        caches: list[KVCache] | None = None,
        memory_caches: list[KVCache] | None = None,
        **block_kwargs: object,
    ) -> torch.Tensor:
        """x ``(B, T, d)`` (embedded) -> normalised hidden states ``(B, T, d)``."""
        past = caches[0].length if caches else 0
        t = x.shape[1]
        bias = self.position_bias(t, past + t, device=x.device).to(x.dtype)
        return super().forward(
            x,
            caches=caches,
            memory_caches=memory_caches,
            bias=bias,
            is_causal=self.is_decoder,
            **block_kwargs,
        )


class T5(nn.Module):
    """The T5 encoder-decoder (see the module docstring).

    * ``forward(input_ids, decoder_input_ids, attention_mask=None)`` -> logits ``(B, T_dec, V)``;
      ``attention_mask`` is Hugging Face's ``(B, S)``, 1 = real token, 0 = padding (default:
      every position that is not ``pad_id``);
    * :meth:`loss` ``(input_ids, labels)``: teacher-forced cross-entropy, the decoder reading
      ``shift_right(labels)``; -100 and ``pad_id`` in ``labels`` are ignored;
    * :meth:`encode`, :meth:`decode`, :meth:`condition`, :meth:`new_cache`: cached decoding
      (``coursekit.generate.greedy_decode(model, input_ids)``).

    Submodules: ``shared`` (the embedding), ``encoder`` and ``decoder`` (:class:`T5Stack`,
    each with its ``relative_bias``), ``lm_head``.
    """

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.config = c = config
        self.scratch = c.scratch
        self.shared = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = T5Stack(c, decoder=False)
        self.decoder = T5Stack(c, decoder=True)
        self.dropout = Dropout(c.dropout)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.reset_parameters()
        if c.tie_embeddings:
            self.lm_head.weight = self.shared.weight

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """T5's initialisation (every standard deviation times ``init_factor``).

        Embedding and untied output ~ N(0, 1); queries ~ N(0, (d d_head)^-1/2), which stands in
        for the 1/sqrt(d_head) the scores do not get; keys, values and the FFN's input ~
        N(0, d^-1/2); the attention output ~ N(0, d^-1/2) and the FFN's output ~ N(0, d_ff^-1/2);
        bias tables ~ N(0, d^-1/2); norm gains 1.
        """
        c, f = self.config, self.config.init_factor
        d = c.d_model
        nn.init.normal_(self.shared.weight, 0.0, f)
        if not c.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, 0.0, f)
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                w = module.qkv_proj.weight
                nn.init.normal_(w[: module.q_dim], 0.0, f * (d * c.head_dim) ** -0.5)
                nn.init.normal_(w[module.q_dim :], 0.0, f * d**-0.5)
                nn.init.normal_(module.out_proj.weight, 0.0, f * d**-0.5)
            elif isinstance(module, T5RelativeBias):
                nn.init.normal_(module.relative_attention_bias.weight, 0.0, f * d**-0.5)
        for stack in (self.encoder, self.decoder):
            for block in stack.blocks():
                ffn = block.ffn
                nn.init.normal_(ffn.w1.weight, 0.0, f * d**-0.5)
                if ffn.w3 is not None:
                    nn.init.normal_(ffn.w3.weight, 0.0, f * d**-0.5)
                nn.init.normal_(ffn.w2.weight, 0.0, f * c.d_ff**-0.5)
        for module in self.modules():
            if isinstance(module, (nn.RMSNorm, RMSNorm)) and module.weight is not None:
                nn.init.ones_(module.weight)

    # ---- pieces --------------------------------------------------------------------------------
    def _embed(self, ids: torch.Tensor, what: str) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            check_token_ids(ids, self.config.vocab_size, what=what)
        return self.dropout(self.shared(ids))

    def _valid(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if attention_mask is None:
            return input_ids != self.config.pad_id
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask {tuple(attention_mask.shape)} must have the shape of input_ids "
                f"{tuple(input_ids.shape)} (1 = real token, 0 = padding)."
            )
        return attention_mask.bool()

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_ids`` ``(B, S)`` -> memory ``(B, S, d)`` and ``valid`` ``(B, S)`` (bool)."""
        valid = self._valid(input_ids, attention_mask)
        x = self._embed(input_ids, "input_ids")
        memory = self.dropout(self.encoder(x, mask=valid[:, None, None, :]))
        return memory, valid

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        valid: torch.Tensor | None = None,
        *,
        cache: DecoderCache | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """``decoder_input_ids`` ``(B, T)`` -> next-token logits ``(B, T, V)`` (``(B, 1, V)``
        with ``last_only``). With a ``cache`` the ids continue the cached ones."""
        x = self._embed(decoder_input_ids, "decoder_input_ids")
        hidden = self.decoder(
            x,
            memory=memory,
            memory_mask=None if valid is None else valid[:, None, None, :],
            caches=None if cache is None else cache.self_attn,
            memory_caches=None if cache is None else cache.cross_attn,
        )
        hidden = self.dropout(hidden[:, -1:] if last_only else hidden)
        if self.config.scale_output:
            hidden = hidden * self.config.d_model**-0.5
        return self.lm_head(hidden)

    def forward(
        self,
        input_ids: torch.Tensor,
        decoder_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, S)`` inputs and ``(B, T)`` decoder inputs -> logits ``(B, T, V)``."""
        memory, valid = self.encode(input_ids, attention_mask)
        return self.decode(decoder_input_ids, memory, valid)

    def loss(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """Mean cross-entropy of ``labels`` ``(B, T)`` (answers ending in ``eos_id``, padded
        with ``pad_id`` or -100) given the inputs, teacher-forced."""
        c = self.config
        labels = labels.masked_fill(labels == c.pad_id, IGNORE_INDEX)
        dec_in = shift_right(labels, decoder_start_id=c.decoder_start_id, pad_id=c.pad_id)
        logits = self(input_ids, dec_in, attention_mask)
        return cross_entropy_loss(
            logits,
            labels,
            label_smoothing=label_smoothing,
            ignore_index=IGNORE_INDEX,
            scratch=self.scratch,
        )

    # ---- decoding ------------------------------------------------------------------------------
    def new_cache(self) -> DecoderCache:
        """An empty cache for step-by-step decoding with :meth:`decode`."""
        return DecoderCache(len(self.decoder.layers))

    def condition(self, input_ids: torch.Tensor) -> ConditionedDecoder:
        """Encode ``input_ids`` ``(B, S)`` once (padding = ``pad_id``); the result decodes step
        by step (:func:`coursekit.generate.greedy_decode`)."""
        memory, valid = self.encode(input_ids)
        return ConditionedDecoder(self, memory, valid)

    # ---- helpers ---------------------------------------------------------------------------------
    def num_parameters(self) -> int:
        """Trainable parameters, a tied matrix counted once."""
        return sum(p.numel() for p in self.parameters())

    def set_scratch(self, scratch: bool = True) -> T5:
        """Switch every attention and the loss to the written-out versions (True) or back."""
        set_attention_scratch(self, scratch)
        self.scratch = scratch
        return self

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{c.n_encoder_layers}+{c.n_decoder_layers} layers, d_model={c.d_model}, "
            f"heads={c.n_heads}, {c.activation}, tied={c.tie_embeddings}"
        )
