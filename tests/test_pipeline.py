"""The `su4mlc-multi-label-classification` pipeline, loaded by `transformers.pipeline` from a saved folder."""

from __future__ import annotations

import json

import pytest
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from su4mlc_hf import SU4MLC_PIPELINE_TASK, SU4MLCMultiLabelPipeline

from .conftest import run_without_package, save_tiny_model_and_tokenizer

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


# --------------------------------------------------------------------------------------------------
# The pipeline travels with the model; text-classification arguments


def test_saved_folder_carries_the_pipeline(saved_model):
    folder, _, _ = saved_model
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"] == {
        "text-classification": {"impl": "pipeline_su4mlc.SU4MLCMultiLabelPipeline", "pt": ["AutoModelForSeq2SeqLM"],
                               "type": "text"}
    }  # fmt: skip
    assert (folder / "pipeline_su4mlc.py").is_file()


def test_pipeline_without_task_in_a_process_without_the_package(saved_model, tmp_path):
    """`pipeline(model=folder, trust_remote_code=True)`: the task and its code come from the folder, offline, where
    su4mlc_hf cannot be imported; the outputs are those of the installed pipeline."""
    folder, model, tokenizer = saved_model
    script = (
        "import json, sys\n"
        "from transformers import pipeline\n"
        "classifier = pipeline(model=sys.argv[1], trust_remote_code=True, device='cpu')\n"
        "print(json.dumps({'class': type(classifier).__name__, 'outputs': classifier(json.loads(sys.argv[2]), "
        "num_beams=2), 'top': classifier(json.loads(sys.argv[2])[0], num_beams=2, top_k=1)}))\n"
    )
    result = run_without_package(script, str(folder), json.dumps(TEXTS), folder=tmp_path)
    assert result.returncode == 0, result.stderr
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    assert reported["class"] == "SU4MLCMultiLabelPipeline"
    expected = model.predict(TEXTS, tokenizer, return_scores=True, num_beams=2)
    assert_same_predictions(as_label_score_pairs(reported["outputs"]), expected)
    ranked = model.predict(TEXTS[0], tokenizer, all_labels=True, num_beams=2)
    assert [entry["label"] for entry in reported["top"]] == [ranked[0][0]]


def test_pipeline_without_task_or_trust_asks_for_trust_remote_code(saved_model):
    """transformers runs a folder's custom pipeline only with `trust_remote_code=True`; the SU4MLC task name, where
    su4mlc_hf is imported, needs none (the `classifier` fixture)."""
    folder, _, _ = saved_model
    for task in (None, "text-classification"):
        with pytest.raises(ValueError, match="set the option `trust_remote_code=True`"):
            pipeline(task, model=str(folder))


def test_text_classification_task_runs_the_su4mlc_pipeline(saved_model, classifier):
    folder, _, _ = saved_model
    text_classifier = pipeline("text-classification", model=str(folder), trust_remote_code=True, device="cpu")
    assert type(text_classifier).__name__ == "SU4MLCMultiLabelPipeline"
    assert text_classifier(TEXTS, num_beams=2) == classifier(TEXTS, num_beams=2)


def test_top_k_keeps_the_highest_scores_of_all_labels(saved_model, classifier):
    _, model, tokenizer = saved_model
    ranked = model.predict(TEXTS, tokenizer, all_labels=True, num_beams=2)
    top = classifier(TEXTS, num_beams=2, top_k=2)
    assert_same_predictions(as_label_score_pairs(top), [row[:2] for row in ranked])


def test_threshold_keeps_every_label_scoring_at_least_it(saved_model, classifier):
    _, model, tokenizer = saved_model
    ranked = model.predict(TEXTS, tokenizer, all_labels=True, num_beams=2)
    scores = sorted({score for row in ranked for _, score in row})
    threshold = scores[len(scores) // 2]
    kept = classifier(TEXTS, num_beams=2, threshold=threshold)
    expected = [[pair for pair in row if pair[1] >= threshold] for row in ranked]
    assert_same_predictions(as_label_score_pairs(kept), expected)
    assert 0 < sum(map(len, kept)) < sum(map(len, ranked))
    both = classifier(TEXTS, num_beams=2, threshold=threshold, top_k=1)
    assert all(len(row) <= 1 for row in both) and [row[:1] for row in kept] == both


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"top_k": 0}, "top_k must be a positive integer, got 0"),
        ({"top_k": 1.5}, "top_k must be a positive integer, got 1.5"),
        ({"threshold": -0.1}, r"threshold must be a number in \[0, 1\], got -0.1"),
        ({"threshold": 2}, r"threshold must be a number in \[0, 1\], got 2"),
        ({"threshold": "high"}, "threshold must be a number"),
        ({"max_length": 0}, "max_length must be a positive integer, got 0"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ],
)
def test_pipeline_rejects_bad_arguments_naming_them(classifier, arguments, message):
    with pytest.raises(ValueError, match=message):
        classifier(TEXTS, **arguments)
