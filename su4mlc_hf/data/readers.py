"""Readers of multi-label data files: JSON Lines, CSV/TSV, SGM-style `.src`/`.tgt` pairs, GoEmotions, Reuters.

Every reader yields examples `{"text": str, "labels": list[str]}` and raises [`DataFormatError`] with
"<file>, line <n>" and the field in the message.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import zip_longest
from typing import Any

from datasets import Features, List, Value

TEXT_COLUMN, LABELS_COLUMN = "text", "labels"
RAW_FEATURES = Features({TEXT_COLUMN: Value("string"), LABELS_COLUMN: List(Value("string"))})
FILE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
PAIRED_SUFFIXES = (".src", ".tgt")


class DataFormatError(ValueError):
    """Input that cannot be read as multi-label examples; the message names the file, the line and the field."""


# --------------------------------------------------------------------------------------------------
# Reading files: every reader yields examples `{"text": str, "labels": list[str]}` and raises
# `DataFormatError` with "<file>, line <n>" in the message.


def read_lines(path: str, encoding_errors: str) -> Iterator[tuple[int, str]]:
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


def example_from_record(
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
    for line_number, line in read_lines(path, encoding_errors):
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
        yield example_from_record(record, where, text_column, labels_column, label_delimiter)


def _read_delimited(
    path: str, delimiter: str, text_column: str, labels_column: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    """CSV (`delimiter=","`, standard quoting) or TSV (`"\\t"`, no quoting: quotes are text) with a header row."""
    lines = (line for _, line in read_lines(path, encoding_errors))
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
            yield example_from_record(
                dict(zip(header, row, strict=True)), where, text_column, labels_column, label_delimiter
            )
    except csv.Error as error:
        # E.g. a field over `csv.field_size_limit()` characters (which the caller may raise).
        raise DataFormatError(f"{path}, line {reader.line_num}: {error}.") from None


def _read_paired(
    source_path: str, target_path: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    """SGM-style pair: line i of `source_path` is a text, line i of `target_path` its labels."""
    pairs = zip_longest(read_lines(source_path, encoding_errors), read_lines(target_path, encoding_errors))
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
    for line_number, line in read_lines(path, encoding_errors):
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
        example = example_from_record(record, where, "text", "labels", None)
        example[TEXT_COLUMN] = f"{record['title'] or ''}\n{example[TEXT_COLUMN]}".strip()
        example["id"] = int(record["id"])
        yield example


READERS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "json": _read_json_lines,
    "delimited": _read_delimited,
    "paired": _read_paired,
    "goemotions": _read_goemotions,
    "reuters": _read_reuters,
}

