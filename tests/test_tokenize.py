"""Tests of coursekit.tokenize: round trips, the merge loop, file format, the tokenizers library."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.tokenize import (
    BPETokenizer,
    CharTokenizer,
    TokenizerFormatError,
    WordTokenizer,
    bytes_to_unicode,
    count_pairs,
    hf_learned_tokens,
    hf_pieces,
    load_tokenizer,
    merge_pair,
    pretokenize,
    segmentation_agreement,
    tokens_per_char,
    train_hf_bpe,
)

CORPUS = (
    "A cute teddy bear is reading. The bear reads; the teddy bears are reading too!\n"
    "Reading, reader, readers: a cute bear and a cuter teddy. Ünïcödé text, 東京 and emoji 🙂.\n"
) * 20


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(CORPUS, 300)


@given(st.text(max_size=200))
@settings(max_examples=50, deadline=None)
def test_pretokenize_covers_every_character(text: str) -> None:
    assert "".join(pretokenize(text)) == text


@given(st.text(max_size=200))
@settings(max_examples=50, deadline=None)
def test_bpe_round_trips_any_unicode_text(text: str) -> None:
    tok = _shared_bpe()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)


_SHARED: list[BPETokenizer] = []


def _shared_bpe() -> BPETokenizer:
    if not _SHARED:
        _SHARED.append(BPETokenizer.train(CORPUS, 300))
    return _SHARED[0]


def test_training_learns_requested_number_of_merges(bpe: BPETokenizer) -> None:
    assert bpe.vocab_size == 300
    assert len(bpe.merges) == 44
    counts = [m.count for m in bpe.history]
    assert counts == sorted(counts, reverse=True) or max(counts) == counts[0]
    # the first merge is the most frequent adjacent byte pair within pre-tokens
    words = Counter(tuple(bytes([b]) for b in w.encode()) for w in pretokenize(CORPUS))
    pairs = Counter()
    for w, f in words.items():
        for p in zip(w, w[1:], strict=False):
            pairs[p] += f
    top = max(pairs.values())
    first = bpe.history[0]
    assert first.count == top
    assert pairs[(bytes([first.left]), bytes([first.right]))] == top


def test_bpe_compresses_and_beats_bytes(bpe: BPETokenizer) -> None:
    text = "the teddy bear is reading"
    assert len(bpe.encode(text)) < len(text.encode())
    assert tokens_per_char(bpe, CORPUS) < 0.7


def test_learned_tokens_are_concatenations(bpe: BPETokenizer) -> None:
    for rank, (a, b) in enumerate(bpe.merges):
        assert bpe.vocab[256 + rank] == bpe.vocab[a] + bpe.vocab[b]


def test_encode_trace_ends_in_encoding(bpe: BPETokenizer) -> None:
    trace = bpe.encode_trace(" reading")
    assert trace[0] == [bytes([b]) for b in b" reading"]
    assert trace[-1] == bpe.pieces(" reading")
    assert all(len(a) > len(b) for a, b in zip(trace, trace[1:], strict=False))


def test_vocab_smaller_than_alphabet_is_rejected() -> None:
    with pytest.raises(ValueError, match="smaller than the byte alphabet"):
        BPETokenizer.train("abc", 100)
    with pytest.raises(ValueError, match="smaller than the byte alphabet"):
        train_hf_bpe("abc", 100)


def test_save_load_round_trip(tmp_path, bpe: BPETokenizer) -> None:
    path = tmp_path / "bpe.json"
    bpe.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.merges == bpe.merges
    assert loaded.encode(CORPUS) == bpe.encode(CORPUS)
    char = CharTokenizer.train("hello world")
    char.save(tmp_path / "char.json")
    assert load_tokenizer(tmp_path / "char.json").chars == char.chars
    with pytest.raises(TokenizerFormatError):
        BPETokenizer.load(tmp_path / "char.json")


def test_unknown_file_formats_raise_clear_errors(tmp_path) -> None:
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps({"model": {"type": "BPE"}}))
    with pytest.raises(TokenizerFormatError, match="unknown tokenizer format"):
        load_tokenizer(bad)
    junk = tmp_path / "junk.txt"
    junk.write_text("not json at all")
    with pytest.raises(TokenizerFormatError, match="not a JSON tokenizer"):
        load_tokenizer(junk)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"type": "coursekit-bpe", "version": 99, "merges": []}))
    with pytest.raises(TokenizerFormatError, match="version"):
        load_tokenizer(future)
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing.json")


def test_char_tokenizer() -> None:
    tok = CharTokenizer.train("to be or not")
    assert tok.vocab_size == len(set("to be or not"))
    assert tok.decode(tok.encode("tenor boot")) == "tenor boot"
    with pytest.raises(ValueError, match="not in this CharTokenizer"):
        tok.encode("xyz")


def test_word_tokenizer_unknowns() -> None:
    tok = WordTokenizer.train("the cat sat on the mat.")
    assert tok.encode("the dog") == [tok.stoi["the"], 0]
    assert tok.unknown_rate("the dog sat") == pytest.approx(1 / 3)
    assert WordTokenizer.split("Don't stop, 42!") == ["Don't", "stop", ",", "42", "!"]


def test_merge_step_helpers() -> None:
    words = {("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w"): 6}
    pairs = count_pairs(words)
    assert pairs[("l", "o")] == 7 and pairs[("e", "w")] == 6 and pairs[("o", "w")] == 7
    assert merge_pair(("a", "a", "a", "b"), ("a", "a")) == ("aa", "a", "b")
    assert merge_pair(("l", "o", "w"), ("o", "w")) == ("l", "ow")


def test_bytes_to_unicode_is_a_bijection() -> None:
    m = bytes_to_unicode()
    assert len(m) == 256 and len(set(m.values())) == 256
    assert m[ord(" ")] == "Ġ" and m[ord("a")] == "a"


def _zipf_corpus(seed: int = 0, n_words: int = 400, n_tokens: int = 20_000) -> str:
    """Random pseudo-words with Zipf-like frequencies, so pair counts rarely tie."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 8))) for _ in range(n_words)]
    weights = [1 / (r + 1) for r in range(n_words)]
    return " ".join(rng.choices(vocab, weights=weights, k=n_tokens))


def test_matches_tokenizers_library() -> None:
    """Same corpus, same vocabulary size: the library learns the tokens ours does."""
    text = _zipf_corpus()
    ours = BPETokenizer.train(text, 400)
    theirs = train_hf_bpe(text, 400)
    assert theirs.get_vocab_size() == ours.vocab_size
    learned_ours = set(ours.vocab[256:])
    overlap = len(learned_ours & hf_learned_tokens(theirs)) / len(learned_ours)
    assert overlap > 0.95
    probe = _zipf_corpus(seed=1, n_tokens=2_000)
    pa, pb = ours.pieces(probe), hf_pieces(theirs, probe)
    assert b"".join(pb) == probe.encode()
    assert segmentation_agreement(pa, pb) > 0.95


def test_segmentation_agreement() -> None:
    assert segmentation_agreement([b"ab", b"c"], [b"ab", b"c"]) == 1.0
    assert segmentation_agreement([b"a", b"bc"], [b"ab", b"c"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        segmentation_agreement([b"a"], [b"b"])


def test_notebook01_checks_accept_reference_and_reject_wrong(monkeypatch) -> None:
    import torch
    import torch.nn.functional as F

    from coursekit.exercises import check

    monkeypatch.setenv("COURSEKIT_PROGRESS", "off")
    monkeypatch.delenv("COURSEKIT_STRICT_CHECKS", raising=False)
    assert check("01.1", merge_pair)
    assert not check("01.1", lambda s, p: tuple(s))
    assert check("01.2", count_pairs)
    assert not check("01.2", lambda words: Counter({p: 1 for w in words for p in zip(w, w[1:])}))
    assert check("01.4", lambda ids, w: F.one_hot(ids, w.shape[0]).to(w.dtype) @ w)
    assert not check("01.4", lambda ids, w: w[: ids.numel()].reshape(*ids.shape, -1))

    def sgns(c, o, n):
        pos = F.logsigmoid((c * o).sum(-1))
        return -(pos + F.logsigmoid(-torch.einsum("bkd,bd->bk", n, c)).sum(-1)).mean()

    def naive(c, o, n):  # forgets the minus sign on the negatives
        pos = F.logsigmoid((c * o).sum(-1))
        return -(pos + F.logsigmoid(torch.einsum("bkd,bd->bk", n, c)).sum(-1)).mean()

    assert check("01.5", sgns)
    assert not check("01.5", naive)


# --------------------------------------------------------------------------------------
# Special tokens and the word vocabulary (one definition, re-exported where notebooks look)
# --------------------------------------------------------------------------------------


def test_special_tokens_are_defined_once() -> None:
    import dataclasses

    import coursekit.data.synthetic as synthetic
    import coursekit.rnn.seq2seq as seq2seq
    from coursekit.tokenize import (
        BOS_ID,
        EOS_ID,
        PAD_ID,
        SPECIAL_TOKENS,
        UNK_ID,
        SpecialTokens,
        WordVocab,
        word_detokenize,
        word_tokenize,
    )

    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3) == SPECIAL_TOKENS.ids
    assert SPECIAL_TOKENS == SpecialTokens()
    assert SPECIAL_TOKENS.tokens == ("<pad>", "<bos>", "<eos>", "<unk>")
    with pytest.raises(dataclasses.FrozenInstanceError):
        SPECIAL_TOKENS.pad = 5  # type: ignore[misc]
    # the old import paths are plain re-exports of the same objects
    assert (synthetic.PAD_ID, synthetic.BOS_ID, synthetic.EOS_ID) == (PAD_ID, BOS_ID, EOS_ID)
    assert seq2seq.WordVocab is WordVocab
    assert seq2seq.tokenize is word_tokenize and seq2seq.detokenize is word_detokenize
    assert (seq2seq.PAD, seq2seq.BOS, seq2seq.EOS, seq2seq.UNK) == SPECIAL_TOKENS.tokens
    vocab = WordVocab(["x"])
    assert vocab.itos[:4] == list(SPECIAL_TOKENS.tokens)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == SPECIAL_TOKENS.ids


def test_word_tokenize_and_vocab_behave_as_before() -> None:
    from coursekit.tokenize import WordVocab, word_detokenize, word_tokenize

    assert word_tokenize("Je l'ai vu.") == ["je", "l", "'", "ai", "vu", "."]
    assert word_detokenize(word_tokenize("I don't know, Tom!")) == "i don't know, tom!"
    assert word_detokenize(["(", "a", ")", "b", "%"]) == "(a) b%"
    v = WordVocab.build(["a b b", "b c", "c"], min_freq=2)
    assert v.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "b", "c"] and len(v) == 6
    ids = v.encode("B a c", add_bos=True)
    assert ids == [1, 4, 3, 5, 2]
    assert v.decode([0, *ids, 4]) == "b <unk> c"
    assert v.tokens([1, 4, 0, 5, 2, 4]) == ["b", "c"]
    assert WordVocab.build(["a a b"], min_freq=1, max_size=1).itos[4:] == ["a"]


# --------------------------------------------------------------------------------------
# Ids outside the vocabulary
# --------------------------------------------------------------------------------------


def _decoders():
    from coursekit.tokenize import WordVocab

    char = CharTokenizer.train("hello")
    word = WordTokenizer.train("the cat sat")
    bpe = _shared_bpe()
    vocab = WordVocab(["the", "cat"])
    return [
        ("CharTokenizer.decode", char.decode, char.vocab_size),
        ("WordTokenizer.decode", word.decode, word.vocab_size),
        ("BPETokenizer.decode", bpe.decode, bpe.vocab_size),
        ("BPETokenizer.token_str", lambda ids: bpe.token_str(ids[-1]), bpe.vocab_size),
        ("WordVocab.decode", vocab.decode, len(vocab)),
        ("WordVocab.tokens", vocab.tokens, len(vocab)),
    ]


@pytest.mark.parametrize("case", range(6))
def test_decoding_an_id_outside_the_vocabulary_names_it(case: int) -> None:
    who, decode, size = _decoders()[case]
    for bad in (-1, size, size + 10):
        with pytest.raises(ValueError, match=rf"{who}: id {bad} .* valid ids are 0\.\.{size - 1}"):
            decode([0, bad])
    decode([size - 1])  # the last id is fine


def test_decoding_still_accepts_tensor_ids() -> None:
    import torch

    tok = CharTokenizer.train("hello")
    assert tok.decode(torch.tensor(tok.encode("hole"))) == "hole"


# --------------------------------------------------------------------------------------
# Malformed tokenizer files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"type": "coursekit-char", "version": 1}, "no 'chars'"),
        ({"type": "coursekit-char", "version": 1, "chars": "abc"}, "'chars' should be a list"),
        ({"type": "coursekit-char", "version": 1, "chars": [1, 2]}, "'chars' should be a list"),
        ({"type": "coursekit-char", "version": 1, "chars": ["ab"]}, "'chars' is not a valid"),
        ({"type": "coursekit-char", "version": 1, "chars": ["a", "a"]}, "'chars' is not a valid"),
        ({"type": "coursekit-bpe", "version": 1}, "no 'merges'"),
        ({"type": "coursekit-bpe", "version": 1, "merges": {"a": 1}}, "'merges' should be"),
        ({"type": "coursekit-bpe", "version": 1, "merges": [[1]]}, "'merges' should be"),
        ({"type": "coursekit-bpe", "version": 1, "merges": [["a", "b"]]}, "'merges' should be"),
        ({"type": "coursekit-bpe", "version": 1, "merges": [[1, True]]}, "'merges' should be"),
        ({"type": "coursekit-bpe", "version": 1, "merges": [[300, 1]]}, "'merges' is not a valid"),
        (["coursekit-bpe", 1], "holds a JSON list"),
        ("just a string", "holds a JSON str"),
    ],
)
def test_malformed_tokenizer_files_raise_format_errors(tmp_path, content, problem: str) -> None:
    path = tmp_path / "broken_tokenizer.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(TokenizerFormatError, match=problem) as info:
        load_tokenizer(path)
    assert "broken_tokenizer.json" in str(info.value)


def test_binary_file_is_a_format_error(tmp_path) -> None:
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TokenizerFormatError, match="binary.json"):
        load_tokenizer(path)


# ---- the text-to-text tokenizer (notebook 08) ------------------------------------------------
def test_text_to_text_tokenizer_special_ids_round_trip_and_padding() -> None:
    from coursekit.tokenize import TextToTextTokenizer

    texts = ["translate French to English: je suis parti", "i left", "sort digits: 3 1 2"] * 20
    tok = TextToTextTokenizer.train(texts, 300, n_sentinels=4)
    assert tok.vocab_size == 300
    assert (tok.PAD_ID, tok.EOS_ID, tok.sentinel_ids) == (0, 1, [2, 3, 4, 5])
    assert [tok.special_token(i) for i in (0, 1, 2, 5)] == [
        "<pad>", "</s>", "<extra_id_0>", "<extra_id_3>",
    ]  # fmt: skip
    ids = tok.encode("je suis parti")
    assert ids[-1] == tok.EOS_ID and min(ids[:-1]) >= 6
    assert tok.decode(ids) == "je suis parti"
    assert tok.decode(tok.encode("i left", eos=False) + [3] + tok.encode(" 2")) == "i left 2"
    shown = tok.decode(
        tok.encode("i left", eos=False) + [3] + tok.encode(" 2"), keep_sentinels=True
    )
    assert shown == "i left<extra_id_1> 2"
    batch = tok.encode_batch(["i left", "je suis parti"], max_len=3)
    assert batch.shape == (2, 3) and batch[0, -1].item() in (tok.EOS_ID, tok.PAD_ID)
    assert batch[1, -1].item() == tok.EOS_ID  # cut, keeping </s> last


def test_text_to_text_tokenizer_errors() -> None:
    from coursekit.tokenize import TextToTextTokenizer

    with pytest.raises(ValueError, match="byte symbols"):
        TextToTextTokenizer.train(["abc"], 200, n_sentinels=4)
    with pytest.raises(ValueError, match="n_sentinels"):
        TextToTextTokenizer.train(["abc"], 400, n_sentinels=-1)
    plain = train_hf_bpe(["abc abc"] * 5, 300)
    with pytest.raises(ValueError, match="TextToTextTokenizer.train"):
        TextToTextTokenizer(plain, 2)
