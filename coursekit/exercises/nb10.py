"""Checks and quiz for notebook 10 (efficiency: the KV cache, gradient accumulation, the online
softmax, LoRA, int8 weights)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from coursekit.efficient import LoRALinear, kv_cache_bytes
from coursekit.exercises.expect import (
    a_type,
    as_number,
    expect_callable,
    expect_close,
    expect_number,
    expect_shape,
    expect_signature,
    expect_tensor,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

NB = "10"


def _same(actual: Any, candidate: torch.Tensor, atol: float) -> bool:
    """Whether ``actual`` is a tensor equal to ``candidate`` within ``atol`` (NaN matching NaN)."""
    if not isinstance(actual, torch.Tensor) or actual.shape != candidate.shape:
        return False
    a = actual.detach().to(torch.float64).cpu()
    b = candidate.detach().to(torch.float64).cpu()
    return bool(torch.allclose(a, b, atol=atol, rtol=1e-4, equal_nan=True))


# ------------------------------------------------------------------------------------------
# 10.1 the KV cache of a 70B model

#: LLaMA-2-70B: 80 layers, 8 KV heads of 128 (64 query heads share them), fp16, 4096 tokens
_KV_BYTES = kv_cache_bytes(n_layers=80, n_kv_heads=8, head_dim=128, seq_len=4096)

_KV_MISTAKES: list[tuple[float, str]] = [
    (
        _KV_BYTES * 8,
        "8 times too much. Two mistakes give this number: counting all 64 QUERY heads (with "
        "grouped-query attention only the 8 key/value heads are cached; the 64 query heads "
        "share them), or giving bits instead of bytes (a 16-bit value is 2 bytes, not 16).",
    ),
    (
        _KV_BYTES / 2,
        "Half the answer: every layer caches TWO tensors per token and KV head, the key and "
        "the value. Count both.",
    ),
    (
        _KV_BYTES / 80,
        "That is the cache of ONE layer. Each of the 80 layers keeps its own keys and values "
        "for every token: multiply by the number of layers.",
    ),
    (
        _KV_BYTES * 2,
        "Twice too much: that counts 4 bytes per value (fp32). The cache is kept in 16-bit "
        "values (fp16 or bf16), 2 bytes each.",
    ),
    (
        _KV_BYTES / 2**30,
        "That is the size in GiB (units of 2^30 bytes). The question asks for bytes: give the "
        "whole count.",
    ),
    (
        _KV_BYTES / 1e9,
        "That is the size in GB (units of 10^9 bytes). The question asks for bytes: give the "
        "whole count.",
    ),
]


@exercise(
    "10.1",
    notebook=NB,
    title="The KV cache of a 70B model",
    asks="The bytes of the KV cache of a LLaMA-2-70B-like model (80 layers, 8 KV heads of size "
    "128 shared by 64 query heads) for one sequence of 4,096 tokens in 16-bit values (a number)",
    difficulty=1,
    minutes=5,
    reference=_KV_BYTES,
    also_correct={
        "as a float": float(_KV_BYTES),
        "rounded, 1.34e9": 1.34e9,
        "as a one-element tensor": torch.tensor(_KV_BYTES),
    },
    wrong_answers={
        "all 64 query heads cached (multi-head count)": 2 * 80 * 64 * 128 * 4096 * 2,
        "in bits": _KV_BYTES * 8,
        "no factor 2 for keys and values": _KV_BYTES // 2,
        "one layer only": _KV_BYTES // 80,
        "4 bytes per value (fp32)": _KV_BYTES * 2,
        "in GiB": 1.25,
    },
)
def check_kv_cache_bytes(answer: Any) -> None:
    """1,342,177,280 bytes (1.25 GiB) = 2 (K and V) * 80 layers * 8 KV heads * 128 * 4096
    tokens * 2 bytes, coursekit.efficient.kv_cache_bytes of that model; numbers within 0.5%
    and one-element tensors are accepted.

    Rejects the count over all 64 query heads and the count in bits (both 8 times too much),
    the keys or the values alone, one layer only, 4-byte (fp32) values, and GiB or GB.
    """
    expect_number(
        answer,
        _KV_BYTES,
        name="answer",
        rel_tol=0.005,
        abs_tol=0.0,
        example="answer = 123_456_789",
        hint="Count the cached numbers first: in every layer, for every KEY/VALUE head (not the "
        "query heads), one key vector and one value vector of 128 numbers per token. Then "
        "multiply by 2 bytes per 16-bit number.",
        mistakes=_KV_MISTAKES,
    )


# ------------------------------------------------------------------------------------------
# 10.2 gradient accumulation


def _accumulate_reference(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    n_micro: int,
) -> None:
    model.zero_grad()  # forget whatever the last step left in .grad
    for x_chunk, y_chunk in zip(x.chunk(n_micro), y.chunk(n_micro)):
        loss = loss_fn(model, x_chunk, y_chunk) / n_micro  # the mean of n_micro chunk means
        loss.backward()  # adds to .grad; this chunk's activations are freed here


def _accumulate(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    n_micro: int,
    *,
    divide_by: str = "n_micro",
    zero: str = "start",
    backward: str = "each",
) -> None:
    """Gradient accumulation, optionally with one of the usual mistakes."""
    if zero == "start":
        model.zero_grad()
    if backward == "whole":  # one big batch: no accumulation at all
        loss_fn(model, x, y).backward()
        return
    divisor = {"n_micro": n_micro, "batch": x.shape[0], "none": 1}[divide_by]
    losses = []
    for x_chunk, y_chunk in zip(x.chunk(n_micro), y.chunk(n_micro)):
        if zero == "each":
            model.zero_grad()
        loss = loss_fn(model, x_chunk, y_chunk) / divisor
        if backward == "each":
            loss.backward()
        else:
            losses.append(loss)
    if losses:
        torch.stack(losses).sum().backward()


_ACC_BATCH = 8
_ACC_MICRO = (1, 2, 4)

_ACC_IDEA = (
    " Zero the gradients once before the loop; then, chunk by chunk, compute the chunk's mean "
    "loss, divide it by n_micro and call backward: .grad adds the chunks up."
)


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(_mse(model, x, y), list(model.parameters()))


def _check_calls(events: list[tuple[str, int]], n_micro: int, call: str) -> None:
    """loss_fn ran on n_micro chunks of B / n_micro, each followed by its own backward."""
    sizes = [size for kind, size in events if kind == "forward"]
    chunk = _ACC_BATCH // n_micro
    if n_micro > 1 and sizes and all(s == _ACC_BATCH for s in sizes):
        raise ExerciseFailure(
            f"{call} called loss_fn on the whole batch of {_ACC_BATCH} examples at once.",
            hint="The point of gradient accumulation is that the big batch (and its "
            "activations) never has to fit in memory at once: split x and y into n_micro "
            "chunks of B / n_micro examples (x.chunk(n_micro) does it) and call loss_fn on "
            "each chunk.",
        )
    if sizes != [chunk] * n_micro:
        said = f"on chunks of sizes {sizes}" if sizes else "never"
        raise ExerciseFailure(
            f"{call} called loss_fn {said}; expected {n_micro} calls on chunks of {chunk} "
            f"examples (B = {_ACC_BATCH}).",
            hint="Call loss_fn exactly once per micro-batch, on n_micro equal chunks of x and y "
            "(x.chunk(n_micro), y.chunk(n_micro)), and nowhere else.",
        )
    order = [kind for kind, _ in events]
    if order == ["forward", "backward"] * n_micro:
        return
    n_backward = order.count("backward")
    if n_backward == 0:
        raise ExerciseFailure(
            f"{call} never ran backward through the chunk losses.",
            hint="Call .backward() on each chunk's loss (divided by n_micro): that is what "
            "writes the gradients into .grad." + _ACC_IDEA,
        )
    if n_backward == n_micro and order == ["forward"] * n_micro + ["backward"] * n_micro:
        raise ExerciseFailure(
            f"{call} computed all {n_micro} chunk losses first and ran ONE backward at the end.",
            hint="Summing the chunk losses and calling backward once gives the right gradients, "
            "but every chunk's graph (all its activations) stays in memory until that backward: "
            "as much memory as the big batch, which is what accumulation avoids. Call backward "
            "on each chunk's loss right after computing it.",
        )
    raise ExerciseFailure(
        f"{call}: the chunk losses and their backward passes ran in the order {order}.",
        hint="Each chunk: compute its loss, then call backward on it before the next chunk."
        + _ACC_IDEA,
    )


@exercise(
    "10.2",
    notebook=NB,
    title="Gradient accumulation",
    asks="accumulate_gradients(model, loss_fn, x, y, n_micro): leave in every parameter's "
    ".grad the gradient of the mean loss over the whole batch (starting from stale .grad "
    "values), with n_micro backward passes on chunks of B / n_micro examples, each loss "
    "divided by n_micro; loss_fn(model, x_chunk, y_chunk) returns a chunk's mean loss",
    difficulty=2,
    minutes=15,
    reference=_accumulate_reference,
    wrong_answers={
        "no division by n_micro": partial(_accumulate, divide_by="none"),
        "zero_grad inside the loop": partial(_accumulate, zero="each"),
        "no zero_grad at the start": partial(_accumulate, zero="never"),
        "one backward on the whole batch": partial(_accumulate, backward="whole"),
        "losses divided by the batch size B": partial(_accumulate, divide_by="batch"),
        "chunk losses summed, one backward at the end": partial(_accumulate, backward="end"),
    },
)
def check_accumulate_gradients(answer: Any) -> None:
    """Linear(5, 7) - Tanh - Linear(7, 3) in float64 with junk in every .grad, a batch of 8,
    n_micro = 1, 2, 4: loss_fn must run on n_micro chunks of 8 / n_micro examples, each chunk's
    backward before the next chunk's loss, and every .grad must equal the big-batch gradient of
    the mean loss (atol 1e-6).

    Rejects no division by n_micro, zero_grad inside the loop (only the last chunk survives),
    no zero_grad at the start (stale gradients added), one backward on the whole batch, losses
    divided by the batch size, and chunk losses summed with one backward at the end.
    """
    expect_callable(answer, name="accumulate_gradients")
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(102)
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
        x = torch.randn(_ACC_BATCH, 5, dtype=torch.float64)
        y = torch.randn(_ACC_BATCH, 3, dtype=torch.float64)
        expect_signature(
            answer,
            "accumulate_gradients(model, loss_fn, x, y, n_micro)",
            "def accumulate_gradients(model, loss_fn, x, y, n_micro)",
            model,
            _mse,
            x,
            y,
            2,
        )
        named = list(model.named_parameters())
        expected = _grads(model, x, y)
        for n_micro in _ACC_MICRO:
            events: list[tuple[str, int]] = []

            def loss_fn(
                model: nn.Module, x: torch.Tensor, y: torch.Tensor, events: list = events
            ) -> torch.Tensor:
                events.append(("forward", x.shape[0]))
                loss = _mse(model, x, y)
                loss.register_hook(lambda grad: events.append(("backward", 0)))
                return loss

            junk = [torch.randn_like(p) for _, p in named]
            for (_, p), stale in zip(named, junk):
                p.grad = stale.clone()
            call = f"accumulate_gradients(model, loss_fn, x, y, n_micro={n_micro})"
            answer(model, loss_fn, x, y, n_micro)
            _check_calls(events, n_micro, call)
            last = _grads(model, x.chunk(n_micro)[-1], y.chunk(n_micro)[-1])
            for i, (name, p) in enumerate(named):
                if p.grad is None:
                    raise ExerciseFailure(
                        f"after {call}, {name} has no gradient (.grad is None).",
                        hint="Call backward on each chunk's loss: it fills .grad.",
                    )
                g = expected[i]
                expect_close(
                    p.grad,
                    g,
                    name=f"{name}.grad after {call}",
                    atol=1e-6,
                    rtol=1e-6,
                    hint="The gradients must be those of the mean loss over the whole batch."
                    + _ACC_IDEA,
                    mistakes=[
                        (
                            g * n_micro,
                            f"The gradients are {n_micro} times too big: adding up the "
                            f"gradients of {n_micro} chunk MEANS gives n_micro times the mean "
                            "over the batch. Divide each chunk's loss by n_micro before "
                            "backward.",
                        ),
                        (
                            last[i] / n_micro,
                            "Only the last chunk's gradient is left: zeroing the gradients "
                            "inside the loop wipes out what the earlier chunks accumulated. "
                            "Zero them once, BEFORE the loop.",
                        ),
                        (
                            junk[i] + g,
                            "The old gradients are still there: backward ADDS to .grad, so "
                            "whatever the previous step left in it gets added too. Zero the "
                            "gradients (model.zero_grad()) once before the first chunk.",
                        ),
                        (
                            g * n_micro / _ACC_BATCH,
                            "Divide each chunk's loss by the number of chunks n_micro, not by "
                            "the batch size B: loss_fn already returns a MEAN over its chunk, "
                            "so the mean over the batch is the average of the n_micro chunk "
                            "means.",
                        ),
                    ],
                )


# ------------------------------------------------------------------------------------------
# 10.3 the online-softmax update


def _online_reference(
    m: torch.Tensor, lsum: torch.Tensor, acc: torch.Tensor, scores: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))
    c = torch.exp(m - m_new)  # how much the old terms shrink; exp(-inf) = 0 on the first block
    p = torch.exp(scores - m_new)  # this block's weights, relative to the new maximum
    return m_new, c * lsum + p.sum(dim=-1, keepdim=True), c * acc + p @ v


def _online(
    m: torch.Tensor,
    lsum: torch.Tensor,
    acc: torch.Tensor,
    scores: torch.Tensor,
    v: torch.Tensor,
    *,
    mistake: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One online-softmax step with one of the usual mistakes."""
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))
    c = torch.exp(m_new - m) if mistake == "inverted" else torch.exp(m - m_new)
    p = torch.exp(scores) if mistake == "no_max" else torch.exp(scores - m_new)
    l_new = (lsum if mistake == "no_rescale" else c * lsum) + p.sum(dim=-1, keepdim=True)
    acc_new = (acc if mistake in ("no_rescale", "acc_not_rescaled") else c * acc) + p @ v
    if mistake == "normalised":
        acc_new = acc_new / l_new
    return m_new, l_new, acc_new


_ONLINE_MISTAKES: list[tuple[str, str]] = [
    (
        "acc_not_rescaled",
        "l is rescaled but acc is not: acc holds terms exp(score - m) * v relative to the OLD "
        "maximum, exactly like l. When the maximum grows, multiply acc by the same factor "
        "exp(m - m_new) before adding this block's weighted values.",
    ),
    (
        "no_rescale",
        "The old sums are not rescaled: l and acc were built from exp(score - m) with the OLD "
        "maximum m, while this block's terms use m_new. Multiply both old sums by "
        "exp(m - m_new) before adding the new block's terms.",
    ),
    (
        "inverted",
        "The rescaling factor is inverted: the old terms exp(s - m) must become exp(s - m_new), "
        "so they are multiplied by exp(m - m_new) <= 1, not exp(m_new - m). On the first "
        "block (m = -inf) the inverted factor is inf, and inf * 0 gives NaN.",
    ),
    (
        "no_max",
        "Subtract the new maximum before exponentiating: this block's weights are "
        "exp(scores - m_new). The state must keep the invariant l = sum of exp(score - m) "
        "over the keys seen so far; plain exp(scores) breaks it (and overflows on large "
        "scores, which is what the maximum is for).",
    ),
    (
        "normalised",
        "acc must stay the running SUM of exp(score - m) * v, not be divided by l at each "
        "step: the division by l happens once, after the last block. Return the "
        "un-normalised sum.",
    ),
]

_ONLINE_HINTS = {
    "m_new": "m_new is the running row maximum: the larger of the old m and this block's "
    "largest score in each row (keep the last dimension: shape (..., Tq, 1)).",
    "l_new": "Shrink the old sum l by exp(m - m_new), then add this block's exp(scores - m_new) "
    "summed over its keys (keepdim, shape (..., Tq, 1)). On the first block m is -inf, and "
    "exp(-inf) = 0 is what makes the old (empty) sum vanish.",
    "acc_new": "Shrink the old acc by the same factor exp(m - m_new), then add this block's "
    "weights exp(scores - m_new) times v (a matrix product: (..., Tq, Tb) @ (..., Tb, dv)).",
}


def _as_triple(value: Any, call: str) -> tuple[Any, Any, Any]:
    if not isinstance(value, tuple | list) or len(value) != 3:
        what = f"{len(value)} values" if isinstance(value, tuple | list) else a_type(value)
        raise ExerciseFailure(
            f"{call} returned {what}, expected three tensors (m_new, l_new, acc_new).",
            hint="End with `return m_new, l_new, acc_new`: the new state, all three of it.",
        )
    for name, item in zip(("m_new", "l_new", "acc_new"), value):
        expect_tensor(item, name=f"{name} of {call}")
    return value[0], value[1], value[2]


def _online_state(
    batch: tuple[int, ...], t_q: int, d_v: int, *, first: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(m, l, acc): the initial state, or a random mid-stream one (uses the global generator)."""
    f64 = torch.float64
    if first:
        m = torch.full((*batch, t_q, 1), -math.inf, dtype=f64)
        return m, torch.zeros(*batch, t_q, 1, dtype=f64), torch.zeros(*batch, t_q, d_v, dtype=f64)
    m = 2 * torch.randn(*batch, t_q, 1, dtype=f64)
    m[..., ::2, :] += 4.0  # every other row: a maximum that the next block rarely beats
    lsum = 1 + 3 * torch.rand(*batch, t_q, 1, dtype=f64)
    return m, lsum, torch.randn(*batch, t_q, d_v, dtype=f64)


def _check_online_step(answer: Any, first: bool) -> None:
    batch, t_q, t_b, d_v = (2, 3), 4, 5, 6
    m, lsum, acc = _online_state(batch, t_q, d_v, first=first)
    scores = 2 * torch.randn(*batch, t_q, t_b, dtype=torch.float64)
    v = torch.randn(*batch, t_b, d_v, dtype=torch.float64)
    inputs = (m, lsum, acc, scores, v)
    state = "the initial state (m = -inf, l = 0, acc = 0)" if first else "a mid-stream state"
    call = f"online_softmax_step from {state}"
    got = _as_triple(answer(*(t.clone() for t in inputs)), call)
    expected = _online_reference(*inputs)
    if all(_same(g, e, 1e-5) for g, e in zip(got, expected)):
        return
    specific = None
    for mistake, hint in _ONLINE_MISTAKES:
        variant = _online(*inputs, mistake=mistake)
        if all(_same(g, w, 1e-5) for g, w in zip(got, variant)):
            specific = hint
            break
    for name, g, e in zip(("m_new", "l_new", "acc_new"), got, expected):
        expect_shape(g, e.shape, name=f"{name} of {call}", hint=specific or _ONLINE_HINTS[name])
        expect_close(
            g, e, name=f"{name} of {call}", atol=1e-5, hint=specific or _ONLINE_HINTS[name]
        )


@exercise(
    "10.3",
    notebook=NB,
    title="The online-softmax update",
    asks="online_softmax_step(m, l, acc, scores, v) -> (m_new, l_new, acc_new): fold one block "
    "of scores (..., Tq, Tb) and values (..., Tb, dv) into the running row maximum m, the "
    "running sum l of exp(score - m) and the running sum acc of exp(score - m) * v; after the "
    "last block acc / l is softmax(S) V",
    difficulty=3,
    minutes=25,
    reference=_online_reference,
    wrong_answers={
        "old sums not rescaled": partial(_online, mistake="no_rescale"),
        "l rescaled, acc not": partial(_online, mistake="acc_not_rescaled"),
        "factor inverted: exp(m_new - m)": partial(_online, mistake="inverted"),
        "exp(scores) without subtracting the maximum": partial(_online, mistake="no_max"),
        "acc normalised by l at every step": partial(_online, mistake="normalised"),
    },
)
def check_online_softmax_step(answer: Any) -> None:
    """One step from the initial state (m = -inf, l = 0, acc = 0: no NaN allowed) and one from a
    random mid-stream state, batch (2, 3), Tq = 4, Tb = 5, dv = 6, each of m_new, l_new,
    acc_new equal to the reference (atol 1e-5); then a loop over 4 blocks of 5 keys, where
    acc / l must equal softmax(q k^T / sqrt(d)) v (atol 1e-5).

    Rejects old sums that are not rescaled, acc not rescaled while l is, the inverted factor
    exp(m_new - m), scores exponentiated without subtracting the new maximum, and acc
    normalised by l at every step.
    """
    expect_callable(answer, name="online_softmax_step")
    expect_signature(
        answer,
        "online_softmax_step(m, l, acc, scores, v)",
        "def online_softmax_step(m, l, acc, scores, v)",
        *(torch.zeros(1, 1) for _ in range(5)),
    )
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(103)
        _check_online_step(answer, first=True)
        _check_online_step(answer, first=False)
        q = torch.randn(2, 3, 6, 8, dtype=torch.float64)
        k = torch.randn(2, 3, 20, 8, dtype=torch.float64)
        v = torch.randn(2, 3, 20, 7, dtype=torch.float64)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    m, lsum, acc = _online_state((2, 3), 6, 7, first=True)
    for start in range(0, 20, 5):
        call = f"online_softmax_step on keys {start}..{start + 4} of a 4-block loop"
        m, lsum, acc = _as_triple(
            answer(m, lsum, acc, scores[..., start : start + 5], v[..., start : start + 5, :]), call
        )
    expect_close(
        acc / lsum,
        torch.softmax(scores, dim=-1) @ v,
        name="acc / l after the last of 4 blocks",
        atol=1e-5,
        hint="Each step must keep l = sum of exp(score - m) and acc = sum of exp(score - m) v "
        "over all the keys seen so far, with m the largest score seen so far.",
    )


# ------------------------------------------------------------------------------------------
# 10.4 a LoRA layer


class LoRA(LoRALinear):
    """:class:`~coursekit.efficient.LoRALinear` under the exercise's interface: built as
    ``LoRA(base, rank, alpha)``, its matrices called ``A`` ``(rank, in)`` (random) and ``B``
    ``(out, rank)`` (zero), so the layer starts as exactly ``base``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__(base, rank=rank, alpha=alpha)

    @property
    def A(self) -> nn.Parameter:  # noqa: N802 (the exercise's name for the matrix)
        return self.lora_a

    @property
    def B(self) -> nn.Parameter:  # noqa: N802
        return self.lora_b


class _LoRAMistake(LoRA):
    """:class:`LoRA` with one of the usual mistakes."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, *, mistake: str) -> None:
        super().__init__(base, rank, alpha)
        with torch.no_grad():
            if mistake == "B random":
                self.B.normal_(0.0, 1.0 / rank)
            elif mistake == "A zero":
                self.A.zero_()
        if mistake == "base trains":
            base.requires_grad_(True)
        elif mistake == "scale alpha":
            self.scale = alpha
        elif mistake == "scale rank / alpha":
            self.scale = rank / alpha


#: (in_features, out_features, bias, rank, alpha)
_LORA_CASES: list[tuple[int, int, bool, int, float]] = [
    (12, 10, True, 4, 8.0),
    (16, 8, False, 4, 8.0),
    (12, 10, True, 2, 2.0),
]


def _lora_matrix(layer: nn.Module, name: str, shape: tuple[int, int], call: str) -> torch.Tensor:
    matrix = getattr(layer, name, None)
    if not isinstance(matrix, torch.Tensor):
        raise ExerciseFailure(
            f"{call} has no tensor attribute {name} (it is {a_type(matrix)}).",
            hint="Store the two LoRA matrices as self.A and self.B, each an nn.Parameter.",
        )
    shapes = {
        "A": "A maps the input down to the rank: (rank, base.in_features).",
        "B": "B maps back up to the output: (base.out_features, rank).",
    }
    expect_shape(matrix, shape, name=f"{call}.{name}", hint=shapes[name])
    return matrix


def _check_lora_structure(
    layer: Any, base: nn.Linear, rank: int, call: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(layer, nn.Module):
        raise ExerciseFailure(
            f"{call} gave {a_type(layer)}, not an nn.Module.",
            hint="Define a class that subclasses nn.Module, calls super().__init__() first, and "
            "pass the class itself to check.",
        )
    if getattr(layer, "base", None) is not base:
        raise ExerciseFailure(
            f"{call}.base is not the layer that was passed in.",
            hint="Keep the given layer itself as self.base (no copy): LoRA wraps it.",
        )
    a = _lora_matrix(layer, "A", (rank, base.in_features), call)
    b = _lora_matrix(layer, "B", (base.out_features, rank), call)
    trainable = {id(p): n for n, p in layer.named_parameters() if p.requires_grad}
    if any(id(p) in trainable for p in base.parameters()):
        raise ExerciseFailure(
            f"the base layer of {call} still trains: its weight has requires_grad=True.",
            hint="Freeze the base layer: set requires_grad to False on its weight and bias (an "
            "nn.Module's requires_grad_ does all its parameters), so that only A and B train.",
        )
    if id(a) not in trainable or id(b) not in trainable:
        raise ExerciseFailure(
            f"A and B of {call} must both be trainable parameters; trainable: "
            f"{sorted(trainable.values())}.",
            hint="Wrap both in nn.Parameter (requires_grad is True by default) and assign them "
            "as attributes, so that the optimizer sees them.",
        )
    if len(trainable) != 2:
        raise ExerciseFailure(
            f"{call} trains {sorted(trainable.values())}; only A and B should train.",
            hint="LoRA trains the two small matrices and nothing else.",
        )
    if not bool(a.detach().ne(0).any()):
        raise ExerciseFailure(
            f"A of {call} is all zeros.",
            hint="Initialise A randomly (nonzero); only B starts at zero. With A = 0 as well, "
            "the gradient of B, which is proportional to x A^T, is zero and so is A's, which "
            "is proportional to B: the adapter never learns.",
        )
    return a, b


def _check_lora_case(answer: Any, case: tuple[int, int, bool, int, float]) -> None:
    n_in, n_out, bias, rank, alpha = case
    base = nn.Linear(n_in, n_out, bias=bias)
    weight = base.weight.detach().clone()
    call = f"LoRA(nn.Linear({n_in}, {n_out}, bias={bias}), {rank}, {alpha:g})"
    layer = answer(base, rank, alpha)
    a, b = _check_lora_structure(layer, base, rank, call)
    x = torch.randn(2, 5, n_in)
    with torch.no_grad():
        expect_close(
            layer(x),
            base(x),
            name=f"{call}(x) at initialisation",
            hint="B must start at ZERO (A random), so that the adapted layer starts exactly "
            "as the pretrained one and training moves away from it."
            if bool(b.detach().ne(0).any())
            else "At initialisation the output must be exactly base(x): the update is "
            "(alpha / rank) (x A^T) B^T, zero while B is zero.",
        )
    target = torch.randn(2, 5, n_out)
    before = layer(x).detach()
    ((layer(x) - target) ** 2).mean().backward()
    if b.grad is None or not bool(b.grad.ne(0).any()):
        raise ExerciseFailure(
            f"after a backward pass through {call}, B has no gradient.",
            hint="Use self.A and self.B themselves in forward (not .data or detached copies), "
            "so that gradients reach them.",
        )
    with torch.no_grad():
        for p in (a, b):
            if p.grad is not None:
                p -= 0.1 * p.grad  # one SGD step
    if not bool((layer(x).detach() - before).abs().max() > 1e-6):
        raise ExerciseFailure(
            f"one SGD step on A and B does not change the output of {call}.",
            hint="forward must add (alpha / rank) (x A^T) B^T to base(x), computed from the "
            "parameters A and B.",
        )
    if not torch.equal(base.weight.detach(), weight):
        raise ExerciseFailure(
            f"{call} changed the base layer's weight.",
            hint="Leave the pretrained weight as it is: the update lives only in A and B.",
        )
    with torch.no_grad():
        a.copy_(torch.randn(rank, n_in))
        b.copy_(0.5 * torch.randn(n_out, rank))
        update = (x @ a.T) @ b.T
        base_out = base(x)
        expect_close(
            layer(x),
            base_out + alpha / rank * update,
            name=f"{call}(x) with random A and B",
            hint="forward(x) = base(x) + (alpha / rank) (x A^T) B^T, for any number of leading "
            "dimensions of x.",
            mistakes=[
                (
                    base_out + alpha * update,
                    "Scale the update by alpha / rank, not by alpha: dividing by the rank keeps "
                    "the size of the update about the same when you change the rank, so alpha "
                    "need not be retuned.",
                ),
                (
                    base_out + rank / alpha * update,
                    "The scale is upside down: it is alpha / rank, not rank / alpha.",
                ),
                (
                    base_out + update,
                    "Multiply the update by the scale alpha / rank.",
                ),
            ],
        )


@exercise(
    "10.4",
    notebook=NB,
    title="A LoRA layer",
    asks="class LoRA(nn.Module), LoRA(base, rank, alpha): keep base frozen as self.base; "
    "parameters A (rank, in_features) random and B (out_features, rank) zero; forward(x) = "
    "base(x) + (alpha / rank) (x A^T) B^T",
    difficulty=2,
    minutes=20,
    reference=LoRA,
    wrong_answers={
        "B random instead of zero": partial(_LoRAMistake, mistake="B random"),
        "base layer not frozen": partial(_LoRAMistake, mistake="base trains"),
        "scale alpha instead of alpha / rank": partial(_LoRAMistake, mistake="scale alpha"),
        "A zero as well": partial(_LoRAMistake, mistake="A zero"),
        "scale rank / alpha": partial(_LoRAMistake, mistake="scale rank / alpha"),
    },
)
def check_lora(answer: Any) -> None:
    """On nn.Linear(12, 10) and nn.Linear(16, 8, bias=False) with rank 4, alpha 8, and
    nn.Linear(12, 10) with rank 2, alpha 2: self.base is the given layer, A (rank, in) and B
    (out, rank) are the only trainable parameters (rank (in + out) numbers), A is not all
    zeros, the output at initialisation is base(x), one SGD step on a squared loss changes it
    without touching the base weight, and with random A and B it equals base(x) +
    alpha / rank x A^T B^T for x (2, 5, in) (atol 1e-5).

    Rejects B random instead of zero, a base layer that still trains, the scale alpha or
    rank / alpha instead of alpha / rank, and A initialised to zero as well.
    """
    expect_callable(answer, name="LoRA")
    if isinstance(answer, nn.Module):
        raise ExerciseFailure(
            f"your answer is a {type(answer).__name__} layer, not the class.",
            hint="Pass the class itself: check('10.4', LoRA), not LoRA(...).",
        )
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(104)
        expect_signature(
            answer,
            "LoRA(base, rank, alpha)",
            "class LoRA(nn.Module) with def __init__(self, base, rank, alpha)",
            nn.Linear(2, 2),
            1,
            1.0,
        )
        for case in _LORA_CASES:
            _check_lora_case(answer, case)


# ------------------------------------------------------------------------------------------
# 10.5 per-tensor int8 quantization


def _quantize_reference(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = weight.detach()
    # one scale: the largest |w| maps to 127; an all-zero weight gets a tiny positive scale
    scale = (w.abs().max() / 127).clamp_min(torch.finfo(w.dtype).tiny)
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return q, scale


def _quantize(weight: torch.Tensor, *, mistake: str) -> tuple[torch.Tensor, ...]:
    """Per-tensor int8 quantization with one of the usual mistakes."""
    w = weight.detach()
    if mistake == "asymmetric":
        low, high = w.min(), w.max()
        scale = (high - low) / 255
        zero_point = torch.round(-128 - low / scale)
        q = torch.round(w / scale + zero_point).clamp(-128, 127).to(torch.int8)
        return q, scale, zero_point
    absmax = w.abs().amax(dim=1, keepdim=True) if mistake == "per_row" else w.abs().max()
    scale = absmax / (128 if mistake == "128" else 127)
    if mistake != "no_guard":
        scale = scale.clamp_min(torch.finfo(w.dtype).tiny)
    ratio = w / scale
    if mistake == "trunc":
        return ratio.to(torch.int8), scale
    q = torch.round(ratio).clamp(-127, 127)
    return (q, scale) if mistake == "float_q" else (q.to(torch.int8), scale)


def _weights() -> list[tuple[str, torch.Tensor]]:
    """The weights the check quantizes (uses the global generator)."""
    outlier = 0.02 * torch.randn(16, 64)
    outlier[3, 7] = -1.5  # one large (negative) outlier sets the scale for all the others
    return [
        ("a random (8, 16) weight", 0.05 * torch.randn(8, 16)),
        ("a random (32, 5) weight", 0.5 * torch.randn(32, 5)),
        ("a (16, 64) weight with one large outlier", outlier),
    ]


_SCALE_IDEA = (
    " Symmetric int8 uses the integers -127..127, so the largest |weight| must land exactly "
    "on 127: scale = |w|.max() / 127."
)


def _as_pair(result: Any, call: str) -> tuple[torch.Tensor, Any]:
    """The answer's (q, scale), q a tensor; a zero point or another shape is explained."""
    if isinstance(result, tuple | list) and len(result) == 3:
        raise ExerciseFailure(
            f"{call} returned three values; expected (q, scale).",
            hint="A zero point belongs to ASYMMETRIC (min-max) quantization. This one is "
            "symmetric: zero stays at zero, no zero point, and one scale from the largest "
            "absolute value: scale = |w|.max() / 127, q in -127..127.",
        )
    if not isinstance(result, tuple | list) or len(result) != 2:
        raise ExerciseFailure(
            f"{call} returned {a_type(result)}; expected the pair (q, scale).",
            hint="End with `return q, scale`.",
        )
    return expect_tensor(result[0], name=f"q of {call}"), result[1]


def _check_quantized(answer: Any, weight: torch.Tensor, what: str) -> None:
    call = f"quantize_per_tensor({what})"
    q, scale = _as_pair(answer(weight.clone()), call)
    if q.is_floating_point():
        raise ExerciseFailure(
            f"q of {call} has dtype {q.dtype}.",
            hint="Store q as 8-bit integers, torch.int8 (convert with .to(torch.int8) after "
            "rounding and clamping): 1 byte per weight is the point of int8.",
        )
    if q.dtype != torch.int8:
        raise ExerciseFailure(
            f"q of {call} has dtype {q.dtype}, expected torch.int8.",
            hint=f"{q.dtype} takes {q.element_size()} bytes per value; int8 takes one, which is "
            "the point: convert with .to(torch.int8).",
        )
    expect_shape(q, weight.shape, name=f"q of {call}", hint="q has one integer per weight.")
    if isinstance(scale, torch.Tensor) and scale.numel() != 1:
        raise ExerciseFailure(
            f"scale of {call} has shape {tuple(scale.shape)}; expected ONE number for the whole "
            "tensor.",
            hint="That is per-channel (per-row) quantization, the other arm of the notebook's "
            "ablation. Here one scale serves the whole weight: take the maximum of |w| over "
            "every element, not per row.",
        )
    absmax = float(weight.abs().max())
    s = expect_number(
        scale,
        absmax / 127,
        name=f"scale of {call}",
        rel_tol=1e-6,
        abs_tol=0.0,
        example="scale = weight.abs().max() / 127",
        hint="scale = |w|.max() / 127 (one number, a 0-d tensor)." + _SCALE_IDEA,
        mistakes=[
            (
                absmax / 128,
                "Divide by 127, not 128: with absmax / 128 the largest weight maps to 128, "
                "outside the symmetric range -127..127, so it is clipped and the largest "
                "weights, the ones that matter most, lose a whole step." + _SCALE_IDEA,
            ),
            (
                float(weight.max() - weight.min()) / 255,
                "That is the scale of asymmetric (min-max) quantization, which needs a zero "
                "point. Here it is symmetric: scale from the largest absolute value." + _SCALE_IDEA,
            ),
            (
                absmax / 255,
                "Not / 255: the positive weights use only 1..127 and the negative ones "
                "-1..-127, so |w| up to its maximum is spread over 127 steps." + _SCALE_IDEA,
            ),
        ],
    )
    if int(q.min()) < -127 or int(q.max()) > 127:
        raise ExerciseFailure(
            f"q of {call} ranges over {int(q.min())}..{int(q.max())}, outside -127..127.",
            hint="Clamp the rounded values to [-127, 127] before converting: symmetric int8 "
            "leaves -128 unused, so that +x and -x quantize to opposite integers.",
        )
    error = (q.to(torch.float64) * s - weight.to(torch.float64)).abs().max().item()
    if error > s / 2 * (1 + 1e-5) + 1e-7:
        truncated = (weight / s).to(torch.int8)
        hint = (
            "Round to the NEAREST integer (torch.round) before converting: .to(torch.int8) or "
            "torch.trunc cut the fraction off toward zero, so the error reaches almost a whole "
            "step instead of half a step."
            if torch.equal(q, truncated)
            else "q must be the nearest integer to weight / scale (round, then clamp to "
            "[-127, 127]), so that q * scale is within scale / 2 of every weight."
        )
        raise ExerciseFailure(
            f"q * scale of {call} is off by up to {error:.3g}, more than scale / 2 = {s / 2:.3g}.",
            hint=hint,
        )


@exercise(
    "10.5",
    notebook=NB,
    title="Per-tensor int8 quantization",
    asks="quantize_per_tensor(weight) -> (q, scale): symmetric int8 with one scale for the "
    "whole tensor, scale = |weight|.max() / 127 (one number), q = round(weight / scale) "
    "clamped to [-127, 127] as torch.int8",
    difficulty=2,
    minutes=15,
    reference=_quantize_reference,
    also_correct={
        "scale as a Python float": lambda weight: (
            _quantize_reference(weight)[0],
            float(_quantize_reference(weight)[1]),
        ),
        "scale as a (1,) tensor": lambda weight: (
            _quantize_reference(weight)[0],
            _quantize_reference(weight)[1].reshape(1),
        ),
    },
    wrong_answers={
        "scale absmax / 128": partial(_quantize, mistake="128"),
        "truncation instead of rounding": partial(_quantize, mistake="trunc"),
        "per-row scales": partial(_quantize, mistake="per_row"),
        "q returned as float": partial(_quantize, mistake="float_q"),
        "asymmetric min-max with a zero point": partial(_quantize, mistake="asymmetric"),
        "no guard for an all-zero weight": partial(_quantize, mistake="no_guard"),
    },
)
def check_quantize_per_tensor(answer: Any) -> None:
    """On random (8, 16), (32, 5) and (16, 64) weights, the last with one large outlier: q is
    int8 of the weight's shape in [-127, 127], scale is one number equal to |w|.max() / 127
    (relative 1e-6; a 0-d or one-element tensor or a Python float), and q * scale is within
    scale / 2 of every weight; an all-zero weight must give a positive, finite scale and q = 0
    (any positive scale will do there).

    Rejects absmax / 128, truncation instead of rounding, per-row scales, q as float, asymmetric
    min-max quantization with a zero point, and a zero scale (NaN) for an all-zero weight.
    """
    expect_callable(answer, name="quantize_per_tensor")
    expect_signature(
        answer,
        "quantize_per_tensor(weight)",
        "def quantize_per_tensor(weight)",
        torch.zeros(2, 2),
    )
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(105)
        weights = _weights()
    for what, weight in weights:
        _check_quantized(answer, weight, what)
    call = "quantize_per_tensor(torch.zeros(4, 6))"
    q, scale = _as_pair(answer(torch.zeros(4, 6)), call)
    s = as_number(scale, name=f"scale of {call}")
    if not (math.isfinite(s) and s > 0):
        raise ExerciseFailure(
            f"scale of {call} is {s}: an all-zero weight gives |w|.max() = 0, and 0 / 0 is NaN.",
            hint="Guard against an all-zero weight: keep the scale positive (clamp_min a tiny "
            "positive value, or use 1 when the maximum is 0); every q is 0 either way.",
        )
    if bool(q.ne(0).any()):
        raise ExerciseFailure(
            f"q of {call} is not all zeros.", hint="Zero weights quantize to q = 0."
        )


# ------------------------------------------------------------------------------------------
# quiz

quiz_question(
    "10.q1",
    notebook=NB,
    question="A decoder generates with a KV cache. What does the cache keep, and why does each "
    "new token then cost work proportional to the length n instead of recomputing the prefix "
    "(n^2 scores)?",
    options=[
        "The queries of all earlier tokens, so that the new token's key can be scored against "
        "each of them",
        "The keys and values of every earlier token in every layer. The new token computes "
        "only its own q, k and v, appends k and v, and scores its one query against the n "
        "cached keys. Earlier queries are not kept: under the causal mask the earlier rows of "
        "attention never change, so their queries are never needed again",
        "The attention weights of the earlier steps, so that the new row of the softmax is "
        "derived from the old rows without computing any scores",
        "The hidden states of the last layer for the prefix, so that only the last layer runs "
        "for the new token",
    ],
    answer=1,
    explanation="With causal attention, the outputs at earlier positions do not depend on later "
    "tokens, so they never need recomputing; the only thing a new token needs from the past is "
    "what its query is compared with and what it averages: the keys and values of every layer. "
    "Caching them turns each step into one query against n keys, O(n), where re-running the "
    "prefix costs O(n^2) scores. (a) Past queries are never used again: only the NEW query is "
    "scored, against the old keys. (c) The new token's row needs fresh scores of its own query; "
    "the old rows are not reused at all. (d) Every layer must process the new token, and each "
    "layer's attention needs that layer's keys and values, not just the last hidden states.",
)

quiz_question(
    "10.q2",
    notebook=NB,
    question="LLaMA-2-70B uses grouped-query attention: its 64 query heads share 8 key/value "
    "heads (groups of 8). What does that save compared with 64 key/value heads?",
    options=[
        "8 times fewer attention scores: each query head compares itself with 8 times fewer keys",
        "It makes the whole model about 8 times smaller",
        "Nothing at inference time: it only makes training more stable",
        "The KV cache, and the memory traffic of reading it at every decoding step, shrink "
        "8 times: only 8 heads of keys and values per layer are stored and read. The query "
        "side computes as many scores as before; since decoding is limited by memory bandwidth, "
        "the smaller cache speeds it up and leaves room for longer contexts or bigger batches "
        "(multi-query attention is the extreme: one KV head)",
    ],
    answer=3,
    explanation="A group of 8 query heads reads the same keys and values, so each layer caches "
    "8 KV heads instead of 64: 8 times less memory, and 8 times fewer bytes to move from memory "
    "per generated token, which is what limits decoding speed. (a) Every query head still "
    "scores every key: the number of scores and their FLOPs are unchanged; only the K and V "
    "projections and the cache shrink. (b) Only the K and V projection matrices shrink, a small "
    "part of the parameters; the query and output projections and the FFN are unchanged. (c) "
    "The saving is exactly at inference, in the cache.",
)

quiz_question(
    "10.q3",
    notebook=NB,
    question="Mixed-precision training in fp16 usually needs loss scaling; in bf16 it usually "
    "does not. Why?",
    options=[
        "bf16 keeps fp32's 8 exponent bits, so it covers the same range (down to about 1e-38); "
        "fp16 has 5, and gradients below about 6e-8 become zero unless the loss is multiplied "
        "up first and the gradients divided back. bf16 pays with fewer mantissa bits, so the "
        "optimizer still updates a master copy of the weights in fp32, where small updates are "
        "not rounded away",
        "bf16 has more mantissa bits than fp16, so it is more precise and its rounding errors "
        "never accumulate",
        "fp16 overflows on large gradients, and loss scaling divides them down; bf16 has a "
        "smaller range, so large gradients never appear",
        "bf16 training keeps everything in bf16, weights included, and needs no fp32 copy at "
        "all; fp16 needs both loss scaling and fp32 weights",
    ],
    answer=0,
    explanation="The exponent decides the range: bf16 has fp32's 8 exponent bits, fp16 only 5 "
    "(largest 65,504, smallest subnormal about 6e-8), so many small gradients underflow to zero "
    "in fp16. Loss scaling multiplies the loss by a large factor so the gradients move up into "
    "fp16's range, then divides them back before the update. bf16 needs no such trick, but it "
    "has only 8 significant bits (fp16 11), so an update lr * g much smaller than a weight is "
    "lost when added to a bf16 weight: hence fp32 master weights. (b) It is the other way "
    "round: bf16 is LESS precise than fp16. (c) bf16's range is far larger than fp16's, and "
    "the usual problem in fp16 is underflow, which scaling UP fixes. (d) Without an fp32 copy, "
    "small updates vanish in bf16's coarse spacing.",
)

quiz_question(
    "10.q4",
    notebook=NB,
    question="A 4096 x 4096 projection is fine-tuned with LoRA of rank r = 8 (W frozen, update "
    "(alpha / r) B A with B 4096 x 8 and A 8 x 4096). Which statement is right?",
    options=[
        "It trains 8 x 4096 x 4096 numbers: one full copy of the matrix per rank",
        "At inference the adapter must always run as a separate branch: two extra matrix "
        "products in every adapted layer, for good",
        "It trains r (in + out) = 8 x 8192 = 65,536 numbers, 0.4% of the layer's 16.8 million; "
        "after training, W + (alpha / r) B A can be folded into one matrix of the original "
        "shape, so the merged model costs exactly what the base model costs at inference "
        "(keeping the adapters separate instead lets one base serve several tasks)",
        "Merging replaces W by a rank-8 matrix, so the merged model is smaller than the base",
    ],
    answer=2,
    explanation="Only A and B train: 8 x 4096 + 4096 x 8 = 65,536 numbers instead of "
    "16,777,216, and the optimizer state shrinks with them. Since the update is a matrix of the "
    "same shape as W, it can be added into W once training is done: the merged layer is an "
    "ordinary 4096 x 4096 linear layer, with no extra cost at inference. (a) The trained part "
    "is the two thin matrices, not copies of W. (b) Running the branch separately is a choice "
    "(to swap adapters), not a necessity: merging removes it. (d) W + (alpha / r) B A is in "
    "general still full rank and of the same size; LoRA makes fine-tuning cheap, not the model "
    "smaller.",
)
