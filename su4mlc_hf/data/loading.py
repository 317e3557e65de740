"""Loading multi-label data sets into a `datasets.DatasetDict` with columns `text` (`str`) and `labels` (`list[str]`).

[`load_multilabel_dataset`] reads JSON Lines, CSV, TSV, SGM-style pairs, a folder of split files, a `save_to_disk`
folder or a Hub dataset; [`load_goemotions`] and [`load_reuters_modapte`] read those releases. Files are read by
the readers of `readers.py` and streamed into the `datasets` cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from datasets.exceptions import DatasetGenerationError
from datasets.fingerprint import Hasher

from .readers import (
    FILE_FORMATS,
    LABELS_COLUMN,
    PAIRED_SUFFIXES,
    RAW_FEATURES,
    READERS,
    TEXT_COLUMN,
    DataFormatError,
    LabelStringCheck,
    example_from_record,
    read_lines,
)

# The one table of split names: a data file of a `--dataset_dir` folder is named `<name>.<format>`, with a name
# from here (any case); the value is the `datasets` split it becomes.
SPLIT_NAMES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "eval": "validation",
    "test": "test",
}
# `datasets` hashes a function of an importable module by its name only, and an object by its state, not its class's
# code, so cached Arrow files would outlive a change of the code that made them (a new label-token layout once gave
# training targets ending in a label instead of EOS, read from the cache). The source of every module that shapes
# the cached data goes into the cache key of the loaded splits instead, and from it into the keys of the `map`s of
# `prepare_datasets` that follow.
_SOURCE_FINGERPRINT = Hasher.hash(
    [
        (Path(__file__).parent / module).read_bytes()
        for module in ("readers.py", "loading.py", "preprocessing.py", "../label_vocab.py", "../tokenization_su4mlc.py")
    ]
)


def _generate_examples(reader: str, paths: tuple[str, ...], options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    num_examples = 0
    for example in READERS[reader](*paths, **options):
        num_examples += 1
        yield example
    if num_examples == 0:
        raise DataFormatError(
            f"{' and '.join(paths)}: no examples (the file is empty, or holds only a header or blank lines)."
        )


def _file_state(path: str) -> tuple[str, int, int, str]:
    """`(absolute path, size, modification time in ns, BLAKE2b of the content)`: hashing reads the file once more,
    about a second per GB, which is small beside parsing it."""
    status = os.stat(path)
    with open(path, "rb") as file:
        digest = hashlib.file_digest(file, "blake2b").hexdigest()
    return os.path.abspath(path), status.st_size, status.st_mtime_ns, digest


def _load_split(
    reader: str,
    paths: Sequence[str | os.PathLike],
    options: dict[str, Any],
    features: Features = RAW_FEATURES,
    cache_dir: str | None = None,
) -> Dataset:
    """Reads one split into an Arrow-backed `Dataset` (streamed to the `datasets` cache, not held in memory).

    The cache key covers the readers' source, the reader options and each file's size, modification time and
    content hash, so an edited file (or reader) is read again, even one edited to the same size within the clock's
    resolution or with its modification time restored; as the key changes, so do those of the `map`s that follow.
    """
    paths = tuple(str(path) for path in paths)
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such data file: {path}")
    gen_kwargs = {"reader": reader, "paths": paths, "options": options}
    fingerprint = Hasher.hash((_SOURCE_FINGERPRINT, gen_kwargs, [_file_state(path) for path in paths], features))
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
            - a folder of `<split>.jsonl|.json|.csv|.tsv` files or `<split>.src` + `<split>.tgt` pairs, where
              `<split>` is `train`, `validation` (or `valid`, `val`, `dev`, `eval`) or `test` (`SPLIT_NAMES`);
              a data file with another name, or a `.src` without its `.tgt`, is an error;
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
        `DataFormatError`: unreadable input (malformed JSON or CSV, a missing or duplicate column or key, invalid
        UTF-8, an empty file, a misaligned or half pair, a data file named after no split, label strings that look
        joined by `,`, `;` or `|` with no `label_delimiter`, a damaged `save_to_disk` folder), with the file, line
        and field.
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
            return _canonical_columns(_load_saved(path), text_column, labels_column, label_delimiter, source=str(path))
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


def _load_saved(folder: Path) -> Dataset | DatasetDict:
    """`datasets.load_from_disk`, with its errors on a damaged folder (a truncated Arrow file, broken JSON, a
    missing file) turned into one that names the folder."""
    try:
        return datasets.load_from_disk(str(folder))
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as error:
        raise DataFormatError(
            f"{folder}: not a readable `save_to_disk` folder ({type(error).__name__}: {error}). Save the dataset "
            "again, or point to the original data files."
        ) from None


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
    """The data files of a folder by split: `<split>.<format>` files and `<split>.src`/`<split>.tgt` pairs, with
    `<split>` a name of `SPLIT_NAMES`. Other files (a README, `labels.txt`, ...) are not data and are left alone."""
    found: dict[str, str | tuple[str, str]] = {}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix not in FILE_FORMATS and suffix not in PAIRED_SUFFIXES:
            continue
        split = SPLIT_NAMES.get(path.stem.lower())
        if split is None:
            raise DataFormatError(
                f"{path}: a data file whose name is no split name; rename it to <split>{suffix} with <split> one of "
                f"{sorted(SPLIT_NAMES)}, or move it out of the folder."
            )
        if suffix in PAIRED_SUFFIXES:
            texts, labels = (path.with_suffix(paired_suffix) for paired_suffix in PAIRED_SUFFIXES)
            if not (texts.is_file() and labels.is_file()):
                raise DataFormatError(
                    f"{path}: no {(labels if path == texts else texts).name} beside it; a split of SGM-style pairs "
                    "needs both <split>.src (one text per line) and <split>.tgt (its labels on the same line)."
                )
            if path == labels:
                continue  # the pair is taken with its .src file
            files: str | tuple[str, str] = (str(texts), str(labels))
        else:
            files = str(path)
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
        if label_feature == Value("string"):
            label_check = LabelStringCheck(label_delimiter)
            for batch in split_dataset.select_columns(labels_column).iter(batch_size=10_000):
                for value in batch[labels_column]:
                    label_check.observe(value)
            label_check.raise_if_joined(f"{source}, split {split!r}", labels_column)
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
            example_from_record(
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
        line.strip() for _, line in read_lines(str(folder / "labels.txt"), encoding_errors) if line.strip()
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
        valid_ids = {int(line) for _, line in read_lines(str(valid_ids_file), encoding_errors) if line.strip()}
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

