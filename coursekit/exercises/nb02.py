"""Checks and quiz of notebook 02: RNN baselines."""

from __future__ import annotations

import torch
from torch import nn

from coursekit.exercises.expect import expect_close, expect_equal, expect_true
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

NB = "02"


@exercise(
    "02.1",
    notebook=NB,
    title="A vanilla RNN step",
    asks="Implement rnn_step(x, h, W_ih, W_hh, b_ih, b_hh) = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)",
    difficulty=1,
    minutes=5,
)
def check_rnn_step(answer) -> None:
    torch.manual_seed(0)
    ref = nn.RNNCell(4, 6)
    x, h = torch.randn(3, 4), torch.randn(3, 6)
    got = answer(x, h, ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
    expect_close(got, ref(x, h).detach(), name="rnn_step", hint="Weights are (out, in): use W.T.")


@exercise(
    "02.2",
    notebook=NB,
    title="An LSTM cell from its equations",
    asks="Implement lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_new, c_new), gates in order i, f, g, o",
    difficulty=2,
    minutes=15,
)
def check_lstm_step(answer) -> None:
    torch.manual_seed(1)
    ref = nn.LSTMCell(5, 7)
    x, h, c = torch.randn(4, 5), torch.randn(4, 7), torch.randn(4, 7)
    out = answer(x, h, c, ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseFailure("lstm_step should return a pair (h_new, c_new).")
    h_ref, c_ref = ref(x, (h, c))
    expect_close(
        out[1],
        c_ref.detach(),
        name="c_new",
        hint="c_new = f * c + i * g with i, f, o = sigmoid(...), g = tanh(...); chunk the 4H "
        "pre-activations in the order i, f, g, o.",
    )
    expect_close(out[0], h_ref.detach(), name="h_new", hint="h_new = o * tanh(c_new).")


@exercise(
    "02.3",
    notebook=NB,
    title="Predict: how fast does a gradient vanish?",
    asks="A linear RNN h_t = 0.5 * h_{t-1} + x_t: what is the norm of dh_T/dh_{T-10} (a number)?",
    difficulty=1,
    minutes=5,
)
def check_vanishing(answer) -> None:
    value = float(answer)
    expect_true(
        abs(value - 0.5**10) < 1e-6,
        f"{value:g} is not right.",
        hint="Each step back multiplies the gradient by the Jacobian dh_t/dh_{t-1} = 0.5.",
    )


@exercise(
    "02.4",
    notebook=NB,
    title="Predict: the sequential bottleneck",
    asks="How many dependent (one-after-another) steps does a layer need for a 512-token sequence: "
    "answer (rnn_steps, attention_steps)",
    difficulty=1,
    minutes=5,
)
def check_sequential(answer) -> None:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ExerciseFailure("Answer with a pair (rnn_steps, attention_steps).")
    expect_equal(
        int(answer[0]),
        512,
        name="rnn_steps",
        hint="h_t needs h_{t-1}: one step per token, none can start early.",
    )
    expect_equal(
        int(answer[1]),
        1,
        name="attention_steps",
        hint="Every position's output is one batched matrix product over all positions.",
    )


@exercise(
    "02.5",
    notebook=NB,
    title="Explain the winner",
    asks="Which mechanism lets the LSTM carry gradient further back than the vanilla RNN? "
    "Answer with a letter",
    difficulty=2,
    minutes=5,
)
def check_why_lstm(answer) -> None:
    letter = str(answer).strip().lower()
    if letter not in "abcd" or len(letter) != 1:
        raise ExerciseFailure("Answer with one letter: 'a', 'b', 'c' or 'd'.")
    expect_equal(
        letter,
        "b",
        name="your choice",
        hint="Look at dc_t/dc_{t-1}: what multiplies the old cell state, and is there a tanh on the path?",
    )


quiz_question(
    "02.q1",
    notebook=NB,
    question="In h_t = f(h_{t-1}, x_t), why can't the steps of one training sequence run in parallel?",
    options=[
        "Because the weights change at every step",
        "Because h_t depends on h_{t-1}, which must be computed first",
        "Because x_t depends on h_t",
        "They can: an RNN is as parallel as attention",
    ],
    answer=1,
    explanation="The recurrence is a chain of T dependent steps; only the batch dimension runs in "
    "parallel. Self-attention computes all positions at once, which is why it uses GPUs better.",
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
)
quiz_question(
    "02.q3",
    notebook=NB,
    question="What does the LSTM forget gate f_t control?",
    options=[
        "Which input characters are skipped",
        "How much of the previous cell state c_{t-1} is kept in c_t",
        "The learning rate of the cell",
        "How much of the cell state is shown as the output h_t",
    ],
    answer=1,
    explanation="c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t: with f_t near 1 the cell state (and its gradient) "
    "passes along almost unchanged, the 'memory highway'. The output gate controls h_t.",
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
)
