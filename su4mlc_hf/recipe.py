"""Training recipes: the paper's, and the default one that derives its settings from the training data.

The paper's recipe (Adam 3e-4 halved after every epoch, batch 64, width 512) was made for RCV1-v2's 800k documents.
On data sets of thousands or tens of thousands of texts it stops learning long before the model is trained: the
learning rate summed over all updates (Σ lr × steps) is about 0.07 on Reuters' 7,270 documents, 110 times less than
on RCV1-v2, and models trained so score below a linear classifier (BENCHMARKS.md). The default recipe (`auto`) keeps
the model and sets the training from the data by the rules of [`auto_recipe`], written here and nowhere else;
BENCHMARKS.md ("Default recipe") has the validation measurements behind each rule.

A value the user gives on the command line or in a JSON config always wins over the recipe's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from transformers.trainer_utils import SchedulerType

RECIPES = ("auto", "paper")

# The paper's settings, as the defaults of `run_mlc.py`'s arguments and of `SU4MLCTrainingArguments` give them.
PAPER_RECIPE: dict[str, Any] = {
    "embedding_size": 512,
    "hidden_size": 512,
    "dropout": 0.2,
    "learning_rate": 3e-4,
    "lr_decay_per_epoch": 0.5,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "per_device_train_batch_size": 64,
    "num_train_epochs": 10.0,
    "label_head_loss_weight": 0.0,
    "label_head_ngram_features": 0,
    "ngram_classifier": False,
    "decision": "sequence",
    "early_stopping_patience": None,
}


@dataclass(frozen=True)
class TrainingDataStatistics:
    """What the rules read from the training split."""

    num_texts: int
    mean_words: float
    num_labels: int

    @classmethod
    def from_split(cls, train_split, num_labels: int) -> "TrainingDataStatistics":
        """From a prepared training split (its `length` column counts the words the model reads)."""
        lengths = train_split["length"]
        return cls(num_texts=len(lengths), mean_words=sum(lengths) / max(len(lengths), 1), num_labels=num_labels)


# The rules' constants, each with what it stands for.
# Updates the run aims at: enough for Adam at these learning rates to converge on 7k-45k texts (validation
# micro-F1 peaked after 2-4 epochs of GoEmotions, 1,400-2,800 updates, with early stopping to catch the peak).
TARGET_UPDATES = 5000
# Decoder and per-text work counted as this many words: a text of w words costs about w + 20 word-steps to train.
TEXT_OVERHEAD_WORDS = 20
# Word-steps the model may train on (epochs × word-steps per epoch): each costs about 90 µs on one CPU thread at
# width 256 without the n-gram bag in the head (GoEmotions: 4 epochs, 6.2M word-steps, 13.8 minutes with a second job
# on the other core), so at most about 8 minutes of training on an idle core: 3 epochs of GoEmotions, 5 of Reuters.
# Fewer than before the n-gram classifier: it carries what the network learns late (GoEmotions' validation micro-F1
# of the best sequence peaked at epoch 3 of 4; BENCHMARKS.md "Third round").
MAX_TRAINING_WORD_STEPS = 5_000_000
MIN_EPOCHS, MAX_EPOCHS = 3, 30
# Width 256 where an epoch costs at most this many word-steps (a few minutes on one CPU thread), 128 above (data sets
# of hundreds of thousands of texts, where epochs, not width, are what the time allows). 256 scored higher on Reuters
# (0.857 against 0.843 test micro-F1) and on GoEmotions (validation micro-F1 / macro-F1 with the label head and the
# tuned threshold: 0.571 / 0.442 at 256, 0.566 / 0.403 at 128; BENCHMARKS.md "Default recipe").
WIDE_MAX_WORD_STEPS_PER_EPOCH = 4_000_000


def word_steps_per_epoch(stats: TrainingDataStatistics) -> float:
    """The training cost of one epoch, in word-steps (see `TEXT_OVERHEAD_WORDS`)."""
    return stats.num_texts * (stats.mean_words + TEXT_OVERHEAD_WORDS)


def auto_recipe(stats: TrainingDataStatistics) -> dict[str, Any]:
    """
    The default recipe's settings for a training split:

    - width (embedding and hidden size): 256, or 128 when an epoch costs more than `WIDE_MAX_WORD_STEPS_PER_EPOCH`
      word-steps;
    - batch: 32 below 10,000 texts (more updates from few texts), 64 above;
    - epochs: enough for `TARGET_UPDATES` updates, at most `MAX_TRAINING_WORD_STEPS` word-steps, within
      [`MIN_EPOCHS`, `MAX_EPOCHS`]; early stopping on validation micro-F1 after 3 epochs without gain, the best
      checkpoint kept;
    - Adam at 2e-3, warm-up over the first 3 % of updates, then linear decay to 0 (no per-epoch halving);
    - dropout 0.4;
    - the auxiliary per-label head (weight 1), the n-gram classifier fitted before training (`su4mlc_hf.ngram_fit`),
      and the decision rule chosen on validation (`decision="auto"`), which weighs the three sources of label scores.
    """
    batch_size = 32 if stats.num_texts < 10_000 else 64
    steps_per_epoch = max(1, math.ceil(stats.num_texts / batch_size))
    cost = max(word_steps_per_epoch(stats), 1.0)
    epochs = min(math.ceil(TARGET_UPDATES / steps_per_epoch), max(1, math.floor(MAX_TRAINING_WORD_STEPS / cost)))
    epochs = max(MIN_EPOCHS, min(MAX_EPOCHS, epochs))
    width = 256 if cost <= WIDE_MAX_WORD_STEPS_PER_EPOCH else 128
    return {
        "embedding_size": width,
        "hidden_size": width,
        "dropout": 0.4,
        "learning_rate": 2e-3,
        "lr_decay_per_epoch": 1.0,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0.03,
        "per_device_train_batch_size": batch_size,
        "num_train_epochs": float(epochs),
        "label_head_loss_weight": 1.0,
        "label_head_ngram_features": 0,
        "ngram_classifier": True,
        "decision": "auto",
        "early_stopping_patience": 3,
    }


def recipe_settings(recipe: str, stats: TrainingDataStatistics) -> dict[str, Any]:
    """The settings of the named recipe (`auto` or `paper`) for a training split."""
    if recipe not in RECIPES:
        raise ValueError(f"--recipe {recipe!r} is not one of {RECIPES}.")
    return dict(PAPER_RECIPE) if recipe == "paper" else auto_recipe(stats)


def apply_recipe(settings: dict[str, Any], argument_groups: list, given: set[str]) -> dict[str, Any]:
    """
    Sets each recipe value on the argument dataclass that has that field, unless the user gave it.

    Args:
        settings: from [`recipe_settings`].
        argument_groups: the parsed argument dataclasses (model, data, training).
        given: the names the user set (command line flags and JSON config keys).

    Returns:
        The values applied, by name (for the log and the model card).
    """
    applied = {}
    for name, value in settings.items():
        if name in given:
            continue
        for group in argument_groups:
            if hasattr(group, name):
                # TrainingArguments turns the scheduler name into an enum in its __post_init__; do the same.
                setattr(group, name, SchedulerType(value) if name == "lr_scheduler_type" else value)
                applied[name] = value
                break
    return applied


__all__ = [
    "PAPER_RECIPE",
    "RECIPES",
    "TrainingDataStatistics",
    "apply_recipe",
    "auto_recipe",
    "recipe_settings",
]
