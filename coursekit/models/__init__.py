"""Models assembled from ``attention``, ``positional`` and ``layers``: embeddings + the one
:class:`~coursekit.layers.TransformerBlock` + a head, each built from a config dataclass.

* :class:`Transformer` (encoder-decoder, notebook 05), :class:`Bert` and its task heads
  (encoder-only, notebook 06), :class:`GPT` (decoder-only, notebook 07), :class:`T5`
  (text-to-text encoder-decoder, notebook 08).
"""

from coursekit.models.bert import (
    Bert,
    BertClassificationHead,
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertMLMHead,
    BertNSPHead,
    BertPooler,
    BertQAHead,
    BertTokenClassificationHead,
)
from coursekit.models.gpt import GPT, GPTConfig
from coursekit.models.t5 import T5, T5Config
from coursekit.models.transformer import Transformer, TransformerConfig

__all__ = [
    "Bert",
    "BertClassificationHead",
    "BertConfig",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertMLMHead",
    "BertNSPHead",
    "BertPooler",
    "BertQAHead",
    "BertTokenClassificationHead",
    "GPT",
    "GPTConfig",
    "T5",
    "T5Config",
    "Transformer",
    "TransformerConfig",
]
