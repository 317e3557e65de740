"""Shared fixtures: tiny SU4MLC configs, so that every test runs in seconds on 2 CPU cores."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification, SU4MLCTokenizer  # noqa: E402
from su4mlc_hf.label_vocab import WORD_PAD_ID  # noqa: E402

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
    return input_ids, input_ids.ne(WORD_PAD_ID).long()


def load_script(path: Path, module_name: str):
    """Imports a script (e.g. `examples/run_mlc.py`) as a module named `module_name`, so tests can call its `main`."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def goemotions_train_texts() -> list[str]:
    """The texts of the GoEmotions test sample's training split (`text <TAB> labels <TAB> id` lines)."""
    lines = (DATA_DIR / "goemotions" / "train.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines]


def train_on_goemotions_sample(output_dir: Path, size: int, epochs: int):
    """A hybrid SU4MLC of embedding and hidden size `size` trained for `epochs` epochs on the GoEmotions sample's 400
    training texts (lr 1e-2, no dropout: a few seconds); returns `(model, prepared, tokenizer, label_vocab)`."""
    from su4mlc_hf.data import SU4MLCDataCollator, load_goemotions, prepare_datasets
    from su4mlc_hf.trainer import SU4MLCTrainer, SU4MLCTrainingArguments

    torch.manual_seed(0)
    prepared, tokenizer, label_vocab, _ = prepare_datasets(load_goemotions(DATA_DIR / "goemotions"))
    config = SU4MLCConfig(
        source_vocab_size=len(tokenizer), id2label=label_vocab.id2label, embedding_size=size, hidden_size=size,
        dropout=0.0, max_labels=4,
    )  # fmt: skip
    model = SU4MLCForMultiLabelClassification(config)
    args = SU4MLCTrainingArguments(
        output_dir=str(output_dir), learning_rate=1e-2, lr_decay_per_epoch=1.0, num_train_epochs=epochs,
        per_device_train_batch_size=32, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
        logging_strategy="no", disable_tqdm=True, seed=0, report_to=[],
    )  # fmt: skip
    SU4MLCTrainer(model=model, args=args, train_dataset=prepared["train"], data_collator=SU4MLCDataCollator()).train()
    return model.eval(), prepared, tokenizer, label_vocab


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


# Put before a script run by `run_without_package`: makes `su4mlc_hf` unimportable whatever way it is installed
# (editable finder, site-packages, path), and checks that it is.
HIDE_SU4MLC_HF = r"""
import importlib.abc
import sys


class HideSU4MLC(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "su4mlc_hf":
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, HideSU4MLC())
try:
    import su4mlc_hf
except ModuleNotFoundError:
    pass
else:
    sys.exit("su4mlc_hf is importable: the test would not show what happens without it")
"""


def run_without_package(script: str, *args: str, folder: Path) -> subprocess.CompletedProcess:
    """Runs `script` with `args` in a fresh interpreter where `su4mlc_hf` cannot be imported, in `folder`, offline.

    `-I` drops PYTHONPATH, the user site-packages and the current folder from `sys.path`; stdin is closed, so a
    "run the custom code?" prompt fails instead of waiting.
    """
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(folder / "hf_home")}
    environment.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-I", "-c", HIDE_SU4MLC_HF + script, *args],
        cwd=folder,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def seeded_run_argv(output_dir: Path) -> list[str]:
    """`examples/run_mlc.py` arguments of a short seeded run on the GoEmotions sample, for the resume and
    determinism tests: 3 epochs of 10 steps with dropout on, a log line per step, a checkpoint every 12 steps (so in
    the middle of epochs 2 and 3), evaluation and prediction at the end."""
    from .test_run_mlc import TINY_MODEL_ARGS  # imported here: test_run_mlc loads the script when imported

    return [
        "--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions",
        "--output_dir", str(output_dir), "--do_train", "--do_eval", "--do_predict",
        "--max_train_samples", "80", "--max_eval_samples", "20", "--max_predict_samples", "20",
        "--num_train_epochs", "3", "--dropout", "0.2", "--save_strategy", "steps", "--save_steps", "12",
        "--eval_strategy", "no", "--load_best_model_at_end", "false", *TINY_MODEL_ARGS, "--logging_steps", "1",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def seeded_run(tmp_path_factory) -> tuple[Path, dict]:
    """The seeded run of `seeded_run_argv`, uninterrupted: its output folder and the results `main()` returned."""
    from .test_run_mlc import run_mlc

    output_dir = tmp_path_factory.mktemp("seeded_run") / "out"
    return output_dir, run_mlc.main(seeded_run_argv(output_dir))


# Caches that Python, pytest and hypothesis keep in the repository (all ignored by git).
CACHE_FOLDERS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis"}


def repository_entries() -> set[str]:
    """Every file and folder of the repository outside the caches, relative to its root."""
    entries = set()
    for folder, subfolders, files in os.walk(REPO_ROOT):
        subfolders[:] = [name for name in subfolders if name not in CACHE_FOLDERS and not name.endswith(".egg-info")]
        relative = Path(folder).relative_to(REPO_ROOT)
        entries.update(str(relative / name) for name in subfolders + files)
    return entries


@pytest.fixture(scope="session", autouse=True)
def repository_left_as_found():
    """Tests write under pytest's temporary folders only: whatever a test run leaves in the repository, even an empty
    folder (which `git status` does not show, e.g. a Trainer's `output_dir="unused"`), fails it."""
    before = repository_entries()
    yield
    left = sorted(repository_entries() - before)
    if left:
        pytest.fail(f"the tests left {left} in the repository; write them under tmp_path")


@pytest.fixture(autouse=True)
def no_leaked_torch_threads():
    """torch's thread count is process-wide, and on CPU it changes the bits of results: a test (or the code it runs)
    that changes it and leaves it changed fails, instead of making a later bit-exact comparison fail (e.g. a run
    resumed in this process against one started before)."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        leaked = torch.get_num_threads()
        torch.set_num_threads(threads)
        pytest.fail(f"the test left torch at {leaked} threads instead of {threads}")


def timing_free(metrics: dict[str, float]) -> dict[str, float]:
    """`metrics` without the wall-clock measures (`*_runtime`, `*_per_second`), which no two runs share."""
    return {
        name: value
        for name, value in metrics.items()
        if not name.endswith(("_runtime", "_per_second", "_preparation_time"))
    }


def training_log(output_dir: Path) -> list[dict]:
    """The per-step entries (loss, gradient norm, learning rate) of a finished run's `trainer_state.json`."""
    log_history = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))["log_history"]
    return [entry for entry in log_history if "loss" in entry]


def assert_same_outcome(output_dir: Path, results: dict, reference_dir: Path, reference_results: dict) -> None:
    """Two runs of `seeded_run_argv` end alike: final weights bit for bit, per-step training log, evaluation and test
    scores, predictions file."""
    assert_same_weights(output_dir, reference_dir)
    assert training_log(output_dir) == training_log(reference_dir)
    assert timing_free(results["eval"]) == timing_free(reference_results["eval"])
    assert results["predict"] == reference_results["predict"]
    assert (output_dir / "predictions.jsonl").read_text() == (reference_dir / "predictions.jsonl").read_text()


def assert_same_weights(folder: Path, reference_folder: Path) -> None:
    """The `model.safetensors` of both folders hold the same tensors, bit for bit."""
    weights, reference = load_file(folder / "model.safetensors"), load_file(reference_folder / "model.safetensors")
    assert weights.keys() == reference.keys()
    different = [name for name in reference if not torch.equal(weights[name], reference[name])]
    assert not different, f"{folder} and {reference_folder} differ in {different}"
