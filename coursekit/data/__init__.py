"""Data: the registry of public data sets, verified download and cache, loaders, synthetic tasks.

Also the pre-training and multi-task inputs of the models: BERT's masking and pairs, T5's span
corruption and text-to-text task mixing; and the post-training data of a causal LM:
instructions, preference pairs and a fact store for retrieval.
"""

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
from coursekit.data.instructions import (
    INSTRUCTION_TASKS,
    Fact,
    Instruction,
    PreferencePair,
    SFTBatch,
    encode_preferences,
    encode_sft,
    encode_texts,
    fact_qa,
    instruction_dataset,
    preference_pairs,
    rag_prompt,
)
from coursekit.data.masking import mlm_mask
from coursekit.data.pairs import (
    BERT_TOKENS,
    WORDPIECE_TOKENS,
    BertBatch,
    BertSpecialTokens,
    BertVocab,
    MLMBatcher,
    encode_pairs,
    encode_single,
    nsp_batch,
    split_documents,
    static_mlm_masking,
    truncate_pair,
)
from coursekit.data.registry import REGISTRY, DataSet, get_dataset
from coursekit.data.span_corruption import (
    corrupted_lengths,
    noise_span_counts,
    random_spans_noise_mask,
    span_corrupt,
    span_uncorrupt,
)
from coursekit.data.tagging import SpanTask, TaggingTask, entity_tagging_task, span_extraction_task
from coursekit.data.text_to_text import TaskMixer, TextToTextTask

__all__ = [
    "BERT_TOKENS",
    "INSTRUCTION_TASKS",
    "REGISTRY",
    "WORDPIECE_TOKENS",
    "BertBatch",
    "BertSpecialTokens",
    "BertVocab",
    "Fact",
    "Instruction",
    "MLMBatcher",
    "PreferencePair",
    "SFTBatch",
    "SpanTask",
    "TaggingTask",
    "TaskMixer",
    "TextToTextTask",
    "encode_pairs",
    "encode_preferences",
    "encode_sft",
    "encode_single",
    "encode_texts",
    "entity_tagging_task",
    "fact_qa",
    "instruction_dataset",
    "nsp_batch",
    "preference_pairs",
    "rag_prompt",
    "span_extraction_task",
    "split_documents",
    "static_mlm_masking",
    "truncate_pair",
    "DataError",
    "DataSet",
    "LabeledSplits",
    "PairSplits",
    "TextSplits",
    "cache_dir",
    "corrupted_lengths",
    "fetch",
    "get_dataset",
    "load_sst2",
    "load_tiny_shakespeare",
    "load_translation_pairs",
    "mirror_location",
    "mlm_mask",
    "noise_span_counts",
    "pad_sequences",
    "random_spans_noise_mask",
    "random_windows",
    "span_corrupt",
    "span_uncorrupt",
]
