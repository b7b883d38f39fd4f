"""Data: the registry of public data sets, verified download and cache, loaders, synthetic tasks."""

from coursekit.data.batching import pad_sequences, random_windows
from coursekit.data.corpora import (
    LabeledSplits,
    PairSplits,
    TextSplits,
    load_sst2,
    load_tiny_shakespeare,
    load_translation_pairs,
)
from coursekit.data.download import DataError, cache_dir, fetch, mirror_location
from coursekit.data.masking import mlm_mask
from coursekit.data.registry import REGISTRY, DataSet, get_dataset

__all__ = [
    "REGISTRY",
    "DataError",
    "DataSet",
    "LabeledSplits",
    "PairSplits",
    "TextSplits",
    "cache_dir",
    "fetch",
    "get_dataset",
    "load_sst2",
    "load_tiny_shakespeare",
    "load_translation_pairs",
    "mirror_location",
    "mlm_mask",
    "pad_sequences",
    "random_windows",
]
