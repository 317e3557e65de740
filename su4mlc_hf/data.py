"""Multi-label text classification data on `datasets`: loading, SU4MLC preprocessing and batching.

Three steps:

1. Loading ([`load_multilabel_dataset`], [`load_goemotions`], [`load_reuters_modapte`]) gives a
   `datasets.DatasetDict` with two columns, `text` (`str`) and `labels` (`list[str]`), from JSON Lines, CSV,
   TSV, SGM-style paired files, a `save_to_disk` folder or a Hub dataset. Unreadable input raises
   [`DataFormatError`] naming the file, the line and the field.
2. [`prepare_datasets`] applies the paper's preprocessing (over-long texts dropped, label sets deduplicated),
   builds the word vocabulary ([`SU4MLCTokenizer`]) and the [`LabelVocabulary`] from the train split, and
   turns each example into `input_ids` and target label token ids (`labels`, ended by EOS).
3. [`SU4MLCDataCollator`] pads a batch and builds the decoder inputs.

Length-grouped batching: transformers 5 replaced `group_by_length=True` by
`Seq2SeqTrainingArguments(train_sampling_strategy="group_by_length")`. Its sampler reads the `length` column
(`length_column_name`), which [`prepare_datasets`] writes. The trainer drops columns the model's `forward` does
not take *before* it builds the sampler, so with the default `remove_unused_columns=True` the sampler falls
back to measuring `input_ids` (the tokenizer's `model_input_names[0]`) example by example, which is correct but
reads the whole split at start-up. Pass `remove_unused_columns=False` to use the precomputed `length`; the
collator ignores the extra columns (`text`, `length`).
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from datasets.exceptions import DatasetGenerationError
from datasets.fingerprint import Hasher
from transformers.utils import logging

from .label_vocab import LABEL_ORDERS, PAD_ID, LabelVocabulary, UnknownLabelError
from .tokenization_su4mlc import SU4MLCTokenizer

logger = logging.get_logger(__name__)

TEXT_COLUMN, LABELS_COLUMN = "text", "labels"
RAW_FEATURES = Features({TEXT_COLUMN: Value("string"), LABELS_COLUMN: List(Value("string"))})
# Split names as found in file names -> the `datasets` names.
SPLIT_ALIASES = {"dev": "validation", "valid": "validation", "val": "validation"}
FILE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
PAIRED_SUFFIXES = (".src", ".tgt")
OVERLONG_ACTIONS = ("drop", "truncate")
LABEL_PAD_ID = -100  # ignored by the cross-entropy loss
MAX_REPORTED_UNKNOWN_LABELS = 10
# `datasets` hashes a function of an importable module by its name only, so cached Arrow files would outlive a
# change of the readers; the source of this module goes into their cache key instead.
_SOURCE_FINGERPRINT = Hasher.hash(Path(__file__).read_bytes())


class DataFormatError(ValueError):
    """Input that cannot be read as multi-label examples; the message names the file, the line and the field."""


# --------------------------------------------------------------------------------------------------
# Reading files: every reader yields examples `{"text": str, "labels": list[str]}` and raises
# `DataFormatError` with "<file>, line <n>" in the message.


def _read_lines(path: str, encoding_errors: str) -> Iterator[tuple[int, str]]:
    """Yields `(line number from 1, decoded line with its line break)`. Decoding is per line, so a bad byte is
    reported with its line; a UTF-8 byte order mark at the start of the file is dropped."""
    with open(path, "rb") as file:
        for line_number, raw_line in enumerate(file, start=1):
            codec = "utf-8-sig" if line_number == 1 else "utf-8"
            try:
                yield line_number, raw_line.decode(codec, errors=encoding_errors)
            except UnicodeDecodeError as error:
                raise DataFormatError(
                    f"{path}, line {line_number}: invalid UTF-8 byte {raw_line[error.start : error.start + 1]!r} "
                    f"at byte {error.start + 1} of the line. Fix the file, or pass encoding_errors='replace' to "
                    "read such bytes as U+FFFD."
                ) from None


def _count_lines(path: str) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def _parse_labels(value: Any, label_delimiter: str | None, where: str, column: str) -> list[str]:
    """A label set from a list, a delimiter-separated string (`None`: any whitespace), a single id, or null."""
    if value is None:
        return []
    if isinstance(value, str):
        labels = value.split(label_delimiter)
    elif isinstance(value, (list, tuple)):
        for label in value:
            if not isinstance(label, (str, int)) or isinstance(label, bool):
                raise DataFormatError(
                    f"{where}: field {column!r} must hold label names or ids, got {type(label).__name__} {label!r}."
                )
        labels = [str(label) for label in value]
    elif isinstance(value, int) and not isinstance(value, bool):
        labels = [str(value)]
    else:
        raise DataFormatError(
            f"{where}: field {column!r} must be a list of labels or a string of labels, got {type(value).__name__}."
        )
    return [label.strip() for label in labels if label.strip()]


def _example_from_record(
    record: Mapping[str, Any], where: str, text_column: str, labels_column: str, label_delimiter: str | None
) -> dict[str, Any]:
    for column in (text_column, labels_column):
        if column not in record:
            raise DataFormatError(f"{where}: no field {column!r} (fields: {sorted(record)}).")
    text = record[text_column]
    if text is not None and not isinstance(text, str):
        raise DataFormatError(f"{where}: field {text_column!r} must be a string, got {type(text).__name__}.")
    # A null text is an empty text: `prepare_datasets` drops and counts it.
    return {
        TEXT_COLUMN: text or "",
        LABELS_COLUMN: _parse_labels(record[labels_column], label_delimiter, where, labels_column),
    }


def _iter_json_records(path: str, encoding_errors: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields `(where, object)` for each non-blank line of a JSON Lines file."""
    for line_number, line in _read_lines(path, encoding_errors):
        if not line.strip():
            continue  # blank lines (a trailing one is common) hold no example
        where = f"{path}, line {line_number}"
        try:
            record = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{where}: malformed JSON ({error.msg} at column {error.colno}).") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}.")
        yield where, record


def _read_json_lines(
    path: str, text_column: str, labels_column: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    for where, record in _iter_json_records(path, encoding_errors):
        yield _example_from_record(record, where, text_column, labels_column, label_delimiter)


def _read_delimited(
    path: str, delimiter: str, text_column: str, labels_column: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    """CSV (`delimiter=","`, standard quoting) or TSV (`"\\t"`, no quoting: quotes are text) with a header row."""
    lines = (line for _, line in _read_lines(path, encoding_errors))
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader, None)
        if header is None:
            return
        for column in (text_column, labels_column):
            if column not in header:
                raise DataFormatError(f"{path}, line 1 (header): no column {column!r} (columns: {header}).")
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise DataFormatError(
                    f"{where}: expected {len(header)} fields as in the header {header}, found {len(row)}."
                )
            yield _example_from_record(
                dict(zip(header, row, strict=True)), where, text_column, labels_column, label_delimiter
            )
    except csv.Error as error:
        # E.g. a field over `csv.field_size_limit()` characters (which the caller may raise).
        raise DataFormatError(f"{path}, line {reader.line_num}: {error}.") from None


def _read_paired(
    source_path: str, target_path: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    """SGM-style pair: line i of `source_path` is a text, line i of `target_path` its labels."""
    pairs = zip_longest(_read_lines(source_path, encoding_errors), _read_lines(target_path, encoding_errors))
    for source, target in pairs:
        if source is None or target is None:
            raise DataFormatError(
                f"{source_path} has {_count_lines(source_path)} lines but {target_path} has "
                f"{_count_lines(target_path)}: the text file and the label file must have one line per example."
            )
        (line_number, text), (_, labels) = source, target
        yield {
            TEXT_COLUMN: text.rstrip("\r\n"),
            LABELS_COLUMN: _parse_labels(
                labels.rstrip("\r\n"), label_delimiter, f"{target_path}, line {line_number}", "labels"
            ),
        }


def _read_goemotions(path: str, label_names: Sequence[str], encoding_errors: str) -> Iterator[dict[str, Any]]:
    """GoEmotions TSV: no header, `text <TAB> comma-separated label ids <TAB> comment id`; no quoting."""
    for line_number, line in _read_lines(path, encoding_errors):
        where = f"{path}, line {line_number}"
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            raise DataFormatError(
                f"{where}: expected 3 tab-separated fields (text, label ids, id), got {len(fields)}."
            )
        labels = []
        for label_id in _parse_labels(fields[1], ",", where, "label ids"):
            if not label_id.isdigit() or int(label_id) >= len(label_names):
                raise DataFormatError(
                    f"{where}: field 'label ids' holds {label_id!r}, not an id in 0..{len(label_names) - 1}."
                )
            labels.append(label_names[int(label_id)])
        yield {TEXT_COLUMN: fields[0], LABELS_COLUMN: labels}


def _read_reuters(path: str, encoding_errors: str) -> Iterator[dict[str, Any]]:
    """Reuters ModApte JSON Lines `{"id", "title", "text", "labels"}`; the text is title, line break, body."""
    for where, record in _iter_json_records(path, encoding_errors):
        for column in ("id", "title"):
            if column not in record:
                raise DataFormatError(f"{where}: no field {column!r} (fields: {sorted(record)}).")
        example = _example_from_record(record, where, "text", "labels", None)
        example[TEXT_COLUMN] = f"{record['title'] or ''}\n{example[TEXT_COLUMN]}".strip()
        example["id"] = int(record["id"])
        yield example


_READERS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "json": _read_json_lines,
    "delimited": _read_delimited,
    "paired": _read_paired,
    "goemotions": _read_goemotions,
    "reuters": _read_reuters,
}


def _generate_examples(reader: str, paths: tuple[str, ...], options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    num_examples = 0
    for example in _READERS[reader](*paths, **options):
        num_examples += 1
        yield example
    if num_examples == 0:
        raise DataFormatError(
            f"{' and '.join(paths)}: no examples (the file is empty, or holds only a header or blank lines)."
        )


def _load_split(
    reader: str,
    paths: Sequence[str | os.PathLike],
    options: dict[str, Any],
    features: Features = RAW_FEATURES,
    cache_dir: str | None = None,
) -> Dataset:
    """Reads one split into an Arrow-backed `Dataset` (streamed to the `datasets` cache, not held in memory).

    The cache key covers this module's source, the reader options and each file's size and modification time,
    so an edited file (or reader) is read again; as the key changes, so do those of the `map`s that follow.
    """
    paths = tuple(str(path) for path in paths)
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such data file: {path}")
    gen_kwargs = {"reader": reader, "paths": paths, "options": options}
    file_states = [(os.path.abspath(path), os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in paths]
    fingerprint = Hasher.hash((_SOURCE_FINGERPRINT, gen_kwargs, file_states, features))
    try:
        return Dataset.from_generator(
            _generate_examples, features=features, gen_kwargs=gen_kwargs, cache_dir=cache_dir, fingerprint=fingerprint
        )
    except DatasetGenerationError as error:
        # `datasets` wraps errors raised while generating; ours already say what is wrong and where.
        if isinstance(error.__cause__, DataFormatError):
            raise error.__cause__ from None
        raise


# --------------------------------------------------------------------------------------------------
# Public loaders


def load_multilabel_dataset(
    source: str | os.PathLike | Mapping[str, str | os.PathLike | tuple[str | os.PathLike, str | os.PathLike]],
    text_column: str = TEXT_COLUMN,
    labels_column: str = LABELS_COLUMN,
    label_delimiter: str | None = None,
    encoding_errors: str = "strict",
    cache_dir: str | None = None,
    **hub_kwargs,
) -> DatasetDict:
    """Loads multi-label examples into a `DatasetDict` with columns `text` (`str`) and `labels` (`list[str]`).

    Args:
        source:
            One of

            - a mapping `split name -> file`, where a file is a `.jsonl`/`.json` (JSON Lines), `.csv` or `.tsv`
              path, or a `(texts, labels)` pair of SGM-style line-aligned files (one text per line; its labels on
              the same line of the other file, separated by `label_delimiter`);
            - a single such file (one `"train"` split);
            - a folder written by `save_to_disk`;
            - a folder of `<split>.jsonl|.json|.csv|.tsv` files or `<split>.src` + `<split>.tgt` pairs (`dev`,
              `valid` and `val` are read as `"validation"`);
            - otherwise a Hub dataset name, read with `datasets.load_dataset(source, **hub_kwargs)` (offline this
              raises `datasets`' own error).
        text_column (`str`, *optional*, defaults to `"text"`):
            The field (JSON), header column (CSV/TSV) or dataset column holding the text.
        labels_column (`str`, *optional*, defaults to `"labels"`):
            The one holding the labels: a list, or a string split on `label_delimiter`. `ClassLabel` ids of a
            `datasets` dataset become their names.
        label_delimiter (`str`, *optional*):
            Separator of labels given as one string; `None` splits on any whitespace.
        encoding_errors (`str`, *optional*, defaults to `"strict"`):
            Invalid UTF-8 raises a `DataFormatError` naming the file and line; `"replace"` reads it as U+FFFD.
        cache_dir (`str`, *optional*):
            Where `datasets` caches the Arrow files read from text files (default: its usual cache).

    Raises:
        `DataFormatError`: unreadable input (malformed JSON, missing column, invalid UTF-8, empty file,
        misaligned pair), with the file, line and field.
        `FileNotFoundError`: a named data file does not exist.
    """
    options = {
        "text_column": text_column,
        "labels_column": labels_column,
        "label_delimiter": label_delimiter,
        "encoding_errors": encoding_errors,
    }
    if isinstance(source, Mapping):
        return DatasetDict({split: _load_data_file(files, options, cache_dir) for split, files in source.items()})
    path = Path(source)
    if path.is_file():
        return DatasetDict({"train": _load_data_file(path, options, cache_dir)})
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return _canonical_columns(
                datasets.load_from_disk(str(path)), text_column, labels_column, label_delimiter, source=str(path)
            )
        return DatasetDict(
            {split: _load_data_file(files, options, cache_dir) for split, files in _find_split_files(path).items()}
        )
    if path.suffix in FILE_FORMATS or path.suffix in PAIRED_SUFFIXES:
        raise FileNotFoundError(f"No such data file: {path}")
    return _canonical_columns(
        datasets.load_dataset(str(source), **hub_kwargs),
        text_column,
        labels_column,
        label_delimiter,
        source=str(source),
    )


def _load_data_file(files: str | os.PathLike | tuple, options: dict[str, Any], cache_dir: str | None) -> Dataset:
    if isinstance(files, (tuple, list)):
        if len(files) != 2:
            raise ValueError(f"A paired split needs (texts file, labels file), got {files}.")
        paired_options = {key: options[key] for key in ("label_delimiter", "encoding_errors")}
        return _load_split("paired", files, paired_options, cache_dir=cache_dir)
    file_format = FILE_FORMATS.get(Path(files).suffix.lower())
    if file_format is None:
        raise DataFormatError(
            f"{files}: unknown data file type; expected one of {sorted(FILE_FORMATS)} or a (texts, labels) pair."
        )
    if file_format == "json":
        return _load_split("json", [files], options, cache_dir=cache_dir)
    return _load_split(
        "delimited", [files], {"delimiter": "," if file_format == "csv" else "\t", **options}, cache_dir=cache_dir
    )


def _find_split_files(folder: Path) -> dict[str, str | tuple[str, str]]:
    """`<split>.<ext>` files and `<split>.src`/`<split>.tgt` pairs of a folder, by split name."""
    found: dict[str, str | tuple[str, str]] = {}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix in FILE_FORMATS:
            files: str | tuple[str, str] = str(path)
        elif suffix == PAIRED_SUFFIXES[0] and path.with_suffix(PAIRED_SUFFIXES[1]).is_file():
            files = (str(path), str(path.with_suffix(PAIRED_SUFFIXES[1])))
        else:
            continue
        split = SPLIT_ALIASES.get(path.stem.lower(), path.stem)
        if split in found:
            raise DataFormatError(f"{folder}: two data files for split {split!r}: {found[split]} and {files}.")
        found[split] = files
    if not found:
        raise DataFormatError(
            f"{folder}: no data files (<split>{'|'.join(sorted(FILE_FORMATS))}, or <split>.src with <split>.tgt) "
            "and no saved dataset."
        )
    return found


def _canonical_columns(
    dataset: Dataset | DatasetDict, text_column: str, labels_column: str, label_delimiter: str | None, source: str
) -> DatasetDict:
    """Renames and converts the columns of a `datasets` dataset to `text: str`, `labels: list[str]`."""
    if isinstance(dataset, Dataset):
        dataset = DatasetDict({str(dataset.split or "train"): dataset})
    canonical = {}
    for split, split_dataset in dataset.items():
        for column in (text_column, labels_column):
            if column not in split_dataset.column_names:
                raise DataFormatError(
                    f"{source}, split {split!r}: no column {column!r} (columns: {split_dataset.column_names})."
                )
        label_feature = split_dataset.features[labels_column]
        class_label = getattr(label_feature, "feature", label_feature)  # the element type of a list feature
        canonical[split] = split_dataset.map(
            _canonical_batch,
            batched=True,
            with_indices=True,
            remove_columns=split_dataset.column_names,
            features=RAW_FEATURES,
            fn_kwargs={
                "text_column": text_column,
                "labels_column": labels_column,
                "label_delimiter": label_delimiter,
                "label_names": class_label.names if isinstance(class_label, ClassLabel) else None,
                "where": f"{source}, split {split!r}",
            },
            desc=f"Reading {split}",
        )
    return DatasetDict(canonical)


def _canonical_batch(
    batch: dict[str, list],
    indices: list[int],
    text_column: str,
    labels_column: str,
    label_delimiter: str | None,
    label_names: list[str] | None,
    where: str,
) -> dict[str, list]:
    examples = []
    for text, labels, index in zip(batch[text_column], batch[labels_column], indices, strict=True):
        if label_names is not None and labels is not None:
            # `ClassLabel` ids (one, or a list) -> their names; -1 is `datasets`' "no label".
            label_ids = labels if isinstance(labels, list) else [labels]
            labels = [label_names[label_id] for label_id in label_ids if label_id >= 0]
        examples.append(
            _example_from_record(
                {TEXT_COLUMN: text, LABELS_COLUMN: labels},
                f"{where}, row {index}",
                TEXT_COLUMN,
                LABELS_COLUMN,
                label_delimiter,
            )
        )
    return {column: [example[column] for example in examples] for column in RAW_FEATURES}


def load_goemotions(
    folder: str | os.PathLike, encoding_errors: str = "strict", cache_dir: str | None = None
) -> DatasetDict:
    """Loads the GoEmotions release (`train.tsv`, `dev.tsv`, `test.tsv`, `labels.txt`) as train/validation/test.

    The TSV files have no header: `text <TAB> comma-separated label ids <TAB> comment id`; ids are line numbers
    (from 0) of `labels.txt`, and become label names. Texts contain quotes, so no CSV quoting is applied.
    """
    folder = Path(folder)
    label_names = tuple(
        line.strip() for _, line in _read_lines(str(folder / "labels.txt"), encoding_errors) if line.strip()
    )
    options = {"label_names": label_names, "encoding_errors": encoding_errors}
    return DatasetDict(
        {
            split: _load_split("goemotions", [folder / f"{file_stem}.tsv"], options, cache_dir=cache_dir)
            for split, file_stem in (("train", "train"), ("validation", "dev"), ("test", "test"))
        }
    )


def load_reuters_modapte(
    folder: str | os.PathLike,
    valid_ids_file: str | os.PathLike | None = None,
    encoding_errors: str = "strict",
    cache_dir: str | None = None,
) -> DatasetDict:
    """Loads Reuters-21578 ModApte JSON Lines (`train.jsonl`, `test.jsonl`; lines `{"id", "title", "text", "labels"}`).

    The text is the title, a line break, then the body. With `valid_ids_file` (one document id per line), the
    train documents with those ids form a `"validation"` split and leave `"train"`.
    """
    folder = Path(folder)
    options = {"encoding_errors": encoding_errors}
    features = Features({**RAW_FEATURES, "id": Value("int64")})
    train = _load_split("reuters", [folder / "train.jsonl"], options, features=features, cache_dir=cache_dir)
    splits = {"train": train}
    if valid_ids_file is not None:
        valid_ids = {int(line) for _, line in _read_lines(str(valid_ids_file), encoding_errors) if line.strip()}
        train_ids = np.asarray(train.with_format("numpy")["id"])
        in_valid = np.isin(train_ids, list(valid_ids))
        missing = valid_ids - set(train_ids.tolist())
        if missing:
            raise DataFormatError(f"{valid_ids_file}: ids {sorted(missing)[:10]} are not train documents.")
        splits = {
            "train": train.select(np.flatnonzero(~in_valid)),
            "validation": train.select(np.flatnonzero(in_valid)),
        }
    splits["test"] = _load_split("reuters", [folder / "test.jsonl"], options, features=features, cache_dir=cache_dir)
    return DatasetDict({split: dataset.remove_columns("id") for split, dataset in splits.items()})


# --------------------------------------------------------------------------------------------------
# Preprocessing


@dataclass
class SplitReport:
    """What [`prepare_datasets`] did to one split. Counts are examples unless said otherwise.

    Attributes:
        num_examples: examples read.
        num_kept: examples in the prepared split.
        empty_texts: dropped: the text has no word at all (empty, whitespace only, or null).
        overlong_texts: had more than `max_words` words: dropped, or truncated and kept (see `overlong`).
        empty_label_sets: kept examples with no label (legal: the target is EOS alone).
        unknown_labels: label occurrences, in kept examples, that are not in the label vocabulary; they are
            dropped from the targets (never mapped to another label). Never counted on the train split, where
            they are an error.
        examples_with_unknown_labels: kept examples with at least one such label.
        unknown_label_names: up to ten of those labels, most frequent first.
    """

    num_examples: int = 0
    num_kept: int = 0
    empty_texts: int = 0
    overlong_texts: int = 0
    empty_label_sets: int = 0
    unknown_labels: int = 0
    examples_with_unknown_labels: int = 0
    unknown_label_names: list[str] = field(default_factory=list)


@dataclass
class PreparationReport:
    """Counts of [`prepare_datasets`], per split, and the settings that produced them."""

    splits: dict[str, SplitReport]
    max_words: int | None
    overlong: str
    label_order: str
    word_vocab_size: int
    num_labels: int

    def __str__(self) -> str:
        lines = [
            f"word vocabulary {self.word_vocab_size}, labels {self.num_labels}, max_words {self.max_words} "
            f"({self.overlong}), label order {self.label_order}"
        ]
        for split, report in self.splits.items():
            lines.append(
                f"{split}: kept {report.num_kept}/{report.num_examples}; empty texts dropped {report.empty_texts}; "
                f"overlong {'dropped' if self.overlong == 'drop' else 'truncated'} {report.overlong_texts}; "
                f"empty label sets {report.empty_label_sets}; unknown labels {report.unknown_labels} in "
                f"{report.examples_with_unknown_labels} examples {report.unknown_label_names}"
            )
        return "\n".join(lines)


def _column_batches(dataset: Dataset, column: str, batch_size: int = 10_000) -> Iterator[list]:
    """The values of one column, batch by batch: far faster than iterating the column row by row."""
    for batch in dataset.select_columns(column).iter(batch_size=batch_size):
        yield batch[column]


def _clean_batch(
    batch: dict[str, list], word_counter: SU4MLCTokenizer, truncate_to: int | None
) -> dict[str, list]:
    texts = [text or "" for text in batch[TEXT_COLUMN]]
    # Order-preserving deduplication: a label counts once per example.
    label_sets = [list(dict.fromkeys(str(label) for label in labels or [])) for labels in batch[LABELS_COLUMN]]
    counted = word_counter(
        texts, return_attention_mask=False, return_length=True, return_offsets_mapping=truncate_to is not None
    )
    if truncate_to is not None:
        # Cut each over-long text after the last character of its last kept word, so that the word vocabulary, the
        # input ids and the `text` column (which predictions read) all hold the same words.
        texts = [
            text[: offsets[truncate_to - 1][1]] if len(offsets) > truncate_to else text
            for text, offsets in zip(texts, counted["offset_mapping"])
        ]
    return {
        TEXT_COLUMN: texts,
        LABELS_COLUMN: label_sets,
        "num_words": counted["length"],
        "num_labels": [len(labels) for labels in label_sets],
    }


def _encode_batch(
    batch: dict[str, list],
    tokenizer: SU4MLCTokenizer,
    label_vocab: LabelVocabulary,
    label_order: str,
    max_words: int | None,
) -> dict[str, list]:
    input_ids = tokenizer(
        batch[TEXT_COLUMN], truncation=max_words is not None, max_length=max_words, return_attention_mask=False
    )["input_ids"]
    return {
        "input_ids": input_ids,
        LABELS_COLUMN: [
            label_vocab.encode([label for label in labels if label in label_vocab], order=label_order)
            for labels in batch[LABELS_COLUMN]
        ],
        "length": [len(ids) for ids in input_ids],
    }


def _count_unknown_labels(dataset: Dataset, label_vocab: LabelVocabulary, report: SplitReport) -> None:
    unknown: Counter[str] = Counter()
    for labels in chain.from_iterable(_column_batches(dataset, LABELS_COLUMN)):
        missing = [label for label in labels if label not in label_vocab]
        unknown.update(missing)
        report.examples_with_unknown_labels += bool(missing)
    report.unknown_labels = sum(unknown.values())
    report.unknown_label_names = [label for label, _ in unknown.most_common(MAX_REPORTED_UNKNOWN_LABELS)]


def prepare_datasets(
    raw: DatasetDict,
    tokenizer: SU4MLCTokenizer | None = None,
    label_vocab: LabelVocabulary | None = None,
    max_words: int | None = 500,
    overlong: str = "drop",
    label_order: str = "frequency",
    vocab_size: int = 50_000,
    min_frequency: int = 1,
    train_split: str = "train",
    max_label_vocab: int | None = None,
) -> tuple[DatasetDict, SU4MLCTokenizer, LabelVocabulary, PreparationReport]:
    """Applies the SU4MLC preprocessing and tokenises every split.

    Per split, in order:

    1. Texts with no word (empty, whitespace only, null) are dropped and counted.
    2. Texts of more than `max_words` words are dropped (the paper, `overlong="drop"`) or cut to their first
       `max_words` words (`overlong="truncate"`: the `text` column is cut too, so the words past the limit enter
       neither the word vocabulary nor predictions); the same rule holds for every split, so with `"drop"` the
       evaluation splits lose their over-long texts too, as in the paper. A word is a token of the tokenizer.
    3. Label sets are deduplicated; an empty label set is kept (and counted).

    The word vocabulary (unless `tokenizer` is given) and the label vocabulary (unless `label_vocab` is given)
    come from what is left of the train split. A label of another split that is not in the label vocabulary
    is counted, logged and dropped from that example's target.

    Args:
        raw (`DatasetDict`): splits with columns `text` and `labels` (see [`load_multilabel_dataset`]).
        tokenizer (`SU4MLCTokenizer`, *optional*): use this word vocabulary instead of training one.
        label_vocab (`LabelVocabulary`, *optional*): use these labels instead of the train split's.
        max_words (`int`, *optional*, defaults to 500): the word limit; `None` for none.
        overlong (`str`, *optional*, defaults to `"drop"`): `"drop"` or `"truncate"`.
        label_order (`str`, *optional*, defaults to `"frequency"`):
            Order of the labels in a target: `"frequency"` (most frequent label first, the paper), `"rare_first"`,
            or `"random"`. With `"random"` the targets are stored in frequency order and
            `SU4MLCDataCollator(shuffle_labels=True)` draws a new order for every example of every epoch.
        vocab_size (`int`, *optional*, defaults to 50000): word vocabulary size, `<pad>` and `<unk>` included.
        min_frequency (`int`, *optional*, defaults to 1): rarer train words are left out of the vocabulary.
        train_split (`str`, *optional*, defaults to `"train"`): the split the vocabularies are built from.
        max_label_vocab (`int`, *optional*):
            Most distinct labels the train split may have when the label vocabulary is built from it; more raise
            a `ValueError` (a safeguard against, e.g., a wrong label delimiter turning label sets into labels).

    Returns:
        `(prepared, tokenizer, label_vocab, report)`. Each prepared split has the columns `text`,
        `input_ids` (`list[int]`, `length` words, no special token), `labels` (`list[int]`, the label token ids
        ended by EOS) and `length` (`int`, for length-grouped sampling).

    Raises:
        `UnknownLabelError`: `label_vocab` is given and the train split has a label it does not know.
        `ValueError`: a vocabulary is to be built from the train split and no example is left in it, or none
        has a label, or it has more than `max_label_vocab` labels.
    """
    if overlong not in OVERLONG_ACTIONS:
        raise ValueError(f"overlong must be one of {OVERLONG_ACTIONS}, got {overlong!r}.")
    if label_order not in LABEL_ORDERS:
        raise ValueError(f"label_order must be one of {LABEL_ORDERS}, got {label_order!r}.")
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be positive or None, got {max_words}.")
    for split, dataset in raw.items():
        for column in (TEXT_COLUMN, LABELS_COLUMN):
            if column not in dataset.column_names:
                raise ValueError(f"Split {split!r} has no column {column!r} (columns: {dataset.column_names}).")
    if (tokenizer is None or label_vocab is None) and train_split not in raw:
        raise ValueError(f"No {train_split!r} split to build the vocabularies from (splits: {list(raw)}).")

    # Any SU4MLCTokenizer counts words the same way, vocabulary or not: each word is one token.
    word_counter = tokenizer if tokenizer is not None else SU4MLCTokenizer()
    kept_splits, reports = {}, {}
    for split, dataset in raw.items():
        cleaned = dataset.map(
            _clean_batch,
            batched=True,
            fn_kwargs={"word_counter": word_counter, "truncate_to": max_words if overlong == "truncate" else None},
            desc=f"Counting words ({split})",
        )
        counts = cleaned.with_format("numpy", columns=["num_words", "num_labels"])[:]
        num_words = counts["num_words"]
        too_long = (num_words > max_words) if max_words is not None else np.zeros_like(num_words, dtype=bool)
        keep = (num_words > 0) & (~too_long if overlong == "drop" else True)
        kept = cleaned.select(np.flatnonzero(keep)).remove_columns(["num_words", "num_labels"])
        reports[split] = SplitReport(
            num_examples=len(dataset),
            num_kept=len(kept),
            empty_texts=int((num_words == 0).sum()),
            overlong_texts=int(too_long.sum()),
            empty_label_sets=int((keep & (counts["num_labels"] == 0)).sum()),
        )
        kept_splits[split] = kept

    if tokenizer is None or label_vocab is None:
        train_report = reports[train_split]
        if train_report.num_kept == 0:
            raise ValueError(
                f"Split {train_split!r} has no example left to build the vocabularies from: of its "
                f"{train_report.num_examples} examples, {train_report.empty_texts} have no word and "
                f"{train_report.overlong_texts} have more than {max_words} words."
            )
        if label_vocab is None and train_report.empty_label_sets == train_report.num_kept:
            raise ValueError(
                f"Split {train_split!r} has no label at all (every label set is empty): check the labels column "
                "and the label delimiter."
            )
    if label_vocab is None:
        label_vocab = LabelVocabulary.from_label_lists(
            chain.from_iterable(_column_batches(kept_splits[train_split], LABELS_COLUMN)), max_labels=max_label_vocab
        )
    if tokenizer is None:
        tokenizer = SU4MLCTokenizer.train_from_texts(
            _column_batches(kept_splits[train_split], TEXT_COLUMN), vocab_size=vocab_size, min_frequency=min_frequency
        )

    stored_order = "frequency" if label_order == "random" else label_order
    prepared = {}
    for split, kept in kept_splits.items():
        report = reports[split]
        _count_unknown_labels(kept, label_vocab, report)
        if report.unknown_labels and split == train_split:
            raise UnknownLabelError(
                f"Split {split!r} has {report.unknown_labels} labels that the given label vocabulary does not know, "
                f"e.g. {report.unknown_label_names}."
            )
        if report.unknown_labels:
            logger.warning(
                f"Split {split!r}: {report.unknown_labels} label occurrences in {report.examples_with_unknown_labels} "
                f"examples are not in the label vocabulary (e.g. {report.unknown_label_names}); they are dropped "
                "from the targets."
            )
        if report.empty_texts:
            logger.warning(f"Split {split!r}: dropped {report.empty_texts} examples whose text has no word.")
        if report.overlong_texts:
            logger.info(
                f"Split {split!r}: {'dropped' if overlong == 'drop' else 'truncated'} {report.overlong_texts} "
                f"examples of more than {max_words} words."
            )
        prepared[split] = kept.map(
            _encode_batch,
            batched=True,
            fn_kwargs={
                "tokenizer": tokenizer,
                "label_vocab": label_vocab,
                "label_order": stored_order,
                "max_words": max_words,
            },
            desc=f"Tokenizing ({split})",
        )

    report = PreparationReport(
        splits=reports,
        max_words=max_words,
        overlong=overlong,
        label_order=label_order,
        word_vocab_size=len(tokenizer),
        num_labels=len(label_vocab),
    )
    return DatasetDict(prepared), tokenizer, label_vocab, report


# --------------------------------------------------------------------------------------------------
# Batching


@dataclass
class SU4MLCDataCollator:
    """Pads prepared examples into a batch for the SU4MLC model.

    Each example needs `input_ids` and, for training and evaluation, `labels` (label token ids ended by EOS);
    other keys (`text`, `length`, ...) are ignored. The batch holds, with `batch = len(examples)`:

    - `input_ids` (`torch.LongTensor` of shape `(batch, source_length)`): right-padded with the PAD id 0;
      `source_length` is the longest text, at least 1 (so that a batch never has an empty dimension).
    - `attention_mask` (`torch.LongTensor` of shape `(batch, source_length)`): 1 on words, 0 on padding.
    - `labels` (`torch.LongTensor` of shape `(batch, target_length)`): right-padded with -100 (ignored by the loss).
      The model shifts them right behind BOS itself for teacher forcing.

    Args:
        shuffle_labels (`bool`, *optional*, defaults to `False`):
            Put the labels of each target (all but the final EOS) in a random order, drawn anew at every call,
            for `label_order="random"`. Reproducible: the draws come from a `random.Random` seeded with `seed`. In
            a `DataLoader` worker the collator is a copy taken when the worker starts, and workers restart every
            epoch, so a plain carried-over generator would replay the same orders; there the generator is
            seeded with `seed` and the worker's torch seed, which differs per worker and per epoch (and is
            itself drawn from the trainer's seed).
        seed (`int`, *optional*, defaults to 0):
            Seed of the label shuffling.
    """

    shuffle_labels: bool = False
    seed: int = 0
    _rng: random.Random | None = field(default=None, init=False, repr=False)
    _rng_worker_seed: int | None = field(default=None, init=False, repr=False)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        sources = [torch.as_tensor(example["input_ids"], dtype=torch.long) for example in examples]
        source_length = max(1, max(len(source) for source in sources))
        input_ids = torch.full((len(examples), source_length), PAD_ID, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, source in enumerate(sources):
            input_ids[row, : len(source)] = source
            attention_mask[row, : len(source)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if LABELS_COLUMN not in examples[0]:
            return batch

        targets = [torch.as_tensor(example[LABELS_COLUMN], dtype=torch.long).tolist() for example in examples]
        if self.shuffle_labels:
            targets = [self._shuffled(target) for target in targets]
        target_length = max(len(target) for target in targets)
        labels = torch.full((len(examples), target_length), LABEL_PAD_ID, dtype=torch.long)
        for row, target in enumerate(targets):
            labels[row, : len(target)] = torch.as_tensor(target, dtype=torch.long)
        batch["labels"] = labels
        return batch

    def _shuffled(self, target: list[int]) -> list[int]:
        labels, end = target[:-1], target[-1:]
        self._label_rng().shuffle(labels)
        return labels + end

    def _label_rng(self) -> random.Random:
        worker = torch.utils.data.get_worker_info()
        worker_seed = None if worker is None else worker.seed
        if self._rng is None or worker_seed != self._rng_worker_seed:
            self._rng = random.Random(self.seed if worker_seed is None else f"{self.seed}/{worker_seed}")
            self._rng_worker_seed = worker_seed
        return self._rng


__all__ = [
    "DataFormatError",
    "PreparationReport",
    "SU4MLCDataCollator",
    "SplitReport",
    "load_goemotions",
    "load_multilabel_dataset",
    "load_reuters_modapte",
    "prepare_datasets",
]
