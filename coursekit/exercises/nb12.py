"""Checks and quiz for notebook 12 (adaptation and alignment: prompt-masked SFT targets, the DPO
loss, BM25 scoring, retrieval-augmented prompts)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from coursekit.align import dpo_loss
from coursekit.data.instructions import IGNORE_INDEX, fact_qa, format_prompt, rag_prompt
from coursekit.exercises.expect import (
    a_type,
    as_number,
    expect_callable,
    expect_close,
    expect_number,
    expect_scalar,
    expect_signature,
    expect_token_ids,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

NB = "12"


def _ids(value: Any, what: str) -> list[int]:
    return expect_token_ids(
        value, name=what, hint="Return two plain lists of ints: the ids and the targets."
    )


# ------------------------------------------------------------------------------------------
# 12.1 the prompt mask


def _sft_example_reference(
    prompt_ids: Sequence[int], response_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    seq = list(prompt_ids) + list(response_ids)
    # position t predicts token t + 1; only the predictions of response tokens are learnt
    return seq[:-1], [IGNORE_INDEX] * (len(prompt_ids) - 1) + list(response_ids)


def _sft_example(
    prompt_ids: Sequence[int], response_ids: Sequence[int], *, mistake: str
) -> tuple[list[int], list[int]]:
    """One SFT example with one of the usual mistakes."""
    prompt, response = list(prompt_ids), list(response_ids)
    seq = prompt + response
    ids = seq if mistake == "ids_whole" else seq[:-1]
    targets = {
        "no_mask": seq[1:],
        "mask_too_many": [IGNORE_INDEX] * len(prompt) + response[1:],
        "mask_response": prompt[1:] + [IGNORE_INDEX] * len(response),
        "not_shifted": [IGNORE_INDEX] * len(prompt) + response[:-1],
        "minus_one": [-1] * (len(prompt) - 1) + response,
    }.get(mistake, [IGNORE_INDEX] * (len(prompt) - 1) + response)
    return ids, targets


_SFT_IDEA = (
    " With s = prompt + response: ids = s[:-1] (the last token is never an input, nothing "
    "follows it), and targets[t] = s[t + 1] where that next token belongs to the response, "
    "-100 elsewhere; that is len(prompt) - 1 masked targets followed by the whole response."
)

_SFT_MISTAKES: list[tuple[str, str]] = [
    (
        "no_mask",
        "Nothing is masked: those targets train the model to predict the PROMPT as well, so "
        "part of fine-tuning goes into imitating questions instead of answering them. Put -100 "
        "at every position whose next token is a prompt token." + _SFT_IDEA,
    ),
    (
        "mask_too_many",
        "One target too many is masked: the position of the LAST prompt token predicts the "
        "FIRST response token, and that prediction must be learnt (it is the most important "
        "one: how the answer starts). Mask len(prompt) - 1 targets, not len(prompt)." + _SFT_IDEA,
    ),
    (
        "mask_response",
        "The mask is the wrong way round: these targets learn the prompt and skip the response. "
        "-100 goes where the next token is a PROMPT token; the response tokens are the targets."
        + _SFT_IDEA,
    ),
    (
        "ids_whole",
        "ids must leave out the last token: it has no next token to predict, so ids and targets "
        "would not line up (they must have the same length, one target per input position)."
        + _SFT_IDEA,
    ),
    (
        "not_shifted",
        "The targets are not shifted: targets[t] must be the NEXT token, s[t + 1], not the token "
        "s[t] that position t is reading (that would teach the model to copy its input). Shift "
        "by one: the first response token is the target of the last prompt position." + _SFT_IDEA,
    ),
]


def _sft_cases() -> list[tuple[list[int], list[int]]]:
    """(prompt_ids, response_ids): the first case tells every mistake apart."""
    g = torch.Generator().manual_seed(121)
    long_prompt = torch.randint(1, 65, (12,), generator=g).tolist()
    long_response = torch.randint(1, 65, (7,), generator=g).tolist()
    return [
        ([5, 9, 2, 7], [11, 4, 8]),
        ([3], [6, 1, 2]),  # a one-token prompt: no target is masked
        ([4, 8, 15, 16], [23]),  # a one-token response: one target left
        (long_prompt, long_response),
    ]


def _check_sft_case(answer: Any, prompt: list[int], response: list[int]) -> None:
    call = f"sft_example({prompt}, {response})"
    out = answer(list(prompt), list(response))
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise ExerciseFailure(
            f"{call} returned {a_type(out)}; expected the pair (ids, targets).",
            hint="End with `return ids, targets`: two lists of ints of the same length.",
        )
    got = (_ids(out[0], f"ids of {call}"), _ids(out[1], f"targets of {call}"))
    expected = _sft_example_reference(prompt, response)
    if got == expected:
        return
    ids, targets = got
    message = (
        f"{call} gives ids {ids} and targets {targets}; expected {expected[0]} and {expected[1]}."
    )
    for mistake, hint in _SFT_MISTAKES:
        variant = _sft_example(prompt, response, mistake=mistake)
        if variant != expected and got == variant:
            raise ExerciseFailure(message, hint=hint)
    if ids != expected[0]:
        hint = "ids is the whole sequence prompt + response without its last token." + _SFT_IDEA
    elif len(targets) != len(ids):
        hint = "targets needs one entry per position of ids: the same length." + _SFT_IDEA
    elif all(t == e for t, e in zip(targets, expected[1]) if e != IGNORE_INDEX):
        hint = (
            "The response targets are right, but the masked positions must hold -100: that is "
            "the ignore_index F.cross_entropy skips by default (and the value coursekit's "
            "sft_loss and encode_sft use). Any other value is read as a token id to predict."
        )
    else:
        hint = "Work out targets position by position." + _SFT_IDEA
    raise ExerciseFailure(message, hint=hint)


@exercise(
    "12.1",
    notebook=NB,
    title="The prompt mask",
    asks="sft_example(prompt_ids, response_ids) -> (ids, targets) for one example, as "
    "coursekit.data.encode_sft builds them: with s = prompt + response, ids = s[:-1] and "
    "targets[t] = s[t + 1] if that token is a response token, else -100 (len(prompt) - 1 "
    "masked targets, then the response)",
    difficulty=1,
    minutes=10,
    reference=_sft_example_reference,
    also_correct={
        "tuples": lambda p, r: tuple(tuple(x) for x in _sft_example_reference(p, r)),
        "1-D long tensors": lambda p, r: tuple(
            torch.tensor(x, dtype=torch.long) for x in _sft_example_reference(p, r)
        ),
    },
    wrong_answers={
        "no prompt mask: targets = s[1:]": partial(_sft_example, mistake="no_mask"),
        "len(prompt) targets masked (off by one)": partial(_sft_example, mistake="mask_too_many"),
        "the response masked instead of the prompt": partial(_sft_example, mistake="mask_response"),
        "ids = s, the last token kept": partial(_sft_example, mistake="ids_whole"),
        "targets not shifted: targets[t] = s[t]": partial(_sft_example, mistake="not_shifted"),
        "masked with -1 instead of -100": partial(_sft_example, mistake="minus_one"),
    },
)
def check_sft_example(answer: Any) -> None:
    """For a prompt of 4 tokens and a response of 3, a one-token prompt (nothing masked), a
    one-token response, and a random prompt of 12 and response of 7: ids and targets (lists,
    tuples or 1-D integer tensors) must equal encode_sft's row for that example exactly.

    Rejects targets without a mask (s[1:]), len(prompt) masked targets (the first response
    token never learnt), the response masked instead of the prompt, ids that keep the last
    token, targets that are not shifted (targets[t] = s[t]), and a mask value other than -100.
    """
    expect_callable(answer, name="sft_example")
    expect_signature(
        answer,
        "sft_example(prompt_ids, response_ids)",
        "def sft_example(prompt_ids, response_ids)",
        [1, 2],
        [3],
    )
    for prompt, response in _sft_cases():
        _check_sft_case(answer, prompt, response)


# ------------------------------------------------------------------------------------------
# 12.2 the DPO loss


def _dpo_reference(
    policy_chosen_logp: torch.Tensor,
    policy_rejected_logp: torch.Tensor,
    ref_chosen_logp: torch.Tensor,
    ref_rejected_logp: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    chosen = policy_chosen_logp - ref_chosen_logp  # log pi / pi_ref: the implicit reward / beta
    rejected = policy_rejected_logp - ref_rejected_logp
    return -F.logsigmoid(beta * (chosen - rejected)).mean()


def _dpo(
    pc: torch.Tensor,
    pr: torch.Tensor,
    rc: torch.Tensor,
    rr: torch.Tensor,
    beta: float,
    *,
    mistake: str,
) -> torch.Tensor:
    """The DPO loss with one of the usual mistakes."""
    margin = (pc - rc) - (pr - rr)
    if mistake == "no_reference":
        return -F.logsigmoid(beta * (pc - pr)).mean()
    if mistake == "flipped":
        return -F.logsigmoid(-beta * margin).mean()
    if mistake == "no_beta":
        return -F.logsigmoid(margin).mean()
    if mistake == "sigmoid":
        return (1 - torch.sigmoid(beta * margin)).mean()
    if mistake == "neg_sigmoid":
        return -torch.sigmoid(beta * margin).mean()
    if mistake == "sum":
        return -F.logsigmoid(beta * margin).sum()
    if mistake == "beta_outside":
        return -beta * F.logsigmoid(margin).mean()
    if mistake == "no_minus":
        return F.logsigmoid(beta * margin).mean()
    raise ValueError(f"unknown mistake {mistake!r}")


_DPO_IDEA = (
    " loss = -log sigmoid(beta * ((pc - rc) - (pr - rr))), averaged over the pairs: each log-"
    "probability is compared with the reference's first, and beta scales the margin INSIDE "
    "the log-sigmoid (F.logsigmoid is the stable way to take it)."
)

_DPO_MISTAKES: list[tuple[str, str]] = [
    (
        "no_reference",
        "The reference model is missing: DPO does not compare pc with pr directly, it compares "
        "how much the policy has moved away from the reference on each response, "
        "(pc - rc) - (pr - rr). Without the reference terms nothing ties the policy to it, "
        "and a response that is unlikely under both models looks bad." + _DPO_IDEA,
    ),
    (
        "flipped",
        "The sign is flipped: this loss falls when the policy prefers the REJECTED response. "
        "The margin is (chosen log-ratio) - (rejected log-ratio)." + _DPO_IDEA,
    ),
    (
        "no_beta",
        "beta is missing: multiply the margin by beta before the log-sigmoid. beta sets how "
        "strongly the policy is held near the reference (small beta: it may move far)." + _DPO_IDEA,
    ),
    (
        "sigmoid",
        "That is 1 - sigmoid(margin), not -log sigmoid(margin): the loss is the negative "
        "LOG-likelihood of the preference, which keeps pushing on pairs the policy gets badly "
        "wrong, where the plain sigmoid is flat. Use -F.logsigmoid(...)." + _DPO_IDEA,
    ),
    (
        "neg_sigmoid",
        "That is -sigmoid(margin), not -log sigmoid(margin): take the logarithm of the "
        "probability that the chosen response wins (F.logsigmoid), then negate it." + _DPO_IDEA,
    ),
    (
        "sum",
        "The loss is summed over the pairs: average it (.mean()), so that its size and the "
        "step size do not depend on the batch size." + _DPO_IDEA,
    ),
    (
        "beta_outside",
        "beta is applied outside the log-sigmoid: -beta * logsigmoid(margin) only rescales the "
        "loss, like a learning rate. It belongs INSIDE, -logsigmoid(beta * margin), where it "
        "changes how soon a pair counts as learnt." + _DPO_IDEA,
    ),
    (
        "no_minus",
        "The minus sign is missing: log sigmoid(...) is the log-likelihood of the preferences, "
        "to be maximised; the loss to minimise is its negative." + _DPO_IDEA,
    ),
]

#: (batch size, beta); the first batch has several pairs, so a sum and a mean differ
_DPO_CASES: list[tuple[int, float]] = [(4, 0.1), (1, 0.5), (16, 2.0), (7, 0.05)]


def _dpo_inputs(
    batch: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed response log-probabilities (pc, pr, rc, rr) in float64: the reference's between
    -25 and -5, the policy's within a few nats of them."""
    f64 = torch.float64
    ref_c = -5 - 20 * torch.rand(batch, generator=g, dtype=f64)
    ref_r = -5 - 20 * torch.rand(batch, generator=g, dtype=f64)
    pol_c = ref_c + 2 * torch.randn(batch, generator=g, dtype=f64)
    pol_r = ref_r + 2 * torch.randn(batch, generator=g, dtype=f64)
    return pol_c, pol_r, ref_c, ref_r


@exercise(
    "12.2",
    notebook=NB,
    title="The DPO loss",
    asks="dpo_loss_fn(policy_chosen_logp, policy_rejected_logp, ref_chosen_logp, "
    "ref_rejected_logp, beta) -> scalar tensor: the mean over pairs of -log sigmoid(beta * "
    "((pc - rc) - (pr - rr))), from (B,) summed response log-probabilities of the policy and "
    "the frozen reference; gradients must reach the policy's inputs",
    difficulty=2,
    minutes=15,
    reference=_dpo_reference,
    also_correct={
        "coursekit.align.dpo_loss(...).loss": lambda pc, pr, rc, rr, beta: (
            dpo_loss(pc, pr, rc, rr, beta).loss
        ),
        "softplus of minus the margin": lambda pc, pr, rc, rr, beta: F.softplus(
            -beta * ((pc - rc) - (pr - rr))
        ).mean(),
    },
    wrong_answers={
        "reference terms ignored": partial(_dpo, mistake="no_reference"),
        "sign flipped: rejected minus chosen": partial(_dpo, mistake="flipped"),
        "beta forgotten": partial(_dpo, mistake="no_beta"),
        "1 - sigmoid instead of -log sigmoid": partial(_dpo, mistake="sigmoid"),
        "summed over the pairs": partial(_dpo, mistake="sum"),
        "beta outside the log-sigmoid": partial(_dpo, mistake="beta_outside"),
        "no minus sign": partial(_dpo, mistake="no_minus"),
    },
)
def check_dpo_loss_fn(answer: Any) -> None:
    """Random float64 log-probabilities for (batch, beta) = (4, 0.1), (1, 0.5), (16, 2.0) and
    (7, 0.05): a scalar equal to coursekit.align.dpo_loss(...).loss (atol 1e-6); log 2 when the
    policy's log-probabilities equal the reference's; and the gradients of the loss with
    respect to the policy's inputs equal the reference's (so raising policy_chosen_logp lowers
    the loss, raising policy_rejected_logp raises it).

    Rejects the reference terms ignored, the sign flipped, beta forgotten, 1 - sigmoid or
    -sigmoid instead of -log sigmoid, a sum over the pairs, beta outside the log-sigmoid, and a
    missing minus sign.
    """
    expect_callable(answer, name="dpo_loss_fn")
    zeros = torch.zeros(2)
    expect_signature(
        answer,
        "dpo_loss_fn(policy_chosen_logp, policy_rejected_logp, ref_chosen_logp, "
        "ref_rejected_logp, beta)",
        "def dpo_loss_fn(policy_chosen_logp, policy_rejected_logp, ref_chosen_logp, "
        "ref_rejected_logp, beta)",
        *(zeros for _ in range(4)),
        0.1,
    )
    g = torch.Generator().manual_seed(122)
    for batch, beta in _DPO_CASES:
        inputs = _dpo_inputs(batch, g)
        call = f"dpo_loss_fn(...) on {batch} pair{'s' if batch > 1 else ''} with beta = {beta}"
        expect_close(
            expect_scalar(answer(*(t.clone() for t in inputs), beta), call),
            _dpo_reference(*inputs, beta),
            name=call,
            atol=1e-6,
            rtol=1e-6,
            hint="Compute the loss from all four log-probabilities and beta." + _DPO_IDEA,
            mistakes=[
                (partial(_dpo, *inputs, beta, mistake=mistake), hint)
                for mistake, hint in _DPO_MISTAKES
            ],
        )
    pol_c, pol_r, _, _ = _dpo_inputs(5, g)
    call = "dpo_loss_fn(...) with the policy equal to the reference"
    expect_close(
        expect_scalar(
            answer(pol_c.clone(), pol_r.clone(), pol_c.clone(), pol_r.clone(), 0.3), call
        ),
        torch.tensor(math.log(2), dtype=torch.float64),
        name=call,
        atol=1e-6,
        rtol=1e-6,
        hint="Before any training the policy IS the reference: both log-ratios are 0, the margin "
        "is 0, and the loss is -log sigmoid(0) = log 2 = 0.693 for every beta." + _DPO_IDEA,
    )
    inputs = _dpo_inputs(6, g)
    pc, pr = (t.clone().requires_grad_(True) for t in inputs[:2])
    call = "dpo_loss_fn(...) on policy log-probabilities that require grad"
    loss = expect_scalar(answer(pc, pr, inputs[2].clone(), inputs[3].clone(), 0.5), call)
    no_graph = (
        "Keep the whole computation in torch operations on the inputs: no .item(), .detach(), "
        "float(...) or torch.tensor(...) of an intermediate result, or the gradient cannot reach "
        "the policy, and training would not move it."
    )
    if not loss.requires_grad:
        raise ExerciseFailure(f"the loss of {call} carries no gradient.", hint=no_graph)
    grads = torch.autograd.grad(loss, (pc, pr), allow_unused=True)
    pc_ref, pr_ref = (t.clone().requires_grad_(True) for t in inputs[:2])
    want = torch.autograd.grad(_dpo_reference(pc_ref, pr_ref, *inputs[2:], 0.5), (pc_ref, pr_ref))
    names = ("policy_chosen_logp", "policy_rejected_logp")
    for name, got_grad, expected_grad in zip(names, grads, want):
        if got_grad is None:
            raise ExerciseFailure(
                f"no gradient of the loss of {call} reaches {name}.", hint=no_graph
            )
        expect_close(
            got_grad,
            expected_grad,
            name=f"the gradient of {call} with respect to {name}",
            atol=1e-6,
            rtol=1e-6,
            hint="Raising policy_chosen_logp must lower the loss and raising "
            "policy_rejected_logp must raise it, each by the reference's amount. " + no_graph,
        )


# ------------------------------------------------------------------------------------------
# 12.3 one BM25 term


def _bm25_reference(
    tf: float,
    doc_len: float,
    avg_doc_len: float,
    n_docs: int,
    doc_freq: int,
    k1: float = 1.5,
    b: float = 0.75,
) -> float:
    idf = math.log((n_docs - doc_freq + 0.5) / (doc_freq + 0.5) + 1)  # > 0 even for a common term
    norm = k1 * (1 - b + b * doc_len / avg_doc_len)  # a long document needs more occurrences
    return idf * tf * (k1 + 1) / (tf + norm)


def _bm25(
    tf: float,
    doc_len: float,
    avg_doc_len: float,
    n_docs: int,
    doc_freq: int,
    k1: float = 1.5,
    b: float = 0.75,
    *,
    mistake: str,
) -> float:
    """One BM25 term with one of the usual mistakes."""
    ratio = (n_docs - doc_freq + 0.5) / (doc_freq + 0.5)
    idf = {
        "idf_no_one": math.log(ratio),
        "log10": math.log10(ratio + 1),
        "idf_n_over_df": math.log(n_docs / doc_freq),
    }.get(mistake, math.log(ratio + 1))
    norm = k1 if mistake == "no_length" else k1 * (1 - b + b * doc_len / avg_doc_len)
    if mistake == "plain_tf_idf":
        return idf * tf
    return idf * tf * (1 if mistake == "no_k1_plus_1" else k1 + 1) / (tf + norm)


_BM25_IDEA = (
    " score = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avg_doc_len)), with "
    "idf = ln((n_docs - doc_freq + 0.5) / (doc_freq + 0.5) + 1) (math.log is the natural "
    "logarithm)."
)

_BM25_MISTAKES: list[tuple[str, str]] = [
    (
        "idf_no_one",
        "The idf lacks its + 1 inside the logarithm: ln((N - n + 0.5) / (n + 0.5)) turns "
        "NEGATIVE for a term in more than half the documents, so matching a common word would "
        "lower a score. With + 1 (Lucene's idf, the one coursekit.align.BM25 uses) it stays "
        "positive." + _BM25_IDEA,
    ),
    (
        "no_length",
        "The length normalisation is missing: the denominator is tf + k1 * (1 - b + b * "
        "doc_len / avg_doc_len), so a term counts for less in a document longer than average "
        "(and for more in a shorter one). b = 0 switches that off; here b = 0.75." + _BM25_IDEA,
    ),
    (
        "plain_tf_idf",
        "That is plain tf * idf, which grows without limit with the count. BM25 saturates it: "
        "tf * (k1 + 1) / (tf + k1 * ...) approaches k1 + 1, so the tenth occurrence of a word "
        "adds far less than the first." + _BM25_IDEA,
    ),
    (
        "log10",
        "The idf uses log10: BM25 takes the natural logarithm (math.log, np.log), as "
        "coursekit.align.BM25 does; another base rescales every score." + _BM25_IDEA,
    ),
    (
        "no_k1_plus_1",
        "The factor (k1 + 1) in the numerator is missing: with it, a term that occurs once in a "
        "document of average length scores exactly its idf, and the saturation limit is "
        "(k1 + 1) * idf." + _BM25_IDEA,
    ),
    (
        "idf_n_over_df",
        "That idf is ln(N / n), the classic tf-idf weight. BM25's is "
        "ln((N - n + 0.5) / (n + 0.5) + 1), smoothed by the 0.5s and kept positive by the + 1."
        + _BM25_IDEA,
    ),
]

#: (tf, doc_len, avg_doc_len, n_docs, doc_freq, k1, b); k1 and b None: the defaults are used
_BM25_CASES: list[tuple[int, int, float, int, int, float | None, float | None]] = [
    (3, 12, 10.0, 50, 4, None, None),  # every mistake gives its own number here
    (1, 5, 10.0, 50, 4, None, None),  # a document shorter than average
    (2, 30, 12.5, 1000, 1, None, None),  # a rare term in a long document
    (4, 8, 8.0, 20, 20, None, None),  # a term in every document: a small positive idf
    (0, 9, 10.0, 50, 4, None, None),  # the term does not occur: 0
    (5, 20, 10.0, 100, 10, 1.2, 0.75),
    (2, 20, 10.0, 100, 60, 2.0, 0.0),  # b = 0: no length normalisation
    (2, 7, 10.0, 100, 10, 0.9, 1.0),
]


def _bm25_call(case: tuple[int, int, float, int, int, float | None, float | None]) -> str:
    tf, dl, avgdl, n, df, k1, b = case
    extra = "" if k1 is None else f", k1={k1}, b={b}"
    return f"bm25_term_score({tf}, {dl}, {avgdl}, {n}, {df}{extra})"


@exercise(
    "12.3",
    notebook=NB,
    title="One BM25 term",
    asks="bm25_term_score(tf, doc_len, avg_doc_len, n_docs, doc_freq, k1=1.5, b=0.75) -> float: "
    "one query term's BM25 score in one document, idf * tf * (k1 + 1) / (tf + k1 * (1 - b + "
    "b * doc_len / avg_doc_len)) with idf = ln((n_docs - doc_freq + 0.5) / (doc_freq + 0.5) + "
    "1), as coursekit.align.BM25 adds it up",
    difficulty=2,
    minutes=15,
    reference=_bm25_reference,
    also_correct={
        "NumPy": lambda tf, dl, avgdl, n, df, k1=1.5, b=0.75: (
            np.log1p((n - df + 0.5) / (df + 0.5))
            * tf
            * (k1 + 1)
            / (tf + k1 * (1 - b + b * dl / avgdl))
        ),
    },
    wrong_answers={
        "idf without the + 1": partial(_bm25, mistake="idf_no_one"),
        "no length normalisation": partial(_bm25, mistake="no_length"),
        "plain tf * idf": partial(_bm25, mistake="plain_tf_idf"),
        "log10 instead of ln": partial(_bm25, mistake="log10"),
        "(k1 + 1) dropped": partial(_bm25, mistake="no_k1_plus_1"),
        "idf = ln(N / n)": partial(_bm25, mistake="idf_n_over_df"),
    },
)
def check_bm25_term_score(answer: Any) -> None:
    """The score within relative 1e-9 on 8 cases with the default k1 = 1.5, b = 0.75 and with
    others: documents shorter and longer than average, a rare term, a term in every document
    (idf ln(1 + 0.5 / 20.5), small but positive), tf = 0 (score 0), b = 0 and b = 1; a float,
    a NumPy number or a one-element tensor.

    Rejects the idf without its + 1, no length normalisation, plain tf * idf, log10 instead of
    ln, the factor (k1 + 1) dropped, and the tf-idf weight ln(N / n).
    """
    expect_callable(answer, name="bm25_term_score")
    expect_signature(
        answer,
        "bm25_term_score(tf, doc_len, avg_doc_len, n_docs, doc_freq, k1=..., b=...)",
        "def bm25_term_score(tf, doc_len, avg_doc_len, n_docs, doc_freq, k1=1.5, b=0.75)",
        1,
        10,
        10.0,
        5,
        1,
        k1=1.5,
        b=0.75,
    )
    for case in _BM25_CASES:
        tf, dl, avgdl, n, df, k1, b = case
        kwargs: dict[str, float] = {} if k1 is None or b is None else {"k1": k1, "b": b}
        mistakes = [
            (_bm25(tf, dl, avgdl, n, df, **kwargs, mistake=mistake), hint)
            for mistake, hint in _BM25_MISTAKES
        ]
        call = _bm25_call(case)
        example = "return idf * tf * (k1 + 1) / (tf + norm)"
        value = as_number(answer(tf, dl, avgdl, n, df, **kwargs), name=call, example=example)
        expected = _bm25_reference(tf, dl, avgdl, n, df, **kwargs)
        expect_number(
            value,
            expected,
            name=call,
            rel_tol=1e-9,
            abs_tol=1e-12,
            example=example,
            hint="Very close, but not within 1e-9: compute in float64 (Python floats and math, "
            "or NumPy; a torch tensor made from a Python float is float32, about 7 digits)."
            if math.isclose(value, expected, rel_tol=1e-5)
            else "Compute the idf first, then the saturated, length-normalised term frequency."
            + _BM25_IDEA,
            mistakes=mistakes,
        )


# ------------------------------------------------------------------------------------------
# 12.4 the retrieval prompt


def _rag_reference(question: str, documents: Sequence[str], scores: Any, k: int) -> str:
    best_first = sorted(range(len(documents)), key=lambda i: float(scores[i]), reverse=True)
    return rag_prompt(question, [documents[i] for i in best_first[:k]])


def _rag(question: str, documents: Sequence[str], scores: Any, k: int, *, mistake: str) -> str:
    """The retrieval prompt with one of the usual mistakes."""
    order = [int(i) for i in np.argsort(np.asarray(scores, dtype=np.float64))]  # ascending
    picked = {
        "lowest": order[:k],
        "ascending_tail": order[-k:],  # the best k, worst first (and all of them when k = 0)
        "document_order": sorted(order[::-1][:k]),
        "k_plus_1": order[::-1][: k + 1],
        "k_minus_1": order[::-1][: k - 1],
        "ignore_k": order[::-1],
    }.get(mistake, order[::-1][:k])
    passages = [documents[i] for i in picked]
    if mistake == "question_first":
        return format_prompt(question) + "".join(f"{p}\n" for p in passages)
    return rag_prompt(question, passages)


_RAG_IDEA = (
    " Sort the document indices by score, highest first, keep the first k (all of them when k "
    "exceeds the number of documents, none when k = 0), and return rag_prompt(question, "
    "[documents[i] for i in those])."
)

_RAG_MISTAKES: list[tuple[str, str]] = [
    (
        "lowest",
        "These are the k LOWEST-scoring documents: a plain sort (or np.argsort) is ascending. "
        "Sort in descending order (reverse=True, or argsort of -scores) before taking the first "
        "k." + _RAG_IDEA,
    ),
    (
        "ascending_tail",
        "The right documents, but the worst of them first: argsort(...)[-k:] keeps the "
        "ascending order (and with k = 0, [-0:] is the WHOLE list). Reverse the ascending "
        "order first, then take [:k]." + _RAG_IDEA,
    ),
    (
        "document_order",
        "The right documents, but in the order they have in `documents`. List them by score, "
        "the best first: the passage most likely to hold the answer leads." + _RAG_IDEA,
    ),
    (
        "k_plus_1",
        "One passage too many: the prompt must hold exactly k passages (or all the documents "
        "when there are fewer than k)." + _RAG_IDEA,
    ),
    (
        "k_minus_1",
        "One passage too few: the prompt must hold exactly k passages. Watch out for k = 0: "
        "order[:k - 1] is order[:-1], nearly everything." + _RAG_IDEA,
    ),
    (
        "ignore_k",
        "Every document is in the prompt: keep only the k best. The notebook's ablation varies "
        "k to see how recall and distraction trade off." + _RAG_IDEA,
    ),
    (
        "question_first",
        "The question comes before the passages: rag_prompt puts the passages first, one per "
        "line, and ends with the question in the usual 'Q: ...\\nA: ' format, so that the "
        "model's answer follows right after it. Call rag_prompt(question, passages)." + _RAG_IDEA,
    ),
]

_RAG_SCORES = [5.0, 0.5, 9.0, 3.5, 7.25, 1.75]  # descending: documents 2, 4, 0, 3, 5, 1


def _rag_cases() -> list[tuple[str, list[str], Any, int]]:
    """(question, documents, scores, k); the first case tells every mistake apart."""
    facts = fact_qa(len(_RAG_SCORES), seed=12)
    documents = [f.text for f in facts]
    question = facts[4].question
    as_array = np.array(_RAG_SCORES)
    as_tensor = torch.tensor(_RAG_SCORES)
    other = [2.0, -1.0, 0.25, 3.0, -0.5, 1.5]  # BM25 scores are >= 0, but any order will do
    return [
        (question, documents, list(_RAG_SCORES), 3),
        (question, documents, as_array, 1),
        (question, documents, as_tensor, 0),  # closed book: the question alone
        (question, documents, list(_RAG_SCORES), 2),
        (question, documents, as_tensor, 6),  # all of them
        (question, documents, as_array, 9),  # more than there are: all of them
        (facts[1].question, documents, other, 4),
        (question, documents[:1], [0.3], 3),
    ]


def _indices_in(prompt: str, documents: Sequence[str]) -> list[int]:
    """The documents found in ``prompt``, by index, in the order they appear there."""
    return [
        i for _, i in sorted((prompt.find(d), i) for i, d in enumerate(documents) if d in prompt)
    ]


@exercise(
    "12.4",
    notebook=NB,
    title="Build the retrieval prompt",
    asks="rag_prompt_top_k(question, documents, scores, k) -> str: "
    "coursekit.data.instructions.rag_prompt(question, passages) with the k documents of "
    "highest score as passages, best first (none for k = 0, all of them when k exceeds their "
    "number); scores is a list, a 1-D array or a 1-D tensor, one score per document",
    difficulty=2,
    minutes=15,
    reference=_rag_reference,
    also_correct={
        "argsort of -scores": lambda question, documents, scores, k: rag_prompt(
            question,
            [documents[int(i)] for i in np.argsort(-np.asarray(scores, dtype=np.float64))[:k]],
        ),
        "sorted pairs": lambda question, documents, scores, k: rag_prompt(
            question,
            [d for _, d in sorted(zip(map(float, scores), documents), reverse=True)][:k],
        ),
    },
    wrong_answers={
        "lowest scores first (ascending sort)": partial(_rag, mistake="lowest"),
        "argsort()[-k:]: the best k, worst first": partial(_rag, mistake="ascending_tail"),
        "the top k in document order": partial(_rag, mistake="document_order"),
        "k + 1 passages": partial(_rag, mistake="k_plus_1"),
        "k - 1 passages": partial(_rag, mistake="k_minus_1"),
        "question before the passages": partial(_rag, mistake="question_first"),
        "k ignored: every document": partial(_rag, mistake="ignore_k"),
    },
)
def check_rag_prompt_top_k(answer: Any) -> None:
    """Six fact-store documents with distinct scores given as a list, a NumPy array or a
    tensor, k = 3, 1, 0 (the question alone), 2, 6 and 9 (all six), another question with
    negative scores and k = 4, and one document with k = 3: the string must equal rag_prompt
    of the k best documents, best first.

    Rejects the lowest scores first, the best k worst first (argsort()[-k:]), the best k in
    document order, k + 1 and k - 1 passages, every document whatever k, and the question
    before the passages.
    """
    expect_callable(answer, name="rag_prompt_top_k")
    expect_signature(
        answer,
        "rag_prompt_top_k(question, documents, scores, k)",
        "def rag_prompt_top_k(question, documents, scores, k)",
        "who?",
        ["a."],
        [1.0],
        1,
    )
    for question, documents, scores, k in _rag_cases():
        kind = {list: "a list", np.ndarray: "a NumPy array"}.get(type(scores), "a tensor")
        call = (
            f"rag_prompt_top_k(question, documents, scores, k={k}) ({len(documents)} "
            f"document{'s' if len(documents) > 1 else ''}, scores as {kind})"
        )
        scores_copy = scores.clone() if isinstance(scores, torch.Tensor) else scores.copy()
        got = answer(question, list(documents), scores_copy, k)
        if not isinstance(got, str):
            raise ExerciseFailure(
                f"{call} returned {a_type(got)}, not the prompt string.",
                hint="Return the text itself: rag_prompt(question, passages), a str.",
            )
        expected = _rag_reference(question, documents, scores, k)
        if got == expected:
            continue
        shown, best = _indices_in(got, documents), _indices_in(expected, documents)
        ranking = _indices_in(
            _rag_reference(question, documents, scores, len(documents)), documents
        )
        message = (
            f"{call}: the passages are right, but the text is not rag_prompt(question, passages)."
            if shown == best
            else f"{call}: the prompt's passages are documents {shown}, expected {best} (the "
            f"scores rank the documents {ranking}, best first)."
        )
        for mistake, hint in _RAG_MISTAKES:
            variant = _rag(question, documents, scores, k, mistake=mistake)
            if variant != expected and got == variant:
                raise ExerciseFailure(message, hint=hint)
        raise ExerciseFailure(
            message,
            hint="Build the prompt with rag_prompt(question, passages): each passage on its own "
            "line, then the question." + _RAG_IDEA,
        )


# ------------------------------------------------------------------------------------------
# quiz

quiz_question(
    "12.q1",
    notebook=NB,
    question="Instruction tuning fine-tunes a model on demonstrations (a prompt and a good "
    "answer written by people) with the ordinary next-token loss. RLHF then goes further: a "
    "reward model is fitted to human choices between two answers, and the policy is trained "
    "with reinforcement learning (e.g. PPO) to maximise that reward minus beta times the KL "
    "divergence from the SFT model. What is the KL penalty for?",
    options=[
        "It makes training faster: the KL term has larger gradients than the reward, so PPO "
        "needs fewer steps",
        "It stands in for the reward model: the distance to the SFT model alone tells the "
        "policy which answers people prefer",
        "It keeps the policy near the SFT model. The reward model is a learnt, imperfect "
        "proxy that is reliable only near the kind of answers it was fitted on; a policy left "
        "free to maximise it finds answers that score high and are bad (reward hacking: "
        "odd, repetitive or flattering text), and it drifts away from the fluent language the "
        "pre-trained and SFT model had. The penalty trades reward against staying where the "
        "reward model can be trusted",
        "It makes the policy reproduce the demonstrations word for word, as instruction tuning "
        "does, so that RLHF cannot change what SFT taught",
    ],
    answer=2,
    explanation="The reward model has seen only a few hundred thousand comparisons, so outside "
    "that region its scores mean little; pure reward maximisation exploits exactly those "
    "errors. Subtracting beta * KL(policy || SFT model) makes every move away from the SFT "
    "model's distribution cost something, so the policy improves the reward only where it can "
    "do so while staying close: its optimum is the SFT distribution reweighted by "
    "exp(reward / beta). (a) The penalty slows the policy down, if anything; it is there for "
    "the quality of the result, not for speed. (b) The KL term carries no information about "
    "preferences: on its own it would keep the policy exactly at the SFT model, and all the "
    "learning signal comes from the reward. (d) The KL is between distributions and allows "
    "change, at a price; copying demonstrations word for word is neither what it does nor "
    "what RLHF is for (it would make the RL stage pointless).",
)

quiz_question(
    "12.q2",
    notebook=NB,
    question="Direct preference optimisation (DPO) learns from the same preference pairs as "
    "RLHF's reward model, yet it trains no reward model and samples no answers during "
    "training. How can it do without both?",
    options=[
        "The best policy of RLHF's objective (reward minus beta times the KL to a reference) "
        "has a closed form, and solving it for the reward of a response y to a prompt x gives "
        "beta log(pi(y) / pi_ref(y)) plus a term that depends on x alone. Put into the "
        "Bradley-Terry likelihood of a pair, that term cancels: the loss -log sigmoid(beta (chosen "
        "log-ratio - rejected log-ratio)) needs only log-probabilities of the given responses "
        "under the policy and the frozen reference. The policy's log-ratio is an implicit "
        "reward, and nothing has to be generated",
        "It ignores the rejected responses and fine-tunes on the chosen ones with the usual "
        "SFT loss; that needs no reward",
        "The frozen reference model acts as the reward model: it scores each response, and "
        "the policy learns to maximise the reference's score",
        "The annotators give every response a numeric score, and DPO regresses the policy's "
        "log-probabilities onto those scores directly",
    ],
    answer=0,
    explanation="DPO turns preference learning into a classification loss on fixed data. "
    "Because the KL-regularised optimum ties reward and policy together, the reward model can "
    "be written in terms of the policy itself; the loss then compares how much more the "
    "policy (than the reference) likes the chosen response with how much more it likes the "
    "rejected one, using log-probabilities computed by one forward pass over responses already "
    "in the data set. The reference keeps the policy anchored as the KL did. (b) That is "
    "supervised fine-tuning on the chosen answers: it never uses the rejected ones, so it "
    "cannot learn what makes one answer better than the other. (c) The reference's "
    "likelihood is not a reward: it only sets the baseline each log-ratio is measured "
    "against, and maximising its score would just make the policy copy it. (d) Preference "
    "data are comparisons (this answer is better than that one), not scores, which is why the "
    "Bradley-Terry model is needed at all.",
)

quiz_question(
    "12.q3",
    notebook=NB,
    question="A model must answer questions about facts it never saw in training (new, private, "
    "or drawn at random like the notebook's fact store). Putting BM25-retrieved passages in "
    "its prompt raises its accuracy a lot. Which statement is right?",
    options=[
        "Retrieval makes the model memorise the facts: after a few prompts with the passages "
        "the weights hold them, and the passages can be dropped",
        "With retrieval the model can no longer hallucinate: whatever it answers is taken "
        "from the passages",
        "Retrieval only helps very large models; a small model cannot use a passage placed in "
        "its prompt",
        "A fact that is not in the weights cannot be recalled, so without context the model can "
        "only produce a plausible-sounding guess; with the fact in its prompt it reads or "
        "copies it instead, which even a small model learns to do. Retrieval cannot fix a "
        "wrong or missing passage (if the right fact is not among the top k, the model is "
        "back to guessing, or a wrong passage misleads it), and the model may still ignore or "
        "misread a passage that is there: accuracy is bounded by recall@k and by how "
        "faithfully the model uses its context",
    ],
    answer=3,
    explanation="Retrieval moves a fact from parameters, which must have memorised it, to the "
    "context, which the model only has to read; that is why it helps most for facts a model "
    "could not have learnt and why the facts can be updated without training. It leaves two "
    "failure points: the retriever (recall@k is the ceiling on accuracy) and the reader (a "
    "model can prefer what its weights say, or get distracted by irrelevant passages, more so "
    "as k grows). (a) Nothing is learnt at inference: the weights do not change when a prompt "
    "is read, so without the passage the fact is gone again. (b) The model still generates "
    "freely; it can ignore the passage, combine it wrongly, or make something up when the "
    "passage does not hold the answer. (c) Copying from the context is one of the easiest "
    "things for a transformer to learn; the notebook's tiny model does it.",
)

quiz_question(
    "12.q4",
    notebook=NB,
    question="A small fine-tuned GPT, decoding greedily (always the most likely next token), "
    "answers 'the king and the king and the king and the king and ...' until the length limit. "
    "Which change addresses the loop?",
    options=[
        "Add more layers and fine-tune again, still decoding greedily: a deeper model cannot "
        "fall into a loop",
        "Change the decoding: sample with a temperature (around 0.7 to 1) and top-p (nucleus) "
        "sampling, and/or penalise tokens that were already generated (a repetition penalty, "
        "or forbidding repeated n-grams). Greedy decoding is deterministic: once the context "
        "repeats, the argmax repeats with it, and every repetition makes the next one more "
        "likely; sampling or a penalty breaks the cycle without retraining",
        "Fine-tune again with a higher learning rate, so that the model learns faster what "
        "comes next",
        "Lower the temperature, to 0.1 say, so that the model is more confident in its choices",
    ],
    answer=1,
    explanation="Repetition loops are a property of the decoding rule as much as of the model: "
    "the argmax of a model that puts a little extra probability on what it has just seen "
    "walks into a cycle it cannot leave, since the same context always gives the same choice. "
    "Sampling lets a less likely token break the cycle, top-p keeps the sampled tokens "
    "sensible, and a repetition penalty lowers the scores of tokens already used. (a) Larger "
    "models loop less often, but greedy decoding of any size of model can loop, and retraining "
    "is the expensive way to try. (c) A higher learning rate changes how training goes (and "
    "may make it unstable); it does nothing for how the model is decoded. (d) Greedy decoding "
    "is already the limit of temperature going to 0; a low temperature makes sampling more "
    "greedy, and thus more prone to the same loop.",
)
