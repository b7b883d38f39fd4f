"""Decoding: one loop that turns next-token distributions into sequences, for every model.

Every model that generates text speaks one small, explicit protocol, :class:`CausalLM`:

* ``new_cache()`` -> an empty decoding cache (KV caches for Transformers, the hidden state
  for RNNs), with a ``length`` and ``reorder(index)``;
* ``step(ids, cache)`` -> next-token logits ``(B, T, V)`` for the new ``ids`` ``(B, T)``;
  with a cache, ``ids`` continue the cached tokens and the cache is extended; with
  ``cache=None`` the ids are the whole context, recomputed from scratch;
* ``context_length``: how many positions the model can see (``None``: unlimited).

Encoder-decoder models (:class:`coursekit.models.Transformer`, the RNN
:class:`~coursekit.rnn.Seq2Seq`) provide ``condition(src)`` -> a :class:`CausalLM` over the
target language given the source (:class:`ConditionalLM`), and a ``config`` with ``bos_id``,
``eos_id`` and ``pad_id``.

* :func:`generate`: continue a prompt; temperature, top-k, top-p (nucleus), repetition penalty
  (temperature 0 or top-k 1 = greedy).
* :func:`greedy_decode`, :func:`sample_decode`, :func:`beam_search` (GNMT length penalty
  ``lp(L) = ((5 + L) / 6) ** alpha``, Wu et al. 2016) and :func:`sequence_log_probs` for
  encoder-decoders; they return the ids *after* ``<bos>`` ``(B, L)``, padded with ``pad_id``
  after ``<eos>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from coursekit.runtime import eval_mode

__all__ = [
    "BeamResult",
    "CausalLM",
    "ConditionalLM",
    "DecodingCache",
    "beam_search",
    "generate",
    "greedy_decode",
    "length_penalty",
    "sample_decode",
    "sequence_log_probs",
]


class DecodingCache(Protocol):
    """What a model's decoding cache offers the loop."""

    @property
    def length(self) -> int: ...

    def reorder(self, index: torch.Tensor) -> None: ...


@runtime_checkable
class CausalLM(Protocol):
    """A model that predicts the next token from the previous ones (see the module docstring)."""

    @property
    def context_length(self) -> int | None: ...

    def new_cache(self) -> Any: ...

    def step(self, ids: torch.Tensor, cache: Any | None) -> torch.Tensor: ...


@runtime_checkable
class ConditionalLM(Protocol):
    """An encoder-decoder: ``condition(src)`` gives the decoder as a :class:`CausalLM`."""

    config: Any

    def condition(self, src: torch.Tensor) -> CausalLM: ...


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _as_causal_lm(model: nn.Module) -> Any:
    model = _unwrap(model)
    if not isinstance(model, CausalLM):
        raise TypeError(
            f"{type(model).__name__} cannot generate: a model needs new_cache(), "
            "step(ids, cache) and context_length (the CausalLM protocol of coursekit.generate)."
        )
    return model


def _as_conditional(model: nn.Module) -> Any:
    model = _unwrap(model)
    if not isinstance(model, ConditionalLM):
        raise TypeError(
            f"{type(model).__name__} is not an encoder-decoder: it needs condition(src) and a "
            "config with bos_id, eos_id and pad_id (see coursekit.generate)."
        )
    return model


def _ids(
    model: Any, bos_id: int | None, eos_id: int | None, pad_id: int | None
) -> tuple[int, int, int]:
    config = getattr(model, "config", None)

    def pick(value: int | None, name: str) -> int:
        if value is not None:
            return value
        if config is not None and hasattr(config, name):
            return int(getattr(config, name))
        raise ValueError(f"pass {name}=... (the model's config has no {name}).")

    return pick(bos_id, "bos_id"), pick(eos_id, "eos_id"), pick(pad_id, "pad_id")


def _check_ids(ids: torch.Tensor, name: str) -> None:
    if ids.dim() != 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(
            f"{name} must be (B, T) integer token ids, got {ids.dtype} {tuple(ids.shape)}."
        )
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(ids.shape)}): give at least one token.")


# --------------------------------------------------------------------------------------------
# the one decoding loop
# --------------------------------------------------------------------------------------------
def _pick_token(
    logits: torch.Tensor,
    ids: torch.Tensor,
    *,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """One token per row from next-token ``logits`` ``(B, V)``, given the ids so far."""
    logits = _apply_repetition_penalty(logits.float(), ids, repetition_penalty)
    if temperature == 0.0 or top_k == 1:
        return logits.argmax(-1)
    logits = _filter_logits(logits / temperature, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(ids.device)


def _decode_loop(
    lm: Any,
    ids: torch.Tensor,
    max_new_tokens: int,
    *,
    use_cache: bool,
    max_context: int | None,
    stop_id: int | None,
    fill_id: int | None,
    **pick: Any,
) -> torch.Tensor:
    """Append up to ``max_new_tokens`` tokens to ``ids`` ``(B, T0)``; returns ``(B, T0 + n)``.

    With the cache only the newest token is fed at each step. When the sequence outgrows
    ``max_context`` the model sees the last ``max_context`` tokens: the cache is rebuilt from
    that window (absolute positions shift, so the old entries cannot be reused).
    """

    def window(x: torch.Tensor) -> torch.Tensor:
        return x if max_context is None else x[:, -max_context:]

    cache = lm.new_cache() if use_cache else None
    logits = lm.step(window(ids), cache)[:, -1]
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    for i in range(max_new_tokens):
        token = _pick_token(logits, ids, **pick)
        if stop_id is not None:
            token = token.masked_fill(done, stop_id if fill_id is None else fill_id)
            done |= token == stop_id
        ids = torch.cat([ids, token[:, None]], dim=1)
        if i == max_new_tokens - 1 or (stop_id is not None and bool(done.all())):
            break
        if cache is None:
            logits = lm.step(window(ids), None)[:, -1]
        elif max_context is not None and cache.length + 1 > max_context:
            cache = lm.new_cache()
            logits = lm.step(window(ids), cache)[:, -1]
        else:
            logits = lm.step(token[:, None], cache)[:, -1]
    return ids


def generate(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    eos_id: int | None = None,
    max_context: int | None = None,
) -> torch.Tensor:
    """Continue ``prompt_ids`` ``(B, T0)`` with a :class:`CausalLM`; returns ``(B, T0 + n)``.

    ``temperature=0`` (or ``top_k=1``) is greedy; otherwise tokens are drawn from
    softmax(filtered logits / temperature) with ``generator``. ``top_p`` keeps the smallest set
    of tokens whose probability reaches p (at least one). ``max_context`` (default: the model's
    ``context_length``) is how many recent tokens the model sees. ``use_cache=False``
    recomputes the whole context at every step (same tokens, slower). With ``eos_id``,
    sequences that produced it are padded with it and generation stops once all have.
    """
    _check_ids(prompt_ids, "prompt_ids")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}.")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}.")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (1 = greedy), got {top_k}.")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
    if not repetition_penalty > 0:
        raise ValueError(
            f"repetition_penalty must be positive (1 = none), got {repetition_penalty}."
        )
    lm = _as_causal_lm(model)
    if max_context is None:
        max_context = lm.context_length
    if max_context is not None and max_context < 1:
        raise ValueError(f"max_context must be positive, got {max_context}.")
    if max_new_tokens == 0:
        return prompt_ids
    with eval_mode(lm):
        return _decode_loop(
            lm,
            prompt_ids,
            max_new_tokens,
            use_cache=use_cache,
            max_context=max_context,
            stop_id=eos_id,
            fill_id=None,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            generator=generator,
        )


# --------------------------------------------------------------------------------------------
# encoder-decoder decoding
# --------------------------------------------------------------------------------------------
def _translate(
    model: nn.Module,
    src: torch.Tensor,
    max_len: int,
    ids: tuple[int | None, int | None, int | None],
    *,
    temperature: float,
    generator: torch.Generator | None,
    use_cache: bool = True,
) -> torch.Tensor:
    _check_ids(src, "src")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}.")
    cond = _as_conditional(model)
    bos, eos, pad = _ids(cond, *ids)
    with eval_mode(cond):
        lm = cond.condition(src)
        start = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)
        out = _decode_loop(
            lm,
            start,
            max_len,
            use_cache=use_cache,
            max_context=lm.context_length,
            stop_id=eos,
            fill_id=pad,
            temperature=temperature,
            top_k=None,
            top_p=None,
            repetition_penalty=1.0,
            generator=generator,
        )
    return out[:, 1:]


def greedy_decode(
    model: nn.Module,
    src: torch.Tensor,
    *,
    max_len: int = 50,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Most likely token at each step. src ``(B, S)`` -> ids ``(B, L)``, ``L <= max_len``."""
    return _translate(
        model,
        src,
        max_len,
        (bos_id, eos_id, pad_id),
        temperature=0.0,
        generator=None,
        use_cache=use_cache,
    )


def sample_decode(
    model: nn.Module,
    src: torch.Tensor,
    *,
    max_len: int = 50,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> torch.Tensor:
    """Draw each token from softmax(logits / temperature). src ``(B, S)`` -> ids ``(B, L)``."""
    if temperature <= 0:
        raise ValueError("sample_decode needs temperature > 0 (use greedy_decode for 0).")
    return _translate(
        model, src, max_len, (bos_id, eos_id, pad_id), temperature=temperature, generator=generator
    )


def length_penalty(length: torch.Tensor | int, alpha: float) -> torch.Tensor:
    """GNMT length penalty ``((5 + L) / 6) ** alpha``; alpha 0 means none (plain log-prob)."""
    length = torch.as_tensor(length, dtype=torch.float32)
    return ((5.0 + length) / 6.0) ** alpha


@dataclass
class BeamResult:
    """Beam search output.

    ``tokens`` ``(B, L)``: the best hypothesis per source (after ``<bos>``, ``pad`` after
    ``<eos>``); ``scores`` ``(B,)``: its length-normalised log-probability; ``log_probs``
    ``(B,)``: its raw log-probability; ``beams`` ``(B, K, L)`` and ``beam_scores`` ``(B, K)``:
    all final hypotheses, best first.
    """

    tokens: torch.Tensor
    scores: torch.Tensor
    log_probs: torch.Tensor
    beams: torch.Tensor
    beam_scores: torch.Tensor


def beam_search(
    model: nn.Module,
    src: torch.Tensor,
    *,
    beam_size: int = 4,
    max_len: int = 50,
    alpha: float = 0.6,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> BeamResult:
    r"""Beam search for an encoder-decoder model, batched over sources and beams.

    At every step each of the ``K`` live hypotheses is extended by every token; the
    ``K x V`` candidates are ranked by :math:`\log p(y) / lp(|y|)` and the best ``K`` kept.
    A hypothesis that has produced ``<eos>`` is *frozen*: its only continuation is padding at
    zero cost, so it keeps its slot and score while others grow. The search stops when every
    beam is finished or after ``max_len`` tokens. With ``beam_size=1`` this is exactly
    :func:`greedy_decode`.

    src ``(B, S)`` -> :class:`BeamResult`.
    """
    _check_ids(src, "src")
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}.")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}.")
    cond = _as_conditional(model)
    bos, eos, pad = _ids(cond, bos_id, eos_id, pad_id)
    b, k, device = src.shape[0], beam_size, src.device
    with eval_mode(cond):
        lm = cond.condition(src.repeat_interleave(k, dim=0))  # beams of a source are adjacent
        cache = lm.new_cache()
        seqs = torch.full((b, k, 1), bos, dtype=torch.long, device=device)
        scores = torch.full((b, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # all beams start identical: keep one so candidates are distinct
        finished = torch.zeros(b, k, dtype=torch.bool, device=device)
        lengths = torch.zeros(b, k, dtype=torch.long, device=device)
        logits = lm.step(seqs.view(b * k, -1), cache)[:, -1].float()
        offsets = torch.arange(b, device=device).unsqueeze(1) * k  # first row of each source
        for step in range(max_len):
            log_p = torch.log_softmax(logits, dim=-1).view(b, k, -1)  # (B, K, V)
            v = log_p.shape[-1]
            frozen = torch.full_like(log_p, float("-inf"))
            frozen[..., pad] = 0.0
            log_p = torch.where(finished[..., None], frozen, log_p)
            cand = scores[..., None] + log_p  # raw log-probabilities (B, K, V)
            new_len = (lengths + (~finished).long())[..., None].expand(b, k, v)
            ranked = cand / length_penalty(new_len, alpha).to(device)
            top, flat = ranked.view(b, k * v).topk(k, dim=-1)  # (B, K)
            beam, token = flat // v, flat % v
            scores = cand.view(b, k * v).gather(1, flat)
            seqs = torch.cat(
                [seqs.gather(1, beam[..., None].expand_as(seqs)), token[..., None]], -1
            )
            was_finished = finished.gather(1, beam)
            lengths = lengths.gather(1, beam) + (~was_finished).long()
            finished = was_finished | (token == eos)
            if step == max_len - 1 or bool(finished.all()):
                break
            cache.reorder((offsets + beam).view(-1))  # each surviving beam keeps its history
            logits = lm.step(token.view(b * k, 1), cache)[:, -1].float()
        final = scores / length_penalty(lengths, alpha).to(device)
        order = final.argsort(dim=-1, descending=True)
        beams = seqs.gather(1, order[..., None].expand_as(seqs))[..., 1:]
        final = final.gather(1, order)
        raw = scores.gather(1, order)
    return BeamResult(
        tokens=beams[:, 0], scores=final[:, 0], log_probs=raw[:, 0], beams=beams, beam_scores=final
    )


def sequence_log_probs(
    model: nn.Module,
    src: torch.Tensor,
    tokens: torch.Tensor,
    *,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> torch.Tensor:
    """Log-probability ``(B,)`` the model gives to ``tokens`` ``(B, L)`` (up to and with ``<eos>``).

    Scored in one teacher-forced pass; used to compare decoders (beam search should find
    translations the model itself rates at least as likely as greedy's).
    """
    cond = _as_conditional(model)
    bos, eos, pad = _ids(cond, bos_id, eos_id, pad_id)
    with eval_mode(cond):
        lm = cond.condition(src)
        start = torch.full((tokens.shape[0], 1), bos, dtype=torch.long, device=tokens.device)
        logits = lm.step(torch.cat([start, tokens[:, :-1]], dim=1), None)
        log_p = torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)
        # positions after the first <eos> (padding) do not count
        is_eos = (tokens == eos).long()
        after_eos = (is_eos.cumsum(1) - is_eos) > 0
        return log_p.masked_fill(after_eos, 0.0).sum(1)


# --------------------------------------------------------------------------------------------
# sampling filters
# --------------------------------------------------------------------------------------------
def _filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Set to -inf every logit outside the top-k and outside the smallest nucleus of mass top_p."""
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}.")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(-1) - probs  # mass of the strictly more likely tokens
        drop_sorted = mass_before >= top_p  # the first token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _apply_repetition_penalty(
    logits: torch.Tensor, ids: torch.Tensor, penalty: float
) -> torch.Tensor:
    """CTRL-style: divide positive (multiply negative) logits of already-seen tokens by ``penalty``."""
    if penalty == 1.0:
        return logits
    if penalty <= 0:
        raise ValueError(f"repetition_penalty must be positive, got {penalty}.")
    seen = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, ids, True)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)
