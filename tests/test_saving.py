"""Saving and loading through the Auto classes: safetensors only, identical generations."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification, SU4MLCTokenizer

from .conftest import AUTHORS_CODE_SWITCHES, save_tiny_model_and_tokenizer

TEXTS = ["Thank you so much!", "this is so annoying and sad", "ok", "I love 2 dogs and 1,000 cats"]


@pytest.mark.parametrize("overrides", [{}, AUTHORS_CODE_SWITCHES], ids=["paper", "authors_code"])
def test_save_then_auto_classes_give_identical_generations(tmp_path, overrides):
    model, tokenizer = save_tiny_model_and_tokenizer(tmp_path, seed=3)
    if overrides:
        model = SU4MLCForMultiLabelClassification(SU4MLCConfig(**{**model.config.to_dict(), **overrides})).eval()
        model.save_pretrained(tmp_path)

    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle"))]
    assert {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} <= files

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, SU4MLCConfig)
    assert {**config.to_dict(), "_name_or_path": ""} == model.config.to_dict()
    loaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded_tokenizer, SU4MLCTokenizer)
    batch = loaded_tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], tokenizer(TEXTS, padding=True, return_tensors="pt")["input_ids"])

    expected = model.generate(**batch)
    for auto_class in (AutoModel, AutoModelForSeq2SeqLM):
        loaded = auto_class.from_pretrained(tmp_path)
        assert type(loaded) is SU4MLCForMultiLabelClassification
        assert loaded.generation_config.num_beams == 5 and loaded.generation_config.no_repeat_ngram_size == 1
        assert torch.equal(loaded.generate(**batch), expected)
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name
