"""BERT's inputs: special tokens, ``[CLS] A [SEP] B [SEP]`` batches, next-sentence pairs, MLM batches.

* :class:`BertSpecialTokens`: the ids of ``[PAD] [CLS] [SEP] [UNK] [MASK]``. The course's own
  vocabularies use :data:`BERT_TOKENS` (0 .. 4, the same slots as ``<pad> <bos> <eos> <unk>``
  in :mod:`coursekit.tokenize`, plus ``[MASK]``); :data:`WORDPIECE_TOKENS` are the ids of the
  published uncased WordPiece vocabulary (30,522 tokens).
* :class:`BertVocab`: a lower-casing word vocabulary with those special tokens first, for SST-2
  and other small corpora (``BertVocab.build(texts)``, ``vocab.encode_batch(texts)``).
* :class:`BertBatch`: ``input_ids``, ``token_type_ids`` (segment ids), ``attention_mask``
  (1 = real token, 0 = padding), and optional labels; ``batch.inputs()`` gives the keyword
  arguments of :class:`coursekit.models.Bert`.
* :func:`encode_single` (``[CLS] A [SEP]``) and :func:`encode_pairs` (``[CLS] A [SEP] B [SEP]``,
  segment 0 for the first part, 1 for the second, longest-first truncation as in BERT).
* :func:`nsp_batch`: next-sentence prediction pairs from documents (lists of sentences): half
  of the time B is the sentence that follows A (label 0, "IsNext"), otherwise a random sentence
  of another document (label 1, "NotNext"); Hugging Face's label convention.
* :class:`MLMBatcher`: masked-language-model batches with **dynamic** masking (a fresh
  :func:`~coursekit.data.masking.mlm_mask` draw every time an example is used, as RoBERTa)
  or **static** masking (each example masked once, :func:`static_mlm_masking`, as the original
  BERT preprocessing without duplication).

Everything random takes a seed or a ``torch.Generator`` and is reproducible from it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace

import torch

from coursekit.data.masking import IGNORE_INDEX, mlm_mask
from coursekit.tokenize import word_detokenize, word_tokenize

__all__ = [
    "BERT_TOKENS",
    "IGNORE_INDEX",
    "WORDPIECE_TOKENS",
    "BertBatch",
    "BertSpecialTokens",
    "BertVocab",
    "MLMBatcher",
    "encode_pairs",
    "encode_single",
    "nsp_batch",
    "split_documents",
    "static_mlm_masking",
    "truncate_pair",
]


# --------------------------------------------------------------------------------------------
# special tokens
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BertSpecialTokens:
    """Ids and strings of BERT's special tokens."""

    pad: int = 0
    cls: int = 1
    sep: int = 2
    unk: int = 3
    mask: int = 4
    pad_token: str = "[PAD]"
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    unk_token: str = "[UNK]"
    mask_token: str = "[MASK]"

    def __post_init__(self) -> None:
        if len(set(self.ids)) != 5 or min(self.ids) < 0:
            raise ValueError(
                f"special token ids must be distinct and non-negative, got {self.ids}."
            )

    @property
    def ids(self) -> tuple[int, int, int, int, int]:
        """``(pad, cls, sep, unk, mask)``."""
        return (self.pad, self.cls, self.sep, self.unk, self.mask)

    @property
    def tokens(self) -> tuple[str, str, str, str, str]:
        """``("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")``, in the order of :attr:`ids`."""
        return (self.pad_token, self.cls_token, self.sep_token, self.unk_token, self.mask_token)

    @property
    def never_masked(self) -> tuple[int, int, int]:
        """The ids MLM never selects: ``(pad, cls, sep)``."""
        return (self.pad, self.cls, self.sep)


#: the course's layout: [PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3, [MASK]=4; content ids start at 5
BERT_TOKENS = BertSpecialTokens()
#: the ids in the published uncased WordPiece vocabulary (bert-base-uncased)
WORDPIECE_TOKENS = BertSpecialTokens(pad=0, cls=101, sep=102, unk=100, mask=103)
N_BERT_SPECIAL = 5


# --------------------------------------------------------------------------------------------
# a word vocabulary with BERT's special tokens
# --------------------------------------------------------------------------------------------
class BertVocab:
    """Lower-casing word vocabulary: ``[PAD] [CLS] [SEP] [UNK] [MASK]`` (ids 0..4), then words.

    Words are cut by :func:`coursekit.tokenize.word_tokenize` (the translation chapters'
    tokenizer); BERT itself uses WordPiece sub-words, which a tiny model does not need.
    """

    special = BERT_TOKENS

    def __init__(self, words: Iterable[str]) -> None:
        specials = self.special.tokens
        self.itos: list[str] = list(specials)
        self.itos += [w for w in dict.fromkeys(words) if w not in specials]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(
        cls, texts: Iterable[str], *, min_freq: int = 1, max_size: int | None = None
    ) -> BertVocab:
        """The words seen at least ``min_freq`` times, most frequent first (at most ``max_size``)."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}.")
        counts = Counter(tok for t in texts for tok in word_tokenize(t))
        return cls(w for w, c in counts.most_common(max_size) if c >= min_freq)

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Word ids of ``text`` without special tokens (unknown words -> ``[UNK]``)."""
        unk = self.special.unk
        return [self.stoi.get(t, unk) for t in word_tokenize(text)]

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Token strings of ``ids``, skipping ``[PAD]`` (for plot labels)."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside the vocabulary (0..{len(self.itos) - 1}).")
            if i != self.special.pad:
                out.append(self.itos[i])
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` without any special token."""
        specials = set(self.special.tokens)
        return word_detokenize([t for t in self.tokens(ids) if t not in specials])

    def encode_batch(
        self,
        texts: Sequence[str],
        texts_b: Sequence[str] | None = None,
        *,
        max_len: int | None = 128,
    ) -> BertBatch:
        """``[CLS] text [SEP]`` (or ``[CLS] a [SEP] b [SEP]`` with ``texts_b``) padded to a batch."""
        first = [self.encode(t) for t in texts]
        if texts_b is None:
            return encode_single(first, max_len=max_len, special=self.special)
        if len(texts_b) != len(texts):
            raise ValueError(f"{len(texts)} first texts but {len(texts_b)} second texts.")
        second = [self.encode(t) for t in texts_b]
        return encode_pairs(first, second, max_len=max_len, special=self.special)


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BertBatch:
    """A padded batch for BERT, every tensor ``(B, T)`` long unless noted.

    * ``input_ids``, ``token_type_ids`` (0 = first segment, 1 = second), ``attention_mask``
      (1 = real token, 0 = padding; Hugging Face's convention);
    * ``labels``: MLM targets (-100 where not selected), token labels ``(B, T)`` or class labels
      ``(B,)``, depending on the task; ``next_sentence_labels`` ``(B,)`` (0 = IsNext,
      1 = NotNext); ``start_positions`` / ``end_positions`` ``(B,)`` for span extraction.
    """

    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None = None
    next_sentence_labels: torch.Tensor | None = None
    start_positions: torch.Tensor | None = None
    end_positions: torch.Tensor | None = None

    def __post_init__(self) -> None:
        shape = self.input_ids.shape
        if self.input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got {tuple(shape)}.")
        for name in ("token_type_ids", "attention_mask"):
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"{name} has shape {tuple(getattr(self, name).shape)}, input_ids {tuple(shape)}."
                )

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments of ``Bert(...)``: input_ids, token_type_ids, attention_mask."""
        return {
            "input_ids": self.input_ids,
            "token_type_ids": self.token_type_ids,
            "attention_mask": self.attention_mask,
        }

    def to(self, device: torch.device | str) -> BertBatch:
        """The same batch with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }
        return replace(self, **moved)

    def select(self, index: torch.Tensor | slice) -> BertBatch:
        """The examples ``index`` (rows) of this batch, labels included."""
        picked = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if getattr(self, f.name) is not None
        }
        return replace(self, **picked)


def truncate_pair(
    a: Sequence[int], b: Sequence[int], max_tokens: int
) -> tuple[list[int], list[int]]:
    """BERT's longest-first truncation: drop tokens from the end of the longer part until
    ``len(a) + len(b) <= max_tokens`` (ties: the second part loses first)."""
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be non-negative, got {max_tokens}.")
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def _assemble(
    rows: list[tuple[list[int], list[int]]], special: BertSpecialTokens
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    n = len(rows)
    input_ids = torch.full((n, width), special.pad, dtype=torch.long)
    token_type = torch.zeros((n, width), dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    for r, (ids, segments) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        token_type[r, : len(ids)] = torch.as_tensor(segments, dtype=torch.long)
        attention[r, : len(ids)] = 1
    return input_ids, token_type, attention


def encode_single(
    seqs: Sequence[Sequence[int]],
    *,
    max_len: int | None = None,
    special: BertSpecialTokens = BERT_TOKENS,
) -> BertBatch:
    """``[CLS] s [SEP] [PAD]...`` for each list of content ids ``s`` (truncated to ``max_len``)."""
    if not seqs:
        raise ValueError("encode_single got no sequences.")
    if max_len is not None and max_len < 2:
        raise ValueError(f"max_len must leave room for [CLS] and [SEP] (>= 2), got {max_len}.")
    rows = []
    for s in seqs:
        body = list(s) if max_len is None else list(s)[: max_len - 2]
        ids = [special.cls, *body, special.sep]
        rows.append((ids, [0] * len(ids)))
    return BertBatch(*_assemble(rows, special))


def encode_pairs(
    first: Sequence[Sequence[int]],
    second: Sequence[Sequence[int]],
    *,
    max_len: int | None = None,
    special: BertSpecialTokens = BERT_TOKENS,
) -> BertBatch:
    """``[CLS] A [SEP] B [SEP] [PAD]...`` with segment ids 0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``.

    With ``max_len``, A and B are cut longest-first (:func:`truncate_pair`) to fit.
    """
    if len(first) != len(second):
        raise ValueError(f"{len(first)} first segments but {len(second)} second segments.")
    if not first:
        raise ValueError("encode_pairs got no pairs.")
    if max_len is not None and max_len < 3:
        raise ValueError(f"max_len must leave room for [CLS], [SEP], [SEP] (>= 3), got {max_len}.")
    rows = []
    for a, b in zip(first, second, strict=True):
        if max_len is not None:
            a, b = truncate_pair(a, b, max_len - 3)
        ids = [special.cls, *a, special.sep, *b, special.sep]
        segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        rows.append((ids, segments))
    return BertBatch(*_assemble(rows, special))


# --------------------------------------------------------------------------------------------
# next-sentence prediction
# --------------------------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_documents(
    text: str, *, sentences_per_document: int = 8, min_words: int = 1
) -> list[list[str]]:
    """Cut ``text`` into sentences (after ``.``, ``!`` or ``?``) and group consecutive sentences
    into documents of ``sentences_per_document`` (the last one may be shorter).

    Sentences with fewer than ``min_words`` words are dropped.
    """
    if sentences_per_document < 1:
        raise ValueError(f"sentences_per_document must be positive, got {sentences_per_document}.")
    sentences = [" ".join(s.split()) for s in _SENTENCE_END.split(text)]
    sentences = [s for s in sentences if len(s.split()) >= min_words]
    k = sentences_per_document
    return [sentences[i : i + k] for i in range(0, len(sentences), k)]


def nsp_batch(
    documents: Sequence[Sequence[Sequence[int]]],
    n: int,
    *,
    max_len: int | None = 64,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    special: BertSpecialTokens = BERT_TOKENS,
) -> BertBatch:
    """``n`` next-sentence-prediction pairs ``[CLS] A [SEP] B [SEP]`` with their labels.

    ``documents``: a list of documents, each a list of sentences, each a list of content ids.
    A is a random sentence that has a successor in its document; with probability 1/2 B is that
    successor (``next_sentence_labels`` 0, IsNext), otherwise a random sentence of a *different*
    document (label 1, NotNext), as in BERT. Draws come from ``generator`` (or a fresh one
    seeded with ``seed``, default 0). Returns a :class:`BertBatch` (segments, padding, mask).
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}.")
    if generator is not None and seed is not None:
        raise ValueError("pass either generator= or seed=, not both.")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    docs = [list(d) for d in documents]
    if len(docs) < 2:
        raise ValueError("next-sentence pairs need at least two documents (for random sentences).")
    if any(len(d) == 0 for d in docs):
        raise ValueError("every document needs at least one sentence.")
    starts = [(d, i) for d, doc in enumerate(docs) for i in range(len(doc) - 1)]
    if not starts:
        raise ValueError("no document has two sentences: nothing can be a next sentence.")

    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=generator))

    first, second, labels = [], [], []
    for _ in range(n):
        d, i = starts[draw(len(starts))]
        is_next = bool(torch.rand((), generator=generator) < 0.5)
        if is_next:
            b = docs[d][i + 1]
        else:
            other = draw(len(docs) - 1)
            other += other >= d  # any document but d
            b = docs[other][draw(len(docs[other]))]
        first.append(docs[d][i])
        second.append(b)
        labels.append(0 if is_next else 1)
    batch = encode_pairs(first, second, max_len=max_len, special=special)
    return replace(batch, next_sentence_labels=torch.tensor(labels, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# masked language modelling: static vs dynamic masking
# --------------------------------------------------------------------------------------------
def static_mlm_masking(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = BERT_TOKENS.never_masked,
    mlm_probability: float = 0.15,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask every example of a data set once: ``(inputs, labels)`` fixed for all epochs.

    One :func:`~coursekit.data.masking.mlm_mask` call over the whole ``(N, T)`` tensor with a
    generator seeded by ``seed``: the same ``seed`` gives the same masks.
    """
    return mlm_mask(
        input_ids,
        mask_token_id=mask_token_id,
        vocab_size=vocab_size,
        special_ids=tuple(special_ids),
        mlm_probability=mlm_probability,
        generator=torch.Generator().manual_seed(seed),
    )


class MLMBatcher:
    """Random masked-LM batches from a data set of examples, with dynamic or static masking.

    ``data``: a :class:`BertBatch` of all examples (or a ``(N, T)`` tensor of input ids, whose
    padding is then found from ``special.pad``). ``batcher(batch_size)`` draws ``batch_size``
    examples (with replacement) and returns a :class:`BertBatch` whose ``input_ids`` are the
    corrupted ones and ``labels`` the MLM targets (-100 where not selected).

    * ``dynamic=True`` (RoBERTa): every call masks its examples afresh with
      :func:`~coursekit.data.masking.mlm_mask` (a new draw from :attr:`generator`), so an
      example seen in several epochs gets different masks;
    * ``dynamic=False`` (BERT's preprocessing): the masks are drawn once, at construction, by
      :func:`static_mlm_masking`; the same example always comes with the same masks.

    Everything comes from :attr:`generator` (seeded with ``seed``): pass it to the training
    loop's ``generators=`` so that a resumed run continues the same sequence.
    """

    def __init__(
        self,
        data: BertBatch | torch.Tensor,
        *,
        vocab_size: int,
        dynamic: bool = True,
        mlm_probability: float = 0.15,
        special: BertSpecialTokens = BERT_TOKENS,
        special_ids: Iterable[int] | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(data, torch.Tensor):
            if data.dim() != 2:
                raise ValueError(f"input ids must be (N, T), got {tuple(data.shape)}.")
            data = BertBatch(data, torch.zeros_like(data), (data != special.pad).long())
        if len(data) == 0:
            raise ValueError("MLMBatcher needs at least one example.")
        if max(special.ids) >= vocab_size:
            raise ValueError(
                f"the special ids {special.ids} do not fit a vocabulary of size {vocab_size}."
            )
        self.data = data
        self.vocab_size = vocab_size
        self.dynamic = dynamic
        self.mlm_probability = mlm_probability
        self.special = special
        self.special_ids = tuple(special.never_masked if special_ids is None else special_ids)
        self.generator = torch.Generator().manual_seed(seed)
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None
        if not dynamic:
            self.static = static_mlm_masking(
                data.input_ids,
                mask_token_id=special.mask,
                vocab_size=vocab_size,
                special_ids=self.special_ids,
                mlm_probability=mlm_probability,
                seed=seed,
            )

    def __len__(self) -> int:
        return len(self.data)

    def mask(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh :func:`mlm_mask` of ``input_ids`` with this batcher's settings and generator."""
        return mlm_mask(
            input_ids,
            mask_token_id=self.special.mask,
            vocab_size=self.vocab_size,
            special_ids=self.special_ids,
            mlm_probability=self.mlm_probability,
            generator=self.generator,
        )

    def batch(self, index: torch.Tensor) -> BertBatch:
        """The examples ``index`` ``(B,)``, masked (dynamic: now; static: as fixed at the start)."""
        picked = self.data.select(index)
        if self.static is None:
            inputs, labels = self.mask(picked.input_ids)
        else:
            inputs, labels = self.static[0][index], self.static[1][index]
        return replace(picked, input_ids=inputs, labels=labels)

    def __call__(self, batch_size: int) -> BertBatch:
        """``batch_size`` random examples (drawn with replacement), masked."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        index = torch.randint(len(self.data), (batch_size,), generator=self.generator)
        return self.batch(index)
