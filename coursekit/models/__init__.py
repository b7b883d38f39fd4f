"""Models assembled from ``attention``, ``positional`` and ``layers``, each from a config dataclass.

Only the encoder-decoder :class:`Transformer` lives here so far; other chapters add theirs
(``bert.py``, ``gpt.py``, ``t5.py``) and export them below.
"""

from coursekit.models.transformer import Transformer, TransformerConfig

__all__ = ["Transformer", "TransformerConfig"]
