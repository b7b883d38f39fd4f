"""coursekit.rnn.seq2seq: the GRU encoder-decoder with and without additive attention."""

from __future__ import annotations

import pytest
import torch

from coursekit.generate import beam_search, greedy_decode
from coursekit.rnn.seq2seq import (
    AdditiveAttention,
    Seq2Seq,
    Seq2SeqConfig,
    WordVocab,
    detokenize,
    tokenize,
)


def test_tokenize_roundtrip():
    assert tokenize("Je l'ai vu.") == ["je", "l", "'", "ai", "vu", "."]
    assert detokenize(tokenize("I don't know, Tom!")) == "i don't know, tom!"
    v = WordVocab.build(["a b b", "b c"], min_freq=2)
    assert v.itos[:5] == ["<pad>", "<bos>", "<eos>", "<unk>", "b"]
    ids = v.encode("b a", add_bos=True)
    assert ids == [1, 4, 3, 2]
    assert v.decode(ids + [4]) == "b <unk>"


def test_additive_attention_matches_loop():
    torch.manual_seed(0)
    att = AdditiveAttention(5, 6, 7)
    q, k = torch.randn(2, 3, 5), torch.randn(2, 4, 6)
    valid = torch.tensor([[True] * 4, [True, True, False, False]])
    ctx, w = att(q, k, valid)
    for b in range(2):
        for t in range(3):
            e = torch.stack(
                [
                    att.v(torch.tanh(att.w_query(q[b, t]) + att.w_key(k[b, j]))).squeeze()
                    for j in range(4)
                ]
            )
            e = e.masked_fill(~valid[b], float("-inf"))
            a = torch.softmax(e, 0)
            torch.testing.assert_close(w[b, t], a)
            torch.testing.assert_close(ctx[b, t], a @ k[b])
    assert torch.all(w[1, :, 2:] == 0)
    with pytest.raises(ValueError):
        att(q[0], k)


@pytest.mark.parametrize("attention", [False, True])
def test_shapes_and_padding_invariance(attention):
    torch.manual_seed(0)
    m = Seq2Seq(
        Seq2SeqConfig(src_vocab=20, tgt_vocab=15, d_emb=8, d_hidden=12, attention=attention)
    ).eval()
    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    tgt = torch.tensor([[1, 4, 5, 2], [1, 6, 2, 0]])
    logits, w = m(src, tgt)
    assert logits.shape == (2, 4, 15)
    if attention:
        assert w.shape == (2, 4, 4)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4))
        assert torch.all(w[1, :, 3] == 0)
    else:
        assert w is None
    # extra padding on the source changes nothing for the second sentence
    src_padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], 1)
    logits2, _ = m(src_padded, tgt)
    torch.testing.assert_close(logits2, logits, atol=1e-5, rtol=1e-5)
    # a batch of one gives the same as inside the batch
    torch.testing.assert_close(m(src[1:, :3], tgt[1:])[0], logits[1:], atol=1e-5, rtol=1e-5)
    ids = greedy_decode(m, src, max_len=5)
    assert ids.shape[0] == 2 and ids.shape[1] <= 5
    with pytest.raises(ValueError):
        m.encode(src[0])


def test_greedy_decode_equals_teacher_forced_argmax():
    torch.manual_seed(0)
    m = Seq2Seq(Seq2SeqConfig(src_vocab=20, tgt_vocab=15, d_emb=8, d_hidden=12)).eval()
    src = torch.tensor([[5, 6, 7, 2]])
    ids = greedy_decode(m, src, max_len=6)
    tgt_in = torch.cat([torch.tensor([[1]]), ids[:, :-1]], 1)
    logits, _ = m(src, tgt_in)
    assert torch.equal(logits.argmax(-1)[:, : ids.shape[1]], ids)
    # the recurrent cache gives the same tokens as re-running the decoder on the whole prefix
    assert torch.equal(greedy_decode(m, src, max_len=6, use_cache=False), ids)
    # beam search of width 1 is greedy, for the RNN as for the Transformer
    assert torch.equal(beam_search(m, src, beam_size=1, max_len=6).tokens[:, : ids.shape[1]], ids)


def test_attention_model_learns_reversal():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    body = torch.randint(3, 10, (64, 5), generator=g)
    src = torch.cat([body, torch.full((64, 1), 2)], 1)
    tgt = torch.cat([torch.ones(64, 1, dtype=torch.long), body.flip(1), torch.full((64, 1), 2)], 1)
    m = Seq2Seq(Seq2SeqConfig(src_vocab=10, tgt_vocab=10, d_emb=16, d_hidden=32, dropout=0.0))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(120):
        loss = m.loss(src, tgt)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
