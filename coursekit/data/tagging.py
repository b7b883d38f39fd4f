"""Small generated tasks for BERT's fine-tuning heads: token labelling and span extraction.

Both use the BERT special tokens of :data:`coursekit.data.pairs.BERT_TOKENS` (ids 0..4) and
are reproducible from their seed.

* :func:`entity_tagging_task` (a miniature NER): sequences of *filler*, *name* and *trigger*
  tokens. A run of name tokens that directly follows a trigger of type ``k`` is an entity of
  type ``k``: its first token is tagged ``B-k``, the others ``I-k``. The same name tokens
  elsewhere (after a filler) are tagged ``O``. So a token's tag depends on its context, not on
  the token alone: a per-token classifier cannot go beyond guessing, a bidirectional encoder can.
* :func:`span_extraction_task` (a miniature extractive QA): ``[CLS] q [SEP] context [SEP]``
  where the context lists records ``key value value ... filler ...`` and the question ``q`` is
  one of the keys; the answer is the value span after that key: ``start_positions`` and
  ``end_positions`` (inclusive) index ``input_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from coursekit.data.masking import IGNORE_INDEX
from coursekit.data.pairs import BERT_TOKENS, N_BERT_SPECIAL, BertBatch

__all__ = [
    "SpanTask",
    "TaggingTask",
    "entity_tagging_task",
    "span_extraction_task",
]


def _draw(high: int, generator: torch.Generator, low: int = 0) -> int:
    return int(torch.randint(low, high, (1,), generator=generator))


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}.")


# --------------------------------------------------------------------------------------------
# token labelling
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaggingTask:
    """A token-labelling data set: ``input_ids``, ``attention_mask``, ``labels`` (each ``(N, T)``).

    ``labels`` hold a tag id per real token and -100 at ``[CLS]``, ``[SEP]`` and padding.
    ``label_names[k]`` names tag ``k`` (``"O"``, ``"B-1"``, ``"I-1"``, ...). Token ids of each
    kind: ``trigger_ids``, ``name_ids``, ``filler_ids`` (ranges).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    vocab_size: int
    label_names: tuple[str, ...]
    trigger_ids: range
    name_ids: range
    filler_ids: range

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, index: torch.Tensor | slice | None = None) -> BertBatch:
        """The examples ``index`` (all by default) as a :class:`BertBatch` with token labels."""
        index = slice(None) if index is None else index
        ids = self.input_ids[index]
        return BertBatch(
            ids, torch.zeros_like(ids), self.attention_mask[index], labels=self.labels[index]
        )


def entity_tagging_task(
    n: int,
    length: int = 24,
    *,
    n_types: int = 2,
    n_names: int = 12,
    n_fillers: int = 20,
    max_entity_len: int = 3,
    min_length: int | None = None,
    p_entity: float = 0.3,
    p_distractor: float = 0.3,
    seed: int = 0,
) -> TaggingTask:
    """``n`` sequences of ``length`` content tokens (or a random length in ``[min_length,
    length]``, padded) in ``[CLS] ... [SEP]``, tagged by the rule in the module docstring.

    Vocabulary: the 5 special ids, then ``n_types`` triggers, ``n_names`` names and
    ``n_fillers`` fillers. The sequence is built from events: with probability ``p_entity`` a
    trigger followed by 1..``max_entity_len`` names; with probability ``p_distractor`` a filler
    followed by one (untagged) name; otherwise a filler. Tags: 0 = ``O``, ``2k - 1`` = ``B-k``,
    ``2k`` = ``I-k`` for trigger type ``k = 1..n_types``.
    """
    _check_positive(
        n=n,
        length=length,
        n_types=n_types,
        n_names=n_names,
        n_fillers=n_fillers,
        max_entity_len=max_entity_len,
    )
    if min_length is not None and not 1 <= min_length <= length:
        raise ValueError(f"min_length must be in [1, length={length}], got {min_length}.")
    if not (0.0 <= p_entity and 0.0 <= p_distractor and p_entity + p_distractor <= 1.0):
        raise ValueError(
            f"p_entity={p_entity} and p_distractor={p_distractor} must be probabilities "
            "with a sum of at most 1."
        )
    g = torch.Generator().manual_seed(seed)
    triggers = range(N_BERT_SPECIAL, N_BERT_SPECIAL + n_types)
    names = range(triggers.stop, triggers.stop + n_names)
    fillers = range(names.stop, names.stop + n_fillers)
    sp = BERT_TOKENS
    width = length + 2
    input_ids = torch.full((n, width), sp.pad, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    for row in range(n):
        t = length if min_length is None else _draw(length + 1, g, min_length)
        tokens: list[int] = []
        tags: list[int] = []
        while len(tokens) < t:
            roll = float(torch.rand((), generator=g))
            if roll < p_entity:
                k = _draw(n_types, g)
                span = _draw(max_entity_len + 1, g, 1)
                tokens.append(triggers[k])
                tags.append(0)
                for j in range(span):
                    tokens.append(names[_draw(n_names, g)])
                    tags.append(2 * k + 1 if j == 0 else 2 * k + 2)
            elif roll < p_entity + p_distractor:
                tokens += [fillers[_draw(n_fillers, g)], names[_draw(n_names, g)]]
                tags += [0, 0]
            else:
                tokens.append(fillers[_draw(n_fillers, g)])
                tags.append(0)
        # cutting at t keeps every tag right: a tag depends only on the tokens before it
        tokens, tags = tokens[:t], tags[:t]
        input_ids[row, : t + 2] = torch.tensor([sp.cls, *tokens, sp.sep])
        attention[row, : t + 2] = 1
        labels[row, 1 : t + 1] = torch.tensor(tags)
    label_names = ("O", *[f"{p}-{k}" for k in range(1, n_types + 1) for p in ("B", "I")])
    return TaggingTask(
        input_ids, attention, labels, fillers.stop, label_names, triggers, names, fillers
    )


# --------------------------------------------------------------------------------------------
# span extraction
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpanTask:
    """An extractive question-answering data set.

    ``input_ids``, ``token_type_ids`` (0 for ``[CLS] q [SEP]``, 1 for the context and its
    ``[SEP]``), ``attention_mask``: ``(N, T)``; ``start_positions``, ``end_positions``: ``(N,)``,
    the first and last answer token (inclusive) as indices into ``input_ids``.
    """

    input_ids: torch.Tensor
    token_type_ids: torch.Tensor
    attention_mask: torch.Tensor
    start_positions: torch.Tensor
    end_positions: torch.Tensor
    vocab_size: int
    key_ids: range
    value_ids: range
    filler_ids: range

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, index: torch.Tensor | slice | None = None) -> BertBatch:
        """The examples ``index`` (all by default) as a :class:`BertBatch` with span labels."""
        index = slice(None) if index is None else index
        return BertBatch(
            self.input_ids[index],
            self.token_type_ids[index],
            self.attention_mask[index],
            start_positions=self.start_positions[index],
            end_positions=self.end_positions[index],
        )


def span_extraction_task(
    n: int,
    *,
    n_records: int = 4,
    max_answer_len: int = 3,
    max_gap: int = 2,
    n_keys: int = 12,
    n_values: int = 16,
    n_fillers: int = 8,
    seed: int = 0,
) -> SpanTask:
    """``n`` examples ``[CLS] q [SEP] record record ... [SEP] [PAD]...``.

    Each context holds ``n_records`` records ``key v_1 .. v_m f_1 .. f_g`` with distinct keys,
    ``m`` in ``1..max_answer_len`` value tokens and ``g`` in ``1..max_gap`` filler tokens. The
    question ``q`` is one of the record keys; the answer is that record's value span.
    Vocabulary: the 5 special ids, then ``n_keys`` keys, ``n_values`` values, ``n_fillers`` fillers.
    """
    _check_positive(
        n=n,
        n_records=n_records,
        max_answer_len=max_answer_len,
        max_gap=max_gap,
        n_keys=n_keys,
        n_values=n_values,
        n_fillers=n_fillers,
    )
    if n_records > n_keys:
        raise ValueError(f"{n_records} records with distinct keys need n_keys >= n_records.")
    g = torch.Generator().manual_seed(seed)
    keys = range(N_BERT_SPECIAL, N_BERT_SPECIAL + n_keys)
    values = range(keys.stop, keys.stop + n_values)
    fillers = range(values.stop, values.stop + n_fillers)
    sp = BERT_TOKENS
    rows: list[list[int]] = []
    starts, ends, question_len = [], [], 3  # [CLS] q [SEP]
    for _ in range(n):
        record_keys = torch.randperm(n_keys, generator=g)[:n_records].tolist()
        asked = _draw(n_records, g)
        context: list[int] = []
        start = end = -1
        for r, k in enumerate(record_keys):
            context.append(keys[k])
            span = [values[_draw(n_values, g)] for _ in range(_draw(max_answer_len + 1, g, 1))]
            if r == asked:
                start = question_len + len(context)
                end = start + len(span) - 1
            context += span
            context += [fillers[_draw(n_fillers, g)] for _ in range(_draw(max_gap + 1, g, 1))]
        rows.append([sp.cls, keys[record_keys[asked]], sp.sep, *context, sp.sep])
        starts.append(start)
        ends.append(end)
    width = max(len(r) for r in rows)
    input_ids = torch.full((n, width), sp.pad, dtype=torch.long)
    token_type = torch.zeros((n, width), dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        token_type[i, question_len : len(row)] = 1
        attention[i, : len(row)] = 1
    return SpanTask(
        input_ids,
        token_type,
        attention,
        torch.tensor(starts),
        torch.tensor(ends),
        fillers.stop,
        keys,
        values,
        fillers,
    )
