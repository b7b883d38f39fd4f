"""Weight converters from Hugging Face ``transformers`` models to coursekit models.

``transformers`` is an optional dependency: it is imported only inside the converters, so the
rest of the package works without it. Every converter carries every weight over (the two
models have the same parameter count) and is tested against the original's outputs on models
built offline from a config.
"""

from coursekit.hf.bert import bert_from_hf
from coursekit.hf.gpt import gpt_from_hf, llama_from_hf
from coursekit.hf.t5 import t5_from_hf

__all__ = ["bert_from_hf", "gpt_from_hf", "llama_from_hf", "t5_from_hf"]
