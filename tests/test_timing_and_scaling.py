"""coursekit.timing and coursekit.scaling: the shared timer and the power-law fit."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.scaling import fit_loglog_slope
from coursekit.timing import time_call


@settings(max_examples=40, deadline=None)
@given(
    k=st.floats(-3, 3),
    c=st.floats(1e-3, 1e3),
    xs=st.lists(st.floats(0.5, 1e4), min_size=2, max_size=8, unique=True),
)
def test_fit_recovers_the_exponent_of_an_exact_power_law(k, c, xs):
    if max(xs) / min(xs) < 1.5:
        return  # too narrow a range to pin the slope down in floating point
    assert fit_loglog_slope(xs, [c * x**k for x in xs]) == pytest.approx(k, abs=1e-6)


@pytest.mark.parametrize(
    ("xs", "ys", "message"),
    [
        ([1.0], [1.0], "at least 2"),
        ([1, 2], [1], "equally long"),
        ([1, 2], [0, 1], "positive"),
        ([2, 2], [1, 3], "different x"),
    ],
)
def test_fit_rejects_unusable_data(xs, ys, message):
    with pytest.raises(ValueError, match=message):
        fit_loglog_slope(xs, ys)


def test_time_call_counts_calls_and_measures_sleep():
    calls = []

    def work() -> None:
        calls.append(1)
        time.sleep(0.01)

    best = time_call(work, repeats=3, warmup=2)
    assert len(calls) == 5  # warm-up calls are made but not timed
    assert 0.009 < best < 0.5
    assert time_call(work, repeats=3, warmup=0, statistic="median") >= 0.009


def test_time_call_rejects_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="statistic"):
        time_call(lambda: None, statistic="mean")  # type: ignore[arg-type]


def test_peak_memory_sees_the_largest_intermediate() -> None:
    import torch

    from coursekit.timing import peak_memory

    x = torch.randn(64, 32)

    def quadratic() -> torch.Tensor:
        scores = x @ x.T  # 64 x 64 floats, freed before the end
        return (scores.softmax(-1) @ x).sum()

    def linear() -> torch.Tensor:
        return (x * 2).sum()

    big, small = peak_memory(quadratic), peak_memory(linear)
    assert big >= 2 * 64 * 64 * 4  # scores and their softmax alive together
    assert small < 64 * 32 * 4 * 2
    views = peak_memory(lambda: x.clone().view(32, 64).T.contiguous())
    assert views == 2 * 64 * 32 * 4  # the clone once (its views share it) and the copy
