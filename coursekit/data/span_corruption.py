"""T5's pre-training objective: span corruption (a denoising objective for encoder-decoders).

A sequence of ``L`` token ids is split into alternating *kept* and *noise* spans. By default
15% of the tokens are noise (``noise_density``) and noise spans are 3 tokens long on average
(``mean_noise_span_length``), so about ``0.15 L / 3`` spans are dropped. Each dropped span is
replaced in the encoder input by one *sentinel* token (``<extra_id_0>``, ``<extra_id_1>``, ...,
a different one per span, in order); the decoder target lists each sentinel followed by the
tokens it stands for, and one more sentinel closes the target::

    original: Thank you for inviting me to your party last week .
    inputs:   Thank you <X> me to your party <Y> week .
    targets:  <X> for inviting <Y> last <Z>

(the example of Figure 2 of the T5 paper). The caller appends EOS to both sides.

Why not BERT-style masking? With BERT's corruption the model must reproduce (or classify) every
position; here the decoder predicts only the dropped tokens plus one sentinel per span, so
targets are about ``0.15 L + 0.05 L + 1`` tokens instead of ``L``. Collapsing a whole span
into one sentinel also shortens the encoder input. Both make pre-training cheaper, and in the
T5 ablations this objective did as well as BERT-style masking or slightly better.

:func:`random_spans_noise_mask` draws the mask, :func:`span_corrupt` builds the pair and
:func:`span_uncorrupt` inverts it (``span_uncorrupt(*span_corrupt(x)) == x``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "corrupted_lengths",
    "noise_span_counts",
    "random_spans_noise_mask",
    "span_corrupt",
    "span_uncorrupt",
]


def _check_parameters(length: int, noise_density: float, mean_noise_span_length: float) -> None:
    if length < 2:
        raise ValueError(
            f"Span corruption needs a sequence of at least 2 tokens (one kept, one noise), "
            f"got length={length}."
        )
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density must be in (0, 1) (T5 uses 0.15), got {noise_density}.")
    if not (math.isfinite(mean_noise_span_length) and mean_noise_span_length >= 1.0):
        raise ValueError(
            f"mean_noise_span_length must be a finite number >= 1 (T5 uses 3), "
            f"got {mean_noise_span_length}."
        )


def noise_span_counts(
    length: int, *, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """``(num_noise_tokens, num_noise_spans)`` for a sequence of ``length`` tokens.

    ``num_noise_tokens = round(length * noise_density)`` clamped to ``[1, length - 1]``;
    ``num_noise_spans = round(num_noise_tokens / mean_noise_span_length)``, at least 1 and at
    most the number of kept tokens (every noise span needs a kept span before it). Python's
    ``round`` rounds halves to even, as TensorFlow's ``tf.round`` in the reference code does.
    """
    _check_parameters(length, noise_density, mean_noise_span_length)
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    num_spans = min(num_spans, length - num_noise)
    return num_noise, num_spans


def corrupted_lengths(
    length: int, *, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """``(input_length, target_length)`` that :func:`span_corrupt` produces from ``length`` tokens.

    Inputs keep the non-noise tokens plus one sentinel per span; targets hold the noise tokens,
    one sentinel per span and the closing sentinel. EOS (added by the caller) is not counted.
    """
    num_noise, num_spans = noise_span_counts(
        length, noise_density=noise_density, mean_noise_span_length=mean_noise_span_length
    )
    return length - num_noise + num_spans, num_noise + num_spans + 1


def _random_partition(
    num_items: int, num_segments: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Lengths ``(num_segments,)`` of a uniformly random split of ``num_items`` into non-empty runs.

    Choose ``num_segments - 1`` distinct cut points among the ``num_items - 1`` gaps between
    items; every composition of ``num_items`` into ``num_segments`` positive parts is equally
    likely.
    """
    cuts = torch.randperm(num_items - 1, generator=generator)[: num_segments - 1] + 1
    bounds = torch.cat(
        [torch.zeros(1, dtype=torch.long), cuts.sort().values, torch.tensor([num_items])]
    )
    return bounds.diff()


def random_spans_noise_mask(
    length: int,
    *,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """T5's random noise mask: bool ``(length,)``, True where a token is dropped (noise).

    The counts come from :func:`noise_span_counts`. The noise tokens are split into
    ``num_noise_spans`` random non-empty spans, the kept tokens likewise, and the two are
    interleaved kept, noise, kept, noise, ...: the mask starts with a kept span and ends with a
    noise span. Reproducible with a seeded ``generator`` (else torch's global RNG).
    """
    num_noise, num_spans = noise_span_counts(
        length, noise_density=noise_density, mean_noise_span_length=mean_noise_span_length
    )
    noise_lengths = _random_partition(num_noise, num_spans, generator)
    kept_lengths = _random_partition(length - num_noise, num_spans, generator)
    # run lengths kept_0, noise_0, kept_1, noise_1, ...; odd runs are noise
    runs = torch.stack([kept_lengths, noise_lengths], dim=1).reshape(-1)
    is_noise = torch.tensor([False, True]).repeat(num_spans)
    return is_noise.repeat_interleave(runs)


def _as_id_list(ids: Sequence[int] | torch.Tensor, what: str) -> list[int]:
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"{what} must be 1-D token ids, got shape {tuple(ids.shape)}.")
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids]


def _as_bool_list(mask: Sequence[bool] | torch.Tensor) -> list[bool]:
    if isinstance(mask, torch.Tensor):
        if mask.dim() != 1:
            raise ValueError(f"noise_mask must be 1-D, got shape {tuple(mask.shape)}.")
        return [bool(m) for m in mask.tolist()]
    return [bool(m) for m in mask]


def _sentinel_index(sentinel_ids: Sequence[int]) -> dict[int, int]:
    index = {int(s): k for k, s in enumerate(sentinel_ids)}
    if len(index) != len(sentinel_ids):
        raise ValueError("sentinel_ids must be distinct token ids.")
    return index


def span_corrupt(
    ids: Sequence[int] | torch.Tensor,
    *,
    sentinel_ids: Sequence[int],
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    generator: torch.Generator | None = None,
    noise_mask: Sequence[bool] | torch.Tensor | None = None,
) -> tuple[list[int], list[int]]:
    """Corrupt ``ids`` ``(L,)`` as T5 does; returns ``(inputs, targets)`` as lists of ids.

    Each noise span of the input is replaced by one sentinel: the first span by
    ``sentinel_ids[0]``, the next by ``sentinel_ids[1]``, ... The targets are
    ``sentinel_0, span_0 tokens, sentinel_1, span_1 tokens, ...`` followed by the next unused
    sentinel, which closes the targets (as in Figure 2 of the T5 paper); appending EOS to both
    is left to the caller. ``noise_mask`` (bool ``(L,)``) overrides the random mask of
    :func:`random_spans_noise_mask` (then ``noise_density``, ``mean_noise_span_length`` and
    ``generator`` are unused). With ``k`` noise spans, ``k + 1`` sentinel ids are needed; T5's
    are ``<extra_id_0>``, ``<extra_id_1>``, ..., the last ids of its vocabulary.
    """
    tokens = _as_id_list(ids, "ids")
    sentinel_of = _sentinel_index(sentinel_ids)
    clashes = sorted({t for t in tokens if t in sentinel_of})
    if clashes:
        raise ValueError(
            f"ids already contain sentinel id(s) {clashes[:5]}; sentinels must be ids that never "
            f"occur in the text (T5 reserves <extra_id_*> for them)."
        )
    if noise_mask is None:
        mask = random_spans_noise_mask(
            len(tokens),
            noise_density=noise_density,
            mean_noise_span_length=mean_noise_span_length,
            generator=generator,
        ).tolist()
    else:
        mask = _as_bool_list(noise_mask)
        if len(mask) != len(tokens):
            raise ValueError(
                f"noise_mask has {len(mask)} entries but ids has {len(tokens)}; pass one flag "
                f"per token."
            )
    num_spans = sum(1 for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1]))
    if num_spans + 1 > len(sentinel_ids):
        raise ValueError(
            f"The noise mask has {num_spans} spans, which needs {num_spans + 1} sentinel ids "
            f"(one per span plus the closing one) but only {len(sentinel_ids)} were given; "
            f"pass more sentinel_ids or lower noise_density."
        )
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    for i, (token, noisy) in enumerate(zip(tokens, mask)):
        if not noisy:
            inputs.append(token)
            continue
        if i == 0 or not mask[i - 1]:  # a new noise span starts here
            span += 1
            inputs.append(int(sentinel_ids[span]))
            targets.append(int(sentinel_ids[span]))
        targets.append(token)
    targets.append(int(sentinel_ids[span + 1]))
    return inputs, targets


def span_uncorrupt(
    inputs: Sequence[int] | torch.Tensor,
    targets: Sequence[int] | torch.Tensor,
    *,
    sentinel_ids: Sequence[int],
) -> list[int]:
    """Invert :func:`span_corrupt`: the original ids, each input sentinel replaced by its span.

    The sentinels of ``inputs`` must be ``sentinel_ids[0], sentinel_ids[1], ...`` in that order,
    each once; ``targets`` must start with ``sentinel_ids[0]`` and list the same sentinels in
    the same order, each followed by its span. The next sentinel closes the targets: whatever
    follows it (EOS, padding) is ignored. Without a closing sentinel the last span runs to the
    end of ``targets``.
    """
    source = _as_id_list(inputs, "inputs")
    answer = _as_id_list(targets, "targets")
    sentinel_of = _sentinel_index(sentinel_ids)

    used = [sentinel_of[t] for t in source if t in sentinel_of]
    if used != list(range(len(used))):
        raise ValueError(
            f"The sentinels in inputs are sentinel number(s) {used[:8]} but must be 0, 1, 2, ... "
            f"in order, each once (as span_corrupt writes them)."
        )
    spans: list[list[int]] = []
    for position, token in enumerate(answer):
        k = sentinel_of.get(token)
        if k is None:
            if not spans:
                raise ValueError(
                    f"targets must start with sentinel_ids[0]={sentinel_ids[0]}, got {token} at "
                    f"position {position}."
                )
            spans[-1].append(token)
            continue
        if k != len(spans):
            raise ValueError(
                f"Sentinels out of order in targets: expected sentinel number {len(spans)} "
                f"(id {sentinel_ids[len(spans)] if len(spans) < len(sentinel_ids) else '?'}) "
                f"at position {position}, got number {k} (id {token})."
            )
        if k == len(used):  # the closing sentinel
            break
        spans.append([])
    if len(spans) < len(used):
        missing = int(sentinel_ids[len(spans)])
        raise ValueError(
            f"inputs use {len(used)} sentinels but targets hold spans for only {len(spans)}: "
            f"sentinel id {missing} is missing from targets."
        )
    restored: list[int] = []
    for token in source:
        k = sentinel_of.get(token)
        restored.extend(spans[k] if k is not None else [token])
    return restored
