"""Notebook 04's exercises (positional encodings) agree with coursekit.positional and
coursekit.long_context, and every wrong answer gets its own hint."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from exercise_checks import (
    assert_hint_table_covers_the_notebook,
    assert_wrong_answer_gets_its_hint,
)

from coursekit.exercises import nb04
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import all_exercises, get_exercise
from coursekit.long_context import extend_rope
from coursekit.positional import (
    RotaryEmbedding,
    alibi_bias,
    apply_rope,
    sinusoidal_encoding,
    t5_relative_position_bucket,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_difficulty_rises_in_notebook_order() -> None:
    exercises = sorted(
        (ex for ex in all_exercises() if ex.notebook == "04"), key=lambda ex: int(ex.id[3:])
    )
    assert [ex.id for ex in exercises] == [f"04.{i}" for i in range(1, 7)]
    difficulties = [ex.difficulty for ex in exercises]
    assert difficulties == sorted(difficulties) and difficulties[-1] == 3


@pytest.mark.parametrize(("n", "d"), [(1, 2), (7, 6), (50, 64)])
def test_sinusoidal_reference_is_the_package_table(n: int, d: int) -> None:
    got = get_exercise("04.1").reference(n, d)
    assert torch.allclose(got, sinusoidal_encoding(n, d, dtype=torch.float64), atol=1e-12)


def test_bucket_reference_is_the_package_bucket() -> None:
    bucket = t5_relative_position_bucket(torch.tensor([3]), bidirectional=True)
    assert get_exercise("04.2").reference == int(bucket) == 19


@pytest.mark.parametrize(("n_heads", "t"), [(1, 3), (4, 9), (16, 5)])
def test_alibi_reference_is_the_package_bias(n_heads: int, t: int) -> None:
    assert torch.allclose(get_exercise("04.3").reference(n_heads, t), alibi_bias(n_heads, t))


def _rope_loop(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The notebook's solution of 04.4: both loops written out."""
    n_rows, d = x.shape
    out = x.clone()
    for t in range(n_rows):
        for i in range(d // 2):
            angle = float(positions[t]) * 10000.0 ** (-2 * i / d)
            a, b = x[t, 2 * i], x[t, 2 * i + 1]
            out[t, 2 * i] = a * math.cos(angle) - b * math.sin(angle)
            out[t, 2 * i + 1] = a * math.sin(angle) + b * math.cos(angle)
    return out


def test_rope_loop_and_reference_equal_apply_rope() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 12, generator=g, dtype=torch.float64)
    pos = torch.tensor([0, 5, 2, 2, 40, 7, 1, 3, 100])
    assert torch.allclose(_rope_loop(x, pos), apply_rope(x, pos), atol=1e-12)
    assert torch.allclose(get_exercise("04.4").reference(x, pos), apply_rope(x, pos), atol=1e-12)
    assert evaluate(get_exercise("04.4"), _rope_loop).passed


def test_rope_score_reference_is_the_rotated_dot_product() -> None:
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    score = float(apply_rope(q, torch.tensor([3])) @ apply_rope(q, torch.tensor([1])).T)
    assert math.isclose(get_exercise("04.5").reference, score, abs_tol=1e-12)


def test_position_losses_reference_leaves_the_model_alone_and_factor_1_is_plain() -> None:
    torch.manual_seed(1)
    model = nb04._TinyRopeLM().eval()
    windows = torch.randint(0, 11, (4, 33))
    reference = get_exercise("04.6").reference
    plain = reference(model, windows, 1.0)
    with torch.no_grad():
        logits = model(windows[:, :-1])
    expected = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), windows[:, 1:], reduction="none"
    ).mean(0)
    assert plain.shape == (32,) and torch.allclose(plain, expected, atol=1e-6)
    stretched = reference(model, windows, 4.0)
    assert model.rotary.scale == 1.0 and not torch.allclose(stretched, plain)
    # interpolation by 4 is the model with the rotary's scale at 4
    twin = extend_rope(copy.deepcopy(model), method="interpolation", factor=4.0)
    rotary = twin.rotary
    assert isinstance(rotary, RotaryEmbedding) and rotary.scale == 4.0
    assert model.rotary.scale == 1.0
    with torch.no_grad():
        logits = twin(windows[:, :-1])
    expected = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), windows[:, 1:], reduction="none"
    ).mean(0)
    assert torch.allclose(stretched, expected, atol=1e-6)


def test_position_losses_check_accepts_a_chunked_loop() -> None:
    def chunked(model, windows, factor):  # one window at a time
        stretched = extend_rope(copy.deepcopy(model), method="interpolation", factor=factor)
        rows = []
        with torch.no_grad():
            for w in windows:
                logits = stretched(w[None, :-1])[0]
                rows.append(torch.nn.functional.cross_entropy(logits, w[1:], reduction="none"))
        return torch.stack(rows).mean(0)

    assert evaluate(get_exercise("04.6"), chunked).passed
    outcome = evaluate(get_exercise("04.6"), lambda model, windows: None)
    assert not outcome.passed


OWN_HINTS: list[tuple[str, str, str]] = [
    ("04.1", "sines then cosines in halves", "Interleave"),
    ("04.1", "exponent i/d instead of 2i/d", "EVEN channel index"),
    ("04.1", "a frequency per channel", "SAME angle"),
    ("04.1", "cos on the even channels", "Sine on the even channels"),
    ("04.1", "positions from 1", "Positions start at 0"),
    ("04.2", "no offset for keys after the query", "their index starts at 16"),
    ("04.2", "offset of 32", "32 // 2 = 16"),
    ("04.2", "counted backwards", "counted upwards from 16"),
    ("04.2", "off by one", "16 + distance"),
    ("04.2", "a fraction that truncates to the answer", "whole number"),
    ("04.3", "h from 0", "h runs from 1"),
    ("04.3", "positive bias", "PENALTY"),
    ("04.3", "i - j without the absolute value", "|i - j|"),
    ("04.3", "the 8-head slopes for every n", "depend on the number of heads"),
    ("04.3", "slopes in reverse order", "Head 1 gets the largest slope"),
    ("04.4", "rotates the wrong way", "rotated the other way"),
    ("04.4", "pairs channel i with i + d/2", "Pair neighbouring channels"),
    ("04.4", "exponent i/d", "10000^(-2i/d)"),
    ("04.4", "ignores positions (uses 0 .. T-1)", "positions you are given"),
    ("04.5", "angle m + n", "not m + n"),
    ("04.5", "rotation ignored", "no longer parallel"),
    ("04.5", "degrees instead of radians", "radians"),
    ("04.5", "sine instead of cosine", "COSINE"),
    ("04.5", "each rotation's cosine multiplied", "two terms"),
    ("04.6", "one loss for the whole window", "one loss per POSITION"),
    ("04.6", "averaged over the positions, one loss per window", "averaged over the positions"),
    ("04.6", "positions multiplied by the factor", "DIVIDES"),
    ("04.6", "NTK-aware base scaling instead", "NTK-aware base scaling"),
    ("04.6", "targets not shifted", "NEXT character"),
    ("04.6", "changes the trained model in place", "Work on a copy"),
]


def test_own_hints_list_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("04", OWN_HINTS)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)
