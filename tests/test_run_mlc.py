"""examples/run_mlc.py end to end: every input form trains, evaluates and predicts; the output folder reloads."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from su4mlc_hf.data import load_goemotions

from .conftest import DATA_DIR, REPO_ROOT, load_script

FORMATS_DIR = DATA_DIR / "formats"
TINY_MODEL_ARGS = [
    "--embedding_size", "16", "--hidden_size", "16", "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "32", "--num_beams", "2", "--seed", "0", "--logging_steps", "5",
    "--disable_tqdm", "true",
]  # fmt: skip


run_mlc = load_script(REPO_ROOT / "examples" / "run_mlc.py", "run_mlc")


def test_train_evaluate_predict_and_reload(tmp_path):
    output_dir = tmp_path / "out"
    results = run_mlc.main(
        [
            "--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions",
            "--output_dir", str(output_dir), "--do_train", "--do_eval", "--do_predict",
            "--num_train_epochs", "2", "--recipe", "paper", *TINY_MODEL_ARGS,
        ]  # fmt: skip
    )
    assert {"train", "eval", "predict"} <= set(results)
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md",
                 "predictions.jsonl", "predict_results.json", "eval_results.json", "modeling_su4mlc.py"):
        assert (output_dir / name).is_file(), name
    assert not list(output_dir.glob("*.bin")) or [p.name for p in output_dir.glob("*.bin")] == ["training_args.bin"]
    # Two epochs: two checkpoints, the learning rate halved in the second.
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-100", "checkpoint-50"]
    rates = [entry["learning_rate"] for entry in json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
             if "learning_rate" in entry]
    assert rates[0] == pytest.approx(3e-4) and rates[-1] == pytest.approx(1.5e-4)

    predictions = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 100
    model = AutoModel.from_pretrained(output_dir)
    known = set(model.config.id2label.values())
    for record in predictions:
        assert set(record["labels"]) <= known and len(record["labels"]) == len(set(record["labels"]))
        assert len(record["scores"]) == len(record["labels"])
        assert all(0 < score <= 1 for score in record["scores"])
    test_texts = load_goemotions(DATA_DIR / "goemotions")["test"]["text"]
    assert [record["text"] for record in predictions] == test_texts

    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert tokenizer.pad_token_id == 0
    reloaded = [labels for labels in model.predict(test_texts[:10], tokenizer, num_beams=2)]
    assert reloaded == [record["labels"] for record in predictions[:10]]
    card = (output_dir / "README.md").read_text()
    assert "model-index" in card and "micro_f1" in card.lower().replace(" ", "_")


@pytest.mark.parametrize(
    "data_args",
    [
        ["--train_file", "goemotions_sample.jsonl", "--test_file", "goemotions_sample.jsonl"],
        ["--train_file", "goemotions_sample.csv", "--test_file", "goemotions_sample.csv",
         "--text_column", "comment", "--labels_column", "emotions", "--label_delimiter", ";"],
        ["--train_file", "goemotions_sample.tsv", "--test_file", "goemotions_sample.tsv"],
        ["--train_file", "goemotions_sample.src", "--test_file", "goemotions_sample.src"],
    ],
    ids=["jsonl", "csv", "tsv", "src-tgt"],
)
def test_each_file_form_runs_end_to_end(tmp_path, data_args):
    data_args = [str(FORMATS_DIR / arg) if arg.startswith("goemotions_sample") else arg for arg in data_args]
    output_dir = tmp_path / "out"
    results = run_mlc.main(
        [*data_args, "--output_dir", str(output_dir), "--do_train", "--do_predict", "--max_steps", "3",
         "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false", *TINY_MODEL_ARGS]
    )  # fmt: skip
    assert 0.0 <= results["predict"]["predict_micro_f1"] <= 1.0
    lines = (output_dir / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[5])["gold"]
    model = AutoModel.from_pretrained(output_dir)
    assert isinstance(model(input_ids=torch.tensor([[2, 3, 4]]), labels=torch.tensor([[2]])).loss.item(), float)


def test_saved_datasets_folder_runs_end_to_end(tmp_path):
    saved = tmp_path / "saved"
    load_goemotions(DATA_DIR / "goemotions").save_to_disk(str(saved))
    output_dir = tmp_path / "out"
    results = run_mlc.main(
        ["--dataset_dir", str(saved), "--output_dir", str(output_dir), "--do_train", "--do_eval", "--max_steps", "3",
         "--max_eval_samples", "20", "--eval_strategy", "no", "--save_strategy", "no",
         "--load_best_model_at_end", "false", *TINY_MODEL_ARGS]
    )  # fmt: skip
    assert 0.0 <= results["eval"]["eval_micro_f1"] <= 1.0


def test_json_config_with_overrides(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "dataset_dir": str(DATA_DIR / "goemotions"), "dataset_format": "goemotions", "do_train": True,
        "output_dir": str(tmp_path / "from_json"), "hidden_size": 64, "attention": "mdc", "max_steps": 2,
        "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False,
    }))  # fmt: skip
    run_mlc.main([str(config), "--hidden_size", "16", "--embedding_size", "16"])
    saved = json.loads((tmp_path / "from_json" / "config.json").read_text())
    assert saved["hidden_size"] == 16 and saved["attention"] == "mdc"
