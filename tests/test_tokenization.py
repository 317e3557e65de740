"""Tests of the SU4MLC word tokenizer (su4mlc_hf/tokenization_su4mlc.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedConfig
from transformers.tokenization_utils_tokenizers import TokenizersBackend

from su4mlc_hf.tokenization_su4mlc import PAD_TOKEN_ID, UNK_TOKEN_ID, SU4MLCTokenizer

GOEMOTIONS_SAMPLE = Path(__file__).parent / "data" / "goemotions"
TEXTS = ["Prices rose 5.93 pct in 1987.", "Prices fell by 1,000 tonnes!", "Prices are up."]


def read_goemotions_texts(file_name: str) -> list[str]:
    with open(GOEMOTIONS_SAMPLE / file_name, encoding="utf-8") as file:
        return [line.split("\t")[0] for line in file]


@pytest.fixture(scope="module")
def tokenizer() -> SU4MLCTokenizer:
    return SU4MLCTokenizer.train_from_texts(TEXTS)


def words(tokenizer: SU4MLCTokenizer, text: str) -> list[str]:
    """The words the tokenizer cuts `text` into, before the vocabulary look-up (so no `<unk>`)."""
    backend = tokenizer.backend_tokenizer
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))]


def test_numbers_become_one_number_token(tokenizer):
    assert words(tokenizer, "5.93 1,000 1987 1,000.50") == ["#", "#", "#", "#"]
    # A sentence-final full stop is not part of the number.
    assert words(tokenizer, "in 1987.") == ["in", "#", "."]
    # Digits inside a word are a number too, split off as its own token (documented choice).
    assert tokenizer.backend_tokenizer.normalizer.normalize_str("covid19 3rd") == "covid# #rd"
    assert words(tokenizer, "covid19 3rd") == ["covid", "#", "#", "rd"]
    assert tokenizer("1987 5.93")["input_ids"] == [tokenizer.convert_tokens_to_ids("#")] * 2


def test_lower_cases_and_splits_punctuation_but_keeps_inner_apostrophes(tokenizer):
    assert words(tokenizer, "Hello, World! Don't 'quote' [NAME]") == [
        "hello",
        ",",
        "world",
        "!",
        "don't",
        "'",
        "quote",
        "'",
        "[",
        "name",
        "]",
    ]


def test_special_token_ids_and_unknown_words(tokenizer):
    assert tokenizer.pad_token_id == PAD_TOKEN_ID == 0
    assert tokenizer.unk_token_id == UNK_TOKEN_ID == 1
    assert tokenizer.bos_token_id is None and tokenizer.eos_token_id is None
    encoded = tokenizer("Prices soared")["input_ids"]
    # No BOS/EOS around the text: one id per word.
    assert encoded == [tokenizer.convert_tokens_to_ids("prices"), UNK_TOKEN_ID]
    # A literal special token in a text is read as words, so the pad id never occurs inside a text.
    assert PAD_TOKEN_ID not in tokenizer("<pad> <unk>")["input_ids"]
    assert tokenizer.model_input_names == ["input_ids", "attention_mask"]
    assert tokenizer.padding_side == "right"


def test_vocabulary_is_capped_to_the_most_frequent_words_with_deterministic_ties():
    texts = ["b b a a c c d d d e", "z z z"]
    capped = SU4MLCTokenizer.train_from_texts(texts, vocab_size=6)
    # d and z (3 times) first, then the ties a, b (twice) by word; c (also twice) and e fall out.
    assert [capped.convert_ids_to_tokens(i) for i in range(len(capped))] == ["<pad>", "<unk>", "d", "z", "a", "b"]
    assert capped("c e")["input_ids"] == [UNK_TOKEN_ID, UNK_TOKEN_ID]
    # The order of the texts does not matter.
    assert SU4MLCTokenizer.train_from_texts(texts[::-1], vocab_size=6).get_vocab() == capped.get_vocab()
    assert "e" not in SU4MLCTokenizer.train_from_texts(texts, min_frequency=2).get_vocab()


def test_trains_from_a_datasets_column_or_batches_without_a_list():
    dataset = datasets.Dataset.from_dict({"text": TEXTS})
    from_column = SU4MLCTokenizer.train_from_texts(dataset["text"])
    from_batches = SU4MLCTokenizer.train_from_texts(batch["text"] for batch in dataset.iter(batch_size=2))
    assert from_column.get_vocab() == from_batches.get_vocab() == SU4MLCTokenizer.train_from_texts(TEXTS).get_vocab()
    with pytest.raises(TypeError, match="not a single string"):
        SU4MLCTokenizer.train_from_texts("a text")


def test_rejects_a_vocabulary_with_misplaced_special_tokens():
    with pytest.raises(ValueError, match="must map '<pad>' to 0"):
        SU4MLCTokenizer(vocab={"<unk>": 0, "<pad>": 1, "word": 2})
    with pytest.raises(ValueError, match="must be 0, 1, ..., len"):
        SU4MLCTokenizer(vocab={"<pad>": 0, "<unk>": 1, "word": 5})


def test_batch_encoding_pads_right_with_zero_and_truncates(tokenizer):
    batch = tokenizer(
        ["Prices rose 5.93 pct in 1987.", "Prices fell"],
        padding=True,
        truncation=True,
        max_length=4,
        return_tensors="pt",
    )
    assert batch["input_ids"].shape == (2, 4)
    assert batch["input_ids"][1, 2:].tolist() == [PAD_TOKEN_ID, PAD_TOKEN_ID]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["input_ids"].dtype == torch.long
    padded = tokenizer.pad({"input_ids": [[5, 6, 7], [5]]}, return_tensors="pt")
    assert padded["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]


def test_save_and_load_with_auto_tokenizer_gives_the_same_ids(tokenizer, tmp_path):
    # The registration `su4mlc_hf/__init__.py` does, with a throwaway config class.
    class ThrowawayConfig(PreTrainedConfig):
        model_type = "su4mlc-tokenizer-test"

    AutoConfig.register(ThrowawayConfig.model_type, ThrowawayConfig, exist_ok=True)
    AutoTokenizer.register(ThrowawayConfig, tokenizer_class=SU4MLCTokenizer, exist_ok=True)
    tokenizer.save_pretrained(tmp_path)
    ThrowawayConfig().save_pretrained(tmp_path)

    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "SU4MLCTokenizer"
    assert "vocab" not in config  # the vocabulary lives in tokenizer.json only

    for loaded in (AutoTokenizer.from_pretrained(tmp_path), SU4MLCTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is SU4MLCTokenizer
        assert loaded.get_vocab() == tokenizer.get_vocab()
        assert (
            loaded(TEXTS + ["unseen words, <pad> 42"])["input_ids"]
            == tokenizer(TEXTS + ["unseen words, <pad> 42"])["input_ids"]
        )
        assert (loaded.pad_token_id, loaded.unk_token_id) == (PAD_TOKEN_ID, UNK_TOKEN_ID)


def test_loads_without_this_package_as_the_generic_fast_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    text = "Prices ROSE by 1,000 tonnes; <pad> covid19!"
    script = (
        # Make `su4mlc_hf` unimportable (it may be installed in the environment) before transformers looks for it.
        "import json, sys\n"
        "sys.modules['su4mlc_hf'] = None\n"
        "from transformers import AutoTokenizer\n"
        "loaded = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "print(json.dumps([type(loaded).__name__, loaded(sys.argv[2])['input_ids'], loaded.pad_token_id]))\n"
    )
    # A clean environment: no PYTHONPATH, and run outside the repository.
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), text],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    class_name, input_ids, pad_token_id = json.loads(result.stdout.strip().splitlines()[-1])
    assert class_name == TokenizersBackend.__name__
    assert input_ids == tokenizer(text)["input_ids"]
    assert pad_token_id == PAD_TOKEN_ID


def test_trained_on_the_goemotions_sample():
    train_texts = read_goemotions_texts("train.tsv")
    tokenizer = SU4MLCTokenizer.train_from_texts(train_texts, vocab_size=500)
    assert len(tokenizer) == 500
    assert tokenizer.tokenize("[NAME] is great") == ["[", "name", "]", "is", "great"]
    for frequent in ("[", "name", "]", ".", "the", "i"):
        assert tokenizer.convert_tokens_to_ids(frequent) > UNK_TOKEN_ID
    dev = tokenizer(read_goemotions_texts("dev.tsv"))["input_ids"]
    assert all(len(ids) > 0 and max(ids) < 500 for ids in dev)
    unknown_share = sum(ids.count(UNK_TOKEN_ID) for ids in dev) / sum(len(ids) for ids in dev)
    assert 0.0 < unknown_share < 0.5
