"""Checks and quiz for notebook 05 (the Transformer)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from coursekit.exercises.expect import expect_close, expect_equal, expect_shape, expect_true
from coursekit.exercises.registry import ExerciseFailure, exercise, quiz_question


@exercise(
    "05.1",
    notebook="05",
    title="Layer normalisation from its formula",
    asks="Implement layer_norm(x, weight, bias, eps) over the last dimension",
    difficulty=1,
    minutes=10,
)
def check_layer_norm(answer) -> None:
    g = torch.Generator().manual_seed(5)
    for shape in [(4, 8), (2, 3, 16), (1, 1)]:
        x = torch.randn(*shape, generator=g) * 4 + 1
        d = shape[-1]
        w, b = torch.randn(d, generator=g), torch.randn(d, generator=g)
        got = answer(x, w, b, 1e-5)
        expect_close(
            got,
            F.layer_norm(x, (d,), w, b, 1e-5),
            name=f"layer_norm of a {shape} input",
            hint="Mean and variance over the LAST dimension (keepdim=True); the variance is the "
            "biased one (divide by d, i.e. unbiased=False); eps goes inside the square root.",
        )


@exercise(
    "05.3",
    notebook="05",
    title="Label-smoothed cross-entropy",
    asks="Implement the loss against (1 - eps) * one_hot + eps / K, averaged over positions",
    difficulty=2,
    minutes=15,
)
def check_label_smoothing(answer) -> None:
    g = torch.Generator().manual_seed(6)
    for n, k, eps in [(5, 7, 0.1), (12, 3, 0.0), (3, 50, 0.3)]:
        logits = torch.randn(n, k, generator=g) * 2
        target = torch.randint(0, k, (n,), generator=g)
        got = answer(logits, target, eps)
        expect_shape(
            got, (), name="the loss", hint="Return one number: the mean over the N positions."
        )
        expect_close(
            got,
            F.cross_entropy(logits, target, label_smoothing=eps),
            name=f"loss with eps={eps}, K={k}",
            hint="Use log_softmax; the smoothed target puts eps/K on EVERY class (the right one "
            "too) plus 1 - eps on the right one.",
        )


@exercise(
    "05.2",
    notebook="05",
    title="A post-norm decoder layer",
    asks="Chain masked self-attention, cross-attention and the FFN with residuals and LayerNorms",
    difficulty=3,
    minutes=25,
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
        norms = (block.self_attn_norm, block.cross_attn_norm, block.ffn_norm)
        with torch.no_grad():  # learned gamma and beta, different in each norm (not identity)
            for norm in norms:
                norm.weight.uniform_(0.5, 2.0)
                norm.bias.normal_(0.0, 0.5)
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
    assert block.cross_attn is not None

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


@exercise(
    "05.5",
    notebook="05",
    title="One step of beam search",
    asks="From K beam scores and their (K, V) next-token log-probabilities, keep the best K",
    difficulty=3,
    minutes=20,
)
def check_beam_step(answer) -> None:
    g = torch.Generator().manual_seed(8)
    for k, v in [(3, 7), (1, 5), (4, 4)]:
        scores = -torch.rand(k, generator=g) * 3
        log_probs = torch.log_softmax(torch.randn(k, v, generator=g), dim=-1)
        out = answer(scores, log_probs, k)
        if not (isinstance(out, tuple) and len(out) == 3):
            raise ExerciseFailure(
                "beam_step should return a tuple (new_scores, beam_index, token).",
                hint="Return three tensors of shape (K,).",
            )
        new_scores, beam, token = out
        for name, t in (("new_scores", new_scores), ("beam_index", beam), ("token", token)):
            expect_shape(t, (k,), name=name)
        total = scores[:, None] + log_probs
        best, flat = total.flatten().topk(k)
        expect_close(
            new_scores,
            best,
            name="new_scores",
            hint="Add each beam's score to its row of log-probabilities, flatten the (K, V) "
            "table and take the top K, best first.",
        )
        expect_equal(
            [(int(b), int(t)) for b, t in zip(beam, token, strict=True)],
            [(int(i) // v, int(i) % v) for i in flat],
            name="(beam_index, token) pairs",
            hint="For a flat index i into a (K, V) table: beam = i // V, token = i % V.",
        )


@exercise(
    "05.4",
    notebook="05",
    title="Predict the peak learning rate",
    asks="The noam schedule's largest rate for d_model=512 and warmup=4000 (a number)",
    difficulty=1,
    minutes=5,
)
def check_peak_lr(answer) -> None:
    if not isinstance(answer, (int, float)):
        raise ExerciseFailure(
            f"answer should be a number, got {type(answer).__name__}.",
            hint="Set answer = <your number>, e.g. answer = 1e-3.",
        )
    peak = 512**-0.5 * 4000**-0.5
    expect_true(
        math.isclose(float(answer), peak, rel_tol=0.02),
        f"{answer} is not the peak rate.",
        hint="The two branches of the min() meet at step = warmup; evaluate "
        "d_model^-0.5 * warmup^-0.5 there.",
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
)

quiz_question(
    "05.q2",
    notebook="05",
    question="During training with teacher forcing, why does the decoder's self-attention still need a causal mask?",
    options=[
        "To save memory",
        "Because the whole correct target is fed at once, and position t must not see tokens t+1, ... it is asked to predict",
        "Because cross-attention would otherwise fail",
        "It does not: the mask is only needed at inference time",
    ],
    answer=1,
    explanation="All target positions are processed in parallel; without the mask position t "
    "could copy the very token it must predict, and the model would learn nothing usable at "
    "inference time, where future tokens do not exist yet.",
)

quiz_question(
    "05.q3",
    notebook="05",
    question="With label smoothing eps = 0.1 and a vocabulary of K = 10,000, what probability does the target distribution give to the correct token?",
    options=["1.0", "0.9", "0.90001", "0.1"],
    answer=2,
    explanation="(1 - eps) * 1 + eps / K = 0.9 + 0.00001: every class, the correct one included, "
    "receives eps / K.",
)

quiz_question(
    "05.q4",
    notebook="05",
    question="Beam search with beam size 1 is the same as...",
    options=[
        "sampling with temperature 1",
        "greedy decoding",
        "exhaustive search",
        "top-k sampling with k = 1 only when alpha = 0",
    ],
    answer=1,
    explanation="With one hypothesis, keeping the best extension at each step is exactly the "
    "greedy choice; the length penalty cannot change anything because there is nothing to rank "
    "against (the tests check this).",
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
    "start and post-norm gradients near the output are large; a small rate at first avoids "
    "divergence, as the notebook's deep post-norm experiment shows.",
)
