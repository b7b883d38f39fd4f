"""coursekit.data.instructions: instruction data, SFT encoding, preference pairs, the fact store."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import coursekit.data
from coursekit.data import instructions as ins
from coursekit.data.download import CACHE_ENV, MIRROR_ENV
from coursekit.tokenize import CharTokenizer

# Tiny Shakespeare's 65 characters (checked against the corpus below when it is available)
TS_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOK = CharTokenizer(TS_CHARS)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def shakespeare_chars(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The character set of Tiny Shakespeare, loaded through coursekit.data (skipped without
    the data mirror: COURSEKIT_DATA_MIRROR, else ../shared/data)."""
    from coursekit.data import load_tiny_shakespeare

    mirror = os.environ.get(MIRROR_ENV) or str(SHARED)
    if "://" not in mirror and not (Path(mirror) / "tinyshakespeare.txt").is_file():
        pytest.skip(f"no data mirror with tinyshakespeare.txt at {mirror}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MIRROR_ENV, mirror)
        if not os.environ.get(CACHE_ENV):
            mp.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
        splits = load_tiny_shakespeare()
    return set(splits.train) | set(splits.val)


def _all_text() -> list[str]:
    texts: list[str] = []
    for split in ("train", "test"):
        for e in ins.instruction_dataset(700, seed=0, split=split):
            texts += [e.prompt, e.response]
        for p in ins.preference_pairs(ins.instruction_dataset(300, seed=1, split=split), seed=0):
            texts += [p.rejected]
    for f in ins.fact_qa(ins.MAX_FACTS, seed=0):
        texts += [f.text, f.with_context([f.text]).prompt, f.with_context().response]
    return texts


def test_exported_from_coursekit_data() -> None:
    for name in ins.__all__:
        if hasattr(coursekit.data, name):
            assert getattr(coursekit.data, name) is getattr(ins, name)
    assert {"instruction_dataset", "encode_sft", "preference_pairs", "fact_qa"} <= set(
        coursekit.data.__all__
    )


# ---- the data set -------------------------------------------------------------------------------
def test_char_set_is_tiny_shakespeares(shakespeare_chars: set[str]) -> None:
    assert shakespeare_chars == set(TS_CHARS)
    used = set("".join(_all_text()))
    assert used <= shakespeare_chars, sorted(used - shakespeare_chars)
    assert not used & set("0123456789")  # numbers are spelled out


def test_every_text_encodes_with_the_char_tokenizer() -> None:
    for text in _all_text():
        assert TOK.decode(TOK.encode(text)) == text


def test_vocabularies_are_clean() -> None:
    assert len(set(ins.WORDS)) == len(ins.WORDS)
    antonym_words = [w for pair in ins.ANTONYMS for w in pair]
    assert len(set(antonym_words)) == len(antonym_words)
    assert not set(antonym_words) & set(ins.WORDS)
    assert all(w.isalpha() and w.islower() for w in ins.WORDS + tuple(antonym_words))
    assert max(len(w) for w in ins.WORDS) < len(ins.NUMBER_WORDS)


EXPECTED: dict[str, Callable[[tuple[str, ...]], str]] = {
    "reverse": lambda w: w[0][::-1],
    "uppercase": lambda w: w[0].upper(),
    "first_letter": lambda w: w[0][0],
    "last_letter": lambda w: w[0][-1],
    "length": lambda w: ins.NUMBER_WORDS[len(w[0])],
    "repeat": lambda w: f"{w[0]} {w[0]}",
    "longer": lambda w: max(w, key=len),
    "antonym": lambda w: w[1],
}


@pytest.mark.parametrize("task", ins.INSTRUCTION_TASKS)
def test_each_task_answers_correctly(task: str) -> None:
    examples = ins.instruction_dataset(40, seed=3, tasks=[task])
    assert {e.task for e in examples} == {task}
    for e in examples:
        assert e.prompt.startswith("Q: ") and e.prompt.endswith("\nA: ")
        assert e.prompt.count("\n") == 1 and e.response.endswith("\n")
        answer, w = e.response[:-1], e.words
        assert all(x in e.prompt for x in (w if task == "longer" else w[:1]))
        expected = EXPECTED[task](w)
        assert answer == expected
        if task == "longer":
            assert len(w[0]) != len(w[1])
        if task == "antonym":
            assert tuple(w) in ins.ANTONYMS or tuple(w[::-1]) in ins.ANTONYMS


def test_examples_are_a_dataclass_with_the_documented_fields() -> None:
    e = ins.instruction_dataset(1, seed=0, tasks="reverse")[0]
    assert isinstance(e, ins.Instruction)
    assert e == ins.Instruction("reverse", f"Q: reverse: {e.words[0]}\nA: ", e.response, e.words)


def test_held_out_words_never_appear_in_training() -> None:
    train = [e for s in range(3) for e in ins.instruction_dataset(1500, seed=s, split="train")]
    test = [e for s in range(3) for e in ins.instruction_dataset(1500, seed=s, split="test")]
    train_words = {w for e in train for w in e.words}
    test_words = {w for e in test for w in e.words}
    assert train_words and test_words and not train_words & test_words
    assert not {e.prompt for e in train} & {e.prompt for e in test}
    assert {e.task for e in test} == set(ins.INSTRUCTION_TASKS)
    assert all(ins.is_held_out(w) for e in test if e.task != "antonym" for w in e.words)
    # the split is a fixed property of a word, about TEST_FRACTION of them
    assert 0.1 < sum(map(ins.is_held_out, ins.WORDS)) / len(ins.WORDS) < 0.3


def test_determinism_and_balance() -> None:
    a = ins.instruction_dataset(80, seed=5)
    assert a == ins.instruction_dataset(80, seed=5)
    assert a != ins.instruction_dataset(80, seed=6)
    assert set(Counter(e.task for e in a).values()) == {80 // len(ins.INSTRUCTION_TASKS)}
    two = ins.instruction_dataset(9, seed=0, tasks=["reverse", "antonym", "reverse"])
    assert Counter(e.task for e in two) == {"reverse": 5, "antonym": 4}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n=0), "positive integer"),
        (dict(n=2.5), "positive integer"),
        (dict(n=4, tasks=["reverse", "translate"]), "unknown instruction task.*'translate'"),
        (dict(n=4, tasks=[]), "tasks is empty"),
        (dict(n=4, split="val"), "split must be 'train' or 'test'"),
    ],
)
def test_instruction_dataset_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ins.instruction_dataset(**kwargs)


# ---- encoding -------------------------------------------------------------------------------
def test_encode_sft_by_hand() -> None:
    tok = CharTokenizer("abcdefg\n")  # a=0 ... g=6, \n=7
    batch = ins.encode_sft([("ab", "cd\n"), ("efg", "a\n")], tok, block_size=8, pad_id=6)
    ids, targets = batch
    assert batch.ids is ids and ids.dtype == targets.dtype == torch.long
    assert ids.tolist() == [[0, 1, 2, 3], [4, 5, 6, 0]]
    assert targets.tolist() == [[-100, 2, 3, 7], [-100, -100, 0, 7]]
    one = ins.encode_sft([("efg", "a\n")], tok, block_size=4)
    assert one.ids.shape == (1, 4)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(TS_CHARS, min_size=1, max_size=12), st.text(TS_CHARS, min_size=1, max_size=8)
        ),
        min_size=1,
        max_size=5,
    )
)
def test_sft_mask_covers_exactly_the_prompt(pairs: list[tuple[str, str]]) -> None:
    ids, targets = ins.encode_sft(pairs, TOK, block_size=32, pad_id=0)
    width = max(len(p) + len(r) for p, r in pairs) - 1
    assert ids.shape == targets.shape == (len(pairs), width)
    for row, (p, r) in enumerate(pairs):
        seq = TOK.encode(p + r)
        n = len(seq) - 1
        assert ids[row, :n].tolist() == seq[:-1]
        assert (ids[row, n:] == 0).all()
        assert (targets[row, : len(p) - 1] == -100).all()
        assert targets[row, len(p) - 1 : n].tolist() == TOK.encode(r)
        assert (targets[row, n:] == -100).all()
        assert int((targets[row] != -100).sum()) == len(r)


def test_encode_sft_errors() -> None:
    with pytest.raises(ValueError, match="no examples"):
        ins.encode_sft([], TOK, 16)
    with pytest.raises(ValueError, match="example 1 has an empty response"):
        ins.encode_sft([("Q", "a\n"), ("Q", "")], TOK, 16)
    with pytest.raises(ValueError, match="empty prompt"):
        ins.encode_sft([("", "a\n")], TOK, 16)
    with pytest.raises(ValueError, match="needs 9 positions.*block_size is 8"):
        ins.encode_sft([("Q: abc", "def\n")], TOK, 8)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        ins.encode_sft([("Q", "a")], TOK, 0)
    with pytest.raises(ValueError, match="not in this CharTokenizer"):
        ins.encode_sft([("Q", "7")], TOK, 8)


def test_encode_texts_pads_and_gives_lengths() -> None:
    ids, lengths = ins.encode_texts(["ab", "abcd", "c"], TOK, block_size=4, pad_id=0)
    assert lengths.tolist() == [2, 4, 1]
    assert ids.shape == (3, 4) and ids[0].tolist() == TOK.encode("ab") + [0, 0]
    with pytest.raises(ValueError, match="no texts"):
        ins.encode_texts([], TOK, 4)
    with pytest.raises(ValueError, match="text 1 has 5 tokens"):
        ins.encode_texts(["a", "abcde"], TOK, 4)
    with pytest.raises(ValueError, match="text 0 has 0 tokens"):
        ins.encode_texts([""], TOK, 4)


# ---- preference pairs ------------------------------------------------------------------------
def test_preference_pairs() -> None:
    examples = ins.instruction_dataset(200, seed=0)
    pairs = ins.preference_pairs(examples, seed=0)
    assert pairs == ins.preference_pairs(examples, seed=0)
    assert pairs != ins.preference_pairs(examples, seed=1)
    assert len(pairs) == len(examples)
    swapped = corrupted = 0
    for e, p in zip(examples, pairs):
        assert (p.task, p.prompt, p.chosen) == (e.task, e.prompt, e.response)
        assert p.rejected != p.chosen and p.rejected.endswith("\n")
        assert p.chosen_text == e.prompt + e.response and p.rejected_text.startswith(e.prompt)
        if p.rejected in {x.response for x in examples if x.task == e.task}:
            swapped += 1
        else:  # one letter changed, same case
            corrupted += 1
            diff = [(a, b) for a, b in zip(p.chosen, p.rejected) if a != b]
            assert len(p.rejected) == len(p.chosen) and len(diff) == 1
            assert diff[0][0].isupper() == diff[0][1].isupper()
    assert swapped > 40 and corrupted > 40
    single = ins.preference_pairs([ins.Instruction("t", "Q: x\nA: ", "a\n")])
    assert single[0].rejected != "a\n" and len(single[0].rejected) == 2
    with pytest.raises(ValueError, match="no examples"):
        ins.preference_pairs([])


def test_encode_preferences_rows_match_pairs() -> None:
    pairs = ins.preference_pairs(ins.instruction_dataset(6, seed=2), seed=0)
    chosen, rejected = ins.encode_preferences(pairs, TOK, block_size=64)
    assert chosen.ids.shape[0] == rejected.ids.shape[0] == 6
    for i, p in enumerate(pairs):
        assert TOK.decode([t for t in chosen.targets[i].tolist() if t != -100]) == p.chosen
        assert TOK.decode([t for t in rejected.targets[i].tolist() if t != -100]) == p.rejected
    with pytest.raises(ValueError, match="no pairs"):
        ins.encode_preferences([], TOK, 64)


# ---- the fact store ---------------------------------------------------------------------------
def test_fact_qa() -> None:
    facts = ins.fact_qa(50, seed=0)
    assert facts == ins.fact_qa(50, seed=0) and len(facts) == 50
    assert len({f.question for f in facts}) == 50  # one answer per question in a store
    for f in facts:
        assert f.text.endswith(f" is kept by {f.answer}.")
        assert f.question == "who keeps " + f.text.split(" is kept")[0] + "?"
        assert f.answer in ins.FACT_NAMES
    other = ins.fact_qa(50, seed=1)
    assert [f.answer for f in facts] != [f.answer for f in other]
    assert len(ins.fact_qa(ins.MAX_FACTS, seed=0)) == ins.MAX_FACTS
    for bad in (0, ins.MAX_FACTS + 1, 2.0):
        with pytest.raises(ValueError, match="n_facts must be an integer in 1.."):
            ins.fact_qa(bad)  # type: ignore[arg-type]


def test_rag_prompt_and_context() -> None:
    f = ins.fact_qa(1, seed=0)[0]
    assert ins.rag_prompt("who?") == "Q: who?\nA: "
    assert ins.rag_prompt("who?", ["a.", "b."]) == "a.\nb.\nQ: who?\nA: "
    example = f.with_context([f.text])
    assert example.prompt == f"{f.text}\nQ: {f.question}\nA: "
    assert example.response == f"{f.answer}\n" and example.task == "fact"
    assert f.with_context().prompt == f"Q: {f.question}\nA: "
