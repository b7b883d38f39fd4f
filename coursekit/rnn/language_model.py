"""A character-level (or any token-level) recurrent language model.

``CharRNNLM`` = embedding -> RNN / LSTM / GRU -> linear head over the vocabulary. It runs either
the from-scratch cells of :mod:`coursekit.rnn.cells` (``impl="scratch"``: readable, and lets you
look inside, e.g. at gate activations) or PyTorch's fused ``nn.RNN/LSTM/GRU`` (``impl="torch"``:
the same maths, verified equal in the tests, and several times faster for training on a CPU).
It plugs into :func:`coursekit.train.train` through :func:`lm_loss`.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from coursekit.rnn.cells import (
    GRU,
    LSTM,
    RNN,
    LSTMCell,
    LSTMGates,
    _CellBase,
    _StackBase,
    copy_from_torch,
)

__all__ = ["CellKind", "CharRNNLM", "hidden_gradient_norms", "lm_loss"]

CellKind = Literal["rnn", "lstm", "gru"]
_SCRATCH = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
_TORCH = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentCache:
    """The decoding cache of a recurrent model: its state after the tokens seen so far.

    ``state`` is ``h`` ``(L, B, H)`` (RNN, GRU) or ``(h, c)`` (LSTM); ``length`` counts tokens.
    """

    def __init__(self) -> None:
        self.state: Any = None
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search); the batch is dimension 1 of the state."""
        if isinstance(self.state, tuple):
            self.state = tuple(s.index_select(1, index) for s in self.state)
        elif self.state is not None:
            self.state = self.state.index_select(1, index)


class CharRNNLM(nn.Module):
    """Next-token language model with a recurrent core.

    Args:
        vocab_size: number of token ids.
        hidden_size: width of the hidden state (the model's whole memory of the past).
        cell: ``"rnn"`` (tanh), ``"lstm"`` or ``"gru"``.
        num_layers: stacked recurrent layers.
        embed_dim: embedding width (default: ``hidden_size``).
        impl: ``"torch"`` (fused kernels) or ``"scratch"`` (coursekit's cells, same numbers).
        forget_bias: added to the LSTM forget-gate bias at initialisation (1.0 is the usual
            choice, so the cell remembers by default); ignored for other cells.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 128,
        *,
        cell: CellKind = "lstm",
        num_layers: int = 1,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        impl: Literal["torch", "scratch"] = "torch",
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        if cell not in _SCRATCH:
            raise ValueError(f"cell must be one of {sorted(_SCRATCH)}, got {cell!r}.")
        if impl not in ("torch", "scratch"):
            raise ValueError(f"impl must be 'torch' or 'scratch', got {impl!r}.")
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {vocab_size}.")
        self.vocab_size = vocab_size
        self.cell = cell
        self.impl = impl
        embed_dim = embed_dim or hidden_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        if impl == "torch":
            self.rnn: nn.Module = _TORCH[cell](
                embed_dim, hidden_size, num_layers, batch_first=True, dropout=dropout
            )
        else:
            self.rnn = _SCRATCH[cell](embed_dim, hidden_size, num_layers, dropout=dropout)
        self.head = nn.Linear(hidden_size, vocab_size)
        if cell == "lstm" and forget_bias:
            self._add_forget_bias(forget_bias)

    @torch.no_grad()
    def _add_forget_bias(self, value: float) -> None:
        for name, p in self.rnn.named_parameters():
            if "bias_ih" in name:  # gate order i, f, g, o: the second quarter is the forget gate
                h = p.shape[0] // 4
                p[h : 2 * h] += value

    def forward(self, idx: torch.Tensor, state=None):  # noqa: ANN001, ANN201
        """idx ``(B, T)`` long -> (logits ``(B, T, vocab_size)``, final recurrent state)."""
        if idx.dim() != 2:
            raise ValueError(
                f"CharRNNLM expects token ids of shape (B, T), got {tuple(idx.shape)}."
            )
        out, state = self.rnn(self.embed(idx), state)
        return self.head(out), state

    def to_scratch(self) -> CharRNNLM:
        """A copy running coursekit's from-scratch cells with the same weights."""
        if self.impl == "scratch":
            return self
        r = cast(nn.RNNBase, self.rnn)
        twin = CharRNNLM(
            self.vocab_size,
            r.hidden_size,
            cell=self.cell,
            num_layers=r.num_layers,
            embed_dim=self.embed.embedding_dim,
            dropout=float(r.dropout),
            impl="scratch",
            forget_bias=0.0,
        )
        twin.embed.load_state_dict(self.embed.state_dict())
        twin.head.load_state_dict(self.head.state_dict())
        copy_from_torch(twin.rnn, r)  # type: ignore[arg-type]
        return twin.to(next(self.parameters()).device)

    @torch.no_grad()
    def lstm_gates(self, idx: torch.Tensor) -> list[LSTMGates]:
        """Gate activations of the first LSTM layer at every step of ``idx`` ``(1, T)``.

        Returns T :class:`LSTMGates`, each field ``(1, H)``.
        """
        if self.cell != "lstm":
            raise ValueError("lstm_gates needs an LSTM model (cell='lstm').")
        model = self.to_scratch()
        x = model.embed(idx)
        cell = cast(LSTMCell, cast(_StackBase, model.rnn).cells[0])
        state = None
        gates: list[LSTMGates] = []
        for t in range(x.shape[1]):
            state, g = cell.gates(x[:, t], state)
            gates.append(g)
        return gates

    # ---- the decoding protocol (coursekit.generate.CausalLM) -------------------------------
    context_length: int | None = None  # the recurrent state carries the whole past

    def new_cache(self) -> RecurrentCache:
        """An empty :class:`RecurrentCache` for :func:`coursekit.generate.generate`."""
        return RecurrentCache()

    def step(self, ids: torch.Tensor, cache: RecurrentCache | None) -> torch.Tensor:
        """Logits ``(B, T, V)`` for ``ids`` ``(B, T)``, continuing ``cache``'s state if given.

        The recurrent state carries the whole past, so each new token costs one step.
        """
        logits, state = self(ids, None if cache is None else cache.state)
        if cache is not None:
            cache.state, cache.length = state, cache.length + ids.shape[1]
        return logits


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy of a ``(x, y)`` batch, each ``(B, T)``: for ``train``."""
    x, y = batch
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def hidden_gradient_norms(model: CharRNNLM, idx: torch.Tensor) -> torch.Tensor:
    """||∂(u·h_T)/∂h_t|| for every t, averaged over the batch: how far back a signal reaches.

    Runs the first recurrent layer of ``model`` (from-scratch cells) over ``idx`` ``(B, T)``,
    then back-propagates from a fixed random unit direction ``u`` of the last hidden state h_T.
    Returns a tensor ``(T,)`` whose entry ``T - 1 - d`` is the norm at distance d = T - t
    (entry ``T - 1`` is 1: the gradient of u·h_T with respect to h_T itself is u).
    (For the LSTM, h_t is the hidden output; its influence on h_T also flows through c.)
    """
    scratch = model.to_scratch()
    cell = cast(_CellBase, cast(_StackBase, scratch.rnn).cells[0])
    with torch.no_grad():
        x = scratch.embed(idx)
    batch, steps = idx.shape
    h = x.new_zeros(batch, cell.hidden_size)
    c = x.new_zeros(batch, cell.hidden_size)
    hs: list[torch.Tensor] = []
    with torch.enable_grad():
        for t in range(steps):
            if model.cell == "lstm":
                h, c = cell(x[:, t], (h, c))
            else:
                h = cell(x[:, t], h)
            h.retain_grad()
            hs.append(h)
        gen = torch.Generator().manual_seed(0)
        u = torch.randn(cell.hidden_size, generator=gen).to(x.device)
        (hs[-1] @ (u / u.norm())).sum().backward()
    grads = [hs[t].grad for t in range(steps)]
    norms = torch.stack([g.norm(dim=-1).mean() for g in grads if g is not None])
    scratch.zero_grad(set_to_none=True)
    return norms.detach()
