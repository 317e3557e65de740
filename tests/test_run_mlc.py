"""examples/run_mlc.py end to end: every input form trains, evaluates and predicts; the output folder reloads."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from su4mlc_hf.data import load_goemotions
from su4mlc_hf.modeling_su4mlc import cpu_supports_bf16

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
         "--save_strategy", "no", *TINY_MODEL_ARGS]  # no validation data: evaluation switches off by itself
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


# --------------------------------------------------------------------------------------------------
# The command line: every failure ends in one line naming the file, line, field or flag


@pytest.fixture
def run_command(monkeypatch, capsys, tmp_path):
    """`run_mlc.run(argv)`, the command's entry point, in this process: returns `(exit status, stderr lines)`.
    OMP_NUM_THREADS is set, so `run` leaves torch's thread count alone (it is process-wide); temporary traceback
    files go to the test's folder."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def run_command(argv: list[str]) -> tuple[int, list[str]]:
        capsys.readouterr()
        status = run_mlc.run([str(arg) for arg in argv])
        return status, capsys.readouterr().err.splitlines()

    return run_command


def saved_traceback(error_line: str) -> str:
    """The traceback file an error line names, read."""
    assert error_line.endswith("]") and "[traceback in " in error_line, error_line
    return Path(error_line.rsplit("[traceback in ", 1)[1][:-1]).read_text(encoding="utf-8")


def test_misspelt_config_key_is_named_with_the_closest_valid_key(tmp_path, run_command):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dataset_dir": str(DATA_DIR / "goemotions"), "hiden_size": 16, "do_train": True}))
    status, errors = run_command([config, "--output_dir", tmp_path / "out"])
    assert status == 1 and len(errors) == 1
    assert errors[0].startswith(f"run_mlc.py: error: {config}: unknown key 'hiden_size' (did you mean hidden_size?)")
    assert "Traceback" in saved_traceback(errors[0]) and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "config_text, expected",
    [
        ('{"hidden_size": 16,\n "do_train": true,}', "config.json, line 2, column 19: not valid JSON"),
        ('["--hidden_size", "16"]', "config.json: a config file holds one JSON object"),
        ('{"attention": "hybird"}', "config.json: argument --attention: invalid choice: 'hybird'"),
        ('{"num_beams": "five"}', "config.json: argument --num_beams/--num-beams: invalid int value: 'five'"),
    ],
    ids=["invalid-json", "not-an-object", "bad-choice", "bad-type"],
)
def test_config_file_errors_name_the_file_and_the_place(tmp_path, run_command, config_text, expected):
    config = tmp_path / "config.json"
    config.write_text(config_text)
    status, errors = run_command([config, "--output_dir", tmp_path / "out"])
    assert status == 1 and len(errors) == 1 and errors[0].startswith(f"run_mlc.py: error: {tmp_path}/{expected}")


def test_misspelt_or_abbreviated_flag_is_refused_with_the_closest_valid_flag(tmp_path, run_command):
    for flag in ("--hiden_size", "--hidden"):  # argparse would read `--hidden` as `--hidden_size`
        status, errors = run_command([flag, "16", "--output_dir", tmp_path / "out"])
        assert status == 1 and errors == [
            f"run_mlc.py: error: unknown argument '{flag}' (did you mean --hidden_size?); see --help. "
            f"[traceback in {errors[0].rsplit('[traceback in ', 1)[1]}"
        ]


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max_train_samples", "-5"), ("--max_eval_samples", "0"), ("--max_predict_samples", "-1"),
        ("--vocab_size", "2"), ("--max_words", "0"), ("--hidden_size", "0"), ("--num_beams", "0"),
        ("--dropout", "1.5"), ("--per_device_train_batch_size", "0"), ("--validation_split_percentage", "100"),
        ("--num_train_epochs", "0"),
    ],
)  # fmt: skip
def test_out_of_range_counts_are_refused_naming_the_flag_before_any_data_is_read(tmp_path, run_command, flag, value):
    missing = tmp_path / "missing.jsonl"  # reading it would fail with another message
    status, errors = run_command(["--train_file", missing, "--do_train", "--output_dir", tmp_path / "out", flag, value])
    assert status == 1 and len(errors) == 1 and errors[0].startswith(f"run_mlc.py: error: {flag} {value}: must be ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, value", [("--recipe", "papr"), ("--decision", "threshold"), ("--overlong", "cut")])
def test_a_value_outside_a_flags_choices_is_refused_before_any_data_is_read(tmp_path, run_command, flag, value):
    missing = tmp_path / "missing.jsonl"  # reading it would fail with another message
    status, errors = run_command(["--train_file", missing, "--output_dir", tmp_path / "o", flag, value])
    assert status == 1 and errors[0].startswith(f"run_mlc.py: error: argument {flag}: invalid choice: '{value}'")


def test_list_values_are_checked_one_by_one(tmp_path, run_command):
    status, errors = run_command(
        ["--train_file", tmp_path / "missing.jsonl", "--output_dir", tmp_path / "out", "--mdc_dilation_rates", "1", "0"]
    )
    assert status == 1 and errors[0].startswith("run_mlc.py: error: --mdc_dilation_rates 1 0: must be a positive")


def test_data_errors_end_in_their_own_message_and_the_traceback_goes_to_the_run_log(tmp_path, run_command):
    malformed = FORMATS_DIR / "bad" / "malformed.jsonl"
    output_dir = tmp_path / "out"
    status, errors = run_command(["--train_file", malformed, "--do_train", "--output_dir", output_dir])
    assert status == 1 and f"{malformed}, line 2" in errors[-1] and errors[-1].startswith("run_mlc.py: error: ")
    assert not any("Traceback" in line for line in errors)
    run_log = (output_dir / run_mlc.RUN_LOG_NAME).read_text(encoding="utf-8")
    assert errors[-1].endswith(f"[traceback in {output_dir / run_mlc.RUN_LOG_NAME}]")
    assert "Traceback (most recent call last)" in run_log and "DataFormatError" in run_log


def test_debug_flag_prints_the_traceback_and_leaves_transformers_debug_options_alone(tmp_path, run_command):
    status, errors = run_command(["--debug", "--output_dir", tmp_path / "out", "--hidden_size", "0"])
    assert status == 1 and errors[0] == "Traceback (most recent call last):" and "CommandLineError" in errors[-2]
    assert run_mlc.take_debug_flag(["--debug", "underflow_overflow"]) == (False, ["--debug", "underflow_overflow"])
    assert run_mlc.take_debug_flag(["--seed", "1", "--debug"]) == (True, ["--seed", "1"])


def test_unexpected_errors_say_so_in_their_one_line(tmp_path, run_command, monkeypatch):
    def broken_loader(data_args):
        raise KeyError("text")

    monkeypatch.setattr(run_mlc, "load_raw_datasets", broken_loader)
    status, errors = run_command(["--train_file", tmp_path / "x.jsonl", "--do_train", "--output_dir", tmp_path / "o"])
    assert status == 1 and errors[-1].startswith("run_mlc.py: error: KeyError: 'text' (unexpected: please report it")


def test_a_missing_optional_package_ends_in_its_own_message(tmp_path, run_command, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "matplotlib" else find_spec(name))
    status, errors = run_command(["--train_file", tmp_path / "x.jsonl", "--output_dir", tmp_path, "--explain", "1"])
    assert status == 1 and errors[0].startswith(
        "run_mlc.py: error: --explain draws with matplotlib, which is not installed: pip install matplotlib [traceback"
    )


def test_an_interrupted_run_ends_in_one_line_saying_how_to_resume(tmp_path, run_command, monkeypatch):
    def interrupted(data_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mlc, "load_raw_datasets", interrupted)
    status, errors = run_command(["--train_file", tmp_path / "x.jsonl", "--do_train", "--output_dir", tmp_path / "o"])
    assert status == 130
    assert errors == ["run_mlc.py: interrupted; rerun the same command to resume from the last checkpoint."]


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--do_predict"], "--do_predict: the data has no test split (it has: train); give --test_file"),
        (["--do_eval"], "--do_eval: the data has no validation split (it has: train); give --validation_file"),
    ],
)
def test_a_step_without_its_split_is_an_error_naming_the_flag(tmp_path, run_command, flags, expected):
    output_dir = tmp_path / "out"
    status, errors = run_command(
        ["--train_file", FORMATS_DIR / "goemotions_sample.jsonl", "--do_train", *flags, "--output_dir", output_dir]
    )
    assert status == 1 and errors[-1].startswith(f"run_mlc.py: error: {expected}")
    assert not (output_dir / "model.safetensors").exists() and not (output_dir / "predictions.jsonl").exists()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--do_predict"], "--do_predict without --do_train would predict with random weights"),
        (["--dataset_dir", DATA_DIR / "goemotions", "--do_train"], "--train_file/--validation_file/--test_file are"),
        (["--dataset_format", "goemotions", "--do_train"], "--dataset_format goemotions: give its folder as"),
    ],
    ids=["predict-untrained", "two-sources", "release-without-folder"],
)
def test_runs_that_would_mislead_are_refused_before_any_data_is_read(tmp_path, run_command, flags, expected):
    status, errors = run_command(["--test_file", tmp_path / "missing.jsonl", *flags, "--output_dir", tmp_path / "o"])
    assert status == 1 and errors == [errors[0]] and errors[0].startswith(f"run_mlc.py: error: {expected}")


@pytest.mark.skipif(cpu_supports_bf16(), reason="this CPU has oneDNN bfloat16 kernels: --bf16 runs")
def test_bf16_on_a_cpu_without_bfloat16_kernels_is_refused_before_any_data_is_read(tmp_path, run_command):
    """(Without `--use_cpu`, transformers refuses `--bf16` on a machine without a GPU itself.)"""
    status, errors = run_command(
        ["--train_file", tmp_path / "missing.jsonl", "--do_train", "--use_cpu", "--bf16", "--output_dir", tmp_path / "o"]
    )
    assert status == 1 and errors == [errors[0]] and errors[0].startswith("run_mlc.py: error: --bf16: this CPU has no")
    assert not (tmp_path / "o").exists()


def test_encoding_errors_flag_reaches_the_loaders(tmp_path, run_command):
    invalid = FORMATS_DIR / "bad" / "invalid_utf8.jsonl"
    argv = ["--train_file", invalid, "--test_file", invalid, "--do_train", "--do_predict", "--max_steps", "2",
            "--save_strategy", "no", *TINY_MODEL_ARGS]  # fmt: skip
    status, errors = run_command([*argv, "--output_dir", tmp_path / "strict"])
    assert status == 1 and f"{invalid}, line 2" in errors[-1]
    status, errors = run_command([*argv, "--output_dir", tmp_path / "replace", "--encoding_errors", "replace"])
    assert status == 0, errors
    predictions = [json.loads(line) for line in (tmp_path / "replace" / "predictions.jsonl").read_text().splitlines()]
    assert "\ufffd" in predictions[1]["text"]


# --------------------------------------------------------------------------------------------------
# Training without validation data


def test_training_without_validation_data_needs_no_extra_flag(tmp_path, caplog):
    """No validation split: evaluation and best-checkpoint selection switch off, and one log line says so
    (transformers alone stops on `eval_strategy`, then on `load_best_model_at_end`)."""
    output_dir = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        results = run_mlc.main(
            ["--train_file", str(FORMATS_DIR / "goemotions_sample.jsonl"), "--do_train", "--num_train_epochs", "2",
             "--output_dir", str(output_dir), *TINY_MODEL_ARGS]
        )  # fmt: skip
    assert set(results) == {"train"} and results["train"]["epoch"] == 2.0
    assert [record.message for record in caplog.records if "No validation split" in record.message] == [
        "No validation split: training without evaluation, and the model kept is the last one, not the best "
        "checkpoint (give --validation_file or --validation_split_percentage N to evaluate)."
    ]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] is None and not any("eval_loss" in entry for entry in state["log_history"])
    assert (output_dir / "model.safetensors").is_file()


def test_validation_split_percentage_carves_a_seeded_validation_split():
    raw = load_goemotions(DATA_DIR / "goemotions")
    del raw["validation"]
    train_texts = set(raw["train"]["text"])
    carved = []
    for _ in range(2):
        copy = datasets.DatasetDict(raw)
        run_mlc.carve_validation_split(copy, 20, seed=7)
        assert (len(copy["train"]), len(copy["validation"])) == (320, 80)
        assert set(copy["train"]["text"]) | set(copy["validation"]["text"]) == train_texts
        assert not set(copy["train"]["text"]) & set(copy["validation"]["text"])
        carved.append(copy["validation"]["text"])
    assert carved[0] == carved[1]
    other = datasets.DatasetDict(raw)
    run_mlc.carve_validation_split(other, 20, seed=8)
    assert other["validation"]["text"] != carved[0]
    with pytest.raises(run_mlc.CommandLineError, match="--validation_split_percentage: the data has a validation"):
        run_mlc.carve_validation_split(load_goemotions(DATA_DIR / "goemotions"), 20, seed=7)


def test_validation_split_percentage_evaluates_on_the_carved_split(tmp_path):
    results = run_mlc.main(
        ["--train_file", str(FORMATS_DIR / "goemotions_sample.jsonl"), "--validation_split_percentage", "50",
         "--do_train", "--do_eval", "--max_steps", "2", "--output_dir", str(tmp_path / "out"), *TINY_MODEL_ARGS]
    )  # fmt: skip
    assert 0.0 <= results["eval"]["eval_micro_f1"] <= 1.0


# --------------------------------------------------------------------------------------------------
# A quiet, informative run of the command


@pytest.fixture(scope="module")
def command_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`python examples/run_mlc.py ...` in a fresh process, as a user runs it: OMP_NUM_THREADS unset, progress bars
    on; data files in a folder whose absolute path must not reach the model card."""
    folder = tmp_path_factory.mktemp("command")
    data = folder / "my_data"
    data.mkdir()
    shutil.copy(FORMATS_DIR / "goemotions_sample.jsonl", data / "train.jsonl")
    output_dir = folder / "out"
    environment = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    command = [
        sys.executable, str(REPO_ROOT / "examples" / "run_mlc.py"), "--train_file", str(data / "train.jsonl"),
        "--test_file", str(data / "train.jsonl"), "--output_dir", str(output_dir), "--do_train", "--do_predict",
        "--max_steps", "3", "--embedding_size", "16", "--hidden_size", "16", "--num_beams", "2",
        "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "2",
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return output_dir, completed


def test_training_arguments_go_to_the_run_log_and_one_summary_line_to_the_screen(command_run):
    output_dir, completed = command_run
    summaries = [line for line in completed.stdout.splitlines() if "Training arguments:" in line]
    assert len(summaries) == 1 and summaries[0].endswith(f"all of them in {output_dir / run_mlc.RUN_LOG_NAME}")
    assert '"lr_decay_per_epoch"' not in completed.stdout and '"output_dir"' not in completed.stdout
    run_log = (output_dir / run_mlc.RUN_LOG_NAME).read_text(encoding="utf-8")
    assert '"per_device_train_batch_size": 2' in run_log and "Configuration saved in" in run_log
    assert "Configuration saved in" not in completed.stdout + completed.stderr


def test_a_cpu_run_shows_no_warning_the_user_cannot_act_on(command_run):
    _, completed = command_run
    assert "pin_memory" not in completed.stderr and "Warning" not in completed.stderr + completed.stdout


def test_prediction_shows_a_progress_bar(command_run):
    _, completed = command_run
    assert "Predicting: 100%" in completed.stderr and "3/3" in completed.stderr.split("Predicting: 100%")[-1]


def test_the_last_lines_name_the_scores_and_the_output_folder(command_run):
    output_dir, completed = command_run
    *_, scores, folder = completed.stdout.splitlines()
    predicted = json.loads((output_dir / "predict_results.json").read_text())
    assert scores.endswith(
        f"Scores on the test split: micro_f1 {predicted['predict_micro_f1']:.4f}, macro_f1 "
        f"{predicted['predict_macro_f1']:.4f}, hamming_loss {predicted['predict_hamming_loss']:.4f}, subset_accuracy "
        f"{predicted['predict_subset_accuracy']:.4f} (all of them in predict_results.json)"
    )
    assert folder.endswith(f"Output folder: {output_dir.resolve()}")


def test_one_cpu_thread_by_default_and_omp_num_threads_honoured(command_run, monkeypatch):
    """The default is set in one place, `configure_cpu_threads` (figures in its docstring)."""
    _, completed = command_run
    assert "cpu with 1 CPU thread(s)" in completed.stdout
    threads = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        torch.set_num_threads(2)
        run_mlc.configure_cpu_threads()
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        run_mlc.configure_cpu_threads()
        assert torch.get_num_threads() == run_mlc.DEFAULT_CPU_THREADS == 1
    finally:
        torch.set_num_threads(threads)


def test_model_card_names_local_data_without_its_absolute_path(command_run):
    output_dir, _ = command_run
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert "my_data/train.jsonl" in card and str(output_dir.parent) not in card
