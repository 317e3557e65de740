"""Model cards of trained SU4MLC models: the Hub `README.md`, with `model-index` metadata, written from the model.

[`build_model_card`] fills `templates/model_card.md` from the model's config and generation config (architecture,
the settings that differ from the paper, labels) and from what the training run knows (data, hyperparameters,
scores). [`save_model_card`] writes it next to the weights; [`push_model_card`] uploads it to a Hub repository.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.constants import REPOCARD_NAME
from transformers.utils import logging

from .configuration_su4mlc import SU4MLCConfig
from .metrics import METRIC_NAMES
from .modeling_su4mlc import SU4MLCForMultiLabelClassification
from .output_folder import atomic_open
from .pipeline_su4mlc import SU4MLC_PIPELINE_TASK

logger = logging.get_logger(__name__)

MODEL_CARD_TEMPLATE_PATH = Path(__file__).parent / "templates" / "model_card.md"

MODEL_CARD_TAGS = ["su4mlc", "multi-label-classification", "seq2seq"]
# `model-index` task: the Hub task id, and the task's name (the paper's, as on leaderboards).
TASK_TYPE = "text-classification"
TASK_NAME = "Multi-Label Text Classification"
# Prefixes of metric names in `Trainer` metrics dicts (`metric_key_prefix`: "eval" for `evaluate`, "test" by
# default for `predict`, "predict" in `Trainer.log_metrics("predict", ...)` dicts).
METRIC_PREFIXES = ("test_", "eval_", "predict_")
METRIC_DISPLAY_NAMES = {
    "hamming_loss": "Hamming loss",
    "micro_precision": "Micro precision",
    "micro_recall": "Micro recall",
    "micro_f1": "Micro F1",
    "macro_precision": "Macro precision",
    "macro_recall": "Macro recall",
    "macro_f1": "Macro F1",
    "subset_accuracy": "Subset accuracy",
    "example_f1": "Example-based F1",
}
# The *2018 code* switches of `SU4MLCConfig` and the values the authors' released code uses; the class defaults
# follow the paper.
AUTHORS_CODE_SETTINGS = {
    "encoder_layers": 2,
    "decoder_layers": 2,
    "direction_merge": "sum",
    "mdc_padding": 1,
    "mdc_activation": "selu",
    "mdc_dropout": 0.05,
    "hybrid_output": "residual",
}


def _attention_description(config: SU4MLCConfig) -> str:
    """What the decoder attends at each step, for `config.attention` (the paper's Table 4 variants)."""
    if config.attention == "hybrid":
        output = "[s'_t; s̃_t]" if config.hybrid_output == "concat" else "s'_t + s̃_t (`hybrid_output=\"residual\"`)"
        return (
            "hybrid attention, the paper's model: the decoder state s_t attends the semantic units g, giving s'_t, "
            f"which attends the word annotations h, giving s̃_t; the next label is scored from o_t = {output}."
        )
    return {
        "none": "none; the next label is scored from the decoder state alone.",
        "word": "over the word annotations h only (Luong general attention), without the semantic units.",
        "mdc": "over the semantic units g only.",
        "additive": "the decoder state attends g and h separately and the two results are added.",
    }[config.attention]


def _mdc_activation_description(config: SU4MLCConfig) -> str:
    if config.mdc_activation == "none":
        return "no activation"
    if config.mdc_activation == "selu":
        return f"SELU activation with AlphaDropout({config.mdc_dropout})"
    dropout = f" and dropout {config.mdc_dropout}" if config.mdc_dropout else ""
    return f"ReLU activation{dropout}"


def _paper_deviations(config: SU4MLCConfig) -> list[str]:
    """The switchable settings where `config` differs from the defaults, marking those that are the authors' code's."""
    deviations = []
    for field, authors_code_value in AUTHORS_CODE_SETTINGS.items():
        value, default = getattr(config, field), getattr(SU4MLCConfig, field)
        if value != default:
            origin = "as in the authors' 2018 code; " if value == authors_code_value else ""
            deviations.append(f"`{field}={value!r}` ({origin}default: `{default!r}`)")
    if getattr(config, "label_head_loss_weight", 0.0) > 0:
        deviations.append(
            "an auxiliary per-label sigmoid head over the max-pooled word annotations and semantic units, trained with "
            f"binary cross-entropy (`label_head_loss_weight={config.label_head_loss_weight}`; not in the paper)"
        )
    if getattr(config, "label_head_ngram_features", 0) > 0:
        deviations.append(
            "a linear classifier over each text's words and word bigrams, hashed into "
            f"`label_head_ngram_features={config.label_head_ngram_features}` features, inside that head (not in the "
            "paper)"
        )
    has_ngram_classifier = getattr(config, "ngram_classifier_bigrams", None) is not None
    if has_ngram_classifier:
        deviations.append(
            "a linear SVM per label over each text's TF-IDF words, "
            f"`ngram_classifier_bigrams={config.ngram_classifier_bigrams}` word bigrams and "
            f"`ngram_classifier_char_ngrams={config.ngram_classifier_char_ngrams}` character 2-5-grams of its words, "
            "fitted on the training split before the network, whose calibrated probabilities enter the label scores "
            "(not in the paper)"
        )
    if getattr(config, "decision_threshold", None) is not None:
        mixed = []
        if getattr(config, "label_head_loss_weight", 0.0) > 0:
            mixed.append(f"the label head's probability with weight `label_score_head_weight={config.label_score_head_weight}`")
        if has_ngram_classifier:
            mixed.append(
                f"the n-gram classifier's with weight `label_score_ngram_weight={config.label_score_ngram_weight}`"
            )
        deviations.append(
            "labels chosen by their score (probability of being in the set) >= "
            f"`decision_threshold={config.decision_threshold}`, tuned on validation, instead of the best sequence's "
            "labels (not in the paper)"
            + (f"; the score mixes the beam marginal with {' and '.join(mixed)}" if mixed else "")
        )
    return deviations


def _multilabel_scores(eval_results: Mapping[str, float]) -> dict[str, float]:
    """The multi-label scores of `eval_results`, by bare metric name in `METRIC_NAMES` order.

    Keys may carry a `test_`/`eval_`/`predict_` prefix, so a `Trainer` metrics dict can be passed as is; its other
    entries (loss, runtime, ...) are left out.

    Raises:
        `ValueError`: a metric is given twice, or `eval_results` is not empty but holds no multi-label score.
    """
    scores: dict[str, float] = {}
    left_out = []
    for key, value in eval_results.items():
        name = next((key[len(prefix) :] for prefix in METRIC_PREFIXES if key.startswith(prefix)), key)
        if name not in METRIC_NAMES:
            left_out.append(key)
            continue
        if name in scores:
            raise ValueError(f"eval_results gives {name!r} more than once (under two prefixes?): {list(eval_results)}")
        scores[name] = float(value)
    if eval_results and not scores:
        raise ValueError(
            f"eval_results holds none of the scores {METRIC_NAMES}, prefixed by one of {METRIC_PREFIXES} or not."
        )
    if left_out:
        logger.info(f"The model card leaves out entries that are not multi-label scores: {left_out}")
    return {name: scores[name] for name in METRIC_NAMES if name in scores}


def _table_cell(value: Any) -> str:
    """`value` as one cell of a Markdown table: on one line, with its pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def build_model_card(
    model: SU4MLCForMultiLabelClassification,
    *,
    dataset_name: str | None = None,
    dataset_description: str | None = None,
    dataset_id: str | None = None,
    eval_results: Mapping[str, float] | None = None,
    eval_split: str = "test",
    training_hyperparameters: Mapping[str, Any] | None = None,
    label_counts: Mapping[str, int] | None = None,
    repo_id: str | None = None,
    license: str | None = "apache-2.0",
    language: str | list[str] | None = "en",
    extra_notes: str | None = None,
) -> ModelCard:
    """Writes the model card (Hub `README.md`) of a trained SU4MLC model.

    Args:
        model ([`SU4MLCForMultiLabelClassification`]):
            The trained model: the card describes its config (architecture, settings that differ from the paper,
            labels in generation order) and its generation config (decoding).
        dataset_name (`str`, *optional*):
            Readable name of the training data, e.g. `"GoEmotions"`. Required with `eval_results`.
        dataset_description (`str`, *optional*):
            A sentence or two on the training data (source, size, license).
        dataset_id (`str`, *optional*):
            Hub id of the dataset (e.g. `"google-research-datasets/go_emotions"`): listed under `datasets` in the
            metadata and used as the `model-index` dataset type (which falls back to `dataset_name`).
        eval_results (`Mapping[str, float]`, *optional*):
            Scores named as in `metrics.METRIC_NAMES`, optionally prefixed `test_`/`eval_`/`predict_` (a `Trainer`
            metrics dict works as is; entries that are not multi-label scores are left out). They fill the
            evaluation table and the `model-index` metadata.
        eval_split (`str`, *optional*, defaults to `"test"`):
            The split `eval_results` were computed on.
        training_hyperparameters (`Mapping[str, Any]`, *optional*):
            Hyperparameter name to value, shown as a table in the given order.
        label_counts (`Mapping[str, int]`, *optional*):
            Training examples per label, shown beside the label list. Every key must be a label of the model.
        repo_id (`str`, *optional*):
            The Hub repository the card is for (`"user/name"`): names the model and goes in the loading examples.
        license (`str`, *optional*, defaults to `"apache-2.0"`):
            Hub license id of the model.
        language (`str` or `list[str]`, *optional*, defaults to `"en"`):
            Language code(s) of the training texts.
        extra_notes (`str`, *optional*):
            Markdown added as a "Notes" section.

    Returns:
        [`huggingface_hub.ModelCard`]: the card; `str(card)` is the README text, `card.data` its metadata.

    Raises:
        `ValueError`: `eval_results` without `dataset_name` or without any multi-label score, a metric given twice,
        or a `label_counts` key that is not a label of the model.
    """
    config = model.config
    labels = [config.id2label[index] for index in range(config.num_labels)]
    label_counts = dict(label_counts or {})
    unknown_labels = sorted(set(label_counts) - set(labels))
    if unknown_labels:
        raise ValueError(f"label_counts names labels the model does not have: {unknown_labels}")
    scores = _multilabel_scores(eval_results or {})
    if scores and dataset_name is None:
        raise ValueError("eval_results need a dataset_name: the model-index names the dataset they were computed on.")

    model_name = repo_id.split("/")[-1] if repo_id else "SU4MLC" + (f" ({dataset_name})" if dataset_name else "")
    card_data = ModelCardData(
        language=language,
        license=license,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=MODEL_CARD_TAGS,
        datasets=[dataset_id] if dataset_id else None,
        # The model-index's name; without scores there is no model-index.
        model_name=model_name if scores else None,
        eval_results=[
            EvalResult(
                task_type=TASK_TYPE,
                task_name=TASK_NAME,
                dataset_type=dataset_id or dataset_name,
                dataset_name=dataset_name,
                dataset_split=eval_split,
                metric_type=name,
                metric_name=METRIC_DISPLAY_NAMES[name],
                metric_value=value,
            )
            for name, value in scores.items()
        ]
        or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE_PATH),
        model_name=model_name,
        model_path=repo_id or "path/to/model",
        pipeline_task=SU4MLC_PIPELINE_TASK,
        config=config,
        generation_config=model.generation_config,
        num_parameters=model.num_parameters(),
        attention_description=_attention_description(config),
        mdc_activation_description=_mdc_activation_description(config),
        paper_deviations=_paper_deviations(config),
        dataset_name=dataset_name,
        dataset_description=dataset_description,
        hyperparameters=[
            (_table_cell(name), _table_cell(value)) for name, value in (training_hyperparameters or {}).items()
        ],
        scores=[(METRIC_DISPLAY_NAMES[name], value) for name, value in scores.items()],
        eval_split=eval_split,
        labels=[(index, _table_cell(label), label_counts.get(label, 0)) for index, label in enumerate(labels)],
        label_counts_given=bool(label_counts),
        extra_notes=extra_notes,
    )


def save_model_card(card: ModelCard, folder: str | os.PathLike) -> Path:
    """Writes `card` as `folder/README.md`, atomically ([`atomic_open`]): readers see the old file or the new one,
    never a part; the file gets the umask's mode.

    Returns:
        `Path`: the path of the written `README.md`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card_path = folder / REPOCARD_NAME
    # newline="" keeps the card's own line endings, as `RepoCard.save` does.
    with atomic_open(card_path, newline="") as file:
        file.write(str(card))
    return card_path


def push_model_card(
    card: ModelCard,
    repo_id: str,
    *,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str = "Upload SU4MLC model card",
) -> CommitInfo:
    """Uploads `card` as the `README.md` of the Hub model repository `repo_id` (which must exist).

    Push it after `model.push_to_hub` and `tokenizer.push_to_hub`: each of those uploads a `README.md` too, a
    generic one when it cannot read the repository's card.

    Returns:
        [`huggingface_hub.CommitInfo`]: the commit that uploaded the card.
    """
    return HfApi().upload_file(
        path_or_fileobj=str(card).encode("utf-8"),
        path_in_repo=REPOCARD_NAME,
        repo_id=repo_id,
        repo_type="model",
        token=token,
        revision=revision,
        create_pr=create_pr,
        commit_message=commit_message,
    )


__all__ = ["build_model_card", "push_model_card", "save_model_card"]
