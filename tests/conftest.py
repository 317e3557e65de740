"""Shared fixtures: tiny SU4MLC configs, so that every test runs in seconds on 2 CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification, SU4MLCTokenizer  # noqa: E402
from su4mlc_hf.label_vocab import PAD_ID  # noqa: E402

TESTS_DIR = Path(__file__).parent
DATA_DIR = TESTS_DIR / "data"
REPO_ROOT = TESTS_DIR.parent

ATTENTION_TYPES = ["none", "word", "mdc", "additive", "hybrid"]
# The authors' 2018 code choices, all switched on at once.
AUTHORS_CODE_SWITCHES = dict(
    mdc_padding=1,
    mdc_activation="selu",
    mdc_dropout=0.05,
    direction_merge="sum",
    hybrid_output="residual",
    encoder_layers=2,
    decoder_layers=2,
)


def tiny_config(**overrides) -> SU4MLCConfig:
    values = dict(
        source_vocab_size=60,
        id2label={index: f"label_{index}" for index in range(8)},
        embedding_size=12,
        hidden_size=16,
        dropout=0.0,
        max_labels=6,
    )
    values.update(overrides)
    return SU4MLCConfig(**values)


def tiny_model(seed: int = 0, **overrides) -> SU4MLCForMultiLabelClassification:
    torch.manual_seed(seed)
    return SU4MLCForMultiLabelClassification(tiny_config(**overrides)).eval()


def random_batch(lengths, vocab_size=60, seed=0):
    """Right-padded word ids and mask for texts of the given lengths (no PAD inside a text)."""
    generator = torch.Generator().manual_seed(seed)
    width = max(max(lengths), 1)
    input_ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(2, vocab_size, (length,), generator=generator)
    return input_ids, input_ids.ne(PAD_ID).long()


def goemotions_train_texts() -> list[str]:
    """The texts of the GoEmotions test sample's training split (`text <TAB> labels <TAB> id` lines)."""
    lines = (DATA_DIR / "goemotions" / "train.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines]


def save_tiny_model_and_tokenizer(folder: Path, seed: int = 0):
    """A tiny untrained model and a word tokenizer trained on GoEmotions texts, saved together in `folder`.

    The vocabulary is capped at the model's `source_vocab_size`, so every word id is one the model embeds.
    """
    model = tiny_model(seed=seed)
    tokenizer = SU4MLCTokenizer.train_from_texts(
        goemotions_train_texts(), vocab_size=model.config.source_vocab_size
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer
