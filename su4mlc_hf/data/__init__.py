"""Multi-label text classification data on `datasets`: loading, SU4MLC preprocessing and batching.

Three steps:

1. Loading (`loading.py`: [`load_multilabel_dataset`], [`load_goemotions`], [`load_reuters_modapte`]) gives a
   `datasets.DatasetDict` with two columns, `text` (`str`) and `labels` (`list[str]`), from JSON Lines, CSV,
   TSV, SGM-style paired files, a `save_to_disk` folder or a Hub dataset. Unreadable input raises
   [`DataFormatError`] naming the file, the line and the field (the file formats are read by `readers.py`).
2. [`prepare_datasets`] (`preprocessing.py`) applies the paper's preprocessing (over-long texts dropped, label
   sets deduplicated), builds the word vocabulary ([`SU4MLCTokenizer`]) and the [`LabelVocabulary`] from the
   train split, and turns each example into `input_ids` and target label token ids (`labels`, ended by EOS).
3. [`SU4MLCDataCollator`] (`data_collator.py`) pads a batch and builds the decoder inputs.

Length-grouped batching: transformers 5 replaced `group_by_length=True` by
`Seq2SeqTrainingArguments(train_sampling_strategy="group_by_length")`. Its sampler reads the `length` column
(`length_column_name`), which [`prepare_datasets`] writes. The trainer drops columns the model's `forward` does
not take *before* it builds the sampler, so with the default `remove_unused_columns=True` the sampler falls
back to measuring `input_ids` (the tokenizer's `model_input_names[0]`) example by example, which is correct but
reads the whole split at start-up. Pass `remove_unused_columns=False` to use the precomputed `length`; the
collator ignores the extra columns (`text`, `length`).
"""

from .data_collator import LABEL_PAD_ID, SU4MLCDataCollator
from .loading import load_goemotions, load_multilabel_dataset, load_reuters_modapte
from .preprocessing import (
    GOLD_LABELS_COLUMN,
    MAX_CHARACTERS_PER_WORD,
    PreparationReport,
    SplitReport,
    prepare_datasets,
)
from .readers import LABELS_COLUMN, RAW_FEATURES, TEXT_COLUMN, DataFormatError

__all__ = [
    "GOLD_LABELS_COLUMN",
    "LABELS_COLUMN",
    "LABEL_PAD_ID",
    "MAX_CHARACTERS_PER_WORD",
    "RAW_FEATURES",
    "TEXT_COLUMN",
    "DataFormatError",
    "PreparationReport",
    "SU4MLCDataCollator",
    "SplitReport",
    "load_goemotions",
    "load_multilabel_dataset",
    "load_reuters_modapte",
    "prepare_datasets",
]
