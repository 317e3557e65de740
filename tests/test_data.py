"""Tests of the data pipeline (the su4mlc_hf.data package): loaders, preprocessing, collator."""

import json
import logging
import os
import shutil
from pathlib import Path

import datasets
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value
from sklearn.metrics import precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer
from transformers import Seq2SeqTrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from su4mlc_hf.data import (
    DataFormatError,
    SU4MLCDataCollator,
    load_goemotions,
    load_multilabel_dataset,
    load_reuters_modapte,
    prepare_datasets,
)
from su4mlc_hf.label_vocab import EOS_ID, NUM_SPECIAL_LABEL_TOKENS, PAD_ID, LabelVocabulary, UnknownLabelError
from su4mlc_hf.metrics import label_name_scores
from su4mlc_hf.tokenization_su4mlc import UNK_TOKEN_ID, SU4MLCTokenizer

DATA_DIR = Path(__file__).parent / "data"
FORMATS_DIR = DATA_DIR / "formats"
BAD_DIR = FORMATS_DIR / "bad"
GOEMOTIONS_SAMPLE = DATA_DIR / "goemotions"


@pytest.fixture(autouse=True, scope="module")
def quiet_progress_bars():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


@pytest.fixture
def cache_dir(tmp_path) -> str:
    return str(tmp_path / "datasets_cache")


def expected_examples() -> list[dict]:
    """The six fixture examples, read straight from the JSON Lines fixture."""
    with open(FORMATS_DIR / "goemotions_sample.jsonl", encoding="utf-8") as file:
        return [{"text": record["text"], "labels": record["labels"]} for record in map(json.loads, file)]


def rows(dataset: Dataset) -> list[dict]:
    return [{"text": example["text"], "labels": example["labels"]} for example in dataset]


def raw_dataset(texts: list[str], label_lists: list[list[str]]) -> Dataset:
    return Dataset.from_dict(
        {"text": texts, "labels": label_lists},
        features=Features({"text": Value("string"), "labels": List(Value("string"))}),
    )


# --------------------------------------------------------------------------------------------------
# Loading


@pytest.mark.parametrize(
    "source, options",
    [
        ("goemotions_sample.jsonl", {}),
        ("goemotions_sample.csv", {"text_column": "comment", "labels_column": "emotions", "label_delimiter": ";"}),
        ("goemotions_sample.tsv", {}),
        (("goemotions_sample.src", "goemotions_sample.tgt"), {}),
    ],
    ids=["jsonl", "csv", "tsv", "paired"],
)
def test_every_file_form_gives_the_same_examples(source, options, cache_dir):
    files = tuple(FORMATS_DIR / name for name in source) if isinstance(source, tuple) else FORMATS_DIR / source
    loaded = load_multilabel_dataset({"train": files}, cache_dir=cache_dir, **options)
    assert list(loaded) == ["train"]
    assert loaded["train"].column_names == ["text", "labels"]
    assert rows(loaded["train"]) == expected_examples()
    # The quoted text survives CSV quoting, and TSV (no quoting) keeps its quotes as text.
    assert loaded["train"][5]["text"].startswith('">""fun""')


def test_a_single_file_is_a_train_split(cache_dir):
    loaded = load_multilabel_dataset(FORMATS_DIR / "goemotions_sample.tsv", cache_dir=cache_dir)
    assert list(loaded) == ["train"] and len(loaded["train"]) == 6


def test_a_folder_of_split_files_and_pairs(tmp_path, cache_dir):
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(FORMATS_DIR / "goemotions_sample.jsonl", folder / "train.jsonl")
    shutil.copy(FORMATS_DIR / "goemotions_sample.src", folder / "dev.src")
    shutil.copy(FORMATS_DIR / "goemotions_sample.tgt", folder / "dev.tgt")
    shutil.copy(FORMATS_DIR / "goemotions_sample.tsv", folder / "test.tsv")
    discovered = load_multilabel_dataset(folder, cache_dir=cache_dir)
    assert sorted(discovered) == ["test", "train", "validation"]  # `dev` is read as `validation`
    for split in discovered:
        assert rows(discovered[split]) == expected_examples()
    shutil.copy(FORMATS_DIR / "goemotions_sample.jsonl", folder / "test.jsonl")
    with pytest.raises(DataFormatError, match="two data files for split 'test'"):
        load_multilabel_dataset(folder, cache_dir=cache_dir)


def test_a_saved_datasets_folder_with_other_column_names_and_class_labels(tmp_path, cache_dir):
    names = ["anger", "joy", "neutral"]
    saved = DatasetDict(
        {
            "train": Dataset.from_dict(
                {"comment": ["I am so happy", "Meh.", "Grr!"], "emotions": [[1], [2, 2], []]},
                features=Features({"comment": Value("string"), "emotions": List(ClassLabel(names=names))}),
            ),
            "test": Dataset.from_dict(
                {"comment": ["Yay", None, "Hm"], "emotions": [[1, 0], [2], [-1]]},
                features=Features({"comment": Value("string"), "emotions": List(ClassLabel(names=names))}),
            ),
        }
    )
    saved.save_to_disk(tmp_path / "saved")
    loaded = load_multilabel_dataset(tmp_path / "saved", text_column="comment", labels_column="emotions")
    assert loaded["train"].features == Features({"text": Value("string"), "labels": List(Value("string"))})
    assert rows(loaded["train"]) == [
        {"text": "I am so happy", "labels": ["joy"]},
        {"text": "Meh.", "labels": ["neutral", "neutral"]},  # deduplicated later, by prepare_datasets
        {"text": "Grr!", "labels": []},
    ]
    assert rows(loaded["test"]) == [
        {"text": "Yay", "labels": ["joy", "anger"]},
        {"text": "", "labels": ["neutral"]},
        {"text": "Hm", "labels": []},  # -1: no label
    ]

    with pytest.raises(DataFormatError, match=r"saved, split 'train': no column 'labels'"):
        load_multilabel_dataset(tmp_path / "saved", text_column="comment")


def test_a_single_saved_dataset_with_delimited_label_strings(tmp_path):
    Dataset.from_dict({"text": ["a", "b"], "tags": ["x|y", ""]}).save_to_disk(tmp_path / "single")
    loaded = load_multilabel_dataset(tmp_path / "single", labels_column="tags", label_delimiter="|")
    assert rows(loaded["train"]) == [{"text": "a", "labels": ["x", "y"]}, {"text": "b", "labels": []}]


def test_labels_as_lists_strings_ids_or_null_and_null_text(tmp_path, cache_dir):
    path = tmp_path / "mixed.jsonl"
    lines = [
        {"text": "one", "labels": ["a", " b "]},
        {"text": "two", "labels": "a b"},
        {"text": "three", "labels": [3, 4]},
        {"text": "four", "labels": 7},
        {"text": None, "labels": None},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    assert rows(load_multilabel_dataset(path, cache_dir=cache_dir)["train"]) == [
        {"text": "one", "labels": ["a", "b"]},
        {"text": "two", "labels": ["a", "b"]},
        {"text": "three", "labels": ["3", "4"]},
        {"text": "four", "labels": ["7"]},
        {"text": "", "labels": []},
    ]


def test_an_edited_file_is_read_again(tmp_path, cache_dir):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"text": "old", "labels": ["a"]}) + "\n", encoding="utf-8")
    assert load_multilabel_dataset(path, cache_dir=cache_dir)["train"][0]["text"] == "old"
    path.write_text(json.dumps({"text": "newer", "labels": ["a"]}) + "\n", encoding="utf-8")
    assert load_multilabel_dataset(path, cache_dir=cache_dir)["train"][0]["text"] == "newer"


def test_a_file_edited_to_the_same_size_and_time_is_never_read_from_a_stale_cache(tmp_path, cache_dir):
    """Issue 14: the cache key was (path, size, modification time), so an edit that kept both (within the clock's
    resolution, or `cp -p`/`rsync -t`/`touch -r` restoring the time) read the old examples."""
    path = tmp_path / "data.csv"
    path.write_text("text,labels\nold text,joy\n", encoding="utf-8")
    status = path.stat()
    assert load_multilabel_dataset(path, cache_dir=cache_dir)["train"]["text"] == ["old text"]
    path.write_text("text,labels\nnew text,awe\n", encoding="utf-8")
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (status.st_size, status.st_mtime_ns)
    reloaded = load_multilabel_dataset(path, cache_dir=cache_dir)["train"]
    assert rows(reloaded) == [{"text": "new text", "labels": ["awe"]}]


@pytest.mark.parametrize(
    "source, options, message",
    [
        ("malformed.jsonl", {}, r"malformed\.jsonl, line 2: malformed JSON \(Expecting ',' delimiter at column 78\)"),
        ("missing_labels.jsonl", {}, r"missing_labels\.jsonl, line 3: no field 'labels'"),
        ("invalid_utf8.jsonl", {}, r"invalid_utf8\.jsonl, line 2: invalid UTF-8 byte b'\\xff' at byte 49"),
        ("empty.jsonl", {}, r"empty\.jsonl: no examples"),
        (
            "missing_column.csv",
            {"text_column": "comment", "labels_column": "emotions"},
            r"missing_column\.csv, line 1 \(header\): no column 'emotions'",
        ),
        ("ragged.tsv", {}, r"ragged\.tsv, line 3: expected 2 fields"),
        (
            ("mismatch.src", "mismatch.tgt"),
            {},
            r"mismatch\.src has 3 lines but \S*mismatch\.tgt has 2",
        ),
    ],
    ids=["malformed-json", "missing-labels", "invalid-utf8", "empty", "missing-column", "ragged-row", "mismatch"],
)
def test_bad_input_errors_name_the_file_line_and_field(source, options, message, cache_dir):
    files = tuple(BAD_DIR / name for name in source) if isinstance(source, tuple) else BAD_DIR / source
    with pytest.raises(DataFormatError, match=message):
        load_multilabel_dataset({"train": files}, cache_dir=cache_dir, **options)


def test_csv_errors_name_the_file_and_line(tmp_path, cache_dir):
    path = tmp_path / "long.csv"
    path.write_text("text,labels\nshort,a\n" + "x" * 200_000 + ",b\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"long\.csv, line 3: field larger than field limit"):
        load_multilabel_dataset(path, cache_dir=cache_dir)


def test_invalid_utf8_can_be_replaced(cache_dir):
    loaded = load_multilabel_dataset(BAD_DIR / "invalid_utf8.jsonl", encoding_errors="replace", cache_dir=cache_dir)
    assert loaded["train"][1]["text"] == "Just got home from school. How are we \ufffd doing"


def test_missing_files_and_offline_hub_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.jsonl"):
        load_multilabel_dataset(tmp_path / "no_such.jsonl")
    with pytest.raises(FileNotFoundError, match="no_such.csv"):
        load_multilabel_dataset({"train": tmp_path / "no_such.csv"})
    if not datasets.config.HF_HUB_OFFLINE:
        pytest.skip("the Hub case is checked offline only")
    # Not a local path: a Hub name, whose offline failure is `datasets`' own error.
    with pytest.raises(Exception, match="someone/no-such-dataset") as raised:
        load_multilabel_dataset("someone/no-such-dataset")
    assert not isinstance(raised.value, DataFormatError)


def test_load_goemotions_sample(cache_dir):
    loaded = load_goemotions(GOEMOTIONS_SAMPLE, cache_dir=cache_dir)
    assert {split: len(dataset) for split, dataset in loaded.items()} == {"train": 400, "validation": 100, "test": 100}
    assert rows(loaded["train"])[:6] == expected_examples()


def test_load_goemotions_rejects_an_unknown_label_id(tmp_path, cache_dir):
    for name in ("labels.txt", "dev.tsv", "test.tsv"):
        shutil.copy(GOEMOTIONS_SAMPLE / name, tmp_path / name)
    (tmp_path / "train.tsv").write_text("Fine text\t27\tid1\nBad id here\t3,99\tid2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train\.tsv, line 2: field 'label ids' holds '99'"):
        load_goemotions(tmp_path, cache_dir=cache_dir)


def test_load_reuters_modapte(tmp_path, cache_dir):
    documents = [
        {"id": 1, "title": "BAHIA COCOA REVIEW", "text": "Showers continued.", "labels": ["cocoa"]},
        {"id": 5, "title": "GRAIN SHIPS", "text": "Ships waiting.", "labels": ["grain", "ship"]},
        {"id": 9, "title": "", "text": "No title here.", "labels": ["earn"]},
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in documents), encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(json.dumps({**documents[0], "id": 20}) + "\n", encoding="utf-8")
    (tmp_path / "valid_ids.txt").write_text("5\n", encoding="utf-8")

    loaded = load_reuters_modapte(tmp_path, cache_dir=cache_dir)
    assert sorted(loaded) == ["test", "train"] and len(loaded["train"]) == 3
    assert loaded["train"][0] == {"text": "BAHIA COCOA REVIEW\nShowers continued.", "labels": ["cocoa"]}
    assert loaded["train"][2]["text"] == "No title here."

    split = load_reuters_modapte(tmp_path, valid_ids_file=tmp_path / "valid_ids.txt", cache_dir=cache_dir)
    assert [len(split[name]) for name in ("train", "validation", "test")] == [2, 1, 1]
    assert split["validation"][0]["labels"] == ["grain", "ship"]

    (tmp_path / "valid_ids.txt").write_text("5\n77\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"valid_ids\.txt: ids \[77\] are not train documents"):
        load_reuters_modapte(tmp_path, valid_ids_file=tmp_path / "valid_ids.txt", cache_dir=cache_dir)


# --------------------------------------------------------------------------------------------------
# Preprocessing


@pytest.fixture(scope="module")
def goemotions_prepared(tmp_path_factory):
    raw = load_goemotions(GOEMOTIONS_SAMPLE, cache_dir=str(tmp_path_factory.mktemp("datasets_cache")))
    return raw, *prepare_datasets(raw)


def test_prepare_goemotions_sample(goemotions_prepared):
    raw, prepared, tokenizer, label_vocab, report = goemotions_prepared
    for split in ("train", "validation", "test"):
        assert prepared[split].column_names == ["text", "labels", "input_ids", "gold_labels", "length"]
        assert report.splits[split].num_kept == len(prepared[split]) == len(raw[split])  # all short, none empty
        assert prepared[split]["gold_labels"] == [list(dict.fromkeys(labels)) for labels in raw[split]["labels"]]
    # The label vocabulary comes from the train split, most frequent label first.
    assert label_vocab == LabelVocabulary.from_label_lists(raw["train"]["labels"])
    assert label_vocab.labels[0] == "neutral"
    assert report.num_labels == len(label_vocab) and report.word_vocab_size == len(tokenizer)

    example, raw_example = prepared["train"][5], raw["train"][5]
    assert raw_example["labels"] == ["amusement", "neutral"]
    # Frequency order: neutral (the most frequent) first, then EOS.
    assert example["labels"] == [label_vocab.token_id("neutral"), label_vocab.token_id("amusement"), EOS_ID]
    assert example["input_ids"] == tokenizer(raw_example["text"])["input_ids"]
    assert example["length"] == len(example["input_ids"])
    assert all(ids[-1] == EOS_ID for ids in prepared["test"]["labels"])


def test_word_vocabulary_comes_from_the_train_split_only(goemotions_prepared):
    raw, prepared, tokenizer, _, _ = goemotions_prepared
    assert tokenizer.get_vocab() == SU4MLCTokenizer.train_from_texts(raw["train"]["text"]).get_vocab()
    backend = tokenizer.backend_tokenizer
    test_words = {
        word
        for text in raw["test"]["text"]
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))
    }
    unseen = test_words - tokenizer.get_vocab().keys()
    assert unseen  # words of the test split only ...
    assert UNK_TOKEN_ID in {token for row in prepared["test"]["input_ids"] for token in row}  # ... are <unk>


def test_unknown_evaluation_labels_are_counted_reported_and_kept_as_gold(goemotions_prepared, caplog):
    raw = DatasetDict(
        {
            "train": raw_dataset(["good stuff", "bad stuff"], [["joy"], ["anger"]]),
            "validation": raw_dataset(["so good", "so new", "nothing"], [["joy", "awe"], ["awe", "wonder"], []]),
        }
    )
    with caplog.at_level(logging.WARNING, logger="su4mlc_hf.data"):
        prepared, _, label_vocab, report = prepare_datasets(raw)
    validation = report.splits["validation"]
    assert (validation.unknown_labels, validation.examples_with_unknown_labels) == (3, 2)
    assert validation.unknown_label_names == ["awe", "wonder"]
    assert validation.empty_label_sets == 1
    assert "3 label occurrences in 2 examples" in caplog.text and "awe" in caplog.text
    # Left out of the target, never mapped to another label ...
    assert prepared["validation"]["labels"] == [[label_vocab.token_id("joy"), EOS_ID], [EOS_ID], [EOS_ID]]
    assert report.splits["train"].unknown_labels == 0
    # ... but still gold: scores over the whole file count them as missed.
    assert prepared["validation"]["gold_labels"] == [["joy", "awe"], ["awe", "wonder"], []]
    assert "validation: kept 3/3; empty texts 0 (kept)" in str(report)
    assert "unknown labels 3 in 2 examples ['awe', 'wonder']" in str(report)


def test_scores_over_the_whole_file_count_unknown_gold_labels_as_missed():
    """Issue 13: a label seen only in the test data was removed from the gold labels (subset accuracy 0.51
    reported where it is 0.0). Scored against `gold_labels` with `label_name_scores`, it counts as missed."""
    raw = DatasetDict(
        {
            "train": raw_dataset(["good stuff", "bad stuff"], [["joy"], ["anger"]]),
            "test": raw_dataset(["so good", "so new", ""], [["joy", "awe"], ["wonder"], ["anger"]]),
        }
    )
    prepared, _, label_vocab, report = prepare_datasets(raw)
    assert len(prepared["test"]) == 3 and report.splits["test"].empty_texts == 1  # the empty text is scored too
    predictions = [["joy"], [], []]
    gold = prepared["test"]["gold_labels"]
    scores = label_name_scores(predictions, gold, label_vocab.labels)

    # The same scores from scikit-learn, with columns for the model's labels and the unknown gold labels.
    binarizer = MultiLabelBinarizer(classes=[*label_vocab.labels, "awe", "wonder"])
    y_true, y_pred = binarizer.fit_transform(gold), binarizer.transform(predictions)
    for average in ("micro", "macro"):
        precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        assert scores[f"{average}_recall"] == pytest.approx(recall) and scores[f"{average}_f1"] == pytest.approx(f1)
    assert scores["subset_accuracy"] == 0.0 and scores["micro_recall"] == pytest.approx(1 / 4)
    # Scored over the model's labels only, the unknown labels would vanish and the first text look right.
    assert label_name_scores(predictions, [["joy"], [], ["anger"]], label_vocab.labels)["subset_accuracy"] > 0
    with pytest.raises(ValueError, match=r"Predicted labels \['awe'\] are not among the model's labels"):
        label_name_scores([["awe"], [], []], gold, label_vocab.labels)
    with pytest.raises(ValueError, match="2 predictions but 3 gold label sets"):
        label_name_scores(predictions[:2], gold, label_vocab.labels)


def test_a_given_label_vocabulary_must_know_every_train_label():
    raw = DatasetDict({"train": raw_dataset(["text one", "text two"], [["joy"], ["awe"]])})
    with pytest.raises(UnknownLabelError, match=r"Split 'train' has 1 labels .* \['awe'\]"):
        prepare_datasets(raw, label_vocab=LabelVocabulary(["joy"]))


def test_empty_texts_are_dropped_and_label_sets_deduplicated():
    raw = DatasetDict(
        {
            "train": raw_dataset(
                ["good day", "", "   \t ", "fine, fine", "no labels at all"],
                [["joy", "joy", "calm"], ["joy"], ["anger"], ["calm"], []],
            )
        }
    )
    prepared, _, label_vocab, report = prepare_datasets(raw)
    train = report.splits["train"]
    assert (train.num_examples, train.num_kept, train.empty_texts, train.empty_label_sets) == (5, 3, 2, 1)
    assert prepared["train"]["text"] == ["good day", "fine, fine", "no labels at all"]
    assert label_vocab.labels == ["calm", "joy"]  # empty-text examples do not count
    assert prepared["train"]["labels"][0] == [label_vocab.token_id("calm"), label_vocab.token_id("joy"), EOS_ID]
    assert prepared["train"]["labels"][2] == [EOS_ID]


@pytest.mark.parametrize("overlong", ["drop", "truncate"])
def test_overlong_training_texts_are_dropped_or_truncated_and_other_splits_truncated(overlong):
    texts = ["one two three", "one two three four five", "one, two!"]
    raw = DatasetDict(
        {"train": raw_dataset(texts, [["a"], ["b"], ["a"]]), "test": raw_dataset(texts[:2], [["a"], ["b"]])}
    )
    prepared, tokenizer, _, report = prepare_datasets(raw, max_words=4, overlong=overlong)
    # A word is a token: "one, two!" has four.
    assert [split.overlong_texts for split in report.splits.values()] == [1, 1]
    if overlong == "drop":
        assert prepared["train"]["text"] == ["one two three", "one, two!"]
        assert "five" not in tokenizer.get_vocab()  # the word vocabulary is built after dropping
        assert "train: kept 2/3; empty texts 0 (dropped); overlong 1 (truncated 0, dropped 1)" in str(report)
    else:
        assert prepared["train"]["length"] == [3, 4, 4]
        assert "train: kept 3/3; empty texts 0 (dropped); overlong 1 (truncated 1, dropped 0)" in str(report)
    # The test split is scored whole: its over-long text is cut, never dropped, whatever `overlong` says.
    assert prepared["test"]["text"] == ["one two three", "one two three four"]
    assert prepared["test"]["input_ids"][1] == tokenizer("one two three four")["input_ids"]
    assert "test: kept 2/2; empty texts 0 (kept); overlong 1 (truncated 1, dropped 0)" in str(report)


def test_label_orders_and_a_given_tokenizer():
    raw = DatasetDict({"train": raw_dataset(["a b", "b c", "c d"], [["x", "y"], ["x"], ["x", "z"]])})
    tokenizer = SU4MLCTokenizer.train_from_texts(["a b c"])
    by_order = {}
    for order in ("frequency", "rare_first", "random"):
        prepared, returned_tokenizer, label_vocab, report = prepare_datasets(
            raw, tokenizer=tokenizer, label_order=order
        )
        assert returned_tokenizer is tokenizer and report.label_order == order
        by_order[order] = prepared["train"]["labels"][0]
    x, y = label_vocab.token_id("x"), label_vocab.token_id("y")
    assert by_order["frequency"] == [x, y, EOS_ID]
    assert by_order["rare_first"] == [y, x, EOS_ID]
    # "random" stores the frequency order; the collator shuffles per epoch.
    assert by_order["random"] == by_order["frequency"]
    assert prepared["train"]["input_ids"][2] == [tokenizer.convert_tokens_to_ids("c"), UNK_TOKEN_ID]


def test_prepare_rejects_bad_arguments():
    raw = DatasetDict({"train": Dataset.from_dict({"text": ["a"], "tags": [["x"]]})})
    with pytest.raises(ValueError, match="Split 'train' has no column 'labels'"):
        prepare_datasets(raw)
    good = DatasetDict({"test": raw_dataset(["a"], [["x"]])})
    with pytest.raises(ValueError, match="No 'train' split"):
        prepare_datasets(good)
    with pytest.raises(ValueError, match="overlong must be one of"):
        prepare_datasets(good, overlong="cut")


# --------------------------------------------------------------------------------------------------
# Batching


def test_collator_pads(goemotions_prepared):
    _, prepared, _, _, _ = goemotions_prepared
    examples = [prepared["train"][index] for index in (5, 0, 1)]
    batch = SU4MLCDataCollator()(examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    source_length = max(len(example["input_ids"]) for example in examples)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (3, source_length)
    assert batch["labels"].shape == (3, 3)
    assert all(tensor.dtype == torch.long for tensor in batch.values())
    for row, example in enumerate(examples):
        length, target = len(example["input_ids"]), example["labels"]
        assert batch["input_ids"][row, :length].tolist() == example["input_ids"]
        assert batch["input_ids"][row, length:].eq(PAD_ID).all()
        assert batch["attention_mask"][row].tolist() == [1] * length + [0] * (source_length - length)
        assert batch["labels"][row].tolist() == target + [-100] * (3 - len(target))


def test_collator_without_labels_and_with_an_empty_text():
    batch = SU4MLCDataCollator()([{"input_ids": [], "text": "ignored"}, {"input_ids": []}])
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].shape == (2, 1) and batch["attention_mask"].sum() == 0


def shuffled_targets(collator: SU4MLCDataCollator, targets: list[list[int]]) -> list[list[int]]:
    batch = collator([{"input_ids": [5], "labels": target} for target in targets])
    return [[token for token in row if token != -100] for row in batch["labels"].tolist()]


def test_collator_shuffles_labels_per_epoch_reproducibly():
    first = NUM_SPECIAL_LABEL_TOKENS
    targets = [list(range(first, first + 6)) + [EOS_ID] for _ in range(8)]
    collator = SU4MLCDataCollator(shuffle_labels=True, seed=3)
    epoch_1, epoch_2 = shuffled_targets(collator, targets), shuffled_targets(collator, targets)
    for row in epoch_1 + epoch_2:
        assert row[-1] == EOS_ID and sorted(row[:-1]) == targets[0][:-1]
    assert epoch_1 != epoch_2  # a new order every call, so every epoch
    assert len({tuple(row) for row in epoch_1}) > 1  # and every example
    replay = SU4MLCDataCollator(shuffle_labels=True, seed=3)
    assert shuffled_targets(replay, targets) == epoch_1
    assert shuffled_targets(SU4MLCDataCollator(), targets) == targets


def test_collator_in_dataloader_workers_draws_per_worker_seed(monkeypatch):
    first = NUM_SPECIAL_LABEL_TOKENS
    targets = [list(range(first, first + 6)) + [EOS_ID] for _ in range(8)]

    class WorkerInfo:
        def __init__(self, seed):
            self.seed = seed

    orders = []
    for worker_seed in (11, 12, 11):  # a copy of the collator, as each worker gets, per (epoch, worker) seed
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda seed=worker_seed: WorkerInfo(seed))
        orders.append(shuffled_targets(SU4MLCDataCollator(shuffle_labels=True, seed=3), targets))
    assert orders[0] != orders[1] and orders[0] == orders[2]


def test_length_grouped_sampling_reads_the_length_column(goemotions_prepared):
    _, prepared, tokenizer, _, _ = goemotions_prepared
    train = prepared["train"]
    # transformers 5: `group_by_length=True` became this.
    assert Seq2SeqTrainingArguments(output_dir="unused", train_sampling_strategy="group_by_length")
    with_column = LengthGroupedSampler(8, dataset=train, lengths=train["length"])
    # With `remove_unused_columns=True` the trainer drops `length` and measures `model_input_names[0]`.
    measured = LengthGroupedSampler(
        8, dataset=train.remove_columns(["length", "text"]), model_input_name=tokenizer.model_input_names[0]
    )
    assert list(with_column.lengths) == measured.lengths
    batch = SU4MLCDataCollator()([train[index] for index in list(with_column)[:8]])
    assert batch["input_ids"].shape[0] == 8
