"""Decoding: turning next-token distributions into sequences.

Encoder-decoder models (anything with ``encode(src) -> (memory, src_valid)`` and
``decode(tgt_in, memory, src_valid) -> logits (B, T, V)`` and a ``config`` with ``bos_id``,
``eos_id``, ``pad_id``, such as :class:`coursekit.models.Transformer`):

* :func:`greedy_decode`: take the most likely token at every step.
* :func:`sample_decode`: draw each token from the (temperature-scaled) distribution.
* :func:`beam_search`: keep the ``beam_size`` best partial translations; rank finished ones
  with the GNMT length penalty ``lp(L) = ((5 + L) / 6) ** alpha`` (Wu et al., 2016).

Decoder-only language models (``model(ids) -> logits (B, T, V)``):

* :func:`generate` with temperature, top-k, top-p (nucleus) and a repetition penalty
  (temperature 0 = greedy). If the model's ``forward`` accepts ``kv_caches=`` (a list the
  model fills, one :class:`~coursekit.attention.KVCache` per layer) and ``use_cache=True``,
  only the newest token is fed after the first step.

All functions return token ids *after* the ``<bos>``/prompt: ``(B, L)``, and once a sequence
has produced ``<eos>`` it is padded with ``pad_id``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

__all__ = [
    "BeamResult",
    "EncoderDecoder",
    "beam_search",
    "generate",
    "greedy_decode",
    "length_penalty",
    "sample_decode",
    "sequence_log_probs",
]


class EncoderDecoder(Protocol):
    """What the encoder-decoder decoders need from a model."""

    config: Any

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor
    ) -> torch.Tensor: ...


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


def _check_src(src: torch.Tensor) -> None:
    if src.dim() != 2 or src.dtype.is_floating_point:
        raise ValueError(
            f"src must be (B, S) integer token ids, got {src.dtype} {tuple(src.shape)}."
        )
    if src.shape[0] == 0 or src.shape[1] == 0:
        raise ValueError(f"src is empty (shape {tuple(src.shape)}): give at least one token.")


class _EvalMode:
    """Context manager: eval mode and no gradients, restoring the previous mode."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def greedy_decode(
    model: EncoderDecoder,
    src: torch.Tensor,
    *,
    max_len: int = 50,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
) -> torch.Tensor:
    """Most likely token at each step. src ``(B, S)`` -> ids ``(B, L)``, ``L <= max_len``."""
    return _step_decode(
        model, src, max_len, bos_id, eos_id, pad_id, temperature=0.0, generator=None
    )


def sample_decode(
    model: EncoderDecoder,
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
    return _step_decode(
        model, src, max_len, bos_id, eos_id, pad_id, temperature=temperature, generator=generator
    )


def _decode_last(
    model: Any, seqs: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor
) -> torch.Tensor:
    """Logits ``(B, V)`` for the next token after ``seqs`` (last position only when supported)."""
    try:
        takes_last = "last_only" in inspect.signature(model.decode).parameters
    except (TypeError, ValueError):
        takes_last = False
    if takes_last:
        return model.decode(seqs, memory, src_valid, last_only=True)[:, -1].float()
    return model.decode(seqs, memory, src_valid)[:, -1].float()


def _step_decode(
    model: Any,
    src: torch.Tensor,
    max_len: int,
    bos_id: int | None,
    eos_id: int | None,
    pad_id: int | None,
    *,
    temperature: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    _check_src(src)
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}.")
    bos, eos, pad = _ids(model, bos_id, eos_id, pad_id)
    with _EvalMode(model):
        memory, src_valid = model.encode(src)
        b = src.shape[0]
        seqs = torch.full((b, 1), bos, dtype=torch.long, device=src.device)
        done = torch.zeros(b, dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits = _decode_last(model, seqs, memory, src_valid)  # (B, V)
            if temperature == 0.0:
                token = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = (
                    torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(src.device)
                )
            token = token.masked_fill(done, pad)
            seqs = torch.cat([seqs, token[:, None]], dim=1)
            done |= token == eos
            if bool(done.all()):
                break
    return seqs[:, 1:]


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
    model: EncoderDecoder,
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
    _check_src(src)
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}.")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}.")
    bos, eos, pad = _ids(model, bos_id, eos_id, pad_id)
    b, k, device = src.shape[0], beam_size, src.device
    with _EvalMode(model):
        memory, src_valid = model.encode(src)
        memory = memory.repeat_interleave(k, dim=0)  # (B*K, S, d)
        src_valid = src_valid.repeat_interleave(k, dim=0)
        seqs = torch.full((b, k, 1), bos, dtype=torch.long, device=device)
        scores = torch.full((b, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # all beams start identical: keep one so candidates are distinct
        finished = torch.zeros(b, k, dtype=torch.bool, device=device)
        lengths = torch.zeros(b, k, dtype=torch.long, device=device)
        for _ in range(max_len):
            logits = _decode_last(model, seqs.view(b * k, -1), memory, src_valid)
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
            if bool(finished.all()):
                break
        final = scores / length_penalty(lengths, alpha).to(device)
        order = final.argsort(dim=-1, descending=True)
        beams = seqs.gather(1, order[..., None].expand_as(seqs))[..., 1:]
        final = final.gather(1, order)
        raw = scores.gather(1, order)
    return BeamResult(
        tokens=beams[:, 0], scores=final[:, 0], log_probs=raw[:, 0], beams=beams, beam_scores=final
    )


def sequence_log_probs(
    model: EncoderDecoder,
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
    bos, eos, pad = _ids(model, bos_id, eos_id, pad_id)
    with _EvalMode(model):
        memory, src_valid = model.encode(src)
        start = torch.full((tokens.shape[0], 1), bos, dtype=torch.long, device=tokens.device)
        logits = model.decode(torch.cat([start, tokens[:, :-1]], dim=1), memory, src_valid)
        log_p = torch.log_softmax(logits.float(), -1).gather(-1, tokens[..., None]).squeeze(-1)
        # positions after the first <eos> (padding) do not count
        is_eos = (tokens == eos).long()
        after_eos = (is_eos.cumsum(1) - is_eos) > 0
        return log_p.masked_fill(after_eos, 0.0).sum(1)


# --------------------------------------------------------------------------------------------
# decoder-only generation
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


def _accepts(model: nn.Module, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


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
    """Continue ``prompt_ids`` ``(B, T0)`` with a decoder-only model; returns ``(B, T0 + n)``.

    ``model(ids)`` must return logits ``(B, T, V)`` (or a tuple whose first item they are).
    ``temperature=0`` is greedy; otherwise tokens are drawn from
    softmax(filtered logits / temperature) with ``generator``. ``max_context`` crops the input
    to the last positions the model can see (default: the model's ``config.block_size`` if
    any). The KV cache is used when the model supports it (``forward(..., kv_caches=...)``).
    With ``eos_id``, sequences that produced it are padded with it and generation stops early
    once all have.
    """
    if prompt_ids.dim() != 2 or prompt_ids.dtype.is_floating_point:
        raise ValueError(f"prompt_ids must be (B, T) token ids, got {tuple(prompt_ids.shape)}.")
    if prompt_ids.shape[1] == 0:
        raise ValueError("prompt_ids is empty: give at least one token (e.g. a BOS or newline).")
    if max_new_tokens < 0 or temperature < 0:
        raise ValueError("max_new_tokens and temperature must be non-negative.")
    config = getattr(model, "config", None)
    if max_context is None:
        max_context = getattr(config, "block_size", None)
    cached = use_cache and _accepts(model, "kv_caches")
    ids = prompt_ids
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    caches: list[Any] | None = None
    with _EvalMode(model):
        for _ in range(max_new_tokens):
            fits = max_context is None or ids.shape[1] <= max_context
            if cached and caches is not None and fits:
                out = model(ids[:, -1:], kv_caches=caches)  # only the newest token
            elif cached:
                # first step, or the context overflowed: (re)build the caches from the window
                caches = []
                window = ids if fits else ids[:, -max_context:]  # type: ignore[operator]
                out = model(window, kv_caches=caches)
            else:
                out = model(ids if fits else ids[:, -max_context:])  # type: ignore[operator]
            logits = (out[0] if isinstance(out, tuple) else out)[:, -1].float()
            logits = _apply_repetition_penalty(logits, ids, repetition_penalty)
            if temperature == 0.0:
                token = logits.argmax(-1)
            else:
                logits = _filter_logits(logits / temperature, top_k, top_p)
                probs = torch.softmax(logits, dim=-1)
                token = (
                    torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(ids.device)
                )
            if eos_id is not None:
                token = token.masked_fill(done, eos_id)
                done |= token == eos_id
            ids = torch.cat([ids, token[:, None]], dim=1)
            if eos_id is not None and bool(done.all()):
                break
    return ids
