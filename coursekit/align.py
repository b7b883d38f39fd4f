"""Post-training a causal language model: instruction tuning, reward models, DPO, retrieval.

A pre-trained GPT continues text; post-training teaches it to answer. The pieces, sized for a
tiny character-level GPT and the data of :mod:`coursekit.data.instructions`:

* supervised fine-tuning (SFT): :func:`sft_loss`, the next-token cross-entropy over response
  tokens only (targets from :func:`coursekit.data.encode_sft`); :func:`complete` and
  :func:`instruction_accuracy` judge a model by its greedy answers (exact match).
* reward modelling: :class:`RewardModel` (a GPT with a scalar head on the last real token),
  trained with :func:`bradley_terry_loss` (Bradley-Terry: P(chosen > rejected) =
  sigmoid(r_c - r_r)) and measured by :func:`preference_accuracy`.
* direct preference optimisation (DPO, Rafailov et al. 2023): :func:`sequence_logprob` scores
  responses, :func:`dpo_loss` compares a policy with a frozen reference (:func:`frozen_copy`),
  no reward model and no sampling needed.
* retrieval: :class:`BM25` (Okapi BM25) finds the passages to put in a prompt;
  :func:`recall_at_k` measures it.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coursekit.data.instructions import IGNORE_INDEX, Instruction
from coursekit.generate import generate
from coursekit.models import GPT
from coursekit.runtime import value_checks
from coursekit.tokenize import Tokenizer, word_tokenize

__all__ = [
    "BM25",
    "DPOLoss",
    "RewardModel",
    "bm25_terms",
    "bradley_terry_loss",
    "complete",
    "dpo_loss",
    "frozen_copy",
    "instruction_accuracy",
    "preference_accuracy",
    "recall_at_k",
    "sequence_logprob",
    "sft_loss",
]


def _check_lm_targets(logits: torch.Tensor, targets: torch.Tensor, who: str) -> None:
    if logits.dim() != 3 or not logits.dtype.is_floating_point:
        raise ValueError(
            f"{who}: logits must be floating point (B, T, V), got {logits.dtype} "
            f"{tuple(logits.shape)}."
        )
    if targets.shape != logits.shape[:2] or targets.dtype.is_floating_point:
        raise ValueError(
            f"{who}: targets must be integer ids of shape (B, T) = {tuple(logits.shape[:2])} "
            f"(the logits' first two sizes), got {targets.dtype} {tuple(targets.shape)}."
        )


# --------------------------------------------------------------------------------------------
# supervised fine-tuning
# --------------------------------------------------------------------------------------------
def sft_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the response tokens.

    logits ``(B, T, V)``, targets ``(B, T)`` with ``-100`` on prompt and padding positions
    (:func:`coursekit.data.encode_sft`). The mean runs over every response token of the batch
    (a long response weighs more than a short one); with no response token the loss is 0.
    Returns a scalar in the logits' dtype, equal to ``GPT.loss(ids, targets)``.
    """
    _check_lm_targets(logits, targets, "sft_loss")
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return total / (targets != IGNORE_INDEX).sum().clamp_min(1)


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def complete(
    model: nn.Module,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    *,
    stop: str = "\n",
    batch_size: int = 256,
) -> list[str]:
    """The model's greedy continuation of each prompt, up to and with the first ``stop``.

    Prompts of equal token length are decoded together (:func:`coursekit.generate.generate`
    with temperature 0) in batches of at most ``batch_size``. A continuation that has not
    produced ``stop`` within ``max_new_tokens`` tokens is returned as it is (without it).
    ``stop`` must be a single token of the tokenizer.
    """
    if len(prompts) == 0:
        raise ValueError("complete: no prompts given.")
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError(
            f"complete: max_new_tokens and batch_size must be positive, got {max_new_tokens} "
            f"and {batch_size}."
        )
    stop_ids = tokenizer.encode(stop)
    if len(stop_ids) != 1:
        raise ValueError(f"complete: stop={stop!r} must be one token, it encodes to {stop_ids}.")
    stop_id = stop_ids[0]
    encoded = [tokenizer.encode(p) for p in prompts]
    if any(len(e) == 0 for e in encoded):
        raise ValueError("complete: a prompt is empty; each needs at least one token.")
    by_length: dict[int, list[int]] = {}
    for i, e in enumerate(encoded):
        by_length.setdefault(len(e), []).append(i)
    device = _device(model)
    out = [""] * len(prompts)
    for length, rows in by_length.items():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            ids = torch.tensor([encoded[i] for i in chunk], device=device)
            new = generate(model, ids, max_new_tokens, temperature=0.0, eos_id=stop_id)
            for i, row in zip(chunk, new[:, length:].tolist()):
                end = row.index(stop_id) + 1 if stop_id in row else len(row)
                out[i] = tokenizer.decode(row[:end])
    return out


def instruction_accuracy(
    model: nn.Module,
    tokenizer: Tokenizer,
    examples: Sequence[Instruction],
    max_new_tokens: int | None = None,
    *,
    stop: str = "\n",
) -> float:
    """Share of examples whose greedy completion (:func:`complete`) equals the response exactly.

    Each response must end with ``stop``: the model has to produce it, not merely a prefix.
    ``max_new_tokens`` defaults to the longest response's token count.
    """
    if len(examples) == 0:
        raise ValueError("instruction_accuracy: no examples given.")
    unended = [e.response for e in examples if not e.response.endswith(stop)]
    if unended:
        raise ValueError(
            f"instruction_accuracy: every response must end with stop={stop!r}; "
            f"{unended[0]!r} does not."
        )
    if max_new_tokens is None:
        max_new_tokens = max(len(tokenizer.encode(e.response)) for e in examples)
    answers = complete(model, tokenizer, [e.prompt for e in examples], max_new_tokens, stop=stop)
    return sum(a == e.response for a, e in zip(answers, examples)) / len(examples)


# --------------------------------------------------------------------------------------------
# reward modelling
# --------------------------------------------------------------------------------------------
class RewardModel(nn.Module):
    """A scalar score of a whole text: a GPT's final hidden state at the text's last real token,
    through a linear head ``d_model -> 1``.

    ``forward(ids, lengths=None, attention_mask=None)``: ``ids`` ``(B, T)``, right-padded;
    give the real lengths ``(B,)`` or Hugging Face's ``attention_mask`` ``(B, T)`` (1 = real
    token), or neither when no row is padded. Returns rewards ``(B,)``. The causal backbone
    never lets a token see padding after it, so padding does not change a reward. The head
    starts at zero, so every reward starts at 0 (a Bradley-Terry loss of log 2).
    """

    def __init__(self, backbone: GPT) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.d_model, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _lengths(
        self, ids: torch.Tensor, lengths: torch.Tensor | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        batch, width = ids.shape
        if lengths is not None and mask is not None:
            raise ValueError("RewardModel: give lengths or attention_mask, not both.")
        if mask is not None:
            if mask.shape != ids.shape:
                raise ValueError(
                    f"RewardModel: attention_mask {tuple(mask.shape)} must have the shape of "
                    f"ids {tuple(ids.shape)}."
                )
            lengths = mask.long().sum(1)
            if value_checks(mask.device):
                expected = torch.arange(width, device=mask.device) < lengths[:, None]
                if not torch.equal(mask.bool(), expected):
                    raise ValueError(
                        "RewardModel: attention_mask must be right padding (1s, then 0s): a "
                        "causal model lets every token see the padding placed before it."
                    )
        if lengths is None:
            return torch.full((batch,), width, device=ids.device)
        if lengths.shape != (batch,):
            raise ValueError(
                f"RewardModel: lengths must have shape (B,) = ({batch},), got "
                f"{tuple(lengths.shape)}."
            )
        if value_checks(lengths.device) and batch:
            low, high = int(lengths.min()), int(lengths.max())
            if low < 1 or high > width:
                raise ValueError(
                    f"RewardModel: lengths must be in 1..T = 1..{width}, got {low}..{high} "
                    "(a row with no real token has no last token to read)."
                )
        return lengths.to(ids.device)

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Rewards ``(B,)`` of the texts ``ids`` ``(B, T)`` (see the class docstring)."""
        last = self._lengths(ids, lengths, attention_mask) - 1  # (B,)
        hidden = self.backbone.hidden_states(ids)  # (B, T, d)
        rows = torch.arange(ids.shape[0], device=ids.device)
        return self.head(hidden[rows, last]).squeeze(-1)


def _check_pair(a: torch.Tensor, b: torch.Tensor, who: str, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{who}: {names} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    if a.numel() == 0:
        raise ValueError(f"{who}: the inputs are empty; give at least one pair.")
    if not (a.dtype.is_floating_point and b.dtype.is_floating_point):
        raise ValueError(f"{who}: {names} must be floating point, got {a.dtype} and {b.dtype}.")


def bradley_terry_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
) -> torch.Tensor:
    """``-log sigmoid(r_chosen - r_rejected)``, averaged: the negative log-likelihood of the
    preferences under the Bradley-Terry model. Rewards of any equal shape, e.g. ``(B,)``;
    returns a scalar (log 2 when the rewards are equal)."""
    _check_pair(chosen_rewards, rejected_rewards, "bradley_terry_loss", "the rewards")
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def preference_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Share of pairs whose chosen response gets the higher reward (a tie counts one half, so
    a model that scores everything alike gets 0.5, chance)."""
    _check_pair(chosen_rewards, rejected_rewards, "preference_accuracy", "the rewards")
    wins = (chosen_rewards > rejected_rewards).double() + 0.5 * (chosen_rewards == rejected_rewards)
    return float(wins.mean())


# --------------------------------------------------------------------------------------------
# direct preference optimisation
# --------------------------------------------------------------------------------------------
def sequence_logprob(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed log-probability ``(B,)`` the model gives to each row's targets.

    ``ids`` and ``targets`` ``(B, T)`` as from :func:`coursekit.data.encode_sft`: the sum runs
    over the positions whose target is not ``-100`` (the response), so it is
    ``log p(response | prompt)``. Computed in at least float32; gradients flow to the model.
    """
    if ids.shape != targets.shape:
        raise ValueError(
            f"sequence_logprob: ids {tuple(ids.shape)} and targets {tuple(targets.shape)} must "
            "have the same shape (targets are the ids shifted left)."
        )
    logits = model(ids)
    _check_lm_targets(logits, targets, "sequence_logprob")
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_p = torch.log_softmax(logits.to(dtype), dim=-1)  # (B, T, V)
    keep = targets != IGNORE_INDEX
    picked = log_p.gather(-1, targets.masked_fill(~keep, 0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return torch.where(keep, picked, torch.zeros_like(picked)).sum(1)


class DPOLoss(NamedTuple):
    """What :func:`dpo_loss` returns: the scalar ``loss`` and, per pair ``(B,)``, the implicit
    rewards ``beta * (log pi - log pi_ref)`` of the chosen and rejected responses (detached)."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        """``chosen_rewards - rejected_rewards`` ``(B,)``: positive where the policy prefers
        the chosen response more than the reference does."""
        return self.chosen_rewards - self.rejected_rewards


def dpo_loss(
    policy_chosen_logp: torch.Tensor,
    policy_rejected_logp: torch.Tensor,
    ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor,
    beta: float = 0.1,
) -> DPOLoss:
    """The DPO loss ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))``, averaged over pairs.

    Inputs: summed response log-probabilities (:func:`sequence_logprob`) ``(B,)`` of the policy
    and of the frozen reference model, for the chosen and the rejected responses. ``beta > 0``
    sets how far the policy may move from the reference (small: far). While the policy equals
    the reference the loss is log 2. Returns a :class:`DPOLoss`.
    """
    if (
        not isinstance(beta, (int, float))
        or isinstance(beta, bool)
        or not math.isfinite(beta)
        or beta <= 0
    ):
        raise ValueError(f"dpo_loss: beta must be a positive finite number, got {beta!r}.")
    names = "policy_chosen_logp and "
    _check_pair(
        policy_chosen_logp, policy_rejected_logp, "dpo_loss", names + "policy_rejected_logp"
    )
    _check_pair(policy_chosen_logp, ref_chosen_logp, "dpo_loss", names + "ref_chosen_logp")
    _check_pair(policy_chosen_logp, ref_rejected_logp, "dpo_loss", names + "ref_rejected_logp")
    chosen = beta * (policy_chosen_logp - ref_chosen_logp)
    rejected = beta * (policy_rejected_logp - ref_rejected_logp)
    loss = -F.logsigmoid(chosen - rejected).mean()
    return DPOLoss(loss, chosen.detach(), rejected.detach())


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every parameter frozen: DPO's reference."""
    ref = copy.deepcopy(model).eval()
    ref.requires_grad_(False)
    return ref


# --------------------------------------------------------------------------------------------
# retrieval
# --------------------------------------------------------------------------------------------
def bm25_terms(text: str) -> list[str]:
    """BM25's default terms: the lower-cased words of ``text``, punctuation dropped."""
    return [t for t in word_tokenize(text) if t[0].isalnum() or t[0] == "_"]


class BM25:
    r"""Okapi BM25 over a fixed list of documents.

    For a query with terms :math:`q_1..q_m` (a repeated term counts each time) and a document
    :math:`D` of length :math:`|D|` (terms), in a corpus of :math:`N` documents of mean length
    avgdl:

    .. math::
        \text{score}(D) = \sum_i \text{idf}(q_i)\,
            \frac{f(q_i, D)\,(k_1 + 1)}{f(q_i, D) + k_1 (1 - b + b\,|D| / \text{avgdl})},
        \qquad \text{idf}(q) = \log\Big(\frac{N - n(q) + 0.5}{n(q) + 0.5} + 1\Big)

    with :math:`f` the term's count in :math:`D` and :math:`n(q)` the number of documents that
    contain it. This idf (Lucene's) is always positive, so scores are >= 0, and 0 exactly for
    documents that share no term with the query. ``k1`` saturates repeated terms, ``b`` (in
    [0, 1]) normalises by length. ``tokenize`` turns text into terms (default
    :func:`bm25_terms`).
    """

    def __init__(
        self,
        documents: Sequence[str],
        *,
        tokenize: Callable[[str], Sequence[str]] = bm25_terms,
        k1: float = 1.5,
        b: float = 0.75,
    ) -> None:
        if isinstance(documents, str):
            raise TypeError("BM25 takes a list of documents, not one string.")
        if len(documents) == 0:
            raise ValueError("BM25: no documents given.")
        if not (math.isfinite(k1) and k1 >= 0):
            raise ValueError(f"BM25: k1 must be a finite number >= 0, got {k1}.")
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25: b must be in [0, 1], got {b}.")
        self.documents = list(documents)
        self.tokenize = tokenize
        self.k1, self.b = float(k1), float(b)
        counts = [Counter(tokenize(d)) for d in self.documents]
        self.doc_lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)  # (N,)
        self.avgdl = float(self.doc_lengths.mean())
        postings: dict[str, dict[int, int]] = {}
        for i, c in enumerate(counts):
            for term, f in c.items():
                postings.setdefault(term, {})[i] = f
        # term -> (indices of the documents that contain it, its count in each)
        self._postings = {
            term: (np.array(list(d), dtype=np.int64), np.array(list(d.values()), dtype=np.float64))
            for term, d in postings.items()
        }
        ratio = self.doc_lengths / self.avgdl if self.avgdl > 0 else np.ones_like(self.doc_lengths)
        self._norm = self.k1 * (1.0 - self.b + self.b * ratio)  # (N,)

    @property
    def n_docs(self) -> int:
        return len(self.documents)

    def idf(self, term: str) -> float:
        """``log((N - n + 0.5) / (n + 0.5) + 1)``, ``n`` = documents containing ``term``."""
        n = len(self._postings[term][0]) if term in self._postings else 0
        return math.log((self.n_docs - n + 0.5) / (n + 0.5) + 1.0)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for ``query``: float64 ``(N,)``.

        A query with no terms (after ``tokenize``) is an error: every score would be 0."""
        terms = list(self.tokenize(query))
        if not terms:
            raise ValueError(f"BM25: the query {query!r} has no terms after tokenizing.")
        out = np.zeros(self.n_docs, dtype=np.float64)
        for term in terms:
            if term not in self._postings:
                continue
            docs, f = self._postings[term]
            out[docs] += self.idf(term) * f * (self.k1 + 1.0) / (f + self._norm[docs])
        return out

    def top_k(self, query: str, k: int) -> np.ndarray:
        """Indices of the ``k`` best documents ``(min(k, N),)``, best first (ties: lower index
        first)."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"BM25.top_k: k must be a positive integer, got {k!r}.")
        order = np.argsort(-self.scores(query), kind="stable")
        return order[:k]


def recall_at_k(
    retrieved: Sequence[Sequence[int]], relevant: Sequence[int | Collection[int]], k: int
) -> float:
    """Mean over queries of the share of each query's relevant documents among its first ``k``
    retrieved ones.

    ``retrieved``: one ranked list of document indices per query (e.g. :meth:`BM25.top_k`);
    ``relevant``: per query, one index or a non-empty collection of them. With one relevant
    document per query this is the share of queries whose document is in the top ``k``.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"recall_at_k: k must be a positive integer, got {k!r}.")
    if len(retrieved) != len(relevant):
        raise ValueError(
            f"recall_at_k: {len(retrieved)} retrieved lists but {len(relevant)} relevant sets "
            "(one of each per query)."
        )
    if len(retrieved) == 0:
        raise ValueError("recall_at_k: no queries given.")
    total = 0.0
    for ranked, rel in zip(retrieved, relevant):
        wanted = {int(rel)} if isinstance(rel, (int, np.integer)) else {int(r) for r in rel}
        if not wanted:
            raise ValueError("recall_at_k: a query has no relevant document; recall is undefined.")
        top = {int(r) for r in list(ranked)[:k]}
        total += len(top & wanted) / len(wanted)
    return total / len(retrieved)
