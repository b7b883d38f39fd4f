"""Checks and quiz of notebook 02: RNN baselines."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from coursekit.exercises.expect import (
    a_type,
    as_number,
    expect_callable,
    expect_close,
    show_number,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

NB = "02"


def _cell(kind: type[nn.Module], n_in: int, n_hidden: int, seed: int) -> Any:
    """A reference PyTorch cell with seeded weights, leaving the learner's random state alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return kind(n_in, n_hidden)


# ------------------------------------------------------------------------------------------
# 02.1 one RNN step


def _rnn_reference(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)


def _rnn_untransposed(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    return torch.tanh(x @ W_ih + b_ih + h @ W_hh + b_hh)


def _rnn_one_bias(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T)


def _rnn_sigmoid(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    return torch.sigmoid(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)


def _rnn_no_tanh(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> torch.Tensor:
    return x @ W_ih.T + b_ih + h @ W_hh.T + b_hh


_RNN_MISTAKES = [
    (
        _rnn_untransposed,
        "PyTorch stores weights as (out, in): x (B, I) times W_ih (H, I) needs the transpose, "
        "x @ W_ih.T (and h @ W_hh.T).",
    ),
    (_rnn_one_bias, "There are two biases, b_ih and b_hh: add both."),
    (_rnn_sigmoid, "The vanilla RNN squashes with tanh (values in [-1, 1]), not sigmoid."),
    (_rnn_no_tanh, "Apply tanh to the sum: h_new = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)."),
]


@exercise(
    "02.1",
    notebook=NB,
    title="A vanilla RNN step",
    asks="Implement rnn_step(x, h, W_ih, W_hh, b_ih, b_hh) = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)",
    difficulty=1,
    minutes=5,
    reference=_rnn_reference,
    wrong_answers={
        "weights not transposed": _rnn_untransposed,
        "forgets b_hh": _rnn_one_bias,
        "sigmoid instead of tanh": _rnn_sigmoid,
        "no nonlinearity": _rnn_no_tanh,
    },
)
def check_rnn_step(answer: Any) -> None:
    """Equals torch.nn.RNNCell, with square weights (input size = hidden size) and with 4 -> 6.

    Rejects untransposed weights (the square case makes them a wrong value, not a shape error),
    a missing bias, sigmoid instead of tanh, and no nonlinearity.
    """
    expect_callable(answer, name="rnn_step")
    g = torch.Generator().manual_seed(0)
    for n_in, n_hidden in [(5, 5), (4, 6)]:
        ref = _cell(nn.RNNCell, n_in, n_hidden, seed=n_in)
        x, h = torch.randn(3, n_in, generator=g), torch.randn(3, n_hidden, generator=g)
        weights = (ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
        weights = tuple(w.detach() for w in weights)
        got = answer(x, h, *weights)
        expect_close(
            got,
            ref(x, h).detach(),
            name=f"rnn_step with input size {n_in}, hidden size {n_hidden}",
            hint="h_new = tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh): weights are (out, in).",
            mistakes=[(partial(fn, x, h, *weights), hint) for fn, hint in _RNN_MISTAKES],
        )


# ------------------------------------------------------------------------------------------
# 02.2 the sequential bottleneck


def _factor(value: Any, name: str) -> float:
    return as_number(value, name=name, example="answer = (3, 0.5)")


@exercise(
    "02.2",
    notebook=NB,
    title="Predict: the sequential bottleneck",
    asks="From 512 to 1,024 tokens, by what factor does the number of dependent "
    "(one-after-another) steps of one layer grow: answer (rnn_factor, attention_factor)",
    difficulty=1,
    minutes=5,
    reference=(2, 1),
    also_correct={"floats": (2.0, 1.0), "a list": [2, 1]},
    wrong_answers={
        "step counts instead of factors, (512, 1)": (512, 1),
        "attention's work instead of its steps, (2, 4)": (2, 4),
        "attention grows linearly, (2, 2)": (2, 2),
        "the RNN does not grow, (1, 1)": (1, 1),
        "fractions that truncate to (2, 1)": (2.9, 1.4),
        "a single number": 2,
    },
)
def check_sequential(answer: Any) -> None:
    """(2, 1) exactly: the RNN's chain doubles with T; attention's few batched products do not depend on T.

    Rejects step counts instead of factors, attention's T^2 work mistaken for its dependent
    steps, an RNN that does not grow, and numbers that only truncate to the answer.
    """
    if (
        isinstance(answer, (str, bytes))
        or not isinstance(answer, (tuple, list))
        or len(answer) != 2
    ):
        raise ExerciseFailure(
            f"answer should be a pair (rnn_factor, attention_factor), not {a_type(answer)}.",
            hint="Set answer = (rnn_factor, attention_factor), two numbers.",
        )
    rnn = _factor(answer[0], "rnn_factor")
    attention = _factor(answer[1], "attention_factor")
    count_hint = (
        "Give the factor (steps at 1,024 tokens divided by steps at 512), not the number of steps."
    )
    if rnn != 2:
        hints = {
            1.0: "h_t needs h_{t-1}: one dependent step per token, so twice the tokens is a "
            "chain twice as long.",
            4.0: "The RNN's chain has one step per token (linear in T), not T^2.",
            512.0: count_hint,
            1024.0: count_hint,
        }
        raise ExerciseFailure(
            f"rnn_factor = {show_number(rnn)} is not right.",
            hint=hints.get(
                rnn,
                "One dependent step per token: divide the steps at 1,024 tokens by those at 512.",
            ),
        )
    if attention != 1:
        work = (
            "Attention's WORK grows (its T x T scores: 4 times), but all positions are computed "
            "in the same few batched matrix products, whatever T is: the number of steps that "
            "must wait for each other does not change."
        )
        linear = (
            "Not linear either: each query's work grows with T, but the T queries are computed "
            "side by side in one batched product, so no step waits for another and the count "
            "of dependent steps stays the same."
        )
        hints = {4.0: work, 2.0: linear, 512.0: count_hint, 1024.0: count_hint}
        raise ExerciseFailure(
            f"attention_factor = {show_number(attention)} is not right.",
            hint=hints.get(attention, work),
        )


# ------------------------------------------------------------------------------------------
# 02.3 the RNN time loop


def _loop(
    x: torch.Tensor,
    h0: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    *,
    feed_back: bool = True,
    time_first: bool = False,
    with_h0: bool = False,
    return_first: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, I), h0 (B, H) -> states (B, T, H) and the last state (B, H)."""
    h = h0
    states = [h0] if with_h0 else []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ W_ih.T + b_ih + (h if feed_back else h0) @ W_hh.T + b_hh)
        states.append(h)
    stacked = torch.stack(states, dim=0 if time_first else 1)
    return stacked, (states[0] if return_first else h)


def _loop_reference(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _loop(*args)


def _loop_no_feedback(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _loop(*args, feed_back=False)


def _loop_time_first(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _loop(*args, time_first=True)


def _loop_with_h0(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _loop(*args, with_h0=True)


def _loop_first_state(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _loop(*args, return_first=True)


@exercise(
    "02.3",
    notebook=NB,
    title="The RNN time loop",
    asks="Implement rnn_loop(x, h0, W_ih, W_hh, b_ih, b_hh): x (B, T, I) -> all states (B, T, H) "
    "and the last state (B, H)",
    difficulty=2,
    minutes=10,
    reference=_loop_reference,
    wrong_answers={
        "h0 at every step (h not fed back)": _loop_no_feedback,
        "states stacked time-first, (T, B, H)": _loop_time_first,
        "h0 kept among the states, (B, T + 1, H)": _loop_with_h0,
        "returns the first state instead of the last": _loop_first_state,
    },
)
def check_rnn_loop(answer: Any) -> None:
    """Equals torch.nn.RNN (batch_first, copied weights) on a (3, 5, 4) input with hidden size 6.

    Rejects a loop that never feeds h back (h0 at every step), states stacked time-first,
    h0 kept among the returned states, and the first state returned instead of the last.
    """
    expect_callable(answer, name="rnn_loop")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        ref = nn.RNN(4, 6, batch_first=True)
    g = torch.Generator().manual_seed(3)
    x, h0 = torch.randn(3, 5, 4, generator=g), torch.randn(3, 6, generator=g)
    weights = tuple(
        w.detach()
        for w in ref.parameters()  # W_ih, W_hh, b_ih, b_hh
    )
    out = answer(x, h0, *weights)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseFailure(
            f"rnn_loop should return a pair (states, h_last), not {a_type(out)}.",
            hint="End with `return torch.stack(states, dim=1), h`.",
        )
    states_ref, h_ref = (t.detach() for t in ref(x, h0.unsqueeze(0)))

    def wrong(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]], index: int) -> Any:
        return lambda: fn(x, h0, *weights)[index]

    expect_close(
        out[0],
        states_ref,
        name="states",
        hint="h = h0; then for each t: h = rnn_step(x[:, t], h, ...), keeping every new h; "
        "stack them with dim=1.",
        mistakes=[
            (
                wrong(_loop_no_feedback, 0),
                "Every step starts from h0: feed the NEW state back, h = rnn_step(x[:, t], h, ...), "
                "so that h_t depends on h_{t-1}.",
            ),
            (
                wrong(_loop_time_first, 0),
                "The states are stacked time-first (T, B, H): stack along dim=1 to get "
                "(B, T, H), the layout of the input x.",
            ),
            (
                wrong(_loop_with_h0, 0),
                "Keep only the T new states h_1 .. h_T, not the initial state h0: (B, T, H).",
            ),
        ],
    )
    expect_close(
        out[1],
        h_ref[0],
        name="h_last",
        hint="Return the state after the LAST step, h_T (equal to states[:, -1]).",
        mistakes=[
            (
                wrong(_loop_first_state, 1),
                "That is the first state h_1: return the LAST one, h_T = states[:, -1].",
            )
        ],
    )


# ------------------------------------------------------------------------------------------
# 02.4 an LSTM cell


def _lstm(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    *,
    order: str = "ifgo",
    input_gate: bool = True,
    tanh_on_cell: bool = True,
    swap_outputs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    pre = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    gates = dict(zip(order, pre.chunk(4, dim=-1), strict=True))
    i, f, o = (torch.sigmoid(gates[name]) for name in "ifo")
    g = torch.tanh(gates["g"])
    c_new = f * c + (i * g if input_gate else g)
    h_new = o * (torch.tanh(c_new) if tanh_on_cell else c_new)
    return (c_new, h_new) if swap_outputs else (h_new, c_new)


def _lstm_reference(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _lstm(x, h, c, W_ih, W_hh, b_ih, b_hh)


def _lstm_ifog(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _lstm(*args, order="ifog")


def _lstm_no_input_gate(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _lstm(*args, input_gate=False)


def _lstm_no_tanh(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _lstm(*args, tanh_on_cell=False)


def _lstm_swapped(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _lstm(*args, swap_outputs=True)


_GATE_ORDER_HINT = (
    "The 4H pre-activations hold the gates in the order i, f, g, o (PyTorch's order): "
    "i, f, g, o = pre.chunk(4, dim=-1)."
)


@exercise(
    "02.4",
    notebook=NB,
    title="An LSTM cell from its equations",
    asks="Implement lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_new, c_new), gates in order i, f, g, o",
    difficulty=2,
    minutes=15,
    reference=_lstm_reference,
    wrong_answers={
        "gates in the order i, f, o, g": _lstm_ifog,
        "c_new = f * c + g (no input gate)": _lstm_no_input_gate,
        "h_new = o * c_new (no tanh)": _lstm_no_tanh,
        "returns (c_new, h_new)": _lstm_swapped,
    },
)
def check_lstm_step(answer: Any) -> None:
    """c_new then h_new equal torch.nn.LSTMCell's for a 5 -> 7 cell.

    Rejects another gate order (i, f, o, g), a missing input gate, h_new without the tanh, and
    the pair returned in the wrong order.
    """
    expect_callable(answer, name="lstm_step")
    ref = _cell(nn.LSTMCell, 5, 7, seed=1)
    g = torch.Generator().manual_seed(1)
    x, h, c = (torch.randn(4, n, generator=g) for n in (5, 7, 7))
    weights = tuple(w.detach() for w in (ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh))
    out = answer(x, h, c, *weights)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseFailure(
            f"lstm_step should return a pair (h_new, c_new), not {a_type(out)}.",
            hint="End with `return h_new, c_new`.",
        )
    h_ref, c_ref = (t.detach() for t in ref(x, (h, c)))
    if (
        isinstance(out[0], torch.Tensor)
        and isinstance(out[1], torch.Tensor)
        and out[0].shape == c_ref.shape
        and torch.allclose(out[0], c_ref, atol=1e-5)
        and torch.allclose(out[1], h_ref, atol=1e-5)
    ):
        raise ExerciseFailure(
            "h_new and c_new are right but swapped.",
            hint="Return the pair in the order (h_new, c_new).",
        )

    def wrong(
        fn: Callable[..., tuple[torch.Tensor, torch.Tensor]], index: int
    ) -> Callable[[], torch.Tensor]:
        return lambda: fn(x, h, c, *weights)[index]

    expect_close(
        out[1],
        c_ref,
        name="c_new",
        hint="c_new = f * c + i * g with i, f, o = sigmoid(...), g = tanh(...); chunk the 4H "
        "pre-activations in the order i, f, g, o.",
        mistakes=[
            (wrong(_lstm_ifog, 1), _GATE_ORDER_HINT),
            (
                wrong(_lstm_no_input_gate, 1),
                "The input gate scales the candidate: c_new = f * c + i * g.",
            ),
        ],
    )
    expect_close(
        out[0],
        h_ref,
        name="h_new",
        hint="h_new = o * tanh(c_new).",
        mistakes=[(wrong(_lstm_no_tanh, 0), "Squash the cell state: h_new = o * tanh(c_new).")],
    )


# ------------------------------------------------------------------------------------------
# 02.5 explain the winner

_WHY_NOT = {
    "a": "More parameters do not change how the gradient flows back through time: look at "
    "what multiplies the old cell state in dc_t/dc_{t-1}.",
    "c": "A sigmoid's derivative is at most 1/4, smaller than tanh's (at most 1): that would "
    "make gradients vanish faster, not slower.",
    "d": "All three models were trained with the same learning rate and schedule (section 3); "
    "a learning rate scales each update, it does not decide how far back the gradient reaches.",
}


@exercise(
    "02.5",
    notebook=NB,
    title="Explain the winner",
    asks="Which mechanism lets the LSTM carry gradient further back than the vanilla RNN? "
    "Answer with a letter",
    difficulty=2,
    minutes=5,
    reference="b",
    also_correct={"upper case": "B", "in parentheses": "(b)"},
    wrong_answers={
        "more parameters": "a",
        "sigmoid derivatives": "c",
        "learning rate": "d",
        "two letters": "bc",
    },
)
def check_why_lstm(answer: Any) -> None:
    """The letter b (any case, with or without parentheses): the additive cell path, f_t near 1.

    Each wrong letter gets its own explanation; more than one letter is rejected.
    """
    letter = str(answer).strip().strip("()").strip().lower()
    if len(letter) != 1 or letter not in "abcd":
        raise ExerciseFailure(
            f"Answer with one letter: 'a', 'b', 'c' or 'd' (you gave {answer!r}).",
            hint='Set answer = "a" (with the quotes), for example.',
        )
    if letter != "b":
        raise ExerciseFailure(f"({letter}) is not the mechanism.", hint=_WHY_NOT[letter])


# ------------------------------------------------------------------------------------------
# 02.6 an ablation: a bigger state

CHANCE = 1 / 8  # the recall task draws its tokens from 8 symbols


@exercise(
    "02.6",
    notebook=NB,
    title="Ablation: does a bigger state recall further?",
    asks="Rerun the delay-8 recall task with hidden size 64 instead of 16 (nothing else "
    "changed): answer = {16: accuracy, 64: accuracy}",
    difficulty=3,
    minutes=10,
    reference={16: 0.46, 64: 0.88},
    also_correct={
        "tensor values": {16: torch.tensor(0.46), 64: torch.tensor(0.88)},
        "keys as strings": {"16": 0.5, "64": 0.9},
    },
    wrong_answers={
        "percentages": {16: 46.0, 64: 88.0},
        "one run only, no comparison": {64: 0.88},
        "the two runs swapped": {16: 0.88, 64: 0.46},
        "the big run at chance (the delay changed too)": {16: 0.46, 64: 0.125},
        "a single number": 0.88,
    },
)
def check_state_ablation(answer: Any) -> None:
    """A dict {16: a, 64: b} of accuracies in [0, 1] where the bigger state recalls clearly
    better (b above a by at least 0.2, b well above chance 1/8), the effect the notebook measures.

    Rejects percentages, a single run, the two runs swapped, a big run at chance, and a number.
    """
    if not isinstance(answer, dict):
        raise ExerciseFailure(
            f"answer should be a dict {{hidden_size: accuracy}}, not {a_type(answer)}.",
            hint="An ablation compares two runs: answer = {16: small_accuracy, 64: big_accuracy}.",
        )
    try:
        acc = {int(k): as_number(v, name=f"answer[{k!r}]") for k, v in answer.items()}
    except (TypeError, ValueError) as err:
        raise ExerciseFailure(
            "The keys should be the hidden sizes 16 and 64.",
            hint="answer = {16: small_accuracy, 64: big_accuracy}",
        ) from err
    if set(acc) != {16, 64}:
        raise ExerciseFailure(
            f"answer has the hidden sizes {sorted(acc)}, not 16 and 64.",
            hint="An ablation compares two runs that differ in ONE factor: give the accuracy at "
            "hidden size 16 (the baseline) AND at 64.",
        )
    if any(not 0 <= v <= 1 for v in acc.values()):
        raise ExerciseFailure(
            f"Accuracies {acc} are not in [0, 1].",
            hint="Give the accuracy as a fraction (0.9), as delayed_recall_accuracy returns it, "
            "not as percentages.",
        )
    small, big = acc[16], acc[64]
    if big < CHANCE + 0.1:
        raise ExerciseFailure(
            f"Hidden size 64 at {big:.2f} is about chance (1/8).",
            hint="Change only the hidden size: keep delay=8 and the default steps, as in the "
            "baseline (at delay 16 both sizes are at chance).",
        )
    if big < small - 0.05:
        raise ExerciseFailure(
            f"The bigger state recalls worse in your answer ({big:.2f} < {small:.2f}).",
            hint="Check which run is which: the runs look swapped, the key 64 goes with the "
            "model of hidden size 64.",
        )
    if big < small + 0.2:
        raise ExerciseFailure(
            f"Hidden size 64 ({big:.2f}) is hardly better than 16 ({small:.2f}).",
            hint="Change only hidden=64 in delayed_recall_accuracy(8, ...): same delay, same "
            "steps and seed as the baseline.",
        )


quiz_question(
    "02.q1",
    notebook=NB,
    question="In h_t = f(h_{t-1}, x_t), why can't the steps of one training sequence run in parallel?",
    options=[
        "Because the weights change at every step",
        "Because x_t depends on h_t",
        "They can: an RNN is as parallel as attention",
        "Because h_t depends on h_{t-1}, which must be computed first",
    ],
    answer=3,
    explanation="The recurrence is a chain of T dependent steps; only the batch dimension runs in "
    "parallel. Self-attention computes all positions at once, which is why it uses GPUs better.",
    feedback=[
        "The same weights are used at every step of the sequence; they change only between "
        "training steps, after the whole sequence has been processed.",
        "In training, x_t is given: it is the t-th token of the input. Only h_t is computed, and "
        "it needs h_{t-1}.",
        "Attention computes all positions with a few matrix products; an RNN takes T steps in "
        "order, each waiting for the one before.",
        "",
    ],
)

quiz_question(
    "02.q2",
    notebook=NB,
    question="Back-propagation through time multiplies per-step Jacobians. If their norms are "
    "around 0.8, the gradient from 50 steps away is about...",
    options=["0.8", "40", "1e-5 (it vanishes)", "the same as from 1 step away"],
    answer=2,
    explanation="0.8^50 ≈ 1.4e-5: exponential decay with distance. Norms above 1 explode the same way "
    "(gradient clipping handles that; gating handles vanishing).",
    feedback=[
        "0.8 is the factor of a single step; a gradient from 50 steps away passes through 50 "
        "such factors.",
        "40 = 0.8 x 50 adds the factors up; back-propagation multiplies them, so the decay is "
        "exponential.",
        "",
        "That would need norms of exactly 1; below 1, every further step shrinks the gradient "
        "again.",
    ],
)

quiz_question(
    "02.q3",
    notebook=NB,
    question="What does the LSTM forget gate f_t control?",
    options=[
        "How much of the previous cell state c_{t-1} is kept in c_t",
        "Which input characters are skipped",
        "The learning rate of the cell",
        "How much of the cell state is shown as the output h_t",
    ],
    answer=0,
    explanation="c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t: with f_t near 1 the cell state (and its gradient) "
    "passes along almost unchanged, the 'memory highway'. The output gate controls h_t.",
    feedback=[
        "",
        "No input is skipped: the input gate i_t scales how much of the candidate g_t enters the "
        "cell, and the forget gate acts on c_{t-1}, not on x_t.",
        "The gates are computed from x_t and h_{t-1} in the forward pass; the learning rate "
        "belongs to the optimiser and does not change from one time step to the next.",
        "That is the output gate o_t: h_t = o_t ⊙ tanh(c_t).",
    ],
)

quiz_question(
    "02.q4",
    notebook=NB,
    question="A seq2seq RNN squeezes a whole source sentence into its final hidden state. What is "
    "the problem called, and what fixed it?",
    options=[
        "Exploding gradients; fixed by clipping",
        "The fixed-size hidden-state bottleneck; fixed by attention over all encoder states",
        "Overfitting; fixed by dropout",
        "Tokenization errors; fixed by BPE",
    ],
    answer=1,
    explanation="However long the input, the decoder sees one vector of hidden_size numbers. "
    "Attention (notebook 03) lets every decoder step look back at every encoder state.",
    feedback=[
        "Clipping does tame exploding gradients, but with them tamed a long sentence still has "
        "to fit into one vector.",
        "",
        "Dropout fights memorising the training set; the bottleneck hurts on the training set "
        "too, because a long sentence does not fit into hidden_size numbers.",
        "BPE changes how the text is split into tokens, not how much of the source the decoder "
        "sees: it still gets one final hidden state.",
    ],
)
