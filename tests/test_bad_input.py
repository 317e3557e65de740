"""Bad input, end to end: each case raises an error naming the file, the line or split, and the field, or is handled
in a documented way (dropped and counted, truncated, reported). The cases tests/test_data.py already covers (malformed
JSON, a missing `labels` field or column, invalid UTF-8 in JSON Lines, an empty file, a ragged TSV row, misaligned
`.src`/`.tgt` files, ...) are not repeated here; SECURITY.md counts both."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import datasets
import pytest
from datasets import Dataset, DatasetDict, Features, List, Value
from transformers import AutoModel

from su4mlc_hf import SU4MLCForMultiLabelClassification, SU4MLCTokenizer
from su4mlc_hf.data import (
    DataFormatError,
    SU4MLCDataCollator,
    load_goemotions,
    load_multilabel_dataset,
    prepare_datasets,
)
from su4mlc_hf.label_vocab import LabelVocabulary
from su4mlc_hf.trainer import SU4MLCTrainer, SU4MLCTrainingArguments

from .conftest import DATA_DIR, goemotions_train_texts, save_tiny_model_and_tokenizer, tiny_model
from .test_run_mlc import TINY_MODEL_ARGS, run_mlc

BAD_DIR = DATA_DIR / "formats" / "bad"
WORDS = ["good", "bad", "happy", "sad", "great", "news", "today", "really", "so", "very", "nice", "day", "awful"]


@pytest.fixture(autouse=True, scope="module")
def quiet_progress_bars():
    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def raw_dataset(texts: list[str | None], label_lists: list[list[str]]) -> Dataset:
    return Dataset.from_dict(
        {"text": texts, "labels": label_lists},
        features=Features({"text": Value("string"), "labels": List(Value("string"))}),
    )


def text_of(num_words: int) -> str:
    return " ".join(itertools.islice(itertools.cycle(WORDS), num_words))


# --------------------------------------------------------------------------------------------------
# Files: the error names the file, the line and the field


@pytest.mark.parametrize(
    "source, message",
    [
        ("missing_text.jsonl", r"missing_text\.jsonl, line 2: no field 'text'"),
        ("text_not_a_string.jsonl", r"text_not_a_string\.jsonl, line 2: field 'text' must be a string, got int"),
        ("labels_not_a_list.jsonl", r"labels_not_a_list\.jsonl, line 3: field 'labels' must be a list .* got dict"),
        ("nested_labels.jsonl", r"nested_labels\.jsonl, line 2: field 'labels' must hold label names or ids, got list"),
        ("not_an_object.jsonl", r"not_an_object\.jsonl, line 2: expected a JSON object, got list"),
        ("truncated.jsonl", r"truncated\.jsonl, line 3: malformed JSON \(Unterminated string"),
        ("blank_lines.jsonl", r"blank_lines\.jsonl: no examples"),
        ("header_only.csv", r"header_only\.csv: no examples"),
        ("missing_text_column.tsv", r"missing_text_column\.tsv, line 1 \(header\): no column 'text'"),
        ("invalid_utf8.tsv", r"invalid_utf8\.tsv, line 3: invalid UTF-8 byte b'\\xfe'"),
        (("invalid_utf8_labels.src", "invalid_utf8_labels.tgt"), r"invalid_utf8_labels\.tgt, line 2: invalid UTF-8"),
    ],
    ids=["missing-text", "text-not-a-string", "labels-not-a-list", "nested-labels", "not-an-object", "truncated",
         "blank-lines", "header-only", "missing-text-column", "invalid-utf8-tsv", "invalid-utf8-tgt"],  # fmt: skip
)
def test_unreadable_files_raise_errors_naming_file_line_and_field(source, message, tmp_path):
    files = tuple(BAD_DIR / name for name in source) if isinstance(source, tuple) else BAD_DIR / source
    with pytest.raises(DataFormatError, match=message):
        load_multilabel_dataset({"train": files}, cache_dir=str(tmp_path / "cache"))


def test_unknown_file_type_and_goemotions_row_without_its_three_fields(tmp_path):
    notes = tmp_path / "train.txt"
    notes.write_text("a text\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train\.txt: unknown data file type"):
        load_multilabel_dataset({"train": notes})
    release = tmp_path / "goemotions"
    shutil.copytree(DATA_DIR / "goemotions", release)
    (release / "train.tsv").write_text("Fine text\t27\tid1\nNo label ids here\tid2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"train\.tsv, line 2: expected 3 tab-separated fields"):
        load_goemotions(release, cache_dir=str(tmp_path / "cache"))


def test_byte_order_mark_and_windows_line_endings_are_read(tmp_path):
    """A spreadsheet export: UTF-8 with a byte order mark (which would otherwise glue itself to the first column
    name) and CRLF line endings."""
    path = tmp_path / "export.csv"
    path.write_bytes("\ufefftext,labels\r\nso happy today,joy\r\n\"sad, so sad\",sadness grief\r\n".encode())
    loaded = load_multilabel_dataset(path, cache_dir=str(tmp_path / "cache"))["train"]
    assert loaded["text"] == ["so happy today", "sad, so sad"]
    assert loaded["labels"] == [["joy"], ["sadness", "grief"]]


# --------------------------------------------------------------------------------------------------
# Texts: empty, whitespace only, far too long, shorter than a semantic unit

# Each has no word: null, empty, ASCII whitespace, and Unicode spaces (no-break, ideographic, line separator).
WORDLESS_TEXTS = [None, "", "   ", "\t\n\r\n", "\u00a0", "\u3000 \u3000", "\u2028"]


def test_empty_and_whitespace_only_texts_are_dropped_and_counted_in_every_split():
    texts = ["good news today", *WORDLESS_TEXTS, "so sad"]
    label_lists = [["joy"]] * len(texts)
    raw = DatasetDict({split: raw_dataset(texts, label_lists) for split in ("train", "validation", "test")})
    prepared, _, _, report = prepare_datasets(raw)
    for split in raw:
        counts = report.splits[split]
        assert (counts.num_examples, counts.num_kept, counts.empty_texts) == (9, 2, 7)
        assert prepared[split]["text"] == ["good news today", "so sad"]
    assert "kept 2/9; empty texts dropped 7" in str(report)


@pytest.mark.parametrize(
    "texts, max_words, message",
    [
        (["", "  "], 500, r"Split 'train' has no example left .* of its 2 examples, 2 have no word and 0 have more"),
        ([text_of(5), text_of(9)], 4, r"of its 2 examples, 0 have no word and 2 have more than 4 words"),
    ],
    ids=["all-empty", "all-overlong"],
)
def test_a_train_split_with_nothing_left_is_a_clear_error(texts, max_words, message):
    raw = DatasetDict({"train": raw_dataset(texts, [["joy"]] * len(texts))})
    with pytest.raises(ValueError, match=message):
        prepare_datasets(raw, max_words=max_words)


def test_texts_far_over_the_word_limit_are_dropped_or_truncated():
    long_text = text_of(100_000) + " zyzzyva"  # a word found only past the limit
    raw = DatasetDict(
        {
            "train": raw_dataset([text_of(6), long_text, text_of(3)], [["joy"], ["anger"], ["joy"]]),
            "test": raw_dataset([long_text], [["anger"]]),
        }
    )
    dropped, tokenizer, label_vocab, report = prepare_datasets(raw, max_words=500)
    assert [report.splits[split].overlong_texts for split in raw] == [1, 1]
    assert len(dropped["train"]) == 2 and len(dropped["test"]) == 0
    assert "zyzzyva" not in tokenizer.get_vocab() and "anger" not in label_vocab
    truncated, tokenizer, _, _ = prepare_datasets(raw, max_words=500, overlong="truncate")
    assert truncated["train"]["length"] == [6, 500, 3] and truncated["test"]["length"] == [500]
    assert "zyzzyva" not in tokenizer.get_vocab()


def test_predict_reads_a_text_far_over_the_limit_whole_or_cut_to_max_length(tmp_path):
    model, tokenizer = save_tiny_model_and_tokenizer(tmp_path)
    # 10 times the training limit. The BiLSTM reads a text word by word: a longer one only takes longer.
    long_text = text_of(5_000)
    whole = model.predict(long_text, tokenizer, num_beams=2)
    assert set(whole) <= set(model.config.id2label.values()) and len(whole) == len(set(whole))
    # Cut to its first 500 words, as if only those had been given.
    assert model.predict(long_text, tokenizer, max_length=500, num_beams=2) == model.predict(
        text_of(500), tokenizer, num_beams=2
    )


def test_texts_shorter_than_a_semantic_unit_run_through_the_whole_pipeline(tmp_path):
    """1 to 12 words, fewer than the 13 one semantic unit covers: trained on, evaluated, predicted, each text read
    as one semantic unit."""
    labels = ["joy", "sadness", "anger"]
    for split, copies in (("train", 3), ("validation", 1), ("test", 1)):
        lines = [
            {"text": text_of(num_words), "labels": [labels[(num_words + copy) % 3]]}
            for num_words in range(1, 13)
            for copy in range(copies)
        ]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    output_dir = tmp_path / "out"
    results = run_mlc.main(
        ["--dataset_dir", str(tmp_path), "--output_dir", str(output_dir), "--do_train", "--do_eval", "--do_predict",
         "--max_steps", "3", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
         *TINY_MODEL_ARGS]
    )  # fmt: skip
    assert 0.0 <= results["eval"]["eval_micro_f1"] <= 1.0 and 0.0 <= results["predict"]["predict_micro_f1"] <= 1.0
    predictions = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    assert [len(record["text"].split()) for record in predictions] == list(range(1, 13))
    assert all(set(record["labels"]) <= set(labels) for record in predictions)

    model = SU4MLCForMultiLabelClassification.from_pretrained(output_dir)
    tokenizer = SU4MLCTokenizer.from_pretrained(output_dir)
    batch = tokenizer([record["text"] for record in predictions], padding=True, return_tensors="pt")
    assert batch["attention_mask"].sum(dim=1).tolist() == list(range(1, 13))
    encoded = model.get_encoder()(**batch)
    assert encoded.semantic_unit_mask.sum(dim=1).tolist() == [1] * 12


# --------------------------------------------------------------------------------------------------
# Labels: duplicates, empty sets, unknown labels, too many labels


def test_duplicate_blank_and_empty_labels_from_a_file(tmp_path):
    raw = load_multilabel_dataset(BAD_DIR / "duplicate_and_empty_labels.jsonl", cache_dir=str(tmp_path / "cache"))
    prepared, _, label_vocab, report = prepare_datasets(raw)
    assert report.splits["train"].empty_label_sets == 1  # kept: the target is EOS alone
    assert sorted(label_vocab.labels) == ["anger", "annoyance", "neutral"]
    targets = [label_vocab.decode(target) for target in prepared["train"]["labels"]]
    # Each label once; blank labels are no labels.
    assert [sorted(labels) for labels in targets] == [["anger", "annoyance"], [], ["neutral"], ["neutral"]]


def test_unknown_labels_of_validation_and_test_are_counted_reported_and_dropped():
    raw = DatasetDict(
        {
            "train": raw_dataset(["so happy", "so angry"], [["joy"], ["anger"]]),
            "validation": raw_dataset(["so new"], [["joy", "surprise"]]),
            # A label spelled like a special token is just an unknown label, never mapped to that token.
            "test": raw_dataset(["yay", "ugh", "hm"], [["Joy"], ["</s>", "anger"], ["<pad>"]]),
        }
    )
    prepared, _, label_vocab, report = prepare_datasets(raw)
    assert (report.splits["validation"].unknown_labels, report.splits["validation"].unknown_label_names) == (
        1,
        ["surprise"],
    )
    assert report.splits["test"].unknown_labels == 3 and report.splits["test"].examples_with_unknown_labels == 3
    assert set(report.splits["test"].unknown_label_names) == {"Joy", "</s>", "<pad>"}
    assert "unknown labels 3 in 3 examples" in str(report)
    eos = label_vocab.eos_id
    assert prepared["validation"]["labels"] == [[label_vocab.token_id("joy"), eos]]
    assert prepared["test"]["labels"] == [[eos], [label_vocab.token_id("anger"), eos], [eos]]


def test_training_labels_that_clash_with_special_tokens_or_are_missing_are_errors():
    with pytest.raises(ValueError, match=r"Labels \['</s>'\] clash with the special label tokens"):
        prepare_datasets(DatasetDict({"train": raw_dataset(["good news"], [["</s>"]])}))
    with pytest.raises(ValueError, match="Split 'train' has no label at all .* label delimiter"):
        prepare_datasets(DatasetDict({"train": raw_dataset(["good news", "bad news"], [[], []])}))


def test_a_label_vocabulary_over_the_maximum_is_rejected(tmp_path):
    raw = DatasetDict({"train": raw_dataset(["a b", "c d"], [["joy", "anger"], ["awe"]])})
    with pytest.raises(ValueError, match="3 distinct labels, more than the configured maximum of 2"):
        prepare_datasets(raw, max_label_vocab=2)
    assert len(prepare_datasets(raw, max_label_vocab=3)[2]) == 3
    # run_mlc.py: GoEmotions has 28 labels, its 400-example sample 27.
    with pytest.raises(ValueError, match="27 distinct labels, more than the configured maximum of 10"):
        run_mlc.main(
            ["--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions", "--do_train",
             "--output_dir", str(tmp_path / "out"), "--max_label_vocab", "10", *TINY_MODEL_ARGS]
        )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Configs and tokenizers that do not fit the weights


@pytest.mark.parametrize(
    "edit, error, message",
    [
        ({"attention": "global"}, ValueError, r"SU4MLCConfig\.attention='global' is not one of"),
        ({"hidden_size": 15}, ValueError, "hidden_size=15 must be even"),
        ({"mdc_dilation_rates": []}, ValueError, "mdc_dilation_rates must list 1 to 16 integers"),
        ({"dropout": -0.1}, ValueError, r"dropout must be a number in \[0, 1\)"),
        # Consistent on its own, inconsistent with the weights: an error, never randomly initialised weights.
        ({"hidden_size": 32}, RuntimeError, "ignore_mismatched_sizes"),
        # The special label token ids follow id2label: a shorter id2label contradicts them before the weights load.
        ({"id2label": {"0": "joy", "1": "anger"}, "label2id": {"joy": 0, "anger": 1}}, ValueError,
         r"pad_token_id=\d+, but with 2 labels first the label token ids fix it to 2"),
    ],
    ids=["unknown-attention", "odd-hidden-size", "no-dilation", "negative-dropout", "bigger-than-weights",
         "fewer-labels-than-weights"],  # fmt: skip
)
def test_a_saved_config_that_is_invalid_or_does_not_fit_the_weights(tmp_path, edit, error, message):
    save_tiny_model_and_tokenizer(tmp_path)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **edit}), encoding="utf-8")
    with pytest.raises(error, match=message):
        AutoModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda config_file: config_file.write_text("{not json"), OSError, r"config\.json' is not a valid JSON file"),
        (lambda config_file: config_file.unlink(), ValueError, "Unrecognized model in .*`model_type` .*config.json"),
    ],
    ids=["not-json", "missing"],
)
def test_an_unreadable_or_missing_config_file(tmp_path, damage, error, message):
    save_tiny_model_and_tokenizer(tmp_path)
    damage(tmp_path / "config.json")
    with pytest.raises(error, match=message):
        AutoModel.from_pretrained(tmp_path)


def test_predict_with_a_tokenizer_bigger_than_the_model_vocabulary_is_a_clear_error():
    model = tiny_model()  # embeds 60 words
    two_letter_words = ["".join(pair) for pair in itertools.product("abcdefghij", repeat=2)]
    tokenizer = SU4MLCTokenizer.train_from_texts([" ".join(two_letter_words)])
    with pytest.raises(ValueError, match="The tokenizer has 102 words but the model embeds 60"):
        model.predict("jj ji", tokenizer)


# --------------------------------------------------------------------------------------------------
# Checkpoint folders with missing or truncated weights


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.5, 0.001, 0.0], ids=["half", "inside-the-header", "empty"])
def test_truncated_weights_raise_an_error_naming_the_file(tmp_path, keep):
    save_tiny_model_and_tokenizer(tmp_path)
    truncate(tmp_path / "model.safetensors", keep)
    weights_file = re.escape(str(tmp_path / "model.safetensors"))
    with pytest.raises(OSError, match=rf"Cannot read the weights in {weights_file}: .* truncated"):
        AutoModel.from_pretrained(tmp_path)


def test_missing_weights_raise_an_error_naming_the_file_and_folder(tmp_path):
    save_tiny_model_and_tokenizer(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    folder = re.escape(str(tmp_path))
    with pytest.raises(OSError, match=rf"no file named model\.safetensors found in directory {folder}"):
        SU4MLCForMultiLabelClassification.from_pretrained(tmp_path)


def test_resuming_from_a_checkpoint_with_missing_or_truncated_weights(tmp_path):
    model = tiny_model()
    tokenizer = SU4MLCTokenizer.train_from_texts(goemotions_train_texts(), vocab_size=model.config.source_vocab_size)
    texts = goemotions_train_texts()[:16]
    raw = DatasetDict({"train": raw_dataset(texts, [[f"label_{index % 8}"] for index in range(16)])})
    prepared, *_ = prepare_datasets(
        raw, tokenizer=tokenizer, label_vocab=LabelVocabulary.from_id2label(model.config.id2label)
    )

    def trainer() -> SU4MLCTrainer:
        arguments = SU4MLCTrainingArguments(
            output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=2, save_strategy="steps",
            save_steps=1, eval_strategy="no", load_best_model_at_end=False, disable_tqdm=True,
        )  # fmt: skip
        return SU4MLCTrainer(
            model=model, args=arguments, train_dataset=prepared["train"], data_collator=SU4MLCDataCollator()
        )

    trainer().train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    truncate(checkpoint / "model.safetensors", 0.5)
    weights_file = re.escape(str(checkpoint / "model.safetensors"))
    with pytest.raises(OSError, match=rf"Cannot read the weights in {weights_file}"):
        trainer().train(resume_from_checkpoint=str(checkpoint))
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=rf"Can't find a valid checkpoint at {re.escape(str(checkpoint))}"):
        trainer().train(resume_from_checkpoint=str(checkpoint))
