"""Notebook 05's exercises (the Transformer) agree with coursekit, and each mistake gets its hint."""

from __future__ import annotations

import pytest
import torch
from exercise_checks import assert_hint_table_covers_the_notebook, assert_wrong_answer_gets_its_hint

from coursekit.exercises import nb05
from coursekit.exercises.checking import evaluate
from coursekit.exercises.registry import all_exercises, all_quiz_questions, get_exercise
from coursekit.generate import greedy_decode
from coursekit.models import Transformer, TransformerConfig

pytestmark = pytest.mark.usefixtures("one_thread")

#: (exercise, registered wrong answer, what its hint must say)
OWN_HINTS: list[tuple[str, str, str]] = [
    ("05.1", "unbiased variance", "biased variance"),
    ("05.1", "eps outside the square root", "INSIDE the square root"),
    ("05.1", "no eps", "Add eps to the variance"),
    ("05.1", "eps fixed at 1e-5", "not a fixed 1e-5"),
    ("05.1", "normalises over the batch (dim 0)", "LAST dimension"),
    ("05.1", "normalises over the whole tensor", "not over the whole tensor"),
    ("05.1", "weight and bias swapped", "then add bias"),
    ("05.2", "no causal mask", "is_causal=True"),
    ("05.2", "pre-norm instead of post-norm", "pre-norm order"),
    ("05.2", "cross-attention ignores padding", "padding tokens"),
    ("05.2", "no residual around the FFN", "FFN sub-layer lost its residual"),
    ("05.2", "cross-attention over the target instead of the memory", "never reads the encoder"),
    ("05.3", "eps / (K - 1) on the wrong classes only", "ALL K classes"),
    ("05.3", "eps and 1 - eps swapped", "keeps 1 - eps"),
    ("05.3", "nll not scaled by 1 - eps", "Scale the usual loss"),
    ("05.3", "sum over positions", "do not sum"),
    ("05.3", "log of the logits instead of log_softmax", "Logits are not probabilities"),
    ("05.4", "returns <bos> too", "starts with <bos>"),
    ("05.4", "reads the first position's logits", "FIRST position"),
    ("05.4", "rows not stopped independently (no padding after <eos>)", "must be pad_id"),
    ("05.4", "stops when the first row is done", "ONE row"),
    ("05.4", "never stops before max_len", "always runs max_len steps"),
    ("05.4", "re-encodes the source at every step", "Encode the source ONCE"),
    ("05.4", "max_len - 1 tokens at most", "One token short"),
    ("05.5", "ignores the beams' scores", "running score"),
    ("05.5", "best token of each beam only", "Rank all K x V candidates"),
    ("05.5", "beam and token swapped (i % V, i // V)", "Beam and token are swapped"),
    ("05.5", "keeps the lowest scores", "LARGEST"),
    ("05.5", "divides the flat index by K instead of V", "divided the flat index by K"),
    ("05.6", "weight norms instead of gradient norms", "WEIGHTS"),
    ("05.6", "sum of the parameters' norms", "not the sum of the separate"),
    ("05.6", "layers listed top first", "bottom first"),
    ("05.6", "conclusion swapped", "conclusion is swapped"),
]


def test_own_hints_list_every_wrong_answer_of_the_notebook() -> None:
    assert_hint_table_covers_the_notebook("05", OWN_HINTS)


@pytest.mark.parametrize(("exercise_id", "name", "told"), OWN_HINTS)
def test_each_wrong_answer_gets_its_own_hint(exercise_id: str, name: str, told: str) -> None:
    assert_wrong_answer_gets_its_hint(exercise_id, name, told)


def test_hints_are_distinct_within_each_exercise() -> None:
    for ex in all_exercises():
        if ex.notebook != "05":
            continue
        hints = [evaluate(ex, wrong).hint for wrong in ex.wrong_answers.values()]
        assert len(set(hints)) == len(hints), ex.id


def test_difficulty_rises_in_notebook_order_and_the_ids_follow_it() -> None:
    exercises = sorted((ex for ex in all_exercises() if ex.notebook == "05"), key=lambda ex: ex.id)
    assert [ex.id for ex in exercises] == [f"05.{i}" for i in range(1, 7)]
    difficulties = [ex.difficulty for ex in exercises]
    assert difficulties == sorted(difficulties) and difficulties[-1] == 3


def _random_translator(seed: int) -> Transformer:
    torch.manual_seed(seed)
    config = TransformerConfig(
        15,
        13,
        d_model=16,
        n_heads=2,
        n_encoder_layers=1,
        n_decoder_layers=1,
        d_ff=32,
        dropout=0.0,
    )
    model = Transformer(config).eval()
    # an output layer with a bias towards <eos>, so that the rows stop at different steps
    output = torch.nn.Linear(16, 13)
    with torch.no_grad():
        output.weight.copy_(model.output.weight)
        output.bias.zero_()
        output.bias[config.eos_id] = 1.0
    model.output = output
    return model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_loop_reference_equals_greedy_decode(seed: int) -> None:
    """The exercise's loop (no cache) gives exactly coursekit.generate.greedy_decode's tokens."""
    model = _random_translator(seed)
    config = model.config
    src = torch.randint(3, 15, (6, 7), generator=torch.Generator().manual_seed(seed))
    src[2:, 5:] = config.pad_id
    reference = get_exercise("05.4").reference
    for max_len in (1, 5, 12):
        with torch.no_grad():
            ours = reference(
                model,
                src,
                max_len,
                bos_id=config.bos_id,
                eos_id=config.eos_id,
                pad_id=config.pad_id,
            )
        assert torch.equal(ours, greedy_decode(model, src, max_len=max_len))
        if max_len == 12:  # some rows finished early, some did not: the padding was exercised
            finished = (ours == config.eos_id).any(dim=1)
            assert finished.any() and ours.shape[1] <= max_len


def test_greedy_toy_rows_finish_at_different_steps() -> None:
    """The stand-in model of the check: rows of 3, 5 and 1 tokens end at different steps."""
    src = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 4], [6, 0, 0, 0, 0]])
    out = nb05._greedy_reference(nb05._CopyToy(), src, 10, bos_id=1, eos_id=2, pad_id=0)
    assert out.tolist() == [
        [5, 6, 7, 2, 0, 0],
        [8, 9, 10, 11, 4, 2],
        [6, 2, 0, 0, 0, 0],
    ]


def test_ablation_check_model_shows_the_notebook_conclusion() -> None:
    """On the check's small model, as in the notebook, post-norm's gradients are the uneven ones."""
    norms, uneven = nb05._norm_ablation_reference(nb05._small_model, nb05._small_batch())
    assert uneven == "post-norm"
    spread = {k: max(v) / min(v) for k, v in norms.items()}
    assert spread["post-norm"] > 2 * spread["pre-norm"]


def test_ablation_check_leaves_the_random_state_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    assert evaluate(get_exercise("05.6"), get_exercise("05.6").reference).passed
    assert torch.equal(torch.rand(3), before)


def test_every_quiz_question_explains_its_wrong_options() -> None:
    questions = [q for q in all_quiz_questions() if q.notebook == "05"]
    assert len(questions) == 5
    for q in questions:
        assert len(q.options) == 4
        assert all(f for i, f in enumerate(q.feedback) if i != q.answer)
