#!/usr/bin/env python
"""Train, evaluate and predict with SU4MLC on a multi-label text classification data set.

In the style of transformers' examples: arguments are three dataclasses (model, data, training) read from the
command line or from a single JSON file.

    python examples/run_mlc.py --train_file train.jsonl --validation_file dev.jsonl --test_file test.jsonl \
        --output_dir outputs/my-model --do_train --do_eval --do_predict --attention hybrid

    python examples/run_mlc.py examples/configs/goemotions.json [--num_train_epochs 1 ...]

Data: `--train_file/--validation_file/--test_file` (JSON Lines, CSV, TSV, or SGM-style `X.src` with its `X.tgt`),
`--dataset_dir` (a folder of split files, or a `save_to_disk` folder), `--dataset_name` (a Hub data set, online
only), or `--dataset_dir` with `--dataset_format goemotions|reuters_modapte` for those releases. Without validation
data, training runs without evaluation or best-checkpoint selection; `--validation_split_percentage N` carves a
validation split from the training data instead.

Writes to `--output_dir`: the model (safetensors), tokenizer, generation config and model card (README.md);
`{train,eval,predict}_results.json`; `predictions.jsonl` (one line per test text: its predicted labels with scores,
and the gold labels); checkpoints every epoch; `run_mlc.log` (everything logged, the training arguments in full, and
the traceback of a failure). Every file appears whole (written under a temporary name, then renamed). The same
command started again in the same `--output_dir` finishes the run: a run killed in training resumes from its last
checkpoint, one killed later redoes only what it had not finished, a finished one does nothing. A folder that holds
another run (other model, labels, data or arguments, recorded in `_su4mlc_run.json`) is refused before any work: pass
`--overwrite_output_dir`, `--resume_from_checkpoint PATH`, or choose another folder. One run at a time holds a folder
(`_su4mlc_run.lock`).

A failure ends in one line on stderr that names the file, line, field or flag at fault; `--debug` also prints the
traceback. torch uses one CPU thread unless OMP_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import datasets
import numpy as np
import torch
import transformers
from transformers import HfArgumentParser, PreTrainedConfig, TrainerState, set_seed
from transformers.debug_utils import DebugOption
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import IntervalStrategy, get_last_checkpoint

import su4mlc_hf
from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification
from su4mlc_hf.data import (
    GOLD_LABELS_COLUMN,
    SU4MLCDataCollator,
    load_goemotions,
    load_multilabel_dataset,
    load_reuters_modapte,
    prepare_datasets,
)
from su4mlc_hf.decision import tune_decision_threshold
from su4mlc_hf.explain import save_attention_figure
from su4mlc_hf.label_vocab import LabelVocabulary
from su4mlc_hf.metrics import label_name_scores, multi_hot
from su4mlc_hf.modeling_su4mlc import cpu_supports_bf16
from su4mlc_hf.ngram_fit import fit_ngram_classifier
from su4mlc_hf.output_folder import OutputFolder, OutputFolderError, atomic_open, files_fingerprint, is_disk_full
from su4mlc_hf.recipe import PAPER_RECIPE, TrainingDataStatistics, apply_recipe, recipe_settings
from su4mlc_hf.trainer import SU4MLCTrainer, SU4MLCTrainingArguments
from su4mlc_hf.word_vectors import load_word_vectors, word_vectors_dimension

logger = logging.getLogger(__name__)

# Everything logged (the full training arguments, transformers' messages, a failure's traceback) goes to this file in
# the output folder; the screen gets a summary.
RUN_LOG_NAME = "run_mlc.log"
RUN_LOG_HANDLER_NAME = "run_mlc file"
LOG_FORMAT = logging.Formatter("%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S")
# torch's threads when OMP_NUM_THREADS is not set: one, because torch's default (one per core) collapses when other
# jobs share the cores (figures in `configure_cpu_threads`).
DEFAULT_CPU_THREADS = 1


@dataclass
class ModelArguments:
    """The model to train: a saved SU4MLC model to continue from, or a new one built from these sizes."""

    recipe: Literal["auto", "paper"] = field(
        default="auto",
        metadata={
            "help": "auto: training settings derived from the training data (su4mlc_hf.recipe); paper: the paper's "
            "recipe exactly. Values given on the command line or in the JSON config win over either."
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved SU4MLC folder or Hub id to continue from (its vocabularies are kept)."}
    )
    attention: Literal["none", "word", "mdc", "additive", "hybrid"] = field(
        default="hybrid", metadata={"help": "none, word, mdc, additive or hybrid."}
    )
    embedding_size: int = field(default=512, metadata={"help": "Word and label embedding size (paper: 512)."})
    hidden_size: int = field(default=512, metadata={"help": "Annotation, MDC and decoder size (paper: 512)."})
    encoder_layers: int = field(default=1, metadata={"help": "BiLSTM encoder layers."})
    decoder_layers: int = field(default=1, metadata={"help": "LSTM decoder layers."})
    dropout: float = field(default=0.2, metadata={"help": "Dropout."})
    direction_merge: Literal["concat", "sum"] = field(
        default="concat", metadata={"help": "concat (paper) or sum (2018 code)."}
    )
    mdc_kernel_size: int = field(default=3, metadata={"help": "MDC kernel width."})
    mdc_dilation_rates: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "MDC dilation rates."})
    mdc_padding: int = field(default=0, metadata={"help": "MDC padding (paper 0, 2018 code 1)."})
    mdc_activation: Literal["relu", "none", "selu"] = field(
        default="relu", metadata={"help": "relu, none or selu (2018 code)."}
    )
    mdc_dropout: float = field(default=0.0, metadata={"help": "Dropout after each convolution (2018 code 0.05)."})
    hybrid_output: Literal["concat", "residual"] = field(
        default="concat", metadata={"help": "concat (paper) or residual (2018 code)."}
    )
    max_labels: int = field(default=16, metadata={"help": "Most labels generated per text."})
    num_beams: int = field(default=5, metadata={"help": "Beam size for evaluation and prediction (1 = greedy)."})
    embeddings_file: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained word vectors (GloVe / word2vec text format) for the word embeddings; their dimension "
            "sets --embedding_size."
        },
    )
    label_head_loss_weight: float = field(
        default=0.0, metadata={"help": "Weight of the auxiliary per-label loss (0: no label head, the paper)."}
    )
    label_head_ngram_features: int = field(
        default=0,
        metadata={"help": "Hashed word and bigram features of a linear classifier inside the label head (0: none)."},
    )
    ngram_classifier: bool = field(
        default=False,
        metadata={
            "help": "Fit a linear classifier over the words and bigrams (an SVM per label) before training and mix "
            "its probabilities into the label scores (not in the paper)."
        },
    )
    decision: Literal["sequence", "auto"] = field(
        default="sequence",
        metadata={
            "help": "sequence: the best generated sequence (paper); auto: also try a threshold on the label scores "
            "on the validation split and keep it where it scores better."
        },
    )


@dataclass
class DataArguments:
    """Where the data comes from and how it is preprocessed."""

    dataset_name: str | None = field(default=None, metadata={"help": "A Hub data set (online only)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration."})
    dataset_dir: str | None = field(default=None, metadata={"help": "A local folder of split files or save_to_disk."})
    dataset_format: Literal["files", "goemotions", "reuters_modapte"] = field(
        default="files", metadata={"help": "files (default), goemotions or reuters_modapte (for --dataset_dir)."}
    )
    valid_ids_file: str | None = field(
        default=None, metadata={"help": "reuters_modapte: train ids that form the validation split."}
    )
    train_file: str | None = field(default=None, metadata={"help": "Training file (.jsonl/.csv/.tsv/.src)."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file."})
    test_file: str | None = field(default=None, metadata={"help": "Test file."})
    validation_split_percentage: int | None = field(
        default=None,
        metadata={"help": "With no validation data: carve this percentage of the training texts (drawn with --seed)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where `datasets` caches files it reads."})
    encoding_errors: Literal["strict", "replace"] = field(
        default="strict", metadata={"help": "Invalid UTF-8 in a data file: strict (an error naming it) or replace."}
    )
    text_column: str = field(default="text", metadata={"help": "Column of the texts."})
    labels_column: str = field(default="labels", metadata={"help": "Column of the labels."})
    label_delimiter: str | None = field(
        default=None, metadata={"help": "Separator of labels given as one string (default: whitespace)."}
    )
    max_words: int = field(default=500, metadata={"help": "Texts over this many words are dropped (paper: 500)."})
    overlong: Literal["drop", "truncate"] = field(
        default="drop", metadata={"help": "drop (paper) or truncate over-long texts."}
    )
    label_order: Literal["frequency", "rare_first", "random"] = field(
        default="frequency", metadata={"help": "Target order: frequency (paper), rare_first or random (per epoch)."}
    )
    vocab_size: int = field(default=50_000, metadata={"help": "Word vocabulary size (paper: 50k)."})
    min_word_frequency: int = field(default=1, metadata={"help": "Rarer training words become UNK."})
    max_label_vocab: int | None = field(
        default=None,
        metadata={"help": "Fail if the training data has more distinct labels (e.g. from a wrong --label_delimiter)."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training texts."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation texts."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only this many test texts."})
    num_predictions_to_print: int = field(default=5, metadata={"help": "Test predictions shown at the end."})
    explain: int = field(
        default=0,
        metadata={"help": "With --do_predict: draw the attention of the first N test texts in <output_dir>/attention."},
    )

    def __post_init__(self):
        if self.explain < 0:
            raise ValueError(f"--explain {self.explain}: give the number of test texts to draw, 0 or more.")
        # Checked now rather than after training, when the pictures are drawn.
        if self.explain and importlib.util.find_spec("matplotlib") is None:
            raise ImportError("--explain draws with matplotlib, which is not installed: pip install matplotlib")


def given_argument_names(argv: list[str]) -> set[str]:
    """The argument names set on the command line (`--name value`, `--name=value`)."""
    return {token[2:].split("=", 1)[0] for token in argv if token.startswith("--")}


class CommandLineError(ValueError):
    """A flag, config-file key or value that cannot be used; the message names it and says what to do."""


class ArgumentParser(HfArgumentParser):
    """
    `HfArgumentParser` that refuses instead of guessing: no abbreviated flags (`--hidden 16` is not `--hidden_size`),
    and every error raises a one-line [`CommandLineError`] naming the flag, with the closest valid one for a
    misspelt flag, instead of printing the usage of 200 options and exiting.
    """

    def __init__(self, dataclass_types):
        super().__init__(dataclass_types, allow_abbrev=False)

    def error(self, message: str):
        raise CommandLineError(f"{message}.")

    def field_names(self) -> list[str]:
        return [f.name for dataclass_type in self.dataclass_types for f in fields(dataclass_type) if f.init]

    def closest_field(self, name: str) -> str:
        """' (did you mean X?)' for the field nearest to a misspelt `name`, or ''."""
        matches = difflib.get_close_matches(name.replace("-", "_"), self.field_names(), n=1)
        return f" (did you mean {'--' if name.startswith('--') else ''}{matches[0]}?)" if matches else ""

    def config_file_arguments(self, path: Path) -> tuple[list[str], set[str]]:
        """
        A JSON config file as command-line arguments, so that its values go through the same conversions and checks
        as flags (and flags after it override them), and its keys; values no flag can spell (null, an empty list, an
        object) become parser defaults.
        """
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandLineError(f"{path}: no such config file.") from None
        except json.JSONDecodeError as error:
            raise CommandLineError(
                f"{path}, line {error.lineno}, column {error.colno}: not valid JSON ({error.msg}); fix the file."
            ) from None
        if not isinstance(values, dict):
            raise CommandLineError(f"{path}: a config file holds one JSON object of argument names and values.")
        arguments = []
        for key, value in values.items():
            if key not in self.field_names():
                raise CommandLineError(f"{path}: unknown key {key!r}{self.closest_field(key)}; fix or remove it.")
            scalars = value if isinstance(value, list) else [value]
            if value is None or not scalars or any(isinstance(item, (dict, list)) for item in scalars):
                self.set_defaults(**{key: value})
            else:
                # JSON's spelling of booleans (true/false) is one the parser reads.
                arguments += [f"--{key}", *(json.dumps(v) if isinstance(v, bool) else str(v) for v in scalars)]
        try:
            self.parse_known_args(arguments)
        except CommandLineError as error:
            raise CommandLineError(f"{path}: {error}") from None
        return arguments, set(values)

    def parse_command_line(
        self, argv: list[str]
    ) -> tuple[ModelArguments, DataArguments, SU4MLCTrainingArguments, set[str]]:
        """The three argument sets of `argv` (an optional JSON config file first, then flags that override it), and
        the names of the arguments given (the rest are defaults)."""
        config_keys = set()
        if argv and argv[0].endswith(".json"):
            config_arguments, config_keys = self.config_file_arguments(Path(argv[0]))
            argv = config_arguments + argv[1:]
        given = given_argument_names(argv) | config_keys
        if "load_best_model_at_end" not in given:
            self.keep_best_checkpoint_only_if_evaluated(argv)
        *argument_sets, unknown = self.parse_args_into_dataclasses(argv, return_remaining_strings=True)
        if unknown:
            flag = next((item for item in unknown if item.startswith("-")), unknown[0])
            raise CommandLineError(f"unknown argument {flag!r}{self.closest_field(flag)}; see --help.")
        return (*argument_sets, given)

    def keep_best_checkpoint_only_if_evaluated(self, argv: list[str]) -> None:
        """
        The default `load_best_model_at_end=True` needs a checkpoint at every evaluation: with `--eval_strategy no`,
        or checkpoints at other times, it becomes False instead of transformers' error (the choice only matters when
        it is not given).
        """
        namespace, _ = self.parse_known_args(argv)
        if namespace.eval_strategy == "no" or namespace.save_strategy not in (namespace.eval_strategy, "best"):
            self.set_defaults(load_best_model_at_end=False)


# What each count, size and rate must be, checked before any data is read: (is a value valid, what it must be).
POSITIVE = (lambda value: value >= 1, "a positive integer")
TEXT_COUNT = (lambda value: value >= 1, "a positive number of texts (leave the flag out to use them all)")
NON_NEGATIVE = (lambda value: value >= 0, "0 or more")
GREATER_THAN_ZERO = (lambda value: value > 0, "greater than 0")
PROBABILITY = (lambda value: 0 <= value < 1, "a probability in [0, 1)")
ARGUMENT_REQUIREMENTS = {
    **dict.fromkeys(["max_train_samples", "max_eval_samples", "max_predict_samples"], TEXT_COUNT),
    "validation_split_percentage": (lambda value: 1 <= value <= 99, "a percentage from 1 to 99"),
    "vocab_size": (lambda value: value >= 3, "at least 3 (<pad>, <unk> and a word)"),
    **dict.fromkeys(["max_words", "min_word_frequency", "max_label_vocab"], POSITIVE),
    "num_predictions_to_print": NON_NEGATIVE,
    **dict.fromkeys(
        ["embedding_size", "hidden_size", "encoder_layers", "decoder_layers", "mdc_kernel_size", "mdc_dilation_rates"],
        POSITIVE,
    ),
    **dict.fromkeys(["max_labels", "num_beams"], POSITIVE),
    "mdc_padding": NON_NEGATIVE,
    **dict.fromkeys(["dropout", "mdc_dropout"], PROBABILITY),
    **dict.fromkeys(
        ["per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"], POSITIVE
    ),
    **dict.fromkeys(["num_train_epochs", "learning_rate", "logging_steps", "save_steps"], GREATER_THAN_ZERO),
    "dataloader_num_workers": NON_NEGATIVE,
}


def check_argument_values(*argument_sets) -> None:
    """Refuses a count, size or rate out of range, naming its flag (e.g. `--max_train_samples -5`), before any data is
    read or anything is written."""
    for argument_set in argument_sets:
        for name, (is_valid, requirement) in ARGUMENT_REQUIREMENTS.items():
            value = getattr(argument_set, name, None)
            values = value if isinstance(value, list) else [value]
            if value is not None and not all(is_valid(item) for item in values):
                shown = " ".join(f"{item:g}" if isinstance(item, float) else str(item) for item in values)
                raise CommandLineError(f"--{name} {shown}: must be {requirement}.")


def carve_validation_split(raw: datasets.DatasetDict, percentage: int, seed: int) -> None:
    """Moves `percentage`% of the training texts, drawn with `seed`, into a new validation split (as transformers'
    examples do with `--validation_split_percentage`)."""
    if "validation" in raw:
        raise CommandLineError("--validation_split_percentage: the data has a validation split already; drop the flag.")
    if "train" not in raw:
        raise CommandLineError("--validation_split_percentage: the data has no training split to carve one from.")
    parts = raw["train"].train_test_split(test_size=percentage / 100, seed=seed)
    raw["train"], raw["validation"] = parts["train"], parts["test"]
    logger.info(f"Validation split: {len(raw['validation'])} training texts ({percentage}%, drawn with seed {seed})")


def check_requested_splits(raw: datasets.DatasetDict, training_args, given: set[str]) -> None:
    """`--do_train`, `--do_predict` and an explicit `--do_eval` (transformers turns `do_eval` on by itself whenever
    `eval_strategy` is not "no") each need their split: without it the run would end with nothing to show."""
    needs = [("do_train", "train", "--train_file"), ("do_predict", "test", "--test_file")]
    if "do_eval" in given:
        needs.append(("do_eval", "validation", "--validation_file, --validation_split_percentage N"))
    for flag, split, how in needs:
        if getattr(training_args, flag) and split not in raw:
            raise CommandLineError(
                f"--{flag}: the data has no {split} split (it has: {', '.join(raw) or 'none'}); give {how} or a "
                f"{split} file in --dataset_dir, or drop --{flag}."
            )


def train_without_validation(splits: datasets.DatasetDict, training_args) -> None:
    """Training data with no validation split trains with evaluation, best-checkpoint selection and early stopping
    off, and says so in one line (transformers would stop with an error about `eval_strategy`, then one about
    `load_best_model_at_end`)."""
    if not training_args.do_train or "validation" in splits:
        return
    if training_args.eval_strategy != IntervalStrategy.NO or training_args.load_best_model_at_end:
        training_args.eval_strategy = IntervalStrategy.NO
        training_args.load_best_model_at_end = False
        training_args.early_stopping_patience = None
        training_args.do_eval = False
        logger.info(
            "No validation split: training without evaluation, and the model kept is the last one, not the best "
            "checkpoint (give --validation_file or --validation_split_percentage N to evaluate)."
        )


def pin_memory_only_with_an_accelerator(training_args) -> None:
    """Pinned memory speeds up copies to an accelerator; without one, torch warns at every data loader and nothing
    can be done about it, so it is switched off."""
    if training_args.use_cpu or not torch.accelerator.is_available():
        training_args.dataloader_pin_memory = False


def shown_on_screen(record: logging.LogRecord) -> bool:
    """The screen shows this script's and su4mlc_hf's lines and everyone's warnings; the run log has the rest (e.g.
    transformers' "Configuration saved in ..." lines and the full training arguments)."""
    if getattr(record, "run_log_only", False):
        return False
    return record.levelno >= logging.WARNING or record.name == logger.name or record.name.startswith("su4mlc_hf")


def configure_logging(training_args: SU4MLCTrainingArguments) -> None:
    level = logging.INFO if training_args.should_log else logging.WARNING
    screen = logging.StreamHandler(sys.stdout)
    screen.setFormatter(LOG_FORMAT)
    screen.addFilter(shown_on_screen)
    logging.basicConfig(handlers=[screen])
    logging.getLogger().setLevel(level)
    # transformers' messages go through the root logger, to be filtered for the screen and kept in the run log.
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    datasets.utils.logging.set_verbosity(logging.WARNING)


def start_run_log(output_dir: str) -> Path:
    """Appends everything logged from now on, at INFO, to `output_dir/run_mlc.log`; a failure's traceback is added
    by [`run`]. A rerun in the same folder appends to it."""
    stop_run_log()
    path = Path(output_dir) / RUN_LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.set_name(RUN_LOG_HANDLER_NAME)
    handler.setFormatter(LOG_FORMAT)
    logging.getLogger().addHandler(handler)
    return path


def stop_run_log() -> Path | None:
    """Closes the run log of [`start_run_log`], if one is open, and returns its path."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == RUN_LOG_HANDLER_NAME:
            logging.getLogger().removeHandler(handler)
            handler.close()
            return Path(handler.baseFilename)
    return None


def training_summary(training_args: SU4MLCTrainingArguments, run_log: Path) -> str:
    """One line for the screen in place of the 130 training arguments (which go to the run log)."""
    args = training_args
    length = f"{args.max_steps} step(s)" if args.max_steps > 0 else f"{args.num_train_epochs:g} epoch(s)"
    decay = getattr(args, "lr_decay_per_epoch", 1.0)
    evaluation = f"evaluation every {args.eval_strategy.value}"
    if args.eval_strategy == IntervalStrategy.NO:
        evaluation = "no evaluation"
    return (
        f"Training arguments: {length}, batch {args.per_device_train_batch_size} per device, learning rate "
        f"{args.learning_rate:g}{f' x{decay:g} per epoch' if decay != 1.0 else ''}, {evaluation}, seed {args.seed}, "
        f"{args.device} with {torch.get_num_threads()} CPU thread(s); all of them in {run_log}"
    )


def check_data_source(data_args: DataArguments) -> None:
    """There is one source of data, in a form the chosen --dataset_format reads."""
    if data_args.dataset_format != "files" and data_args.dataset_dir is None:
        raise CommandLineError(f"--dataset_format {data_args.dataset_format}: give its folder as --dataset_dir.")
    data_files = (data_args.train_file, data_args.validation_file, data_args.test_file)
    if (data_args.dataset_dir is not None or data_args.dataset_name is not None) and any(data_files):
        raise CommandLineError(
            "--train_file/--validation_file/--test_file are ignored with --dataset_dir or --dataset_name: give one."
        )
    if data_args.dataset_dir is None and data_args.dataset_name is None and not any(data_files):
        raise CommandLineError(
            "no data: give --train_file/--validation_file/--test_file, --dataset_dir or --dataset_name."
        )


def check_model_source(model_args: ModelArguments, training_args: SU4MLCTrainingArguments) -> None:
    """Predicting or evaluating needs a trained model: this run's, or a saved one."""
    if not training_args.do_train and training_args.do_predict and model_args.model_name_or_path is None:
        raise CommandLineError(
            "--do_predict without --do_train would predict with random weights: "
            "add --do_train, or give a trained model as --model_name_or_path."
        )


def check_precision(training_args: SU4MLCTrainingArguments) -> None:
    """`--bf16` on a CPU needs oneDNN's bfloat16 kernels: refused at once where there are none (the LSTMs would fail at
    the first training step)."""
    if training_args.bf16 and training_args.device.type == "cpu" and not cpu_supports_bf16():
        raise CommandLineError(
            "--bf16: this CPU has no bfloat16 kernels in oneDNN (AVX-512 BF16 or AMX), which the LSTMs need; drop the flag."
        )


def load_raw_datasets(data_args: DataArguments) -> datasets.DatasetDict:
    options = dict(
        text_column=data_args.text_column,
        labels_column=data_args.labels_column,
        label_delimiter=data_args.label_delimiter,
        encoding_errors=data_args.encoding_errors,
    )
    if data_args.dataset_format == "goemotions":
        return load_goemotions(data_args.dataset_dir, encoding_errors=data_args.encoding_errors)
    if data_args.dataset_format == "reuters_modapte":
        return load_reuters_modapte(
            data_args.dataset_dir, valid_ids_file=data_args.valid_ids_file, encoding_errors=data_args.encoding_errors
        )
    if data_args.dataset_dir is not None:
        return load_multilabel_dataset(data_args.dataset_dir, cache_dir=data_args.cache_dir, **options)
    if data_args.dataset_name is not None:
        return load_multilabel_dataset(data_args.dataset_name, name=data_args.dataset_config_name, **options)
    files = {}
    for split, path in (
        ("train", data_args.train_file),
        ("validation", data_args.validation_file),
        ("test", data_args.test_file),
    ):
        if path is None:
            continue
        # An SGM-style source file reads its labels from the line-aligned file with the .tgt suffix.
        files[split] = (path, str(Path(path).with_suffix(".tgt"))) if path.endswith(".src") else path
    return load_multilabel_dataset(files, cache_dir=data_args.cache_dir, **options)


# How the model card names and describes the releases that have a loader of their own.
KNOWN_DATASETS = {
    "goemotions": dict(
        dataset_name="GoEmotions",
        dataset_id="google-research-datasets/go_emotions",
        dataset_description="Demszky et al., ACL 2020: English Reddit comments labelled with 27 emotions and neutral; "
        "the official train/dev/test splits, CC BY 4.0.",
    ),
    "reuters_modapte": dict(
        dataset_name="Reuters-21578 ModApte",
        dataset_description="Lewis, 1997: Reuters newswire, the ModApte split, the 90 topics with at least one "
        "training and one test document; research use only.",
    ),
}


def dataset_card_fields(data_args: DataArguments) -> dict:
    if data_args.dataset_format in KNOWN_DATASETS:
        return KNOWN_DATASETS[data_args.dataset_format]
    if data_args.dataset_name is not None:
        return {"dataset_name": data_args.dataset_name, "dataset_id": data_args.dataset_name}
    local = data_args.dataset_dir or data_args.train_file or data_args.validation_file or data_args.test_file
    return {"dataset_name": local_data_name(local)}


def local_data_name(path: str) -> str:
    """A local data folder or file as the model card names it: the folder's name, or the file's with its folder's.
    Never the absolute path, which means nothing on the Hub and would publish the layout of the user's disk."""
    path = Path(path).resolve()
    return path.name if path.is_dir() else f"{path.parent.name}/{path.name}"


def build_model(model_args: ModelArguments, tokenizer, label_vocab: LabelVocabulary, given: set[str]):
    if model_args.model_name_or_path is not None:
        return SU4MLCForMultiLabelClassification.from_pretrained(model_args.model_name_or_path)
    if model_args.embeddings_file is not None:
        dimension = word_vectors_dimension(model_args.embeddings_file)
        if "embedding_size" in given and model_args.embedding_size != dimension:
            raise ValueError(
                f"--embedding_size {model_args.embedding_size} but --embeddings_file {model_args.embeddings_file} "
                f"holds {dimension}-dimensional vectors: drop --embedding_size or give {dimension}."
            )
        model_args.embedding_size = dimension
    config_fields = {f.name for f in fields(SU4MLCConfig)} - {"id2label", "label2id"}
    overrides = {name: value for name, value in vars(model_args).items() if name in config_fields}
    config = SU4MLCConfig(source_vocab_size=len(tokenizer), id2label=label_vocab.id2label, **overrides)
    model = SU4MLCForMultiLabelClassification(config)
    model.generation_config.num_beams = model_args.num_beams
    if model_args.embeddings_file is not None:
        report = load_word_vectors(model_args.embeddings_file, tokenizer.get_vocab(), model.encoder.embed_tokens)
        logger.info(str(report))
    return model


def gold_multi_hot(split, label_vocab: LabelVocabulary) -> np.ndarray:
    """`(len(split), len(label_vocab))`: the split's gold labels (labels unseen in training left out)."""
    gold = split[GOLD_LABELS_COLUMN]
    return multi_hot((label_vocab.indices(labels, strict=False) for labels in gold), len(label_vocab))


def fit_model_ngram_classifier(model, tokenizer, prepared, label_vocab: LabelVocabulary) -> float:
    """Fits the model's n-gram classifier on the training split (choosing on validation when there is one) and
    returns the seconds it took."""
    validation = prepared.get("validation")
    special = set(tokenizer.all_special_ids)
    fit = fit_ngram_classifier(
        model,
        ["" if index in special else word for index, word in enumerate(tokenizer.convert_ids_to_tokens(range(len(tokenizer))))],
        prepared["train"]["input_ids"],
        gold_multi_hot(prepared["train"], label_vocab),
        None if validation is None else validation["input_ids"],
        None if validation is None else gold_multi_hot(validation, label_vocab),
    )
    logger.info(str(fit))
    return fit.seconds


def calibrate_decision(model, tokenizer, validation_split, label_vocab: LabelVocabulary, batch_size: int):
    """Chooses the model's decision rule on the validation split (see `su4mlc_hf.decision`) and records it in
    `model.config.decision_threshold`. Returns the choice and the validation scores under the chosen rule, the same
    as [`predict_split`] gives (it decodes the split the same way), so the evaluation need not decode it again."""
    scored = model.score_texts(validation_split["text"], tokenizer, batch_size=batch_size)
    gold = validation_split[GOLD_LABELS_COLUMN]
    sequences = multi_hot(scored.sequences, len(label_vocab))
    choice = tune_decision_threshold(
        gold_multi_hot(validation_split, label_vocab), scored.beam, sequences, scored.head, scored.ngram
    )
    model.config.decision_threshold = choice.threshold
    if choice.threshold is not None and choice.head_weight is not None:
        model.config.label_score_head_weight = choice.head_weight
    if choice.threshold is not None and choice.ngram_weight is not None:
        model.config.label_score_ngram_weight = choice.ngram_weight
    chosen = model.choose_labels(scored.sequences, model.mix_label_scores(scored.beam, scored.head, scored.ngram))
    return choice, label_name_scores(([label_vocab.labels[i] for i in row] for row in chosen), gold, label_vocab.labels)


def predict_split(
    model, tokenizer, split, label_vocab: LabelVocabulary, batch_size: int, progress_bar: bool = False
):
    """Predicts a prepared split with scores by the model's decision rule and scores them against every gold label of
    the file (labels unseen in training count as missed)."""
    predictions = model.predict(
        split["text"], tokenizer, batch_size=batch_size, return_scores=True, progress_bar=progress_bar
    )
    gold = split[GOLD_LABELS_COLUMN]
    scores = label_name_scores(([label for label, _ in row] for row in predictions), gold, label_vocab.labels)
    return (predictions, gold), scores


def write_predictions(
    model, tokenizer, test_split, label_vocab: LabelVocabulary, path: Path, batch_size: int, progress_bar: bool
):
    """Predicts the test texts with scores, writes one JSON line per text, and scores them against the gold labels."""
    (predictions, gold), scores = predict_split(model, tokenizer, test_split, label_vocab, batch_size, progress_bar)
    with atomic_open(path) as file:
        for text, predicted, gold_labels in zip(test_split["text"], predictions, gold):
            record = {
                "text": text,
                "labels": [label for label, _ in predicted],
                "scores": [round(score, 6) for _, score in predicted],
                "gold": gold_labels,
            }
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    return predictions, gold, scores


def write_attention_pictures(model, tokenizer, texts: list[str], folder: Path) -> list[Path]:
    """Draws the attention of each text's predicted labels (`model.explain`) to `folder/NNNN.png`, one per text."""
    explanations = model.explain(texts, tokenizer)
    return [
        save_attention_figure(explanation, folder / f"{index:04d}.png")
        for index, explanation in enumerate(explanations)
    ]


# Arguments that do not change what a run computes: a rerun in the same output folder may change them.
NOT_IDENTIFYING_ARGUMENTS = {
    "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "do_train", "do_eval", "do_predict", "cache_dir",
    "num_predictions_to_print", "per_device_eval_batch_size", "eval_accumulation_steps", "disable_tqdm", "report_to",
    "run_name", "project", "log_level", "log_level_replica", "log_on_each_node", "logging_first_step",
    "logging_steps", "logging_strategy", "logging_nan_inf_filter", "local_rank", "save_total_limit",
    "skip_memory_metrics", "ddp_timeout", "push_to_hub", "hub_model_id", "hub_strategy", "hub_token",
    "hub_private_repo", "hub_always_push", "hub_revision", "dataloader_num_workers", "dataloader_pin_memory",
    "dataloader_persistent_workers", "dataloader_prefetch_factor", "dataloader_multiprocessing_context", "explain",
}  # fmt: skip


def run_identity(
    model_args: ModelArguments, data_args: DataArguments, training_args: SU4MLCTrainingArguments, given: set[str]
) -> dict:
    """What identifies a run in its output folder: the model, data and training arguments that change what it
    computes, and the SHA-256 of every local data file it reads. A setting the recipe fills in (not given) is
    recorded as the recipe's, since the recipe's value is known only once the data is read."""
    data_paths = [data_args.dataset_dir, data_args.valid_ids_file]
    for path in (data_args.train_file, data_args.validation_file, data_args.test_file):
        data_paths += [path, str(Path(path).with_suffix(".tgt"))] if path and path.endswith(".src") else [path]
    arguments = {
        "model": vars(model_args),
        "data": {**vars(data_args), "files": files_fingerprint(path for path in data_paths if path is not None)},
        "training": training_args.to_dict(),
    }
    from_recipe = f"from --recipe {model_args.recipe}"
    return {
        kind: {
            name: from_recipe if name in PAPER_RECIPE and name not in given else value
            for name, value in values.items()
            if name not in NOT_IDENTIFYING_ARGUMENTS
        }
        for kind, values in arguments.items()
    }


def model_identity(config: SU4MLCConfig) -> dict:
    """The model a run trains: the fields of its config that SU4MLC defines (but the decision rule's threshold and
    label head weight, which training sets), and its labels in id order."""
    own_fields = {f.name for f in fields(SU4MLCConfig)} - {f.name for f in fields(PreTrainedConfig)}
    own_fields -= {"decision_threshold", "label_score_head_weight", "label_score_ngram_weight"}
    return {
        "config": {name: getattr(config, name) for name in sorted(own_fields)},
        "labels": [config.id2label[index] for index in sorted(config.id2label)],
    }


def needed_space(model, training_args: SU4MLCTrainingArguments) -> int:
    """Bytes a training run writes at most at one time, roughly: each checkpoint holds the weights and Adam's two
    moments (3x the weights); `save_total_limit` of them are kept (2 if unlimited: a lower bound), one more is
    written before the oldest goes, and the final model."""
    weights = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    return weights * (3 * ((training_args.save_total_limit or 2) + 1) + 1)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    # A run log left open by an earlier call in this process (`run` closes its own) must not record this run's checks.
    stop_run_log()
    parser = ArgumentParser((ModelArguments, DataArguments, SU4MLCTrainingArguments))
    model_args, data_args, training_args, given = parser.parse_command_line(sys.argv[1:] if argv is None else argv)
    check_argument_values(model_args, data_args, training_args)
    check_data_source(data_args)
    check_model_source(model_args, training_args)
    check_precision(training_args)
    pin_memory_only_with_an_accelerator(training_args)
    configure_logging(training_args)

    with OutputFolder(training_args.output_dir, is_main_process=training_args.process_index == 0) as output_folder:
        try:
            return run_in_folder(model_args, data_args, training_args, given, output_folder)
        except Exception as error:
            if is_disk_full(error):
                raise output_folder.disk_full_error(error) from error
            raise


def run_in_folder(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: SU4MLCTrainingArguments,
    given: set[str],
    output_folder: OutputFolder,
) -> dict[str, dict[str, float]]:
    """The run in its locked output folder: each phase (train, eval, predict, card) is skipped if the folder records
    it complete for the same run, so a rerun after a kill finishes the job and a rerun of a finished run does
    nothing."""
    output_folder.check_run(
        run_identity(model_args, data_args, training_args, given),
        overwrite=training_args.overwrite_output_dir,
        resume_from_checkpoint=training_args.resume_from_checkpoint,
    )
    phases = [phase for phase, wanted in (("train", training_args.do_train), ("eval", training_args.do_eval),
              ("predict", training_args.do_predict), ("card", True)) if wanted]  # fmt: skip
    if output_folder.is_complete(phases):
        logger.info(f"The run in {training_args.output_dir} is finished: nothing to do (its results are kept).")
        return output_folder.all_results(phases)
    trained = training_args.do_train and output_folder.is_complete(["train"])

    last_checkpoint = None
    resume = training_args.do_train and not trained and training_args.resume_from_checkpoint is None
    # In a data-parallel run the main process creates the folder: the others may get here before it.
    if resume and os.path.isdir(training_args.output_dir):
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
        if last_checkpoint is not None:
            logger.info(f"Resuming from the last checkpoint in the output folder: {last_checkpoint}")
    set_seed(training_args.seed)
    run_log = start_run_log(training_args.output_dir)

    raw = load_raw_datasets(data_args)
    if data_args.validation_split_percentage is not None:
        carve_validation_split(raw, data_args.validation_split_percentage, training_args.seed)
    check_requested_splits(raw, training_args, given)
    for split, limit in (
        ("train", data_args.max_train_samples),
        ("validation", data_args.max_eval_samples),
        ("test", data_args.max_predict_samples),
    ):
        if limit is not None and split in raw:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))

    tokenizer = label_vocab = None
    if model_args.model_name_or_path is not None:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_args.model_name_or_path)
        config = SU4MLCConfig.from_pretrained(model_args.model_name_or_path)
        label_vocab = LabelVocabulary.from_id2label(config.id2label)
    prepared, tokenizer, label_vocab, report = prepare_datasets(
        raw,
        tokenizer=tokenizer,
        label_vocab=label_vocab,
        max_words=data_args.max_words,
        overlong=data_args.overlong,
        label_order=data_args.label_order,
        vocab_size=data_args.vocab_size,
        min_frequency=data_args.min_word_frequency,
        max_label_vocab=data_args.max_label_vocab,
    )
    logger.info(f"Data:\n{report}")
    if training_args.do_train and model_args.model_name_or_path is None:
        statistics = TrainingDataStatistics.from_split(prepared["train"], len(label_vocab))
        applied = apply_recipe(
            recipe_settings(model_args.recipe, statistics), [model_args, data_args, training_args], given
        )
        logger.info(f"Recipe {model_args.recipe!r} for {statistics}: {applied}")
    train_without_validation(prepared, training_args)
    logger.info(f"su4mlc_hf {su4mlc_hf.__version__}; {training_summary(training_args, run_log)}")
    # As used: after the recipe and the switches above. (`to_json_string` blanks out tokens such as --hub_token.)
    logger.info(f"Training arguments: {training_args.to_json_string()}", extra={"run_log_only": True})

    ngram_fit_seconds = None
    if trained:  # by the run in the output folder, which was killed later
        model = SU4MLCForMultiLabelClassification.from_pretrained(training_args.output_dir)
    else:
        model = build_model(model_args, tokenizer, label_vocab, given)
        if training_args.do_train and model_args.ngram_classifier and model_args.model_name_or_path is None:
            ngram_fit_seconds = fit_model_ngram_classifier(model, tokenizer, prepared, label_vocab)
        if training_args.do_train:
            output_folder.check_free_space(needed_space(model, training_args))
    checkpoint = (training_args.resume_from_checkpoint or last_checkpoint) if training_args.do_train else None
    output_folder.check_model(
        model_identity(model.config),
        checkpoint=checkpoint,
        checkpoint_model=model_identity(SU4MLCConfig.from_pretrained(checkpoint)) if checkpoint else None,
    )
    logger.info(
        f"SU4MLC ({model.config.attention} attention): {model.num_parameters():,} parameters, "
        f"{len(label_vocab)} labels, {len(tokenizer)} words"
    )
    trainer = SU4MLCTrainer(
        model=model,
        args=training_args,
        train_dataset=prepared.get("train") if training_args.do_train and not trained else None,
        eval_dataset=prepared.get("validation") if training_args.do_eval or training_args.do_train else None,
        processing_class=tokenizer,
        data_collator=SU4MLCDataCollator(shuffle_labels=data_args.label_order == "random", seed=training_args.seed),
        model_card_kwargs={
            **dataset_card_fields(data_args),
            "training_hyperparameters": {
                "max_words": f"{data_args.max_words} ({data_args.overlong} longer texts)",
                "label_order": data_args.label_order,
                "word_vocab_size": len(tokenizer),
            },
        },
    )

    validation_scores = None  # of the decision rule, when this process chooses it
    if trained:
        # The card reports the training run's last evaluation, from its log.
        trainer.state = TrainerState.load_from_json(os.path.join(training_args.output_dir, TRAINER_STATE_NAME))
    elif training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        if ngram_fit_seconds is not None:
            train_result.metrics["ngram_fit_runtime"] = round(ngram_fit_seconds, 4)
        trainer.save_model()
        trainer.log_metrics("train", train_result.metrics)
        trainer.save_metrics("train", train_result.metrics)
        trainer.save_state()
        if model_args.decision == "auto" and "validation" in prepared:
            choice, validation_scores = calibrate_decision(
                trainer.model, tokenizer, prepared["validation"], label_vocab, training_args.per_device_eval_batch_size
            )
            logger.info(str(choice))
            trainer.save_model()
        output_folder.complete("train", train_result.metrics)

    if training_args.do_eval and not output_folder.is_complete(["eval"]):
        eval_results = None
        if "validation" in prepared:
            # Scored as the test split is: by the model's decision rule, over every gold label of the file (the
            # Trainer's evaluations during training score the best sequence over the known labels, to choose the
            # checkpoint).
            scores = validation_scores
            if scores is None:  # not calibrated in this process
                batch_size = training_args.per_device_eval_batch_size
                _, scores = predict_split(trainer.model, tokenizer, prepared["validation"], label_vocab, batch_size)
            eval_results = {f"eval_{name}": value for name, value in scores.items()}
            eval_results["eval_samples"] = len(prepared["validation"])
            trainer.log_metrics("eval", eval_results)
            trainer.save_metrics("eval", eval_results)
        output_folder.complete("eval", eval_results)

    predict_results = output_folder.results("predict")
    if predict_results is not None:
        trainer.model_card_kwargs.update(eval_results=predict_results, eval_split="test")
    # Prediction writes one file from the trained model: in a data-parallel run the main process does it alone.
    elif training_args.do_predict and "test" in prepared and trainer.is_world_process_zero():
        predictions, gold, scores = write_predictions(
            trainer.model,
            tokenizer,
            prepared["test"],
            label_vocab,
            Path(training_args.output_dir) / "predictions.jsonl",
            training_args.per_device_eval_batch_size,
            progress_bar=not training_args.disable_tqdm,
        )
        predict_results = {f"predict_{name}": value for name, value in scores.items()}
        trainer.model_card_kwargs.update(eval_results=scores, eval_split="test")
        trainer.log_metrics("predict", predict_results)
        trainer.save_metrics("predict", predict_results)
        output_folder.complete("predict", predict_results)
        for text, predicted, gold_labels in list(zip(prepared["test"]["text"], predictions, gold))[
            : data_args.num_predictions_to_print
        ]:
            shown = ", ".join(f"{label} ({score:.2f})" for label, score in predicted) or "(none)"
            print(f"\n{text[:160]!r}\n  predicted: {shown}\n  gold:      {', '.join(gold_labels) or '(none)'}")
        if data_args.explain:
            folder = Path(training_args.output_dir) / "attention"
            texts = prepared["test"]["text"][: data_args.explain]
            pictures = write_attention_pictures(trainer.model, tokenizer, texts, folder)
            logger.info(f"Attention pictures of {len(pictures)} test texts in {folder}")

    if training_args.push_to_hub:
        trainer.push_to_hub()  # saves the model, writes the card (create_model_card) and uploads the folder
    else:
        trainer.create_model_card()
    output_folder.complete("card")
    results = output_folder.all_results(phases)
    log_outcome(results, training_args.output_dir)
    return results


def log_outcome(results: dict[str, dict[str, float]], output_dir: str) -> None:
    """The last lines on the screen: the main scores of the last step that has them, and where everything is."""
    for step, split in (("predict", "test"), ("eval", "validation"), ("train", "training")):
        if step in results:
            shown = ", ".join(
                f"{name} {results[step][f'{step}_{name}']:.4f}"
                for name in ("micro_f1", "macro_f1", "hamming_loss", "subset_accuracy", "loss")
                if f"{step}_{name}" in results[step]
            )
            logger.info(f"Scores on the {split} split: {shown} (all of them in {step}_results.json)")
            break
    logger.info(f"Output folder: {Path(output_dir).resolve()}")


def configure_cpu_threads() -> None:
    """
    torch's intra-op threads: `OMP_NUM_THREADS` if set, else `DEFAULT_CPU_THREADS` (1) instead of torch's one per
    core. Measured on this project's 2-core machine while other jobs shared it, training the main job's model (128
    wide, hybrid, batches of 64; docs/s, torch's default of 2 threads vs 1 thread): load 1.7, 37 vs 832; load 1.7
    plus one busy process, 48 vs 710; load 8, 8-22 vs 283-388; load 11, 3 vs 63. A thread that waits for a core held
    by another job stalls the other at every operation. The count is fixed (not derived from the load) because it
    changes the bits of CPU results, and a resumed run must match the run it resumes; it is set once for the process,
    here.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(DEFAULT_CPU_THREADS)


def take_debug_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """`--debug` alone prints a failure's traceback on the screen (it always goes to the log file); transformers'
    `--debug OPTION` (`underflow_overflow`, `tpu_metrics_debug`) keeps its meaning."""
    options = {option.value for option in DebugOption}
    for index, item in enumerate(argv):
        following = set(argv[index + 1].split()) if index + 1 < len(argv) else set()
        if item == "--debug" and not following & options:
            return True, argv[:index] + argv[index + 1 :]
    return False, argv


def one_line(error: BaseException) -> str:
    """An error's message on one line. Errors about the input or the machine (`ValueError`s such as `DataFormatError`
    and `CommandLineError`, `OSError`s, a missing optional package's `ImportError`, an `OutputFolderError`) name the
    file, line, field, flag, folder or package themselves; any other error is unexpected, and its type helps a bug
    report."""
    message = " ".join(str(error).split()) or "(no message)"
    if isinstance(error, (ValueError, OSError, ImportError, OutputFolderError)):
        return message
    return f"{type(error).__name__}: {message} (unexpected: please report it with the traceback)"


def save_traceback(error: BaseException) -> Path:
    """Appends the traceback of `error` to the run log, or, before the run log starts (or when it cannot be
    written), to a new temporary file; returns the file."""
    text = "".join(traceback.format_exception(error))
    run_log = stop_run_log()
    if run_log is not None:
        try:
            with run_log.open("a", encoding="utf-8") as file:
                file.write(text)
            return run_log
        except OSError:
            pass
    with tempfile.NamedTemporaryFile("w", prefix="run_mlc-", suffix=".log", delete=False, encoding="utf-8") as file:
        file.write(text)
    return Path(file.name)


def run(argv: list[str] | None = None) -> int:
    """
    The command: [`main`] with a one-line ending for every failure. The line goes to stderr, names the file, line,
    field or flag at fault and what to do; the full traceback goes to the run log in the output folder (or a
    temporary file named in the line) and, with `--debug`, to the screen. Returns the exit status.
    """
    show_traceback, argv = take_debug_flag(sys.argv[1:] if argv is None else argv)
    configure_cpu_threads()
    try:
        main(argv)
    except KeyboardInterrupt:
        print("run_mlc.py: interrupted; rerun the same command to resume from the last checkpoint.", file=sys.stderr)
        return 130
    except Exception as error:
        saved = save_traceback(error)
        if show_traceback:
            traceback.print_exception(error)
        print(f"run_mlc.py: error: {one_line(error)} [traceback in {saved}]", file=sys.stderr)
        return 1
    finally:
        stop_run_log()
    return 0


if __name__ == "__main__":
    sys.exit(run())
