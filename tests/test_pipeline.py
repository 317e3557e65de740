"""The `su4mlc-multi-label-classification` pipeline, loaded by `transformers.pipeline` from a saved folder."""

from __future__ import annotations

import pytest
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from su4mlc_hf import SU4MLC_PIPELINE_TASK, SU4MLCMultiLabelPipeline

from .conftest import save_tiny_model_and_tokenizer

TEXTS = [
    "Thank you so much, this made my day!",
    "I can't believe they did that again, so annoying.",
    "ok",
    "What a wonderful, surprising and slightly scary story about 3 dogs and 1,000 cats in the city.",
]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("su4mlc_model")
    model, tokenizer = save_tiny_model_and_tokenizer(folder, seed=1)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def classifier(saved_model):
    folder, _, _ = saved_model
    return pipeline(SU4MLC_PIPELINE_TASK, model=str(folder), device="cpu")


def as_label_score_pairs(outputs) -> list[list[tuple[str, float]]]:
    """Pipeline outputs in the format of `predict(..., return_scores=True)`."""
    return [[(entry["label"], entry["score"]) for entry in scored_labels] for scored_labels in outputs]


def assert_same_predictions(actual, expected):
    labels = [[label for label, _ in scored] for scored in actual]
    assert labels == [[label for label, _ in scored] for scored in expected]
    actual_scores = [score for scored in actual for _, score in scored]
    assert actual_scores == pytest.approx([score for scored in expected for _, score in scored], abs=1e-6)


def assert_valid_label_sets(outputs, config):
    for scored_labels in outputs:
        labels = [entry["label"] for entry in scored_labels]
        assert set(labels) <= set(config.id2label.values())
        assert len(labels) == len(set(labels)) <= config.max_labels
        assert all(isinstance(entry["score"], float) and 0.0 < entry["score"] <= 1.0 for entry in scored_labels)


def test_task_is_registered_on_import():
    assert SU4MLC_PIPELINE_TASK in PIPELINE_REGISTRY.get_supported_tasks()


def test_pipeline_loads_a_saved_folder_and_labels_texts(saved_model, classifier):
    _, model, _ = saved_model
    assert isinstance(classifier, SU4MLCMultiLabelPipeline)
    outputs = classifier(TEXTS)
    assert len(outputs) == len(TEXTS)
    assert_valid_label_sets(outputs, model.config)
    # An untrained model still generates labels: the checks above saw some.
    assert any(outputs)


def test_single_text_gives_one_label_list(classifier):
    output = classifier(TEXTS[0])
    assert isinstance(output, list) and all(set(entry) == {"label", "score"} for entry in output)
    assert output == classifier(TEXTS[:1])[0]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_pipeline_equals_predict_batched_or_not(saved_model, classifier, num_beams):
    _, model, tokenizer = saved_model
    expected = model.predict(TEXTS, tokenizer, return_scores=True, num_beams=num_beams)
    for batch_size in (1, 3):
        outputs = classifier(TEXTS, batch_size=batch_size, num_beams=num_beams)
        assert_same_predictions(as_label_score_pairs(outputs), expected)


def test_max_length_truncates_words_and_is_not_a_generation_length(saved_model):
    """`max_length` given at creation truncates each text to that many words, as `predict(max_length=...)` does; it
    does not go to `generate()` (where it would count label tokens and leave the texts whole)."""
    folder, model, tokenizer = saved_model
    classifier = pipeline(SU4MLC_PIPELINE_TASK, model=str(folder), device="cpu", max_length=3, num_beams=1)
    expected = model.predict(TEXTS, tokenizer, return_scores=True, max_length=3, num_beams=1)
    # Truncation changes the labels of these texts, so whole texts would not pass.
    assert expected != model.predict(TEXTS, tokenizer, return_scores=True, num_beams=1)
    assert_same_predictions(as_label_score_pairs(classifier(TEXTS)), expected)


def test_empty_list_gives_empty_list(classifier):
    assert classifier([]) == []
