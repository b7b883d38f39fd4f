"""Checks and quiz for notebook 09 (long contexts: sliding windows, chunked evaluation, RoPE)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch

from coursekit.exercises.expect import (
    a_type,
    expect_callable,
    expect_number,
    expect_signature,
    expect_tensor,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question
from coursekit.long_context import ntk_scaled_base, sliding_window_mask

NB = "09"


def _is_int(value: Any) -> bool:
    """An int (a Python or NumPy integer, or a one-element integer tensor), not a bool."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.is_floating_point() and value.dtype != torch.bool
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------
# 09.1 the sliding-window mask, with global tokens


def _window_reference(
    t: int, window: int, causal: bool = True, global_tokens: Sequence[int] = ()
) -> torch.Tensor:
    i = torch.arange(t).unsqueeze(1)  # query positions, a column
    j = torch.arange(t).unsqueeze(0)  # key positions, a row
    if causal:
        mask = (j <= i) & (j > i - window)  # itself and the window - 1 keys before it
    else:
        mask = (i - j).abs() < window  # window - 1 keys on each side
    is_global = torch.zeros(t, dtype=torch.bool)
    is_global[list(global_tokens)] = True
    touches_global = is_global.unsqueeze(1) | is_global.unsqueeze(0)  # a global row or column
    if causal:
        touches_global = touches_global & (j <= i)  # ... but never a key in the future
    return mask | touches_global


def _window(
    t: int,
    window: int,
    causal: bool = True,
    global_tokens: Sequence[int] = (),
    *,
    off_by_one: bool = False,
    ignore_causal: bool = False,
    wide_band: bool = False,
    globals_as: str = "both",
    global_full_row: bool = False,
) -> torch.Tensor:
    """The sliding-window mask, optionally with one of the usual mistakes."""
    causal = causal and not ignore_causal
    i = torch.arange(t).unsqueeze(1)
    j = torch.arange(t).unsqueeze(0)
    if causal:
        mask = (j <= i) & (j >= i - window if off_by_one else j > i - window)
    else:
        mask = (i - j).abs() <= window if wide_band else (i - j).abs() < window
    if globals_as == "none":
        return mask
    is_global = torch.zeros(t, dtype=torch.bool)
    is_global[list(global_tokens)] = True
    rows, cols = is_global.unsqueeze(1), is_global.unsqueeze(0)
    touches = rows.expand(t, t) if globals_as == "rows" else rows | cols
    if causal:
        touches = (rows | (cols & (j <= i))) if global_full_row else touches & (j <= i)
    return mask | touches


_MASK_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"off_by_one": True},
        "Off by one: with causal=True a query sees `window` keys IN ALL, itself included: "
        "i - window < j <= i (strictly greater than i - window). With j >= i - window each "
        "query sees window + 1 keys.",
    ),
    (
        {"ignore_causal": True},
        "With causal=True a query must not see the future: keep only the keys j <= i (the band "
        "i - window < j <= i). Your mask is the symmetric band |i - j| < window, the "
        "non-causal one.",
    ),
    (
        {"wide_band": True},
        "Without causality the band is |i - j| < window (window - 1 keys on each side, itself "
        "included), not |i - j| <= window, which gives 2 window + 1 keys per query.",
    ),
    (
        {"globals_as": "none"},
        "Add the global tokens: a position in global_tokens sees every key (its whole row) and "
        "is seen by every query (its whole column); with causal=True only the entries with "
        "j <= i of those rows and columns.",
    ),
    (
        {"globals_as": "rows"},
        "A global token works in BOTH directions: it sees every key (its row) AND every query "
        "sees it (its column). You only opened the rows; open the columns too (is_global[j]), "
        "so that every position can read the global token.",
    ),
    (
        {"global_full_row": True},
        "Under causality a global token still must not see the future: its row is open only up "
        "to the diagonal (j <= i), like every other row. AND the global rows and columns with "
        "the causal condition j <= i.",
    ),
]


#: (t, window, causal, global_tokens) in the order the check tries them
_MASK_CASES: list[tuple[int, int, bool, tuple[int, ...]]] = [
    (8, 3, True, ()),
    (8, 3, False, ()),
    (5, 8, True, ()),  # a sequence shorter than the window: the plain causal mask
    (5, 8, False, ()),
    (6, 1, True, ()),  # each query sees only itself
    (6, 1, False, ()),
    (12, 3, False, (0,)),  # a [CLS]-like first token
    (12, 3, True, (0,)),
    (16, 4, True, (0, 7)),
    (16, 4, False, (0, 7)),
]


def _as_mask(value: Any, t: int, call: str) -> torch.Tensor:
    """The answer as a bool (t, t) tensor; integer 0/1 tensors are converted."""
    tensor = expect_tensor(value, name=call).detach().cpu()
    if tuple(tensor.shape) != (t, t):
        raise ExerciseFailure(
            f"{call} has shape {tuple(tensor.shape)}, expected ({t}, {t}).",
            hint="Return one row per query and one column per key: a (t, t) tensor. Broadcasting "
            "a column of query positions torch.arange(t)[:, None] against a row of key "
            "positions torch.arange(t)[None, :] gives exactly that shape.",
        )
    if tensor.dtype == torch.bool:
        return tensor
    if tensor.is_floating_point() or tensor.is_complex():
        raise ExerciseFailure(
            f"{call} has dtype {tensor.dtype}; expected a boolean mask.",
            hint="Return a bool tensor, True = may attend (comparisons like j <= i give one; "
            "convert with .bool() if needed). An additive mask of 0 and -inf is built from it "
            "later, not here.",
        )
    if not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ExerciseFailure(
            f"{call} holds values other than 0 and 1: {sorted(set(tensor.flatten().tolist()))}.",
            hint="Return a bool tensor, True = may attend (or 1 / 0): combine the conditions with "
            "& and |, not + and *.",
        )
    return tensor == 1


def _show_pair(got: torch.Tensor, expected: torch.Tensor) -> str:
    wrong = (got != expected).nonzero()
    i, j = (int(x) for x in wrong[0])
    return (
        f"{len(wrong)} of {expected.numel()} entries are wrong, e.g. query {i}, key {j}: you "
        f"have {bool(got[i, j])}, expected {bool(expected[i, j])}"
    )


@exercise(
    "09.1",
    notebook=NB,
    title="The sliding-window mask",
    asks="window_mask(t, window, causal=True, global_tokens=()) -> bool (t, t), True = may "
    "attend: causal i - window < j <= i, else |i - j| < window; global positions see and are "
    "seen by every position (never the future when causal)",
    difficulty=2,
    minutes=15,
    reference=_window_reference,
    wrong_answers={
        "off by one: window + 1 keys": partial(_window, off_by_one=True),
        "causal ignored": partial(_window, ignore_causal=True),
        "non-causal band |i - j| <= window": partial(_window, wide_band=True),
        "global tokens ignored": partial(_window, globals_as="none"),
        "global tokens only as queries (rows)": partial(_window, globals_as="rows"),
        "global rows see the future": partial(_window, global_full_row=True),
    },
    also_correct={
        "an integer 0/1 mask": lambda t, window, causal=True, global_tokens=(): _window_reference(
            t, window, causal, global_tokens
        ).long(),
    },
)
def check_window_mask(answer: Any) -> None:
    """Equal to coursekit.long_context.sliding_window_mask(t, window, causal=..., global_tokens=...)
    for (t, window) = (8, 3), (5, 8) (shorter than the window), (6, 1), with global tokens (0,)
    at (12, 3) and (0, 7) at (16, 4), each causal and not; integer 0/1 masks are accepted.

    Rejects a causal band of window + 1 keys, causality ignored, the non-causal band
    |i - j| <= window, global tokens ignored or opened only as queries (rows), and global rows
    that see the future under causality.
    """
    expect_callable(answer, name="window_mask")
    define = "def window_mask(t, window, causal=True, global_tokens=())"
    expect_signature(
        answer,
        "window_mask(t, window, causal=..., global_tokens=...)",
        define,
        8,
        3,
        causal=True,
        global_tokens=(),
    )
    for t, window, causal, global_tokens in _MASK_CASES:
        expected = sliding_window_mask(t, window, causal=causal, global_tokens=global_tokens)
        call = f"window_mask({t}, {window}, causal={causal}, global_tokens={global_tokens})"
        got = _as_mask(answer(t, window, causal=causal, global_tokens=global_tokens), t, call)
        if torch.equal(got, expected):
            continue
        message = f"{call} differs from the expected mask: {_show_pair(got, expected)}."
        for kw, hint in _MASK_MISTAKES:
            variant = _window(t, window, causal, global_tokens, **kw)
            if not torch.equal(variant, expected) and torch.equal(got, variant):
                raise ExerciseFailure(message, hint=hint)
        raise ExerciseFailure(
            message,
            hint="Build a column of query positions i = torch.arange(t)[:, None] and a row of key "
            "positions j = torch.arange(t)[None, :]. The band is (j <= i) & (j > i - window) when "
            "causal, (i - j).abs() < window otherwise. Then OR in the global rows and columns "
            "(AND-ed with j <= i when causal).",
        )


# ------------------------------------------------------------------------------------------
# 09.2 count the scores of a causal sliding window

_T, _W = 4096, 512
_SCORES = sum(min(i + 1, _W) for i in range(_T))  # 512 * 513 / 2 + (4096 - 512) * 512

_SCORE_MISTAKES: list[tuple[float, str]] = [
    (
        _T * _W,
        "T * w counts a full window of 512 keys for every query, but under causality query i "
        "has only i + 1 keys to look at: the first 511 queries see fewer than 512. Count "
        "min(i + 1, w) per query (or subtract the w (w - 1) / 2 missing ones).",
    ),
    (
        _T * (_T + 1) // 2,
        "That is FULL causal attention (query i sees all i + 1 earlier keys). With the window, "
        "query i sees at most w = 512 keys: min(i + 1, 512).",
    ),
    (
        _T * _T,
        "T^2 is full bidirectional attention. The window is causal and narrow: query i scores "
        "min(i + 1, 512) keys.",
    ),
    (
        _T * (2 * _W - 1),
        "T (2w - 1) is a bidirectional window (w - 1 keys on each side). Causal sliding-window "
        "attention looks only backwards: itself and up to w - 1 keys before it.",
    ),
    (
        _W * (_W + 1) // 2,
        "That counts only the first 512 queries (the triangle where the window is not full "
        "yet). The other 4096 - 512 queries each score a full window of 512 keys: add them.",
    ),
]


@exercise(
    "09.2",
    notebook=NB,
    title="Count the scores of a sliding window",
    asks="The number of attention scores (allowed query-key pairs) per layer and head of causal "
    "sliding-window attention with window w = 512 over T = 4096 tokens (a number)",
    difficulty=1,
    minutes=10,
    reference=_SCORES,
    also_correct={
        "as a float": float(_SCORES),
        "as a one-element tensor (a mask's sum)": torch.tensor(_SCORES),
    },
    wrong_answers={
        "T * w, full windows for every query": _T * _W,
        "full causal attention T (T + 1) / 2": _T * (_T + 1) // 2,
        "full attention T^2": _T * _T,
        "bidirectional window T (2w - 1)": _T * (2 * _W - 1),
        "only the first w queries, w (w + 1) / 2": _W * (_W + 1) // 2,
    },
)
def check_window_score_count(answer: Any) -> None:
    """The exact count 1,966,336 = sum over i of min(i + 1, 512) = 512 * 513 / 2 + 3584 * 512
    (= T w - w (w - 1) / 2), the number of True entries of sliding_window_mask(4096, 512).

    Rejects T w (every query with a full window), full causal attention T (T + 1) / 2, full
    attention T^2, a bidirectional window T (2w - 1), and the first w queries' triangle only.
    """
    expect_number(
        answer,
        _SCORES,
        name="answer",
        rel_tol=0.0,
        abs_tol=0.5,
        example="answer = 1_234_567",
        hint="Query i (counting from 0) scores itself and the keys before it, at most w = 512 in "
        "all: min(i + 1, 512). Add that up over the 4096 queries: a triangle for the first 512, "
        "then full windows.",
        mistakes=_SCORE_MISTAKES,
    )


# ------------------------------------------------------------------------------------------
# 09.3 chunks with overlap for evaluating a long text


def _check_chunk_args(n_tokens: int, window: int, stride: int) -> None:
    if n_tokens < 1 or window < 1 or not 0 < stride <= window:
        raise ValueError(
            f"need n_tokens >= 1 and 0 < stride <= window, got n_tokens={n_tokens}, "
            f"window={window}, stride={stride}."
        )


def _chunks_reference(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    _check_chunk_args(n_tokens, window, stride)
    spans = []
    prev_end = 0
    for start in range(0, n_tokens, stride):
        end = min(start + window, n_tokens)
        spans.append((start, end, prev_end))  # score [prev_end, end): the tokens not yet scored
        prev_end = end
        if end == n_tokens:
            break
    return spans


def _chunks(
    n_tokens: int,
    window: int,
    stride: int,
    *,
    step: str = "stride",
    first: str = "prev_end",
    stop: str = "reach_end",
) -> list[tuple[int, int, int]]:
    """Chunk spans, optionally with one of the usual mistakes."""
    spans: list[tuple[int, int, int]] = []
    prev_end = 0
    last = n_tokens - window if stop == "full_windows" else n_tokens
    for start in range(0, last, window if step == "window" else stride):
        end = min(start + window, n_tokens)
        if first == "start":
            first_scored = start
        elif first == "prev_end_minus_1" and spans:
            first_scored = prev_end - 1
        else:
            first_scored = prev_end
        spans.append((start, end, first_scored))
        prev_end = end
        if end == n_tokens:
            break
    return spans


_CHUNK_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"step": "window"},
        "The chunks must OVERLAP: chunk k starts at k * stride, not k * window. With a stride "
        "below the window, each chunk re-reads window - stride tokens it does not score, so "
        "that the tokens it does score have left context.",
    ),
    (
        {"first": "start"},
        "Tokens are scored twice: with first_scored = start every chunk re-scores the overlap "
        "that the chunk before it already scored. Score only the new tokens: first_scored is "
        "the previous chunk's end (0 for the first chunk).",
    ),
    (
        {"stop": "full_windows"},
        "The tail is missing: the loop stops before the chunk that reaches n_tokens. Keep "
        "going while start < n_tokens, cut the last chunk at end = min(start + window, "
        "n_tokens), and stop right after the chunk whose end is n_tokens.",
    ),
    (
        {"first": "prev_end_minus_1"},
        "Off by one: first_scored is exactly the previous chunk's end (ranges are half-open, "
        "[start, end)), not end - 1, which scores the token at end - 1 a second time.",
    ),
]

#: (n_tokens, window, stride) in the order the check tries them
_CHUNK_CASES: list[tuple[int, int, int]] = [
    (10, 4, 2),
    (23, 8, 3),  # n_tokens not a multiple of the stride
    (20, 5, 5),  # stride == window: no overlap
    (3, 8, 2),  # a text shorter than the window: one chunk
    (1, 4, 1),
    (100, 32, 16),
    (17, 6, 4),
    (37, 12, 5),
]


def _as_spans(value: Any, call: str) -> list[tuple[int, int, int]]:
    """The answer as a list of (start, end, first_scored) int triples."""
    if not isinstance(value, list | tuple):
        raise ExerciseFailure(
            f"{call} should return a list of (start, end, first_scored) triples, but it "
            f"returned {a_type(value)}.",
            hint="Collect the triples in a list: spans.append((start, end, first_scored)), and "
            "`return spans` at the end.",
        )
    out = []
    for item in value:
        if not (isinstance(item, list | tuple) and len(item) == 3 and all(map(_is_int, item))):
            shown = repr(item)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise ExerciseFailure(
                f"{call} holds {shown}, not a triple of ints (start, end, first_scored).",
                hint="Append one tuple of three ints per chunk: (start, end, first_scored).",
            )
        start, end, first = (int(x) for x in item)
        out.append((start, end, first))
    return out


def _scored_counts(spans: list[tuple[int, int, int]], n_tokens: int) -> list[int]:
    counts = [0] * n_tokens
    for _, end, first in spans:
        for p in range(max(first, 0), min(end, n_tokens)):
            counts[p] += 1
    return counts


def _show_spans(spans: list[tuple[int, int, int]]) -> str:
    return str(spans) if len(spans) <= 8 else f"{spans[:3]} ... {spans[-2:]} ({len(spans)} chunks)"


@exercise(
    "09.3",
    notebook=NB,
    title="Chunks with overlap",
    asks="chunk_spans(n_tokens, window, stride) -> [(start, end, first_scored), ...]: chunks "
    "start at 0, stride, 2 stride, ...; end = min(start + window, n_tokens); score the tokens "
    "[first_scored, end) with first_scored = the previous chunk's end (0 first); stop after "
    "the chunk that reaches n_tokens",
    difficulty=2,
    minutes=20,
    reference=_chunks_reference,
    also_correct={
        "lists instead of tuples": lambda n_tokens, window, stride: [
            list(span) for span in _chunks_reference(n_tokens, window, stride)
        ],
    },
    wrong_answers={
        "no overlap: starts advance by the window": partial(_chunks, step="window"),
        "tokens scored twice: first_scored = start": partial(_chunks, first="start"),
        "last chunk missing": partial(_chunks, stop="full_windows"),
        "first_scored = previous end - 1": partial(_chunks, first="prev_end_minus_1"),
    },
)
def check_chunk_spans(answer: Any) -> None:
    """Equal to Hugging Face's perplexity-with-stride loop for (n_tokens, window, stride) =
    (10, 4, 2), (23, 8, 3), (20, 5, 5) (no overlap), (3, 8, 2) (shorter than the window),
    (1, 4, 1), (100, 32, 16), (17, 6, 4), (37, 12, 5): every token scored exactly once, with
    as much left context as the window allows; lists of tuples or of lists are accepted.

    Rejects chunks that do not overlap (starts advancing by the window), tokens scored twice
    (first_scored = start), a missing last chunk, and first_scored = previous end - 1.
    """
    expect_callable(answer, name="chunk_spans")
    expect_signature(
        answer,
        "chunk_spans(n_tokens, window, stride)",
        "def chunk_spans(n_tokens, window, stride)",
        10,
        4,
        2,
    )
    for n_tokens, window, stride in _CHUNK_CASES:
        expected = _chunks_reference(n_tokens, window, stride)
        call = f"chunk_spans({n_tokens}, {window}, {stride})"
        got = _as_spans(answer(n_tokens, window, stride), call)
        if got == expected:
            continue
        message = f"{call} gives {_show_spans(got)}, expected {_show_spans(expected)}."
        for kw, hint in _CHUNK_MISTAKES:
            variant = _chunks(n_tokens, window, stride, **kw)
            if variant != expected and got == variant:
                raise ExerciseFailure(message, hint=hint)
        counts = _scored_counts(got, n_tokens)
        if any(c > 1 for c in counts):
            twice = counts.index(max(counts))
            raise ExerciseFailure(
                message + f" Token {twice} is scored {max(counts)} times.",
                hint=_CHUNK_MISTAKES[1][1],
            )
        if any(c == 0 for c in counts):
            missed = counts.index(0)
            raise ExerciseFailure(
                message + f" Token {missed} is never scored.",
                hint="Every token must be scored once: the chunks' scored ranges "
                "[first_scored, end) must follow each other with no gap, from 0 to n_tokens.",
            )
        raise ExerciseFailure(
            message,
            hint="for start in range(0, n_tokens, stride): end = min(start + window, n_tokens); "
            "append (start, end, prev_end); prev_end = end; break once end == n_tokens. The "
            "first chunk has prev_end = 0.",
        )


# ------------------------------------------------------------------------------------------
# 09.4 the NTK-aware RoPE base


def _ntk_reference(base: float, head_dim: int, factor: float) -> float:
    # the slowest pair's speed base^(-(d-2)/d) must become factor times slower
    return float(base * factor ** (head_dim / (head_dim - 2)))


_NTK_IDEA = (
    " The idea: pair i turns at the speed base^(-2i/d). The fastest pair (i = 0, speed 1) "
    "stays unchanged whatever the base, so the fine-grained local positions are kept; the "
    "SLOWEST pair (i = d/2 - 1, speed base^(-(d-2)/d)) must become exactly `factor` times "
    "slower, like position interpolation: new_base^(-(d-2)/d) = base^(-(d-2)/d) / factor, "
    "so new_base = base * factor^(d/(d-2))."
)


def _ntk_mistakes(base: float, head_dim: int, factor: float) -> list[tuple[float, str]]:
    d = head_dim
    return [
        (
            base * factor,
            "Multiplying the base by the factor slows the slowest pair by only "
            "factor^((d-2)/d), a little less than the factor: the exponent d/(d-2) makes up "
            "for the (d-2)/d in that pair's speed." + _NTK_IDEA,
        ),
        (
            base * factor ** (d / 2),
            "The exponent is d / (d - 2), a bit above 1, not d / 2: factor^(d/2) changes the "
            "base by an astronomical amount and freezes almost every pair." + _NTK_IDEA,
        ),
        (
            base / factor,
            "Dividing the base makes every pair turn FASTER, so the long context reaches even "
            "more unseen angles. To stretch the context, the base must GROW." + _NTK_IDEA,
        ),
        (
            base * factor ** ((d - 2) / d),
            "The exponent is inverted: it is d / (d - 2), not (d - 2) / d. With (d-2)/d the "
            "slowest pair is slowed by only factor^(((d-2)/d)^2)." + _NTK_IDEA,
        ),
    ]


#: (base, head_dim, factor): factor 1 (no change) last, where several mistakes agree
_NTK_CASES: list[tuple[float, int, float]] = [
    (10000.0, 32, 4.0),
    (10000.0, 64, 2.0),
    (500000.0, 128, 8.0),
    (10000.0, 64, 1.0),
]


@exercise(
    "09.4",
    notebook=NB,
    title="NTK-aware RoPE scaling",
    asks="ntk_base(base, head_dim, factor) -> float: the RoPE base for a context factor times "
    "longer, base * factor ** (head_dim / (head_dim - 2)), so that the slowest pair turns "
    "factor times slower and the fastest is unchanged",
    difficulty=2,
    minutes=15,
    reference=_ntk_reference,
    wrong_answers={
        "plain scaling: base * factor": lambda base, head_dim, factor: base * factor,
        "exponent head_dim / 2": lambda base, head_dim, factor: base * factor ** (head_dim / 2),
        "base / factor": lambda base, head_dim, factor: base / factor,
        "exponent inverted: (head_dim - 2) / head_dim": lambda base, head_dim, factor: (
            base * factor ** ((head_dim - 2) / head_dim)
        ),
    },
)
def check_ntk_base(answer: Any) -> None:
    """Equal (relative 1e-9) to coursekit.long_context.ntk_scaled_base(base, head_dim, factor) =
    base * factor ** (head_dim / (head_dim - 2)) for (10000, 32, 4), (10000, 64, 2),
    (500000, 128, 8), and the base itself for factor 1.

    Rejects plain scaling base * factor, the exponent head_dim / 2, base / factor, and the
    inverted exponent (head_dim - 2) / head_dim.
    """
    expect_callable(answer, name="ntk_base")
    expect_signature(
        answer,
        "ntk_base(base, head_dim, factor)",
        "def ntk_base(base, head_dim, factor)",
        10000.0,
        32,
        4.0,
    )
    for base, head_dim, factor in _NTK_CASES:
        expected = ntk_scaled_base(base, head_dim, factor)
        got = answer(base, head_dim, factor)
        expect_number(
            got,
            expected,
            name=f"ntk_base({base:g}, {head_dim}, {factor:g})",
            rel_tol=1e-9,
            abs_tol=0.0,
            example="return base * factor ** (...)",
            hint="Return base * factor ** (head_dim / (head_dim - 2))." + _NTK_IDEA,
            mistakes=_ntk_mistakes(base, head_dim, factor),
        )


# ------------------------------------------------------------------------------------------
# quiz

quiz_question(
    "09.q1",
    notebook=NB,
    question="A model with full self-attention goes from a context of 1,000 tokens to 10,000. "
    "How does the number of attention scores it computes per layer and head change?",
    options=[
        "It grows 10 times, like the number of tokens: each new token adds one score",
        "It grows about 100 times: every one of the T queries is scored against every one of "
        "the T keys, T^2 scores, from about 10^6 to 10^8",
        "It grows about 13 times (T log T), because the softmax sorts the scores",
        "It stays the same: the number of heads and the head size do not depend on the length",
    ],
    answer=1,
    explanation="Full attention builds a T x T matrix of scores (and of weights) in every layer "
    "and head: 10 times the tokens is 100 times the scores, the time and the memory of that "
    "matrix. (a) Each new token adds a whole row AND a column, not one score; the linear part of "
    "the model (projections, FFN) grows 10 times, the attention matrix does not. (c) A softmax "
    "normalises, it does not sort; nothing in attention is T log T. (d) The heads fix the width "
    "of each score's dot product, not how many scores there are. This quadratic growth is what "
    "sliding windows, Linformer and Performer attack.",
)

quiz_question(
    "09.q2",
    notebook=NB,
    question="What does a global token do in Longformer's sliding-window attention?",
    options=[
        "It has a wider window than the other tokens, twice the local one, but still a local band",
        "It is a token whose embedding is shared by all the layers, so that it carries a memory "
        "from layer to layer",
        "It attends to every position and every position attends to it (e.g. [CLS], or the "
        "tokens of the question in question answering), so information crosses the whole text "
        "in one or two hops, which a local window needs many layers to do",
        "It attends only to the other global tokens, summarising the text into a short memory "
        "that the local windows never read",
    ],
    answer=2,
    explanation="A global position has a full row and a full column in the mask: it reads the "
    "whole sequence and the whole sequence reads it. With a few such tokens the cost stays "
    "linear (g T extra scores), and any two positions are two hops apart, while local windows "
    "alone widen the receptive field by about one window per layer. That is why Longformer "
    "makes [CLS] global for classification and the question tokens global for QA. (a) A wider "
    "band is still local: distant positions remain out of reach. (b) Nothing is shared across "
    "layers; it is an ordinary token with a different mask. (d) A global token is useful "
    "precisely because every position can read it and it can read every position.",
)

quiz_question(
    "09.q3",
    notebook=NB,
    question="Performer and Linformer both make attention linear in the length T. What is the "
    "difference?",
    options=[
        "Performer approximates the softmax kernel exp(q . k / sqrt(d)) with positive random "
        "features, so attention becomes phi(Q) (phi(K)^T V): linear, and usable causally with "
        "running sums. Linformer projects the keys and values along the sequence to k rows "
        "with learned (k, n) matrices: it fixes the maximum length n and cannot be causal",
        "Linformer approximates the softmax with random features and Performer projects the "
        "keys and values along the sequence to k rows; otherwise they are the same",
        "Both are exact: they compute the same output as full attention, only in a different "
        "order of the matrix products",
        "Performer keeps only the k largest scores of each query, and Linformer keeps a "
        "sliding window of k keys",
    ],
    answer=0,
    explanation="Performer rewrites exp(q . k) as an expectation over random features, "
    "E[phi(q) . phi(k)], so (phi(Q) phi(K)^T) V can be computed as phi(Q) (phi(K)^T V) without "
    "a T x T matrix; a causal version keeps prefix sums of phi(k) v^T. Its output is an "
    "unbiased estimate that improves with more features. Linformer multiplies K and V by learned "
    "(k, n) matrices E and F, mixing all positions, the future included, so it cannot be "
    "causal, and the matrices fix the length n it was built for. (b) swaps the two. (c) Both "
    "approximate softmax attention; only the reordering trick itself is exact. (d) describes "
    "top-k and sliding-window attention, not these two.",
)

quiz_question(
    "09.q4",
    notebook=NB,
    question="A RoPE model trained on 2,048 tokens must read 8,192. Position interpolation "
    "rotates position p by the angles of position p * 2048 / 8192 instead. What does that do, "
    "compared with simply running the model on the longer positions (extrapolation)?",
    options=[
        "It drops three tokens out of four, so that the model reads only 2,048 of them",
        "Nothing different: RoPE angles are periodic, so positions past 2,048 give angles the "
        "model has already seen, and extrapolation works as well",
        "Every angle stays inside the range seen in training, so no query-key rotation is new "
        "to the model; the price is a finer resolution (neighbours 4 times closer in angle), "
        "which a short fine-tune usually fixes. Extrapolation feeds unseen angles to the slow "
        "pairs, and the perplexity blows up",
        "It raises the RoPE base so that only the slow pairs are stretched and the fast ones "
        "are unchanged",
    ],
    answer=2,
    explanation="Interpolation squeezes the 8,192 positions into the trained range [0, 2048): "
    "the largest angle of every pair is one the model has seen, at the cost of four times finer "
    "steps between neighbours. Extrapolating instead reaches angles of the slow pairs that never "
    "occurred in training (they had not completed a turn within 2,048 tokens), and the attention "
    "scores there are out of distribution. (a) Every token is kept; only its position is "
    "rescaled. (b) The fast pairs wrap around, but the slow ones do not within the trained "
    "length, so new angles appear. (d) describes the NTK-aware scaling of exercise 09.4, a "
    "different way to extend the context.",
)
