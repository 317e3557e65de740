"""Model cards: the rendered text, the `model-index` metadata read back from disk, and the atomic write."""

from __future__ import annotations

import os

import pytest
from huggingface_hub import ModelCard

from su4mlc_hf import build_model_card, save_model_card
from su4mlc_hf.metrics import METRIC_NAMES
from su4mlc_hf.model_card import AUTHORS_CODE_SETTINGS, METRIC_DISPLAY_NAMES, TASK_NAME, TASK_TYPE

from .conftest import ATTENTION_TYPES, AUTHORS_CODE_SWITCHES, tiny_model

# What `Trainer.predict(metric_key_prefix="test")` returns: every score, plus entries that are not scores.
TEST_METRICS = {f"test_{name}": 0.1 + index / 20 for index, name in enumerate(METRIC_NAMES)}
TRAINER_METRICS = {**TEST_METRICS, "test_loss": 1.25, "test_runtime": 3.2, "test_samples_per_second": 31.0}


def goemotions_card(model, **overrides) -> ModelCard:
    arguments = dict(
        dataset_name="GoEmotions",
        dataset_description="58k Reddit comments labelled with 27 emotions or neutral.",
        dataset_id="google-research-datasets/go_emotions",
        eval_results=TRAINER_METRICS,
        eval_split="test",
        training_hyperparameters={"learning_rate": 0.0003, "per_device_train_batch_size": 64, "num_train_epochs": 2},
        label_counts={"label_0": 120, "label_1": 45},
        repo_id="user/su4mlc-goemotions",
    )
    arguments.update(overrides)
    return build_model_card(model, **arguments)


def test_card_metadata_parses_back_with_the_model_index(tmp_path):
    card_path = save_model_card(goemotions_card(tiny_model()), tmp_path)
    data = ModelCard.load(card_path).data

    assert data.library_name == "transformers"
    assert data.pipeline_tag == "text-classification"
    assert data.tags == ["su4mlc", "multi-label-classification", "seq2seq"]
    assert data.license == "apache-2.0"
    assert data.datasets == ["google-research-datasets/go_emotions"]
    assert data.model_name == "su4mlc-goemotions"
    # Every score, under its bare name, and nothing that is not a score (loss, runtime).
    assert {result.metric_type: result.metric_value for result in data.eval_results} == {
        name: TEST_METRICS[f"test_{name}"] for name in METRIC_NAMES
    }
    for result in data.eval_results:
        assert (result.task_type, result.task_name) == (TASK_TYPE, TASK_NAME)
        assert (result.dataset_type, result.dataset_name) == ("google-research-datasets/go_emotions", "GoEmotions")
        assert result.dataset_split == "test"
        assert result.metric_name == METRIC_DISPLAY_NAMES[result.metric_type]


def test_card_text_describes_the_model():
    model = tiny_model()
    text = goemotions_card(model).text

    assert "@inproceedings{lin-etal-2018-semantic" in text and "https://aclanthology.org/D18-1485" in text
    assert 'attention="hybrid"' in text
    assert "dilation rates 1, 2, 3" in text
    assert f"{model.config.hidden_size}-dimensional word annotations" in text
    assert "Every architecture setting is the default" in text
    # Hyperparameters, scores, labels with their counts.
    assert "| learning_rate | 0.0003 |" in text
    assert f"| Micro F1 | {TEST_METRICS['test_micro_f1']:.4f} |" in text
    assert "| 0 | label_0 | 120 |" in text and "| 7 | label_7 | 0 |" in text
    # Both ways to load, with the remote-code caveat.
    assert "import su4mlc_hf" in text and 'AutoModel.from_pretrained("user/su4mlc-goemotions")' in text
    assert 'AutoModel.from_pretrained("user/su4mlc-goemotions", trust_remote_code=True)' in text
    assert "use it only for repositories you trust" in " ".join(text.split())
    for limitation in ("Closed label set", "English vocabulary", "Exposure bias", "Label order"):
        assert limitation in text


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_card_names_the_attention_variant(attention):
    text = build_model_card(tiny_model(attention=attention)).text
    assert f'attention="{attention}"' in text
    # Only the variants that attend semantic units have an MDC.
    assert ("dilation rates 1, 2, 3" in text) == (attention not in ("none", "word"))


def test_card_lists_the_authors_code_switches():
    assert AUTHORS_CODE_SETTINGS == AUTHORS_CODE_SWITCHES
    text = build_model_card(tiny_model(**AUTHORS_CODE_SWITCHES)).text
    assert "`direction_merge='sum'` (as in the authors' 2018 code; default: `'concat'`)" in text
    assert "`hybrid_output='residual'` (as in the authors' 2018 code; default: `'concat'`)" in text
    assert "s'_t + s̃_t" in text
    assert "Every architecture setting is the default" not in text


def test_minimal_card_has_no_model_index(tmp_path):
    card = build_model_card(tiny_model())
    data = ModelCard.load(save_model_card(card, tmp_path)).data
    assert data.eval_results is None and "model-index" not in data.to_dict()
    assert "## Evaluation" not in card.text and "## Training hyperparameters" not in card.text


def test_eval_prefixes_and_bare_names_are_read():
    eval_results = {"eval_micro_f1": 0.5, "predict_macro_f1": 0.25, "hamming_loss": 0.02}
    card = goemotions_card(tiny_model(), eval_results=eval_results, eval_split="dev")
    assert {result.metric_type: result.metric_value for result in card.data.eval_results} == {
        "hamming_loss": 0.02,
        "micro_f1": 0.5,
        "macro_f1": 0.25,
    }
    assert {result.dataset_split for result in card.data.eval_results} == {"dev"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"eval_results": {"test_micro_f1": 0.5, "eval_micro_f1": 0.4}}, "more than once"),
        ({"eval_results": {"test_loss": 0.5, "test_micro-f1": 0.4}}, "holds none of the scores"),
        ({"dataset_name": None}, "dataset_name"),
        ({"label_counts": {"no_such_label": 3}}, "no_such_label"),
    ],
)
def test_inconsistent_arguments_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        goemotions_card(tiny_model(), **overrides)


def test_table_cells_escape_pipes_and_newlines():
    model = tiny_model(id2label={0: "a|b", 1: "plain"})
    text = build_model_card(model, training_hyperparameters={"note": "two\nlines | here"}).text
    assert "| 0 | a\\|b |" in text
    assert "| note | two lines \\| here |" in text


def test_metric_display_names_cover_the_metrics():
    assert set(METRIC_DISPLAY_NAMES) == set(METRIC_NAMES)


def test_save_replaces_the_readme_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "README.md").write_text("old card", encoding="utf-8")
    card = goemotions_card(tiny_model())
    card_path = save_model_card(card, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["README.md"]
    assert card_path.read_text(encoding="utf-8") == str(card)
    assert card_path.stat().st_mode & 0o777 == 0o644


def test_failed_save_keeps_the_old_readme(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("old card", encoding="utf-8")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_model_card(goemotions_card(tiny_model()), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["README.md"]
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == "old card"
