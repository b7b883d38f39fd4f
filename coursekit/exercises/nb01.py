"""Checks and quiz of notebook 01: tokens and embeddings."""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from coursekit.exercises.expect import expect_close, expect_equal, expect_true
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.tokenize import count_pairs, merge_pair

NB = "01"


@exercise(
    "01.1",
    notebook=NB,
    title="The BPE merge step",
    asks="Implement merge_pair(symbols, pair): replace each occurrence of the pair, left to right",
    difficulty=1,
    minutes=10,
)
def check_merge_pair(answer) -> None:
    cases = [
        (("r", "e", "a", "d", "i", "n", "g"), ("i", "n")),
        (("t", "e", "d", "d", "y"), ("d", "d")),
        (("a", "a", "a", "b"), ("a", "a")),
        (("a", "a", "a", "a"), ("a", "a")),
        (("b", "e", "a", "r"), ("x", "y")),
        (("ab", "c", "ab", "c"), ("ab", "c")),
        ((), ("a", "b")),
    ]
    for symbols, pair in cases:
        got = answer(symbols, pair)
        if got is None:
            raise ExerciseFailure("merge_pair returned None.", hint="Return the new symbols.")
        expect_equal(
            tuple(got),
            merge_pair(symbols, pair),
            name=f"merge_pair({symbols}, {pair})",
            hint="Scan left to right; after merging at i, continue at i + 2 (no overlaps).",
        )


@exercise(
    "01.2",
    notebook=NB,
    title="Counting adjacent pairs",
    asks="Implement count_pairs(words) for words given as {tuple of symbols: count}",
    difficulty=1,
    minutes=10,
)
def check_count_pairs(answer) -> None:
    words = {
        ("l", "o", "w"): 5,
        ("l", "o", "w", "e", "r"): 2,
        ("n", "e", "w", "e", "s", "t"): 6,
        ("w", "i", "d", "e", "s", "t"): 3,
        ("a",): 4,
    }
    got = answer(words)
    expect_true(isinstance(got, dict), "count_pairs should return a dict or Counter.")
    expected = count_pairs(words)
    got = Counter({k: v for k, v in got.items() if v})
    for pair, n in expected.items():
        if got.get(pair, 0) != n:
            raise ExerciseFailure(
                f"pair {pair} counted {got.get(pair, 0)} times, expected {n}.",
                hint="Each occurrence of a pair in a word adds that word's count, not 1.",
            )
    extra = set(got) - set(expected)
    expect_true(not extra, f"pairs that do not occur were counted: {sorted(extra)[:3]}.")


@exercise(
    "01.3",
    notebook=NB,
    title="One-hot times a matrix is a look-up",
    asks="Implement embed_one_hot(ids, weight): one_hot(ids) @ weight, without nn.Embedding",
    difficulty=1,
    minutes=10,
)
def check_one_hot(answer) -> None:
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(12, 5, generator=gen)
    ids = torch.randint(0, 12, (3, 7), generator=gen)
    got = answer(ids, weight)
    expect_close(
        got,
        F.embedding(ids, weight),
        name="embed_one_hot(ids, weight)",
        hint="F.one_hot(ids, num_classes=V) gives (..., V) integers: cast to weight.dtype first.",
    )


def _sgns_reference(
    center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    pos = F.logsigmoid((center * context).sum(-1))
    neg = F.logsigmoid(-(negatives @ center.unsqueeze(-1)).squeeze(-1)).sum(-1)
    return -(pos + neg).mean()


@exercise(
    "01.4",
    notebook=NB,
    title="Skip-gram with negative sampling loss",
    asks="Implement sgns_loss(center (B,D), context (B,D), negatives (B,K,D))",
    difficulty=2,
    minutes=15,
)
def check_sgns(answer) -> None:
    gen = torch.Generator().manual_seed(2)
    center = torch.randn(6, 8, generator=gen)
    context = torch.randn(6, 8, generator=gen)
    negatives = torch.randn(6, 4, 8, generator=gen)
    got = answer(center, context, negatives)
    expect_close(
        torch.as_tensor(got).reshape(()),
        _sgns_reference(center, context, negatives),
        name="sgns_loss",
        hint="-log σ(u·v) for the true context, minus Σ_k log σ(-n_k·v) for negatives, batch mean. "
        "F.logsigmoid is the stable way to take log σ.",
    )
    # large scores must not overflow
    big = _sgns_reference(center * 30, context * 30, negatives * 30)
    got_big = torch.as_tensor(answer(center * 30, context * 30, negatives * 30)).reshape(())
    expect_close(
        got_big,
        big,
        name="sgns_loss with large scores",
        rtol=1e-4,
        atol=1e-3,
        hint="log(sigmoid(x)) overflows for large |x|: use F.logsigmoid.",
    )


quiz_question(
    "01.q1",
    notebook=NB,
    question="Compared with a word-level tokenizer on the same corpus, a character tokenizer has...",
    options=[
        "a larger vocabulary and shorter sequences",
        "a much smaller vocabulary, longer sequences, and no out-of-vocabulary words",
        "the same sequence length, since every word is made of characters",
        "a vocabulary of exactly 30,000 symbols",
    ],
    answer=1,
    explanation="Tiny Shakespeare has 65 characters but over 10,000 word types; the price of the "
    "tiny vocabulary is about 4-5x more tokens per text. Any text made of known characters encodes.",
)
quiz_question(
    "01.q2",
    notebook=NB,
    question="What does one step of BPE training do?",
    options=[
        "Split the rarest token into two halves",
        "Merge the most frequent adjacent pair of symbols into one new symbol",
        "Remove the least frequent word from the vocabulary",
        "Assign each word its own id",
    ],
    answer=1,
    explanation="Each step counts adjacent pairs across the corpus (weighted by word counts) and "
    "adds the most frequent pair as a new token; vocabulary size = base alphabet + number of merges.",
)
quiz_question(
    "01.q3",
    notebook=NB,
    question="Why is the cosine similarity between any two different one-hot vectors always 0?",
    options=[
        "Because the vectors are normalised",
        "Because two different one-hot vectors never have a 1 in the same position",
        "Because the vocabulary is too small",
        "It is not: similar words have similar one-hot vectors",
    ],
    answer=1,
    explanation="Their dot product is 0, so one-hot codes say every word is equally unlike every "
    "other: 'cat' is as far from 'dog' as from 'democracy'. Dense embeddings fix this.",
)
quiz_question(
    "01.q4",
    notebook=NB,
    question="word2vec gives 'bank' one vector. What follows?",
    options=[
        "'river bank' and 'bank account' get the same representation of 'bank'",
        "'bank' cannot be used in analogies",
        "The vector of 'bank' is all zeros",
        "word2vec learns a separate vector per sentence",
    ],
    answer=0,
    explanation="Static embeddings are a table look-up: context cannot change the vector. Contextual "
    "models (attention, from notebook 03 on) compute a different vector in each sentence.",
)
