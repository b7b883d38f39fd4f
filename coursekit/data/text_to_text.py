"""T5's text-to-text framing: every task is "text in, text out", told apart by a prefix.

A :class:`TextToTextTask` pairs a prefix such as ``"translate French to English: "`` with
``(source, target)`` examples; :class:`TaskMixer` draws a multi-task stream from several tasks
with one of T5's mixing rules:

* ``rate="equal"``: every task equally likely, whatever its size;
* ``rate="proportional"``: examples-proportional mixing, task ``i`` drawn with probability
  ``rate_i ∝ min(n_i, K) ** (1 / T)``, where ``n_i`` is its number of examples, ``K`` the
  artificial limit ``max_examples`` (none by default) and ``T`` the ``temperature`` (1 by
  default: proportional to size). The limit keeps a huge task (or the unsupervised one) from
  swamping the others; ``T > 1`` flattens the rates towards equal mixing (as ``T -> inf``).

Everything here is text; tokenising is the caller's job.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

__all__ = ["TaskMixer", "TextToTextTask"]


@dataclass(frozen=True)
class TextToTextTask:
    """One task: ``name``, the ``prefix`` put before every source, ``(source, target)`` examples."""

    name: str
    prefix: str
    examples: Sequence[tuple[str, str]]

    def pairs(self) -> list[tuple[str, str]]:
        """The examples as the model sees them: ``(prefix + source, target)``."""
        return [(self.prefix + source, target) for source, target in self.examples]

    def __len__(self) -> int:
        return len(self.examples)


class TaskMixer:
    """Samples ``(task_name, input_text, target_text)`` from several tasks at fixed rates.

    ``rate="equal"`` or ``"proportional"`` (see the module docstring); ``temperature`` ``T > 0``
    and ``max_examples`` ``K >= 1`` refine proportional mixing: ``rate_i ∝ min(n_i, K) ** (1/T)``.
    Within a task, examples are drawn uniformly with replacement.
    """

    def __init__(
        self,
        tasks: Sequence[TextToTextTask],
        *,
        rate: Literal["equal", "proportional"] = "proportional",
        temperature: float = 1.0,
        max_examples: int | None = None,
    ) -> None:
        if not tasks:
            raise ValueError("TaskMixer needs at least one TextToTextTask.")
        names = [task.name for task in tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Task names must be unique; repeated: {duplicates}.")
        empty = [task.name for task in tasks if len(task) == 0]
        if empty:
            raise ValueError(f"Task(s) {empty} have no examples; drop them or add examples.")
        if rate not in ("equal", "proportional"):
            raise ValueError(f"rate must be 'equal' or 'proportional', got {rate!r}.")
        if not (temperature > 0):  # also rejects NaN
            raise ValueError(
                f"temperature must be > 0 (1 = proportional, larger = flatter), got {temperature}."
            )
        if max_examples is not None and max_examples < 1:
            raise ValueError(f"max_examples must be a positive integer, got {max_examples}.")
        if rate == "equal" and (temperature != 1.0 or max_examples is not None):
            raise ValueError(
                "temperature and max_examples apply to rate='proportional' only; equal mixing "
                "ignores task sizes."
            )
        self.tasks: tuple[TextToTextTask, ...] = tuple(tasks)
        self.rate = rate
        self.temperature = float(temperature)
        self.max_examples = max_examples
        self._pairs = [task.pairs() for task in self.tasks]
        self._probs = torch.tensor(self._weights(), dtype=torch.float64)
        self._probs /= self._probs.sum()

    def _weights(self) -> list[float]:
        if self.rate == "equal":
            return [1.0] * len(self.tasks)
        limit = math.inf if self.max_examples is None else self.max_examples
        return [min(len(task), limit) ** (1.0 / self.temperature) for task in self.tasks]

    def rates(self) -> dict[str, float]:
        """Probability of drawing each task, by name (the values sum to 1)."""
        return {task.name: float(p) for task, p in zip(self.tasks, self._probs)}

    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> list[tuple[str, str, str]]:
        """``n`` draws of ``(task_name, prefix + source, target)``; reproducible with a seeded generator."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}.")
        if n == 0:
            return []
        which = torch.multinomial(self._probs, n, replacement=True, generator=generator)
        picks = [0] * n
        for t, pairs in enumerate(self._pairs):
            where = (which == t).nonzero().flatten()
            if where.numel():
                drawn = torch.randint(len(pairs), (where.numel(),), generator=generator)
                for position, k in zip(where.tolist(), drawn.tolist()):
                    picks[position] = k
        out = []
        for t, k in zip(which.tolist(), picks):
            source, target = self._pairs[t][k]
            out.append((self.tasks[t].name, source, target))
        return out

    def batches(
        self,
        batch_size: int,
        *,
        num_batches: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[list[tuple[str, str, str]]]:
        """Yield batches of :meth:`sample` (``batch_size`` each); endless unless ``num_batches``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        made = 0
        while num_batches is None or made < num_batches:
            yield self.sample(batch_size, generator=generator)
            made += 1

    def __repr__(self) -> str:
        rates = ", ".join(f"{name}={p:.3f}" for name, p in self.rates().items())
        return f"TaskMixer({rates})"
