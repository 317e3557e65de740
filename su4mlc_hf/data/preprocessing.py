"""SU4MLC preprocessing: [`prepare_datasets`] cleans, counts and tokenises loaded splits and reports what it did."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice

import numpy as np
from datasets import Dataset, DatasetDict
from transformers.utils import logging

from ..label_vocab import LABEL_ORDERS, LabelVocabulary, UnknownLabelError
from ..tokenization_su4mlc import SU4MLCTokenizer
from .readers import LABELS_COLUMN, TEXT_COLUMN

logger = logging.get_logger(__name__)

OVERLONG_ACTIONS = ("drop", "truncate")
MAX_REPORTED_UNKNOWN_LABELS = 10
GOLD_LABELS_COLUMN = "gold_labels"
# Reading a text for a limit of `max_words` words looks at no more than `(max_words + 1) * MAX_CHARACTERS_PER_WORD`
# characters of it (50,100 for 500 words), so that memory stays bounded whatever the length of a line.
MAX_CHARACTERS_PER_WORD = 100
# A whitespace-separated chunk of a text. The tokenizer splits on Unicode White_Space after NFKC and then splits
# punctuation off, so every chunk gives at least one word and the first n chunks hold at least n words. Python's
# `\s` also matches U+001C..U+001F, which are no White_Space to the tokenizer: they stay inside a chunk.
_CHUNK = re.compile(r"(?:[^\s]|[\x1c-\x1f])+")


@dataclass
class SplitReport:
    """What [`prepare_datasets`] did to one split. Counts are examples unless said otherwise.

    Attributes:
        num_examples: examples read.
        num_kept: examples in the prepared split.
        drops_texts: whether this split drops texts: only the train split does (empty ones, and over-long ones
            with `overlong="drop"`); every other split keeps every text, so that its scores are those of the file.
        empty_texts: texts with no word at all (empty, whitespace only, or null): dropped from the train split,
            kept (predicted from empty input) elsewhere.
        overlong_texts: texts over the word limit (see [`prepare_datasets`]).
        truncated_texts: of those, the ones cut to the limit and kept; the others are dropped.
        empty_label_sets: kept examples with no label (legal: the target is EOS alone).
        unknown_labels: label occurrences, in kept examples, that are not in the label vocabulary. They are left
            out of the targets (never mapped to another label) but stay in the `gold_labels` column, so scores
            count them as missed. Never counted on the train split, where they are an error.
        examples_with_unknown_labels: kept examples with at least one such label.
        unknown_label_names: up to ten of those labels, most frequent first.
    """

    num_examples: int = 0
    num_kept: int = 0
    drops_texts: bool = False
    empty_texts: int = 0
    overlong_texts: int = 0
    truncated_texts: int = 0
    empty_label_sets: int = 0
    unknown_labels: int = 0
    examples_with_unknown_labels: int = 0
    unknown_label_names: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"kept {self.num_kept}/{self.num_examples}; empty texts {self.empty_texts} "
            f"({'dropped' if self.drops_texts else 'kept'}); overlong {self.overlong_texts} (truncated "
            f"{self.truncated_texts}, dropped {self.overlong_texts - self.truncated_texts}); empty label sets "
            f"{self.empty_label_sets}; unknown labels {self.unknown_labels} in {self.examples_with_unknown_labels} "
            f"examples {self.unknown_label_names}"
        )


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
            f"({self.overlong} over-long training texts), label order {self.label_order}"
        ]
        lines += [f"{split}: {report}" for split, report in self.splits.items()]
        return "\n".join(lines)


def _column_batches(dataset: Dataset, column: str, batch_size: int = 10_000) -> Iterator[list]:
    """The values of one column, batch by batch: far faster than iterating the column row by row."""
    for batch in dataset.select_columns(column).iter(batch_size=batch_size):
        yield batch[column]


def _head_for_word_limit(text: str, max_words: int) -> tuple[str, bool]:
    """The part of `text` that decides its words under a limit of `max_words`, found without reading the rest.

    Tokenizing costs memory many times the length of the text, so a text longer than the character budget of
    `(max_words + 1) * MAX_CHARACTERS_PER_WORD` is cut before it is tokenized, to its first `max_words + 1` chunks
    within the budget: whether it is over the limit, and its first `max_words` words, are the same for the head as
    for the whole text. Shorter texts are tokenized whole.

    Returns:
        `(head, over_by_characters)`. `over_by_characters` is True when the text's first `max_words` chunks run
        past the character budget, so the text counts as over-long even if the head holds fewer words.
    """
    budget = (max_words + 1) * MAX_CHARACTERS_PER_WORD
    if len(text) <= budget:
        return text, False
    head = text[:budget]
    chunks = list(islice(_CHUNK.finditer(head), max_words + 1))
    if len(chunks) > max_words:
        return head[: chunks[-1].end()], False  # more than `max_words` words: the tokenizer finds it over the limit
    # No more than `max_words` chunks within the budget, and the text goes on: over-long if any word follows.
    return head, _CHUNK.search(text, budget) is not None


def _clean_batch(
    batch: dict[str, list], word_counter: SU4MLCTokenizer, max_words: int | None, truncate: bool
) -> dict[str, list]:
    texts = [text or "" for text in batch[TEXT_COLUMN]]
    # Order-preserving deduplication: a label counts once per example.
    label_sets = [list(dict.fromkeys(str(label) for label in labels or [])) for labels in batch[LABELS_COLUMN]]
    over_by_characters = [False] * len(texts)
    if max_words is not None:
        heads = [_head_for_word_limit(text, max_words) for text in texts]
        texts, over_by_characters = [head for head, _ in heads], [over for _, over in heads]
    counted = word_counter(texts, return_attention_mask=False, return_length=True, return_offsets_mapping=truncate)
    is_overlong = [
        over or (max_words is not None and num_words > max_words)
        for over, num_words in zip(over_by_characters, counted["length"])
    ]
    if truncate:
        # Cut each over-long text after the last character of its last kept word, so that the word vocabulary, the
        # input ids and the `text` column (which predictions read) all hold the same words.
        texts = [
            text[: offsets[max_words - 1][1]] if len(offsets) > max_words else text
            for text, offsets in zip(texts, counted["offset_mapping"])
        ]
    return {
        TEXT_COLUMN: texts,
        LABELS_COLUMN: label_sets,
        "num_words": counted["length"],
        "is_overlong": is_overlong,
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
        # The label names as read, unknown ones included: what the predictions are scored against.
        GOLD_LABELS_COLUMN: batch[LABELS_COLUMN],
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

    Only the train split loses texts; every other split keeps all of its texts, so that the scores on it are
    those of the whole file. Per split, in order:

    1. Texts with no word (empty, whitespace only, null) are dropped from the train split and counted; other
       splits keep them (the model predicts from empty input).
    2. Texts of more than `max_words` words are cut to their first `max_words` words (the `text` column is cut
       too, so the words past the limit enter neither the word vocabulary nor predictions), except in the train
       split with `overlong="drop"` (the paper), which drops them. A word is a token of the tokenizer. Memory stays
       bounded whatever a text's length: no more than `(max_words + 1) * MAX_CHARACTERS_PER_WORD` characters of a
       text (50,100 for 500 words) and `max_words + 1` of its whitespace-separated chunks are tokenized; a text
       whose first `max_words` words run past that many characters counts as over-long.
    3. Label sets are deduplicated; an empty label set is kept (and counted).

    The word vocabulary (unless `tokenizer` is given) and the label vocabulary (unless `label_vocab` is given)
    come from what is left of the train split. A label of another split that is not in the label vocabulary
    is counted, logged and left out of that example's target, never mapped to another label; the
    `gold_labels` column keeps it, so that scores computed from that column count it as missed (see
    [`~su4mlc_hf.metrics.label_name_scores`]).

    Args:
        raw (`DatasetDict`): splits with columns `text` and `labels` (see [`load_multilabel_dataset`]).
        tokenizer (`SU4MLCTokenizer`, *optional*): use this word vocabulary instead of training one.
        label_vocab (`LabelVocabulary`, *optional*): use these labels instead of the train split's.
        max_words (`int`, *optional*, defaults to 500): the word limit; `None` for none.
        overlong (`str`, *optional*, defaults to `"drop"`):
            `"drop"` or `"truncate"` the over-long texts of the train split; other splits always truncate.
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
        of the known labels, ended by EOS), `gold_labels` (`list[str]`, every label name of the example, unknown
        ones included) and `length` (`int`, for length-grouped sampling).

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
        drops_texts = split == train_split
        truncates = max_words is not None and not (drops_texts and overlong == "drop")
        cleaned = dataset.map(
            _clean_batch,
            batched=True,
            fn_kwargs={"word_counter": word_counter, "max_words": max_words, "truncate": truncates},
            desc=f"Counting words ({split})",
        )
        counts = cleaned.with_format("numpy", columns=["num_words", "is_overlong", "num_labels"])[:]
        empty, too_long = counts["num_words"] == 0, counts["is_overlong"].astype(bool)
        keep = ~(empty | (too_long & (not truncates))) if drops_texts else np.ones_like(empty)
        kept = cleaned.select(np.flatnonzero(keep)).remove_columns(["num_words", "is_overlong", "num_labels"])
        reports[split] = SplitReport(
            num_examples=len(dataset),
            num_kept=len(kept),
            drops_texts=drops_texts,
            empty_texts=int(empty.sum()),
            overlong_texts=int(too_long.sum()),
            truncated_texts=int((too_long & keep).sum()),
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
                f"examples are not in the label vocabulary (e.g. {report.unknown_label_names}); they are left out "
                f"of the targets and kept in the {GOLD_LABELS_COLUMN!r} column, where scores count them as missed."
            )
        if report.empty_texts:
            logger.warning(
                f"Split {split!r}: {'dropped' if report.drops_texts else 'kept'} {report.empty_texts} examples whose "
                "text has no word."
            )
        if report.overlong_texts:
            logger.info(
                f"Split {split!r}: {report.overlong_texts} examples of more than {max_words} words: truncated "
                f"{report.truncated_texts}, dropped {report.overlong_texts - report.truncated_texts}."
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

