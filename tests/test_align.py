"""coursekit.align: SFT loss and evaluation, reward model, DPO, BM25 retrieval."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from coursekit import data
from coursekit.align import (
    BM25,
    DPOLoss,
    RewardModel,
    bm25_terms,
    bradley_terry_loss,
    complete,
    dpo_loss,
    frozen_copy,
    instruction_accuracy,
    preference_accuracy,
    recall_at_k,
    sequence_logprob,
    sft_loss,
)
from coursekit.models import GPT, GPTConfig
from coursekit.tokenize import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TS_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOK = CharTokenizer(TS_CHARS)
BLOCK = 48


def tiny_gpt(seed: int = 0, **overrides: Any) -> GPT:
    torch.manual_seed(seed)
    config = dict(vocab_size=TOK.vocab_size, block_size=BLOCK, n_layers=2, n_heads=2, d_model=32)
    return GPT(GPTConfig(**{**config, **overrides}))


# --------------------------------------------------------------------------------------------
# SFT loss
# --------------------------------------------------------------------------------------------
def test_sft_loss_is_cross_entropy_over_response_tokens_only() -> None:
    examples = data.instruction_dataset(6, seed=0)
    ids, targets = data.encode_sft(examples, TOK, BLOCK)
    logits = torch.randn(*ids.shape, TOK.vocab_size, dtype=torch.float64)
    keep = targets != -100
    by_hand = -torch.log_softmax(logits, -1)[keep].gather(-1, targets[keep][:, None]).mean()
    loss = sft_loss(logits, targets)
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, by_hand)
    # a prompt position's logits (and padding's) do not matter
    changed = logits.clone()
    changed[~keep] = torch.randn_like(changed[~keep]) * 10
    torch.testing.assert_close(sft_loss(changed, targets), loss, rtol=0, atol=0)
    # ... a response position's do
    first = keep.nonzero()[0]
    changed[first[0], first[1]] += 5 * torch.randn(TOK.vocab_size, dtype=torch.float64)
    assert not torch.equal(sft_loss(changed, targets), loss)


def test_sft_loss_equals_gpt_loss_and_is_zero_without_response() -> None:
    model = tiny_gpt()
    ids, targets = data.encode_sft(data.instruction_dataset(4, seed=1), TOK, BLOCK)
    torch.testing.assert_close(sft_loss(model(ids), targets), model.loss(ids, targets))
    none = torch.full_like(targets, -100)
    assert sft_loss(model(ids), none).item() == 0.0


def test_sft_loss_errors() -> None:
    logits = torch.randn(2, 5, 7)
    with pytest.raises(ValueError, match=r"targets must be integer ids of shape \(B, T\)"):
        sft_loss(logits, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must be integer"):
        sft_loss(logits, torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"logits must be floating point \(B, T, V\)"):
        sft_loss(torch.randn(10, 7), torch.zeros(10, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# greedy completions and exact-match accuracy
# --------------------------------------------------------------------------------------------
class _Cache:
    def __init__(self) -> None:
        self.ids: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.ids is None else self.ids.shape[1]

    def reorder(self, index: torch.Tensor) -> None:
        assert self.ids is not None
        self.ids = self.ids[index]


class Oracle(nn.Module):
    """A CausalLM that, after a prompt it knows, writes that prompt's scripted text and then
    newlines."""

    def __init__(self, script: dict[str, str]) -> None:
        super().__init__()
        self.script = script
        self.weight = nn.Parameter(torch.zeros(()))

    @property
    def context_length(self) -> int | None:
        return None

    def new_cache(self) -> _Cache:
        return _Cache()

    def step(self, ids: torch.Tensor, cache: _Cache | None = None) -> torch.Tensor:
        if cache is not None:
            cache.ids = ids if cache.ids is None else torch.cat([cache.ids, ids], 1)
            ids = cache.ids
        logits = torch.zeros(ids.shape[0], 1, TOK.vocab_size)
        for row in range(ids.shape[0]):
            text = TOK.decode(ids[row].tolist())
            prompt = next(p for p in self.script if text.startswith(p))
            written, answer = text[len(prompt) :], self.script[prompt]
            char = answer[len(written)] if len(written) < len(answer) else "\n"
            logits[row, 0, TOK.stoi[char]] = 1.0
        return logits


def test_complete_and_instruction_accuracy_with_a_scripted_model() -> None:
    examples = [
        data.Instruction("reverse", "Q: reverse: lamp\nA: ", "pmal\n"),
        data.Instruction("uppercase", "Q: uppercase: ox\nA: ", "OX\n"),
        data.Instruction("reverse", "Q: reverse: oven\nA: ", "nevo\n"),  # answered wrongly
        data.Instruction("reverse", "Q: reverse: owl\nA: ", "lwo\n"),  # never stops
    ]
    script = {
        examples[0].prompt: "pmal",
        examples[1].prompt: "OX",
        examples[2].prompt: "nevox",
        examples[3].prompt: "lwolwolwolwo",
    }
    model = Oracle(script)
    prompts = [e.prompt for e in examples]
    answers = complete(model, TOK, prompts, max_new_tokens=6)
    assert answers == ["pmal\n", "OX\n", "nevox\n", "lwolwo"]
    assert complete(model, TOK, prompts, max_new_tokens=6, batch_size=1) == answers
    assert instruction_accuracy(model, TOK, examples) == 0.5
    assert instruction_accuracy(model, TOK, examples[:2]) == 1.0


def test_complete_and_accuracy_errors() -> None:
    model = Oracle({"Q": "a"})
    with pytest.raises(ValueError, match="no prompts"):
        complete(model, TOK, [], 3)
    with pytest.raises(ValueError, match="must be positive"):
        complete(model, TOK, ["Q"], 0)
    with pytest.raises(ValueError, match="stop='ab' must be one token"):
        complete(model, TOK, ["Q"], 3, stop="ab")
    with pytest.raises(ValueError, match="a prompt is empty"):
        complete(model, TOK, ["Q", ""], 3)
    with pytest.raises(ValueError, match="no examples"):
        instruction_accuracy(model, TOK, [])
    with pytest.raises(ValueError, match="must end with stop"):
        instruction_accuracy(model, TOK, [data.Instruction("t", "Q", "a")])


def test_a_tiny_gpt_learns_instructions_by_sft() -> None:
    """The whole SFT loop on a tiny char GPT: exact-match accuracy on the training examples
    goes from 0 to 1 in a second."""
    examples = data.instruction_dataset(8, seed=0)
    model = tiny_gpt()
    assert instruction_accuracy(model, TOK, examples) == 0.0
    ids, targets = data.encode_sft(examples, TOK, BLOCK)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = sft_loss(model(ids), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert instruction_accuracy(model, TOK, examples) == 1.0


# --------------------------------------------------------------------------------------------
# reward model
# --------------------------------------------------------------------------------------------
def _randomise_head(rm: RewardModel) -> RewardModel:
    with torch.no_grad():
        rm.head.weight.normal_()
        rm.head.bias.normal_()
    return rm


def test_reward_model_reads_the_last_real_token() -> None:
    rm = RewardModel(tiny_gpt())
    ids, lengths = data.encode_texts(["Q: a\nA: b\n", "Q: ab\nA: c\n", "Q:"], TOK, BLOCK)
    zero = rm(ids, lengths)
    assert zero.shape == (3,) and torch.equal(zero, torch.zeros(3))  # the head starts at 0
    _randomise_head(rm)
    rewards = rm(ids, lengths)
    mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()
    torch.testing.assert_close(rm(ids, attention_mask=mask), rewards, rtol=0, atol=0)
    for i in range(3):  # each equals the unpadded text's reward
        alone = rm(ids[i : i + 1, : lengths[i]])
        torch.testing.assert_close(alone, rewards[i : i + 1])
    # padding content does not matter; the last real token does
    other = ids.clone()
    other[2, 3:] = TOK.stoi["z"]
    torch.testing.assert_close(rm(other, lengths), rewards)
    other[2, 1] = TOK.stoi["z"]
    assert rm(other, lengths)[2] != rewards[2]
    rewards.sum().backward()
    assert rm.backbone.tok_embed.weight.grad is not None


def test_reward_model_errors() -> None:
    rm = RewardModel(tiny_gpt())
    ids = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="not both"):
        rm(ids, torch.tensor([5, 5]), torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\)"):
        rm(ids, torch.tensor([5]))
    with pytest.raises(ValueError, match="lengths must be in 1..T = 1..5"):
        rm(ids, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="lengths must be in 1..T"):
        rm(ids, torch.tensor([6, 5]))
    with pytest.raises(ValueError, match="right padding"):
        rm(ids, attention_mask=torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]]))
    with pytest.raises(ValueError, match="attention_mask .* must have the shape of ids"):
        rm(ids, attention_mask=torch.ones(2, 4))


def test_bradley_terry_loss_and_preference_accuracy() -> None:
    chosen = torch.tensor([2.0, 0.0, -1.0, 0.5])
    rejected = torch.tensor([1.0, 0.0, 1.0, 0.5])
    by_hand = sum(-math.log(1 / (1 + math.exp(-d))) for d in (1.0, 0.0, -2.0, 0.0)) / 4
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(by_hand, rel=1e-6)
    assert bradley_terry_loss(chosen, chosen).item() == pytest.approx(math.log(2), rel=1e-7)
    assert preference_accuracy(chosen, rejected) == 0.5  # one win, two ties, one loss
    assert preference_accuracy(chosen + 10, rejected) == 1.0
    for fn in (bradley_terry_loss, preference_accuracy):
        with pytest.raises(ValueError, match="same shape"):
            fn(chosen, rejected[:3])
        with pytest.raises(ValueError, match="empty"):
            fn(torch.zeros(0), torch.zeros(0))
        with pytest.raises(ValueError, match="floating point"):
            fn(torch.tensor([1]), torch.tensor([0]))


def test_reward_model_learns_preferences() -> None:
    pairs = data.preference_pairs(data.instruction_dataset(32, seed=0, tasks=["uppercase"]), seed=0)
    chosen_ids, chosen_len = data.encode_texts([p.chosen_text for p in pairs], TOK, BLOCK)
    rejected_ids, rejected_len = data.encode_texts([p.rejected_text for p in pairs], TOK, BLOCK)
    rm = RewardModel(tiny_gpt())
    opt = torch.optim.AdamW(rm.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = bradley_terry_loss(rm(chosen_ids, chosen_len), rm(rejected_ids, rejected_len))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first == pytest.approx(math.log(2))
    with torch.no_grad():
        acc = preference_accuracy(rm(chosen_ids, chosen_len), rm(rejected_ids, rejected_len))
    assert loss.item() < 0.5 * math.log(2) and acc >= 0.9


# --------------------------------------------------------------------------------------------
# DPO
# --------------------------------------------------------------------------------------------
def test_sequence_logprob_sums_the_response_log_probs() -> None:
    model = tiny_gpt()
    examples = data.instruction_dataset(5, seed=2)
    ids, targets = data.encode_sft(examples, TOK, BLOCK)
    logp = sequence_logprob(model, ids, targets)
    assert logp.shape == (5,) and (logp < 0).all()
    for i, e in enumerate(examples):  # each row alone, by hand
        seq = torch.tensor([TOK.encode(e.prompt + e.response)])
        log_p = torch.log_softmax(model(seq[:, :-1]), -1)[0]
        n_prompt = len(e.prompt)
        tokens = seq[0, n_prompt:]
        by_hand = log_p[n_prompt - 1 :].gather(-1, tokens[:, None]).sum()
        torch.testing.assert_close(logp[i], by_hand, rtol=1e-5, atol=1e-5)
    # = -(SFT loss) * number of response tokens, for one row
    one_ids, one_targets = ids[:1], targets[:1]
    n = int((one_targets != -100).sum())
    torch.testing.assert_close(
        sequence_logprob(model, one_ids, one_targets)[0], -sft_loss(model(one_ids), one_targets) * n
    )
    with pytest.raises(ValueError, match="must have the same shape"):
        sequence_logprob(model, ids, targets[:, 1:])


def test_dpo_loss_by_hand_and_errors() -> None:
    pc = torch.tensor([-3.0, -5.0], dtype=torch.float64)
    pr = torch.tensor([-4.0, -2.0], dtype=torch.float64)
    rc = torch.tensor([-3.5, -4.0], dtype=torch.float64)
    rr = torch.tensor([-3.0, -2.5], dtype=torch.float64)
    out = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert isinstance(out, DPOLoss)
    z = [0.5 * ((-3.0 + 3.5) - (-4.0 + 3.0)), 0.5 * ((-5.0 + 4.0) - (-2.0 + 2.5))]  # 0.75, -0.75
    by_hand = sum(math.log1p(math.exp(-v)) for v in z) / 2
    assert out.loss.item() == pytest.approx(by_hand, rel=1e-12)
    assert out.chosen_rewards.tolist() == pytest.approx([0.25, -0.5])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.5, 0.25])
    assert out.margins.tolist() == pytest.approx(z)
    loss, chosen, rejected = out  # unpacks as a tuple
    assert loss is out.loss and chosen is out.chosen_rewards
    for beta in (0, -0.1, math.nan, math.inf, True, "0.1"):
        with pytest.raises(ValueError, match="beta must be a positive finite number"):
            dpo_loss(pc, pr, rc, rr, beta=beta)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ref_chosen_logp must have the same shape"):
        dpo_loss(pc, pr, rc[:1], rr)
    with pytest.raises(ValueError, match="policy_rejected_logp must have the same shape"):
        dpo_loss(pc, pr[:, None], rc, rr)
    with pytest.raises(ValueError, match="empty"):
        empty = torch.zeros(0)
        dpo_loss(empty, empty, empty, empty)


def test_dpo_starts_at_log_2_and_one_step_raises_the_margin() -> None:
    policy = tiny_gpt(seed=3)
    reference = frozen_copy(policy)
    pairs = data.preference_pairs(data.instruction_dataset(16, seed=0), seed=0)
    chosen, rejected = data.encode_preferences(pairs, TOK, BLOCK)
    with torch.no_grad():
        ref_c = sequence_logprob(reference, *chosen)
        ref_r = sequence_logprob(reference, *rejected)

    def step_loss() -> DPOLoss:
        pc = sequence_logprob(policy, *chosen)
        pr = sequence_logprob(policy, *rejected)
        return dpo_loss(pc, pr, ref_c, ref_r, beta=0.1)

    start = step_loss()
    assert start.loss.dtype == torch.float32
    assert start.loss == torch.tensor(math.log(2))  # exactly log 2 (in float32)
    assert torch.equal(start.margins, torch.zeros(16))
    assert not start.chosen_rewards.requires_grad
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    opt.zero_grad()
    start.loss.backward()
    opt.step()
    after = step_loss()
    assert after.margins.mean() > 0
    assert after.loss.item() < math.log(2)
    # the reference stayed frozen
    assert all(p.grad is None and not p.requires_grad for p in reference.parameters())


def test_frozen_copy() -> None:
    model = tiny_gpt()
    model.train()
    ref = frozen_copy(model)
    assert ref is not model and not ref.training and model.training
    assert all(not p.requires_grad for p in ref.parameters())
    assert all(p.requires_grad for p in model.parameters())
    ids = torch.randint(0, TOK.vocab_size, (2, 8))
    torch.testing.assert_close(ref(ids), model(ids))


# --------------------------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------------------------
CORPUS = ["The cat sat.", "the dog sat on the mat", "cats and dogs"]


def test_bm25_scores_by_hand() -> None:
    bm = BM25(CORPUS)
    assert bm.n_docs == 3 and bm.avgdl == 4.0 and bm.doc_lengths.tolist() == [3, 6, 3]
    # idf: "the" is in 2 of 3 documents, "cat" in 1 ("cats" is another term)
    idf_the = math.log((3 - 2 + 0.5) / (2 + 0.5) + 1)  # log 1.6
    idf_cat = math.log((3 - 1 + 0.5) / (1 + 0.5) + 1)  # log 8/3
    assert bm.idf("the") == pytest.approx(idf_the) and bm.idf("cat") == pytest.approx(idf_cat)
    k1, b = 1.5, 0.75
    norm0 = k1 * (1 - b + b * 3 / 4)  # 1.21875
    norm1 = k1 * (1 - b + b * 6 / 4)  # 2.0625
    d0 = (idf_the + idf_cat) * 1 * (k1 + 1) / (1 + norm0)
    d1 = idf_the * 2 * (k1 + 1) / (2 + norm1)  # "the" twice, no "cat"
    scores = bm.scores("the cat")
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, [d0, d1, 0.0], rtol=1e-12)
    assert bm.top_k("the cat", 2).tolist() == [0, 1]
    assert bm.top_k("the cat", 10).tolist() == [0, 1, 2]  # k beyond N: every document
    # a repeated query term counts each time; k1 = 0 ignores term counts; b = 0 ignores length
    np.testing.assert_allclose(bm.scores("cat cat"), 2 * bm.scores("cat"))
    flat = BM25(CORPUS, k1=0.0)
    np.testing.assert_allclose(flat.scores("the"), [idf_the, idf_the, 0.0])
    no_len = BM25(CORPUS, b=0.0)
    assert no_len.scores("sat")[0] == pytest.approx(no_len.scores("sat")[1])


def test_bm25_matches_rank_bm25_with_the_same_idf() -> None:
    rank_bm25 = pytest.importorskip("rank_bm25")

    class LuceneIdf(rank_bm25.BM25Okapi):  # rank_bm25's Okapi idf can go negative; ours can't
        def _calc_idf(self, nd: dict[str, int]) -> None:
            n = self.corpus_size
            self.idf = {w: math.log((n - f + 0.5) / (f + 0.5) + 1) for w, f in nd.items()}

    docs = [f.text for f in data.fact_qa(60, seed=0)] + CORPUS
    ours = BM25(docs, k1=1.2, b=0.6)
    ref = LuceneIdf([bm25_terms(d) for d in docs], k1=1.2, b=0.6)
    for query in ["who keeps the key of the red door?", "the cat", "gold gold ship anne"]:
        np.testing.assert_allclose(ours.scores(query), ref.get_scores(bm25_terms(query)))


words = st.sampled_from(["a", "b", "c", "d", "e", "f"])


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(words, max_size=8), min_size=1, max_size=6),
    st.lists(words, min_size=1, max_size=4),
)
def test_bm25_properties(docs: list[list[str]], query: list[str]) -> None:
    bm = BM25([" ".join(d) for d in docs])
    scores = bm.scores(" ".join(query))
    assert scores.shape == (len(docs),) and (scores >= 0).all()
    for d, s in zip(docs, scores):
        assert (s > 0) == bool(set(d) & set(query))  # zero exactly when no term is shared
    top = bm.top_k(" ".join(query), len(docs))
    assert sorted(top.tolist()) == list(range(len(docs)))
    assert (np.diff(scores[top]) <= 0).all()  # best first


def test_bm25_errors_and_edge_cases() -> None:
    with pytest.raises(ValueError, match="no documents"):
        BM25([])
    with pytest.raises(TypeError, match="not one string"):
        BM25("the cat sat")
    with pytest.raises(ValueError, match="k1 must be"):
        BM25(CORPUS, k1=-1.0)
    with pytest.raises(ValueError, match=r"b must be in \[0, 1\]"):
        BM25(CORPUS, b=1.5)
    bm = BM25(CORPUS)
    for k in (0, -1, 1.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            bm.top_k("cat", k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no terms"):
        bm.scores("?!")
    assert bm.scores("zebra").tolist() == [0.0, 0.0, 0.0]  # unknown terms score nothing
    empty = BM25(["", "..."])  # documents without terms: nothing matches, no division by 0
    assert empty.avgdl == 0.0 and empty.scores("cat").tolist() == [0.0, 0.0]
    custom = BM25(["A-B", "a b"], tokenize=lambda s: s.split("-"))
    assert custom.scores("A").tolist()[1] == 0.0 and custom.scores("A")[0] > 0


def test_recall_at_k() -> None:
    retrieved = [[3, 1, 2], [0, 2, 1], [2, 0, 1]]
    assert recall_at_k(retrieved, [1, 1, 2], k=1) == pytest.approx(1 / 3)
    assert recall_at_k(retrieved, [1, 1, 2], k=2) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, [1, 1, 2], k=3) == 1.0
    assert recall_at_k(retrieved, [{1, 2}, {0}, [0, 1]], k=2) == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert recall_at_k([np.array([4, 2])], [np.int64(2)], k=5) == 1.0
    for k in (0, -2):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            recall_at_k(retrieved, [1, 1, 2], k=k)
    with pytest.raises(ValueError, match="3 retrieved lists but 2 relevant"):
        recall_at_k(retrieved, [1, 1], k=1)
    with pytest.raises(ValueError, match="no queries"):
        recall_at_k([], [], k=1)
    with pytest.raises(ValueError, match="no relevant document"):
        recall_at_k([[0]], [set()], k=1)


def test_bm25_finds_the_fact_of_each_question() -> None:
    facts = data.fact_qa(300, seed=0)
    bm = BM25([f.text for f in facts])
    retrieved = [bm.top_k(f.question, 3) for f in facts]
    assert recall_at_k(retrieved, list(range(len(facts))), k=1) == 1.0
    # the retrieved fact, placed in the prompt, holds the answer
    f = facts[7]
    example = f.with_context([facts[int(retrieved[7][0])].text])
    assert f.answer in example.prompt


def test_sft_batches_are_float64_safe() -> None:
    """float64 models work through the whole path (losses in the model's dtype)."""
    model = tiny_gpt().double()
    ids, targets = data.encode_sft(data.instruction_dataset(3, seed=0), TOK, BLOCK)
    assert sft_loss(model(ids), targets).dtype == torch.float64
    assert sequence_logprob(model, ids, targets).dtype == torch.float64
    rm = RewardModel(tiny_gpt()).double()
    assert rm(ids).dtype == torch.float64
