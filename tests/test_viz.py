"""coursekit.viz: the span-corruption explorer's text (notebook 08) and its static fallback."""

from __future__ import annotations

import re

import pytest

from coursekit.viz import span_corruption_explorer, span_corruption_text

WORDS = "the film is a gorgeous and witty ride that never loses its nerve even when thin".split()


def _restore(text: str) -> list[str]:
    """Put every <Xk> span of the target back into the input (span corruption's inverse)."""
    lines = text.splitlines()
    inp = lines[1].split(": ", 1)[1].split()
    tgt = lines[2].split(": ", 1)[1].split()
    spans: dict[str, list[str]] = {}
    current = None
    for word in tgt:
        if re.fullmatch(r"<X\d+>", word):
            current = word
            spans[word] = []
        else:
            assert current is not None
            spans[current].append(word)
    return [w for word in inp for w in (spans[word] if word in spans else [word])]


@pytest.mark.parametrize(
    ("density", "span", "seed"), [(0.15, 3.0, 0), (0.4, 1.0, 3), (0.3, 5.0, 7)]
)
def test_span_corruption_text_is_invertible(density, span, seed) -> None:
    text = span_corruption_text(WORDS, noise_density=density, mean_span=span, seed=seed)
    assert _restore(text) == WORDS
    dropped = int(re.search(r"(\d+) of 16 words dropped", text).group(1))
    assert dropped == max(1, round(density * len(WORDS)))


def test_explorer_prints_the_fallback_without_widgets(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COURSEKIT_NO_WIDGETS", "1")
    span_corruption_explorer(WORDS)
    assert capsys.readouterr().out.strip() == span_corruption_text(WORDS).strip()


def test_too_short() -> None:
    with pytest.raises(ValueError, match="two words"):
        span_corruption_text(["one"])
