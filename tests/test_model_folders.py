"""Model folders that would load wrong fail instead, naming the file (issue 14, class 3), and `predict` takes edge
values (class 4): tensors missing or unexpected, configs out of bounds, unreadable generation and tokenizer files."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer

from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification, SU4MLCTokenizer

from .conftest import tiny_model

TEXTS = ["the markets fell sharply", "oil prices rose", "grain exports grew again"]


def save_tiny_folder(folder, **overrides):
    tokenizer = SU4MLCTokenizer.train_from_texts(TEXTS)
    model = tiny_model(seed=1, source_vocab_size=len(tokenizer), **overrides)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}), encoding="utf-8")


def test_a_tensor_missing_from_the_weights_is_an_error_naming_file_and_tensor(tmp_path):
    save_tiny_folder(tmp_path)
    weights_file = tmp_path / "model.safetensors"
    tensors = load_file(weights_file)
    del tensors["decoder.output_layer.bias"]
    save_file(tensors, weights_file, metadata={"format": "pt"})
    with pytest.raises(OSError, match=r"model\.safetensors do not match .*missing \['decoder\.output_layer\.bias'\]"):
        AutoModel.from_pretrained(tmp_path)
    # The opt-out loads it, with that tensor initialised (transformers' behaviour).
    model = AutoModel.from_pretrained(tmp_path, allow_missing_and_unexpected_weights=True)
    assert model.decoder.output_layer.bias.shape == (model.config.vocab_size,)


def test_a_config_with_fewer_dilation_rates_than_the_weights_is_an_error(tmp_path):
    save_tiny_folder(tmp_path)
    edit_json(tmp_path / "config.json", mdc_dilation_rates=[1, 2])
    with pytest.raises(OSError, match=r"unexpected \['encoder\.mdc\.convolutions\.2\.bias', .*mdc_dilation_rates"):
        SU4MLCForMultiLabelClassification.from_pretrained(tmp_path)


def test_loading_info_is_still_returned_on_request(tmp_path):
    save_tiny_folder(tmp_path)
    model, loading_info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(model, SU4MLCForMultiLabelClassification) and not loading_info["missing_keys"]


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda path: path.write_text('{"num_beams": 5, "no_rep'), OSError, "Cannot read the generation config"),
        (lambda path: edit_json(path, num_beams=0), ValueError, r"num_beams must be an integer in \[1, 1024\], got 0"),
        (lambda path: edit_json(path, max_length=10**9), ValueError, "max_length .* got 1000000000"),
        (lambda path: edit_json(path, eos_token_id=2), ValueError, "eos_token_id=2 is not the model's 10"),
    ],
    ids=["truncated", "zero-beams", "huge-max-length", "foreign-eos"],
)
def test_a_bad_generation_config_is_an_error_naming_the_file(tmp_path, damage, error, message):
    """transformers replaces an unreadable generation_config.json by defaults (greedy, repeated labels allowed) and
    divides by num_beams=0 at generation time."""
    save_tiny_folder(tmp_path)
    damage(tmp_path / "generation_config.json")
    with pytest.raises(error, match=message) as raised:
        AutoModel.from_pretrained(tmp_path)
    assert "generation_config.json" in str(raised.value)


def test_a_folder_without_generation_config_decodes_with_the_model_defaults(tmp_path):
    save_tiny_folder(tmp_path)
    (tmp_path / "generation_config.json").unlink()
    model = AutoModel.from_pretrained(tmp_path)
    assert model.generation_config.num_beams == 5 and model.generation_config.no_repeat_ngram_size == 1


def test_a_truncated_tokenizer_json_is_an_error_naming_it(tmp_path):
    save_tiny_folder(tmp_path)
    path = tmp_path / "tokenizer.json"
    path.write_text(path.read_text()[:300], encoding="utf-8")
    with pytest.raises(OSError, match=r"Cannot read the tokenizer in .*tokenizer\.json.*truncated or corrupt"):
        AutoTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_size": 2**40}, r"hidden_size must be an integer in \[1, 16,384\]"),
        ({"encoder_layers": 10**6}, r"encoder_layers must be an integer in \[1, 32\]"),
        ({"source_vocab_size": 10**9}, r"source_vocab_size must be an integer in \[1, 5,000,000\]"),
        ({"max_labels": 10**6}, r"max_labels must be an integer in \[1, 4,096\]"),
        ({"embedding_size": "512"}, "embedding_size must be an integer"),
        ({"mdc_dilation_rates": [1, 10**8]}, r"mdc_dilation_rates must list 1 to 16 integers in \[1, 1024\]"),
        ({"mdc_dilation_rates": ["x"]}, "mdc_dilation_rates must list"),
        ({"mdc_dilation_rates": [1024] * 5}, "semantic units need texts of 10241 words"),
        ({"mdc_padding": -1}, r"mdc_padding must be an integer in \[0, 1,024\]"),
        ({"dropout": "0.1"}, r"dropout must be a number in \[0, 1\)"),
        ({"initializer_range": 0}, r"initializer_range must be a number in \(0, 10\]"),
        ({"source_vocab_size": 4_000_000, "embedding_size": 16_384}, "parameters, more than the 2,147,483,648"),
        ({"label_token_layout": "sideways"}, "label_token_layout='sideways' is not one of"),
        ({"label_score_head_weight": 1.5}, r"label_score_head_weight must be a number in \[0, 1\]"),
        ({"label_head_ngram_features": "x"}, "label_head_ngram_features must be an integer"),
        ({"label_head_ngram_features": -1}, r"label_head_ngram_features must be an integer in \[0, 16,777,216\]"),
        ({"label_score_ngram_weight": -0.5}, r"label_score_ngram_weight must be a number in \[0, 1\]"),
        ({"ngram_classifier_bigrams": "many"}, "ngram_classifier_bigrams must be an integer"),
        ({"ngram_classifier_bigrams": 0, "ngram_classifier_char_ngrams": -3}, "ngram_classifier_char_ngrams must be an"),
        ({"ngram_classifier_bigrams": 0, "ngram_classifier_char_entries": 2**40}, "ngram_classifier_char_entries must"),
    ],
)
def test_config_fields_are_bounded(overrides, message):
    """Each would ask for tens of GB, hang, or fail deep in torch. Five rates of 1024 pass the rate bound, but every
    text would be zero-extended to 10241 words: the receptive field has its own bound."""
    with pytest.raises(ValueError, match=message):
        SU4MLCConfig(id2label={0: "a"}, **overrides)


def test_config_bounds_apply_when_a_folder_is_loaded(tmp_path):
    save_tiny_folder(tmp_path)
    edit_json(tmp_path / "config.json", mdc_dilation_rates=[1, 2, 10**8])
    with pytest.raises(ValueError, match=r"SU4MLCConfig\.mdc_dilation_rates must list"):
        AutoModel.from_pretrained(tmp_path)


# --------------------------------------------------------------------------------------------------
# predict with edge values


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    model, tokenizer = save_tiny_folder(tmp_path_factory.mktemp("model"))
    return model, tokenizer


def test_predict_of_no_texts_is_an_empty_list(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert model.predict([], tokenizer) == []
    assert model.predict((), tokenizer, return_scores=True) == []


def test_predict_of_an_empty_text_has_the_shape_of_any_text(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    empty, word = model.predict("", tokenizer, num_beams=1), model.predict("x", tokenizer, num_beams=1)
    assert isinstance(empty, list) and isinstance(word, list)
    assert all(isinstance(label, str) and label in model.config.label2id for label in empty + word)
    # The same as the empty text inside a batch.
    assert model.predict(["", "oil prices rose"], tokenizer, num_beams=1)[0] == empty


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": -1}, "batch_size must be a positive integer, got -1"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
        ({"batch_size": True}, "batch_size must be a positive integer, got True"),
        ({"max_length": 0}, "max_length must be a positive integer, got 0"),
        ({"max_length": -3}, "max_length must be a positive integer, got -3"),
    ],
)
def test_predict_rejects_bad_arguments_naming_them(model_and_tokenizer, arguments, message):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match=message):
        model.predict(["oil prices rose", "rates"], tokenizer, **arguments)


def test_predict_rejects_texts_that_are_not_strings(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="texts must be strings; text 1 is a int"):
        model.predict(["oil", 3], tokenizer)
