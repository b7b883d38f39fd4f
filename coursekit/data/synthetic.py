"""Synthetic sequence tasks generated in code, each reproducible from its seed.

Every task returns a :class:`SeqTask` of token ids. Ids 0, 1, 2 are reserved for PAD, BOS and
EOS; content tokens start at 3 and ``vocab_size`` counts the reserved ids too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# the special ids are defined once, in coursekit.tokenize (re-exported here)
from coursekit.tokenize import BOS_ID as BOS_ID
from coursekit.tokenize import EOS_ID as EOS_ID
from coursekit.tokenize import PAD_ID as PAD_ID

N_SPECIAL = 3


@dataclass(frozen=True)
class SeqTask:
    """Inputs ``src`` ``(n, S)`` and targets ``tgt`` ``(n, T)`` with the vocabulary they use."""

    src: torch.Tensor
    tgt: torch.Tensor
    vocab_size: int
    name: str = ""

    def __len__(self) -> int:
        return self.src.shape[0]


def _content(n: int, length: int, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    if vocab_size <= N_SPECIAL:
        raise ValueError(f"vocab_size must exceed the {N_SPECIAL} reserved ids, got {vocab_size}.")
    if n <= 0 or length <= 0:
        raise ValueError(f"n and length must be positive, got {n=} and {length=}.")
    return torch.randint(N_SPECIAL, vocab_size, (n, length), generator=generator)


def copy_task(n: int, length: int, *, vocab_size: int = 10, seed: int = 0) -> SeqTask:
    """Target = source."""
    src = _content(n, length, vocab_size, torch.Generator().manual_seed(seed))
    return SeqTask(src, src.clone(), vocab_size, "copy")


def reverse_task(n: int, length: int, *, vocab_size: int = 10, seed: int = 0) -> SeqTask:
    """Target = source reversed."""
    src = _content(n, length, vocab_size, torch.Generator().manual_seed(seed))
    return SeqTask(src, src.flip(-1), vocab_size, "reverse")


def sort_task(n: int, length: int, *, vocab_size: int = 10, seed: int = 0) -> SeqTask:
    """Target = source sorted ascending."""
    src = _content(n, length, vocab_size, torch.Generator().manual_seed(seed))
    return SeqTask(src, src.sort(-1).values, vocab_size, "sort")


# Addition: digits 0-9 are ids 3..12, '+' is 13, '=' is 14.
DIGIT_OFFSET, PLUS_ID, EQUALS_ID = N_SPECIAL, N_SPECIAL + 10, N_SPECIAL + 11


def addition_task(n: int, n_digits: int, *, seed: int = 0) -> SeqTask:
    """``a+b=`` -> digits of a+b, most significant first, zero-padded to n_digits + 1."""
    if n_digits <= 0:
        raise ValueError("n_digits must be positive.")
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 10**n_digits, (n,), generator=g)
    b = torch.randint(0, 10**n_digits, (n,), generator=g)

    def digits(x: torch.Tensor, width: int) -> torch.Tensor:
        powers = 10 ** torch.arange(width - 1, -1, -1)
        return (x[:, None] // powers) % 10 + DIGIT_OFFSET

    plus = torch.full((n, 1), PLUS_ID)
    equals = torch.full((n, 1), EQUALS_ID)
    src = torch.cat([digits(a, n_digits), plus, digits(b, n_digits), equals], dim=1)
    return SeqTask(src, digits(a + b, n_digits + 1), N_SPECIAL + 12, "addition")


def associative_recall(
    n: int, n_pairs: int, *, n_keys: int = 16, n_values: int = 16, seed: int = 0
) -> SeqTask:
    """``k1 v1 k2 v2 ... kq`` -> the value stored with key ``kq`` (keys distinct per example).

    Key ids are ``3 .. 3+n_keys``, value ids follow them; target has length 1.
    """
    if n_pairs > n_keys:
        raise ValueError(f"n_pairs={n_pairs} distinct keys need n_keys >= n_pairs.")
    g = torch.Generator().manual_seed(seed)
    keys = torch.stack([torch.randperm(n_keys, generator=g)[:n_pairs] for _ in range(n)])
    keys = keys + N_SPECIAL
    values = torch.randint(0, n_values, (n, n_pairs), generator=g) + N_SPECIAL + n_keys
    pick = torch.randint(0, n_pairs, (n,), generator=g)
    rows = torch.arange(n)
    src = torch.stack([keys, values], dim=2).reshape(n, 2 * n_pairs)
    src = torch.cat([src, keys[rows, pick][:, None]], dim=1)
    return SeqTask(src, values[rows, pick][:, None], N_SPECIAL + n_keys + n_values, "recall")


def needle_in_haystack(n: int, length: int, *, vocab_size: int = 20, seed: int = 0) -> SeqTask:
    """A haystack of filler tokens with one ``NEEDLE v`` pair at a random place; target ``v``.

    The last position holds the query token. Filler and value ids are drawn from the content
    range; the marker ``NEEDLE`` (= ``vocab_size``) and query (= ``vocab_size + 1``) are appended
    to the vocabulary, so the task's vocabulary size is ``vocab_size + 2``.
    """
    if length < 4:
        raise ValueError("needle_in_haystack needs length >= 4.")
    g = torch.Generator().manual_seed(seed)
    needle, query = vocab_size, vocab_size + 1
    src = _content(n, length, vocab_size, g)
    values = torch.randint(N_SPECIAL, vocab_size, (n,), generator=g)
    where = torch.randint(0, length - 3, (n,), generator=g)
    rows = torch.arange(n)
    src[rows, where] = needle
    src[rows, where + 1] = values
    src[:, -1] = query
    return SeqTask(src, values[:, None], vocab_size + 2, "needle")


def find_the_needle(
    n: int, length: int, *, n_fillers: int = 20, n_needles: int = 10, seed: int = 0
) -> SeqTask:
    """A haystack of filler tokens hides one needle token; the last position asks for it.

    Every position but the last holds a filler (ids ``3 .. 3+n_fillers``) except one, chosen
    uniformly, which holds a needle (the next ``n_needles`` ids); the last position holds the
    question token (the id after them). The target (length 1) is the needle. Unlike
    :func:`needle_in_haystack` the needle is recognisable on its own, so one attention step that
    *reaches* it suffices: the task measures reach, not a two-step lookup. ``src[:, :-1] ==
    tgt`` marks where the needle is.
    """
    if length < 2:
        raise ValueError(
            f"find_the_needle needs length >= 2 (a haystack and a question), got {length}."
        )
    if n_fillers < 1 or n_needles < 1:
        raise ValueError(
            f"n_fillers and n_needles must be positive, got {n_fillers} and {n_needles}."
        )
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(N_SPECIAL, N_SPECIAL + n_fillers, (n, length), generator=g)
    needle = torch.randint(
        N_SPECIAL + n_fillers, N_SPECIAL + n_fillers + n_needles, (n,), generator=g
    )
    where = torch.randint(0, length - 1, (n,), generator=g)
    src[torch.arange(n), where] = needle
    question = N_SPECIAL + n_fillers + n_needles
    src[:, -1] = question
    return SeqTask(src, needle[:, None], question + 1, "find the needle")
