"""GRU encoder-decoder for translation, without and with additive (Bahdanau) attention.

Notebook 02 writes the recurrent cells out by hand and checks them against PyTorch; here we use
``torch.nn.GRU`` for speed.

* **Encoder**: embeddings -> bidirectional GRU over the (packed) source -> states ``h_1..h_S``
  ``(B, S, 2H)`` and a summary (both directions' final states) ``(B, 2H)``.
* **Decoder without attention** (Cho et al. / Sutskever et al. 2014): every step sees the
  *same* summary vector ``c`` (concatenated to its input). The whole sentence must squeeze
  through ``c``: the context-vector bottleneck.
* **Decoder with attention** (Bahdanau et al. 2014 scoring): at each target step ``t`` the
  decoder state ``s_t`` scores every source state with ``e_tj = v^T tanh(W s_t + U h_j)``,
  the softmax of the scores (masked on padding) gives weights ``alpha_tj`` (the *alignment*),
  and the context ``c_t = sum_j alpha_tj h_j`` is a fresh, step-specific summary.
  As in Luong et al. (2015) the context is computed *after* the GRU step, so teacher-forced
  training runs the decoder GRU over the whole target in one call (much faster on a CPU).

Text handling (lower-casing word tokenizer, vocabulary, detokenizer) is defined in
:mod:`coursekit.tokenize` and re-exported here, so that notebooks 03 and 05 can prepare the
French-English pairs the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from coursekit.dropout import Dropout
from coursekit.rnn.language_model import RecurrentCache
from coursekit.tokenize import (
    BOS_ID,
    BOS_TOKEN,
    EOS_ID,
    EOS_TOKEN,
    PAD_ID,
    PAD_TOKEN,
    UNK_TOKEN,
    WordVocab,
    word_detokenize,
    word_tokenize,
)

__all__ = [
    "AdditiveAttention",
    "Seq2Seq",
    "Seq2SeqConfig",
    "WordVocab",
    "detokenize",
    "tokenize",
]

# The word vocabulary and its tokenizer live in coursekit.tokenize; re-exported here because
# notebooks import them from this module.
PAD, BOS, EOS, UNK = PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN
tokenize = word_tokenize
detokenize = word_detokenize


@dataclass
class Seq2SeqConfig:
    """Sizes of the GRU encoder-decoder. ``attention=False`` gives the fixed-context baseline."""

    src_vocab: int
    tgt_vocab: int
    d_emb: int = 128
    d_hidden: int = 256
    attention: bool = True
    dropout: float = 0.1
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    def __post_init__(self) -> None:
        for name in ("src_vocab", "tgt_vocab", "d_emb", "d_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Seq2SeqConfig.{name} must be a positive integer, got {value!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"Seq2SeqConfig.dropout must be in [0, 1), got {self.dropout}.")
        for name in ("pad_id", "bos_id", "eos_id"):
            value = getattr(self, name)
            if not 0 <= value < self.tgt_vocab:
                raise ValueError(
                    f"Seq2SeqConfig.{name}={value} is outside the target vocabulary "
                    f"(0..{self.tgt_vocab - 1})."
                )

    def to_dict(self) -> dict:
        return asdict(self)


class AdditiveAttention(nn.Module):
    """Bahdanau scoring ``e_j = v^T tanh(W s + U h_j)``; softmax over unmasked ``j``.

    ``forward(query (B, T, d_q), keys (B, S, d_k), key_valid (B, S) bool)`` returns the
    contexts ``(B, T, d_k)`` and the weights ``(B, T, S)``.
    """

    def __init__(self, d_query: int, d_key: int, d_attn: int) -> None:
        super().__init__()
        self.w_query = nn.Linear(d_query, d_attn, bias=False)
        self.w_key = nn.Linear(d_key, d_attn, bias=True)
        self.v = nn.Linear(d_attn, 1, bias=False)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, key_valid: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if query.dim() != 3 or keys.dim() != 3 or query.shape[0] != keys.shape[0]:
            raise ValueError(
                f"query must be (B, T, d_q) and keys (B, S, d_k); got {tuple(query.shape)}, "
                f"{tuple(keys.shape)}."
            )
        # (B, T, 1, A) + (B, 1, S, A) -> (B, T, S)
        scores = self.v(
            torch.tanh(self.w_query(query).unsqueeze(2) + self.w_key(keys).unsqueeze(1))
        )
        scores = scores.squeeze(-1)
        if key_valid is not None:
            scores = scores.masked_fill(~key_valid.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, keys), weights


class Seq2Seq(nn.Module):
    """GRU encoder-decoder; see the module docstring. Batches are ``(src, tgt)`` id tensors.

    ``src`` ``(B, S)`` padded with ``pad_id`` and ending in ``eos``; ``tgt`` ``(B, T)`` starts
    with ``bos`` and ends with ``eos`` (then padding). :meth:`forward` is teacher-forced.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        h = c.d_hidden
        self.src_emb = nn.Embedding(c.src_vocab, c.d_emb, padding_idx=c.pad_id)
        self.tgt_emb = nn.Embedding(c.tgt_vocab, c.d_emb, padding_idx=c.pad_id)
        self.encoder = nn.GRU(c.d_emb, h, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * h, h)  # encoder summary -> initial decoder state
        dec_in = c.d_emb if c.attention else c.d_emb + 2 * h
        self.decoder = nn.GRU(dec_in, h, batch_first=True)
        self.attn = AdditiveAttention(h, 2 * h, h) if c.attention else None
        self.combine = nn.Linear(h + 2 * h + c.d_emb, h)
        self.out = nn.Linear(h, c.tgt_vocab)
        self.drop = Dropout(c.dropout)

    # ---- encoder -------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``src`` ``(B, S)`` -> states ``(B, S, 2H)``, summary ``(B, 2H)``, valid ``(B, S)``."""
        if src.dim() != 2:
            raise ValueError(f"src must be (B, S) token ids, got shape {tuple(src.shape)}.")
        valid = src != self.config.pad_id
        lengths = valid.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(
            self.drop(self.src_emb(src)), lengths, batch_first=True, enforce_sorted=False
        )
        states, h_n = self.encoder(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=src.shape[1])
        summary = torch.cat([h_n[0], h_n[1]], dim=-1)  # forward's last, backward's first
        return states, summary, valid

    # ---- decoder -------------------------------------------------------------------------------
    def _decode(
        self,
        tgt_in: torch.Tensor,
        states: torch.Tensor,
        summary: torch.Tensor,
        valid: torch.Tensor,
        hidden: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Run the decoder on ``tgt_in`` ``(B, T)``: logits ``(B, T, V)``, hidden, weights."""
        emb = self.drop(self.tgt_emb(tgt_in))  # (B, T, E)
        if hidden is None:
            hidden = torch.tanh(self.bridge(summary)).unsqueeze(0)  # (1, B, H)
        if self.attn is None:
            fixed = summary.unsqueeze(1).expand(-1, emb.shape[1], -1)
            out, hidden = self.decoder(torch.cat([emb, fixed], dim=-1), hidden)
            context, weights = fixed, None
        else:
            out, hidden = self.decoder(emb, hidden)  # (B, T, H)
            context, weights = self.attn(out, states, valid)  # (B, T, 2H), (B, T, S)
        feat = torch.tanh(self.combine(torch.cat([out, context, emb], dim=-1)))
        return self.out(self.drop(feat)), hidden, weights

    def forward(
        self, src: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: logits ``(B, T, V)`` for next tokens, attention ``(B, T, S)`` or None."""
        states, summary, valid = self.encode(src)
        logits, _, weights = self._decode(tgt_in, states, summary, valid, None)
        return logits, weights

    def loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of predicting ``tgt[:, 1:]`` from ``tgt[:, :-1]`` (padding ignored)."""
        logits, _ = self(src, tgt[:, :-1])
        target = tgt[:, 1:]
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=self.config.pad_id,
        )

    # ---- the decoding protocol (coursekit.generate.ConditionalLM) --------------------------
    def condition(self, src: torch.Tensor) -> ConditionedRNNDecoder:
        """Encode ``src`` ``(B, S)`` once; the result decodes step by step (see generate)."""
        return ConditionedRNNDecoder(self, *self.encode(src))


class ConditionedRNNDecoder:
    """The GRU decoder of a :class:`Seq2Seq` given one batch of sources: a causal language
    model over the target (the :class:`coursekit.generate.CausalLM` protocol)."""

    context_length: int | None = None

    def __init__(
        self, model: Seq2Seq, states: torch.Tensor, summary: torch.Tensor, valid: torch.Tensor
    ) -> None:
        self.model, self.states, self.summary, self.valid = model, states, summary, valid

    @property
    def training(self) -> bool:
        return self.model.training

    def eval(self) -> ConditionedRNNDecoder:
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> ConditionedRNNDecoder:
        self.model.train(mode)
        return self

    def new_cache(self) -> RecurrentCache:
        return RecurrentCache()

    def step(self, ids: torch.Tensor, cache: RecurrentCache | None) -> torch.Tensor:
        """Logits ``(B, T, V)`` for target tokens ``ids`` (after the cached ones, if any)."""
        hidden = None if cache is None else cache.state
        if cache is not None and cache.length and ids.shape[0] != self.states.shape[0]:
            raise ValueError("the batch changed between decoding steps.")
        states, summary, valid = self.states, self.summary, self.valid
        logits, hidden, _ = self.model._decode(ids, states, summary, valid, hidden)
        if cache is not None:
            cache.state, cache.length = hidden, cache.length + ids.shape[1]
        return logits
