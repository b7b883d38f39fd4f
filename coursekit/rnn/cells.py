"""Recurrent cells written from their equations, and multi-layer wrappers that run them in time.

Parameter names and layouts follow ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (gates stacked in the
rows of ``weight_ih`` and ``weight_hh``: LSTM ``i, f, g, o``; GRU ``r, z, n``), so weights can be
copied across with :func:`copy_from_torch` and the results compared number for number.

Shapes: ``x_t`` is ``(B, input_size)``, hidden states are ``(B, hidden_size)``; sequences are
batch-first ``(B, T, input_size)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import torch
from torch import nn

from coursekit.dropout import Dropout

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "LSTMGates",
    "RNN",
    "RNNCell",
    "copy_from_torch",
]


class _CellBase(nn.Module):
    """Shared parameters: ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, two biases ``(G*H,)``."""

    n_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}."
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        g = self.n_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: every weight uniform in ±1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects x_t of shape (B, {self.input_size}), "
                f"got {tuple(x.shape)}."
            )

    def _linear_parts(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gi = x @ self.weight_ih.T
        gh = h @ self.weight_hh.T
        if self.bias_ih is not None:
            gi = gi + self.bias_ih
            gh = gh + self.bias_hh
        return gi, gh

    def zero_state(self, batch: int, *, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.hidden_size)


class RNNCell(_CellBase):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}.")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, I)``, h ``(B, H)`` or None (zeros) -> h_t ``(B, H)``."""
        self._check_input(x)
        if h is None:
            h = self.zero_state(x.shape[0], like=x)
        gi, gh = self._linear_parts(x, h)
        pre = gi + gh
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class LSTMGates(NamedTuple):
    """The four gate activations of one LSTM step, each ``(B, H)``."""

    input: torch.Tensor  # i_t: how much of the candidate to write
    forget: torch.Tensor  # f_t: how much of the old cell state to keep
    candidate: torch.Tensor  # g_t: the proposed new content, in (-1, 1)
    output: torch.Tensor  # o_t: how much of tanh(c_t) to expose as h_t


class LSTMCell(_CellBase):
    """Long short-term memory.

    i = σ(W_ii x + b_ii + W_hi h + b_hi),   f = σ(...),   g = tanh(...),   o = σ(...)
    c_t = f ⊙ c_{t-1} + i ⊙ g,              h_t = o ⊙ tanh(c_t)
    """

    n_gates = 4

    def gates(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], LSTMGates]:
        """One step that also returns the gate activations: ((h_t, c_t), gates)."""
        self._check_input(x)
        if state is None:
            zero = self.zero_state(x.shape[0], like=x)
            state = (zero, zero)
        h, c = state
        gi, gh = self._linear_parts(x, h)
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        return (h_new, c_new), LSTMGates(i, f, g, o)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(B, I)``, state (h, c) each ``(B, H)`` or None -> (h_t, c_t)."""
        new_state, _ = self.gates(x, state)
        return new_state


class GRUCell(_CellBase):
    """Gated recurrent unit (PyTorch's convention: the reset gate multiplies W_hn h + b_hn).

    r = σ(W_ir x + b_ir + W_hr h + b_hr),   z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
    """

    n_gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, I)``, h ``(B, H)`` or None -> h_t ``(B, H)``."""
        self._check_input(x)
        if h is None:
            h = self.zero_state(x.shape[0], like=x)
        gi, gh = self._linear_parts(x, h)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h


# --------------------------------------------------------------------------------------
# Multi-layer wrappers: the time loop
# --------------------------------------------------------------------------------------


class _StackBase(nn.Module):
    """Layers of cells unrolled over time (batch-first), with dropout between layers."""

    cell_class: type[_CellBase] = RNNCell
    has_cell_state = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        **cell_kwargs: object,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cells = nn.ModuleList(
            self.cell_class(input_size if k == 0 else hidden_size, hidden_size, bias, **cell_kwargs)
            for k in range(num_layers)
        )
        self.dropout = Dropout(dropout)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects a batch-first sequence (B, T, {self.input_size}), "
                f"got {tuple(x.shape)}."
            )

    def _initial(self, x: torch.Tensor, state):  # noqa: ANN001 - h0 (L,B,H) or (h0, c0)
        batch = x.shape[0]
        zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
        if state is None:
            return (zeros, zeros.clone()) if self.has_cell_state else zeros
        return state

    def forward(self, x: torch.Tensor, state=None):  # noqa: ANN001, ANN201
        """x ``(B, T, I)`` -> (outputs ``(B, T, H)`` of the last layer, final state).

        The final state is h_n ``(L, B, H)`` (LSTM: the pair (h_n, c_n)), as in ``torch.nn``.
        """
        self._check(x)
        state = self._initial(x, state)
        layer_input = x
        finals_h, finals_c = [], []
        for k, cell in enumerate(self.cells):
            if self.has_cell_state:
                s = (state[0][k], state[1][k])
            else:
                s = state[k]
            outputs = []
            for t in range(layer_input.shape[1]):
                s = cell(layer_input[:, t], s)
                outputs.append(s[0] if self.has_cell_state else s)
            layer_output = torch.stack(outputs, dim=1)
            if self.has_cell_state:
                finals_h.append(s[0])
                finals_c.append(s[1])
            else:
                finals_h.append(s)
            layer_input = self.dropout(layer_output) if k + 1 < self.num_layers else layer_output
        h_n = torch.stack(finals_h)
        if self.has_cell_state:
            return layer_input, (h_n, torch.stack(finals_c))
        return layer_input, h_n


class RNN(_StackBase):
    """Multi-layer Elman RNN, like ``torch.nn.RNN(batch_first=True)``."""

    cell_class = RNNCell


class LSTM(_StackBase):
    """Multi-layer LSTM, like ``torch.nn.LSTM(batch_first=True)``; state is (h, c)."""

    cell_class = LSTMCell
    has_cell_state = True


class GRU(_StackBase):
    """Multi-layer GRU, like ``torch.nn.GRU(batch_first=True)``."""

    cell_class = GRUCell


_TORCH_KINDS = {RNN: nn.RNN, LSTM: nn.LSTM, GRU: nn.GRU}


@torch.no_grad()
def copy_from_torch(ours: _StackBase, theirs: nn.RNNBase) -> _StackBase:
    """Copy the weights of a ``torch.nn.RNN/LSTM/GRU`` into the matching stack; returns ``ours``."""
    expected = _TORCH_KINDS.get(type(ours))
    if expected is None or not isinstance(theirs, expected):
        raise TypeError(f"Cannot copy a {type(theirs).__name__} into a {type(ours).__name__}.")
    if theirs.bidirectional or getattr(theirs, "proj_size", 0) > 0:
        raise ValueError("Bidirectional or projected torch RNNs have no coursekit equivalent.")
    if (theirs.num_layers, theirs.hidden_size, theirs.input_size) != (
        ours.num_layers,
        ours.hidden_size,
        ours.input_size,
    ):
        raise ValueError(
            "Shapes differ: torch has (layers, hidden, input) = "
            f"{(theirs.num_layers, theirs.hidden_size, theirs.input_size)}, coursekit has "
            f"{(ours.num_layers, ours.hidden_size, ours.input_size)}."
        )
    for k, cell in enumerate(cast(list[_CellBase], list(ours.cells))):
        cell.weight_ih.copy_(getattr(theirs, f"weight_ih_l{k}"))
        cell.weight_hh.copy_(getattr(theirs, f"weight_hh_l{k}"))
        if cell.bias_ih is not None:
            cell.bias_ih.copy_(getattr(theirs, f"bias_ih_l{k}"))
            cell.bias_hh.copy_(getattr(theirs, f"bias_hh_l{k}"))
    return ours
