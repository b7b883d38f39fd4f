"""T5's data layer: span corruption (and its inverse) and the text-to-text task mixer."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coursekit.data import (
    TaskMixer,
    TextToTextTask,
    corrupted_lengths,
    noise_span_counts,
    random_spans_noise_mask,
    span_corrupt,
    span_uncorrupt,
)

# T5's sentinels are the last ids of its vocabulary, counting down: <extra_id_0> = 32099, ...
SENTINELS = [32099 - i for i in range(130)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _runs(mask: list[bool]) -> list[tuple[bool, int]]:
    """Run-length encoding: [(value, length), ...]."""
    runs: list[tuple[bool, int]] = []
    for m in mask:
        if runs and runs[-1][0] == m:
            runs[-1] = (m, runs[-1][1] + 1)
        else:
            runs.append((m, 1))
    return runs


def _expected_counts(length: int, density: float, mean: float) -> tuple[int, int]:
    """The published recipe, written out again independently of the module."""
    noise = round(length * density)
    noise = max(1, min(noise, length - 1))
    spans = max(1, round(noise / mean))
    return noise, min(spans, length - noise)


# --------------------------------------------------------------------------------------------
# the noise mask
# --------------------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(
    length=st.integers(2, 600),
    density=st.floats(0.01, 0.99),
    mean=st.floats(1.0, 8.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_mask_counts_and_shape(length, density, mean, seed):
    mask = random_spans_noise_mask(
        length, noise_density=density, mean_noise_span_length=mean, generator=_gen(seed)
    )
    assert mask.dtype == torch.bool and mask.shape == (length,)
    noise, spans = _expected_counts(length, density, mean)
    assert (noise, spans) == noise_span_counts(
        length, noise_density=density, mean_noise_span_length=mean
    )
    assert int(mask.sum()) == noise
    runs = _runs(mask.tolist())
    assert sum(1 for value, _ in runs if value) == spans
    # kept, noise, kept, noise, ...: starts with a kept span and ends with a noise span
    assert [value for value, _ in runs] == [False, True] * spans


def test_default_counts_for_512_tokens():
    assert noise_span_counts(512) == (77, 26)  # round(76.8), round(77 / 3)
    assert corrupted_lengths(512) == (512 - 77 + 26, 77 + 26 + 1)
    assert noise_span_counts(2) == (1, 1)  # clamped up to one noise token
    assert noise_span_counts(10, noise_density=0.99) == (9, 1)  # clamped to length - 1


def test_mask_is_deterministic_given_the_seed():
    a = random_spans_noise_mask(300, generator=_gen(7))
    b = random_spans_noise_mask(300, generator=_gen(7))
    c = random_spans_noise_mask(300, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_mean_span_length_is_about_three():
    lengths = []
    for seed in range(300):
        length = 100 + (seed * 37) % 500
        runs = _runs(random_spans_noise_mask(length, generator=_gen(seed)).tolist())
        lengths += [n for value, n in runs if value]
    assert 2.7 < sum(lengths) / len(lengths) < 3.3
    assert len(set(lengths)) > 3  # the spans really vary in length


def test_span_lengths_follow_a_uniform_random_partition():
    """Splitting n tokens into k random non-empty runs: P(first run = j) = C(n-j-1, k-2) / C(n-1, k-1)."""
    draws = 3000
    firsts_noise, firsts_kept = Counter(), Counter()
    for seed in range(draws):
        runs = _runs(random_spans_noise_mask(512, generator=_gen(seed)).tolist())
        firsts_kept[runs[0][1]] += 1
        firsts_noise[runs[1][1]] += 1
    for observed, n in ((firsts_noise, 77), (firsts_kept, 512 - 77)):
        k = 26
        total = math.comb(n - 1, k - 1)
        exact = {j: math.comb(n - j - 1, k - 2) / total for j in range(1, n - k + 2)}
        tv = 0.5 * sum(abs(observed[j] / draws - p) for j, p in exact.items())
        assert tv < 0.08, tv
        mean = sum(j * c for j, c in observed.items()) / draws
        assert abs(mean - n / k) < 0.1 * n / k


# --------------------------------------------------------------------------------------------
# corrupt / uncorrupt
# --------------------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(st.integers(0, 999), min_size=2, max_size=120),
    density=st.floats(0.01, 0.99),
    mean=st.floats(1.0, 6.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_uncorrupt_inverts_corrupt(ids, density, mean, seed):
    inputs, targets = span_corrupt(
        ids,
        sentinel_ids=SENTINELS,
        noise_density=density,
        mean_noise_span_length=mean,
        generator=_gen(seed),
    )
    assert span_uncorrupt(inputs, targets, sentinel_ids=SENTINELS) == ids
    noise, spans = noise_span_counts(len(ids), noise_density=density, mean_noise_span_length=mean)
    assert len(targets) == noise + spans + 1
    assert len(inputs) == len(ids) - noise + spans
    assert (len(inputs), len(targets)) == corrupted_lengths(
        len(ids), noise_density=density, mean_noise_span_length=mean
    )
    # each sentinel once, in order: spans of them in inputs, one more (closing) in targets
    assert [t for t in inputs if t in SENTINELS] == SENTINELS[:spans]
    assert [t for t in targets if t in SENTINELS] == SENTINELS[: spans + 1]
    assert targets[0] == SENTINELS[0] and targets[-1] == SENTINELS[spans]


@settings(max_examples=80, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 50), st.booleans()), min_size=1, max_size=60),
)
def test_uncorrupt_inverts_any_explicit_mask(data):
    ids = [i for i, _ in data]
    mask = [m for _, m in data]
    inputs, targets = span_corrupt(ids, sentinel_ids=SENTINELS, noise_mask=mask)
    assert span_uncorrupt(inputs, targets, sentinel_ids=SENTINELS) == ids
    spans = sum(1 for value, _ in _runs(mask) if value)
    assert len(targets) == sum(mask) + spans + 1


def test_paper_example():
    words = "Thank you for inviting me to your party last week .".split()
    vocab = {w: i for i, w in enumerate(words)}
    ids = [vocab[w] for w in words]
    mask = [w in ("for", "inviting", "last") for w in words]
    x, y, z = 100, 101, 102
    inputs, targets = span_corrupt(ids, sentinel_ids=[x, y, z], noise_mask=torch.tensor(mask))
    name = {i: w for w, i in vocab.items()} | {x: "<X>", y: "<Y>", z: "<Z>"}
    assert " ".join(name[i] for i in inputs) == "Thank you <X> me to your party <Y> week ."
    assert " ".join(name[i] for i in targets) == "<X> for inviting <Y> last <Z>"
    assert span_uncorrupt(inputs, targets, sentinel_ids=[x, y, z]) == ids


def test_tensor_ids_edge_masks_and_trailing_eos():
    ids = torch.arange(5)
    assert span_corrupt(ids, sentinel_ids=[10, 11], noise_mask=[False] * 5) == (
        [0, 1, 2, 3, 4],
        [10],
    )
    inputs, targets = span_corrupt(ids, sentinel_ids=[10, 11], noise_mask=[True] * 5)
    assert (inputs, targets) == ([10], [10, 0, 1, 2, 3, 4, 11])
    eos = 1
    # whatever follows the closing sentinel (EOS, padding) is ignored
    assert span_uncorrupt(
        torch.tensor(inputs), torch.tensor(targets + [eos, 0, 0]), sentinel_ids=[10, 11]
    ) == list(range(5))


def test_corrupt_is_deterministic_given_the_seed():
    ids = list(range(200))
    a = span_corrupt(ids, sentinel_ids=SENTINELS, generator=_gen(3))
    b = span_corrupt(ids, sentinel_ids=SENTINELS, generator=_gen(3))
    assert a == b


def test_corrupt_errors():
    ids = list(range(100))
    with pytest.raises(ValueError, match=r"needs 3 sentinel ids.*only 2"):
        span_corrupt(ids, sentinel_ids=[500, 501], noise_mask=[i in (3, 10) for i in ids])
    with pytest.raises(ValueError, match=r"already contain sentinel id\(s\) \[7\]"):
        span_corrupt(ids, sentinel_ids=[7, 500, 501])
    with pytest.raises(ValueError, match="noise_mask has 3 entries but ids has 100"):
        span_corrupt(ids, sentinel_ids=SENTINELS, noise_mask=[True, False, True])
    with pytest.raises(ValueError, match="distinct"):
        span_corrupt(ids, sentinel_ids=[500, 500])
    for density in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="noise_density must be in"):
            span_corrupt(ids, sentinel_ids=SENTINELS, noise_density=density)
    with pytest.raises(ValueError, match="mean_noise_span_length must be"):
        random_spans_noise_mask(100, mean_noise_span_length=0.5)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        random_spans_noise_mask(1)
    with pytest.raises(ValueError, match="1-D"):
        span_corrupt(torch.zeros(2, 3, dtype=torch.long), sentinel_ids=SENTINELS)


def test_uncorrupt_errors():
    s = [100, 101, 102]
    with pytest.raises(ValueError, match="sentinel id 101 is missing from targets"):
        span_uncorrupt([1, 100, 2, 101], [100, 5], sentinel_ids=s)
    with pytest.raises(ValueError, match="Sentinels out of order in targets"):
        span_uncorrupt([1, 100, 2, 101], [101, 6, 100, 5, 102], sentinel_ids=s)
    with pytest.raises(ValueError, match="Sentinels out of order in targets"):
        span_uncorrupt([1, 100, 2, 101], [100, 5, 102, 6], sentinel_ids=s)
    with pytest.raises(ValueError, match="sentinels in inputs"):
        span_uncorrupt([1, 101, 2, 100], [100, 5, 101, 6, 102], sentinel_ids=s)
    with pytest.raises(ValueError, match="sentinels in inputs"):
        span_uncorrupt([1, 100, 2, 100], [100, 5, 101], sentinel_ids=s)
    with pytest.raises(ValueError, match="targets must start with"):
        span_uncorrupt([1, 100], [5, 100, 6, 101], sentinel_ids=s)


# --------------------------------------------------------------------------------------------
# text-to-text tasks and mixing
# --------------------------------------------------------------------------------------------
def _task(name: str, n: int, prefix: str | None = None) -> TextToTextTask:
    examples = [(f"{name} source {i}", f"{name} target {i}") for i in range(n)]
    return TextToTextTask(name, prefix if prefix is not None else f"{name}: ", examples)


TASKS = [_task("a", 10), _task("b", 30), _task("c", 60)]


def _close(rates: dict[str, float], weights: dict[str, float]) -> None:
    total = sum(weights.values())
    assert rates.keys() == weights.keys()
    for name, w in weights.items():
        assert rates[name] == pytest.approx(w / total, abs=1e-12)
    assert sum(rates.values()) == pytest.approx(1.0, abs=1e-12)


def test_task_pairs_get_the_prefix():
    task = TextToTextTask(
        "fr-en", "translate French to English: ", [("Bonjour.", "Hello."), ("Merci.", "Thanks.")]
    )
    assert len(task) == 2
    assert task.pairs() == [
        ("translate French to English: Bonjour.", "Hello."),
        ("translate French to English: Merci.", "Thanks."),
    ]


def test_rates():
    _close(TaskMixer(TASKS, rate="equal").rates(), {"a": 1, "b": 1, "c": 1})
    _close(TaskMixer(TASKS).rates(), {"a": 10, "b": 30, "c": 60})
    _close(TaskMixer(TASKS, rate="proportional").rates(), {"a": 0.1, "b": 0.3, "c": 0.6})
    _close(
        TaskMixer(TASKS, temperature=2.0).rates(),
        {"a": math.sqrt(10), "b": math.sqrt(30), "c": math.sqrt(60)},
    )
    _close(TaskMixer(TASKS, max_examples=20).rates(), {"a": 10, "b": 20, "c": 20})
    _close(
        TaskMixer(TASKS, max_examples=20, temperature=2.0).rates(),
        {"a": math.sqrt(10), "b": math.sqrt(20), "c": math.sqrt(20)},
    )
    _close(TaskMixer(TASKS, temperature=math.inf).rates(), {"a": 1, "b": 1, "c": 1})


def test_sample_frequencies_and_prefixes():
    mixer = TaskMixer(TASKS, max_examples=40)  # rates 10:30:40
    n = 16000
    draws = mixer.sample(n, generator=_gen(0))
    assert len(draws) == n
    counts = Counter(name for name, _, _ in draws)
    rates = mixer.rates()
    chi2 = sum((counts[k] - n * p) ** 2 / (n * p) for k, p in rates.items())
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001
    for name, source, target in draws:
        assert source.startswith(f"{name}: {name} source ")
        assert target == f"{name} target {source.rsplit(' ', 1)[1]}"
    # examples within a task drawn uniformly
    within = Counter(source for name, source, _ in draws if name == "a")
    expected = counts["a"] / 10
    chi2 = sum((c - expected) ** 2 / expected for c in within.values())
    assert len(within) == 10 and chi2 < 27.9  # 9 degrees of freedom, p = 0.001


def test_sample_is_reproducible_and_batches():
    mixer = TaskMixer(TASKS, rate="equal")
    assert mixer.sample(50, generator=_gen(1)) == mixer.sample(50, generator=_gen(1))
    assert mixer.sample(0) == []
    batches = list(mixer.batches(4, num_batches=3, generator=_gen(2)))
    assert [len(b) for b in batches] == [4, 4, 4]
    assert batches == list(mixer.batches(4, num_batches=3, generator=_gen(2)))
    assert {name for batch in batches for name, _, _ in batch} <= {"a", "b", "c"}


def test_mixer_errors():
    with pytest.raises(ValueError, match="at least one"):
        TaskMixer([])
    with pytest.raises(ValueError, match=r"unique; repeated: \['a'\]"):
        TaskMixer([_task("a", 3), _task("a", 4)])
    with pytest.raises(ValueError, match=r"\['e'\] have no examples"):
        TaskMixer([_task("a", 3), _task("e", 0)])
    for t in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            TaskMixer(TASKS, temperature=t)
    with pytest.raises(ValueError, match="max_examples must be"):
        TaskMixer(TASKS, max_examples=0)
    with pytest.raises(ValueError, match="rate must be"):
        TaskMixer(TASKS, rate="uniform")
    with pytest.raises(ValueError, match="apply to rate='proportional' only"):
        TaskMixer(TASKS, rate="equal", temperature=2.0)
    with pytest.raises(ValueError, match="batch_size"):
        next(TaskMixer(TASKS).batches(0))
