"""Checks and quiz for notebook 05 (the Transformer)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from coursekit.exercises.expect import (
    a_type,
    as_number,
    expect_callable,
    expect_close,
    expect_equal,
    expect_shape,
    expect_tensor,
    expect_true,
)
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question

# ------------------------------------------------------------------------------------------
# 05.1 layer norm


def _layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float = 1e-5,
    *,
    unbiased: bool = False,
    eps_where: str = "inside",
    dims: tuple[int, ...] | None = (-1,),
    swap_affine: bool = False,
) -> torch.Tensor:
    dims = tuple(range(x.dim())) if dims is None else dims
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased)
    if eps_where == "inside":
        normed = (x - mean) / torch.sqrt(var + eps)
    elif eps_where == "outside":
        normed = (x - mean) / (torch.sqrt(var) + eps)
    elif eps_where == "fixed":
        normed = (x - mean) / torch.sqrt(var + 1e-5)
    else:  # "none"
        normed = (x - mean) / torch.sqrt(var)
    return normed * bias + weight if swap_affine else normed * weight + bias


def _layer_norm_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


_LN_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"unbiased": True},
        "Use the biased variance, dividing by d: x.var(-1, unbiased=False, keepdim=True) or "
        "((x - mean) ** 2).mean(-1, keepdim=True). torch.var divides by d - 1 by default.",
    ),
    (
        {"eps_where": "outside"},
        "eps goes INSIDE the square root: sqrt(var + eps), not sqrt(var) + eps.",
    ),
    ({"eps_where": "fixed"}, "Use the eps argument you are given, not a fixed 1e-5."),
    (
        {"eps_where": "none"},
        "Add eps to the variance before the square root; it matters when the variance is small.",
    ),
    (
        {"dims": (0,)},
        "Normalise each position over its features, the LAST dimension (dim=-1), not over the "
        "batch.",
    ),
    (
        {"dims": None},
        "Take the mean and variance over the last dimension only (dim=-1, keepdim=True), "
        "one per position, not over the whole tensor.",
    ),
    ({"swap_affine": True}, "Scale by weight (gamma), then add bias (beta)."),
]


@exercise(
    "05.1",
    notebook="05",
    title="Layer normalisation from its formula",
    asks="Implement layer_norm(x, weight, bias, eps) over the last dimension",
    difficulty=1,
    minutes=10,
    reference=_layer_norm_reference,
    wrong_answers={
        "unbiased variance": partial(_layer_norm, unbiased=True),
        "eps outside the square root": partial(_layer_norm, eps_where="outside"),
        "no eps": partial(_layer_norm, eps_where="none"),
        "eps fixed at 1e-5": partial(_layer_norm, eps_where="fixed"),
        "normalises over the batch (dim 0)": partial(_layer_norm, dims=(0,)),
        "normalises over the whole tensor": partial(_layer_norm, dims=None),
        "weight and bias swapped": partial(_layer_norm, swap_affine=True),
    },
)
def check_layer_norm(answer: Any) -> None:
    """Equals F.layer_norm for four inputs: eps 1e-5 and 0.5, a tiny-variance input, a single feature.

    Rejects the unbiased variance, eps outside the square root, missing or fixed at 1e-5, the
    wrong dimension (the batch, or the whole tensor), and weight and bias swapped.
    """
    expect_callable(answer, name="layer_norm")
    g = torch.Generator().manual_seed(5)
    for shape, scale, eps in [
        ((4, 8), 4.0, 1e-5),
        ((3, 8), 1e-3, 1e-5),
        ((2, 3, 16), 4.0, 0.5),
        ((1, 1), 4.0, 1e-5),
    ]:
        x = torch.randn(*shape, generator=g) * scale + 1
        d = shape[-1]
        w, b = torch.randn(d, generator=g), torch.randn(d, generator=g)
        got = answer(x.clone(), w, b, eps)
        expect_close(
            got,
            F.layer_norm(x, (d,), w, b, eps),
            name=f"layer_norm of a {shape} input (std {scale:g}) with eps={eps:g}",
            hint="Mean and variance over the LAST dimension (keepdim=True); the variance is the "
            "biased one (divide by d, i.e. unbiased=False); eps goes inside the square root.",
            mistakes=[
                (partial(_layer_norm, x, w, b, eps, **kw), hint) for kw, hint in _LN_MISTAKES
            ],
        )


# ------------------------------------------------------------------------------------------
# 05.3 label smoothing


def _smoothed_ce(
    logits: torch.Tensor,
    target: torch.Tensor,
    eps: float,
    *,
    others_only: bool = False,
    swap: bool = False,
    keep_full_nll: bool = False,
    reduce: str = "mean",
) -> torch.Tensor:
    log_p = torch.log_softmax(logits, dim=-1)
    nll = -log_p.gather(-1, target[:, None]).squeeze(-1)
    k = logits.shape[-1]
    if others_only:  # eps / (K - 1) on every WRONG class
        uniform = (-log_p.sum(-1) - nll) / (k - 1)
    else:
        uniform = -log_p.mean(dim=-1)
    if swap:
        loss = eps * nll + (1 - eps) * uniform
    elif keep_full_nll:
        loss = nll + eps * uniform
    else:
        loss = (1 - eps) * nll + eps * uniform
    return loss.sum() if reduce == "sum" else loss.mean()


def _smoothed_ce_reference(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    log_p = torch.log_softmax(logits, dim=-1)
    nll = -log_p.gather(-1, target[:, None]).squeeze(-1)
    uniform = -log_p.mean(dim=-1)
    return ((1 - eps) * nll + eps * uniform).mean()


def _smoothed_ce_log_of_logits(
    logits: torch.Tensor, target: torch.Tensor, eps: float
) -> torch.Tensor:
    log_p = torch.log(logits)  # the log of the logits, not log_softmax
    nll = -log_p.gather(-1, target[:, None]).squeeze(-1)
    return ((1 - eps) * nll + eps * -log_p.mean(dim=-1)).mean()


_LS_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (
        {"others_only": True},
        "Spread eps / K over ALL K classes, the right one included (not eps / (K - 1) over the "
        "wrong ones): the target is (1 - eps) * one_hot + eps / K.",
    ),
    ({"swap": True}, "The right class keeps 1 - eps; eps is what is spread uniformly."),
    (
        {"keep_full_nll": True},
        "Scale the usual loss by (1 - eps): (1 - eps) * (-log p_y) + eps * mean_k(-log p_k).",
    ),
    ({"reduce": "sum"}, "Average over the N positions (.mean()), do not sum."),
]


@exercise(
    "05.3",
    notebook="05",
    title="Label-smoothed cross-entropy",
    asks="Implement the loss against (1 - eps) * one_hot + eps / K, averaged over positions",
    difficulty=2,
    minutes=15,
    reference=_smoothed_ce_reference,
    wrong_answers={
        "eps / (K - 1) on the wrong classes only": partial(_smoothed_ce, others_only=True),
        "eps and 1 - eps swapped": partial(_smoothed_ce, swap=True),
        "nll not scaled by 1 - eps": partial(_smoothed_ce, keep_full_nll=True),
        "sum over positions": partial(_smoothed_ce, reduce="sum"),
        "log of the logits instead of log_softmax": _smoothed_ce_log_of_logits,
    },
)
def check_label_smoothing(answer: Any) -> None:
    """A scalar equal to F.cross_entropy(..., label_smoothing=eps) for (N, K, eps) = (5, 7, 0.1), (12, 3, 0), (3, 50, 0.3).

    Rejects eps / (K - 1) on the wrong classes only, eps and 1 - eps swapped, an unscaled
    negative log-likelihood, a sum over positions, and the log of the logits.
    """
    expect_callable(answer, name="smoothed_cross_entropy")
    g = torch.Generator().manual_seed(6)
    for n, k, eps in [(5, 7, 0.1), (12, 3, 0.0), (3, 50, 0.3)]:
        logits = torch.randn(n, k, generator=g) * 2
        target = torch.randint(0, k, (n,), generator=g)
        got = answer(logits.clone(), target.clone(), eps)
        expect_shape(
            got, (), name="the loss", hint="Return one number: the mean over the N positions."
        )
        if isinstance(got, torch.Tensor) and not bool(torch.isfinite(got).all()):
            raise ExerciseFailure(
                f"The loss is {got.item()} for eps={eps}, K={k}.",
                hint="Logits are not probabilities: they can be negative, and the log of a "
                "negative number is NaN. Take log-probabilities with torch.log_softmax(logits, "
                "dim=-1).",
            )
        expect_close(
            got,
            F.cross_entropy(logits, target, label_smoothing=eps),
            name=f"loss with eps={eps}, K={k}",
            hint="Use log_softmax; the smoothed target puts eps/K on EVERY class (the right one "
            "too) plus 1 - eps on the right one.",
            mistakes=[
                (partial(_smoothed_ce, logits, target, eps, **kw), hint)
                for kw, hint in _LS_MISTAKES
            ],
        )


# ------------------------------------------------------------------------------------------
# 05.2 the decoder layer. Its check (below) belongs to the layer-API rewrite; only its reference
# and wrong answers are registered here, in the layer's keyword-argument API.

_Part = Callable[..., torch.Tensor]


def _decoder_reference(
    y: torch.Tensor,
    memory: torch.Tensor,
    src_valid: torch.Tensor,
    *,
    self_attn: _Part,
    cross_attn: _Part,
    ffn: _Part,
    norm1: _Part,
    norm2: _Part,
    norm3: _Part,
) -> torch.Tensor:
    y = norm1(y + self_attn(y, is_causal=True))
    y = norm2(y + cross_attn(y, memory, key_padding_mask=src_valid))
    return norm3(y + ffn(y))


def _decoder_not_causal(
    y: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor, **parts: _Part
) -> torch.Tensor:
    y = parts["norm1"](y + parts["self_attn"](y))
    y = parts["norm2"](y + parts["cross_attn"](y, memory, key_padding_mask=src_valid))
    return parts["norm3"](y + parts["ffn"](y))


def _decoder_pre_norm(
    y: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor, **parts: _Part
) -> torch.Tensor:
    y = y + parts["self_attn"](parts["norm1"](y), is_causal=True)
    y = y + parts["cross_attn"](parts["norm2"](y), memory, key_padding_mask=src_valid)
    return y + parts["ffn"](parts["norm3"](y))


def _decoder_no_padding_mask(
    y: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor, **parts: _Part
) -> torch.Tensor:
    y = parts["norm1"](y + parts["self_attn"](y, is_causal=True))
    y = parts["norm2"](y + parts["cross_attn"](y, memory))
    return parts["norm3"](y + parts["ffn"](y))


def _decoder_ffn_without_residual(
    y: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor, **parts: _Part
) -> torch.Tensor:
    y = parts["norm1"](y + parts["self_attn"](y, is_causal=True))
    y = parts["norm2"](y + parts["cross_attn"](y, memory, key_padding_mask=src_valid))
    return parts["norm3"](parts["ffn"](y))


def _decoder_self_attention_twice(
    y: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor, **parts: _Part
) -> torch.Tensor:
    y = parts["norm1"](y + parts["self_attn"](y, is_causal=True))
    y = parts["norm2"](y + parts["cross_attn"](y, is_causal=True))  # memory never read
    return parts["norm3"](y + parts["ffn"](y))


@exercise(
    "05.2",
    notebook="05",
    title="A post-norm decoder layer",
    asks="Chain masked self-attention, cross-attention and the FFN with residuals and LayerNorms",
    difficulty=2,
    minutes=25,
    reference=_decoder_reference,
    wrong_answers={
        "no causal mask": _decoder_not_causal,
        "pre-norm instead of post-norm": _decoder_pre_norm,
        "cross-attention ignores padding": _decoder_no_padding_mask,
        "no residual around the FFN": _decoder_ffn_without_residual,
        "cross-attention over the target instead of the memory": _decoder_self_attention_twice,
    },
)
def check_decoder_layer(answer) -> None:
    import itertools

    from coursekit.layers import BlockConfig, TransformerBlock

    d = 16
    with torch.random.fork_rng(devices=[]):  # leave the learner's random state alone
        torch.manual_seed(7)
        # the package's block as the 2017 decoder layer: post-norm, ReLU, cross-attention
        config = BlockConfig(
            d_model=d,
            n_heads=4,
            d_ff=32,
            activation="relu",
            norm_first=False,
            cross_attention=True,
        )
        block = TransformerBlock(config).eval()
        assert block.cross_attn is not None and block.cross_attn_norm is not None
        norms = (block.self_attn_norm, block.cross_attn_norm, block.ffn_norm)
        with torch.no_grad():  # learned gamma and beta, different in each norm (not identity)
            for norm in norms:
                for name, param in norm.named_parameters():
                    if name == "weight":
                        param.uniform_(0.5, 2.0)
                    else:
                        param.normal_(0.0, 0.5)
        y = torch.randn(2, 5, d)
        memory = torch.randn(2, 6, d)
    src_valid = torch.ones(2, 6, dtype=torch.bool)
    src_valid[1, -2:] = False
    padding = src_valid[:, None, None, :]
    parts = dict(
        self_attn=block.self_attn,
        cross_attn=block.cross_attn,
        ffn=block.ffn,
        norm1=norms[0],
        norm2=norms[1],
        norm3=norms[2],
    )

    def variant(order=norms, cross_mask=padding, residual=True, pre=False):
        """The layer as a known wrong answer computes it."""
        keep = 1.0 if residual else 0.0
        sublayers = (
            lambda h: block.self_attn(h, is_causal=True),
            lambda h: block.cross_attn(h, memory, mask=cross_mask),
            block.ffn,
        )
        h = y
        for norm, f in zip(order, sublayers, strict=True):
            h = h + f(norm(h)) if pre else norm(keep * h + f(h))
        return h

    def plain_norm(h):
        return F.layer_norm(h, (d,))

    with torch.no_grad():
        got = answer(y, memory, src_valid, **parts)
        expected = block(y, is_causal=True, memory=memory, memory_mask=padding)
        expect_shape(got, (2, 5, d), name="the layer's output")
        changed = y.clone()
        changed[:, 3] += 1.0
        later = answer(changed, memory, src_valid, **parts)
        swapped = (
            "The norms are in the wrong places: each sub-layer has its own LayerNorm "
            "with its own learned gamma and beta: norm1 after the self-attention, norm2 after "
            "the cross-attention, norm3 after the FFN."
        )
        mistakes = [
            (
                variant(pre=True),
                "This is the pre-norm order, y + sublayer(norm(y)). The 2017 "
                "decoder layer is post-norm: add each sub-layer's output to its input, then "
                "normalise the sum: y = norm1(y + self_attn(y, is_causal=True)), and so on.",
            ),
            (
                variant(order=(plain_norm,) * 3),
                "You normalised without the learned scale and "
                "shift (gamma and beta): use the LayerNorm modules you are given (norm1, norm2, "
                "norm3), not a parameter-free layer_norm.",
            ),
            (
                variant(cross_mask=None),
                "The cross-attention also reads the source's padding "
                "tokens: pass key_padding_mask=src_valid to cross_attn.",
            ),
            (
                variant(cross_mask=~padding),
                "The padding mask is inverted: here (as everywhere "
                "in coursekit) True marks a real token that may be attended to; "
                "torch.nn.MultiheadAttention uses the opposite convention.",
            ),
            (
                variant(residual=False),
                "Each sub-layer's input must be added back before the "
                "norm (the residual connection): norm(y + sublayer(y)), not norm(sublayer(y)).",
            ),
            (
                _decoder_ffn_without_residual(y, memory, src_valid, **parts),
                "The FFN sub-layer lost its residual connection: norm3(y + ffn(y)), not "
                "norm3(ffn(y)).",
            ),
            (
                _decoder_self_attention_twice(y, memory, src_valid, **parts),
                "The second sub-layer never reads the encoder: cross-attention takes its keys "
                "and values from the memory, cross_attn(y, memory, key_padding_mask=src_valid), "
                "not from the target.",
            ),
        ] + [
            (variant(order=order), swapped)
            for order in itertools.permutations(norms)
            if order != norms
        ]
    expect_true(
        torch.allclose(later[:, :3], got[:, :3], atol=1e-5),
        "changing target position 3 changed the outputs at positions 0-2: the self-attention "
        "can see the future.",
        hint="Pass is_causal=True (or a causal_mask) to the masked self-attention.",
    )
    expect_close(
        got,
        expected,
        name="the decoder layer's output",
        hint="Post-norm: y = norm1(y + self_attn(y, is_causal=True)); then y = norm2(y + "
        "cross_attn(y, memory, key_padding_mask=src_valid)); then y = norm3(y + ffn(y)).",
        mistakes=mistakes,
    )


# ------------------------------------------------------------------------------------------
# 05.5 one step of beam search

_BeamOut = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _beam_reference(scores: torch.Tensor, log_probs: torch.Tensor, k: int) -> _BeamOut:
    v = log_probs.shape[-1]
    total = (scores[:, None] + log_probs).flatten()
    new_scores, flat = total.topk(k)
    return new_scores, flat // v, flat % v


def _beam_ignores_scores(scores: torch.Tensor, log_probs: torch.Tensor, k: int) -> _BeamOut:
    v = log_probs.shape[-1]
    best, flat = log_probs.flatten().topk(k)
    return best + scores[flat // v], flat // v, flat % v


def _beam_per_beam(scores: torch.Tensor, log_probs: torch.Tensor, k: int) -> _BeamOut:
    best, token = (scores[:, None] + log_probs).max(dim=-1)  # one candidate per beam
    order = best.argsort(descending=True)[:k]
    return best[order], order, token[order]


def _beam_swapped_index(scores: torch.Tensor, log_probs: torch.Tensor, k: int) -> _BeamOut:
    v = log_probs.shape[-1]
    new_scores, flat = (scores[:, None] + log_probs).flatten().topk(k)
    return new_scores, flat % v, flat // v


def _beam_lowest(scores: torch.Tensor, log_probs: torch.Tensor, k: int) -> _BeamOut:
    v = log_probs.shape[-1]
    new_scores, flat = (scores[:, None] + log_probs).flatten().topk(k, largest=False)
    return new_scores, flat // v, flat % v


def _beam_divides_by_k(scores: torch.Tensor, log_probs: torch.Tensor, k: int) -> _BeamOut:
    new_scores, flat = (scores[:, None] + log_probs).flatten().topk(k)
    return new_scores, flat // k, flat % k


@exercise(
    "05.5",
    notebook="05",
    title="One step of beam search",
    asks="From K beam scores and their (K, V) next-token log-probabilities, keep the best K",
    difficulty=3,
    minutes=20,
    reference=_beam_reference,
    wrong_answers={
        "ignores the beams' scores": _beam_ignores_scores,
        "best token of each beam only": _beam_per_beam,
        "beam and token swapped (i % V, i // V)": _beam_swapped_index,
        "keeps the lowest scores": _beam_lowest,
        "divides the flat index by K instead of V": _beam_divides_by_k,
    },
)
def check_beam_step(answer: Any) -> None:
    """The K best of the K x V candidates (beam score + token log-probability), best first, with beam = i // V and token = i % V, for (K, V) = (3, 7), (1, 5), (4, 4).

    Rejects ignoring the beams' scores, one candidate per beam, beam and token swapped, the
    lowest scores, and a flat index divided by K.
    """
    expect_callable(answer, name="beam_step")
    g = torch.Generator().manual_seed(8)
    for k, v in [(3, 7), (1, 5), (4, 4)]:
        scores = -torch.rand(k, generator=g) * 3
        log_probs = torch.log_softmax(torch.randn(k, v, generator=g), dim=-1)
        out = answer(scores.clone(), log_probs.clone(), k)
        if not (isinstance(out, tuple) and len(out) == 3):
            raise ExerciseFailure(
                "beam_step should return a tuple (new_scores, beam_index, token).",
                hint="Return three tensors of shape (K,).",
            )
        new_scores, beam, token = out
        for name, t in (("new_scores", new_scores), ("beam_index", beam), ("token", token)):
            expect_shape(
                t, (k,), name=name, hint="Each of the three has one entry per kept beam: (K,)."
            )
        total = scores[:, None] + log_probs
        best, flat = total.flatten().topk(k)
        expect_close(
            new_scores,
            best,
            name=f"new_scores (K={k}, V={v})",
            hint="Add each beam's score to its row of log-probabilities, flatten the (K, V) "
            "table and take the top K, best first.",
            mistakes=[
                (
                    lambda: _beam_ignores_scores(scores, log_probs, k)[0],  # noqa: B023
                    "Add each beam's running score to its row first (scores[:, None] + "
                    "log_probs): a token is ranked by the score of the whole hypothesis.",
                ),
                (
                    lambda: _beam_per_beam(scores, log_probs, k)[0],  # noqa: B023
                    "Rank all K x V candidates together (flatten the table): a strong beam may "
                    "supply several of the best K, a weak one none.",
                ),
                (
                    lambda: _beam_lowest(scores, log_probs, k)[0],  # noqa: B023
                    "Keep the LARGEST scores: log-probabilities are <= 0 and higher is better.",
                ),
            ],
        )
        got_pairs = [(int(b), int(t)) for b, t in zip(beam, token, strict=True)]
        want_pairs = [(int(i) // v, int(i) % v) for i in flat]
        if got_pairs != want_pairs and got_pairs == [(int(i) % v, int(i) // v) for i in flat]:
            raise ExerciseFailure(
                f"(beam_index, token) for K={k}, V={v} are {got_pairs}; expected {want_pairs}.",
                hint="Beam and token are swapped: the beam is the ROW of the (K, V) table, "
                "i // V, and the token its column, i % V.",
            )
        if got_pairs != want_pairs and got_pairs == [(int(i) // k, int(i) % k) for i in flat]:
            raise ExerciseFailure(
                f"(beam_index, token) for K={k}, V={v} are {got_pairs}; expected {want_pairs}.",
                hint="You divided the flat index by K: each row of the flattened (K, V) table "
                "holds V entries, so beam = i // V and token = i % V.",
            )
        expect_equal(
            got_pairs,
            want_pairs,
            name="(beam_index, token) pairs",
            hint="For a flat index i into a (K, V) table: beam = i // V, token = i % V.",
        )


# ------------------------------------------------------------------------------------------
# 05.4 the greedy decoding loop (write the core loop)

_Greedy = Callable[..., torch.Tensor]


class _CopyToy:
    """A stand-in encoder-decoder whose greedy output is known in advance.

    Decoder position t predicts source token t; at the source's length it predicts <eos>; after
    that it rambles (token 3), like a real model that is not stopped. ``encode_calls`` counts the
    encoder passes. Ids: pad 0, bos 1, eos 2; source tokens are 4..11.
    """

    vocab = 12

    def __init__(self) -> None:
        self.encode_calls = 0

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src ``(B, S)`` -> memory ``(B, S, V)`` (one-hot), src_valid ``(B, S)``."""
        self.encode_calls += 1
        return F.one_hot(src, self.vocab).float(), src != 0

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, src_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tgt_in ``(B, T)`` -> next-token logits ``(B, T, V)``."""
        b, t = tgt_in.shape
        s = memory.shape[1]
        lengths = src_valid.sum(1) if src_valid is not None else torch.full((b,), s)
        source = memory.argmax(-1)  # (B, S)
        nxt = torch.full((b, t), 3, dtype=torch.long)
        for pos in range(t):
            copy = source[:, pos] if pos < s else torch.zeros(b, dtype=torch.long)
            nxt[:, pos] = torch.where(pos < lengths, copy, nxt[:, pos])
            nxt[:, pos] = torch.where(lengths == pos, torch.full_like(copy, 2), nxt[:, pos])
        return F.one_hot(nxt, self.vocab).float() * 5.0


def _greedy(
    model: Any,
    src: torch.Tensor,
    max_len: int,
    *,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    mistake: str = "",
) -> torch.Tensor:
    """The greedy loop, with one of the usual mistakes."""
    memory, src_valid = model.encode(src)
    out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len - 1 if mistake == "one_short" else max_len):
        if mistake == "re_encode":
            memory, src_valid = model.encode(src)
        logits = model.decode(out, memory, src_valid)
        nxt = (logits[:, 0] if mistake == "first_position" else logits[:, -1]).argmax(-1)
        if mistake != "no_padding":
            nxt = nxt.masked_fill(done, pad_id)
        done |= nxt == eos_id
        out = torch.cat([out, nxt[:, None]], dim=1)
        if mistake == "first_row_done" and bool(done.any()):
            break
        if mistake != "never_stop" and bool(done.all()):
            break
    return out if mistake == "keeps_bos" else out[:, 1:]


def _greedy_reference(
    model: Any, src: torch.Tensor, max_len: int, *, bos_id: int, eos_id: int, pad_id: int
) -> torch.Tensor:
    memory, src_valid = model.encode(src)  # encode once
    out = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = model.decode(out, memory, src_valid)[:, -1].argmax(-1)  # (B,)
        nxt = nxt.masked_fill(done, pad_id)  # a finished row only pads
        done |= nxt == eos_id
        out = torch.cat([out, nxt[:, None]], dim=1)
        if bool(done.all()):
            break
    return out[:, 1:]


_GREEDY_MISTAKES: list[tuple[str, str]] = [
    (
        "keeps_bos",
        "Your output starts with <bos>: it is the decoder's first INPUT, not a generated token. "
        "Return the tokens after it (out[:, 1:]).",
    ),
    (
        "first_position",
        "You read the logits of the FIRST position at every step: the next token is predicted "
        "at the LAST position of the decoder input, logits[:, -1].",
    ),
    (
        "no_padding",
        "A row that has emitted <eos> keeps writing words: once a row is done, every later "
        "token of that row must be pad_id (nxt.masked_fill(done, pad_id)), while the other rows "
        "go on.",
    ),
    (
        "first_row_done",
        "You stop as soon as ONE row has emitted <eos>: the rows finish at different steps, so "
        "keep a boolean `done` per row and stop only when all of them are done (done.all()).",
    ),
    (
        "never_stop",
        "Your loop always runs max_len steps: stop as soon as every row has emitted <eos> "
        "(done.all()); the output is then only as long as the longest translation.",
    ),
    (
        "one_short",
        "One token short: the loop may write up to max_len tokens (for _ in range(max_len)), "
        "not max_len - 1.",
    ),
]

#: (source rows, max_len): rows of different lengths; a limit that cuts the long rows; one row.
_GREEDY_CASES: list[tuple[list[list[int]], int]] = [
    ([[5, 6, 7, 0, 0], [8, 9, 10, 11, 4], [6, 0, 0, 0, 0]], 10),
    ([[5, 6, 7, 0, 0], [8, 9, 10, 11, 4], [6, 0, 0, 0, 0]], 4),
    ([[9, 4, 7, 5]], 8),
]


@exercise(
    "05.4",
    notebook="05",
    title="Write the core loop: greedy decoding",
    asks="greedy_translate(model, src, max_len, *, bos_id, eos_id, pad_id): encode once, then "
    "append the argmax token until every row has emitted <eos> (later tokens of a finished row "
    "are pad_id) or max_len tokens are written; return the tokens after <bos>",
    difficulty=3,
    minutes=25,
    reference=_greedy_reference,
    wrong_answers={
        "returns <bos> too": partial(_greedy, mistake="keeps_bos"),
        "reads the first position's logits": partial(_greedy, mistake="first_position"),
        "rows not stopped independently (no padding after <eos>)": partial(
            _greedy, mistake="no_padding"
        ),
        "stops when the first row is done": partial(_greedy, mistake="first_row_done"),
        "never stops before max_len": partial(_greedy, mistake="never_stop"),
        "re-encodes the source at every step": partial(_greedy, mistake="re_encode"),
        "max_len - 1 tokens at most": partial(_greedy, mistake="one_short"),
    },
)
def check_greedy_translate(answer: Any) -> None:
    """On a stand-in model whose translations are known (it copies the source, then emits
    <eos>, then rambles): rows of 3, 5 and 1 tokens with max_len 10 and 4, and a single row.
    The output must equal the reference loop's exactly, with one encoder pass per call.

    Rejects <bos> in the output, the first position's logits, rows that go on after <eos>,
    stopping when one row is done, never stopping early, re-encoding at every step, and one
    step too few.
    """
    expect_callable(answer, name="greedy_translate")
    ids = dict(bos_id=1, eos_id=2, pad_id=0)
    for rows, max_len in _GREEDY_CASES:
        src = torch.tensor(rows)
        toy = _CopyToy()
        got = answer(toy, src.clone(), max_len, **ids)
        call = f"greedy_translate(model, src, max_len={max_len}) on {len(rows)} row(s)"
        if toy.encode_calls != 1:
            raise ExerciseFailure(
                f"{call} ran the encoder {toy.encode_calls} times.",
                hint="Encode the source ONCE, before the loop: the memory does not change while "
                "the target grows; only the decoder runs at every step.",
            )
        expected = _greedy_reference(_CopyToy(), src, max_len, **ids)
        got = expect_tensor(got, name=call)
        if tuple(got.shape) == tuple(expected.shape) and torch.equal(got.long(), expected):
            continue
        for mistake, hint in _GREEDY_MISTAKES:
            wrong = _greedy(_CopyToy(), src, max_len, **ids, mistake=mistake)
            if tuple(got.shape) == tuple(wrong.shape) and torch.equal(got.long(), wrong):
                raise ExerciseFailure(f"{call} returned {got.tolist()}.", hint=hint)
        raise ExerciseFailure(
            f"{call} returned {got.tolist()}; expected {expected.tolist()}.",
            hint="memory, src_valid = model.encode(src); start from a column of <bos>; at each "
            "step take model.decode(out, memory, src_valid)[:, -1].argmax(-1), replace it by "
            "pad_id in rows already done, mark rows that emit <eos> as done, append, and stop "
            "when all rows are done.",
        )


# ------------------------------------------------------------------------------------------
# 05.6 run an ablation: where the LayerNorm goes, and the gradients at initialisation

_Ablation = tuple[dict[str, list[float]], str]


def _norm_ablation(
    make_model: Callable[[bool], Any], batch: tuple[torch.Tensor, torch.Tensor], mistake: str = ""
) -> _Ablation:
    """Gradient norm of each decoder layer (bottom first) after one backward pass at
    initialisation, for post-norm and pre-norm, with one of the usual mistakes."""
    norms: dict[str, list[float]] = {}
    for name, norm_first in (("post-norm", False), ("pre-norm", True)):
        model = make_model(norm_first)
        model.loss(*batch).backward()
        per_layer = []
        for layer in model.decoder.layers:
            params = list(layer.parameters())
            if mistake == "weights":
                per_layer.append(float(torch.sqrt(sum(p.detach().pow(2).sum() for p in params))))
            elif mistake == "sum_of_norms":
                per_layer.append(float(sum(p.grad.norm() for p in params)))
            else:
                per_layer.append(float(torch.sqrt(sum(p.grad.pow(2).sum() for p in params))))
        norms[name] = per_layer[::-1] if mistake == "top_first" else per_layer
    uneven = max(norms, key=lambda k: _spread(norms[k]))
    if mistake == "swapped_conclusion":
        uneven = "pre-norm" if uneven == "post-norm" else "post-norm"
    return norms, uneven


def _norm_ablation_reference(
    make_model: Callable[[bool], Any], batch: tuple[torch.Tensor, torch.Tensor]
) -> _Ablation:
    norms = {}
    for name, norm_first in (("post-norm", False), ("pre-norm", True)):
        model = make_model(norm_first)  # the same initial weights, only the placement differs
        model.loss(*batch).backward()
        norms[name] = [
            float(torch.sqrt(sum(p.grad.pow(2).sum() for p in layer.parameters())))
            for layer in model.decoder.layers  # bottom (next to the embeddings) first
        ]
    more_uneven = max(norms, key=lambda k: max(norms[k]) / min(norms[k]))
    return norms, more_uneven


def _spread(norms: list[float]) -> float:
    return max(norms) / min(norms)


_ABLATION_HINTS: dict[str, str] = {
    "weights": "These are the norms of the WEIGHTS, not of their gradients: after "
    "loss.backward() use p.grad of each parameter.",
    "sum_of_norms": "One norm per layer over ALL its parameters together: "
    "sqrt(sum of p.grad.pow(2).sum() over the layer's parameters), not the sum of the separate "
    "norms.",
    "top_first": "The list runs from the top layer down: list the decoder layers bottom first "
    "(model.decoder.layers[0], next to the embeddings, first).",
}


def _small_model(norm_first: bool) -> torch.nn.Module:
    """A 6 + 6 layer Transformer of width 16 (seed 0), for the check."""
    from coursekit.models import Transformer, TransformerConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = TransformerConfig(
            12,
            12,
            d_model=16,
            n_heads=2,
            n_encoder_layers=6,
            n_decoder_layers=6,
            d_ff=32,
            dropout=0.0,
            norm_first=norm_first,
        )
        return Transformer(config)


@functools.cache
def _small_reference() -> _Ablation:
    """The reference result on the check's model (computed once)."""
    with torch.random.fork_rng(devices=[]):
        return _norm_ablation_reference(_small_model, _small_batch())


def _small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    from coursekit.data.synthetic import BOS_ID, EOS_ID, reverse_task

    task = reverse_task(16, 6, vocab_size=12, seed=0)
    n = task.tgt.shape[0]
    bos, eos = torch.full((n, 1), BOS_ID), torch.full((n, 1), EOS_ID)
    return task.src, torch.cat([bos, task.tgt, eos], dim=1)


@exercise(
    "05.6",
    notebook="05",
    title="Run an ablation: where the LayerNorm goes",
    asks="norm_ablation(make_model, batch) -> (grad_norms, more_uneven): for norm_first False "
    "and True, one backward pass of make_model(norm_first).loss(*batch); grad_norms = "
    "{'post-norm': [...], 'pre-norm': [...]}, the gradient norm of each decoder layer, bottom "
    "first; more_uneven = the placement whose largest / smallest norm is bigger",
    difficulty=3,
    minutes=20,
    reference=_norm_ablation_reference,
    wrong_answers={
        "weight norms instead of gradient norms": partial(_norm_ablation, mistake="weights"),
        "sum of the parameters' norms": partial(_norm_ablation, mistake="sum_of_norms"),
        "layers listed top first": partial(_norm_ablation, mistake="top_first"),
        "conclusion swapped": partial(_norm_ablation, mistake="swapped_conclusion"),
    },
)
def check_norm_ablation(answer: Any) -> None:
    """On a 6 + 6 layer model of width 16 and 16 reverse-task pairs: the per-layer gradient
    norms of both placements within 1e-4 (relative) of the reference, and the placement with
    the more uneven gradients (largest / smallest).

    Rejects weight norms, a sum of per-parameter norms, the layers listed top first, and the
    conclusion swapped.
    """
    expect_callable(answer, name="norm_ablation")
    batch = _small_batch()
    out = answer(_small_model, batch)
    if not isinstance(out, tuple) or len(out) != 2:
        raise ExerciseFailure(
            f"norm_ablation should return a pair (grad_norms, more_uneven); it returned "
            f"{a_type(out)}.",
            hint="return grad_norms, more_uneven",
        )
    norms, uneven = out
    want, want_uneven = _small_reference()
    if not isinstance(norms, dict) or sorted(norms) != sorted(want):
        raise ExerciseFailure(
            "grad_norms should be a dict with the keys 'post-norm' and 'pre-norm'.",
            hint="grad_norms = {'post-norm': [...], 'pre-norm': [...]}, one float per decoder "
            "layer.",
        )
    for name, values in norms.items():
        n_layers = len(want[name])
        if not isinstance(values, (list, tuple)) or len(values) != n_layers:
            raise ExerciseFailure(
                f"grad_norms[{name!r}] should be a list of {n_layers} numbers, one per decoder "
                "layer of this model.",
                hint="[gradient norm of layer for layer in model.decoder.layers]",
            )
        got = [as_number(v, name=f"grad_norms[{name!r}]") for v in values]
        if all(math.isclose(g, w, rel_tol=1e-4) for g, w in zip(got, want[name], strict=True)):
            continue
        hint = (
            "Build a fresh model = make_model(norm_first) for each placement, call "
            "model.loss(*batch).backward() once, and take the gradient norm of each decoder layer."
        )
        for mistake, told in _ABLATION_HINTS.items():
            wrong = _norm_ablation(_small_model, batch, mistake)[0][name]
            if all(math.isclose(g, w, rel_tol=1e-4) for g, w in zip(got, wrong, strict=True)):
                hint = told
        raise ExerciseFailure(
            f"grad_norms[{name!r}] is {[round(g, 3) for g in got]}; the run gives "
            f"{[round(w, 3) for w in want[name]]}.",
            hint=hint,
        )
    if uneven != want_uneven:
        ratios = ", ".join(f"{k} {_spread(v):.1f}x" for k, v in want.items())
        raise ExerciseFailure(
            f"more_uneven is {uneven!r}.",
            hint=f"Compare the largest / smallest gradient norm of each placement ({ratios}): "
            "your conclusion is swapped; name the placement with the bigger ratio.",
        )


quiz_question(
    "05.q1",
    notebook="05",
    question="Which formula is the post-norm residual block of the 2017 Transformer?",
    options=[
        "x + LayerNorm(Sublayer(x))",
        "LayerNorm(x + Sublayer(x))",
        "x + Sublayer(LayerNorm(x))",
        "LayerNorm(x) + Sublayer(x)",
    ],
    answer=1,
    explanation="Post-norm adds the sub-layer's output to x and normalises the sum. Pre-norm "
    "(third option) normalises the sub-layer's input and leaves the residual path untouched. The "
    "first option, which one of the seed texts prints, normalises only the sub-layer's output.",
    feedback=[
        "This normalises only the sub-layer's output and leaves the sum unnormalised; post-norm "
        "puts LayerNorm after the addition.",
        "",
        "This is pre-norm, the arrangement of most later models: LayerNorm comes before the "
        "sub-layer, and the sum is not normalised.",
        "This normalises the skip path itself, so x no longer passes through unchanged, and the "
        "sum is never normalised.",
    ],
)

quiz_question(
    "05.q2",
    notebook="05",
    question="During training with teacher forcing, why does the decoder's self-attention still need a causal mask?",
    options=[
        "To save memory",
        "Because cross-attention would otherwise fail",
        "It does not: the mask is only needed at inference time",
        "Because the whole correct target is fed at once, and position t must not see tokens t+1, ... it is asked to predict",
    ],
    answer=3,
    explanation="All target positions are processed in parallel; without the mask position t "
    "could copy the very token it must predict, and the model would learn nothing usable at "
    "inference time, where future tokens do not exist yet.",
    feedback=[
        "The mask saves nothing: the full T x T matrix of scores is still computed, and the "
        "masked ones are then set to -inf.",
        "Cross-attention reads the encoder output, where the whole source may be seen; the "
        "causal mask belongs to the decoder's self-attention.",
        "At inference the future tokens do not exist yet; it is in training, with the whole "
        "target fed at once, that the decoder could look ahead.",
        "",
    ],
)

quiz_question(
    "05.q3",
    notebook="05",
    question="With label smoothing eps = 0.1 and a vocabulary of K = 10,000, what probability does the target distribution give to the correct token?",
    options=["1.0", "0.9", "0.90001", "0.1"],
    answer=2,
    explanation="(1 - eps) * 1 + eps / K = 0.9 + 0.00001: every class, the correct one included, "
    "receives eps / K.",
    feedback=[
        "1.0 is the one-hot target without smoothing; label smoothing moves eps of the "
        "probability away from it.",
        "0.9 = 1 - eps forgets that the eps spread over all K classes gives the correct class "
        "its share too.",
        "",
        "0.1 is eps, the probability spread over all the classes together, not what the correct "
        "class keeps.",
    ],
)

quiz_question(
    "05.q4",
    notebook="05",
    question="Beam search with beam size 1 is the same as...",
    options=[
        "greedy decoding",
        "sampling with temperature 1",
        "exhaustive search",
        "nucleus (top-p) sampling with p = 0.9",
    ],
    answer=0,
    explanation="With one hypothesis, keeping the best extension at each step is exactly the "
    "greedy choice; the length penalty cannot change anything because there is nothing to rank "
    "against (the tests check this).",
    feedback=[
        "",
        "Sampling draws each token at random; beam search is deterministic and keeps the "
        "highest-scoring extensions.",
        "Exhaustive search scores every possible sequence; a beam of 1 keeps one hypothesis per "
        "step and can miss the most probable sequence.",
        "Nucleus sampling still draws at random, from the most probable tokens that together "
        "hold 90% of the probability; a beam of 1 always takes the single best token.",
    ],
)

quiz_question(
    "05.q5",
    notebook="05",
    question="Why does the warm-up phase of the Transformer schedule help, especially for post-norm models?",
    options=[
        "It makes each step cheaper",
        "Early gradients of a freshly initialised model are large and poorly scaled; small first steps avoid a bad early jump",
        "It is needed for label smoothing",
        "It reduces the number of parameters",
    ],
    answer=1,
    explanation="The optimiser's statistics (Adam's second moments) are still unreliable at the "
    "start, and in a post-norm stack the layers near the output get the largest gradients "
    "(section 16 measures them). In the notebook's experiment the deep post-norm model trained "
    "at the full rate from the first step stalls near the loss of a model that knows only the "
    "output format, while the same model with a warm-up learns the task.",
    feedback=[
        "A step costs the same at any learning rate; warm-up changes the size of the updates, "
        "not their cost.",
        "",
        "Label smoothing changes the targets and works with or without warm-up; the two are "
        "independent.",
        "The schedule changes only the learning rate; the model has the same parameters "
        "throughout.",
    ],
)
