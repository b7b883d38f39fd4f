"""Checks and quiz of notebook 04: positional encodings."""

from __future__ import annotations

import copy
import math
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.exercises.expect import (
    expect_callable,
    expect_close,
    expect_integer,
    expect_number,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.layers import BlockConfig, TransformerBlock
from coursekit.long_context import extend_rope
from coursekit.positional import RotaryEmbedding, alibi_bias, apply_rope, sinusoidal_encoding

NB = "04"


# ------------------------------------------------------------------------------------------
# 04.1 the sinusoidal table


def _sinusoidal(
    n_positions: int,
    d_model: int,
    *,
    exponent: str = "2i",
    layout: str = "interleaved",
    first: str = "sin",
    start: int = 0,
) -> torch.Tensor:
    pos = torch.arange(start, start + n_positions, dtype=torch.float64)[:, None]
    pairs = torch.arange(d_model // 2, dtype=torch.float64)
    if exponent == "2i":
        omega = 10000.0 ** (-2 * pairs / d_model)
    else:  # "i": the pair index without its factor 2
        omega = 10000.0 ** (-pairs / d_model)
    sin, cos = torch.sin(pos * omega), torch.cos(pos * omega)
    if first == "cos":
        sin, cos = cos, sin
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    if layout == "interleaved":
        pe[:, 0::2], pe[:, 1::2] = sin, cos
    elif layout == "halves":
        pe[:, : d_model // 2], pe[:, d_model // 2 :] = sin, cos
    else:  # "channel": channel j uses its own index j in the exponent
        channel = torch.arange(d_model, dtype=torch.float64)
        angle = pos * 10000.0 ** (-channel / d_model)
        pe = torch.where(channel.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return pe


def _sinusoidal_reference(n_positions: int, d_model: int) -> torch.Tensor:
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    omega = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * omega)
    pe[:, 1::2] = torch.cos(pos * omega)
    return pe


_SIN_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"layout": "halves"},
        "Interleave: channel 2i holds the sine and channel 2i+1 the cosine of pair i "
        "(pe[:, 0::2] and pe[:, 1::2]), not sines in the first half and cosines in the second.",
    ),
    (
        {"exponent": "i"},
        "The exponent is 2i/d for pair i (i = 0 .. d/2 - 1), i.e. the EVEN channel index over "
        "d: torch.arange(0, d, 2) / d.",
    ),
    (
        {"layout": "channel"},
        "Both channels of a pair use the SAME angle pos / 10000^(2i/d): the cosine channel "
        "2i+1 does not get its own frequency.",
    ),
    ({"first": "cos"}, "Sine on the even channels (2i), cosine on the odd ones (2i+1)."),
    ({"start": 1}, "Positions start at 0: the first row is sin(0) = 0, cos(0) = 1."),
]


@exercise(
    "04.1",
    notebook=NB,
    title="The sinusoidal table",
    asks="Implement my_sinusoidal(n_positions, d_model): channel 2i = sin(pos / 10000^(2i/d)), "
    "channel 2i+1 = cos(...)",
    difficulty=1,
    minutes=10,
    reference=_sinusoidal_reference,
    wrong_answers={
        "sines then cosines in halves": partial(_sinusoidal, layout="halves"),
        "exponent i/d instead of 2i/d": partial(_sinusoidal, exponent="i"),
        "a frequency per channel": partial(_sinusoidal, layout="channel"),
        "cos on the even channels": partial(_sinusoidal, first="cos"),
        "positions from 1": partial(_sinusoidal, start=1),
    },
)
def check_sinusoidal(answer: Any) -> None:
    """Equals sinusoidal_encoding for (12, 8) and (5, 16).

    Rejects sines and cosines in two halves, the exponent i/d instead of 2i/d, a frequency per
    channel instead of per pair, sine and cosine swapped, and positions counted from 1.
    """
    expect_callable(answer, name="my_sinusoidal")
    for n, d in [(12, 8), (5, 16)]:
        pe = answer(n, d)
        expect_close(
            pe,
            sinusoidal_encoding(n, d, dtype=torch.float64),
            name=f"my_sinusoidal({n}, {d})",
            atol=1e-5,
            hint="Even channels take sin, odd ones cos, of the SAME angle pos / 10000^(2i/d) for "
            "the pair i.",
            mistakes=[(partial(_sinusoidal, n, d, **kw), hint) for kw, hint in _SIN_MISTAKES],
        )


# ------------------------------------------------------------------------------------------
# 04.2 predict a bucket


@exercise(
    "04.2",
    notebook=NB,
    title="Predict: a T5 bucket",
    asks="Bidirectional T5 buckets (32 buckets, max distance 128): which bucket holds a key 3 "
    "positions AFTER the query (relative position +3)?",
    difficulty=1,
    minutes=5,
    reference=19,
    also_correct={"a float": 19.0},
    wrong_answers={
        "no offset for keys after the query": 3,
        "offset of 32": 35,
        "counted backwards": 13,
        "off by one": 20,
        "a fraction that truncates to the answer": 19.5,
    },
)
def check_bucket(answer: Any) -> None:
    """19: keys after the query use buckets 16..31, and a distance below 8 gets its own bucket, 16 + 3.

    Rejects 3 (no offset), 35 (offset 32), 13, 20, and any non-integer.
    """
    value = expect_integer(answer, example="answer = 7")
    if value == 19:
        return
    hints = {
        3: "Bidirectional: half of the 32 buckets (16..31) are for keys AFTER the query, so "
        "their index starts at 16.",
        35: "32 buckets in all, shared by both directions: keys after the query start at "
        "32 // 2 = 16.",
        13: "Keys after the query are counted upwards from 16: 16 + distance.",
    }
    raise ExerciseFailure(
        f"bucket {value} is not right.",
        hint=hints.get(
            value,
            "Half the 32 buckets (16..31) are for keys after the query; distances below 8 get "
            "their own bucket: 16 + distance.",
        ),
    )


# ------------------------------------------------------------------------------------------
# 04.3 ALiBi by hand


def _alibi(
    n_heads: int,
    t: int,
    *,
    first_h: int = 1,
    sign: float = -1.0,
    absolute: bool = True,
    slopes_for: int | None = None,
    reverse: bool = False,
) -> torch.Tensor:
    n = slopes_for or n_heads
    slopes = torch.tensor([2.0 ** (-8.0 * h / n) for h in range(first_h, first_h + n_heads)])
    if reverse:
        slopes = slopes.flip(0)
    idx = torch.arange(t)
    distance = (idx[:, None] - idx[None, :]).float()
    if absolute:
        distance = distance.abs()
    return sign * slopes[:, None, None] * distance


def _alibi_reference(n_heads: int, t: int) -> torch.Tensor:
    slopes = torch.tensor([2.0 ** (-8.0 * h / n_heads) for h in range(1, n_heads + 1)])
    idx = torch.arange(t)
    distance = (idx[:, None] - idx[None, :]).abs().float()
    return -slopes[:, None, None] * distance


_ALIBI_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"first_h": 0},
        "h runs from 1 to n_heads: the first slope is 2^(-8/n), not 2^0 = 1.",
    ),
    ({"sign": 1.0}, "The bias is a PENALTY: -m_h |i - j|, negative away from the diagonal."),
    ({"absolute": False}, "Use the distance |i - j| (symmetric), not i - j."),
    (
        {"slopes_for": 8},
        "The slopes depend on the number of heads n: 2^(-8h/n), not the 8-head values "
        "1/2, 1/4, ... for every n.",
    ),
    ({"reverse": True}, "Head 1 gets the largest slope 2^(-8/n); the slopes then shrink."),
]


@exercise(
    "04.3",
    notebook=NB,
    title="ALiBi bias",
    asks="Implement my_alibi(n_heads, t): (n_heads, t, t) bias -m_h |i - j| with slopes "
    "m_h = 2^(-8 h / n_heads), h = 1..n_heads",
    difficulty=2,
    minutes=10,
    reference=_alibi_reference,
    wrong_answers={
        "h from 0": partial(_alibi, first_h=0),
        "positive bias": partial(_alibi, sign=1.0),
        "i - j without the absolute value": partial(_alibi, absolute=False),
        "the 8-head slopes for every n": partial(_alibi, slopes_for=8),
        "slopes in reverse order": partial(_alibi, reverse=True),
    },
)
def check_alibi(answer: Any) -> None:
    """Equals alibi_bias for 4, 8 and 2 heads over 5 positions.

    Rejects slopes counted from h = 0, in reverse or fixed at the 8-head values, a positive
    bias, and i - j without the absolute value.
    """
    expect_callable(answer, name="my_alibi")
    for n in (4, 8, 2):
        b = answer(n, 5)
        expect_close(
            b,
            alibi_bias(n, 5),
            name=f"my_alibi({n}, 5)",
            hint="Slopes are a geometric sequence starting (and multiplying) by 2^(-8/n); the "
            "bias is the slope times minus the distance |i - j|.",
            mistakes=[(partial(_alibi, n, 5, **kw), hint) for kw, hint in _ALIBI_MISTAKES],
        )


# ------------------------------------------------------------------------------------------
# 04.4 RoPE by hand: the loop over positions and pairs


def _rope(
    x: torch.Tensor,
    positions: torch.Tensor,
    *,
    sign: float = 1.0,
    pairs: str = "interleaved",
    exponent: str = "2i",
    ignore_positions: bool = False,
) -> torch.Tensor:
    d = x.shape[-1]
    i = torch.arange(d // 2, dtype=torch.float64)
    theta = 10000.0 ** (-(2 * i if exponent == "2i" else i) / d)
    pos = torch.arange(x.shape[0]) if ignore_positions else positions
    angle = sign * pos.double()[:, None] * theta
    if pairs == "interleaved":
        a, b = x[:, 0::2], x[:, 1::2]
    else:
        a, b = x[:, : d // 2], x[:, d // 2 :]
    ra, rb = (
        a * torch.cos(angle) - b * torch.sin(angle),
        a * torch.sin(angle) + b * torch.cos(angle),
    )
    out = torch.empty_like(x)
    if pairs == "interleaved":
        out[:, 0::2], out[:, 1::2] = ra, rb
    else:
        out[:, : d // 2], out[:, d // 2 :] = ra, rb
    return out


def _rope_reference(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angle = positions.double()[:, None] * theta
    a, b = x[:, 0::2], x[:, 1::2]
    out = torch.empty_like(x)
    out[:, 0::2] = a * torch.cos(angle) - b * torch.sin(angle)
    out[:, 1::2] = a * torch.sin(angle) + b * torch.cos(angle)
    return out


_ROPE_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"sign": -1.0},
        "You rotated the other way: for the pair (a, b) at angle t the result is "
        "(a cos t - b sin t, a sin t + b cos t).",
    ),
    (
        {"pairs": "halves"},
        "Pair neighbouring channels (2i, 2i+1), x[:, 0::2] with x[:, 1::2]; pairing channel i "
        "with i + d/2 is another layout (GPT-NeoX's).",
    ),
    (
        {"exponent": "i"},
        "Pair i turns at 10000^(-2i/d): torch.arange(0, d, 2) / d in the exponent.",
    ),
    (
        {"ignore_positions": True},
        "Use the positions you are given (positions[t] for row t), not 0 .. T-1.",
    ),
]


@exercise(
    "04.4",
    notebook=NB,
    title="RoPE: the loop over positions and pairs",
    asks="Implement my_rope(x, positions) with the loop written out: for each row t and pair i, "
    "rotate (x[t, 2i], x[t, 2i+1]) by the angle positions[t] * 10000^(-2i/d)",
    difficulty=2,
    minutes=15,
    reference=_rope_reference,
    wrong_answers={
        "rotates the wrong way": partial(_rope, sign=-1.0),
        "pairs channel i with i + d/2": partial(_rope, pairs="halves"),
        "exponent i/d": partial(_rope, exponent="i"),
        "ignores positions (uses 0 .. T-1)": partial(_rope, ignore_positions=True),
    },
)
def check_rope(answer: Any) -> None:
    """Equals apply_rope for x (6, 8) at positions 3, 0, 7, 1, 1, 10 (not 0 .. T-1).

    Rejects rotating the wrong way, pairing channel i with i + d/2, the exponent i/d, and
    ignoring the positions given.
    """
    expect_callable(answer, name="my_rope")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, 8, generator=g, dtype=torch.float64)
    pos = torch.tensor([3, 0, 7, 1, 1, 10])
    out = answer(x.clone(), pos.clone())
    expect_close(
        out,
        apply_rope(x, pos),
        name="my_rope(x, positions)",
        atol=1e-5,
        hint="For the pair (a, b) at angle t: (a cos t - b sin t, a sin t + b cos t).",
        mistakes=[(partial(_rope, x, pos, **kw), hint) for kw, hint in _ROPE_MISTAKES],
    )


# ------------------------------------------------------------------------------------------
# 04.5 predict a RoPE score


@exercise(
    "04.5",
    notebook=NB,
    title="Predict: what is position-dependent after RoPE?",
    asks="After RoPE, q_m . k_n depends on m and n only through ... ? Give the dot product for "
    "q = k = (1, 0), d = 2, theta = 1, m = 3, n = 1 (a number)",
    difficulty=2,
    minutes=5,
    reference=math.cos(2.0),
    also_correct={"three decimals": -0.416, "cos(-2)": math.cos(-2.0)},
    wrong_answers={
        "angle m + n": math.cos(4.0),
        "rotation ignored": 1.0,
        "degrees instead of radians": math.cos(math.radians(2.0)),
        "sine instead of cosine": math.sin(2.0),
        "each rotation's cosine multiplied": math.cos(3.0) * math.cos(1.0),
    },
)
def check_rope_dot(answer: Any) -> None:
    """cos(2) (within 1e-3): rotating q by 3 and k by 1 leaves them at an angle of m - n = 2 radians.

    Rejects cos(m + n), 1 (rotation ignored), cos of 2 degrees, sin(2), and cos(3) cos(1).
    """
    expect_number(
        answer,
        math.cos(2.0),
        rel_tol=0.0,
        abs_tol=1e-3,
        example="answer = math.cos(0.5)",
        hint="Rotating q by m and k by n leaves an angle of m - n between them; the dot product "
        "of two unit vectors is the cosine of their angle.",
        mistakes=[
            (
                math.cos(4.0),
                "The rotations partly cancel: the angle between q and k is m - n, not m + n.",
            ),
            (1.0, "RoPE rotates q by m and k by n radians: they are no longer parallel."),
            (
                math.cos(math.radians(2.0)),
                "Angles are in radians (theta = 1 per position): math.cos, not degrees.",
            ),
            (math.sin(2.0), "The dot product of two unit vectors is the COSINE of their angle."),
            (
                math.cos(3.0) * math.cos(1.0),
                "Rotate both full vectors and take their dot product: (cos 3, sin 3) . "
                "(cos 1, sin 1) has two terms.",
            ),
        ],
    )


# ------------------------------------------------------------------------------------------
# 04.6 ablation: position interpolation on the trained RoPE model


class _TinyRopeLM(nn.Module):
    """A one-block causal character model with a shared ``rotary``, to test 04.6 on.

    ids ``(B, T)`` -> logits ``(B, T, vocab)``; built like the notebook's ``TinyLM("rope")``.
    """

    def __init__(self, vocab: int = 11, d_model: int = 16, n_heads: int = 2) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d_model)
        self.rotary = RotaryEmbedding(d_model // n_heads)
        config = BlockConfig(d_model, n_heads, d_ff=2 * d_model, norm_first=True)
        self.block = TransformerBlock(config, rotary=self.rotary)
        self.out = nn.Linear(d_model, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.block(self.emb(ids), is_causal=True))


def _position_losses(
    model: nn.Module,
    windows: torch.Tensor,
    factor: float,
    *,
    method: str = "interpolation",
    reduce: str = "batch",
    in_place: bool = False,
    shifted: bool = True,
) -> torch.Tensor:
    if method == "times":  # positions multiplied by the factor instead of divided
        stretched = copy.deepcopy(model)
        rotary = stretched.rotary
        assert isinstance(rotary, RotaryEmbedding)
        rotary.scale = rotary.scale / factor
        rotary._refresh(rotary.cos.shape[0])
    else:
        target = model if in_place else copy.deepcopy(model)
        stretched = extend_rope(target, method=method, factor=factor)  # type: ignore[arg-type]
    with torch.no_grad():
        logits = stretched(windows[:, :-1])  # (B, T, V)
    targets = windows[:, 1:] if shifted else windows[:, :-1]
    loss = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T)
    if reduce == "all":
        return loss.mean()
    if reduce == "positions":
        return loss.mean(dim=1)
    return loss.mean(dim=0)


def _position_losses_reference(
    model: nn.Module, windows: torch.Tensor, factor: float
) -> torch.Tensor:
    stretched = extend_rope(copy.deepcopy(model), method="interpolation", factor=factor)
    with torch.no_grad():
        logits = stretched(windows[:, :-1])  # (B, T, V)
    loss = F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")  # (B, T)
    return loss.mean(dim=0)


_ABLATION_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"reduce": "all"},
        "Return one loss per POSITION, shape (T,): average over the windows (dim 0) only. One "
        "number for the whole window hides where the loss rises, which is the point.",
    ),
    (
        {"reduce": "positions"},
        "You averaged over the positions (dim 1) and kept one loss per window: average over the "
        "windows (dim 0) and keep the positions.",
    ),
    (
        {"method": "times"},
        "Position interpolation DIVIDES the positions by the factor (extend_rope with "
        "method='interpolation' does it), squeezing the long window into the trained range; you "
        "multiplied them.",
    ),
    (
        {"method": "ntk"},
        "That is NTK-aware base scaling (method='ntk'); this exercise measures position "
        "interpolation, method='interpolation'.",
    ),
    (
        {"shifted": False},
        "The target at position t is the NEXT character, windows[:, t + 1]: inputs "
        "windows[:, :-1], targets windows[:, 1:].",
    ),
]


@exercise(
    "04.6",
    notebook=NB,
    title="Ablation: position interpolation on a trained RoPE model",
    asks="Implement loss_per_position(model, windows, factor): the trained RoPE model's "
    "cross-entropy at each position (T,) of windows (B, T + 1), with its positions divided by "
    "factor (on a copy of the model); the notebook then runs it for several factors",
    difficulty=3,
    minutes=20,
    reference=_position_losses_reference,
    wrong_answers={
        "one loss for the whole window": partial(_position_losses, reduce="all"),
        "averaged over the positions, one loss per window": partial(
            _position_losses, reduce="positions"
        ),
        "positions multiplied by the factor": partial(_position_losses, method="times"),
        "NTK-aware base scaling instead": partial(_position_losses, method="ntk"),
        "targets not shifted": partial(_position_losses, shifted=False),
        "changes the trained model in place": partial(_position_losses, in_place=True),
    },
)
def check_position_losses(answer: Any) -> None:
    """Equals the reference on a random one-block RoPE model for factors 1 and 4, 3 windows of 21
    characters, and leaves the model it is given unchanged.

    Rejects one loss for the whole window, one loss per window, positions multiplied by the
    factor, NTK-aware base scaling, unshifted targets, and changing the model in place.
    """
    expect_callable(answer, name="loss_per_position")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        model = _TinyRopeLM().eval()
        windows = torch.randint(0, 11, (3, 21))
    for factor in (1.0, 4.0):
        got = answer(model, windows.clone(), factor)
        if model.rotary.scale != 1.0 or model.rotary.base != 10000.0:
            raise ExerciseFailure(
                f"loss_per_position(model, windows, {factor:g}) changed the model it was given "
                f"(its rotary now has scale {model.rotary.scale:g}, base {model.rotary.base:g}).",
                hint="Work on a copy (copy.deepcopy(model)): extend_rope changes a model in "
                "place, so the next factor would be applied on top of this one.",
            )
        expect_close(
            got,
            _position_losses_reference(model, windows, factor),
            name=f"loss_per_position(model, windows, {factor:g})",
            atol=1e-4,
            hint="On a copy of the model, extend_rope(copy, method='interpolation', "
            "factor=factor); logits of windows[:, :-1]; cross-entropy with reduction='none' "
            "against windows[:, 1:]; mean over dim 0.",
            mistakes=[
                (partial(_position_losses, model, windows, factor, **kw), hint)
                for kw, hint in _ABLATION_MISTAKES
            ],
        )


quiz_question(
    "04.q1",
    notebook=NB,
    question="You shuffle the tokens of a sentence and feed them to self-attention with no positional "
    "information. What happens to the outputs?",
    options=[
        "They are shuffled the same way (permutation equivariance)",
        "They are unchanged",
        "They become random",
        "They are reversed",
    ],
    answer=0,
    explanation="Each output is a weighted sum over a *set* of keys; permuting inputs just permutes "
    "outputs. Word order is invisible until we add positions.",
    feedback=[
        "",
        "Each output stays with its own token, so the outputs move with the tokens: as a set "
        "they are unchanged, but not in their order.",
        "Attention is deterministic: the same tokens give the same outputs, only in the shuffled "
        "order.",
        "Nothing in attention refers to order, so nothing can reverse it; the outputs follow "
        "whatever permutation the inputs had.",
    ],
)

quiz_question(
    "04.q2",
    notebook=NB,
    question="A GPT-2 model has 1,024 learned position embeddings. What happens at token 1,025?",
    options=[
        "It reuses position 0",
        "The sinusoid extends automatically",
        "There is no embedding for it: the model cannot process it without changes",
        "ALiBi takes over",
    ],
    answer=2,
    explanation="Learned absolute embeddings are a lookup table of fixed size; positions beyond it "
    "were never trained and do not exist.",
    feedback=[
        "Nothing wraps around: the table has rows 0 to 1,023, and looking up row 1,024 is an "
        "index error.",
        "GPT-2's position embeddings are learned, not sinusoidal: a learned table has no formula "
        "to extend.",
        "",
        "ALiBi is a different scheme, which a model has to be trained with; GPT-2 has nothing to "
        "fall back on.",
    ],
)

quiz_question(
    "04.q3",
    notebook=NB,
    question="Which scheme has no parameters and adds nothing to the token embeddings, yet makes a "
    "head attend less to a key the further it is from the query, at a fixed rate per head?",
    options=["Sinusoidal", "T5 relative bias", "RoPE", "ALiBi"],
    answer=3,
    explanation="ALiBi adds a fixed linear penalty with a per-head slope (1/2, 1/4, ... for 8 heads). "
    "T5's bias is learned per bucket; RoPE rotates q and k instead of adding a bias.",
    feedback=[
        "Sinusoidal encodings have no parameters, but they are added to the token embeddings.",
        "T5's relative bias is added to the scores, but it is learned: one value per distance "
        "bucket and head.",
        "RoPE rotates the queries and keys by their positions; it adds no penalty that grows "
        "with the distance.",
        "",
    ],
)

quiz_question(
    "04.q4",
    notebook=NB,
    question="Why does RoPE make the score depend only on the offset m - n?",
    options=[
        "Because it normalises q and k",
        "Rotations compose: R(m)^T R(n) = R(n - m), so q^T R(m)^T R(n) k only sees n - m",
        "Because it uses a learned table",
        "It does not; it encodes absolute position only",
    ],
    answer=1,
    explanation="Each channel pair is a 2-D rotation; the product of two rotation matrices is the "
    "rotation by the difference of the angles.",
    feedback=[
        "A rotation keeps a vector's length, but RoPE normalises nothing, and a length carries no "
        "position; the offset comes from how rotations compose.",
        "",
        "RoPE has no parameters: its angles are fixed functions of the position, like the "
        "sinusoids.",
        "q and k are each rotated by their absolute position, but in their dot product the two "
        "rotations combine into one by the difference.",
    ],
)
