"""Label token ids a transformers user can read: generated id i is `config.id2label[i]`, the special tokens come after
the labels, the word tokenizer refuses to read label ids as words, and folders of the old layout load unchanged."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification, SU4MLCTokenizer

from .conftest import DATA_DIR, random_batch, tiny_model

# Saved by the code before this layout (label i = token id i + 3); see its README.
LEGACY_FOLDER = DATA_DIR / "legacy_label_layout"


def test_generated_ids_index_id2label_and_special_tokens_follow_the_labels():
    model = tiny_model(seed=1)
    config = model.config
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (8, 9, 10)
    assert config.decoder_start_token_id == 9 and config.label_token_layout == "labels_first"
    # A strong bias towards label 5 makes it the first label generated for every text.
    with torch.no_grad():
        model.decoder.output_layer.bias[5] = 20.0
    input_ids, attention_mask = random_batch([12, 4, 30], seed=2)
    sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=1)
    assert sequences[:, 1].tolist() == [5, 5, 5]
    assert {config.id2label[int(token)] for token in sequences[:, 1]} == {"label_5"}
    decoded = model.decode_labels(sequences)
    assert all(labels[0] == "label_5" for labels in decoded)
    # Every generated id before EOS is a label id, read through id2label exactly as decode_labels reads it.
    for row, labels in zip(sequences[:, 1:].tolist(), decoded):
        body = row[: row.index(config.eos_token_id)] if config.eos_token_id in row else row
        assert [config.id2label[token] for token in body] == labels


def test_decode_labels_reads_generate_output_in_each_form():
    model = tiny_model(seed=2)
    input_ids, attention_mask = random_batch([9, 17], seed=5)
    output = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, num_beams=2, return_dict_in_generate=True
    )
    assert model.decode_labels(output) == model.decode_labels(output.sequences)
    assert model.decode_labels(output.sequences.tolist()) == model.decode_labels(output.sequences)


def test_tokenizer_refuses_to_decode_generated_label_ids(tmp_path):
    tokenizer = SU4MLCTokenizer.train_from_texts(["the markets fell sharply", "oil prices rose"])
    model = tiny_model(seed=3, source_vocab_size=len(tokenizer) + 10)
    encoded = tokenizer(["the markets fell"], return_tensors="pt")
    generated = model.generate(**encoded, num_beams=1)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    for loaded in (tokenizer, reloaded):
        with pytest.raises(ValueError, match=r"label ids, not word ids.*model\.decode_labels"):
            loaded.batch_decode(generated)
        with pytest.raises(ValueError, match="decode_labels"):
            loaded.decode(generated[0])
    assert tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist()) == ["the", "markets", "fell"]


def test_old_layout_folder_loads_and_predicts_as_it_did():
    """The fixture was saved by the previous code, with what that code predicted; loaded today, the weights are
    reordered and every label and probability is the same."""
    expected = json.loads((LEGACY_FOLDER / "expected.json").read_text())
    assert "label_token_layout" not in json.loads((LEGACY_FOLDER / "config.json").read_text())
    model = AutoModel.from_pretrained(LEGACY_FOLDER)
    assert model.config.label_token_layout == "labels_first"
    assert (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id) == (4, 5, 6)
    generation_config = model.generation_config
    assert generation_config.suppress_tokens == [4, 5] and generation_config.forced_eos_token_id == 6
    assert (generation_config.bos_token_id, generation_config.eos_token_id, generation_config.pad_token_id) == (5, 6, 4)
    input_ids = torch.tensor(expected["input_ids"])
    for num_beams in (1, 3):
        scored = model.score_labels(input_ids, input_ids.ne(0).long(), num_beams=num_beams)
        wanted = expected[f"num_beams={num_beams}"]
        # The best sequence and the probability of each of its steps, as the old code reported them.
        labels = model.decode_labels(scored.sequences)
        assert labels == [[label for label, _ in row] for row in wanted]
        torch.testing.assert_close(
            torch.cat([scored.step_probabilities[row, : len(row_labels)] for row, row_labels in enumerate(labels)]),
            torch.tensor([score for row in wanted for _, score in row]),
        )


def test_old_layout_folder_saved_again_is_in_the_new_layout(tmp_path):
    model = SU4MLCForMultiLabelClassification.from_pretrained(LEGACY_FOLDER)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["label_token_layout"], saved["pad_token_id"], saved["eos_token_id"]) == ("labels_first", 4, 6)
    assert json.loads((tmp_path / "generation_config.json").read_text())["suppress_tokens"] == [4, 5]
    reloaded = SU4MLCForMultiLabelClassification.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name


def test_old_layout_config_with_new_layout_weights_is_never_reordered_twice(tmp_path):
    """Only a config.json without `label_token_layout` and with PAD/BOS/EOS = 0/1/2 counts as old: a new folder
    whose config states the layout loads as saved."""
    model = tiny_model(seed=4)
    model.save_pretrained(tmp_path)
    reloaded = SU4MLCForMultiLabelClassification.from_pretrained(tmp_path)
    assert torch.equal(reloaded.decoder.output_layer.weight, model.decoder.output_layer.weight)


def test_config_with_special_ids_that_contradict_the_layout_is_rejected(tmp_path):
    shutil.copytree(LEGACY_FOLDER, tmp_path / "model")
    config_file = tmp_path / "model" / "config.json"
    config = json.loads(config_file.read_text())
    config.update(
        label_token_layout="labels_first", pad_token_id=4, bos_token_id=5, decoder_start_token_id=5, eos_token_id=2
    )
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"eos_token_id=2, but with 4 labels first .* fix it to 6"):
        SU4MLCForMultiLabelClassification.from_pretrained(tmp_path / "model")
    with pytest.raises(ValueError, match="bos_token_id=0"):
        SU4MLCConfig(id2label={0: "a"}, bos_token_id=0)


def test_training_keeps_the_label_token_ids(tmp_path):
    """`Trainer.train` aligns the model's PAD with its tokenizer's; the word PAD (0) is label 0 here, so SU4MLCTrainer
    sets the label token ids back before the first step: saved configs and padded generations use the label PAD."""
    from datasets import Dataset

    from su4mlc_hf.data import SU4MLCDataCollator
    from su4mlc_hf.trainer import SU4MLCTrainer, SU4MLCTrainingArguments

    texts = ["the markets fell", "oil prices rose sharply", "rates held", "grain exports grew"]
    tokenizer = SU4MLCTokenizer.train_from_texts(texts)
    model = tiny_model(seed=5, source_vocab_size=len(tokenizer))
    eos = model.config.eos_token_id
    features = [{"input_ids": tokenizer(text)["input_ids"], "labels": [index, eos]} for index, text in enumerate(texts)]
    args = SU4MLCTrainingArguments(
        output_dir=str(tmp_path), max_steps=1, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
        report_to=[], use_cpu=True, per_device_train_batch_size=4,
    )  # fmt: skip
    trainer = SU4MLCTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(features), data_collator=SU4MLCDataCollator(),
        processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    for config in (model.config, model.generation_config):
        assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (8, 9, 10)
    trainer.save_model(str(tmp_path / "model"))
    assert SU4MLCForMultiLabelClassification.from_pretrained(tmp_path / "model").config.pad_token_id == 8


def test_greedy_score_of_the_last_label_is_its_own_step_probability():
    """EOS and PAD (the ids after the labels) never lend their step's probability to a label: the last label, whose
    id is next to them, scores the probability of the step that emitted it."""
    model = tiny_model(seed=6)
    last = model.config.num_labels - 1
    with torch.no_grad():
        model.decoder.output_layer.bias[last] = 4.0
    input_ids, attention_mask = random_batch([12, 4, 30], seed=3)
    scored = model.score_labels(input_ids, attention_mask, num_beams=1)
    for row, sequence in enumerate(scored.sequences.tolist()):
        assert last in sequence
        step = sequence.index(last)
        torch.testing.assert_close(scored.beam_label_probabilities[row, last], scored.step_probabilities[row, step])
