"""Notebook 01's exercises (tokens and embeddings) agree with coursekit.tokenize, the pieces they
are about, and each common mistake gets its own hint."""

from __future__ import annotations

import pytest
from exercise_checks import (
    assert_hint_table_covers_the_notebook,
    assert_wrong_answer_gets_its_hint,
)

from coursekit.exercises import nb01
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import all_exercises, all_quiz_questions, get_exercise
from coursekit.tokenize import BPETokenizer, merge_pair

pytestmark = pytest.mark.usefixtures("one_thread")


def test_exercises_follow_the_notebook_with_rising_difficulty() -> None:
    ours = sorted((ex for ex in all_exercises() if ex.notebook == "01"), key=lambda ex: ex.id)
    assert [ex.id for ex in ours] == [f"01.{i}" for i in range(1, 7)]
    difficulties = [ex.difficulty for ex in ours]
    assert difficulties == sorted(difficulties)


@pytest.mark.parametrize("vocab_size", [256, 300, 400])
def test_bpe_encode_reference_equals_the_tokenizer_on_merges_it_learned(vocab_size: int) -> None:
    text = "the reader reads the red thread; there the three readers tread\n" * 3
    tok = BPETokenizer.train(text, vocab_size)
    merges = [(tok.vocab[a].decode(), tok.vocab[b].decode()) for a, b in tok.merges]
    encode = get_exercise("01.3").reference
    for word in [" reader", " threads", " tread", "xyz", " the"]:
        assert encode(word, merges) == [p.decode() for p in tok.pieces(word)]


def test_bpe_encode_cases_make_the_order_of_the_merges_matter() -> None:
    """Each hand-made case is split differently when the merges are replayed backwards."""
    for word, merges in nb01._encode_cases()[:4]:
        forward = nb01._encode_reference(word, merges)
        assert forward != nb01._encode_reversed(word, merges)
        assert "".join(forward) == word


def test_bpe_encode_check_accepts_a_tuple_and_rejects_a_string() -> None:
    ex = get_exercise("01.3")

    def as_tuple(word, merges):
        symbols = tuple(word)
        for pair in merges:
            symbols = merge_pair(symbols, pair)
        return symbols

    assert evaluate(ex, as_tuple).passed
    outcome = evaluate(ex, lambda word, merges: "".join(as_tuple(word, merges)))
    assert not outcome.passed and "list of strings" in (outcome.hint or "")
    outcome = evaluate(ex, lambda word, merges: [*as_tuple(word, merges), "!"])
    assert not outcome.passed and "spell the word exactly" in (outcome.hint or "")


def test_merge_ablation_reference_falls_with_the_number_of_merges() -> None:
    train_text, held_out = nb01._ablation_texts()
    per_word = get_exercise("01.6").reference(train_text, held_out, [0, 15, 40, 100])
    values = [per_word[n] for n in (0, 15, 40, 100)]
    assert values == sorted(values, reverse=True) and values[0] > 2 * values[-1]
    # with no merges a token is a byte: tokens per word = bytes per word (spaces included)
    assert per_word[0] == len(held_out.encode()) / len(held_out.split())


def test_merge_ablation_check_wants_a_dict_keyed_by_the_numbers_of_merges() -> None:
    ex = get_exercise("01.6")
    reference = ex.reference
    outcome = evaluate(ex, lambda t, h, ns: list(reference(t, h, ns).values()))
    assert not outcome.passed and "dict" in outcome.message
    outcome = evaluate(ex, lambda t, h, ns: {n + 256: v for n, v in reference(t, h, ns).items()})
    assert not outcome.passed and "keyed by that number" in (outcome.hint or "")


#: (exercise, registered wrong answer, what its hint must say)
OWN_HINTS: list[tuple[str, str, str]] = [
    ("01.1", "merges only the first occurrence", "EVERY occurrence"),
    ("01.1", "overlapping merges", "continue at i + 2"),
    ("01.1", "string replace across symbol boundaries", "boundaries"),
    ("01.1", "drops the last symbol", "last symbol went missing"),
    ("01.2", "adds 1 instead of the word's count", "word's COUNT"),
    ("01.2", "counts a pair once per word (set of pairs)", "Do not deduplicate"),
    ("01.2", "misses each word's last pair", "n - 1 adjacent pairs"),
    ("01.2", "wraps around from the last symbol to the first", "wraps around"),
    ("01.3", "merges in reverse order", "order they were LEARNED"),
    ("01.3", "most frequent pair in the word first", "IN THE WORD"),
    ("01.3", "leftmost learned pair first", "position in the word does not decide"),
    ("01.3", "a single left-to-right pass", "One pass over the word is not enough"),
    ("01.4", "indexing weight[ids]", "instead of weight[ids]"),
    ("01.4", "F.embedding", "instead of F.embedding"),
    ("01.4", "index_select", "instead of weight.index_select"),
    ("01.4", "one_hot without num_classes", "num_classes=weight.shape[0]"),
    ("01.4", "one-hot left as integers", "int64"),
    ("01.5", "log(sigmoid(x)) overflows", "F.logsigmoid"),
    ("01.5", "negatives without the minus sign", "flip the sign"),
    ("01.5", "sums over the batch", "do not sum"),
    ("01.5", "log-likelihood instead of its negative", "NEGATIVE log-likelihood"),
    ("01.5", "averages the negatives", "do not average"),
    ("01.6", "measured on the training text", "TRAINING text"),
    ("01.6", "vocab_size = number of merges (no 256 bytes)", "256 + n"),
    ("01.6", "tokens per character", "tokens per CHARACTER"),
    ("01.6", "number of tokens, not per word", "That is the number of tokens"),
    ("01.6", "one tokenizer for every entry", "train a NEW tokenizer"),
]


def test_own_hints_list_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("01", OWN_HINTS)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)


def test_quiz_answers_are_spread_and_every_wrong_option_has_feedback() -> None:
    questions = [q for q in all_quiz_questions() if q.notebook == "01"]
    assert sorted(q.id for q in questions) == [f"01.q{i}" for i in range(1, 5)]
    assert len({q.answer for q in questions}) == 4
    for q in questions:
        assert len(q.options) == len(q.feedback) == 4
        assert all(text for i, text in enumerate(q.feedback) if i != q.answer)
