"""Checks and quiz for notebook 08 (T5, the text-to-text encoder-decoder)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache, partial
from typing import Any

import torch

from coursekit.data.span_corruption import random_spans_noise_mask, span_corrupt
from coursekit.data.text_to_text import TaskMixer, TextToTextTask
from coursekit.exercises.expect import (
    a_type,
    as_number,
    expect_callable,
    expect_close,
    expect_number,
    expect_shape,
    expect_signature,
    expect_tensor,
    expect_token_ids,
    expect_true,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.models.t5 import T5, T5Config, shift_right

NB = "08"


# ------------------------------------------------------------------------------------------
# 08.1 the parameter count of a tiny T5, by hand

#: the tiny T5 of the exercise (T5 v1.0: ReLU FFN, tied and scaled output)
_V, _D, _H, _L_ENC, _L_DEC, _D_FF, _BUCKETS = 4000, 128, 4, 2, 2, 512, 16

#: its config, for the tests: the exercise's count must equal its closed form and the model's
TINY_T5 = dict(
    vocab_size=_V,
    d_model=_D,
    n_heads=_H,
    n_encoder_layers=_L_ENC,
    n_decoder_layers=_L_DEC,
    d_ff=_D_FF,
    num_buckets=_BUCKETS,
    max_distance=64,
)


def _count(
    *,
    biases: bool = False,
    layer_norm: bool = False,
    table_per_layer: bool = False,
    tied: bool = True,
    cross_attention: bool = True,
    final_norms: bool = True,
) -> int:
    """T5 v1.0's parameter count of the tiny model, optionally with one piece mistaken."""
    d = _D
    attention = 4 * d * d + (4 * d if biases else 0)  # q, k, v, out (+ their biases)
    ffn = 2 * d * _D_FF + ((_D_FF + d) if biases else 0)
    norm = 2 * d if layer_norm else d  # RMSNorm: a gain only
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = encoder_layer + ((attention + norm) if cross_attention else 0)
    table = _BUCKETS * _H
    tables = (_L_ENC + _L_DEC) * table if table_per_layer else 2 * table
    total = _V * d + _L_ENC * encoder_layer + _L_DEC * decoder_layer + tables
    total += 2 * norm if final_norms else 0
    total += 0 if tied else d * _V
    return total


_PARAMS = _count()  # 1,431,168

_COUNT_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"biases": True},
        "T5 has NO biases: its attention projections and feed-forward matrices are plain "
        "matrices (bias=False). Drop the 4d per attention and the d_ff + d per FFN.",
    ),
    (
        {"layer_norm": True},
        "T5's norms are RMSNorms: a gain of d numbers and no bias (no mean is subtracted, so "
        "there is nothing to shift). Count d per norm, not 2d.",
    ),
    (
        {"table_per_layer": True},
        "The relative position bias table (num_buckets x n_heads = 16 x 4) belongs to the "
        "STACK: one for the encoder, one for the decoder, shared by all the layers of that "
        "stack. Count two tables, not one per layer.",
    ),
    (
        {"tied": False},
        "In T5 v1.0 the output layer reuses the shared embedding (tied): the 4000 x 128 matrix "
        "is counted once, for the encoder input, the decoder input and the output together.",
    ),
    (
        {"cross_attention": False},
        "Each DECODER layer has a second attention, the cross-attention over the encoder's "
        "output: another 4 d^2 and another RMSNorm gain of d, on top of what an encoder layer "
        "holds.",
    ),
    (
        {"final_norms": False},
        "Pre-norm stacks end with one more RMSNorm: add a final gain of d for the encoder and "
        "one for the decoder.",
    ),
]


@exercise(
    "08.1",
    notebook=NB,
    title="Count a tiny T5's parameters by hand",
    asks="The parameter count of T5Config(vocab_size=4000, d_model=128, n_heads=4, "
    "n_encoder_layers=2, n_decoder_layers=2, d_ff=512, num_buckets=16, max_distance=64): T5 "
    "v1.0, tied output (a number)",
    difficulty=1,
    minutes=10,
    reference=_PARAMS,
    also_correct={"as a float": float(_PARAMS)},
    wrong_answers={
        "biases in attention and FFN": _count(biases=True),
        "LayerNorms (2d) instead of RMSNorms (d)": _count(layer_norm=True),
        "one bias table per layer": _count(table_per_layer=True),
        "output matrix counted separately": _count(tied=False),
        "no cross-attention in the decoder": _count(cross_attention=False),
        "no final norms": _count(final_norms=False),
    },
)
def check_t5_parameter_count(answer: Any) -> None:
    """The exact count 1,431,168: shared embedding V d; per encoder layer 4d^2 + 2 d d_ff + 2d;
    per decoder layer another 4d^2 + d for the cross-attention; one 16 x 4 bias table and one
    final gain d per stack; the tied output counted once.

    Rejects biases in the attention and FFN, LayerNorms (2d) instead of RMSNorms, one bias
    table per layer, an untied output matrix, decoder layers without cross-attention, and
    missing final norms.
    """
    expect_number(
        answer,
        _PARAMS,
        name="answer",
        rel_tol=0.0,
        abs_tol=0.5,
        example="answer = 123_456",
        hint="Add up: the shared embedding V d; per encoder layer self-attention 4d^2, the FFN "
        "2 d d_ff and two RMSNorm gains of d; per decoder layer also a cross-attention 4d^2 "
        "and a third gain; per stack one bias table num_buckets x n_heads and a final gain d. "
        "No biases anywhere, and the output matrix is the shared embedding.",
        mistakes=[(_count(**kw), hint) for kw, hint in _COUNT_MISTAKES],
    )


# ------------------------------------------------------------------------------------------
# 08.2 span corruption, written out


def _corrupt(
    ids: Sequence[int],
    noise_mask: Sequence[bool],
    sentinel_ids: Sequence[int],
    *,
    per_token: bool = False,
    same_sentinel: bool = False,
    closing: bool = True,
    sentinels_in_targets: bool = True,
    drop_noise: bool = True,
) -> tuple[list[int], list[int]]:
    """Span corruption, optionally with one of the usual mistakes."""
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    for i, (token, noisy) in enumerate(zip(ids, noise_mask)):
        if not noisy:
            inputs.append(token)
            continue
        if per_token or i == 0 or not noise_mask[i - 1]:
            span += 1
            sentinel = sentinel_ids[0 if same_sentinel else span]
            inputs.append(sentinel)
            if sentinels_in_targets:
                targets.append(sentinel)
        if not drop_noise:
            inputs.append(token)
        targets.append(token)
    if closing and sentinels_in_targets:
        targets.append(sentinel_ids[0 if same_sentinel else span + 1])
    return inputs, targets


def _corrupt_reference(
    ids: Sequence[int], noise_mask: Sequence[bool], sentinel_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    return _corrupt(ids, noise_mask, sentinel_ids)


_CORRUPT_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"per_token": True},
        "One sentinel per SPAN, not per token: a run of consecutive noise tokens is replaced "
        "by a single sentinel in the inputs, and in the targets that sentinel is followed by "
        "all the tokens of the run. Start a new span only where a noise token follows a kept "
        "one (or opens the sequence).",
    ),
    (
        {"same_sentinel": True},
        "Each span gets its OWN sentinel, in order: the first span sentinel_ids[0], the next "
        "sentinel_ids[1], and so on (the closing one is the next unused id). With one sentinel "
        "for all spans the decoder cannot tell which gap a span fills.",
    ),
    (
        {"closing": False},
        "Close the targets with one more sentinel, the next unused one (sentinel_ids[k] after "
        "k spans): it marks the end of the last span.",
    ),
    (
        {"sentinels_in_targets": False},
        "The targets list each span AFTER its sentinel (sentinel_0, span 0's tokens, "
        "sentinel_1, span 1's tokens, ..., closing sentinel); the dropped tokens alone do not "
        "say which gap each of them fills.",
    ),
    (
        {"drop_noise": False},
        "The noise tokens must LEAVE the inputs: each span is replaced by its sentinel, not "
        "preceded by it. Otherwise the encoder sees the very tokens the decoder must predict.",
    ),
]

#: T5's sentinels are the last ids of its vocabulary, <extra_id_0> = 32099 counting down
_SENTINELS = [32099 - k for k in range(12)]


def _mask_of(text: str) -> list[bool]:
    return [c == "x" for c in text]


def _corrupt_cases() -> list[tuple[str, list[int], list[bool]]]:
    """(description, ids, noise_mask) for the check; in the masks 'x' is noise, '.' kept."""
    g = torch.Generator().manual_seed(82)
    long_mask = random_spans_noise_mask(
        40, noise_density=0.3, mean_noise_span_length=2.0, generator=g
    ).tolist()
    long_ids = torch.randint(3, 1000, (40,), generator=g).tolist()
    # Figure 2 of the T5 paper: Thank you [for inviting] me to your party [last] week .
    return [
        ("the paper's example", list(range(101, 112)), _mask_of("..xx....x..")),
        (
            "noise at the start and at the end",
            [7, 8, 9, 10, 11, 12, 13, 14, 15],
            _mask_of("xx..x..xx"),
        ),
        ("spans one kept token apart", [21, 22, 23, 24, 25, 26, 27, 28], _mask_of(".x.xx.x.")),
        ("a random mask of length 40", long_ids, [bool(m) for m in long_mask]),
    ]


def _as_ids(value: Any, what: str) -> list[int]:
    """A list of token ids from a list/tuple of integers or a 1-D integer tensor."""
    return expect_token_ids(
        value,
        name=what,
        hint="Build inputs and targets as lists and append the ids themselves (ints).",
    )


def _show(mask: Sequence[bool]) -> str:
    return "".join("x" if m else "." for m in mask)


@exercise(
    "08.2",
    notebook=NB,
    title="Span corruption, written out",
    asks="corrupt(ids, noise_mask, sentinel_ids) -> (inputs, targets): each noise span becomes "
    "one sentinel in the inputs; the targets list each sentinel and its span, then one closing "
    "sentinel",
    difficulty=2,
    minutes=20,
    reference=_corrupt_reference,
    wrong_answers={
        "one sentinel per noise token": partial(_corrupt, per_token=True),
        "the same sentinel for every span": partial(_corrupt, same_sentinel=True),
        "no closing sentinel": partial(_corrupt, closing=False),
        "targets without the sentinels": partial(_corrupt, sentinels_in_targets=False),
        "inputs keep the noise tokens": partial(_corrupt, drop_noise=False),
    },
)
def check_span_corruption(answer: Any) -> None:
    """Equal to coursekit.data.span_corruption.span_corrupt(ids, sentinel_ids=...,
    noise_mask=...) on the paper's example, noise at the very start and end, spans one kept
    token apart, and a random mask of length 40; lists or 1-D tensors are accepted.

    Rejects one sentinel per noise token, the same sentinel for every span, no closing
    sentinel, targets without their sentinels, and inputs that keep the noise tokens.
    """
    expect_callable(answer, name="corrupt")
    define = "def corrupt(ids, noise_mask, sentinel_ids)"
    expect_signature(answer, "corrupt(ids, noise_mask, sentinel_ids)", define, [], [], [])
    for case, ids, mask in _corrupt_cases():
        expected = span_corrupt(ids, sentinel_ids=_SENTINELS, noise_mask=mask)
        out = answer(list(ids), list(mask), list(_SENTINELS))
        if not (isinstance(out, tuple | list) and len(out) == 2):
            raise ExerciseFailure(
                f"corrupt should return a pair (inputs, targets), but it returned {a_type(out)}.",
                hint="End with `return inputs, targets`.",
            )
        got = (_as_ids(out[0], "inputs"), _as_ids(out[1], "targets"))
        where = f"On {case} (ids {ids}, noise mask {_show(mask)!r} where x = noise), "
        for part, name in ((0, "inputs"), (1, "targets")):
            if got[part] == expected[part]:
                continue
            message = f"{where}{name} are {got[part]}, expected {expected[part]}."
            for kw, hint in _CORRUPT_MISTAKES:
                variant = _corrupt(ids, mask, _SENTINELS, **kw)[part]
                if variant != expected[part] and got[part] == variant:
                    raise ExerciseFailure(message, hint=hint)
            raise ExerciseFailure(
                message,
                hint="Walk through the tokens: a kept token goes to the inputs; a noise token "
                "that starts a span (first token, or after a kept one) adds the next sentinel "
                "to BOTH lists; every noise token goes to the targets only. After the loop, "
                "append the next unused sentinel to the targets."
                if name == "targets"
                else "Walk through the tokens: a kept token goes to the inputs; at the start "
                "of each noise span put the span's sentinel (sentinel_ids[0], then [1], ...) "
                "in its place; the noise tokens themselves never go to the inputs.",
            )


# ------------------------------------------------------------------------------------------
# 08.3 mixing rates for multi-task training


def _mixing_reference(
    sizes: Mapping[str, int], temperature: float = 1.0, cap: int | None = None
) -> dict[str, float]:
    limit = math.inf if cap is None else cap
    weights = {name: min(n, limit) ** (1.0 / temperature) for name, n in sizes.items()}
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


def _mixing(
    sizes: Mapping[str, int],
    temperature: float = 1.0,
    cap: int | None = None,
    *,
    normalise: bool = True,
    power: str = "inverse",
    cap_where: str = "before",
) -> dict[str, float]:
    """Mixing rates, optionally with one of the usual mistakes."""
    limit = math.inf if cap is None or cap_where == "nowhere" else cap
    exponent = {"inverse": 1.0 / temperature, "temperature": temperature}.get(power, 1.0)
    if power == "equal":
        weights = {name: 1.0 for name in sizes}
    elif cap_where == "after":
        weights = {name: min(n**exponent, limit) for name, n in sizes.items()}
    else:
        weights = {name: min(n, limit) ** exponent for name, n in sizes.items()}
    total = sum(weights.values()) if normalise else 1.0
    return {name: w / total for name, w in weights.items()}


_MIXING_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"normalise": False},
        "Rates are probabilities: divide each weight min(n, K) ** (1 / T) by the sum of all the "
        "weights, so that they add up to 1.",
    ),
    (
        {"power": "equal"},
        "Examples-proportional mixing depends on the task sizes: rate_i ∝ min(n_i, K) ** (1/T). "
        "Equal rates are a different rule (TaskMixer(rate='equal')).",
    ),
    (
        {"power": "temperature"},
        "Raise to the power 1 / T, not T: a temperature above 1 must FLATTEN the rates towards "
        "equal mixing, while the power T sharpens them towards the largest task.",
    ),
    (
        {"power": "none"},
        "Use the temperature: rate_i ∝ min(n_i, K) ** (1 / T); with T = 2 the weights are "
        "square roots of the (capped) sizes.",
    ),
    (
        {"cap_where": "after"},
        "Cap the SIZES, then apply the temperature: min(n_i, K) ** (1 / T), not "
        "min(n_i ** (1 / T), K). K is a number of examples, so it is compared with n_i.",
    ),
    (
        {"cap_where": "nowhere"},
        "Apply the limit K: a task with more than K examples counts as if it had K, "
        "min(n_i, K), before anything else. cap=None means no limit.",
    ),
]

_TASK_SIZES = {"translation": 101995, "sentiment": 64036, "reverse": 20000}

_MIXING_CASES: list[tuple[dict[str, int], float, int | None]] = [
    (_TASK_SIZES, 1.0, None),
    (_TASK_SIZES, 2.0, None),
    (_TASK_SIZES, 1.0, 30000),
    (_TASK_SIZES, 3.0, 50000),
    ({"copy": 12, "sort": 3, "add": 40, "count": 7}, 1.5, 10),
]


@lru_cache(maxsize=16)
def _mixer_rates(
    sizes: tuple[tuple[str, int], ...], temperature: float, cap: int | None
) -> dict[str, float]:
    """TaskMixer's own rates for tasks of these sizes (examples that are all the same pair)."""
    tasks = [TextToTextTask(name, f"{name}: ", [("", "")] * n) for name, n in sizes]
    return TaskMixer(tasks, rate="proportional", temperature=temperature, max_examples=cap).rates()


def _same_rates(got: Mapping[str, float], expected: Mapping[str, float]) -> bool:
    return all(math.isclose(got[k], v, rel_tol=1e-6, abs_tol=1e-9) for k, v in expected.items())


@exercise(
    "08.3",
    notebook=NB,
    title="Mixing rates for multi-task training",
    asks="mixing_rates(sizes, temperature=1.0, cap=None) -> {task: probability}: "
    "examples-proportional mixing, rate_i ∝ min(n_i, K) ** (1/T), summing to 1",
    difficulty=2,
    minutes=15,
    reference=_mixing_reference,
    wrong_answers={
        "not normalised": partial(_mixing, normalise=False),
        "power T instead of 1/T": partial(_mixing, power="temperature"),
        "cap applied after the temperature": partial(_mixing, cap_where="after"),
        "equal rates": partial(_mixing, power="equal"),
        "temperature ignored": partial(_mixing, power="none"),
    },
)
def check_mixing_rates(answer: Any) -> None:
    """Equal to TaskMixer(tasks, rate="proportional", temperature=T, max_examples=K).rates()
    for three tasks of 101,995, 64,036 and 20,000 examples with (T, K) = (1, none), (2, none),
    (1, 30,000), (3, 50,000), and four small tasks with (1.5, 10); same keys, sum 1.

    Rejects rates that are not normalised, the power T instead of 1/T, the cap applied after
    the temperature, equal rates, and an ignored temperature (or cap).
    """
    expect_callable(answer, name="mixing_rates")
    define = "def mixing_rates(sizes, temperature=1.0, cap=None)"
    expect_signature(
        answer, "mixing_rates(sizes, temperature, cap)", define, dict(_TASK_SIZES), 1.0, None
    )
    for sizes, temperature, cap in _MIXING_CASES:
        expected = _mixer_rates(tuple(sizes.items()), temperature, cap)
        call = f"mixing_rates({sizes}, temperature={temperature}, cap={cap})"
        out = answer(dict(sizes), temperature, cap)
        if not isinstance(out, Mapping):
            raise ExerciseFailure(
                f"{call} should return a dict, but it returned {a_type(out)}.",
                hint="Return {task_name: rate} for every task of `sizes`.",
            )
        expect_true(
            sorted(out) == sorted(sizes),
            f"{call} has the keys {sorted(out)}, expected {sorted(sizes)}.",
            hint="Use the task names of `sizes` as the keys: one rate per task.",
        )
        got = {
            name: as_number(
                out[name], name=f"the rate of {name!r}", hint="Each rate is a float (a number)."
            )
            for name in sizes
        }
        if _same_rates(got, expected):
            continue
        shown = {name: round(value, 4) for name, value in got.items()}
        wanted = {name: round(value, 4) for name, value in expected.items()}
        message = f"{call} gives {shown}, expected {wanted}."
        for kw, hint in _MIXING_MISTAKES:
            if _same_rates(got, _mixing(sizes, temperature, cap, **kw)):
                raise ExerciseFailure(message, hint=hint)
        if not math.isclose(sum(got.values()), 1.0, abs_tol=1e-6):
            raise ExerciseFailure(message, hint=_MIXING_MISTAKES[0][1])
        raise ExerciseFailure(
            message,
            hint="For each task, the weight min(n, K) ** (1 / T) (n itself when cap is None); "
            "then divide every weight by their sum.",
        )


# ------------------------------------------------------------------------------------------
# 08.4 score candidate answers by their log-likelihood


def _ll_reference(model: Any, input_ids: torch.Tensor, label_ids: torch.Tensor) -> torch.Tensor:
    decoder_input_ids = shift_right(label_ids)  # decoder start id 0 first
    logits = model(input_ids, decoder_input_ids, attention_mask=input_ids != 0)
    log_probs = logits.log_softmax(dim=-1)
    token_ll = log_probs.gather(-1, label_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (token_ll * (label_ids != 0)).sum(dim=-1)


def _ll(
    model: Any,
    input_ids: torch.Tensor,
    label_ids: torch.Tensor,
    *,
    shift: bool = True,
    mask_padding: bool = True,
    reduce: str = "sum",
    score: str = "log_softmax",
) -> torch.Tensor:
    """The answers' scores, optionally with one of the usual mistakes."""
    decoder_input_ids = shift_right(label_ids) if shift else label_ids
    logits = model(input_ids, decoder_input_ids)
    scores = {
        "log_softmax": logits.log_softmax(-1),
        "softmax": logits.softmax(-1),
        "logits": logits,
    }[score]
    token = scores.gather(-1, label_ids.unsqueeze(-1)).squeeze(-1)
    real = label_ids != 0 if mask_padding else torch.ones_like(label_ids, dtype=torch.bool)
    if reduce == "prod":
        return token.masked_fill(~real, 1.0).prod(-1).detach()
    total = (token * real).sum(-1)
    return (total / real.sum(-1) if reduce == "mean" else total).detach()


_LL_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"shift": False},
        "Feed the decoder shift_right(label_ids) (the start id 0, then the answer without its "
        "last token), not label_ids: otherwise position t reads the very token it must "
        "predict, a leak that makes every answer look likely.",
    ),
    (
        {"mask_padding": False},
        "Leave the padding out: multiply the per-token log-probabilities by (label_ids != 0) "
        "before summing, so that only the answer's real tokens (its EOS included) count.",
    ),
    (
        {"reduce": "mean"},
        "Sum over the tokens, do not average: by the chain rule the SUM of log p(token | input, "
        "previous tokens) is the log-probability of the whole answer. A mean is a "
        "length-normalised score that no longer charges a long answer for its extra tokens.",
    ),
    (
        {"score": "softmax"},
        "Work with LOG-probabilities: log_softmax of the logits, gathered at the answer's "
        "tokens and summed. Probabilities do not add up along an answer (they multiply), and "
        "their product soon underflows.",
    ),
    (
        {"score": "softmax", "reduce": "prod"},
        "Return the LOG-probability: sum the log_softmax values of the answer's tokens instead "
        "of multiplying probabilities, which underflows to 0 for long answers.",
    ),
    (
        {"score": "logits"},
        "Apply log_softmax to the logits before gathering: a raw logit is not a "
        "log-probability (it is only defined up to a constant per position).",
    ),
]

#: the small T5 the check scores with (dropout 0, so train and eval mode agree)
_LL_CONFIG = T5Config(
    vocab_size=50,
    d_model=32,
    n_heads=4,
    n_encoder_layers=2,
    n_decoder_layers=2,
    d_ff=64,
    num_buckets=8,
    max_distance=16,
    dropout=0.0,
)


def _ll_batches() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(description, input_ids, label_ids): padded inputs, answers of different lengths."""
    inputs = torch.tensor(
        [[5, 17, 23, 8, 41, 1, 0], [12, 9, 33, 1, 0, 0, 0], [44, 3, 27, 19, 6, 30, 1]]
    )
    labels = torch.tensor([[7, 22, 1, 0, 0], [15, 1, 0, 0, 0], [38, 11, 26, 4, 1]])
    candidates = torch.tensor([[31, 9, 14, 1, 0, 0], [31, 1, 0, 0, 0, 0], [2, 45, 8, 20, 13, 1]])
    question = torch.tensor([[18, 36, 2, 29, 1]]).expand(3, -1).clone()
    return [
        ("three inputs with answers of 3, 2 and 5 tokens", inputs, labels),
        ("one input scored against three candidate answers", question, candidates),
    ]


@exercise(
    "08.4",
    notebook=NB,
    title="Score the answers instead of generating them",
    asks="label_log_likelihood(model, input_ids, label_ids) -> (B,): the sum of log p(token | "
    "input, previous answer tokens) over each answer's real tokens, teacher-forced",
    difficulty=3,
    minutes=25,
    reference=_ll_reference,
    wrong_answers={
        "labels fed to the decoder unshifted": partial(_ll, shift=False),
        "padding included in the sum": partial(_ll, mask_padding=False),
        "mean over the tokens": partial(_ll, reduce="mean"),
        "sum of probabilities": partial(_ll, score="softmax"),
        "product of probabilities": partial(_ll, score="softmax", reduce="prod"),
        "logits without log_softmax": partial(_ll, score="logits"),
    },
)
def check_label_log_likelihood(answer: Any) -> None:
    """Equal (within 1e-4) to log_softmax(model(input_ids, shift_right(labels))) gathered at
    the labels and summed over the non-padding tokens, for a small random T5 (d_model 32, 2+2
    layers, vocabulary 50) on padded inputs with answers of different lengths, and on one input
    with three candidate answers.

    Rejects labels fed to the decoder unshifted, padding included in the sum, a mean instead
    of a sum, probabilities (summed or multiplied) instead of log-probabilities, and logits
    gathered without log_softmax.
    """
    expect_callable(answer, name="label_log_likelihood")
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(84)
        model = T5(_LL_CONFIG).eval()
    batches = _ll_batches()
    expect_signature(
        answer,
        "label_log_likelihood(model, input_ids, label_ids)",
        "def label_log_likelihood(model, input_ids, label_ids)",
        model,
        batches[0][1],
        batches[0][2],
    )
    for case, input_ids, label_ids in batches:
        with torch.no_grad():
            expected = _ll_reference(model, input_ids, label_ids)
        got = answer(model, input_ids.clone(), label_ids.clone())
        name = f"label_log_likelihood on {case}"
        got = expect_tensor(got, name=name).detach()
        expect_shape(
            got,
            (input_ids.shape[0],),
            name=name,
            hint="Return one number per row, (B,): sum the per-token log-probabilities over the "
            "answer's positions (dim=-1).",
        )
        with torch.no_grad():
            mistakes = [
                (partial(_ll, model, input_ids, label_ids, **kw), hint) for kw, hint in _LL_MISTAKES
            ]
            expect_close(
                got,
                expected,
                name=name,
                atol=1e-4,
                rtol=1e-4,
                hint="Feed the decoder shift_right(label_ids); take log_softmax of the logits "
                "(B, T, V); gather the log-probability of each label token; zero the padding "
                "(label 0) and sum over the answer.",
                mistakes=mistakes,
            )


# ------------------------------------------------------------------------------------------
# quiz

quiz_question(
    "08.q1",
    notebook=NB,
    question="T5 casts every task, classification included, as text in and text out. What does "
    "that framing buy?",
    options=[
        "A smaller model than BERT with one classification head per task",
        "One model, one loss and one decoding procedure for every task: a prefix in the input "
        "says which task it is, and the answer is text the decoder writes, so a new task needs "
        "no new head",
        "Higher accuracy on classification, because writing the label's words is easier than "
        "choosing a class",
        "Training without teacher forcing, because the targets are short texts",
    ],
    answer=1,
    explanation="With every task as text to text, translation, classification and regression "
    "(a number written as text) share the same model, the same cross-entropy on the target "
    "text and the same decoding, and multi-task training is only a matter of mixing data. "
    "(a) An encoder-decoder is larger than an encoder with a head. (c) The framing is about "
    "uniformity, not accuracy: a class written as text is still one of a few strings. (d) The "
    "decoder is trained with teacher forcing as always, whatever the length of the targets.",
)

quiz_question(
    "08.q2",
    notebook=NB,
    question="In T5's span corruption pre-training, what does the decoder learn to write?",
    options=[
        "The whole original sequence, with the dropped spans filled back in",
        "One prediction per input position, the original token where a sentinel stands",
        "The number of tokens each sentinel replaced",
        "Only the dropped spans, each after its sentinel, closed by one more sentinel",
    ],
    answer=3,
    explanation="The targets hold each span's sentinel and its tokens, then a closing sentinel: "
    "about 0.15 L + 0.05 L + 1 tokens for a sequence of L tokens, so targets are short and "
    "pre-training is cheap. (a) is BART's objective: it rebuilds the whole input, targets as "
    "long as the text. (b) is BERT-style: one prediction per position, which an encoder-only "
    "model needs. (c) The span lengths are implicit: a span runs until the next sentinel.",
)

quiz_question(
    "08.q3",
    notebook=NB,
    question="Where does T5 get its information about word order?",
    options=[
        "From sinusoidal position embeddings added to the token embeddings, as in the 2017 "
        "Transformer",
        "From a learned bias per head and distance bucket in every attention, cross-attention "
        "included, with its own table in each layer",
        "From a learned scalar per head and distance bucket, added to the self-attention "
        "scores; one table per stack, shared by its layers; there are no position embeddings",
        "From rotary embeddings (RoPE) that turn the queries and keys by their position",
    ],
    answer=2,
    explanation="T5 adds a relative position bias to the attention scores: the distance between "
    "query and key is put in a bucket (exact for small distances, logarithmic beyond), and each "
    "head learns one scalar per bucket. The encoder and the decoder each have one table, "
    "computed once and shared by all their layers (bidirectional in the encoder, causal in the "
    "decoder). (b) Cross-attention gets no bias: the decoder's positions and the encoder's are "
    "different sequences, and there is one table per stack, not per layer. (a) and (d) are other "
    "models' choices: T5 has no position embeddings at all.",
)

quiz_question(
    "08.q4",
    notebook=NB,
    question="Three jobs: (1) classify short support tickets, with a tight latency budget; "
    "(2) an open-ended chat assistant; (3) translate or summarise documents, an output of a "
    "different form conditioned on an input. Which architecture families fit them best?",
    options=[
        "(1) encoder-only, (2) decoder-only, (3) encoder-decoder",
        "Encoder-decoder for all three: text-to-text covers every task, so the other families "
        "are never the better choice",
        "Decoder-only for all three: the largest models are decoder-only, so they are the best "
        "at every job",
        "(1) encoder-only, (2) encoder-decoder (the conversation goes to the encoder, the reply "
        "to the decoder), (3) decoder-only",
    ],
    answer=0,
    explanation="(1) A classifier needs one bidirectional pass and a small head: no decoding "
    "loop, the cheapest choice. (2) A chat is one growing text: prompt and reply share one "
    "causal stack and one cache, and decoder-only models scale and sample simply. (3) The input "
    "is read once, in both directions, and cross-attention conditions an output of a different "
    "form and length. (b) T5 can classify, but it pays for a decoder and a decoding loop where "
    "one encoder pass would do, and a chat would be encoded again at every turn. (c) A GPT can "
    "classify and translate from a prompt, but its causal attention reads the ticket or the "
    "source from left to right only, and a large one breaks the latency budget. (d) swaps the "
    "fits: an encoder reads the whole conversation in both directions, so it must encode it "
    "again at every turn, while a decoder-only translator has no separate, bidirectional "
    "reading of the source.",
)
