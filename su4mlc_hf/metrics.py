"""Multi-label classification metrics, written once for training, evaluation, the `evaluate` module and the benchmarks.

Every score reads two multi-hot matrices of shape `[n_examples, num_labels]` over the real labels (columns are
label *indices*, not label token ids; see `label_vocab`): `y_true` (gold) and `y_pred` (predicted).

- `hamming_loss`: fraction of the `n_examples * num_labels` cells where `y_true` and `y_pred` differ (lower
  is better; every other score is higher-is-better).
- `micro_precision`, `micro_recall`, `micro_f1`: precision, recall and F1 of the true positives, false
  positives and false negatives pooled over all labels and examples.
- `macro_precision`, `macro_recall`, `macro_f1`: the same scores per label, then their unweighted mean over
  **all** `num_labels` labels, including labels that neither `y_true` nor `y_pred` contains (they score 0.0,
  see below). `macro_f1` is the mean of the per-label F1 scores, not the F1 of `macro_precision` and
  `macro_recall`.
- `subset_accuracy`: fraction of examples whose predicted label set equals the gold set exactly.
- `example_f1`: F1 of each example's predicted set against its gold set, averaged over examples.

F1 is computed from counts, `2 * tp / (2 * tp + fp + fn)`, which equals `2 * P * R / (P + R)` whenever that is
defined.

Empty-set conventions (when a denominator is zero):

- Micro and macro precision, recall and F1 score 0.0, like scikit-learn's `zero_division=0`: they equal
  `sklearn.metrics.precision_recall_fscore_support(average="micro" | "macro", zero_division=0)`.
- `example_f1` scores **1.0** for an example whose gold and predicted sets are both empty: the model was exactly
  right, as `subset_accuracy` and `hamming_loss` also say for that example. This equals
  `sklearn.metrics.f1_score(average="samples", zero_division=1.0)`; scikit-learn's default
  (`zero_division="warn"`, which acts as 0) would score such an example 0.0. An example where only one of the
  two sets is empty scores 0.0 under both conventions.
- `hamming_loss` and `subset_accuracy` have no ill-defined case; they equal scikit-learn's `hamming_loss` and
  `accuracy_score`.

Token ids to label sets: `token_ids_to_multi_hot` reads generated or target label-token sequences with the
semantics of `LabelVocabulary.decode`: reading stops at the first EOS, and special tokens (PAD, BOS), the -100
ignore index and ids outside the label range are dropped, never mapped to some label. (The authors' 2018 code
scored such ids as label 0; we do not copy that.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from transformers.utils import logging

from .label_vocab import EOS_ID, NUM_SPECIAL_LABEL_TOKENS, LabelVocabulary

if TYPE_CHECKING:
    import evaluate
    from transformers import EvalPrediction

logger = logging.get_logger(__name__)

# transformers' ignore index: `DataCollatorForSeq2Seq` and the Trainer pad `label_ids` with it.
IGNORE_INDEX = -100

EVALUATE_METRIC_PATH = Path(__file__).parent / "evaluate_metric" / "su4mlc_multilabel.py"

METRIC_NAMES = (
    "hamming_loss",
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "subset_accuracy",
    "example_f1",
)


def multi_hot(label_index_lists: Iterable[Iterable[int]], num_labels: int) -> np.ndarray:
    """Turns label-index lists into a multi-hot matrix.

    Args:
        label_index_lists (`Iterable[Iterable[int]]`):
            One list of label indices (0-based among the real labels) per example. Repeated indices count once.
        num_labels (`int`):
            Number of real labels: the width of the matrix.

    Returns:
        `np.ndarray` of shape `(n_examples, num_labels)` and dtype `int8`: entry `[i, j]` is 1 when example `i`
        has label `j`.

    Raises:
        `ValueError`: `num_labels` is not positive, or an index is outside `[0, num_labels)`.
    """
    if num_labels < 1:
        raise ValueError(f"num_labels must be positive, got {num_labels}.")
    label_index_lists = [list(label_indices) for label_indices in label_index_lists]
    lengths = [len(label_indices) for label_indices in label_index_lists]
    rows = np.repeat(np.arange(len(label_index_lists)), lengths)
    columns = np.fromiter(chain.from_iterable(label_index_lists), dtype=np.int64, count=sum(lengths))
    out_of_range = (columns < 0) | (columns >= num_labels)
    if out_of_range.any():
        first = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(
            f"Label index {columns[first]} (example {rows[first]}) is outside [0, {num_labels}): label indices "
            "count real labels only, they are not label token ids."
        )
    matrix = np.zeros((len(label_index_lists), num_labels), dtype=np.int8)
    matrix[rows, columns] = 1
    return matrix


def _check_multi_hot(matrix: np.ndarray | Sequence[Sequence[int]], name: str) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D multi-hot matrix [n_examples, num_labels], got shape {matrix.shape}.")
    if not np.isin(matrix, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1 (a multi-hot matrix).")
    return matrix.astype(bool)


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise `numerator / denominator` in float64, 0.0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def multilabel_scores(
    y_true: np.ndarray | Sequence[Sequence[int]], y_pred: np.ndarray | Sequence[Sequence[int]]
) -> dict[str, float]:
    """Computes every multi-label metric (see the module docstring for definitions and empty-set conventions).

    Args:
        y_true (`np.ndarray` of shape `(n_examples, num_labels)`):
            Gold multi-hot matrix (0/1 or boolean).
        y_pred (`np.ndarray` of shape `(n_examples, num_labels)`):
            Predicted multi-hot matrix (0/1 or boolean).

    Returns:
        `dict[str, float]`: the keys of `METRIC_NAMES`, each a Python float in [0, 1].

    Raises:
        `ValueError`: a matrix is not 2-D or not 0/1, the shapes differ, or there are no examples or no labels.
    """
    y_true = _check_multi_hot(y_true, "y_true")
    y_pred = _check_multi_hot(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred shapes differ: {y_true.shape} vs {y_pred.shape}.")
    if y_true.size == 0:
        raise ValueError(f"Scores need at least one example and one label, got shape {y_true.shape}.")

    true_positives = y_true & y_pred
    # Per-label counts (sum over examples) give micro and macro scores; per-example counts give example F1.
    tp_per_label, true_per_label, pred_per_label = (m.sum(axis=0) for m in (true_positives, y_true, y_pred))
    tp_per_example, true_per_example, pred_per_example = (m.sum(axis=1) for m in (true_positives, y_true, y_pred))

    tp, true_total, pred_total = tp_per_label.sum(), true_per_label.sum(), pred_per_label.sum()
    example_f1 = _divide(2 * tp_per_example, true_per_example + pred_per_example)
    both_empty = (true_per_example == 0) & (pred_per_example == 0)
    example_f1[both_empty] = 1.0

    scores = {
        "hamming_loss": np.mean(y_true != y_pred),
        "micro_precision": _divide(tp, pred_total),
        "micro_recall": _divide(tp, true_total),
        "micro_f1": _divide(2 * tp, true_total + pred_total),
        "macro_precision": _divide(tp_per_label, pred_per_label).mean(),
        "macro_recall": _divide(tp_per_label, true_per_label).mean(),
        "macro_f1": _divide(2 * tp_per_label, true_per_label + pred_per_label).mean(),
        "subset_accuracy": np.mean((y_true == y_pred).all(axis=1)),
        "example_f1": example_f1.mean(),
    }
    return {name: float(scores[name]) for name in METRIC_NAMES}


def label_name_scores(
    predictions: Iterable[Iterable[str]], references: Iterable[Iterable[str]], label_names: Iterable[str]
) -> dict[str, float]:
    """Scores predicted label names against gold label names over the whole file, unknown gold labels included.

    The columns are `label_names` (the model's labels) followed by every gold label that is not one of them, so a
    gold label the model cannot predict (e.g. one seen only in the test data) counts as missed: a false negative
    in the micro scores, a label of F1 0.0 in the macro scores, and a wrong set in the subset accuracy. Scoring
    over the model's labels only would leave it out of every score.

    Args:
        predictions (`Iterable[Iterable[str]]`):
            Per example, the predicted label names; each must be one of `label_names`.
        references (`Iterable[Iterable[str]]`):
            Per example, the gold label names, e.g. the `gold_labels` column of `su4mlc_hf.data.prepare_datasets`.
        label_names (`Iterable[str]`):
            The model's labels, e.g. `LabelVocabulary.labels`.

    Returns:
        `dict[str, float]`: `multilabel_scores` over `len(label_names)` + (unknown gold labels) columns.

    Raises:
        `ValueError`: the two lists differ in length, or a prediction is not one of `label_names`.
    """
    predictions = [list(labels) for labels in predictions]
    references = [list(labels) for labels in references]
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} gold label sets.")
    columns = {name: index for index, name in enumerate(label_names)}
    not_model_labels = sorted({label for labels in predictions for label in labels} - columns.keys())
    if not_model_labels:
        raise ValueError(f"Predicted labels {not_model_labels[:10]} are not among the model's labels.")
    for labels in references:
        for label in labels:
            columns.setdefault(label, len(columns))
    y_true = multi_hot(([columns[label] for label in labels] for labels in references), len(columns))
    y_pred = multi_hot(([columns[label] for label in labels] for labels in predictions), len(columns))
    return multilabel_scores(y_true, y_pred)


def _pad_token_ids(sequences: np.ndarray | Iterable[Sequence[int]]) -> np.ndarray:
    """Stacks token-id sequences into a 2-D integer array, padding ragged ones with PAD."""
    if isinstance(sequences, np.ndarray):
        if sequences.ndim != 2 or not np.issubdtype(sequences.dtype, np.integer):
            raise ValueError(
                "Expected label token ids as a 2-D integer array [n_examples, sequence_length], got shape "
                f"{sequences.shape} and dtype {sequences.dtype}."
            )
        # Signed, so that subtracting the special-token offset cannot wrap unsigned ids around to label ids.
        return sequences.astype(np.int64, copy=False)
    rows = [np.asarray(sequence, dtype=np.int64) for sequence in sequences]
    if any(row.ndim != 1 for row in rows):
        raise ValueError("Each label token-id sequence must be 1-D.")
    token_ids = np.zeros((len(rows), max((len(row) for row in rows), default=0)), dtype=np.int64)
    for index, row in enumerate(rows):
        token_ids[index, : len(row)] = row
    return token_ids


def token_ids_to_multi_hot(
    sequences: np.ndarray | Iterable[Sequence[int]], label_vocab: LabelVocabulary
) -> tuple[np.ndarray, int]:
    """Turns generated or target label-token sequences into a multi-hot matrix, like `LabelVocabulary.decode`.

    Reading a sequence stops at its first EOS. Before it, label token ids set their label; special tokens
    (PAD, BOS), the -100 ignore index and ids outside the label vocabulary are dropped, never mapped to a label.

    Args:
        sequences (`np.ndarray` of shape `(n_examples, sequence_length)`, or a list of sequences):
            Label token ids, padded with PAD (0) and/or -100; ragged lists are accepted.
        label_vocab ([`LabelVocabulary`]):
            The label vocabulary the ids come from.

    Returns:
        `tuple[np.ndarray, int]`:
        - the multi-hot matrix of shape `(n_examples, len(label_vocab))`, dtype `int8`;
        - the number of ids read (before EOS) that are neither a label, a special token nor -100: ids the label
          vocabulary cannot have produced, so a non-zero count means the ids and the vocabulary do not match.
    """
    token_ids = _pad_token_ids(sequences)
    before_eos = ~np.logical_or.accumulate(token_ids == EOS_ID, axis=1)
    label_indices = token_ids - NUM_SPECIAL_LABEL_TOKENS
    is_label = (label_indices >= 0) & (label_indices < len(label_vocab))
    is_special = ((token_ids >= 0) & (token_ids < NUM_SPECIAL_LABEL_TOKENS)) | (token_ids == IGNORE_INDEX)

    rows, positions = np.nonzero(before_eos & is_label)
    matrix = np.zeros((token_ids.shape[0], len(label_vocab)), dtype=np.int8)
    matrix[rows, label_indices[rows, positions]] = 1
    num_unknown_ids = int((before_eos & ~is_label & ~is_special).sum())
    return matrix, num_unknown_ids


def build_compute_metrics(label_vocab: LabelVocabulary) -> Callable[[EvalPrediction], dict[str, float]]:
    """Builds the `compute_metrics` function of a `Seq2SeqTrainer` run with `predict_with_generate=True`.

    Args:
        label_vocab ([`LabelVocabulary`]):
            The label vocabulary of the model being evaluated.

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`: a function that reads an `EvalPrediction` whose
        `predictions` are the generated label token ids of shape `(n_examples, generated_length)` (padded with
        PAD 0 and/or -100; a tuple is read from its first element) and whose `label_ids` are the target ids of
        shape `(n_examples, target_length)` (padded with -100), and returns `multilabel_scores`.
    """

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        generated_ids = eval_prediction.predictions
        if isinstance(generated_ids, tuple):
            generated_ids = generated_ids[0]
        generated_ids = np.asarray(generated_ids)
        if generated_ids.ndim != 2 or not np.issubdtype(generated_ids.dtype, np.integer):
            raise ValueError(
                "compute_metrics expects generated label token ids [n_examples, generated_length]; got an array "
                f"of shape {generated_ids.shape} and dtype {generated_ids.dtype}. Evaluate with "
                "`predict_with_generate=True`."
            )
        y_pred, num_unknown_predicted = token_ids_to_multi_hot(generated_ids, label_vocab)
        y_true, num_unknown_target = token_ids_to_multi_hot(np.asarray(eval_prediction.label_ids), label_vocab)
        if num_unknown_predicted or num_unknown_target:
            logger.warning(
                f"Dropped {num_unknown_predicted} generated and {num_unknown_target} target token ids that are "
                f"outside the label vocabulary ({label_vocab.num_tokens} token ids): the model and the label "
                "vocabulary probably do not match."
            )
        return multilabel_scores(y_true, y_pred)

    return compute_metrics


def load_evaluate_metric(**load_kwargs) -> evaluate.EvaluationModule:
    """Loads this package's `evaluate` metric module (works offline: the script ships inside the package).

    Args:
        load_kwargs:
            Passed to `evaluate.load` (for instance `keep_in_memory=True` or `cache_dir`).

    Returns:
        `evaluate.EvaluationModule`: call `.compute(predictions=..., references=..., num_labels=...)` with
        label-index lists; it returns `multilabel_scores`.
    """
    # Imported here, not at module level: `evaluate` pulls in `datasets`, which training does not need.
    import evaluate

    return evaluate.load(str(EVALUATE_METRIC_PATH), **load_kwargs)
