"""The training recipes: the rules of the default one, the paper's values, and that a value the user gives wins."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from su4mlc_hf import SU4MLCForMultiLabelClassification
from su4mlc_hf.data import load_goemotions, prepare_datasets
from su4mlc_hf.label_vocab import LabelVocabulary
from su4mlc_hf.recipe import PAPER_RECIPE, TrainingDataStatistics, apply_recipe, auto_recipe, recipe_settings
from su4mlc_hf.trainer import SU4MLCTrainingArguments

from .conftest import DATA_DIR, REPO_ROOT, load_script

run_mlc = load_script(REPO_ROOT / "examples" / "run_mlc.py", "run_mlc_for_recipes")


def test_paper_recipe_is_the_paper_and_the_argument_defaults():
    """`--recipe paper` sets exactly the values the arguments default to, which are the paper's."""
    defaults = SU4MLCTrainingArguments(output_dir="unused-folder-never-created")
    model_defaults = run_mlc.ModelArguments()
    assert PAPER_RECIPE["learning_rate"] == defaults.learning_rate == 3e-4
    assert PAPER_RECIPE["lr_decay_per_epoch"] == defaults.lr_decay_per_epoch == 0.5
    assert PAPER_RECIPE["per_device_train_batch_size"] == defaults.per_device_train_batch_size == 64
    assert PAPER_RECIPE["hidden_size"] == model_defaults.hidden_size == 512
    assert PAPER_RECIPE["embedding_size"] == model_defaults.embedding_size == 512
    assert PAPER_RECIPE["label_head_loss_weight"] == 0.0 and PAPER_RECIPE["decision"] == "sequence"
    assert PAPER_RECIPE["label_head_ngram_features"] == model_defaults.label_head_ngram_features == 0


@pytest.mark.parametrize(
    "num_texts, mean_words, batch, min_epochs, max_epochs",
    [
        (800, 160.0, 32, 20, 30),  # AAPD-sized: many epochs of few texts
        (7_270, 150.0, 32, 4, 30),  # Reuters-sized
        (43_410, 13.0, 64, 3, 12),  # GoEmotions-sized: many short texts
        (800_000, 120.0, 64, 1, 3),  # RCV1-sized: the cost cap holds epochs down
    ],
)
def test_auto_recipe_rules(num_texts, mean_words, batch, min_epochs, max_epochs):
    settings = auto_recipe(TrainingDataStatistics(num_texts=num_texts, mean_words=mean_words, num_labels=50))
    assert settings["per_device_train_batch_size"] == batch
    assert min_epochs <= settings["num_train_epochs"] <= max_epochs
    assert settings["lr_decay_per_epoch"] == 1.0 and settings["decision"] == "auto"


def test_only_the_auto_recipe_fits_an_ngram_classifier():
    """The n-gram classifier is not in the paper: `--recipe paper` has none, as the argument's default."""
    assert PAPER_RECIPE["ngram_classifier"] is run_mlc.ModelArguments().ngram_classifier is False
    stats = TrainingDataStatistics(num_texts=1000, mean_words=10.0, num_labels=5)
    assert auto_recipe(stats)["ngram_classifier"] is True and auto_recipe(stats)["label_head_ngram_features"] == 0


def test_given_values_win_over_the_recipe():
    arguments = SU4MLCTrainingArguments(output_dir="unused-folder-never-created", learning_rate=0.1)
    model_arguments = run_mlc.ModelArguments()
    settings = recipe_settings("auto", TrainingDataStatistics(num_texts=1000, mean_words=10.0, num_labels=5))
    applied = apply_recipe(settings, [model_arguments, arguments], given={"learning_rate"})
    assert arguments.learning_rate == 0.1 and "learning_rate" not in applied
    assert arguments.lr_scheduler_type == "linear" and arguments.lr_decay_per_epoch == 1.0
    assert model_arguments.hidden_size == settings["hidden_size"] and model_arguments.decision == "auto"


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="--recipe 'fast'"):
        recipe_settings("fast", TrainingDataStatistics(num_texts=1, mean_words=1.0, num_labels=1))


def test_run_mlc_applies_the_auto_recipe_and_keeps_given_values(tmp_path):
    """Only data, a folder and a seed (plus a tiny size to stay fast): the recipe sets the rest, and the decision
    rule is chosen on validation."""
    output_dir = tmp_path / "out"
    run_mlc.main([
        "--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions", "--output_dir",
        str(output_dir), "--do_train", "--do_eval", "--seed", "0", "--hidden_size", "16", "--embedding_size", "16",
        "--num_train_epochs", "2", "--disable_tqdm", "true",
    ])  # fmt: skip
    config = json.loads((output_dir / "config.json").read_text())
    arguments = json.loads((output_dir / "training_args.json").read_text())
    assert config["hidden_size"] == 16 and arguments["num_train_epochs"] == 2
    assert config["label_head_loss_weight"] == 1.0 and config["dropout"] == 0.4
    assert arguments["lr_scheduler_type"] == "linear" and arguments["lr_decay_per_epoch"] == 1.0
    assert arguments["early_stopping_patience"] == 3
    assert "decision_threshold" in config
    # The evaluation reuses the validation scores of the decision's calibration: they are those of decoding the
    # validation split again with the saved model.
    model = SU4MLCForMultiLabelClassification.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    label_vocab = LabelVocabulary.from_id2label(model.config.id2label)
    raw = load_goemotions(DATA_DIR / "goemotions")
    prepared, *_ = prepare_datasets(raw, tokenizer=tokenizer, label_vocab=label_vocab)
    _, scores = run_mlc.predict_split(model, tokenizer, prepared["validation"], label_vocab, batch_size=64)
    evaluated = json.loads((output_dir / "eval_results.json").read_text())
    assert evaluated == pytest.approx({**{f"eval_{name}": value for name, value in scores.items()}, "eval_samples": 100})
