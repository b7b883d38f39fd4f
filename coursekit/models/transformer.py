"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Assembled from the course's own blocks::

    source ids (B, S) --embed * sqrt(d) + PE--> N x EncoderLayer --------------> memory (B, S, d)
    target ids (B, T) --embed * sqrt(d) + PE--> N x DecoderLayer(memory) --> Linear --> logits (B, T, V)

* :class:`EncoderLayer`: self-attention, then the feed-forward net, each wrapped in a
  :class:`~coursekit.layers.ResidualBlock` (post-norm by default, pre-norm with ``norm_first``).
* :class:`DecoderLayer`: *masked* (causal) self-attention, cross-attention to the encoder
  output (queries from the decoder, keys/values from the memory), then the feed-forward net.
* The output projection may share its matrix with the target embedding (``tie_output``).

Batches follow notebook 03's convention: ``src`` ``(B, S)`` padded with ``pad_id``;
``tgt`` ``(B, T)`` = ``<bos> y_1 ... y_n <eos> <pad>...``. Training is teacher-forced:
the decoder reads ``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from coursekit.attention import MultiHeadAttention
from coursekit.layers import Activation, FeedForward, NormKind, ResidualBlock, make_norm
from coursekit.positional import SinusoidalPositionalEncoding

__all__ = [
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "Transformer",
    "TransformerConfig",
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
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self) -> None:
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


def _residual(c: TransformerConfig) -> ResidualBlock:
    """The residual + norm wrapper every sub-layer gets (pre- or post-norm by ``c.norm_first``)."""
    return ResidualBlock(
        c.d_model,
        norm_first=c.norm_first,
        norm=c.norm,
        eps=c.layer_norm_eps,
        dropout=c.dropout,
        bias=c.bias,
    )


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each with its residual connection and norm.

    x ``(B, S, d)``, src_valid ``(B, S)`` bool (True = real token) -> ``(B, S, d)``.
    """

    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.ffn = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, dropout=c.dropout, bias=c.bias
        )
        self.res_attn = _residual(c)
        self.res_ffn = _residual(c)

    def forward(self, x: torch.Tensor, src_valid: torch.Tensor | None = None) -> torch.Tensor:
        x = self.res_attn(x, lambda h: self.self_attn(h, key_padding_mask=src_valid))
        return self.res_ffn(x, self.ffn)


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the memory, feed-forward; each with residual + norm.

    y ``(B, T, d)``, memory ``(B, S, d)``, src_valid ``(B, S)`` -> ``(B, T, d)``. Position ``t``
    sees target positions ``<= t`` and every real source position.
    """

    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.cross_attn = MultiHeadAttention(c.d_model, c.n_heads, bias=c.bias, dropout=c.dropout)
        self.ffn = FeedForward(
            c.d_model, c.d_ff, activation=c.activation, dropout=c.dropout, bias=c.bias
        )
        self.res_self = _residual(c)
        self.res_cross = _residual(c)
        self.res_ffn = _residual(c)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        src_valid: torch.Tensor | None = None,
        *,
        return_cross_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        y = self.res_self(y, lambda h: self.self_attn(h, is_causal=True))
        weights: list[torch.Tensor] = []

        def cross(h: torch.Tensor) -> torch.Tensor:
            if not return_cross_weights:
                return self.cross_attn(h, memory, key_padding_mask=src_valid)
            out, w = self.cross_attn(h, memory, key_padding_mask=src_valid, return_weights=True)
            weights.append(w)
            return out

        y = self.res_cross(y, cross)
        y = self.res_ffn(y, self.ffn)
        return (y, weights[0]) if return_cross_weights else y


class Encoder(nn.Module):
    """A stack of :class:`EncoderLayer` (plus a final norm for pre-norm). ``(B, S, d)`` in and out."""

    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.n_encoder_layers))
        self.norm = (
            make_norm(c.norm, c.d_model, c.layer_norm_eps, bias=c.bias)
            if c.use_final_norm and c.n_encoder_layers
            else None
        )

    def forward(self, x: torch.Tensor, src_valid: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, src_valid)
        return self.norm(x) if self.norm is not None else x


class Decoder(nn.Module):
    """A stack of :class:`DecoderLayer` (plus a final norm for pre-norm). ``(B, T, d)`` in and out."""

    def __init__(self, c: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.n_decoder_layers))
        self.norm = (
            make_norm(c.norm, c.d_model, c.layer_norm_eps, bias=c.bias)
            if c.use_final_norm
            else None
        )

    def forward(
        self, y: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        for layer in self.layers:
            y = layer(y, memory, src_valid)
        return self.norm(y) if self.norm is not None else y


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
        self.embed_dropout = nn.Dropout(c.dropout)
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.output = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.reset_parameters()
        if c.tie_output:
            self.output.weight = self.tgt_embed.weight

    def reset_parameters(self) -> None:
        """Xavier-uniform matrices (as PyTorch's nn.Transformer), N(0, 1/d) embeddings.

        With the sqrt(d_model) scaling the embedded inputs then have unit variance, the same
        scale as the sinusoidal encodings added to them.
        """
        for name, p in self.named_parameters():
            if "embed" in name:
                nn.init.normal_(p, std=self.config.d_model**-0.5)
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)

    # ---- pieces --------------------------------------------------------------------------------
    def _embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype.is_floating_point:
            raise ValueError(
                f"expected (B, T) integer token ids, got {ids.dtype} {tuple(ids.shape)}."
            )
        if ids.numel() and (int(ids.max()) >= table.num_embeddings or int(ids.min()) < 0):
            raise ValueError(
                f"token id {int(ids.max())} is outside the vocabulary of size "
                f"{table.num_embeddings}; check the tokenizer and the config's vocab sizes."
            )
        scale = math.sqrt(self.config.d_model) if self.config.scale_embeddings else 1.0
        return self.embed_dropout(self.positional(table(ids) * scale))

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src`` ``(B, S)`` -> memory ``(B, S, d)`` and ``src_valid`` ``(B, S)`` (non-padding)."""
        src_valid = src != self.config.pad_id
        return self.encoder(self._embed(self.src_embed, src), src_valid), src_valid

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_valid: torch.Tensor | None = None,
        *,
        last_only: bool = False,
    ) -> torch.Tensor:
        """``tgt_in`` ``(B, T)`` (starting with ``<bos>``) -> next-token logits ``(B, T, V_tgt)``.

        ``last_only=True`` projects only the last position (``(B, 1, V)``): all that
        step-by-step decoding needs, and much cheaper for a large vocabulary.
        """
        hidden = self.decoder(self._embed(self.tgt_embed, tgt_in), memory, src_valid)
        return self.output(hidden[:, -1:] if last_only else hidden)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, src_valid = self.encode(src)
        return self.decode(tgt_in, memory, src_valid)

    def loss(
        self, src: torch.Tensor, tgt: torch.Tensor, *, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        """Teacher-forced cross-entropy (optionally label-smoothed), padding ignored."""
        from coursekit.train import label_smoothing_loss

        logits = self(src, tgt[:, :-1])
        return label_smoothing_loss(
            logits, tgt[:, 1:], eps=label_smoothing, ignore_index=self.config.pad_id
        )

    def num_parameters(self) -> int:
        """Trainable parameters, tied matrices counted once."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def cross_attention_weights(
        self, src: torch.Tensor, tgt_in: torch.Tensor, *, layer: int = -1
    ) -> torch.Tensor:
        """Cross-attention weights ``(B, H, T, S)`` of one decoder layer (teacher-forced)."""
        was_training = self.training
        self.eval()
        memory, src_valid = self.encode(src)
        y = self._embed(self.tgt_embed, tgt_in)
        index = layer % len(self.decoder.layers)
        weights = None
        for i, block in enumerate(self.decoder.layers):
            if i == index:
                y, weights = block(y, memory, src_valid, return_cross_weights=True)
            else:
                y = block(y, memory, src_valid)
        self.train(was_training)
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

        def copy_attn(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
            converted = MultiHeadAttention.from_torch(theirs)
            ours.load_state_dict(converted.state_dict())

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
        for ours, theirs in zip(self.encoder.layers, enc_layers, strict=True):
            copy_attn(ours.self_attn, theirs.self_attn)
            ours.ffn.w1.load_state_dict(theirs.linear1.state_dict())
            ours.ffn.w2.load_state_dict(theirs.linear2.state_dict())
            ours.res_attn.norm.load_state_dict(theirs.norm1.state_dict())
            ours.res_ffn.norm.load_state_dict(theirs.norm2.state_dict())
        for ours, theirs in zip(self.decoder.layers, dec_layers, strict=True):
            copy_attn(ours.self_attn, theirs.self_attn)
            copy_attn(ours.cross_attn, theirs.multihead_attn)
            ours.ffn.w1.load_state_dict(theirs.linear1.state_dict())
            ours.ffn.w2.load_state_dict(theirs.linear2.state_dict())
            ours.res_self.norm.load_state_dict(theirs.norm1.state_dict())
            ours.res_cross.norm.load_state_dict(theirs.norm2.state_dict())
            ours.res_ffn.norm.load_state_dict(theirs.norm3.state_dict())
        copy_norm(self.encoder.norm, ref.encoder.norm, "encoder")
        copy_norm(self.decoder.norm, ref.decoder.norm, "decoder")
        return self
