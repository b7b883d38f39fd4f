"""Loaders returning the course's standard splits, the same in every notebook."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple

from coursekit.data.download import fetch


class TextSplits(NamedTuple):
    """A corpus split by characters into training and validation text."""

    train: str
    val: str


class PairSplits(NamedTuple):
    """Translation pairs ``(french, english)`` split into train / val / test."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]


class LabeledSplits(NamedTuple):
    """Sentences with integer labels split into train / val / test."""

    train: list[tuple[str, int]]
    val: list[tuple[str, int]]
    test: list[tuple[str, int]]


@dataclass(frozen=True)
class SplitFractions:
    val: float = 0.1
    test: float = 0.1


def _bucket(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``: the same on every machine and run."""
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def load_tiny_shakespeare() -> TextSplits:
    """Tiny Shakespeare split as nanoGPT does: first 90% of characters train, last 10% validation.

    Sizes: 1,003,854 training and 111,540 validation characters; 65 distinct characters.
    """
    text = fetch("tinyshakespeare").read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    return TextSplits(train=text[:cut], val=text[cut:])


_SPACE = re.compile(r"\s+")


def _clean(sentence: str) -> str:
    """Normalise whitespace (Tatoeba uses narrow no-break spaces before French punctuation)."""
    return _SPACE.sub(" ", sentence.replace("\u202f", " ").replace("\xa0", " ")).strip()


def load_translation_pairs(
    *,
    max_words: int | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
    fractions: SplitFractions = SplitFractions(),
) -> PairSplits:
    """French -> English sentence pairs from Tatoeba, split deterministically.

    Each pair's split is decided by a seeded hash of the pair itself, so it never depends on the
    filters: the same call returns the same split on every machine. ``max_words`` keeps pairs
    whose French and English sides both have at most that many words; ``max_pairs`` keeps the
    first pairs of each split in file order, scaled by the split fractions.
    """
    lines = fetch("eng-fra").read_text(encoding="utf-8").splitlines()
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        english, french = _clean(parts[0]), _clean(parts[1])
        if not english or not french:
            continue
        if max_words is not None and (
            len(english.split()) > max_words or len(french.split()) > max_words
        ):
            continue
        u = _bucket(f"{english}\t{french}", seed)
        name = (
            "test"
            if u < fractions.test
            else "val"
            if u < fractions.test + fractions.val
            else "train"
        )
        splits[name].append((french, english))
    if max_pairs is not None:
        train_share = 1.0 - fractions.val - fractions.test
        limits = {
            "train": int(max_pairs * train_share),
            "val": max(1, int(max_pairs * fractions.val)),
            "test": max(1, int(max_pairs * fractions.test)),
        }
        splits = {k: v[: limits[k]] for k, v in splits.items()}
    return PairSplits(splits["train"], splits["val"], splits["test"])


def _read_tsv(name: str) -> list[tuple[str, int]]:
    rows = fetch(name).read_text(encoding="utf-8").splitlines()
    if not rows or rows[0].split("\t")[:2] != ["sentence", "label"]:
        raise ValueError(f"{name}: expected a header 'sentence<TAB>label'.")
    out = []
    for row in rows[1:]:
        sentence, label = row.rsplit("\t", 1)
        out.append((sentence.strip(), int(label)))
    return out


def load_sst2(*, seed: int = 0, val_fraction: float = 0.05) -> LabeledSplits:
    """SST-2 binary sentiment: GLUE train split into train/val by a seeded hash; GLUE dev as test.

    The GLUE test labels are not public, so the 872 dev sentences serve as the course's test set.
    """
    train: list[tuple[str, int]] = []
    val: list[tuple[str, int]] = []
    for sentence, label in _read_tsv("sst2_train"):
        (val if _bucket(sentence, seed) < val_fraction else train).append((sentence, label))
    return LabeledSplits(train=train, val=val, test=_read_tsv("sst2_dev"))
