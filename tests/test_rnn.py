"""coursekit.rnn against torch.nn.RNN / LSTM / GRU with copied weights, and the LM wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coursekit.generate import generate
from coursekit.rnn import (
    GRU,
    LSTM,
    RNN,
    CharRNNLM,
    GRUCell,
    LSTMCell,
    RNNCell,
    copy_from_torch,
    hidden_gradient_norms,
    lm_loss,
)
from coursekit.train import TrainConfig, train

ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_rnn_matches_torch(num_layers: int, bias: bool) -> None:
    torch.manual_seed(0)
    ref = nn.RNN(5, 7, num_layers, batch_first=True, bias=bias)
    ours = copy_from_torch(RNN(5, 7, num_layers, bias=bias), ref)
    x, h0 = torch.randn(3, 11, 5), torch.randn(num_layers, 3, 7)
    out, h = ours(x, h0)
    out_ref, h_ref = ref(x, h0)
    _close(out, out_ref)
    _close(h, h_ref)


def test_relu_rnn_matches_torch() -> None:
    torch.manual_seed(1)
    ref = nn.RNN(4, 6, 2, batch_first=True, nonlinearity="relu")
    ours = copy_from_torch(RNN(4, 6, 2, nonlinearity="relu"), ref)
    x = torch.randn(2, 9, 4)
    _close(ours(x)[0], ref(x)[0])


@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_matches_torch(num_layers: int) -> None:
    torch.manual_seed(2)
    ref = nn.LSTM(6, 8, num_layers, batch_first=True)
    ours = copy_from_torch(LSTM(6, 8, num_layers), ref)
    x = torch.randn(4, 13, 6)
    state = (torch.randn(num_layers, 4, 8), torch.randn(num_layers, 4, 8))
    out, (h, c) = ours(x, state)
    out_ref, (h_ref, c_ref) = ref(x, state)
    _close(out, out_ref)
    _close(h, h_ref)
    _close(c, c_ref)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_gru_matches_torch(num_layers: int) -> None:
    torch.manual_seed(3)
    ref = nn.GRU(6, 8, num_layers, batch_first=True)
    ours = copy_from_torch(GRU(6, 8, num_layers), ref)
    x, h0 = torch.randn(4, 13, 6), torch.randn(num_layers, 4, 8)
    out, h = ours(x, h0)
    out_ref, h_ref = ref(x, h0)
    _close(out, out_ref)
    _close(h, h_ref)


def test_gradients_match_torch() -> None:
    """Back-propagation through time gives the same weight gradients as PyTorch's kernels."""
    torch.manual_seed(4)
    ref = nn.LSTM(3, 5, 2, batch_first=True)
    ours = copy_from_torch(LSTM(3, 5, 2), ref)
    x = torch.randn(2, 20, 3)
    ours(x)[0].pow(2).sum().backward()
    ref(x)[0].pow(2).sum().backward()
    _close(ours.cells[1].weight_hh.grad, ref.weight_hh_l1.grad)
    _close(ours.cells[0].weight_ih.grad, ref.weight_ih_l0.grad)


@pytest.mark.parametrize(
    ("ours_cls", "ref_cls"), [(RNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)]
)
def test_cells_match_torch_cells(ours_cls, ref_cls) -> None:
    torch.manual_seed(5)
    ref = ref_cls(4, 6)
    ours = ours_cls(4, 6)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4)
    if ours_cls is LSTMCell:
        state = (torch.randn(3, 6), torch.randn(3, 6))
        for a, b in zip(ours(x, state), ref(x, state), strict=False):
            _close(a, b)
    else:
        h = torch.randn(3, 6)
        _close(ours(x, h), ref(x, h))


def test_lstm_gate_ranges_and_cell_update() -> None:
    torch.manual_seed(6)
    cell = LSTMCell(3, 4)
    x, h, c = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 4)
    (h1, c1), g = cell.gates(x, (h, c))
    for gate in (g.input, g.forget, g.output):
        assert ((gate > 0) & (gate < 1)).all()
    assert ((g.candidate > -1) & (g.candidate < 1)).all()
    _close(c1, g.forget * c + g.input * g.candidate)
    _close(h1, g.output * torch.tanh(c1))


def test_bad_input_shapes_raise() -> None:
    with pytest.raises(ValueError, match=r"\(B, T, 5\)"):
        RNN(5, 7)(torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        GRUCell(4, 2)(torch.randn(3, 5))
    with pytest.raises(TypeError):
        copy_from_torch(RNN(2, 3), nn.GRU(2, 3))
    with pytest.raises(ValueError, match="Shapes differ"):
        copy_from_torch(RNN(2, 3), nn.RNN(2, 4))
    with pytest.raises(ValueError, match="cell must be"):
        CharRNNLM(10, cell="transformer")  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_scratch_equals_torch(cell: str) -> None:
    torch.manual_seed(7)
    model = CharRNNLM(11, 16, cell=cell, num_layers=2)  # type: ignore[arg-type]
    twin = model.to_scratch()
    idx = torch.randint(0, 11, (3, 9))
    _close(twin(idx)[0], model(idx)[0])


def test_forget_bias_is_added() -> None:
    torch.manual_seed(8)
    a = CharRNNLM(5, 8, cell="lstm", forget_bias=0.0)
    torch.manual_seed(8)
    b = CharRNNLM(5, 8, cell="lstm", forget_bias=1.0)
    diff = b.rnn.bias_ih_l0 - a.rnn.bias_ih_l0
    _close(diff[8:16], torch.ones(8))
    _close(diff[:8], torch.zeros(8))


def test_language_model_learns_with_train_loop() -> None:
    """Trained with coursekit.train on a repeating pattern, the loss falls far below log(V)."""
    torch.manual_seed(9)
    pattern = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6] * 40)
    gen = torch.Generator().manual_seed(0)

    def get_batch(split: str):
        starts = torch.randint(0, len(pattern) - 17, (16,), generator=gen)
        w = torch.stack([pattern[s : s + 17] for s in starts])
        return w[:, :-1], w[:, 1:]

    model = CharRNNLM(10, 32, cell="gru")
    history = train(model, get_batch, lm_loss, TrainConfig(steps=150, lr=1e-2, progress=False))
    assert history.final_val_loss < 0.3 < 2.3
    out = generate(model, torch.tensor([[3, 1, 4]]), 5, temperature=0)
    assert out.shape == (1, 8)
    assert out[0, 3:].tolist() == [1, 5, 9, 2, 6]
    # the recurrent cache gives the same tokens as recomputing from the prompt every step
    assert torch.equal(
        generate(model, torch.tensor([[3, 1, 4]]), 5, temperature=0, use_cache=False), out
    )


def test_gradient_norms_shape_and_decay() -> None:
    torch.manual_seed(10)
    model = CharRNNLM(7, 16, cell="rnn")
    norms = hidden_gradient_norms(model, torch.randint(0, 7, (4, 30)))
    assert norms.shape == (30,)
    assert norms[-1] == pytest.approx(1.0, abs=1e-5)
    assert norms[0] < norms[-5] < norms[-1]


def test_lstm_gates_trace() -> None:
    model = CharRNNLM(7, 6, cell="lstm")
    gates = model.lstm_gates(torch.randint(0, 7, (1, 12)))
    assert len(gates) == 12 and gates[0].forget.shape == (1, 6)
    with pytest.raises(ValueError):
        CharRNNLM(7, 6, cell="gru").lstm_gates(torch.zeros(1, 3, dtype=torch.long))


def test_notebook02_checks_accept_reference_and_reject_wrong(monkeypatch) -> None:
    from coursekit.exercises import check

    monkeypatch.setenv("COURSEKIT_PROGRESS", "off")
    monkeypatch.delenv("COURSEKIT_STRICT_CHECKS", raising=False)

    def rnn_step(x, h, w_ih, w_hh, b_ih, b_hh):
        return torch.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)

    def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh, order=(0, 1, 2, 3)):
        gates = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=-1)
        i, f, g, o = (gates[k] for k in order)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    assert check("02.1", rnn_step)
    assert not check("02.1", lambda x, h, *w: torch.relu(x @ w[0].T + h @ w[1].T))

    def rnn_loop(x, h0, *w):
        h, states = h0, []
        for t in range(x.shape[1]):
            h = rnn_step(x[:, t], h, *w)
            states.append(h)
        return torch.stack(states, dim=1), h

    def time_first(x, h0, *w):
        states, h = rnn_loop(x, h0, *w)
        return states.transpose(0, 1), h

    assert check("02.2", (2, 1)) and not check("02.2", (512, 1))
    assert check("02.3", rnn_loop) and not check("02.3", time_first)
    assert check("02.4", lstm_step)
    assert not check("02.4", lambda *a: lstm_step(*a, order=(1, 0, 2, 3)))
    assert check("02.5", "b") and not check("02.5", "a")
    assert check("02.6", {16: 0.46, 64: 0.88}) and not check("02.6", {16: 0.88, 64: 0.46})
