"""data.pairs and data.tagging: BERT's inputs, next-sentence pairs, MLM batches, generated tasks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from coursekit.data import download
from coursekit.data.corpora import load_sst2
from coursekit.data.pairs import (
    BERT_TOKENS,
    WORDPIECE_TOKENS,
    BertBatch,
    BertSpecialTokens,
    BertVocab,
    MLMBatcher,
    encode_pairs,
    encode_single,
    nsp_batch,
    split_documents,
    static_mlm_masking,
    truncate_pair,
)
from coursekit.data.tagging import entity_tagging_task, span_extraction_task

SP = BERT_TOKENS
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ---- special tokens and vocabulary ------------------------------------------------------------
def test_special_token_layouts() -> None:
    assert SP.ids == (0, 1, 2, 3, 4)
    assert SP.tokens == ("[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]")
    assert (WORDPIECE_TOKENS.pad, WORDPIECE_TOKENS.cls, WORDPIECE_TOKENS.sep) == (0, 101, 102)
    assert (WORDPIECE_TOKENS.unk, WORDPIECE_TOKENS.mask) == (100, 103)
    assert SP.never_masked == (0, 1, 2)
    with pytest.raises(ValueError, match="distinct"):
        BertSpecialTokens(cls=0)


def test_bert_vocab() -> None:
    vocab = BertVocab.build(["The film is good.", "the film is bad", "good good"], min_freq=2)
    assert vocab.itos[:5] == list(SP.tokens)
    assert vocab.itos[5] == "good"  # most frequent first
    assert set(vocab.itos[5:]) == {"good", "the", "film", "is"}
    ids = vocab.encode("The film is great")
    assert ids[-1] == SP.unk and all(i >= 5 for i in ids[:-1])
    assert vocab.decode([SP.cls, *ids[:3], SP.sep, SP.pad]) == "the film is"
    batch = vocab.encode_batch(["the film", "good"], ["is good", "is bad"], max_len=16)
    assert batch.input_ids[0].tolist()[:7] == [
        SP.cls,
        *vocab.encode("the film"),
        SP.sep,
        *vocab.encode("is good"),
        SP.sep,
    ]


# ---- formatting -----------------------------------------------------------------------------
def test_encode_single_pads_and_masks() -> None:
    batch = encode_single([[7, 8, 9], [5], [6, 6, 6, 6, 6, 6]], max_len=6)
    assert batch.input_ids.tolist() == [
        [1, 7, 8, 9, 2, 0],
        [1, 5, 2, 0, 0, 0],
        [1, 6, 6, 6, 6, 2],  # truncated to max_len
    ]
    assert batch.attention_mask.tolist() == [[1] * 5 + [0], [1] * 3 + [0] * 3, [1] * 6]
    assert batch.token_type_ids.sum() == 0
    assert len(batch) == 3


def test_encode_pairs_segments() -> None:
    batch = encode_pairs([[7, 8], [5]], [[9], [6, 6, 6]])
    assert batch.input_ids.tolist() == [[1, 7, 8, 2, 9, 2, 0], [1, 5, 2, 6, 6, 6, 2]]
    assert batch.token_type_ids.tolist() == [[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1]]
    assert batch.attention_mask.tolist() == [[1] * 6 + [0], [1] * 7]
    inputs = batch.inputs()
    assert set(inputs) == {"input_ids", "token_type_ids", "attention_mask"}


def test_truncate_pair_longest_first() -> None:
    assert truncate_pair([1, 2, 3, 4, 5], [6, 7], 5) == ([1, 2, 3], [6, 7])
    assert truncate_pair([1, 2], [3, 4], 3) == ([1, 2], [3])
    batch = encode_pairs([list(range(5, 25))], [list(range(5, 15))], max_len=16)
    assert batch.input_ids.shape == (1, 16)
    assert batch.token_type_ids.sum() == 7  # 6 tokens of B + its [SEP]


def test_batch_helpers() -> None:
    batch = encode_single([[7], [8, 9]])
    batch = BertBatch(
        batch.input_ids, batch.token_type_ids, batch.attention_mask, labels=torch.tensor([1, 0])
    )
    picked = batch.select(torch.tensor([1]))
    assert picked.input_ids.tolist() == [[1, 8, 9, 2]] and picked.labels.tolist() == [0]
    assert batch.to("cpu").labels is not None
    with pytest.raises(ValueError, match="attention_mask"):
        BertBatch(batch.input_ids, batch.token_type_ids, batch.attention_mask[:, :2])


# ---- next-sentence prediction -----------------------------------------------------------------
def _documents(n_docs: int = 6, n_sentences: int = 5) -> list[list[list[int]]]:
    """Sentence (d, i) is [10 + d, 20 + i, 30 + i]: its ids say where it comes from."""
    return [[[10 + d, 20 + i, 30 + i] for i in range(n_sentences)] for d in range(n_docs)]


def _segments(batch: BertBatch, row: int) -> tuple[list[int], list[int]]:
    ids = batch.input_ids[row][batch.attention_mask[row].bool()].tolist()
    types = batch.token_type_ids[row][batch.attention_mask[row].bool()].tolist()
    first = [t for t, s in zip(ids, types, strict=True) if s == 0]
    second = [t for t, s in zip(ids, types, strict=True) if s == 1]
    assert first[0] == SP.cls and first[-1] == SP.sep and second[-1] == SP.sep
    return first[1:-1], second[:-1]


def test_nsp_pairs_are_labelled_correctly() -> None:
    batch = nsp_batch(_documents(), 400, seed=3)
    labels = batch.next_sentence_labels
    assert labels is not None and labels.shape == (400,)
    assert 0.43 < labels.float().mean().item() < 0.57  # half real, half random
    for row in range(len(batch)):
        a, b = _segments(batch, row)
        if labels[row] == 0:  # IsNext: same document, the following sentence
            assert b[0] == a[0] and b[1] == a[1] + 1
        else:  # NotNext: a sentence of another document
            assert b[0] != a[0]


def test_nsp_is_seeded_and_validated() -> None:
    docs = _documents()
    a, b = nsp_batch(docs, 32, seed=1), nsp_batch(docs, 32, seed=1)
    assert torch.equal(a.input_ids, b.input_ids)
    assert torch.equal(a.next_sentence_labels, b.next_sentence_labels)
    assert not torch.equal(a.input_ids, nsp_batch(docs, 32, seed=2).input_ids)
    g = torch.Generator().manual_seed(1)
    assert torch.equal(nsp_batch(docs, 32, generator=g).input_ids, a.input_ids)
    with pytest.raises(ValueError, match="two documents"):
        nsp_batch(docs[:1], 4)
    with pytest.raises(ValueError, match="no document has two sentences"):
        nsp_batch([[[5]], [[6]]], 4)


def test_nsp_truncates_to_max_len() -> None:
    docs = [[list(range(5, 40)), list(range(5, 30))], [list(range(5, 20))]]
    batch = nsp_batch(docs, 8, max_len=20, seed=0)
    assert batch.input_ids.shape[1] <= 20


def test_split_documents() -> None:
    text = "One two. Three four! Five? Six seven eight. Nine."
    docs = split_documents(text, sentences_per_document=2)
    assert docs == [["One two.", "Three four!"], ["Five?", "Six seven eight."], ["Nine."]]
    assert split_documents(text, sentences_per_document=10, min_words=2) == [
        ["One two.", "Three four!", "Six seven eight."]
    ]


# ---- masked-LM batches ----------------------------------------------------------------------
def _corpus(n: int = 64, t: int = 24, vocab: int = 60) -> BertBatch:
    g = torch.Generator().manual_seed(0)
    seqs = [
        torch.randint(
            5, vocab, (int(torch.randint(4, t - 2, (1,), generator=g)),), generator=g
        ).tolist()
        for _ in range(n)
    ]
    return encode_single(seqs)


def test_mlm_statistics_on_a_large_batch() -> None:
    data = _corpus(n=2000)
    batcher = MLMBatcher(data, vocab_size=60, seed=0)
    batch = batcher.batch(torch.arange(len(data)))
    original = data.input_ids
    selected = batch.labels != -100
    assert not selected[original < 3].any()  # [PAD], [CLS], [SEP] never selected
    candidates = (original >= 3).sum().item()
    assert abs(selected.sum().item() / candidates - 0.15) < 0.01
    assert torch.equal(batch.labels[selected], original[selected])
    masked = (batch.input_ids == SP.mask) & selected
    same = (batch.input_ids == original) & selected
    n = selected.sum().item()
    assert abs(masked.sum().item() / n - 0.8) < 0.03
    assert abs(same.sum().item() / n - 0.1 - 0.1 / 60) < 0.03  # unchanged, or random = itself
    assert torch.equal(batch.input_ids[~selected], original[~selected])
    assert torch.equal(batch.attention_mask, data.attention_mask)


def test_dynamic_masking_changes_static_does_not() -> None:
    data = _corpus()
    index = torch.arange(len(data))
    dynamic = MLMBatcher(data, vocab_size=60, dynamic=True, seed=0)
    first, second = dynamic.batch(index), dynamic.batch(index)
    assert not torch.equal(first.labels, second.labels)  # fresh masks each time
    static = MLMBatcher(data, vocab_size=60, dynamic=False, seed=0)
    first, second = static.batch(index), static.batch(index[:10])
    assert torch.equal(first.labels[:10], second.labels)  # the masks are fixed per example
    assert torch.equal(first.input_ids[:10], second.input_ids)
    inputs, labels = static_mlm_masking(
        data.input_ids, mask_token_id=SP.mask, vocab_size=60, seed=0
    )
    assert torch.equal(labels, first.labels) and torch.equal(inputs, first.input_ids)


def test_mlm_batches_are_seeded() -> None:
    data = _corpus()
    a = MLMBatcher(data, vocab_size=60, seed=5)
    b = MLMBatcher(data, vocab_size=60, seed=5)
    for _ in range(3):
        x, y = a(8), b(8)
        assert torch.equal(x.input_ids, y.input_ids) and torch.equal(x.labels, y.labels)
    assert x.input_ids.shape == (8, data.input_ids.shape[1])
    c = MLMBatcher(data, vocab_size=60, seed=6)
    assert not torch.equal(c(8).input_ids, MLMBatcher(data, vocab_size=60, seed=5)(8).input_ids)


def test_mlm_batcher_from_a_tensor_and_errors() -> None:
    ids = encode_single([[7, 8, 9], [5]]).input_ids
    batcher = MLMBatcher(ids, vocab_size=20)
    assert batcher.data.attention_mask.tolist() == (ids != 0).long().tolist()
    with pytest.raises(ValueError, match="do not fit"):
        MLMBatcher(ids, vocab_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        batcher(0)


# ---- token labelling --------------------------------------------------------------------------
def _expected_tags(tokens: list[int], triggers: range, names: range) -> list[int]:
    """The rule, written independently: a run of names right after trigger k is B-k I-k I-k..."""
    tags, entity, run_start = [], None, False
    for i, tok in enumerate(tokens):
        if tok in names:
            if i == 0 or tokens[i - 1] not in names:  # a run starts
                prev = tokens[i - 1] if i > 0 else None
                entity = triggers.index(prev) + 1 if prev in triggers else None
                run_start = True
            tags.append(0 if entity is None else 2 * entity - (1 if run_start else 0))
            run_start = False
        else:
            tags.append(0)
    return tags


def test_entity_tagging_follows_its_rule() -> None:
    task = entity_tagging_task(200, 20, n_types=2, seed=0)
    assert task.input_ids.shape == task.labels.shape == (200, 22)
    assert task.label_names == ("O", "B-1", "I-1", "B-2", "I-2") and task.n_labels == 5
    assert task.vocab_size == 5 + 2 + 12 + 20
    assert (task.input_ids[:, 0] == SP.cls).all() and (task.input_ids[:, -1] == SP.sep).all()
    assert (task.labels[:, 0] == -100).all() and (task.labels[:, -1] == -100).all()
    for row in range(len(task)):
        tokens = task.input_ids[row, 1:-1].tolist()
        assert task.labels[row, 1:-1].tolist() == _expected_tags(
            tokens, task.trigger_ids, task.name_ids
        )
    # every tag occurs, and name tokens occur both inside and outside entities: context decides
    counts = torch.bincount(task.labels[task.labels >= 0], minlength=5)
    assert (counts > 50).all()
    is_name = (task.input_ids >= task.name_ids.start) & (task.input_ids < task.name_ids.stop)
    assert (task.labels[is_name] == 0).sum() > 100 and (task.labels[is_name] > 0).sum() > 100


def test_entity_tagging_lengths_padding_and_seeds() -> None:
    task = entity_tagging_task(50, 16, min_length=4, seed=1)
    lengths = task.attention_mask.sum(1)
    assert lengths.min() >= 6 and lengths.max() <= 18 and len(set(lengths.tolist())) > 3
    assert ((task.input_ids == SP.pad) == (task.attention_mask == 0)).all()
    assert (task.labels[task.attention_mask == 0] == -100).all()
    rows = torch.arange(50)
    assert (task.input_ids[rows, lengths - 1] == SP.sep).all()
    again = entity_tagging_task(50, 16, min_length=4, seed=1)
    assert torch.equal(task.input_ids, again.input_ids) and torch.equal(task.labels, again.labels)
    assert not torch.equal(
        task.input_ids, entity_tagging_task(50, 16, min_length=4, seed=2).input_ids
    )
    batch = task.batch(torch.tensor([0, 3]))
    assert batch.labels.shape == (2, 18) and batch.token_type_ids.sum() == 0
    with pytest.raises(ValueError, match="p_entity"):
        entity_tagging_task(2, 8, p_entity=0.8, p_distractor=0.5)


# ---- span extraction --------------------------------------------------------------------------
def test_span_labels_point_at_the_answer() -> None:
    task = span_extraction_task(300, n_records=4, max_answer_len=3, seed=0)
    n, width = task.input_ids.shape
    assert task.start_positions.shape == task.end_positions.shape == (n,)
    values, keys = task.value_ids, task.key_ids
    for row in range(n):
        ids = task.input_ids[row].tolist()
        s, e = int(task.start_positions[row]), int(task.end_positions[row])
        question = ids[1]
        assert ids[0] == SP.cls and question in keys and ids[2] == SP.sep
        assert 3 < s <= e < int(task.attention_mask[row].sum()) - 1
        assert ids[s - 1] == question  # the span follows the asked key ...
        assert all(t in values for t in ids[s : e + 1])  # ... is made of values ...
        assert ids[e + 1] not in values  # ... and is complete
        assert ids[3:].count(question) == 1  # the key occurs once in the context
        assert task.token_type_ids[row, :3].sum() == 0
        assert task.token_type_ids[row, 3 : int(task.attention_mask[row].sum())].eq(1).all()
    lengths = task.end_positions - task.start_positions + 1
    assert set(lengths.tolist()) == {1, 2, 3}
    assert (task.input_ids[task.attention_mask == 0] == SP.pad).all()


def test_span_task_seeds_and_batches() -> None:
    a, b = span_extraction_task(20, seed=4), span_extraction_task(20, seed=4)
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(
        a.start_positions, b.start_positions
    )
    assert not torch.equal(a.input_ids, span_extraction_task(20, seed=5).input_ids)
    batch = a.batch(slice(0, 5))
    assert batch.start_positions.shape == (5,) and batch.input_ids.shape[0] == 5
    with pytest.raises(ValueError, match="n_keys"):
        span_extraction_task(2, n_records=5, n_keys=4)


# ---- SST-2 through the course's loader -------------------------------------------------------
@pytest.fixture
def sst2(monkeypatch, tmp_path):
    env = os.environ.get(download.MIRROR_ENV, "")
    folder = Path(env) if env and "://" not in env else SHARED
    if not (folder / "sst2_train.tsv").is_file():
        pytest.skip(f"no data mirror with sst2_train.tsv at {folder}")
    monkeypatch.setenv(download.MIRROR_ENV, str(folder))
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    return load_sst2()


def test_sst2_sentences_become_bert_batches(sst2) -> None:
    vocab = BertVocab.build((s for s, _ in sst2.train), min_freq=2)
    assert len(vocab) > 5000
    texts, labels = zip(*sst2.test[:32], strict=True)
    batch = vocab.encode_batch(list(texts), max_len=48)
    assert batch.input_ids.shape[0] == 32 and batch.input_ids.shape[1] <= 48
    assert (batch.input_ids[:, 0] == SP.cls).all()
    lengths = batch.attention_mask.sum(1)
    assert (batch.input_ids[torch.arange(32), lengths - 1] == SP.sep).all()
    assert set(labels) == {0, 1}
    assert (batch.input_ids == SP.unk).float().mean() < 0.1
