"""Checks and quiz for notebook 07 (GPT, the decoder-only Transformer)."""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any

import torch

from coursekit.attention import MultiHeadAttention
from coursekit.exercises.expect import (
    a_type,
    expect_callable,
    expect_close,
    expect_number,
    expect_shape,
    expect_tensor,
    expect_true,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.models.gpt import GPTConfig

NB = "07"

# ------------------------------------------------------------------------------------------
# 07.1 the parameter count of the notebook's model, by hand

#: the model the notebook trains: nanoGPT's CPU sizes with GPT-2's recipe
_V, _BLOCK, _L, _D = 65, 64, 4, 128


def _count(
    *,
    positions: bool = True,
    tied: bool = True,
    biases: bool = True,
    norm_bias: bool = True,
    final_norm: bool = True,
    d_ff: int = 4 * _D,
) -> int:
    """GPT-2's parameter count for the notebook's model, optionally with one piece mistaken."""
    d = _D
    attn = 4 * d * d + (4 * d if biases else 0)
    ffn = 2 * d * d_ff + ((d_ff + d) if biases else 0)
    norm = 2 * d if norm_bias else d
    block = attn + ffn + 2 * norm
    total = _L * block + _V * d + (norm if final_norm else 0)
    total += _BLOCK * d if positions else 0
    total += 0 if tied else d * _V
    return total


_PARAMS = _count()

_COUNT_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"tied": False},
        "The output matrix is TIED to the token embedding (one 65 x 128 matrix used twice): "
        "count it once.",
    ),
    (
        {"positions": False},
        "GPT-2's positions are learned: a block_size x d_model table (64 x 128) of parameters.",
    ),
    (
        {"biases": False},
        "GPT-2's recipe has biases in every linear layer: 4d in the attention (q, k, v, out) and "
        "d_ff + d in the FFN.",
    ),
    (
        {"norm_bias": False},
        "A LayerNorm has a gain AND a bias: 2d parameters per norm (RMSNorm would have d).",
    ),
    (
        {"final_norm": False},
        "Pre-norm models add one more LayerNorm after the last block, before the output layer.",
    ),
    ({"d_ff": _D}, "The FFN is 4 times wider than the model: d_ff = 4 * 128 = 512."),
]


@exercise(
    "07.1",
    notebook=NB,
    title="Count the GPT's parameters by hand",
    asks="The parameter count of GPTConfig(vocab_size=65, block_size=64, n_layers=4, n_heads=4, "
    "d_model=128): GPT-2's recipe, tied output (a number)",
    difficulty=1,
    minutes=10,
    reference=_PARAMS,
    wrong_answers={
        "output matrix counted twice": _count(tied=False),
        "no position table": _count(positions=False),
        "no biases": _count(biases=False),
        "LayerNorm without its bias": _count(norm_bias=False),
        "no final norm": _count(final_norm=False),
        "d_ff = d": _count(d_ff=_D),
    },
)
def check_parameter_count(answer: Any) -> None:
    """The exact count 809,856 of the notebook's model (GPT-2's recipe, tied output).

    Rejects the output matrix counted twice, a missing position table, missing biases, LayerNorms
    without bias, no final norm, and an FFN of width d instead of 4d.
    """
    expect_number(
        answer,
        _PARAMS,
        name="answer",
        rel_tol=0.0,
        abs_tol=0.5,
        example="answer = 123_456",
        hint="Add up: token table V d + position table block_size d; per block the attention "
        "4d^2 + 4d, the FFN 2 d d_ff + d_ff + d and two LayerNorms of 2d; a final LayerNorm; "
        "the output matrix is the token table (tied).",
        mistakes=[(_count(**kw), hint) for kw, hint in _COUNT_MISTAKES],
    )


# ------------------------------------------------------------------------------------------
# 07.2 the top-p (nucleus) filter


def _top_p(
    logits: torch.Tensor,
    p: float,
    *,
    rule: str = "mass_before",
    ascending: bool = False,
    on_logits: bool = False,
    unsort: bool = True,
) -> torch.Tensor:
    """Nucleus filtering, optionally with one of the usual mistakes."""
    sorted_logits, order = logits.sort(dim=-1, descending=not ascending)
    probs = sorted_logits if on_logits else torch.softmax(sorted_logits, dim=-1)
    cum = probs.cumsum(-1)
    if rule == "mass_before":  # keep a token while the mass of the tokens before it is < p
        keep = (cum - probs) < p
    elif rule == "cum_le":  # keep while the running sum (itself included) is <= p
        keep = cum <= p
    else:
        raise ValueError(rule)
    filtered = sorted_logits.masked_fill(~keep, float("-inf"))
    if not unsort:
        return filtered
    return torch.full_like(logits, float("-inf")).scatter(-1, order, filtered)


def _top_p_reference(logits: torch.Tensor, p: float) -> torch.Tensor:
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    mass_before = probs.cumsum(-1) - probs
    sorted_logits = sorted_logits.masked_fill(mass_before >= p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


_TOP_P_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"rule": "cum_le"},
        "Keep the token that makes the running total REACH p: keep a token while the mass of "
        "the tokens BEFORE it is below p (cumsum - probs < p). Comparing the running total "
        "itself with p (cumsum <= p or < p) drops that token, and leaves nothing at all when "
        "the top token alone has more than p.",
    ),
    ({"ascending": True}, "Sort from the MOST likely token down (descending=True)."),
    (
        {"on_logits": True},
        "Accumulate probabilities (softmax of the sorted logits), not the logits themselves.",
    ),
    (
        {"unsort": False},
        "Return the logits in the vocabulary's order: scatter the filtered sorted values back "
        "with the sort's indices (token i must stay at position i).",
    ),
]


def _kept(x: torch.Tensor) -> torch.Tensor:
    return x > float("-inf")


def _check_filtered(got: Any, logits: torch.Tensor, expected: torch.Tensor, p: float) -> None:
    tensor = expect_tensor(got, name=f"top_p_filter(logits, p={p})")
    expect_shape(tensor, tuple(logits.shape), name=f"top_p_filter(logits, p={p})")
    tensor = tensor.detach().double()
    if torch.isnan(tensor).any() or (tensor == float("inf")).any():
        raise ExerciseFailure(
            f"top_p_filter(logits, p={p}) contains NaN or +inf.",
            hint="Set the logits outside the nucleus to float('-inf') and leave the others "
            "unchanged.",
        )
    if torch.equal(_kept(tensor), _kept(expected)):
        expect_close(
            tensor.masked_fill(~_kept(tensor), 0.0),
            expected.double().masked_fill(~_kept(expected), 0.0),
            name=f"the kept logits (p={p})",
            hint="Keep the logits of the nucleus exactly as they were (no softmax, no rescaling); "
            "only the others become -inf.",
        )
        return
    for kw, hint in _TOP_P_MISTAKES:
        if torch.equal(_kept(tensor), _kept(_top_p(logits, p, **kw))):
            raise ExerciseFailure(f"top_p_filter(logits, p={p}) keeps the wrong tokens.", hint=hint)
    n_got, n_want = _kept(tensor).sum(-1).tolist(), _kept(expected).sum(-1).tolist()
    raise ExerciseFailure(
        f"top_p_filter(logits, p={p}) keeps the wrong tokens: {n_got} per row, expected {n_want}.",
        hint="Sort the probabilities from the largest, and keep the smallest prefix whose total "
        "reaches p (at least one token); everything else gets -inf.",
    )


@exercise(
    "07.2",
    notebook=NB,
    title="The nucleus (top-p) filter",
    asks="top_p_filter(logits, p): -inf outside the smallest set of most likely tokens whose "
    "probability reaches p",
    difficulty=2,
    minutes=15,
    reference=_top_p_reference,
    wrong_answers={
        "drops the token that crosses p (cumsum <= p)": partial(_top_p, rule="cum_le"),
        "sorted ascending": partial(_top_p, ascending=True),
        "cumulative sum of logits, not probabilities": partial(_top_p, on_logits=True),
        "left in sorted order": partial(_top_p, unsort=False),
    },
)
def check_top_p(answer: Any) -> None:
    """Keeps exactly the nucleus (and its logits unchanged) for (B, V) logits and p = 0.5, 0.9,
    0.3 (where the top token alone exceeds p) and 1.0.

    Rejects dropping the token that crosses p, an ascending sort, a running sum of logits
    instead of probabilities, and results left in sorted order.
    """
    expect_callable(answer, name="top_p_filter")
    g = torch.Generator().manual_seed(70)
    cases = [(torch.randn(4, 12, generator=g) * 2, 0.9), (torch.randn(3, 30, generator=g), 0.5)]
    peaked = torch.randn(2, 10, generator=g)
    peaked[:, 3] += 4.0  # the top token alone holds more than p = 0.3
    cases += [(peaked, 0.3), (torch.randn(2, 7, generator=g), 1.0)]
    for logits, p in cases:
        got = answer(logits.clone(), p)
        _check_filtered(got, logits, _top_p_reference(logits, p), p)


# ------------------------------------------------------------------------------------------
# 07.3 an ablation: one change at a time, at equal compute


def _swiglu_width(d: int) -> int:
    return round(2 / 3 * 4 * d)


def _ablations_reference(base: Any) -> dict[str, Any]:
    return {
        "+RoPE": dataclasses.replace(base, positional="rope"),
        "+RMSNorm": dataclasses.replace(base, norm="rms"),
        "+SwiGLU": dataclasses.replace(base, activation="swiglu", d_ff=_swiglu_width(base.d_model)),
        "all": dataclasses.replace(
            base,
            positional="rope",
            norm="rms",
            activation="swiglu",
            d_ff=_swiglu_width(base.d_model),
            bias=False,
        ),
    }


def _ablations_wide_swiglu(base: Any) -> dict[str, Any]:
    out = _ablations_reference(base)
    out["+SwiGLU"] = dataclasses.replace(base, activation="swiglu")
    out["all"] = dataclasses.replace(out["all"], d_ff=base.d_ff)
    return out


def _ablations_two_changes(base: Any) -> dict[str, Any]:
    out = _ablations_reference(base)
    out["+RoPE"] = dataclasses.replace(base, positional="rope", norm="rms")
    return out


def _ablations_all_with_biases(base: Any) -> dict[str, Any]:
    out = _ablations_reference(base)
    out["all"] = dataclasses.replace(out["all"], bias=True)
    return out


def _ablations_fixed_width(base: Any) -> dict[str, Any]:
    out = _ablations_reference(base)
    out["+SwiGLU"] = dataclasses.replace(base, activation="swiglu", d_ff=341)
    out["all"] = dataclasses.replace(out["all"], d_ff=341)
    return out


def _ablations_in_place(base: Any) -> dict[str, Any]:
    """Edits the base config instead of copying it: every entry ends up the same object."""
    out = {}
    variants: list[tuple[str, dict[str, Any]]] = [
        ("+RoPE", dict(positional="rope")),
        ("+RMSNorm", dict(norm="rms")),
        ("+SwiGLU", dict(activation="swiglu", d_ff=_swiglu_width(base.d_model))),
        ("all", dict(bias=False)),
    ]
    for name, changes in variants:
        for key, value in changes.items():
            setattr(base, key, value)
        out[name] = base
    return out


_FIELDS = ("positional", "norm", "activation", "d_ff", "bias")


def _wanted(base: Any) -> dict[str, dict[str, Any]]:
    width = _swiglu_width(base.d_model)
    return {
        "+RoPE": {"positional": "rope"},
        "+RMSNorm": {"norm": "rms"},
        "+SwiGLU": {"activation": "swiglu", "d_ff": width},
        "all": {
            "positional": "rope",
            "norm": "rms",
            "activation": "swiglu",
            "d_ff": width,
            "bias": False,
        },
    }


@exercise(
    "07.3",
    notebook=NB,
    title="An ablation at equal compute",
    asks="ablations(base) -> configs that each switch one piece of the modern recipe on "
    "(+RoPE, +RMSNorm, +SwiGLU at about the same parameter count) and all of them together",
    difficulty=2,
    minutes=15,
    reference=_ablations_reference,
    wrong_answers={
        "SwiGLU at the full width 4d": _ablations_wide_swiglu,
        "+RoPE also switches the norm": _ablations_two_changes,
        "all together keeps the biases": _ablations_all_with_biases,
        "SwiGLU width hard-coded for d_model=128": _ablations_fixed_width,
        "edits the base config in place": _ablations_in_place,
    },
)
def check_ablations(answer: Any) -> None:
    """For two base configs (d_model 128 and 96): four new configs, each differing from the base
    in exactly its own fields; SwiGLU at d_ff = round(2/3 * 4 d) keeps the block's parameters
    within 1 %; the base is left unchanged.

    Rejects SwiGLU at full width, two changes in one row, "all" with biases, a width hard-coded
    for one d_model, and editing the base in place.
    """
    expect_callable(answer, name="ablations")
    for d in (128, 96):
        base = GPTConfig(vocab_size=65, block_size=64, n_layers=4, n_heads=4, d_model=d)
        before = base.to_dict()
        got = answer(base)
        if not isinstance(got, dict):
            raise ExerciseFailure(
                f"ablations(base) should return a dict, but it returned {a_type(got)}.",
                hint='Return {"+RoPE": ..., "+RMSNorm": ..., "+SwiGLU": ..., "all": ...}.',
            )
        expect_true(
            sorted(got) == sorted(_wanted(base)),
            f"the keys are {sorted(got)}, expected {sorted(_wanted(base))}.",
            hint='Use exactly the keys "+RoPE", "+RMSNorm", "+SwiGLU" and "all".',
        )
        expect_true(
            base.to_dict() == before and all(cfg is not base for cfg in got.values()),
            "the base config was changed: every ablation must be a new config, and the baseline "
            "must stay what it was.",
            hint="Copy with dataclasses.replace(base, field=value) (or base.replace(...)); never "
            "set attributes on base itself.",
        )
        for name, changes in _wanted(base).items():
            cfg = got[name]
            if not isinstance(cfg, GPTConfig):
                raise ExerciseFailure(
                    f'"{name}" is {a_type(cfg)}, not a GPTConfig.',
                    hint="Build each entry with dataclasses.replace(base, ...).",
                )
            if name == "+SwiGLU" and cfg.activation == "swiglu" and cfg.d_ff == base.d_ff:
                raise ExerciseFailure(
                    '"+SwiGLU" keeps d_ff = 4d: with its third matrix the FFN then has 50 % more '
                    "parameters and compute than the baseline's.",
                    hint="Shrink the width to round(2/3 * 4 * d_model) to compare at equal compute.",
                )
            if (
                cfg.activation == "swiglu"
                and cfg.d_ff != _swiglu_width(d)
                and cfg.d_ff != base.d_ff
            ):
                raise ExerciseFailure(
                    f'"{name}" has d_ff = {cfg.d_ff}, expected round(2/3 * 4 * {d}) = '
                    f"{_swiglu_width(d)}.",
                    hint="Compute the width from base.d_model: round(2 / 3 * 4 * base.d_model).",
                )
            if name == "all" and cfg.bias:
                raise ExerciseFailure(
                    '"all" keeps the biases: the modern recipe drops them too.',
                    hint='Add bias=False to "all" (RoPE, RMSNorm, SwiGLU and no biases).',
                )
            differs = {f: getattr(cfg, f) for f in _FIELDS if getattr(cfg, f) != getattr(base, f)}
            others = {k: v for k, v in cfg.to_dict().items() if k not in _FIELDS and before[k] != v}
            expect_true(
                differs == changes and not others,
                f'"{name}" changes {differs | others}, expected exactly {changes}.',
                hint="An ablation switches ONE piece on and keeps everything else as in the "
                'baseline; only "all" combines RoPE, RMSNorm, SwiGLU and bias=False.',
            )
        swiglu = got["+SwiGLU"].block_config().n_params()
        expect_true(
            abs(swiglu / base.block_config().n_params() - 1) < 0.01,
            "the SwiGLU block does not keep the baseline's parameter count.",
        )


# ------------------------------------------------------------------------------------------
# 07.4 causal self-attention for the block


def _attention(
    x: torch.Tensor,
    w_qkv: torch.Tensor,
    b_qkv: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    n_heads: int,
    *,
    mask: str = "causal",
    scale_by: str = "head",
    merge: str = "transpose",
    softmax_dim: int = -1,
    project: bool = True,
) -> torch.Tensor:
    b, t, d = x.shape
    dh = d // n_heads
    q, k, v = (x @ w_qkv.T + b_qkv).split(d, dim=-1)
    q, k, v = (z.view(b, t, n_heads, dh).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(dh if scale_by == "head" else d)
    if mask != "none":
        allowed = torch.ones(t, t, dtype=torch.bool).tril(0 if mask == "causal" else -1)
        scores = scores.masked_fill(~allowed, float("-inf"))
    out = torch.softmax(scores, dim=softmax_dim) @ v  # (B, H, T, dh)
    out = out.transpose(1, 2).reshape(b, t, d) if merge == "transpose" else out.reshape(b, t, d)
    return out @ w_out.T + b_out if project else out


def _attention_reference(
    x: torch.Tensor,
    w_qkv: torch.Tensor,
    b_qkv: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    b, t, d = x.shape
    dh = d // n_heads
    q, k, v = (x @ w_qkv.T + b_qkv).split(d, dim=-1)
    q, k, v = (z.view(b, t, n_heads, dh).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(dh)
    causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
    weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    return (weights @ v).transpose(1, 2).reshape(b, t, d) @ w_out.T + b_out


_ATTN_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"mask": "none"},
        "Position t may only look at positions <= t: set the scores above the diagonal to -inf "
        "before the softmax (torch.ones(T, T).tril() marks what is allowed).",
    ),
    (
        {"mask": "strict"},
        "Each position also attends to ITSELF: keep the diagonal (tril(), not tril(-1)); "
        "otherwise the first position has no key at all and its softmax is NaN.",
    ),
    (
        {"scale_by": "model"},
        "Scale the scores by 1 / sqrt(d_head), the size of ONE head (d_model / n_heads), not "
        "by sqrt(d_model).",
    ),
    (
        {"merge": "reshape"},
        "Before merging the heads, bring them back next to each other: (B, H, T, d_head) -> "
        "transpose(1, 2) -> (B, T, H, d_head) -> reshape(B, T, d_model). A reshape without the "
        "transpose mixes positions.",
    ),
    (
        {"softmax_dim": -2},
        "The softmax normalises over the KEYS, the last dimension of the scores (dim=-1).",
    ),
    (
        {"project": False},
        "Finish with the output projection: merged_heads @ w_out.T + b_out mixes the heads.",
    ),
]


@exercise(
    "07.4",
    notebook=NB,
    title="Causal self-attention for the block",
    asks="causal_self_attention(x, w_qkv, b_qkv, w_out, b_out, n_heads) with the fused q/k/v "
    "matrix, equal to the package's MultiHeadAttention(is_causal=True)",
    difficulty=3,
    minutes=25,
    reference=_attention_reference,
    wrong_answers={
        "no causal mask": partial(_attention, mask="none"),
        "mask without the diagonal": partial(_attention, mask="strict"),
        "scaled by sqrt(d_model)": partial(_attention, scale_by="model"),
        "heads merged without transposing back": partial(_attention, merge="reshape"),
        "softmax over the queries": partial(_attention, softmax_dim=-2),
        "no output projection": partial(_attention, project=False),
    },
)
def check_causal_self_attention(answer: Any) -> None:
    """Equal to MultiHeadAttention(d, h)(x, is_causal=True) with the same weights, for
    (B, T, d, h) = (2, 7, 32, 4), (1, 5, 24, 3) and (3, 1, 16, 2); the past never sees the future.

    Rejects a missing mask, a mask without the diagonal, scaling by sqrt(d_model), heads merged
    without transposing back, a softmax over the queries, and a missing output projection.
    """
    expect_callable(answer, name="causal_self_attention")
    for b, t, d, h in [(2, 7, 32, 4), (1, 5, 24, 3), (3, 1, 16, 2)]:
        with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
            torch.manual_seed(7 + t)
            attn = MultiHeadAttention(d, h).eval()
            with torch.no_grad():
                attn.qkv_proj.bias.normal_(0.0, 0.5)
                attn.out_proj.bias.normal_(0.0, 0.5)
            x = torch.randn(b, t, d)
        weights = (
            attn.qkv_proj.weight.detach(),
            attn.qkv_proj.bias.detach(),
            attn.out_proj.weight.detach(),
            attn.out_proj.bias.detach(),
        )
        with torch.no_grad():
            expected = attn(x, is_causal=True)
            got = answer(x.clone(), *weights, h)
        expect_close(
            got,
            expected,
            name=f"causal_self_attention on a {(b, t, d)} input with {h} heads",
            hint="q, k, v = (x @ w_qkv.T + b_qkv).split(d, -1); split each into heads "
            "(B, H, T, d/H); scores = q k^T / sqrt(d/H) with -inf above the diagonal; softmax "
            "over the keys; weights @ v; merge the heads back to (B, T, d); output projection.",
            mistakes=[
                (partial(_attention, x, *weights, h, **kw), hint) for kw, hint in _ATTN_MISTAKES
            ],
        )


# ------------------------------------------------------------------------------------------
# quiz

quiz_question(
    "07.q1",
    notebook=NB,
    question="Why does a decoder-only GPT have no cross-attention?",
    options=[
        "Cross-attention is too slow for long texts",
        "GPT uses learned positions, which cross-attention cannot handle",
        "There is no second sequence to attend to: the prompt and the continuation are one "
        "sequence, read with causal self-attention",
        "Cross-attention cannot be masked causally",
    ],
    answer=2,
    explanation="Cross-attention reads an encoder's output (the source sentence of a "
    "translation). A language model has only its own text: the prompt is simply the first part "
    "of the sequence it continues. (a) Cross-attention costs the same kind of work as "
    "self-attention; speed is not the reason. (b) Positions are added to the inputs and have "
    "nothing to do with it. (d) Masking is not the issue: a causal mask is only needed over a "
    "sequence that is being generated.",
)

quiz_question(
    "07.q2",
    notebook=NB,
    question="Cached generation gives exactly the same tokens as recomputing the whole context "
    "at every step. Why may the keys and values of past positions be kept?",
    options=[
        "With a causal mask, a position's keys and values depend only on the tokens up to it, "
        "so they never change when tokens are appended",
        "Keys and values are the same for every position",
        "The cache stores the logits, not the keys and values",
        "They may not: the cache is an approximation that is usually close enough",
    ],
    answer=0,
    explanation="Every layer's output at position i depends only on positions <= i, so its keys "
    "and values are final once computed; each new token only needs its own query, key and value. "
    "(b) Keys differ per position (they carry the token and its position). (c) Logits are not "
    "enough to continue: the next token attends to the keys and values of all layers. (d) It is "
    "exact, and the notebook asserts identical tokens (with learned positions the window slides "
    "past block_size and the cache is rebuilt, which keeps it exact).",
)

quiz_question(
    "07.q3",
    notebook=NB,
    question="Greedy decoding of the character model ends in a loop that repeats one line. "
    "Which change breaks the loop without retraining?",
    options=[
        "A longer prompt",
        "Temperature 0",
        "Keeping the top-k = 1 token",
        "Sampling (for example with top-p), or a repetition penalty",
    ],
    answer=3,
    explanation="Greedy decoding is deterministic: once the context repeats, the same argmax "
    "follows, forever. Sampling adds randomness that leaves the loop, and a repetition penalty "
    "lowers the logits of tokens already used. (a) A longer prompt only delays the loop. (b) "
    "Temperature 0 and (c) top-k = 1 are both exactly greedy decoding.",
)

quiz_question(
    "07.q4",
    notebook=NB,
    question="GPT-3 has 96 blocks of width d = 12,288 and a vocabulary of 50,257 tokens (175B "
    "parameters in all). About what share of its parameters sits in the blocks (about "
    "12 d^2 each) rather than in the embeddings?",
    options=["About half", "Over 99 %", "About 10 %", "About 75 %"],
    answer=1,
    explanation="12 x 96 x 12,288^2 is about 174 billion; the token table is 50,257 x 12,288, "
    "about 0.6 billion, and the position table 2,048 x 12,288, 25 million. The embeddings are "
    "under 0.5 %. (a), (c) and (d) would hold for small models: in the notebook's 0.8M-parameter "
    "model the blocks hold about 98 %, and in tiny ones with large vocabularies the embeddings "
    "can dominate.",
)
