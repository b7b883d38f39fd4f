"""Checks and quiz of notebook 06: BERT (encoder-only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, cast

import torch
from torch import nn

from coursekit.data.masking import IGNORE_INDEX, mlm_mask
from coursekit.exercises.expect import (
    a_type,
    expect_callable,
    expect_close,
    expect_number,
    expect_shape,
    expect_true,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

NB = "06"

# ------------------------------------------------------------------------------------------
# 06.1 the parameters of one BERT-base layer

_D, _D_FF = 768, 3072
_ATTENTION = 4 * _D * _D + 4 * _D  # W^Q, W^K, W^V, W^O and their biases
_FFN = 2 * _D * _D_FF + _D_FF + _D  # two matrices and their biases
_NORMS = 2 * 2 * _D  # two LayerNorms, gamma and beta each
_LAYER = _ATTENTION + _FFN + _NORMS  # 7,087,872

_LAYER_MISTAKES: dict[str, tuple[float, str]] = {
    "matrices only (no biases, no LayerNorms)": (
        4 * _D * _D + 2 * _D * _D_FF,
        "You counted the weight matrices only. Every linear map also has a bias (one number per "
        "output), and each of the two LayerNorms has a gain and a shift of size 768.",
    ),
    "no LayerNorm parameters": (
        _ATTENTION + _FFN,
        "Almost: add the two LayerNorms (after the attention and after the FFN), each with a "
        "gain gamma and a shift beta of 768 numbers.",
    ),
    "attention only": (
        _ATTENTION,
        "That is the attention sub-layer alone. A layer also holds the feed-forward network "
        "(768 -> 3072 -> 768, with biases) and two LayerNorms.",
    ),
    "FFN as wide as the model (d_ff = 768)": (
        _ATTENTION + 2 * _D * _D + 2 * _D + _NORMS,
        "BERT's feed-forward network is four times wider than the model: d_ff = 3072, not 768.",
    ),
    "one twelfth of 110 million": (
        110e6 / 12,
        "The 110M of BERT-base include the embeddings (about 24M: 30,522 words x 768, plus "
        "positions and segments) and the pooler; count one layer from its parts instead.",
    ),
    "attention with one matrix per head of size 64 x 64": (
        12 * 4 * 64 * 64 + 4 * _D + _FFN + _NORMS,
        "Each head's projections map all 768 input features to its 64 outputs (768 x 64, not "
        "64 x 64); over 12 heads that is one 768 x 768 matrix per projection.",
    ),
}


@exercise(
    "06.1",
    notebook=NB,
    title="The parameters of one BERT-base layer",
    asks="How many parameters does one BERT-base encoder layer hold (d = 768, d_ff = 3072)?",
    difficulty=1,
    minutes=10,
    reference=_LAYER,
    also_correct={"as a float": float(_LAYER)},
    wrong_answers={name: value for name, (value, _) in _LAYER_MISTAKES.items()},
)
def check_layer_parameters(answer: Any) -> None:
    """Exactly 7,087,872: attention 4d^2 + 4d, FFN 2 d d_ff + d_ff + d, two LayerNorms 4d.

    Rejects the matrices only, no LayerNorms, the attention alone, d_ff = d, a twelfth of
    110M and per-head 64 x 64 projections, each with its own hint.
    """
    expect_number(
        answer,
        _LAYER,
        name="answer",
        rel_tol=1e-9,
        abs_tol=0.5,
        example="answer = 4 * 768**2 + ...",
        hint="Add up: attention (four 768 x 768 matrices and their biases), the feed-forward "
        "network (768 x 3072 and 3072 x 768 with biases) and two LayerNorms (gamma and beta).",
        mistakes=list(_LAYER_MISTAKES.values()),
    )


# ------------------------------------------------------------------------------------------
# 06.2 BERT's input embeddings


def _embeddings(
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor,
    word_table: torch.Tensor,
    segment_table: torch.Tensor,
    position_table: torch.Tensor,
    norm: Callable[[torch.Tensor], torch.Tensor],
    *,
    segments: bool = True,
    positions: str = "arange",
    norm_where: str = "after",
) -> torch.Tensor:
    t = input_ids.shape[-1]
    word = word_table[input_ids]
    if norm_where == "before":
        word = norm(word)
    x = word
    if segments:
        x = x + segment_table[token_type_ids]
    if positions == "arange":
        x = x + position_table[:t]
    elif positions == "from one":
        x = x + position_table[1 : t + 1]
    elif positions == "by token id":
        x = x + position_table[input_ids]
    return norm(x) if norm_where == "after" else x


def _embeddings_reference(
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor,
    word_table: torch.Tensor,
    segment_table: torch.Tensor,
    position_table: torch.Tensor,
    norm: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    t = input_ids.shape[-1]
    x = word_table[input_ids] + segment_table[token_type_ids] + position_table[:t]
    return norm(x)


_EMB_MISTAKES: dict[str, tuple[dict[str, Any], str]] = {
    "no segment embeddings": (
        {"segments": False},
        "Add the segment (token type) embedding of each token: segment_table[token_type_ids]. "
        "It tells the model whether a token belongs to sentence A or sentence B.",
    ),
    "no position embeddings": (
        {"positions": "none"},
        "Add the learned position embeddings: position_table[:T] for positions 0 .. T-1. "
        "Without them self-attention cannot tell word order.",
    ),
    "positions looked up by token id": (
        {"positions": "by token id"},
        "Positions are 0, 1, ..., T-1 (the index of each token in the sequence), not the token "
        "ids: use position_table[:T] (it broadcasts over the batch).",
    ),
    "positions counted from 1": (
        {"positions": "from one"},
        "The first token ([CLS]) sits at position 0: use position_table[:T], not [1:T+1].",
    ),
    "LayerNorm on the word embedding only": (
        {"norm_where": "before"},
        "Sum the three embeddings first, then apply the LayerNorm to the sum.",
    ),
    "no LayerNorm": (
        {"norm_where": "none"},
        "BERT normalises the sum of the three embeddings: return norm(word + segment + position).",
    ),
}


@exercise(
    "06.2",
    notebook=NB,
    title="BERT's input: token + segment + position embeddings",
    asks="Look up and add the word, segment and position embeddings, then apply the LayerNorm",
    difficulty=2,
    minutes=10,
    reference=_embeddings_reference,
    wrong_answers={name: partial(_embeddings, **kw) for name, (kw, _) in _EMB_MISTAKES.items()},
)
def check_embeddings(answer: Any) -> None:
    """Equals coursekit's BertEmbeddings (eval mode) for two segments and a padded batch.

    Rejects missing segment or position embeddings, positions by token id or from 1, and the
    LayerNorm in the wrong place or missing.
    """
    from coursekit.models.bert import BertConfig, BertEmbeddings

    expect_callable(answer, name="bert_embeddings")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        config = BertConfig(
            vocab_size=40, max_positions=48, d_model=8, n_layers=0, n_heads=2, d_ff=16, dropout=0.0
        )
        emb = BertEmbeddings(config).eval()
        with torch.no_grad():
            norm = cast(nn.LayerNorm, emb.norm)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0.0, 0.3)
            emb.position_embeddings.weight.normal_(0.0, 1.0)
            emb.token_type_embeddings.weight.normal_(0.0, 1.0)
        ids = torch.randint(5, 40, (3, 7))
    ids[:, 0] = config.cls_id
    ids[:, 3] = config.sep_id
    ids[2, 5:] = config.pad_id
    types = torch.zeros_like(ids)
    types[:, 4:] = 1
    tables = (
        emb.word_embeddings.weight.detach(),
        emb.token_type_embeddings.weight.detach(),
        emb.position_embeddings.weight.detach(),
    )
    with torch.no_grad():
        got = answer(ids.clone(), types.clone(), *tables, emb.norm)
        expected = emb(ids, types)
    expect_close(
        got,
        expected,
        name="the embeddings",
        hint="x = word_table[input_ids] + segment_table[token_type_ids] + position_table[:T]; "
        "return norm(x).",
        mistakes=[
            (partial(_embeddings, ids, types, *tables, emb.norm, **kw), hint)
            for kw, hint in _EMB_MISTAKES.values()
        ],
    )


# ------------------------------------------------------------------------------------------
# 06.3 the 80/10/10 corruption

_Corrupt = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def _corrupt(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    split: tuple[float, float] = (0.8, 0.1),
    protect_special: bool = True,
    labels_everywhere: bool = False,
    labels_from_inputs: bool = False,
    corrupt_all: bool = False,
    fixed_rate: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The corruption with one of the common mistakes switched on."""
    rate = mlm_probability if fixed_rate is None else fixed_rate
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    if protect_special:
        for sid in special_ids:
            special |= input_ids == sid
    selected = (torch.rand(input_ids.shape, generator=generator) < rate) & ~special
    roll = torch.rand(input_ids.shape, generator=generator)
    where = torch.ones_like(selected) if corrupt_all else selected
    to_mask = where & (roll < split[0])
    to_random = where & (roll >= split[0]) & (roll < split[0] + split[1])
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    source = inputs if labels_from_inputs else input_ids
    labels = source.clone()
    if not labels_everywhere:
        labels = torch.where(selected, source, torch.full_like(input_ids, IGNORE_INDEX))
    return inputs, labels


def _corrupt_reference(
    input_ids: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for sid in special_ids:
        special |= input_ids == sid
    selected = (torch.rand(input_ids.shape, generator=generator) < mlm_probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(
        selected & (roll < 0.8), torch.full_like(input_ids, mask_token_id), input_ids
    )
    inputs = torch.where(selected & (roll >= 0.8) & (roll < 0.9), random_ids, inputs)
    return inputs, labels


def _mlm_test_ids(n: int, t: int, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """``[CLS] content ... [SEP] [PAD]...`` rows in the course's layout (pad 0, cls 1, sep 2)."""
    ids = torch.randint(5, vocab_size, (n, t), generator=generator)
    lengths = torch.randint(t // 2, t + 1, (n,), generator=generator)
    cols = torch.arange(t)
    ids[cols >= lengths[:, None]] = 0
    ids[:, 0] = 1
    ids[torch.arange(n), lengths - 1] = 2
    return ids


def _as_pair(out: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise ExerciseFailure(
            f"{what} should return a pair (inputs, labels), but it returned {a_type(out)}.",
            hint="End with `return inputs, labels`.",
        )
    inputs, labels = out
    for name, t in (("inputs", inputs), ("labels", labels)):
        if not isinstance(t, torch.Tensor):
            raise ExerciseFailure(
                f"{name} should be a torch.Tensor, but it is {a_type(t)}.",
                hint="Build both with torch operations (torch.where, torch.full_like, ...).",
            )
    return inputs, labels


def _within(value: float, target: float, tol: float) -> bool:
    return abs(value - target) <= tol


@exercise(
    "06.3",
    notebook=NB,
    title="BERT's 80/10/10 masking",
    asks="Select 15% of the non-special tokens; make 80% of them [MASK], 10% a random token, "
    "keep 10%; labels: the original id where selected, -100 elsewhere",
    difficulty=2,
    minutes=20,
    reference=_corrupt_reference,
    wrong_answers={
        "every selected token becomes [MASK]": partial(_corrupt, split=(1.0, 0.0)),
        "80% [MASK] and 20% random, none kept": partial(_corrupt, split=(0.8, 0.2)),
        "labels at every position": partial(_corrupt, labels_everywhere=True),
        "labels hold the corrupted input": partial(_corrupt, labels_from_inputs=True),
        "special tokens can be selected": partial(_corrupt, protect_special=False),
        "corrupts unselected tokens too": partial(_corrupt, corrupt_all=True),
        "always 15%, whatever mlm_probability says": partial(_corrupt, fixed_rate=0.15),
        "90% [MASK], 10% random": partial(_corrupt, split=(0.9, 0.1)),
    },
)
def check_mlm_corruption(answer: Any) -> None:
    """On 3,000 x 48 ids (vocabulary 1,000; [CLS], [SEP], padding): labels are the original ids
    where selected and -100 elsewhere; unselected tokens and special tokens untouched; the
    selected share is mlm_probability (0.15 and 0.3, within 0.01); of the selected, 0.8 [MASK],
    0.1 unchanged and 0.1 other random tokens (within 0.02), the random ones spread over the
    vocabulary.
    """
    expect_callable(answer, name="mlm_corrupt")
    vocab, mask_id, specials = 1000, 4, (0, 1, 2)
    g = torch.Generator().manual_seed(60)
    ids = _mlm_test_ids(3000, 48, vocab, g)
    special = (ids == 0) | (ids == 1) | (ids == 2)
    for p in (0.15, 0.3):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(61)
            out = answer(
                ids.clone(),
                mask_token_id=mask_id,
                vocab_size=vocab,
                special_ids=specials,
                mlm_probability=p,
                generator=torch.Generator().manual_seed(62),
            )
        inputs, labels = _as_pair(out, "mlm_corrupt")
        expect_shape(inputs, tuple(ids.shape), name="inputs", hint="Keep the shape of input_ids.")
        expect_shape(labels, tuple(ids.shape), name="labels", hint="Keep the shape of input_ids.")
        selected = labels != IGNORE_INDEX
        expect_true(
            bool(selected.any()) and not bool(selected.all()),
            "labels are -100 everywhere or nowhere."
            if not bool(selected.all())
            else "labels hold a token id at every position.",
            hint="Labels hold the original id at the SELECTED positions only and -100 elsewhere, "
            "so that the loss is computed on the selected tokens alone.",
        )
        expect_true(
            torch.equal(labels[selected], ids[selected]),
            "at some selected positions the label is not the original token.",
            hint="The label is what the model must recover: the ORIGINAL id (input_ids), not the "
            "corrupted one.",
        )
        expect_true(
            not bool((selected & special).any()),
            "a special token ([CLS], [SEP] or [PAD]) was selected.",
            hint="Never select the ids in special_ids: build a boolean mask of them and remove it "
            "from the selection (selected & ~special).",
        )
        expect_true(
            torch.equal(inputs[~selected], ids[~selected]),
            "tokens that were not selected were changed.",
            hint="Apply the 80/10/10 rule to the selected positions only (combine its masks with "
            "`selected`); every other token stays as it is.",
        )
        share = float(selected.sum()) / float((~special).sum())
        expect_true(
            _within(share, p, 0.01),
            f"with mlm_probability={p} you selected {share:.3f} of the non-special tokens.",
            hint="Select each non-special token with probability mlm_probability "
            "(torch.rand(...) < mlm_probability), not a fixed 15%.",
        )
        kept_in = inputs[selected]
        original = ids[selected]
        masked = float((kept_in == mask_id).float().mean())
        unchanged = float((kept_in == original).float().mean())
        other = 1.0 - masked - unchanged
        shares = f"[MASK] {masked:.3f}, random {other:.3f}, unchanged {unchanged:.3f}"
        expect_true(
            _within(masked, 0.8, 0.02)
            and _within(unchanged, 0.1, 0.02)
            and _within(other, 0.1, 0.02),
            f"of the selected tokens you made {shares}; expected 0.8 / 0.1 / 0.1.",
            hint="Draw one more uniform number per position: < 0.8 -> [MASK]; 0.8 to 0.9 -> a "
            "random id from torch.randint(vocab_size, ...); >= 0.9 -> keep the token (it is "
            "still predicted).",
        )
        random_ids = kept_in[(kept_in != mask_id) & (kept_in != original)]
        expect_true(
            random_ids.unique().numel() > vocab // 2,
            f"the random replacements use only {random_ids.unique().numel()} different ids.",
            hint="Draw each replacement uniformly from the whole vocabulary: "
            "torch.randint(vocab_size, input_ids.shape, generator=generator).",
        )


# ------------------------------------------------------------------------------------------
# 06.4 static masking: the ablation's missing piece


def _static_reference(
    input_ids: torch.Tensor,
    index: torch.Tensor,
    *,
    seed: int,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    mlm_probability: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, labels = mlm_mask(
        input_ids,
        mask_token_id=mask_token_id,
        vocab_size=vocab_size,
        special_ids=tuple(special_ids),
        mlm_probability=mlm_probability,
        generator=torch.Generator().manual_seed(seed),
    )
    return inputs[index], labels[index]


def _static_wrong(
    input_ids: torch.Tensor,
    index: torch.Tensor,
    *,
    seed: int,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    mlm_probability: float = 0.15,
    kind: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    kw: dict[str, Any] = dict(
        mask_token_id=mask_token_id,
        vocab_size=vocab_size,
        special_ids=tuple(special_ids),
        mlm_probability=mlm_probability,
    )
    if kind == "dynamic":  # a fresh draw from the global generator at every call
        return mlm_mask(input_ids[index], **kw)
    if kind == "batch":  # seeded, but it masks the batch: a row's mask depends on its batch
        return mlm_mask(input_ids[index], generator=torch.Generator().manual_seed(seed), **kw)
    if kind == "no seed":  # the same masks whatever the seed
        inputs, labels = mlm_mask(input_ids, generator=torch.Generator().manual_seed(0), **kw)
        return inputs[index], labels[index]
    # "shared": one pattern of positions for every row
    g = torch.Generator().manual_seed(seed)
    rows = input_ids[index]
    special = torch.zeros_like(rows, dtype=torch.bool)
    for sid in special_ids:
        special |= rows == sid
    pattern = torch.rand(rows.shape[-1], generator=g) < mlm_probability
    selected = pattern.expand_as(rows) & ~special
    labels = torch.where(selected, rows, torch.full_like(rows, IGNORE_INDEX))
    return torch.where(selected, torch.full_like(rows, mask_token_id), rows), labels


@exercise(
    "06.4",
    notebook=NB,
    title="Static masking (the ablation's baseline)",
    asks="Return the masked rows `index` of a data set whose masks are drawn once, from `seed`",
    difficulty=3,
    minutes=20,
    reference=_static_reference,
    wrong_answers={
        "dynamic: a fresh draw at every call": partial(_static_wrong, kind="dynamic"),
        "seeded per call, but masks only the batch": partial(_static_wrong, kind="batch"),
        "one mask pattern for every row": partial(_static_wrong, kind="shared"),
        "ignores the seed": partial(_static_wrong, kind="no seed"),
    },
)
def check_static_masking(answer: Any) -> None:
    """Static masks: the same call twice gives the same rows; a row gets the same mask in any
    batch; another seed gives other masks; rows differ from each other; the masks are BERT's
    (labels original or -100, about 15% selected, special tokens never).
    """
    expect_callable(answer, name="static_masked_rows")
    vocab, mask_id, specials = 500, 4, (0, 1, 2)
    ids = _mlm_test_ids(400, 32, vocab, torch.Generator().manual_seed(64))
    kw: dict[str, Any] = dict(mask_token_id=mask_id, vocab_size=vocab, special_ids=specials)

    def call(index: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = answer(ids.clone(), index.clone(), seed=seed, **kw)
        inputs, labels = _as_pair(out, "static_masked_rows")
        expect_shape(
            inputs,
            (len(index), ids.shape[1]),
            name="inputs",
            hint="Return only the rows `index`, in that order: (len(index), T).",
        )
        expect_shape(labels, (len(index), ids.shape[1]), name="labels", hint="As inputs.")
        return inputs, labels

    everything = torch.arange(len(ids))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(65)
        first = call(everything, 7)
        again = call(everything, 7)
        batch_a = call(torch.arange(100, 160), 7)
        batch_b = call(torch.arange(100, 160).flip(0), 7)  # the same rows, in reverse order
        other_seed = call(everything, 8)
    inputs, labels = first
    selected = labels != IGNORE_INDEX
    special = (ids == 0) | (ids == 1) | (ids == 2)
    expect_true(
        torch.equal(labels[selected], ids[selected])
        and torch.equal(inputs[~selected], ids[~selected]),
        "these are not BERT's masks: labels must be the original ids where selected (-100 "
        "elsewhere) and unselected tokens must stay unchanged.",
        hint="Use coursekit.data.mlm_mask for the masking itself.",
    )
    patterns = (labels != IGNORE_INDEX)[:, 1:8]  # positions every row has (lengths >= 16)
    expect_true(
        patterns.unique(dim=0).shape[0] > 20,
        "every row is masked at the same positions.",
        hint="Draw an independent random number for every token of every row (the shape of "
        "input_ids), not one pattern of positions shared by all rows.",
    )
    expect_true(
        not bool((selected & special).any())
        and _within(float(selected[~special].float().mean()), 0.15, 0.02),
        "the selection is not 15% of the non-special tokens.",
        hint="Pass special_ids and mlm_probability on to mlm_mask.",
    )
    expect_true(
        torch.equal(first[0], again[0]) and torch.equal(first[1], again[1]),
        "two identical calls gave different masks: this is dynamic masking.",
        hint="Static masks are drawn once: mask the WHOLE data set with a generator seeded by "
        "`seed` (torch.Generator().manual_seed(seed)), then pick the rows `index`.",
    )
    same_row = all(torch.equal(batch_a[k], batch_b[k].flip(0)) for k in (0, 1))
    expect_true(
        same_row,
        "rows 100 to 159 got different masks when they came in the reverse order.",
        hint="A row's mask must not depend on which batch it is in: mask all of input_ids at once "
        "with the seeded generator and only then index the rows (not the other way round).",
    )
    expect_true(
        not torch.equal(first[1], other_seed[1]),
        "seed 7 and seed 8 gave the same masks.",
        hint="Seed the generator with the `seed` argument.",
    )


# ------------------------------------------------------------------------------------------
# quiz

quiz_question(
    "06.q1",
    notebook=NB,
    question="Of the tokens BERT selects for prediction, 10% are left unchanged in the input. Why?",
    options=[
        "To make pre-training cheaper",
        "Because the vocabulary has too few random tokens",
        "So the model cannot assume that only [MASK] positions matter: it must build a good "
        "representation of every token, which is all it will see when fine-tuned",
        "So that the labels of those positions can be -100",
    ],
    answer=2,
    explanation="(c): fine-tuning inputs never contain [MASK]; keeping (and randomly replacing) "
    "some selected tokens forces a useful representation at every position. (a) the cost is the "
    "same, every selected token is still predicted; (b) random tokens are drawn from the whole "
    "vocabulary; (d) unchanged tokens keep their label: they are still predicted.",
)

quiz_question(
    "06.q2",
    notebook=NB,
    question="In '[CLS] the film is long [SEP] but worth it [SEP]', what tells BERT that 'but' "
    "belongs to the second sentence?",
    options=[
        "Its segment (token type) embedding: 1 for the second sentence",
        "Its position embedding",
        "The [CLS] token",
        "Nothing: BERT reads both sentences as one",
    ],
    answer=0,
    explanation="(a): every token adds the embedding of its segment, 0 for [CLS] A [SEP], 1 for "
    "B [SEP]. (b) positions say where a token is, not which sentence; (c) [CLS] is the summary "
    "slot for classification; (d) the [SEP] tokens and the segment embeddings keep the two "
    "sentences apart.",
)

quiz_question(
    "06.q3",
    notebook=NB,
    question="What did RoBERTa change compared with BERT?",
    options=[
        "A deeper network with a new attention mechanism",
        "A causal (left-to-right) mask",
        "Sinusoidal instead of learned positions",
        "Only the training recipe: no NSP, dynamic masking, bigger batches, more data, longer "
        "training, byte-level BPE",
    ],
    answer=3,
    explanation="(d): the network is BERT's; the gains (GLUE 88.5 as published, against "
    "BERT-large's 82.1) came from how it was trained. (a), (b) and (c) are architectural "
    "changes that RoBERTa did not make; a causal mask would make it a GPT-style decoder.",
)

quiz_question(
    "06.q4",
    notebook=NB,
    question="A DistilBERT-style student is trained with soft targets at temperature T. Why is "
    "the KL term multiplied by T^2?",
    options=[
        "To make the student's logits larger",
        "Softening by T shrinks the gradients of the soft term by about 1/T^2; the factor keeps "
        "its weight comparable to the hard-label loss when T changes",
        "Because the teacher has twice as many layers",
        "To turn the KL divergence into a cross-entropy",
    ],
    answer=1,
    explanation="(b): dividing logits by T scales the soft term's gradients by about 1/T^2 "
    "(Hinton et al., 2015). (a) the factor scales a loss, not the logits; (c) the depth ratio "
    "plays no part; (d) KL and cross-entropy differ by the teacher's entropy, a constant, with "
    "or without the factor.",
)

quiz_question(
    "06.q5",
    notebook=NB,
    question="Why is an encoder like BERT a poor choice for writing text left to right?",
    options=[
        "It has no feed-forward layers",
        "Its vocabulary is too small",
        "It cannot be fine-tuned",
        "It was trained to fill blanks with both sides visible; generation has no right-hand "
        "context, and BERT has no causal mask to train next-token prediction",
    ],
    answer=3,
    explanation="(d): every BERT position sees the whole sequence, which suits understanding "
    "tasks and filling in blanks, not predicting the next word from the past alone (that is "
    "GPT's objective, notebook 07). (a) its layers have FFNs; (b) 30,522 WordPiece tokens "
    "cover English well; (c) fine-tuning is exactly how BERT is used.",
)
