"""BERT (Devlin et al., 2019): a bidirectional encoder from the course's one block, and its heads.

::

    input_ids (B, T) --word + segment + position embeddings, LayerNorm, dropout--> (B, T, d)
        --> N x TransformerBlock (post-norm, GELU, no causal mask) --> hidden states (B, T, d)
        --> heads: masked LM (B, T, V) | pooled [CLS] -> NSP (B, 2) / classes (B, K)
                   | token labels (B, T, K) | span start/end (B, T) each

* :class:`Bert` computes the hidden states: ``Bert(input_ids, token_type_ids=None,
  attention_mask=None)`` -> ``(B, T, d)``. ``attention_mask`` is Hugging Face's ``(B, T)``,
  1 = real token, 0 = padding: padded keys are never attended to by any query (the padded
  positions still get outputs, which the heads' losses ignore).
* The [CLS] pooler (dense + tanh, BERT's ``pooler``) belongs to :class:`Bert` as in
  ``transformers.BertModel`` (``BertConfig.pooler``, default on): ``bert.pool(hidden)`` -> ``(B, d)``.
* Heads are separate modules: :class:`BertMLMHead` (dense + GELU + LayerNorm + a decoder whose
  matrix is the word embedding matrix, plus a bias), :class:`BertNSPHead`,
  :class:`BertClassificationHead`, :class:`BertTokenClassificationHead`, :class:`BertQAHead`.
* Task models pair a backbone with a head, each with a ``loss``: :class:`BertForMaskedLM`,
  :class:`BertForPreTraining` (MLM + NSP), :class:`BertForSequenceClassification`,
  :class:`BertForTokenClassification`, :class:`BertForQuestionAnswering`. They take a
  :class:`Bert` (to fine-tune a pre-trained backbone) or a :class:`BertConfig` (a fresh one).
* Loss helpers on logits: :func:`mlm_loss`, :func:`nsp_loss`, :func:`classification_loss`,
  :func:`token_classification_loss`, :func:`span_loss`.

BERT's feed-forward network has no dropout between its two matrices (only after the second):
its blocks are the shared block with ``norm_first=False`` and ``ffn_dropout=0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.data.pairs import BERT_TOKENS, WORDPIECE_TOKENS
from coursekit.dropout import Dropout
from coursekit.layers import BlockConfig, LayerNorm, make_norm
from coursekit.models.transformer import TransformerStack, check_token_ids
from coursekit.positional import LearnedPositionalEmbedding
from coursekit.train.losses import cross_entropy_loss

__all__ = [
    "Bert",
    "BertClassificationHead",
    "BertConfig",
    "BertEmbeddings",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertMLMHead",
    "BertNSPHead",
    "BertPooler",
    "BertQAHead",
    "BertTokenClassificationHead",
    "classification_loss",
    "init_bert_weights",
    "mlm_loss",
    "nsp_loss",
    "span_loss",
    "token_classification_loss",
]

BertActivation = Literal["gelu", "gelu_tanh", "relu"]
BERT_ACTIVATIONS: tuple[str, ...] = ("gelu", "gelu_tanh", "relu")
IGNORE_INDEX = -100


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
@dataclass
class BertConfig:
    """Sizes and switches of BERT. Defaults are BERT-base's sizes except the vocabulary.

    ``pad_id``, ``cls_id``, ``sep_id``, ``mask_id`` default to the course's layout
    (:data:`coursekit.data.pairs.BERT_TOKENS`: 0, 1, 2, 4); :meth:`base` and :meth:`large`
    use the published WordPiece vocabulary's (0, 101, 102, 103). ``attn_dropout`` defaults to
    ``dropout`` (BERT: both 0.1). ``pooler``: build the [CLS] pooler (dense + tanh), needed by
    NSP and sequence classification. ``scratch`` runs the course's written-out LayerNorm,
    attention and cross-entropy instead of PyTorch's kernels (same parameters, same outputs).
    """

    vocab_size: int
    max_positions: int = 512
    type_vocab_size: int = 2
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    dropout: float = 0.1
    attn_dropout: float | None = None
    activation: BertActivation = "gelu"
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    pooler: bool = True
    pad_id: int = BERT_TOKENS.pad
    cls_id: int = BERT_TOKENS.cls
    sep_id: int = BERT_TOKENS.sep
    mask_id: int = BERT_TOKENS.mask
    scratch: bool = False

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "max_positions",
            "type_vocab_size",
            "d_model",
            "n_heads",
            "d_ff",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}.")
        if (
            isinstance(self.n_layers, bool)
            or not isinstance(self.n_layers, int)
            or self.n_layers < 0
        ):
            raise ValueError(
                f"BertConfig.n_layers must be a non-negative integer, got {self.n_layers!r}."
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"BertConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                "(BERT-base: 768 = 12 heads x 64)."
            )
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {value}.")
        if self.activation not in BERT_ACTIVATIONS:
            raise ValueError(
                f"BertConfig.activation={self.activation!r}: use one of {', '.join(BERT_ACTIVATIONS)}."
            )
        if not self.layer_norm_eps > 0:
            raise ValueError(
                f"BertConfig.layer_norm_eps must be positive, got {self.layer_norm_eps}."
            )
        if not self.init_std > 0:
            raise ValueError(f"BertConfig.init_std must be positive, got {self.init_std}.")
        ids = {
            "pad_id": self.pad_id,
            "cls_id": self.cls_id,
            "sep_id": self.sep_id,
            "mask_id": self.mask_id,
        }
        for name, value in ids.items():
            if not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"BertConfig.{name}={value} is outside the vocabulary (0..{self.vocab_size - 1}); "
                    "set the special ids of your tokenizer."
                )
        if len(set(ids.values())) != len(ids):
            raise ValueError(f"BertConfig's special ids must be distinct, got {ids}.")

    # ---- the published sizes ---------------------------------------------------------------------
    @classmethod
    def base(cls, **overrides: object) -> BertConfig:
        """BERT-base: 12 layers, hidden 768, 12 heads, FFN 3072, WordPiece vocabulary 30,522 (~110M)."""
        return cls._published(dict(d_model=768, n_layers=12, n_heads=12, d_ff=3072), overrides)

    @classmethod
    def large(cls, **overrides: object) -> BertConfig:
        """BERT-large: 24 layers, hidden 1024, 16 heads, FFN 4096, vocabulary 30,522 (~340M)."""
        return cls._published(dict(d_model=1024, n_layers=24, n_heads=16, d_ff=4096), overrides)

    @classmethod
    def _published(cls, sizes: dict, overrides: dict) -> BertConfig:
        sp = WORDPIECE_TOKENS
        values: dict = dict(
            vocab_size=30522,
            max_positions=512,
            type_vocab_size=2,
            dropout=0.1,
            pad_id=sp.pad,
            cls_id=sp.cls,
            sep_id=sp.sep,
            mask_id=sp.mask,
        )
        values.update(sizes)
        values.update(overrides)
        return cls(**values)

    # ---- derived ---------------------------------------------------------------------------------
    def block_config(self) -> BlockConfig:
        """The :class:`~coursekit.layers.BlockConfig` of every layer: post-norm, LayerNorm, bias."""
        return BlockConfig(
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            activation=self.activation,
            norm="layer",
            norm_first=False,
            eps=self.layer_norm_eps,
            bias=True,
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
            ffn_dropout=0.0,  # BERT has no dropout inside its FFN
            scratch=self.scratch,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def expected_parameters(
        self, *, mlm_head: bool = False, nsp_head: bool = False, pooler: bool | None = None
    ) -> int:
        """Closed-form parameter count (the MLM decoder matrix is the embedding matrix: not counted).

        * embeddings: ``(V + P + S) d`` plus the LayerNorm's ``2d``;
        * per layer: attention ``4d^2 + 4d``, FFN ``2 d d_ff + d_ff + d``, two LayerNorms ``4d``;
        * pooler ``d^2 + d``; MLM head: dense ``d^2 + d``, LayerNorm ``2d``, output bias ``V``;
          NSP head ``2d + 2``.
        """
        d = self.d_model
        embeddings = (self.vocab_size + self.max_positions + self.type_vocab_size) * d + 2 * d
        layers = self.n_layers * self.block_config().n_params()
        use_pooler = self.pooler if pooler is None else pooler
        total = embeddings + layers + (d * d + d if use_pooler else 0)
        if mlm_head:
            total += d * d + d + 2 * d + self.vocab_size
        if nsp_head:
            total += 2 * d + 2
        return total


# --------------------------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation of one module (use with ``model.apply``): matrices and embeddings
    N(0, std), biases 0, LayerNorm weight 1 and bias 0, the padding embedding row 0."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()
    elif isinstance(module, LearnedPositionalEmbedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, nn.LayerNorm | LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _activation(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "gelu":
        return F.gelu(x)
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    return F.relu(x)


def _check_same_shape(t: torch.Tensor | None, ids: torch.Tensor, what: str) -> None:
    if t is not None and t.shape != ids.shape:
        raise ValueError(
            f"{what} must have input_ids' shape {tuple(ids.shape)} (B, T), got {tuple(t.shape)}."
        )


# --------------------------------------------------------------------------------------------
# the encoder
# --------------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    """Word + segment (token type) + learned position embeddings, then LayerNorm and dropout.

    Submodules ``word_embeddings`` (``padding_idx=pad_id``), ``position_embeddings``,
    ``token_type_embeddings``, ``norm``, ``dropout``. ids ``(B, T)`` -> ``(B, T, d)``.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        c = config
        self.word_embeddings = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.position_embeddings = LearnedPositionalEmbedding(
            c.max_positions, c.d_model, init_std=c.init_std
        )
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = make_norm("layer", c.d_model, c.layer_norm_eps, scratch=c.scratch)
        self.dropout = Dropout(c.dropout)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.word_embeddings(input_ids)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.norm(self.position_embeddings(x)))


class BertPooler(nn.Module):
    """BERT's pooled output: ``tanh(dense(h_[CLS]))``, hidden ``(B, T, d)`` -> ``(B, d)``."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class Bert(nn.Module):
    """BERT's encoder: ``Bert(input_ids, token_type_ids=None, attention_mask=None)`` -> ``(B, T, d)``.

    * ``input_ids`` ``(B, T)`` integer ids (``T <= max_positions``);
    * ``token_type_ids`` ``(B, T)`` segment ids (default all 0);
    * ``attention_mask`` ``(B, T)`` Hugging Face's: 1 (or True) = real token, 0 = padding.
      Padded keys are masked for every query, so the real tokens' outputs do not depend on
      what the padded positions hold.

    Submodules: ``embeddings`` (:class:`BertEmbeddings`), ``encoder`` (a
    :class:`~coursekit.models.transformer.TransformerStack` of post-norm blocks), ``pooler``
    (:class:`BertPooler` or None). ``pool(hidden)`` gives the pooled [CLS] vector.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embeddings = BertEmbeddings(c)
        self.encoder = TransformerStack(c.block_config(), c.n_layers, final_norm=False)
        self.pooler = BertPooler(c.d_model) if c.pooler else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's initialisation (:func:`init_bert_weights` with ``config.init_std``)."""
        self.apply(lambda m: init_bert_weights(m, self.config.init_std))

    def check_inputs(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> None:
        """Clear errors for bad shapes, dtypes and (on CPU, or with COURSEKIT_DEBUG=1) ids."""
        c = self.config
        check_token_ids(input_ids, c.vocab_size, what="input_ids")
        if input_ids.shape[1] > c.max_positions:
            raise ValueError(
                f"input of {input_ids.shape[1]} tokens, but this BERT has learned positions for "
                f"{c.max_positions} only: truncate the input (BERT: 512 tokens)."
            )
        _check_same_shape(token_type_ids, input_ids, "token_type_ids")
        if token_type_ids is not None:
            check_token_ids(token_type_ids, c.type_vocab_size, what="token_type_ids")
        _check_same_shape(attention_mask, input_ids, "attention_mask")

    @staticmethod
    def key_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """``(B, T)`` 1/0 (or bool) -> boolean ``(B, 1, 1, T)``: every query may attend to the
        real keys only."""
        if attention_mask is None:
            return None
        valid = attention_mask if attention_mask.dtype == torch.bool else attention_mask != 0
        return valid[:, None, None, :]

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.check_inputs(input_ids, token_type_ids, attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        return self.encoder(x, mask=self.key_mask(attention_mask))

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pooled [CLS] output ``(B, d)`` of hidden states ``(B, T, d)``."""
        if self.pooler is None:
            raise ValueError("this Bert has no pooler: build it with BertConfig(pooler=True).")
        return self.pooler(hidden)

    def num_parameters(self) -> int:
        """Trainable parameters (each shared tensor counted once)."""
        return sum(p.numel() for p in self.parameters())


# --------------------------------------------------------------------------------------------
# heads
# --------------------------------------------------------------------------------------------
class BertMLMHead(nn.Module):
    """Masked-LM head: ``decoder(LayerNorm(act(dense(h))))`` -> logits ``(B, T, V)``.

    The decoder's matrix is the word-embedding matrix when ``word_embeddings`` is given (BERT
    ties them), with its own output bias ``decoder.bias`` of size ``V``.
    """

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding | None = None) -> None:
        super().__init__()
        c = config
        self.activation = c.activation
        self.dense = nn.Linear(c.d_model, c.d_model)
        self.norm = make_norm("layer", c.d_model, c.layer_norm_eps, scratch=c.scratch)
        self.decoder = nn.Linear(c.d_model, c.vocab_size)
        self.apply(lambda m: init_bert_weights(m, c.init_std))
        if word_embeddings is not None:
            if word_embeddings.weight.shape != self.decoder.weight.shape:
                raise ValueError(
                    f"word embeddings {tuple(word_embeddings.weight.shape)} do not match the "
                    f"decoder {tuple(self.decoder.weight.shape)}."
                )
            self.decoder.weight = word_embeddings.weight
        self.to(self.decoder.weight.device, self.decoder.weight.dtype)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(_activation(self.dense(hidden), self.activation)))


class BertNSPHead(nn.Module):
    """Next-sentence prediction on the pooled output: ``(B, d)`` -> logits ``(B, 2)``
    (class 0 = B follows A, 1 = B is random)."""

    def __init__(self, d_model: int, *, init_std: float = 0.02) -> None:
        super().__init__()
        self.seq_relationship = nn.Linear(d_model, 2)
        self.apply(lambda m: init_bert_weights(m, init_std))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled)


class BertClassificationHead(nn.Module):
    """Sequence classification on the pooled [CLS] output: dropout + linear, ``(B, d)`` -> ``(B, K)``."""

    def __init__(
        self, d_model: int, n_labels: int, *, dropout: float = 0.1, init_std: float = 0.02
    ) -> None:
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels must be positive, got {n_labels}.")
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_labels)
        self.apply(lambda m: init_bert_weights(m, init_std))

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class BertTokenClassificationHead(nn.Module):
    """One label per token: dropout + linear, ``(B, T, d)`` -> ``(B, T, K)``."""

    def __init__(
        self, d_model: int, n_labels: int, *, dropout: float = 0.1, init_std: float = 0.02
    ) -> None:
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"n_labels must be positive, got {n_labels}.")
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_labels)
        self.apply(lambda m: init_bert_weights(m, init_std))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


class BertQAHead(nn.Module):
    """Span extraction: one linear map to a start and an end score per token,
    ``(B, T, d)`` -> ``(start_logits (B, T), end_logits (B, T))``."""

    def __init__(self, d_model: int, *, init_std: float = 0.02) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(d_model, 2)
        self.apply(lambda m: init_bert_weights(m, init_std))

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.qa_outputs(hidden).unbind(dim=-1)
        return start, end


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------
def mlm_loss(logits: torch.Tensor, labels: torch.Tensor, *, scratch: bool = False) -> torch.Tensor:
    """Mean cross-entropy over the selected positions: logits ``(B, T, V)``, labels ``(B, T)``
    holding the original id where selected and -100 elsewhere."""
    return cross_entropy_loss(logits, labels, ignore_index=IGNORE_INDEX, scratch=scratch)


def nsp_loss(logits: torch.Tensor, labels: torch.Tensor, *, scratch: bool = False) -> torch.Tensor:
    """Next-sentence loss: logits ``(B, 2)``, labels ``(B,)`` (0 = IsNext, 1 = NotNext)."""
    return cross_entropy_loss(logits, labels, ignore_index=IGNORE_INDEX, scratch=scratch)


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, scratch: bool = False
) -> torch.Tensor:
    """Sequence classification: logits ``(B, K)``, labels ``(B,)`` class ids."""
    return cross_entropy_loss(logits, labels, ignore_index=IGNORE_INDEX, scratch=scratch)


def token_classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, scratch: bool = False
) -> torch.Tensor:
    """Token labels: logits ``(B, T, K)``, labels ``(B, T)`` with -100 at [CLS], [SEP], padding."""
    return cross_entropy_loss(logits, labels, ignore_index=IGNORE_INDEX, scratch=scratch)


def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    *,
    scratch: bool = False,
) -> torch.Tensor:
    """Extractive QA: the mean of the start and end cross-entropies over positions.

    ``start_logits``/``end_logits`` ``(B, T)``; ``start_positions``/``end_positions`` ``(B,)``
    token indices (inclusive end; -100 to ignore an example).
    """
    start = cross_entropy_loss(
        start_logits, start_positions, ignore_index=IGNORE_INDEX, scratch=scratch
    )
    end = cross_entropy_loss(end_logits, end_positions, ignore_index=IGNORE_INDEX, scratch=scratch)
    return (start + end) / 2


# --------------------------------------------------------------------------------------------
# task models: a backbone and a head
# --------------------------------------------------------------------------------------------
def _backbone(bert: Bert | BertConfig, *, need_pooler: bool, who: str) -> Bert:
    if isinstance(bert, BertConfig):
        config = bert if bert.pooler == need_pooler else replace(bert, pooler=need_pooler)
        bert = Bert(config)
    if not isinstance(bert, Bert):
        raise TypeError(f"{who} takes a Bert or a BertConfig, got {type(bert).__name__}.")
    if need_pooler and bert.pooler is None:
        raise ValueError(
            f"{who} classifies the pooled [CLS] output: build the Bert with BertConfig(pooler=True)."
        )
    return bert


_Head = TypeVar("_Head", bound=nn.Module)


def _head_like(head: _Head, bert: Bert) -> _Head:
    p = next(bert.parameters())
    return head.to(p.device, p.dtype)


class BertForMaskedLM(nn.Module):
    """``bert`` + :class:`BertMLMHead` (decoder tied to the word embeddings) -> logits ``(B, T, V)``.

    A config builds a backbone without pooler (as ``transformers.BertForMaskedLM``).
    """

    def __init__(self, bert: Bert | BertConfig) -> None:
        super().__init__()
        self.bert = _backbone(bert, need_pooler=False, who="BertForMaskedLM")
        self.config = self.bert.config
        self.mlm = _head_like(
            BertMLMHead(self.config, self.bert.embeddings.word_embeddings), self.bert
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.mlm(self.bert(input_ids, token_type_ids, attention_mask))

    def loss(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = self(input_ids, token_type_ids, attention_mask)
        return mlm_loss(logits, labels, scratch=self.config.scratch)


class BertForPreTraining(nn.Module):
    """BERT's pre-training model: MLM logits ``(B, T, V)`` and NSP logits ``(B, 2)``;
    the loss is their sum, as in the paper."""

    def __init__(self, bert: Bert | BertConfig) -> None:
        super().__init__()
        self.bert = _backbone(bert, need_pooler=True, who="BertForPreTraining")
        self.config = self.bert.config
        self.mlm = _head_like(
            BertMLMHead(self.config, self.bert.embeddings.word_embeddings), self.bert
        )
        self.nsp = _head_like(
            BertNSPHead(self.config.d_model, init_std=self.config.init_std), self.bert
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.bert(input_ids, token_type_ids, attention_mask)
        return self.mlm(hidden), self.nsp(self.bert.pool(hidden))

    def loss(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        next_sentence_labels: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mlm_logits, nsp_logits = self(input_ids, token_type_ids, attention_mask)
        s = self.config.scratch
        return mlm_loss(mlm_logits, labels, scratch=s) + nsp_loss(
            nsp_logits, next_sentence_labels, scratch=s
        )


class BertForSequenceClassification(nn.Module):
    """``bert`` + pooled [CLS] + :class:`BertClassificationHead` -> logits ``(B, n_labels)``."""

    def __init__(
        self, bert: Bert | BertConfig, n_labels: int, *, dropout: float | None = None
    ) -> None:
        super().__init__()
        self.bert = _backbone(bert, need_pooler=True, who="BertForSequenceClassification")
        self.config = self.bert.config
        drop = self.config.dropout if dropout is None else dropout
        self.head = _head_like(
            BertClassificationHead(
                self.config.d_model, n_labels, dropout=drop, init_std=self.config.init_std
            ),
            self.bert,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.head(self.bert.pool(self.bert(input_ids, token_type_ids, attention_mask)))

    def loss(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = self(input_ids, token_type_ids, attention_mask)
        return classification_loss(logits, labels, scratch=self.config.scratch)


class BertForTokenClassification(nn.Module):
    """``bert`` + :class:`BertTokenClassificationHead` -> logits ``(B, T, n_labels)``."""

    def __init__(
        self, bert: Bert | BertConfig, n_labels: int, *, dropout: float | None = None
    ) -> None:
        super().__init__()
        self.bert = _backbone(bert, need_pooler=False, who="BertForTokenClassification")
        self.config = self.bert.config
        drop = self.config.dropout if dropout is None else dropout
        self.head = _head_like(
            BertTokenClassificationHead(
                self.config.d_model, n_labels, dropout=drop, init_std=self.config.init_std
            ),
            self.bert,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.head(self.bert(input_ids, token_type_ids, attention_mask))

    def loss(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        logits = self(input_ids, token_type_ids, attention_mask)
        return token_classification_loss(logits, labels, scratch=self.config.scratch)


class BertForQuestionAnswering(nn.Module):
    """``bert`` + :class:`BertQAHead` -> ``(start_logits, end_logits)``, each ``(B, T)``."""

    def __init__(self, bert: Bert | BertConfig) -> None:
        super().__init__()
        self.bert = _backbone(bert, need_pooler=False, who="BertForQuestionAnswering")
        self.config = self.bert.config
        self.head = _head_like(
            BertQAHead(self.config.d_model, init_std=self.config.init_std), self.bert
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.bert(input_ids, token_type_ids, attention_mask))

    def loss(
        self,
        input_ids: torch.Tensor,
        start_positions: torch.Tensor,
        end_positions: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        start, end = self(input_ids, token_type_ids, attention_mask)
        return span_loss(start, end, start_positions, end_positions, scratch=self.config.scratch)
