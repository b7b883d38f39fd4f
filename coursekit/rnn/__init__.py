"""Recurrent networks: cells from their equations, multi-layer wrappers, a character-level LM.

>>> from coursekit.rnn import LSTMCell, LSTM, CharRNNLM, lm_loss
"""

from coursekit.rnn.cells import (
    GRU,
    LSTM,
    RNN,
    GRUCell,
    LSTMCell,
    LSTMGates,
    RNNCell,
    copy_from_torch,
)
from coursekit.rnn.language_model import CharRNNLM, hidden_gradient_norms, lm_loss
from coursekit.rnn.timing import TimingRow, time_rnn_vs_attention

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "CharRNNLM",
    "GRUCell",
    "LSTMCell",
    "LSTMGates",
    "RNNCell",
    "TimingRow",
    "copy_from_torch",
    "hidden_gradient_norms",
    "lm_loss",
    "time_rnn_vs_attention",
]

# The seq2seq module (GRU encoder-decoder with additive attention) is imported below.
from coursekit.rnn.seq2seq import AdditiveAttention, Seq2Seq, Seq2SeqConfig, WordVocab  # noqa: E402, F401
