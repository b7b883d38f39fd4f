"""Notebook 08's exercises (T5) agree with the package pieces they are about."""

from __future__ import annotations

import random

import pytest
import torch

from coursekit.data.span_corruption import random_spans_noise_mask, span_corrupt
from coursekit.data.text_to_text import TaskMixer, TextToTextTask
from coursekit.exercises import nb08
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import get_exercise
from coursekit.models.t5 import T5, T5Config

pytestmark = pytest.mark.usefixtures("one_thread")

SENTINELS = [32099 - k for k in range(20)]


def test_parameter_count_is_the_models() -> None:
    config = T5Config(**nb08.TINY_T5)
    answer = get_exercise("08.1").reference
    assert answer == 1_431_168
    assert answer == config.expected_parameters() == T5(config).num_parameters()


def test_corrupt_reference_equals_span_corrupt_on_random_masks() -> None:
    rng = random.Random(8)
    reference = get_exercise("08.2").reference
    for _ in range(200):
        length = rng.randint(1, 30)
        ids = [rng.randint(2, 999) for _ in range(length)]
        mask = [rng.random() < rng.choice([0.15, 0.5, 0.9]) for _ in range(length)]
        assert reference(ids, mask, SENTINELS) == span_corrupt(
            ids, sentinel_ids=SENTINELS, noise_mask=mask
        ), (ids, mask)


def test_corrupt_reference_on_t5_masks() -> None:
    g = torch.Generator().manual_seed(0)
    reference = get_exercise("08.2").reference
    for length in (10, 40, 101):
        mask = random_spans_noise_mask(length, generator=g).tolist()
        ids = torch.randint(2, 999, (length,), generator=g).tolist()
        assert reference(ids, mask, SENTINELS) == span_corrupt(
            ids, sentinel_ids=SENTINELS, noise_mask=mask
        )


@pytest.mark.parametrize(
    ("sizes", "temperature", "cap"),
    [
        ({"a": 5, "b": 1, "c": 20}, 1.0, None),
        ({"a": 5, "b": 1, "c": 20}, 2.0, None),
        ({"a": 5, "b": 1, "c": 20}, 1.0, 8),
        ({"a": 5, "b": 1, "c": 20}, 3.0, 4),
        ({"x": 7, "y": 300}, 0.5, 100),
    ],
)
def test_mixing_reference_equals_task_mixer(
    sizes: dict[str, int], temperature: float, cap: int | None
) -> None:
    tasks = [TextToTextTask(name, f"{name}: ", [("s", "t")] * n) for name, n in sizes.items()]
    mixer = TaskMixer(tasks, rate="proportional", temperature=temperature, max_examples=cap)
    got = get_exercise("08.3").reference(dict(sizes), temperature, cap)
    assert got.keys() == mixer.rates().keys()
    assert got == pytest.approx(mixer.rates(), rel=1e-12)


def test_log_likelihood_reference_matches_the_models_loss() -> None:
    torch.manual_seed(3)
    model = T5(nb08._LL_CONFIG).eval()
    reference = get_exercise("08.4").reference
    for _, input_ids, labels in nb08._ll_batches():
        with torch.no_grad():
            total = reference(model, input_ids, labels)
            loss = model.loss(input_ids, labels)
        assert total.shape == (input_ids.shape[0],)
        assert (total < 0).all()
        n_tokens = (labels != 0).sum()
        torch.testing.assert_close(-total.sum() / n_tokens, loss, rtol=1e-5, atol=1e-5)


def test_log_likelihood_of_one_row_does_not_depend_on_its_batch() -> None:
    torch.manual_seed(4)
    model = T5(nb08._LL_CONFIG).eval()
    reference = get_exercise("08.4").reference
    _, input_ids, labels = nb08._ll_batches()[0]
    with torch.no_grad():
        batch = reference(model, input_ids, labels)
        alone = reference(model, input_ids[1:2, :4], labels[1:2, :2])
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("exercise_id", ["08.1", "08.2", "08.3", "08.4"])
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str) -> None:
    ex = get_exercise(exercise_id)
    hints = {name: evaluate(ex, answer).hint for name, answer in ex.wrong_answers.items()}
    assert all(hints.values()) and len(set(hints.values())) == len(hints), hints


def test_a_function_with_other_parameters_is_explained() -> None:
    outcome = evaluate(get_exercise("08.2"), lambda ids, mask: ([], []))
    assert not outcome.passed and "def corrupt(ids, noise_mask, sentinel_ids)" in (
        outcome.hint or ""
    )
    # the package's own function has keyword-only sentinels: imported, it is no answer
    outcome = evaluate(get_exercise("08.2"), span_corrupt)
    assert not outcome.passed


def test_tensor_return_values_are_accepted() -> None:
    reference = get_exercise("08.2").reference

    def as_tensors(ids, mask, sentinels):  # a learner's function, untyped
        inputs, targets = reference(ids, mask, sentinels)
        return torch.tensor(inputs), torch.tensor(targets)

    assert evaluate(get_exercise("08.2"), as_tensors).passed
