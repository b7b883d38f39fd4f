"""Notebook 12's exercises (adaptation and alignment) agree with coursekit.align and
coursekit.data.instructions, the pieces they are about."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from exercise_checks import (
    assert_hint_table_covers_the_notebook,
    assert_quiz_is_well_formed,
    assert_wrong_answer_gets_its_hint,
)

from coursekit.align import BM25, bm25_terms, dpo_loss, sft_loss
from coursekit.data.instructions import (
    IGNORE_INDEX,
    encode_sft,
    fact_qa,
    instruction_dataset,
    rag_prompt,
)
from coursekit.exercises import nb12
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import get_exercise
from coursekit.tokenize import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

# Tiny Shakespeare's 65 characters: every instruction and fact is written in them
TOK = CharTokenizer("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def test_sft_reference_equals_the_rows_of_encode_sft() -> None:
    examples = instruction_dataset(24, seed=12)
    batch = encode_sft(examples, TOK, block_size=64)
    reference = get_exercise("12.1").reference
    for row, e in enumerate(examples):
        ids, targets = reference(TOK.encode(e.prompt), TOK.encode(e.response))
        width = len(ids)
        assert batch.ids[row, :width].tolist() == ids
        assert batch.targets[row, :width].tolist() == targets
        assert (batch.targets[row, width:] == IGNORE_INDEX).all()  # the rest is padding
        # exactly the response is learnt, each token predicted from everything before it
        assert [t for t in targets if t != IGNORE_INDEX] == TOK.encode(e.response)


def test_sft_reference_targets_make_sft_loss_the_response_cross_entropy() -> None:
    prompt, response = [3, 1, 4, 1, 5], [9, 2, 6]
    ids, targets = get_exercise("12.1").reference(prompt, response)
    logits = torch.randn(1, len(ids), 10, generator=torch.Generator().manual_seed(1))
    # the last prompt position (4) predicts the first response token, and so on
    by_hand = -torch.log_softmax(logits[0], -1)[[4, 5, 6], response].mean()
    torch.testing.assert_close(sft_loss(logits, torch.tensor([targets])), by_hand)


def test_sft_first_case_tells_every_mistake_apart() -> None:
    prompt, response = nb12._sft_cases()[0]
    outputs = [nb12._sft_example_reference(prompt, response)]
    outputs += [nb12._sft_example(prompt, response, mistake=m) for m, _ in nb12._SFT_MISTAKES]
    assert len({repr(o) for o in outputs}) == len(outputs)


def test_sft_check_explains_other_shapes_of_answer() -> None:
    ex = get_exercise("12.1")
    reference = ex.reference

    def targets_only(prompt_ids, response_ids):
        return reference(prompt_ids, response_ids)[1]

    def strings(prompt_ids, response_ids):
        ids, targets = reference(prompt_ids, response_ids)
        return [str(i) for i in ids], targets

    def batched(prompt_ids, response_ids):
        return tuple(torch.tensor([x]) for x in reference(prompt_ids, response_ids))

    outcome = evaluate(ex, targets_only)
    assert not outcome.passed and "return ids, targets" in (outcome.hint or "")
    outcome = evaluate(ex, strings)
    assert not outcome.passed and "list of token ids" in outcome.message
    outcome = evaluate(ex, batched)
    assert not outcome.passed and "1-D" in outcome.message


def _log_probs(batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(-30 * torch.rand(batch, generator=g, dtype=torch.float64) for _ in range(4))


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0, 5.0])
@pytest.mark.parametrize("batch", [1, 3, 32])
def test_dpo_reference_equals_align_dpo_loss(beta: float, batch: int) -> None:
    inputs = _log_probs(batch, seed=batch)
    reference = get_exercise("12.2").reference
    torch.testing.assert_close(
        reference(*inputs, beta), dpo_loss(*inputs, beta).loss, atol=1e-12, rtol=1e-12
    )


def test_dpo_reference_starts_at_log_2_and_its_gradient_favours_the_chosen() -> None:
    reference = get_exercise("12.2").reference
    pc, pr, rc, rr = _log_probs(8, seed=0)
    assert math.isclose(float(reference(pc, pr, pc, pr, 0.2)), math.log(2), rel_tol=1e-12)
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    grad_c, grad_r = torch.autograd.grad(reference(pc, pr, rc, rr, 0.2), (pc, pr))
    assert (grad_c < 0).all() and (grad_r > 0).all()  # a gradient step raises the margin
    torch.testing.assert_close(grad_c, -grad_r)


def test_dpo_check_explains_a_loss_per_pair_and_a_detached_loss() -> None:
    ex = get_exercise("12.2")

    def per_pair(pc, pr, rc, rr, beta):
        return -torch.nn.functional.logsigmoid(beta * ((pc - rc) - (pr - rr)))

    def detached(pc, pr, rc, rr, beta):
        return torch.tensor(dpo_loss(pc, pr, rc, rr, beta).loss.item(), dtype=torch.float64)

    def a_float(pc, pr, rc, rr, beta):
        return dpo_loss(pc, pr, rc, rr, beta).loss.item()

    outcome = evaluate(ex, per_pair)
    assert not outcome.passed and ".mean()" in (outcome.hint or "")
    outcome = evaluate(ex, detached)
    assert not outcome.passed and "no gradient" in outcome.message
    assert "torch operations" in (outcome.hint or "")
    outcome = evaluate(ex, a_float)
    assert not outcome.passed and "torch.Tensor" in outcome.message


CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log and the dog slept",
    "cats and dogs",
    "a cat a hat a bat and a very long list of other words that make this one long",
    "the end",
]


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.3), (0.0, 0.75), (2.0, 1.0)])
def test_bm25_reference_adds_up_to_bm25_scores(k1: float, b: float) -> None:
    bm = BM25(CORPUS, k1=k1, b=b)
    counts = [Counter(bm25_terms(d)) for d in CORPUS]
    reference = get_exercise("12.3").reference
    for term in {t for c in counts for t in c}:
        doc_freq = sum(term in c for c in counts)
        expected = [  # BM25 skips the documents without the term (0 / 0 when k1 = 0)
            reference(c[term], sum(c.values()), bm.avgdl, len(CORPUS), doc_freq, k1=k1, b=b)
            if c[term]
            else 0.0
            for c in counts
        ]
        np.testing.assert_allclose(bm.scores(term), expected, rtol=1e-12, atol=0)
    # a query of several terms is the sum of its terms' scores
    query = "the cat sat"
    total = sum(bm.scores(t) for t in bm25_terms(query))
    np.testing.assert_allclose(bm.scores(query), total, rtol=1e-12)


def test_bm25_reference_idf_stays_positive_where_the_plain_one_does_not() -> None:
    reference = get_exercise("12.3").reference
    everywhere = reference(1, 10, 10.0, 20, 20)  # average length, tf 1: exactly the idf
    assert math.isclose(everywhere, math.log(1 + 0.5 / 20.5), rel_tol=1e-12)
    assert everywhere > 0 > nb12._bm25(1, 10, 10.0, 20, 20, mistake="idf_no_one")
    assert reference(0, 10, 10.0, 20, 3) == 0.0
    # saturation: the score approaches (k1 + 1) * idf as the count grows
    idf = reference(1, 10, 10.0, 20, 3)
    assert 2.49 * idf < reference(10_000, 10, 10.0, 20, 3) < 2.5 * idf


def test_bm25_first_case_tells_every_mistake_apart() -> None:
    tf, dl, avgdl, n, df, _, _ = nb12._BM25_CASES[0]
    values = [nb12._bm25_reference(tf, dl, avgdl, n, df)]
    values += [nb12._bm25(tf, dl, avgdl, n, df, mistake=m) for m, _ in nb12._BM25_MISTAKES]
    assert all(
        not math.isclose(a, b, rel_tol=1e-3) for i, a in enumerate(values) for b in values[:i]
    )


def test_bm25_check_explains_float32() -> None:
    reference = get_exercise("12.3").reference

    def in_float32(tf, doc_len, avg_doc_len, n_docs, doc_freq, k1=1.5, b=0.75):
        return torch.tensor(reference(tf, doc_len, avg_doc_len, n_docs, doc_freq, k1, b))

    outcome = evaluate(get_exercise("12.3"), in_float32)
    assert not outcome.passed and "float64" in (outcome.hint or "")
    assert evaluate(
        get_exercise("12.3"),
        lambda *args, **kwargs: torch.tensor(reference(*args, **kwargs), dtype=torch.float64),
    ).passed


@pytest.mark.parametrize("k", [1, 2, 5, 30])
def test_rag_reference_equals_rag_prompt_of_bm25_top_k(k: int) -> None:
    facts = fact_qa(24, seed=3)
    documents = [f.text for f in facts]
    bm = BM25(documents)
    reference = get_exercise("12.4").reference
    for fact in facts[:6]:
        scores = bm.scores(fact.question)
        passages = [documents[int(i)] for i in bm.top_k(fact.question, k)]
        prompt = reference(fact.question, documents, scores, k)
        assert prompt == rag_prompt(fact.question, passages)
        assert prompt == fact.with_context(passages).prompt
        assert reference(fact.question, documents, torch.from_numpy(scores), k) == prompt


def test_rag_reference_with_no_passages_is_the_closed_book_prompt() -> None:
    fact = fact_qa(3, seed=0)[0]
    documents = [f.text for f in fact_qa(3, seed=0)]
    prompt = get_exercise("12.4").reference(fact.question, documents, [0.1, 0.5, 0.2], 0)
    assert prompt == rag_prompt(fact.question) == fact.with_context().prompt


def test_rag_first_case_tells_every_mistake_apart() -> None:
    question, documents, scores, k = nb12._rag_cases()[0]
    prompts = [nb12._rag_reference(question, documents, scores, k)]
    prompts += [nb12._rag(question, documents, scores, k, mistake=m) for m, _ in nb12._RAG_MISTAKES]
    assert len(set(prompts)) == len(prompts)


def test_rag_check_explains_a_list_and_a_different_layout() -> None:
    ex = get_exercise("12.4")

    def passages_only(question, documents, scores, k):
        order = np.argsort(-np.asarray(scores, dtype=np.float64))[:k]
        return [documents[int(i)] for i in order]

    def blank_line_between(question, documents, scores, k):
        return ex.reference(question, documents, scores, k).replace(".\n", ".\n\n")

    outcome = evaluate(ex, passages_only)
    assert not outcome.passed and "a str" in (outcome.hint or "")
    outcome = evaluate(ex, blank_line_between)
    assert not outcome.passed and "the passages are right" in outcome.message


#: (exercise, registered wrong answer, what its hint must say)
OWN_HINTS: list[tuple[str, str, str]] = [
    ("12.1", "no prompt mask: targets = s[1:]", "Nothing is masked"),
    ("12.1", "len(prompt) targets masked (off by one)", "One target too many"),
    ("12.1", "the response masked instead of the prompt", "wrong way round"),
    ("12.1", "ids = s, the last token kept", "leave out the last token"),
    ("12.1", "targets not shifted: targets[t] = s[t]", "not shifted"),
    ("12.1", "masked with -1 instead of -100", "ignore_index"),
    ("12.2", "reference terms ignored", "reference model is missing"),
    ("12.2", "sign flipped: rejected minus chosen", "sign is flipped"),
    ("12.2", "beta forgotten", "beta is missing"),
    ("12.2", "1 - sigmoid instead of -log sigmoid", "LOG-likelihood"),
    ("12.2", "summed over the pairs", "summed over the pairs"),
    ("12.2", "beta outside the log-sigmoid", "outside the log-sigmoid"),
    ("12.2", "no minus sign", "minus sign is missing"),
    ("12.3", "idf without the + 1", "NEGATIVE"),
    ("12.3", "no length normalisation", "length normalisation is missing"),
    ("12.3", "plain tf * idf", "saturates"),
    ("12.3", "log10 instead of ln", "natural logarithm"),
    ("12.3", "(k1 + 1) dropped", "(k1 + 1) in the numerator"),
    ("12.3", "idf = ln(N / n)", "classic tf-idf"),
    ("12.4", "lowest scores first (ascending sort)", "LOWEST-scoring"),
    ("12.4", "argsort()[-k:]: the best k, worst first", "worst of them first"),
    ("12.4", "the top k in document order", "order they have in `documents`"),
    ("12.4", "k + 1 passages", "One passage too many"),
    ("12.4", "k - 1 passages", "One passage too few"),
    ("12.4", "question before the passages", "question comes before the passages"),
    ("12.4", "k ignored: every document", "keep only the k best"),
]


def test_own_hints_list_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("12", OWN_HINTS)
    assert sorted({ex_id for ex_id, _, _ in OWN_HINTS}) == ["12.1", "12.2", "12.3", "12.4"]


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)


def test_quiz_answers_are_spread_and_every_wrong_option_is_explained() -> None:
    assert_quiz_is_well_formed("12")
