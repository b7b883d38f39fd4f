"""The fixed-size state, measured: recall the token seen ``delay`` steps earlier.

A recurrent model reads a stream of random tokens and must output, at every step t, the token it
read at step t - delay. To do so it has to hold the last ``delay`` tokens in its state: the
information to keep grows with the delay, the state (``hidden`` numbers) does not.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RecallNet", "delayed_recall_accuracy", "delayed_recall_batch"]


def delayed_recall_batch(
    batch: int, length: int, delay: int, vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens ``x`` (batch, length) and targets ``y`` (batch, length).

    ``y[:, t] = x[:, t - delay]``; the first ``delay`` targets are -100 (ignored by the loss).
    """
    if not 0 <= delay < length:
        raise ValueError(f"delay must be in [0, length), got delay={delay}, length={length}.")
    x = torch.randint(vocab, (batch, length), generator=generator)
    y = torch.full_like(x, -100)
    y[:, delay:] = x[:, : length - delay]
    return x, y


class RecallNet(nn.Module):
    """Embedding -> one recurrent layer of width ``hidden`` -> logits (batch, length, vocab)."""

    def __init__(
        self, vocab: int, hidden: int, cell: Literal["rnn", "lstm", "gru"] = "lstm"
    ) -> None:
        super().__init__()
        kinds: dict[str, type[nn.Module]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = kinds[cell](hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, vocab)."""
        out, _ = self.rnn(self.embed(x))
        return self.head(out)


def delayed_recall_accuracy(
    delay: int,
    *,
    hidden: int = 16,
    cell: Literal["rnn", "lstm", "gru"] = "lstm",
    vocab: int = 8,
    length: int = 48,
    steps: int = 300,
    batch: int = 64,
    lr: float = 1e-2,
    seed: int = 0,
) -> float:
    """Train a :class:`RecallNet` on delayed recall, return its accuracy on 1,024 fresh streams.

    Accuracy is measured on the positions that have a target (t >= delay); chance is 1 / vocab.
    Deterministic for a given seed (on one CPU thread); about a second per 100 steps on a laptop
    CPU at the defaults.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RecallNet(vocab, hidden, cell)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x, y = delayed_recall_batch(batch, length, delay, vocab, gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    x, y = delayed_recall_batch(1024, length, delay, vocab, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        pred = model(x).argmax(-1)
    mask = y != -100
    return (pred[mask] == y[mask]).float().mean().item()
