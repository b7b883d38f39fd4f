"""Checks and quiz of notebook 01: tokens and embeddings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from coursekit.exercises.expect import (
    a_type,
    expect_callable,
    expect_close,
    expect_equal,
    expect_scalar,
    expect_true,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.tokenize import BPETokenizer, count_pairs, merge_pair

NB = "01"


# ------------------------------------------------------------------------------------------
# 01.1 the merge step


def _merge_reference(symbols: Sequence[str], pair: Sequence[str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == tuple(pair):
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def _merge_first_only(symbols: Sequence[str], pair: Sequence[str]) -> tuple[str, ...]:
    for i in range(len(symbols) - 1):
        if (symbols[i], symbols[i + 1]) == tuple(pair):
            return (*symbols[:i], symbols[i] + symbols[i + 1], *symbols[i + 2 :])
    return tuple(symbols)


def _merge_overlapping(symbols: Sequence[str], pair: Sequence[str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == tuple(pair):
            out.append(symbols[i] + symbols[i + 1])
        else:
            out.append(symbols[i])
        i += 1  # should skip the merged partner too
    return tuple(out)


def _merge_by_string(symbols: Sequence[str], pair: Sequence[str]) -> tuple[str, ...]:
    return tuple(" ".join(symbols).replace(" ".join(pair), "".join(pair)).split())


def _merge_drops_last(symbols: Sequence[str], pair: Sequence[str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(symbols) - 1:
        if (symbols[i], symbols[i + 1]) == tuple(pair):
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


_MERGE_MISTAKES: list[tuple[Callable[[Sequence[str], Sequence[str]], tuple[str, ...]], str]] = [
    (_merge_first_only, "Replace EVERY occurrence of the pair, not only the first one."),
    (
        _merge_overlapping,
        "Occurrences do not overlap: after merging symbols i and i+1, continue at i + 2.",
    ),
    (
        _merge_by_string,
        "Joining the symbols into one string loses their boundaries: ('a', 'bc', 'd') contains "
        "no pair ('c', 'd'). Compare whole symbols, two neighbours at a time.",
    ),
    (
        _merge_drops_last,
        "The last symbol went missing: when it is not part of a merge, it must still be copied.",
    ),
]


@exercise(
    "01.1",
    notebook=NB,
    title="The BPE merge step",
    asks="Implement merge_pair(symbols, pair): replace each occurrence of the pair, left to right",
    difficulty=1,
    minutes=10,
    reference=_merge_reference,
    wrong_answers={
        "merges only the first occurrence": _merge_first_only,
        "overlapping merges": _merge_overlapping,
        "string replace across symbol boundaries": _merge_by_string,
        "drops the last symbol": _merge_drops_last,
    },
)
def check_merge_pair(answer: Any) -> None:
    """Equals merge_pair on eight cases: repeats, overlaps (a a a), multi-character symbols, no match, empty.

    Rejects merging only the first occurrence, overlapping merges, string replacement across
    symbol boundaries and losing the last symbol.
    """
    expect_callable(answer, name="my_merge_pair")
    cases = [
        (("r", "e", "a", "d", "i", "n", "g"), ("i", "n")),
        (("t", "e", "d", "d", "y"), ("d", "d")),
        (("a", "a", "a", "b"), ("a", "a")),
        (("a", "a", "a", "a"), ("a", "a")),
        (("b", "e", "a", "r"), ("x", "y")),
        (("ab", "c", "ab", "c"), ("ab", "c")),
        (("a", "bc", "d"), ("c", "d")),
        ((), ("a", "b")),
    ]
    for symbols, pair in cases:
        got = answer(symbols, pair)
        if got is None:
            raise ExerciseFailure("merge_pair returned None.", hint="Return the new symbols.")
        if isinstance(got, str) or not isinstance(got, Iterable):
            raise ExerciseFailure(
                f"merge_pair({symbols}, {pair}) returned {a_type(got)}, not a tuple of symbols.",
                hint="Return a tuple of strings, one per symbol.",
            )
        got = tuple(got)
        expected = merge_pair(symbols, pair)
        if got == expected:
            continue
        hint = "Scan left to right; after merging at i, continue at i + 2 (no overlaps)."
        for mistake, mistake_hint in _MERGE_MISTAKES:
            if got == mistake(symbols, pair):
                hint = mistake_hint
                break
        expect_equal(got, expected, name=f"merge_pair({symbols}, {pair})", hint=hint)


# ------------------------------------------------------------------------------------------
# 01.2 counting pairs

_WordCounts = dict[tuple[str, ...], int]


def _count_reference(words: _WordCounts) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for symbols, freq in words.items():
        for a, b in zip(symbols, symbols[1:]):
            pairs[(a, b)] += freq
    return pairs


def _count_unweighted(words: _WordCounts) -> Counter[tuple[str, str]]:
    return Counter(p for symbols in words for p in zip(symbols, symbols[1:]))


def _count_once_per_word(words: _WordCounts) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for symbols, freq in words.items():
        for p in set(zip(symbols, symbols[1:])):
            pairs[p] += freq
    return pairs


def _count_skips_last_pair(words: _WordCounts) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for symbols, freq in words.items():
        for i in range(len(symbols) - 2):
            pairs[(symbols[i], symbols[i + 1])] += freq
    return pairs


def _count_pairs_wrap(words: _WordCounts) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for symbols, freq in words.items():
        for i in range(len(symbols)):
            pairs[(symbols[i - 1], symbols[i])] += freq
    return pairs


_COUNT_MISTAKES: list[tuple[Callable[[_WordCounts], Counter[tuple[str, str]]], str]] = [
    (
        _count_unweighted,
        "Each occurrence of a pair adds the word's COUNT (how often the word occurs), not 1.",
    ),
    (
        _count_once_per_word,
        "A pair that occurs twice in one word counts twice: ('b','a','n','a','n','a') with count "
        "3 adds 6 to ('a', 'n'). Do not deduplicate the pairs of a word.",
    ),
    (
        _count_skips_last_pair,
        "A word of n symbols has n - 1 adjacent pairs, the last one included "
        "(zip(symbols, symbols[1:]) gives them all).",
    ),
    (
        _count_pairs_wrap,
        "Pairs are neighbours inside a word: the last symbol and the first one are not a pair "
        "(symbols[-1] wraps around).",
    ),
]


@exercise(
    "01.2",
    notebook=NB,
    title="Counting adjacent pairs",
    asks="Implement count_pairs(words) for words given as {tuple of symbols: count}",
    difficulty=1,
    minutes=10,
    reference=_count_reference,
    wrong_answers={
        "adds 1 instead of the word's count": _count_unweighted,
        "counts a pair once per word (set of pairs)": _count_once_per_word,
        "misses each word's last pair": _count_skips_last_pair,
        "wraps around from the last symbol to the first": _count_pairs_wrap,
    },
)
def check_count_pairs(answer: Any) -> None:
    """Every pair's total, weighted by word counts, on words that repeat a pair (b a n a n a) and a one-symbol word.

    Rejects adding 1 per occurrence, counting a pair once per word, missing the last pair of a
    word and wrapping around; does not let the learner's function change the input.
    """
    expect_callable(answer, name="my_count_pairs")
    words = {
        ("l", "o", "w"): 5,
        ("l", "o", "w", "e", "r"): 2,
        ("n", "e", "w", "e", "s", "t"): 6,
        ("w", "i", "d", "e", "s", "t"): 3,
        ("b", "a", "n", "a", "n", "a"): 3,
        ("a",): 4,
    }
    got = answer(dict(words))
    expect_true(
        isinstance(got, Mapping),
        f"count_pairs should return a dict or Counter, not {a_type(got)}.",
        hint="Build a Counter() and add each pair's count to it; return the Counter.",
    )
    got = Counter({tuple(k): v for k, v in got.items() if v})
    expected = count_pairs(words)
    if got == expected:
        return
    hint = "Each occurrence of a pair in a word adds that word's count, not 1."
    for mistake, mistake_hint in _COUNT_MISTAKES:
        if got == mistake(words):
            hint = mistake_hint
            break
    for pair, n in sorted(expected.items()):
        if got.get(pair, 0) != n:
            raise ExerciseFailure(
                f"pair {pair} counted {got.get(pair, 0)} times, expected {n}.", hint=hint
            )
    extra = sorted(set(got) - set(expected), key=repr)
    raise ExerciseFailure(
        f"pairs that do not occur were counted: {extra[:3]}.",
        hint=hint
        if hint != _COUNT_MISTAKES[0][1]
        else "Only neighbours inside a word form a pair.",
    )


# ------------------------------------------------------------------------------------------
# 01.3 BPE encoding: replaying the learned merges

_Merges = Sequence[tuple[str, str]]


def _encode_reference(word: str, merges: _Merges) -> list[str]:
    symbols: tuple[str, ...] = tuple(word)
    for pair in merges:  # in the order they were learned
        symbols = merge_pair(symbols, tuple(pair))  # type: ignore[arg-type]
    return list(symbols)


def _encode_by_rank(word: str, merges: _Merges) -> list[str]:
    """GPT-2's loop: merge the pair of lowest rank present, until no learned pair is left."""
    ranks = {tuple(p): r for r, p in enumerate(merges)}
    symbols: tuple[str, ...] = tuple(word)
    while len(symbols) > 1:
        present = [(ranks[p], p) for p in zip(symbols, symbols[1:]) if p in ranks]
        if not present:
            break
        symbols = merge_pair(symbols, min(present)[1])
    return list(symbols)


def _encode_reversed(word: str, merges: _Merges) -> list[str]:
    return _encode_reference(word, list(merges)[::-1])


def _encode_most_frequent(word: str, merges: _Merges) -> list[str]:
    """Replays training on the word: the pair that occurs most often in it first."""
    known = {tuple(p) for p in merges}
    symbols: tuple[str, ...] = tuple(word)
    while True:
        pairs = Counter(p for p in zip(symbols, symbols[1:]) if p in known)
        if not pairs:
            return list(symbols)
        symbols = merge_pair(symbols, pairs.most_common(1)[0][0])


def _encode_leftmost(word: str, merges: _Merges) -> list[str]:
    """Merges the leftmost learned pair first, whatever its rank."""
    known = {tuple(p) for p in merges}
    symbols: tuple[str, ...] = tuple(word)
    while True:
        first = next((p for p in zip(symbols, symbols[1:]) if p in known), None)
        if first is None:
            return list(symbols)
        i = list(zip(symbols, symbols[1:])).index(first)
        symbols = (*symbols[:i], first[0] + first[1], *symbols[i + 2 :])


def _encode_one_pass(word: str, merges: _Merges) -> list[str]:
    """One left-to-right pass that joins any learned pair, never looking back."""
    known = {tuple(p) for p in merges}
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) in known:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


_ENCODE_MISTAKES: list[tuple[Callable[[str, _Merges], list[str]], str]] = [
    (
        _encode_reversed,
        "Apply the merges in the order they were LEARNED, the first one first: a later merge may "
        "need a symbol that an earlier one creates ('ab' + 'c' needs 'a' + 'b' before it).",
    ),
    (
        _encode_most_frequent,
        "Encoding does not count pairs again: the pair that occurs most often IN THE WORD does not "
        "go first. The merge learned earliest (lowest rank) goes first, as in training.",
    ),
    (
        _encode_leftmost,
        "The position in the word does not decide: among the learned pairs present, merge the one "
        "learned EARLIEST (lowest rank), wherever it sits, then look again.",
    ),
    (
        _encode_one_pass,
        "One pass over the word is not enough: a merge creates a symbol that a later merge can "
        "join again ('a' + 'b' -> 'ab', then 'ab' + 'c' -> 'abc'). Go through the whole list of "
        "merges, in order, applying each one to the current symbols.",
    ),
]


def _tokenizer_of(merges: _Merges) -> BPETokenizer:
    """The package's byte-level tokenizer with the same merges (ASCII symbols)."""
    ids = {chr(i): i for i in range(128)}
    id_merges = []
    for rank, (a, b) in enumerate(merges):
        id_merges.append((ids[a], ids[b]))
        ids.setdefault(a + b, BPETokenizer.BASE + rank)
    return BPETokenizer(id_merges)


def _learned_merges() -> list[tuple[str, str]]:
    """The first 60 merges a byte-level BPE learns on a few lines of verse."""
    text = (
        "The reading of the red deer by the river: the reader reads, the deer reads the reader. "
        "A cute teddy bear is reading there; the bear is ready, the teddy is steady. "
    ) * 4
    tok = BPETokenizer.train(text, 256 + 60)
    return [(tok.vocab[a].decode(), tok.vocab[b].decode()) for a, b in tok.merges]


def _encode_cases() -> list[tuple[str, list[tuple[str, str]]]]:
    learned = _learned_merges()
    return [
        ("abc", [("a", "b"), ("b", "c"), ("ab", "c")]),  # a merge on top of a merge
        ("abc", [("b", "c"), ("a", "b")]),  # rank, not position, decides
        ("ababc", [("b", "c"), ("a", "b")]),
        ("abcbc", [("a", "b"), ("b", "c")]),  # rank, not frequency in the word
        ("aaaa", [("a", "a"), ("aa", "aa")]),
        (" reading", learned),
        (" teddy", learned),
        (" thereby", learned),
        ("xyz", learned),  # nothing learned applies
        ("", learned),
    ]


@exercise(
    "01.3",
    notebook=NB,
    title="BPE encoding replays the merges",
    asks="Implement bpe_encode(word, merges): apply the learned merges, in the order learned",
    difficulty=1,
    minutes=15,
    reference=_encode_reference,
    wrong_answers={
        "merges in reverse order": _encode_reversed,
        "most frequent pair in the word first": _encode_most_frequent,
        "leftmost learned pair first": _encode_leftmost,
        "a single left-to-right pass": _encode_one_pass,
    },
    also_correct={"lowest rank first, until none applies (GPT-2's loop)": _encode_by_rank},
)
def check_bpe_encode(answer: Any) -> None:
    """Equals the package's BPETokenizer on ten words: merges on merges, rank against position
    and against frequency, merges learned from a few lines of text, no match, empty word.

    Rejects the merges in reverse order, the most frequent pair of the word first, the leftmost
    pair first, and a single left-to-right pass.
    """
    expect_callable(answer, name="my_bpe_encode")
    cases = _encode_cases()
    answers = []
    for word, merges in cases:
        got = answer(word, list(merges))
        if got is None:
            raise ExerciseFailure("bpe_encode returned None.", hint="Return the list of symbols.")
        if isinstance(got, str) or not isinstance(got, Iterable):
            raise ExerciseFailure(
                f"bpe_encode({word!r}, ...) returned {a_type(got)}, not a list of symbols.",
                hint="Return a list of strings, one per token.",
            )
        answers.append([str(x) for x in got])
    # a mistake is recognised by giving the same tokens as the answer on every case
    hint = "Start from the characters and apply each merge, in the order learned, to all symbols."
    for mistake, mistake_hint in _ENCODE_MISTAKES:
        if all(got == mistake(w, m) for got, (w, m) in zip(answers, cases, strict=True)):
            hint = mistake_hint
            break
    for got, (word, merges) in zip(answers, cases, strict=True):
        expected = (
            [p.decode() for p in _tokenizer_of(merges).encode_trace(word)[-1]] if word else []
        )
        if got == expected:
            continue
        if "".join(got) != word:
            hint = "The tokens must spell the word exactly: merging never adds or drops characters."
        shown = merges if len(merges) <= 4 else f"{len(merges)} learned merges"
        expect_equal(got, expected, name=f"bpe_encode({word!r}, {shown})", hint=hint)


# ------------------------------------------------------------------------------------------
# 01.4 one-hot times a matrix

# Operations that read rows of the weight by index: what the exercise asks to do without.
_LOOKUPS = frozenset(
    {"__getitem__", "index_select", "embedding", "take", "take_along_dim", "gather", "select"}
)
# Products with the weight: their results are no longer "the weight" for the look-up test.
_PRODUCTS = frozenset(
    {
        "matmul",
        "__matmul__",
        "__rmatmul__",
        "mm",
        "bmm",
        "mv",
        "einsum",
        "tensordot",
        "linear",
        "addmm",
        "mul",
        "__mul__",
        "__rmul__",
    }
)


class _WatchedWeight(torch.Tensor):
    """A weight that notes every indexing look-up done on it (or on views of it)."""

    lookups: list[str] = []

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Iterable[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        name = getattr(func, "__name__", "")
        if name in _LOOKUPS:
            cls.lookups.append(name)
        out = super().__torch_function__(func, types, args, kwargs or {})
        if name in _PRODUCTS and isinstance(out, torch.Tensor):
            out = out.as_subclass(torch.Tensor)
        return out


def _embed_reference(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.one_hot(ids, num_classes=weight.shape[0]).to(weight.dtype) @ weight


def _embed_guessed_classes(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.one_hot(ids).to(weight.dtype) @ weight  # num_classes guessed from the largest id


def _embed_not_cast(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.one_hot(ids, num_classes=weight.shape[0]) @ weight  # int64 @ float32


def _runtime_error_hint(message: str, ids: torch.Tensor, weight: torch.Tensor) -> str | None:
    """A hint for the errors a one-hot product typically raises (None: not one of them)."""
    if "dtype" in message:
        return (
            "F.one_hot returns int64; a matrix product needs both sides in the same dtype: "
            "F.one_hot(...).to(weight.dtype) @ weight."
        )
    if "shape" in message or "size" in message:
        if int(ids.max()) < weight.shape[0] - 1:
            return _NUM_CLASSES_HINT
        return "The one-hot tensor (..., V) goes on the left: one_hot @ weight, with weight (V, d)."
    return None


_LOOKUP_SPELLING = {
    "__getitem__": "weight[ids]",
    "index_select": "weight.index_select(...)",
    "embedding": "F.embedding(ids, weight)",
    "gather": "weight.gather(...)",
    "take": "weight.take(...)",
}


def _lookup_names(lookups: Sequence[str]) -> str:
    """How the learner probably wrote the look-ups that were recorded, for the hint."""
    return " and ".join(_LOOKUP_SPELLING.get(name, name) for name in lookups)


_NUM_CLASSES_HINT = (
    "F.one_hot(ids) guesses the number of classes from the largest id present; pass "
    "num_classes=weight.shape[0] so every one-hot vector has V entries."
)


@exercise(
    "01.4",
    notebook=NB,
    title="One-hot times a matrix is a look-up",
    asks="Implement embed_one_hot(ids, weight): one_hot(ids) @ weight, without nn.Embedding",
    difficulty=1,
    minutes=10,
    reference=_embed_reference,
    wrong_answers={
        "indexing weight[ids]": lambda ids, w: w[ids],
        "F.embedding": lambda ids, w: F.embedding(ids, w),
        "index_select": lambda ids, w: w.index_select(0, ids.flatten()).view(*ids.shape, -1),
        "one_hot without num_classes": _embed_guessed_classes,
        "one-hot left as integers": _embed_not_cast,
    },
)
def check_one_hot(answer: Any) -> None:
    """Equals the embedding look-up for three batches of ids (one without the largest ids); the weight is never indexed.

    The weight passed in records indexing (weight[ids], index_select, F.embedding, gather):
    any of them fails the exercise, which asks for the one-hot product.
    """
    expect_callable(answer, name="embed_one_hot")
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(12, 5, generator=gen)
    cases = [
        torch.randint(0, 12, (3, 7), generator=gen),
        torch.tensor([[0, 3, 2, 9], [4, 4, 1, 0]]),  # ids below V - 1 only
        torch.tensor([11, 0, 5]),
    ]
    for ids in cases:
        watched = weight.clone().as_subclass(_WatchedWeight)
        _WatchedWeight.lookups = []
        try:
            got = answer(ids.clone(), watched)
        except RuntimeError as err:
            hint = _runtime_error_hint(str(err), ids, weight)
            if hint is None:
                raise
            raise ExerciseFailure(f"your code raised RuntimeError: {err}", hint=hint) from err
        lookups = sorted(set(_WatchedWeight.lookups))
        _WatchedWeight.lookups = []
        if isinstance(got, torch.Tensor):
            got = got.as_subclass(torch.Tensor)
        expect_close(
            got,
            F.embedding(ids, weight),
            name=f"embed_one_hot(ids of shape {tuple(ids.shape)}, weight)",
            hint="F.one_hot(ids, num_classes=V) gives (..., V) integers: cast to weight.dtype "
            "first, then multiply by weight.",
        )
        if lookups:
            raise ExerciseFailure(
                f"the values are right, but your function reads rows of the weight by index "
                f"({', '.join(lookups)}): the exercise asks you to do it without indexing.",
                hint=f"Do it without indexing: instead of {_lookup_names(lookups)}, build "
                "one_hot = F.one_hot(ids, "
                "num_classes=weight.shape[0]), cast it to weight.dtype, and return one_hot @ "
                "weight: the point is that this product IS the look-up.",
            )


# ------------------------------------------------------------------------------------------
# 01.5 the negative-sampling loss


def _sgns_reference(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    pos = F.logsigmoid((center * context).sum(-1))
    neg = F.logsigmoid(-(negatives @ center.unsqueeze(-1)).squeeze(-1)).sum(-1)
    return -(pos + neg).mean()


def _sgns_naive_log(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    pos = torch.log(torch.sigmoid((center * context).sum(-1)))
    neg = torch.log(torch.sigmoid(-(negatives @ center.unsqueeze(-1)).squeeze(-1))).sum(-1)
    return -(pos + neg).mean()


def _sgns_negatives_unsigned(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    pos = F.logsigmoid((center * context).sum(-1))
    neg = F.logsigmoid((negatives @ center.unsqueeze(-1)).squeeze(-1)).sum(-1)
    return -(pos + neg).mean()


def _sgns_batch_sum(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    return _sgns_reference(center, context, negatives) * center.shape[0]


def _sgns_no_minus(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    return -_sgns_reference(center, context, negatives)


def _sgns_negatives_mean(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    pos = F.logsigmoid((center * context).sum(-1))
    neg = F.logsigmoid(-(negatives @ center.unsqueeze(-1)).squeeze(-1)).mean(-1)
    return -(pos + neg).mean()


_SgnsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
_SGNS_MISTAKES: list[tuple[_SgnsFn, str]] = [
    (
        _sgns_negatives_unsigned,
        "The negatives enter as log σ(-u_n·v): flip the sign of their scores inside the "
        "log-sigmoid (a negative sample should score LOW).",
    ),
    (_sgns_batch_sum, "Average over the batch (.mean()), do not sum."),
    (
        _sgns_no_minus,
        "The loss is the NEGATIVE log-likelihood: put a minus in front, so that it is >= 0 "
        "and minimising it makes the true pairs likely.",
    ),
    (
        _sgns_negatives_mean,
        "Sum the K negative terms of each example (Σ_k), do not average them.",
    ),
]


@exercise(
    "01.5",
    notebook=NB,
    title="Skip-gram with negative sampling loss",
    asks="Implement sgns_loss(center (B,D), context (B,D), negatives (B,K,D))",
    difficulty=2,
    minutes=15,
    reference=_sgns_reference,
    wrong_answers={
        "log(sigmoid(x)) overflows": _sgns_naive_log,
        "negatives without the minus sign": _sgns_negatives_unsigned,
        "sums over the batch": _sgns_batch_sum,
        "log-likelihood instead of its negative": _sgns_no_minus,
        "averages the negatives": _sgns_negatives_mean,
    },
)
def check_sgns(answer: Any) -> None:
    """A scalar equal to -[log σ(u·v) + Σ_k log σ(-n_k·v)] averaged over the batch, also for scores in the thousands.

    Rejects a missing sign on the negatives or on the loss, a batch sum, a mean over the
    negatives, and log(sigmoid(x)), which overflows where F.logsigmoid does not.
    """
    expect_callable(answer, name="sgns_loss")
    gen = torch.Generator().manual_seed(2)
    center = torch.randn(6, 8, generator=gen)
    context = torch.randn(6, 8, generator=gen)
    negatives = torch.randn(6, 4, 8, generator=gen)
    got = expect_scalar(answer(center, context, negatives), "sgns_loss")
    expect_close(
        got,
        _sgns_reference(center, context, negatives),
        name="sgns_loss",
        hint="-log σ(u·v) for the true context, minus Σ_k log σ(-n_k·v) for negatives, batch mean. "
        "F.logsigmoid is the stable way to take log σ.",
        mistakes=[(partial(fn, center, context, negatives), hint) for fn, hint in _SGNS_MISTAKES],
    )
    # large scores must not overflow
    big = _sgns_reference(center * 30, context * 30, negatives * 30)
    got_big = expect_scalar(
        answer(center * 30, context * 30, negatives * 30), "sgns_loss with large scores"
    )
    expect_close(
        got_big,
        big,
        name="sgns_loss with large scores",
        rtol=1e-4,
        atol=1e-3,
        hint="log(sigmoid(x)) overflows for large |x|: use F.logsigmoid.",
    )


# ------------------------------------------------------------------------------------------
# 01.6 an ablation: the number of merges against tokens per held-out word


def _ablation(
    train_text: str, held_out: str, n_merges: Sequence[int], *, mistake: str = ""
) -> dict[int, float]:
    out: dict[int, float] = {}
    largest = BPETokenizer.train(train_text, BPETokenizer.BASE + max(n_merges))
    for n in n_merges:
        if mistake == "one tokenizer":
            tok = largest
        elif mistake == "no 256":
            tok = BPETokenizer.train(train_text, n)
        else:
            tok = BPETokenizer.train(train_text, BPETokenizer.BASE + n)
        measured = train_text if mistake == "training text" else held_out
        n_tokens = len(tok.encode(measured))
        if mistake == "per character":
            out[n] = n_tokens / len(measured)
        elif mistake == "count":
            out[n] = float(n_tokens)
        else:
            out[n] = n_tokens / len(measured.split())
    return out


def _ablation_reference(
    train_text: str, held_out: str, n_merges: Sequence[int]
) -> dict[int, float]:
    out = {}
    for n in n_merges:
        tok = BPETokenizer.train(train_text, 256 + n)  # 256 bytes + n merges
        out[n] = len(tok.encode(held_out)) / len(held_out.split())
    return out


def _ablation_pieces(train_text: str, held_out: str, n_merges: Sequence[int]) -> dict[int, float]:
    words = held_out.split()
    out = {}
    for n in sorted(n_merges, reverse=True):
        tok = BPETokenizer.train(train_text, BPETokenizer.BASE + n)
        out[n] = len(tok.pieces(held_out)) / len(words)
    return out


_ABLATION_MISTAKES: list[tuple[str, str]] = [
    (
        "training text",
        "These are the numbers of the TRAINING text: measure on the held-out text, which the "
        "merges were not learned from (that is what a new document would cost).",
    ),
    (
        "per character",
        "That is tokens per CHARACTER: divide the number of tokens by the number of words, "
        "len(held_out.split()).",
    ),
    (
        "count",
        "That is the number of tokens: divide it by the number of words, len(held_out.split()), "
        "so that texts of any length compare.",
    ),
    (
        "one tokenizer",
        "Every entry is the same: train a NEW tokenizer for each number of merges (the one "
        "factor the ablation changes), BPETokenizer.train(train_text, 256 + n).",
    ),
]


def _ablation_texts() -> tuple[str, str]:
    """A training text and a held-out text drawn from the same small language."""
    stems = ["read", "bear", "king", "love", "speak", "walk", "night", "dream", "sing", "hold"]
    endings = ["", "", "", "s", "ing", "er", "ed", "eth", "est"]
    small = ["the", "and", "of", "a", "to", "my", "thou", "is", "in", "that"]

    def sample(seed: int, n_words: int) -> str:
        gen = torch.Generator().manual_seed(seed)
        picks = torch.randint(0, 1000, (n_words, 3), generator=gen).tolist()
        words = []
        for a, b, c in picks:
            if a % 2:
                words.append(small[b % len(small)])
            else:
                words.append(stems[b % len(stems)] + endings[c % len(endings)])
        return " ".join(words) + "\n"

    return sample(5, 3000), sample(6, 800)


@exercise(
    "01.6",
    notebook=NB,
    title="An ablation: how many merges pay off",
    asks="merge_ablation(train_text, held_out, n_merges) -> {n: tokens per held-out word}, one "
    "tokenizer trained per number of merges",
    difficulty=2,
    minutes=15,
    reference=_ablation_reference,
    wrong_answers={
        "measured on the training text": partial(_ablation, mistake="training text"),
        "vocab_size = number of merges (no 256 bytes)": partial(_ablation, mistake="no 256"),
        "tokens per character": partial(_ablation, mistake="per character"),
        "number of tokens, not per word": partial(_ablation, mistake="count"),
        "one tokenizer for every entry": partial(_ablation, mistake="one tokenizer"),
    },
    also_correct={"pieces, largest first": _ablation_pieces},
)
def check_merge_ablation(answer: Any) -> None:
    """Tokens per held-out word for 0, 15, 40 and 100 merges learned on a small synthetic text
    (3,000 words), equal to BPETokenizer's.

    Rejects measuring on the training text, vocab_size without the 256 bytes, tokens per
    character, a plain token count and one tokenizer reused for every entry.
    """
    expect_callable(answer, name="merge_ablation")
    train_text, held_out = _ablation_texts()
    n_merges = [0, 15, 40, 100]
    try:
        got = answer(train_text, held_out, list(n_merges))
    except ValueError as err:
        if "byte alphabet" not in str(err):
            raise
        raise ExerciseFailure(
            f"your code raised ValueError: {err}",
            hint="vocab_size counts the 256 byte values too: n merges need "
            "BPETokenizer.train(train_text, 256 + n).",
        ) from err
    expect_true(
        isinstance(got, Mapping),
        f"merge_ablation should return a dict, not {a_type(got)}.",
        hint="Return {n: tokens per word} with one entry per number of merges.",
    )
    expect_equal(
        sorted(got),
        n_merges,
        name="the keys of your dict",
        hint="One entry per number of merges asked for, keyed by that number.",
    )
    expected = _ablation_reference(train_text, held_out, n_merges)
    for n in n_merges:
        value = got[n]
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and abs(float(value) - expected[n]) <= 1e-9 * max(
            1.0, expected[n]
        ):
            continue
        hint = (
            "Train BPETokenizer.train(train_text, 256 + n) for each n, encode the held-out "
            "text, and divide the number of tokens by len(held_out.split())."
        )
        for mistake, mistake_hint in _ABLATION_MISTAKES:
            if got == _ablation(train_text, held_out, n_merges, mistake=mistake):
                hint = mistake_hint
                break
        raise ExerciseFailure(
            f"with {n} merges you measured {value!r} tokens per word, expected {expected[n]:.4f}.",
            hint=hint,
        )


quiz_question(
    "01.q1",
    notebook=NB,
    question="Compared with a word-level tokenizer on the same corpus, a character tokenizer has...",
    options=[
        "a larger vocabulary and shorter sequences",
        "the same sequence length, since every word is made of characters",
        "a much smaller vocabulary, longer sequences, and no out-of-vocabulary words",
        "a vocabulary of exactly 30,000 symbols",
    ],
    answer=2,
    explanation="Tiny Shakespeare has 65 characters but over 10,000 word types; the price of the "
    "tiny vocabulary is about 4-5x more tokens per text. Any text made of known characters encodes.",
    feedback=[
        "That describes the word tokenizer: one symbol per word type makes a large vocabulary and "
        "few tokens. Characters are few, and each word takes several of them.",
        "Every character is a token of its own: a five-letter word is five tokens instead of "
        "one, so the sequences get longer, not the same.",
        "",
        "30,000 is a typical size of a subword (BPE, WordPiece) vocabulary, set by the number of "
        "merges; a character vocabulary is whatever characters the corpus contains.",
    ],
)

quiz_question(
    "01.q2",
    notebook=NB,
    question="What does one step of BPE training do?",
    options=[
        "Split the rarest token into two halves",
        "Remove the least frequent word from the vocabulary",
        "Assign each word its own id",
        "Merge the most frequent adjacent pair of symbols into one new symbol",
    ],
    answer=3,
    explanation="Each step counts adjacent pairs across the corpus (weighted by word counts) and "
    "adds the most frequent pair as a new token; vocabulary size = base alphabet + number of merges.",
    feedback=[
        "BPE builds up and never splits: it starts from single characters and each step joins "
        "two symbols into a longer one.",
        "BPE never removes anything: each step adds one symbol, so the vocabulary grows by one "
        "per merge.",
        "That is a word-level tokenizer, which needs no training steps beyond counting words; "
        "BPE works below the word, on pairs of symbols.",
        "",
    ],
)

quiz_question(
    "01.q3",
    notebook=NB,
    question="Why is the cosine similarity between any two different one-hot vectors always 0?",
    options=[
        "Because two different one-hot vectors never have a 1 in the same position",
        "Because the vectors are normalised",
        "Because the vocabulary is too small",
        "It is not: similar words have similar one-hot vectors",
    ],
    answer=0,
    explanation="Their dot product is 0, so one-hot codes say every word is equally unlike every "
    "other: 'cat' is as far from 'dog' as from 'democracy'. Dense embeddings fix this.",
    feedback=[
        "",
        "One-hot vectors do have length 1, but the length only scales the cosine; it is 0 "
        "because the dot product is 0.",
        "The size of the vocabulary does not matter: with 10 words or 100,000, two different "
        "one-hot vectors share no non-zero position.",
        "A one-hot vector depends only on the word's id, never on its meaning: 'sword' is as "
        "far from 'dagger' as from 'porridge'.",
    ],
)

quiz_question(
    "01.q4",
    notebook=NB,
    question="word2vec gives 'bank' one vector. What follows?",
    options=[
        "'bank' cannot be used in analogies",
        "'river bank' and 'bank account' get the same representation of 'bank'",
        "The vector of 'bank' is all zeros",
        "word2vec learns a separate vector per sentence",
    ],
    answer=1,
    explanation="Static embeddings are a table look-up: context cannot change the vector. Contextual "
    "models (attention, from notebook 03 on) compute a different vector in each sentence.",
    feedback=[
        "Every word in the vocabulary can take part in the vector arithmetic of an analogy; one "
        "vector for two senses only makes such analogies less reliable.",
        "",
        "The vector is trained like every other one; shared between two senses, it becomes a "
        "blend of their contexts, not zero.",
        "A vector per sentence would be a contextual model; word2vec learns one row of a table "
        "per word, the same in every sentence.",
    ],
)
