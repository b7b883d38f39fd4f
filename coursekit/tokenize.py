"""Tokenizers: characters, words, byte-pair encoding from scratch, and the ``tokenizers`` library.

Three ways to cut text into units, each with ``encode(text) -> list[int]`` and
``decode(ids) -> str``:

* :class:`CharTokenizer`: one id per character seen in the training text.
* :class:`WordTokenizer`: one id per word or punctuation mark, with ``<unk>`` for the rest.
* :class:`BPETokenizer`: byte-level byte-pair encoding, trained here from scratch. It starts
  from the 256 byte values, so it can encode *any* UTF-8 text, and ``decode(encode(t)) == t``
  holds exactly.

The special tokens of the sequence-to-sequence models (:class:`SpecialTokens`: ``<pad>`` 0,
``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, also as ``PAD_ID`` ... ``UNK_ID``) and the lower-casing
word vocabulary they use (:class:`WordVocab`, :func:`word_tokenize`, :func:`word_detokenize`)
are defined here once; the synthetic tasks and the RNN seq2seq import them.

Helpers around the Hugging Face ``tokenizers`` library (:func:`train_hf_bpe`,
:func:`hf_pieces`) train the same kind of tokenizer on the same corpus, so the two can be
compared piece by piece (:func:`segmentation_agreement`).

The small functions :func:`count_pairs` and :func:`merge_pair` show one step of the BPE merge
loop on lists of string symbols; the notebook uses them to trace the loop by hand.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "BOS_ID",
    "BOS_TOKEN",
    "EOS_ID",
    "EOS_TOKEN",
    "PAD_ID",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "UNK_TOKEN",
    "BPETokenizer",
    "CharTokenizer",
    "MergeRecord",
    "SpecialTokens",
    "TextToTextTokenizer",
    "TokenizerFormatError",
    "WordTokenizer",
    "WordVocab",
    "bytes_to_unicode",
    "count_pairs",
    "hf_learned_tokens",
    "hf_pieces",
    "load_tokenizer",
    "merge_pair",
    "pretokenize",
    "segmentation_agreement",
    "tokens_per_char",
    "train_hf_bpe",
    "word_detokenize",
    "word_tokenize",
]

FORMAT_VERSION = 1

# GPT-2 style pre-tokenization with the standard library's ``re``: contractions, runs of
# letters, runs of digits, runs of other symbols (each optionally led by one space), and
# whitespace. Every character belongs to exactly one class, so the pieces always concatenate
# back to the input text.
PRETOKENIZE_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d"
    r"| ?[^\W\d_]+"
    r"| ?\d+"
    r"| ?(?:[^\s\w]|_)+"
    r"|\s+(?!\S)"
    r"|\s+"
)
_PRETOKENIZE = re.compile(PRETOKENIZE_PATTERN)


class TokenizerFormatError(ValueError):
    """A file is not a tokenizer saved by coursekit (or has an unknown version)."""


# --------------------------------------------------------------------------------------
# Special tokens (one definition for the whole package)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecialTokens:
    """Ids and strings of the special tokens: padding, begin and end of sequence, unknown."""

    pad: int = 0
    bos: int = 1
    eos: int = 2
    unk: int = 3
    pad_token: str = "<pad>"
    bos_token: str = "<bos>"
    eos_token: str = "<eos>"
    unk_token: str = "<unk>"

    @property
    def ids(self) -> tuple[int, int, int, int]:
        """``(pad, bos, eos, unk)``."""
        return (self.pad, self.bos, self.eos, self.unk)

    @property
    def tokens(self) -> tuple[str, str, str, str]:
        """The strings, in id order: ``("<pad>", "<bos>", "<eos>", "<unk>")``."""
        return (self.pad_token, self.bos_token, self.eos_token, self.unk_token)


SPECIAL_TOKENS = SpecialTokens()
PAD_ID, BOS_ID, EOS_ID, UNK_ID = SPECIAL_TOKENS.ids
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = SPECIAL_TOKENS.tokens


def _checked_id(token_id: Any, vocab_size: int, who: str) -> int:
    """``int(token_id)`` if it is a valid id ``0 <= id < vocab_size``, else ``ValueError``."""
    i = int(token_id)
    if not 0 <= i < vocab_size:
        raise ValueError(
            f"{who}: id {i} is outside the vocabulary; valid ids are 0..{vocab_size - 1} "
            f"(vocab_size={vocab_size})."
        )
    return i


class Tokenizer(Protocol):
    """What every tokenizer here offers."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


def pretokenize(text: str) -> list[str]:
    """Split ``text`` into pre-tokens (words with their leading space, punctuation, spaces).

    BPE merges never cross a pre-token boundary, which keeps e.g. "e" + " t" from merging.
    ``"".join(pretokenize(t)) == t`` for every string.
    """
    return _PRETOKENIZE.findall(text)


def tokens_per_char(tokenizer: Tokenizer, text: str) -> float:
    """Tokens produced per character of ``text`` (lower means shorter sequences)."""
    if not text:
        raise ValueError("tokens_per_char needs a non-empty text.")
    return len(tokenizer.encode(text)) / len(text)


# --------------------------------------------------------------------------------------
# Character and word tokenizers
# --------------------------------------------------------------------------------------


class CharTokenizer:
    """One id per distinct character of the training text (sorted by code point).

    >>> tok = CharTokenizer.train("hello")
    >>> tok.decode(tok.encode("hole"))
    'hole'
    """

    def __init__(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("CharTokenizer needs at least one character.")
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer needs distinct single characters.")
        self.chars: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """The vocabulary of ``text``: its distinct characters, sorted."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; an unseen character raises ``ValueError``."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(
                f"Character {err.args[0]!r} is not in this CharTokenizer's vocabulary of "
                f"{self.vocab_size} characters: train it on text that contains it."
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; an id outside ``0..vocab_size-1`` raises ``ValueError``."""
        n = len(self.chars)
        return "".join(self.chars[_checked_id(i, n, "CharTokenizer.decode")] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "coursekit-char", "version": FORMAT_VERSION, "chars": self.chars}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        tok = load_tokenizer(path)
        if not isinstance(tok, cls):
            raise TokenizerFormatError(f"{path} holds a {type(tok).__name__}, not a CharTokenizer.")
        return tok


_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+|[^\sA-Za-z\d]")


class WordTokenizer:
    """Word-level tokens (words and single punctuation marks); unknown words map to ``<unk>``.

    Whitespace is not kept, so ``decode`` joins tokens with single spaces: a word tokenizer
    cannot round-trip text exactly, one of its drawbacks.
    """

    UNK = "<unk>"

    def __init__(self, words: Iterable[str]) -> None:
        self.itos: list[str] = [self.UNK, *[w for w in words if w != self.UNK]]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    @staticmethod
    def split(text: str) -> list[str]:
        """Words (with an inner apostrophe), numbers and single punctuation characters."""
        return _WORD.findall(text)

    @classmethod
    def train(cls, text: str, *, min_count: int = 1) -> WordTokenizer:
        """Keep every word seen at least ``min_count`` times, most frequent first."""
        counts = Counter(cls.split(text))
        return cls(w for w, c in counts.most_common() if c >= min_count)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, 0) for w in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Words of ``ids`` joined by spaces; an id outside the vocabulary raises ``ValueError``."""
        n = len(self.itos)
        return " ".join(self.itos[_checked_id(i, n, "WordTokenizer.decode")] for i in ids)

    def unknown_rate(self, text: str) -> float:
        """Share of the word tokens of ``text`` that are out of vocabulary."""
        ids = self.encode(text)
        return sum(1 for i in ids if i == 0) / max(len(ids), 1)


# --------------------------------------------------------------------------------------
# The lower-casing word vocabulary of the translation models (with special tokens)
# --------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def word_tokenize(text: str) -> list[str]:
    """Lower-case word/punctuation tokens: ``"Je l'ai vu."`` -> ``['je', 'l', "'", 'ai', 'vu', '.']``."""
    return _TOKEN.findall(text.lower())


def word_detokenize(tokens: Sequence[str]) -> str:
    """Join tokens back into text: no space before punctuation, none around apostrophes."""
    text = " ".join(tokens)
    text = re.sub(r" ([.,!?;:%)])", r"\1", text)
    text = re.sub(r"([(]) ", r"\1", text)
    text = re.sub(r" ?' ?", "'", text)
    return text


class WordVocab:
    """A word vocabulary with ``<pad>=0, <bos>=1, <eos>=2, <unk>=3`` (:data:`SPECIAL_TOKENS`)."""

    def __init__(self, words: Iterable[str]) -> None:
        specials = SPECIAL_TOKENS.tokens
        self.itos: list[str] = list(specials)
        self.itos += [w for w in words if w not in specials]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = SPECIAL_TOKENS.ids

    @classmethod
    def build(
        cls, texts: Iterable[str], *, min_freq: int = 2, max_size: int | None = None
    ) -> WordVocab:
        """Vocabulary of the tokens seen at least ``min_freq`` times (most frequent first)."""
        counts = Counter(tok for t in texts for tok in word_tokenize(t))
        words = [w for w, c in counts.most_common(max_size) if c >= min_freq]
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = True) -> list[int]:
        ids = [self.stoi.get(t, self.unk_id) for t in word_tokenize(text)]
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text, stopping at ``<eos>`` and skipping ``<pad>``/``<bos>``.

        An id outside ``0..len(self)-1`` (before the first ``<eos>``) raises ``ValueError``.
        """
        return word_detokenize(self._tokens(ids, "WordVocab.decode"))

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Like :meth:`decode` but returns the token strings (for plot labels)."""
        return self._tokens(ids, "WordVocab.tokens")

    def _tokens(self, ids: Iterable[int], who: str) -> list[str]:
        out = []
        n = len(self.itos)
        for token_id in ids:
            i = _checked_id(token_id, n, who)
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out


# --------------------------------------------------------------------------------------
# One step of the merge loop, on string symbols (for teaching)
# --------------------------------------------------------------------------------------


def count_pairs(words: dict[tuple[str, ...], int]) -> Counter[tuple[str, str]]:
    """Count adjacent symbol pairs over ``words`` (a word as a tuple of symbols -> its count)."""
    pairs: Counter[tuple[str, str]] = Counter()
    for symbols, freq in words.items():
        for pair in zip(symbols, symbols[1:], strict=False):
            pairs[pair] += freq
    return pairs


def merge_pair(symbols: Sequence[str], pair: tuple[str, str]) -> tuple[str, ...]:
    """Replace every non-overlapping occurrence of ``pair`` in ``symbols``, left to right.

    >>> merge_pair(("a", "a", "a", "b"), ("a", "a"))
    ('aa', 'a', 'b')
    """
    out: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def _merge_ids(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out: list[int] = []
    i = 0
    n = len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# --------------------------------------------------------------------------------------
# Byte-level BPE from scratch
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeRecord:
    """One merge learned in training: ``left + right -> new_id``, seen ``count`` times."""

    left: int
    right: int
    new_id: int
    count: int


@dataclass
class BPETokenizer:
    """Byte-level byte-pair encoding written from scratch.

    The base vocabulary is the 256 byte values; each learned merge adds one id (256, 257, ...).
    ``merges`` lists the merges in the order they were learned: encoding applies them in that
    order of priority, inside each pre-token.
    """

    merges: list[tuple[int, int]] = field(default_factory=list)
    history: list[MergeRecord] = field(default_factory=list, repr=False)

    BASE = 256

    def __post_init__(self) -> None:
        self.merges = [(int(a), int(b)) for a, b in self.merges]
        self.ranks: dict[tuple[int, int], int] = {}
        self.vocab: list[bytes] = [bytes([i]) for i in range(self.BASE)]
        for rank, (a, b) in enumerate(self.merges):
            new_id = self.BASE + rank
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"Merge {rank} ({a}, {b}) refers to an id not yet defined.")
            self.ranks[(a, b)] = rank
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache: dict[str, list[int]] = {}

    # ----- training -----
    @classmethod
    def train(cls, text: str, vocab_size: int, *, min_count: int = 2) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text``.

        Each step merges the most frequent adjacent pair (ties: the smaller pair of ids), with
        pair counts updated incrementally, so training on a megabyte takes seconds. Training
        stops early when no pair occurs ``min_count`` times any more.
        """
        if vocab_size < cls.BASE:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the byte alphabet ({cls.BASE} symbols): "
                f"a byte-level BPE needs vocab_size >= {cls.BASE} (each merge adds one token)."
            )
        word_counts = Counter(pretokenize(text))
        words: list[list[int]] = [list(w.encode("utf-8")) for w in word_counts]
        freqs: list[int] = list(word_counts.values())

        pair_counts: dict[tuple[int, int], int] = {}
        where: dict[tuple[int, int], set[int]] = {}
        for idx, (ids, f) in enumerate(zip(words, freqs, strict=False)):
            for pair in zip(ids, ids[1:], strict=False):
                pair_counts[pair] = pair_counts.get(pair, 0) + f
                where.setdefault(pair, set()).add(idx)
        heap = [(-c, p) for p, c in pair_counts.items()]
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        history: list[MergeRecord] = []
        while len(merges) < vocab_size - cls.BASE and heap:
            neg, pair = heapq.heappop(heap)
            count = pair_counts.get(pair, 0)
            if count != -neg:  # stale entry: the count changed since it was pushed
                continue
            if count < min_count:
                break
            new_id = cls.BASE + len(merges)
            merges.append(pair)
            history.append(MergeRecord(pair[0], pair[1], new_id, count))
            changed: set[tuple[int, int]] = set()
            for idx in where.pop(pair, set()):
                ids = words[idx]
                f = freqs[idx]
                merged = _merge_ids(ids, pair, new_id)
                if len(merged) == len(ids):
                    continue
                for p in zip(ids, ids[1:], strict=False):
                    pair_counts[p] -= f
                    changed.add(p)
                for p in zip(merged, merged[1:], strict=False):
                    pair_counts[p] = pair_counts.get(p, 0) + f
                    where.setdefault(p, set()).add(idx)
                    changed.add(p)
                words[idx] = merged
            pair_counts.pop(pair, None)
            for p in changed:
                c = pair_counts.get(p, 0)
                if c > 0:
                    heapq.heappush(heap, (-c, p))
                elif p in pair_counts:
                    del pair_counts[p]
        return cls(merges, history)

    @property
    def vocab_size(self) -> int:
        return self.BASE + len(self.merges)

    # ----- encoding -----
    def _encode_piece(self, piece: str) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        ids = list(piece.encode("utf-8"))
        while len(ids) > 1:
            best = min(zip(ids, ids[1:], strict=False), key=lambda p: self.ranks.get(p, 1 << 62))
            rank = self.ranks.get(best)
            if rank is None:
                break
            ids = _merge_ids(ids, best, self.BASE + rank)
        if len(self._cache) < 200_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (any string; non-ASCII characters become their UTF-8 bytes)."""
        out: list[int] = []
        for piece in pretokenize(text):
            out.extend(self._encode_piece(piece))
        return out

    def encode_trace(self, word: str) -> list[list[bytes]]:
        """The pieces of ``word`` after each merge that changes it (first entry: raw bytes)."""
        ids = list(word.encode("utf-8"))
        stages = [[self.vocab[i] for i in ids]]
        while len(ids) > 1:
            best = min(zip(ids, ids[1:], strict=False), key=lambda p: self.ranks.get(p, 1 << 62))
            rank = self.ranks.get(best)
            if rank is None:
                break
            ids = _merge_ids(ids, best, self.BASE + rank)
            stages.append([self.vocab[i] for i in ids])
        return stages

    def pieces(self, text: str) -> list[bytes]:
        """The tokens of ``text`` as byte strings."""
        return [self.vocab[i] for i in self.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``. Ids that end inside a multi-byte character decode to U+FFFD."""
        n = len(self.vocab)
        data = b"".join(self.vocab[_checked_id(i, n, "BPETokenizer.decode")] for i in ids)
        return data.decode("utf-8", errors="replace")

    def token_str(self, token_id: int) -> str:
        """A readable form of one token (bytes that are not valid UTF-8 shown escaped)."""
        raw = self.vocab[_checked_id(token_id, len(self.vocab), "BPETokenizer.token_str")]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return repr(raw)

    # ----- saving -----
    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "coursekit-bpe",
            "version": FORMAT_VERSION,
            "pretokenize_pattern": PRETOKENIZE_PATTERN,
            "merges": [list(m) for m in self.merges],
        }

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON (the merges in order)."""
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        tok = load_tokenizer(path)
        if not isinstance(tok, cls):
            raise TokenizerFormatError(f"{path} holds a {type(tok).__name__}, not a BPETokenizer.")
        return tok


def load_tokenizer(path: str | Path) -> CharTokenizer | BPETokenizer:
    """Load a tokenizer written by ``save``; anything else raises :class:`TokenizerFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No tokenizer file at {path}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TokenizerFormatError(
            f"{path} is not a JSON tokenizer file ({err}); save one with tokenizer.save(path)."
        ) from None
    if not isinstance(data, dict):
        raise TokenizerFormatError(
            f"{path} holds a JSON {type(data).__name__}, not a tokenizer object; save one with "
            "tokenizer.save(path)."
        )
    kind = data.get("type")
    version = data.get("version")
    if kind not in ("coursekit-bpe", "coursekit-char"):
        raise TokenizerFormatError(
            f"{path} has unknown tokenizer format {kind!r}; expected 'coursekit-bpe' or "
            "'coursekit-char'. (A Hugging Face tokenizer.json loads with "
            "tokenizers.Tokenizer.from_file.)"
        )
    if version != FORMAT_VERSION:
        raise TokenizerFormatError(
            f"{path} is format version {version!r}; this coursekit reads version {FORMAT_VERSION}."
        )
    if kind == "coursekit-char":
        chars = data.get("chars")
        if chars is None:
            raise TokenizerFormatError(
                f"{path} has no 'chars' list (a character tokenizer needs it)."
            )
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise TokenizerFormatError(
                f"{path}: 'chars' should be a list of single characters, got "
                f"{json.dumps(chars, ensure_ascii=False)[:80]}."
            )
        try:
            return CharTokenizer(chars)
        except ValueError as err:
            raise TokenizerFormatError(
                f"{path}: 'chars' is not a valid vocabulary ({err})"
            ) from None
    if data.get("pretokenize_pattern", PRETOKENIZE_PATTERN) != PRETOKENIZE_PATTERN:
        raise TokenizerFormatError(
            f"{path} was trained with a different pre-tokenization pattern; retrain it."
        )
    merges = data.get("merges")
    if merges is None:
        raise TokenizerFormatError(f"{path} has no 'merges' list (a BPE tokenizer needs it).")
    if not isinstance(merges, list) or not all(
        isinstance(m, list)
        and len(m) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in m)
        for m in merges
    ):
        raise TokenizerFormatError(
            f"{path}: 'merges' should be a list of [left_id, right_id] integer pairs."
        )
    try:
        return BPETokenizer([(m[0], m[1]) for m in merges])
    except ValueError as err:
        raise TokenizerFormatError(f"{path}: 'merges' is not a valid merge list ({err})") from None


# --------------------------------------------------------------------------------------
# The Hugging Face `tokenizers` library on the same corpus
# --------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters.

    Printable Latin-1 bytes map to themselves; the others (control codes, space, ...) map to
    code points from 256 upward, in order. Byte-level BPE in ``tokenizers`` shows tokens this way
    (a leading space appears as "Ġ").
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    mapping: dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


_UNICODE_TO_BYTE = {c: b for b, c in bytes_to_unicode().items()}


def train_hf_bpe(
    text: str | Iterable[str],
    vocab_size: int,
    *,
    min_count: int = 2,
    special_tokens: Sequence[str] = (),
) -> Any:
    """Train a byte-level BPE with the ``tokenizers`` library (GPT-2 pre-tokenization).

    ``text`` is one string or an iterable of strings. Returns a ``tokenizers.Tokenizer`` whose
    vocabulary is the 256 byte symbols plus ``vocab_size - 256`` merges, like
    :meth:`BPETokenizer.train`; ``special_tokens`` come first (ids 0, 1, ...), on top of that.
    """
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if vocab_size < BPETokenizer.BASE:
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the byte alphabet ({BPETokenizer.BASE})."
        )
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size + len(special_tokens),
        min_frequency=min_count,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(special_tokens),
        show_progress=False,
    )
    texts = [text] if isinstance(text, str) else list(text)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


class TextToTextTokenizer:
    """One byte-level BPE vocabulary for inputs and outputs, with T5's special tokens.

    ``<pad>`` = 0 (also the decoder's start token), ``</s>`` = 1 (end of sequence) and
    ``n_sentinels`` sentinels ``<extra_id_0>``, ``<extra_id_1>``, ... = 2, 3, ... (span
    corruption replaces each dropped span by one of them). Build one with :meth:`train`.
    """

    PAD_ID = 0
    EOS_ID = 1

    def __init__(self, bpe: Any, n_sentinels: int) -> None:
        self.bpe = bpe
        self.n_sentinels = n_sentinels
        names = [self.special_token(i) for i in range(2 + n_sentinels)]
        found = [bpe.token_to_id(name) for name in names]
        if found != list(range(2 + n_sentinels)):
            raise ValueError(
                "the BPE's first ids are not <pad>, </s>, <extra_id_0>, ...: build it with "
                "TextToTextTokenizer.train."
            )

    @staticmethod
    def special_token(index: int) -> str:
        """The name of special id ``index``: ``<pad>``, ``</s>``, then ``<extra_id_k>``."""
        return ("<pad>", "</s>")[index] if index < 2 else f"<extra_id_{index - 2}>"

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        n_sentinels: int = 32,
        min_count: int = 2,
    ) -> TextToTextTokenizer:
        """A BPE of ``vocab_size`` ids in all (special tokens included) trained on ``texts``."""
        if n_sentinels < 0:
            raise ValueError(f"n_sentinels must be >= 0, got {n_sentinels}.")
        special = [cls.special_token(i) for i in range(2 + n_sentinels)]
        learned = vocab_size - len(special)
        if learned < BPETokenizer.BASE:
            raise ValueError(
                f"vocab_size={vocab_size} leaves {learned} ids after the {len(special)} special "
                f"tokens: at least the {BPETokenizer.BASE} byte symbols are needed."
            )
        bpe = train_hf_bpe(texts, learned, min_count=min_count, special_tokens=special)
        return cls(bpe, n_sentinels)

    @property
    def vocab_size(self) -> int:
        return int(self.bpe.get_vocab_size())

    @property
    def sentinel_ids(self) -> list[int]:
        """``<extra_id_0>``, ``<extra_id_1>``, ... in order."""
        return list(range(2, 2 + self.n_sentinels))

    def encode(self, text: str, *, eos: bool = True) -> list[int]:
        """Token ids of ``text``, followed by ``</s>`` unless ``eos=False``."""
        ids = list(self.bpe.encode(text).ids)
        return ids + [self.EOS_ID] if eos else ids

    def encode_batch(
        self, texts: Sequence[str], *, eos: bool = True, max_len: int | None = None
    ) -> Any:
        """A ``(B, T)`` long tensor of the texts' ids, padded with ``<pad>``; ``max_len`` cuts
        longer ones (keeping ``</s>`` last)."""
        import torch

        rows = [self.encode(t, eos=eos) for t in texts]
        if max_len is not None:
            rows = [r if len(r) <= max_len else r[: max_len - 1] + r[-1:] for r in rows]
        width = max((len(r) for r in rows), default=0)
        out = torch.full((len(rows), width), self.PAD_ID, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out

    def decode(self, ids: Iterable[int], *, keep_sentinels: bool = False) -> str:
        """The text of ``ids`` up to the first ``</s>``; padding dropped; sentinels shown as
        ``<extra_id_k>`` when ``keep_sentinels`` (else dropped)."""
        pieces: list[str] = []
        run: list[int] = []  # ordinary ids since the last sentinel
        for i in ids:
            i = int(i)
            if i == self.EOS_ID:
                break
            if i == self.PAD_ID:
                continue
            if i < 2 + self.n_sentinels:  # a sentinel
                if keep_sentinels:
                    pieces += [str(self.bpe.decode(run)), self.special_token(i)]
                    run = []
                continue
            run.append(i)
        return "".join([*pieces, str(self.bpe.decode(run))])


def hf_pieces(tokenizer: Any, text: str) -> list[bytes]:
    """The tokens a ``tokenizers`` byte-level BPE gives ``text``, as byte strings."""
    return [bytes(_UNICODE_TO_BYTE[c] for c in token) for token in tokenizer.encode(text).tokens]


def hf_learned_tokens(tokenizer: Any) -> set[bytes]:
    """The multi-byte tokens of a ``tokenizers`` byte-level BPE (what its merges created)."""
    return {
        bytes(_UNICODE_TO_BYTE[c] for c in token)
        for token in tokenizer.get_vocab()
        if len(token) > 1
    }


def segmentation_agreement(pieces_a: Sequence[bytes], pieces_b: Sequence[bytes]) -> float:
    """Share of token boundaries the two segmentations of the same text have in common.

    Both lists must concatenate to the same bytes. Returns |A ∩ B| / |A ∪ B| over the sets of
    boundary offsets (1.0: identical segmentations).
    """
    if b"".join(pieces_a) != b"".join(pieces_b):
        raise ValueError("The two segmentations are not of the same text.")

    def cuts(pieces: Sequence[bytes]) -> set[int]:
        out, pos = set(), 0
        for p in pieces:
            pos += len(p)
            out.add(pos)
        return out

    a, b = cuts(pieces_a), cuts(pieces_b)
    union = a | b
    return len(a & b) / len(union) if union else 1.0
