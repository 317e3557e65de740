"""Readers of multi-label data files: JSON Lines, CSV/TSV, SGM-style `.src`/`.tgt` pairs, GoEmotions, Reuters.

Every reader yields examples `{"text": str, "labels": list[str]}` and raises [`DataFormatError`] with
"<file>, line <n>" and the field in the message.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import zip_longest
from typing import Any

from datasets import Features, List, Value

TEXT_COLUMN, LABELS_COLUMN = "text", "labels"
RAW_FEATURES = Features({TEXT_COLUMN: Value("string"), LABELS_COLUMN: List(Value("string"))})
FILE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
PAIRED_SUFFIXES = (".src", ".tgt")
# Characters that join labels into one string in common exports (`cs.it;math.it`); see `LabelStringCheck`.
SUSPECT_LABEL_DELIMITERS = (",", ";", "|")


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
                    f"at byte {error.start + 1} of the line. Fix the file, or read such bytes as U+FFFD with "
                    "`--encoding_errors replace` (run_mlc.py) or encoding_errors='replace'."
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


class LabelStringCheck:
    """Refuses label strings that are most likely joined by a delimiter nobody told the reader about.

    With no `label_delimiter`, a label string is split on whitespace, so `cs.it;math.it` would become one label
    named `cs.it;math.it`. Feed it every labels value of a file ([`observe`]); at the end, [`raise_if_joined`]
    raises when more than half of the non-empty label strings hold the same one of `,`, `;` or `|`. Lists of
    labels are never split, so they are not counted.
    """

    def __init__(self, label_delimiter: str | None):
        self.active = label_delimiter is None
        self.num_strings = 0
        self.num_with: Counter[str] = Counter()

    def observe(self, value: Any) -> None:
        if self.active and isinstance(value, str) and value.strip():
            self.num_strings += 1
            self.num_with.update(delimiter for delimiter in SUSPECT_LABEL_DELIMITERS if delimiter in value)

    def raise_if_joined(self, source: str, column: str) -> None:
        if not self.num_with:
            return
        delimiter, count = self.num_with.most_common(1)[0]
        if 2 * count > self.num_strings:
            raise DataFormatError(
                f"{source}: field {column!r} holds labels joined by {delimiter!r} in {count} of {self.num_strings} "
                f"rows, and no label delimiter is given: pass `--label_delimiter '{delimiter}'` (run_mlc.py) or "
                f"label_delimiter={delimiter!r} to split them (or `--label_delimiter ' '` if the labels do contain "
                f"{delimiter!r})."
            )


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


class _DuplicateKeysError(ValueError):
    """A JSON object names a key twice; `json` would silently keep the last value."""


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    duplicates = [key for key, count in Counter(key for key, _ in pairs).items() if count > 1]
    if duplicates:
        raise _DuplicateKeysError(duplicates)
    return dict(pairs)


def _iter_json_records(path: str, encoding_errors: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields `(where, object)` for each non-blank line of a JSON Lines file. An object with a key given twice is
    an error, as a CSV header with a column given twice is: which of the two values is meant cannot be known."""
    for line_number, line in read_lines(path, encoding_errors):
        if not line.strip():
            continue  # blank lines (a trailing one is common) hold no example
        where = f"{path}, line {line_number}"
        try:
            record = json.loads(line.rstrip("\r\n"), object_pairs_hook=_object_without_duplicate_keys)
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{where}: malformed JSON ({error.msg} at column {error.colno}).") from None
        except _DuplicateKeysError as error:
            raise DataFormatError(
                f"{where}: the JSON object gives the fields {error.args[0]} more than once; keep one of each."
            ) from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: expected a JSON object, got {type(record).__name__}.")
        yield where, record


def _read_json_lines(
    path: str, text_column: str, labels_column: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    label_check = LabelStringCheck(label_delimiter)
    for where, record in _iter_json_records(path, encoding_errors):
        example = example_from_record(record, where, text_column, labels_column, label_delimiter)
        label_check.observe(record[labels_column])
        yield example
    label_check.raise_if_joined(path, labels_column)


def _read_delimited(
    path: str, delimiter: str, text_column: str, labels_column: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    """CSV (`delimiter=","`, standard quoting) or TSV (`"\\t"`, no quoting: quotes are text) with a header row.

    Strict: a record is refused, never guessed at, and the error names the line where the record starts (for a
    quote that is never closed, the line where it opened, not the end of the file). A quoted field may span lines
    (spreadsheets export multi-line cells), but a quote must close right before a delimiter or a line end, and the
    labels field may not span lines (a label set holding line breaks is rows swallowed by an unclosed quote). The
    header may name each column once only.
    """
    lines = (line for _, line in read_lines(path, encoding_errors))
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting, strict=True)
    header_line, header = _next_record(reader, path)
    if header is None:
        return
    _check_header(header, f"{path}, line {header_line} (header)", text_column, labels_column)
    label_check = LabelStringCheck(label_delimiter)
    while True:
        line_number, row = _next_record(reader, path)
        if row is None:
            break
        if not row:
            continue  # a blank line
        where = f"{path}, line {line_number}"
        if len(row) != len(header):
            raise DataFormatError(
                f"{where}: expected {len(header)} fields as in the header {header}, found {len(row)}."
            )
        record = dict(zip(header, row, strict=True))
        if "\n" in record[labels_column] or "\r" in record[labels_column]:
            raise DataFormatError(
                f"{where}: field {labels_column!r} spans lines {line_number}-{reader.line_num}: a quote opened on "
                f"line {line_number} is not closed where it should be. Close it, or double a quote inside a quoted "
                'field ("").'
            )
        example = example_from_record(record, where, text_column, labels_column, label_delimiter)
        label_check.observe(record[labels_column])
        yield example
    label_check.raise_if_joined(path, labels_column)


def _next_record(reader: Any, path: str) -> tuple[int, list[str] | None]:
    """`(line where the record starts, its fields)` from a `csv.reader`, `(line, None)` at the end of the file."""
    start = reader.line_num + 1
    try:
        return start, next(reader, None)
    except csv.Error as error:
        if reader.line_num > start:  # the record ran on past its first line: a quote opened there never closed
            raise DataFormatError(
                f"{path}, line {start}: a quoted field opened on line {start} does not close properly (read on to "
                f"line {reader.line_num}: {error}). Close the quote, or double a quote inside a quoted field "
                '("").'
            ) from None
        # E.g. text after a closing quote, or a field over `csv.field_size_limit()` characters.
        raise DataFormatError(f"{path}, line {start}: {error}.") from None


def _check_header(header: list[str], where: str, text_column: str, labels_column: str) -> None:
    duplicates = [column for column, count in Counter(header).items() if count > 1]
    if duplicates:
        raise DataFormatError(
            f"{where}: columns {duplicates} appear more than once (columns: {header}); give each column one name."
        )
    for column in (text_column, labels_column):
        if column not in header:
            raise DataFormatError(f"{where}: no column {column!r} (columns: {header}).")


def _read_paired(
    source_path: str, target_path: str, label_delimiter: str | None, encoding_errors: str
) -> Iterator[dict[str, Any]]:
    """SGM-style pair: line i of `source_path` is a text, line i of `target_path` its labels."""
    pairs = zip_longest(read_lines(source_path, encoding_errors), read_lines(target_path, encoding_errors))
    label_check = LabelStringCheck(label_delimiter)
    for source, target in pairs:
        if source is None or target is None:
            raise DataFormatError(
                f"{source_path} has {_count_lines(source_path)} lines but {target_path} has "
                f"{_count_lines(target_path)}: the text file and the label file must have one line per example."
            )
        (line_number, text), (_, labels) = source, target
        labels = labels.rstrip("\r\n")
        label_check.observe(labels)
        yield {
            TEXT_COLUMN: text.rstrip("\r\n"),
            LABELS_COLUMN: _parse_labels(labels, label_delimiter, f"{target_path}, line {line_number}", "labels"),
        }
    label_check.raise_if_joined(target_path, "labels")


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

