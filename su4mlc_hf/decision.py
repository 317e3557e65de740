"""From per-label scores to label sets: the threshold decision rule and its tuning on a validation split.

*Not in the paper*, which takes the labels of the best generated sequence. Each label's score is its probability of
being in the set (summed over the final beams, see `SU4MLCForMultiLabelClassification.score_labels`); a threshold on
it can trade precision for recall, which the single best sequence cannot. Whether it does better is data-dependent,
so `run_mlc.py` tunes it on the validation split and keeps it only where it beats the best sequence there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import multilabel_scores

# Thresholds tried, from 0.05 to 0.95: a grid fine enough that validation micro-F1 changes little between
# neighbours, coarse enough that 5,000 validation texts do not overfit it.
THRESHOLD_GRID = tuple(round(value, 3) for value in np.arange(0.05, 0.951, 0.025))


def threshold_decision(scores: np.ndarray, threshold: float) -> np.ndarray:
    """
    Args:
        scores (`np.ndarray` of shape `(num_texts, num_labels)`): per-label scores in [0, 1].
        threshold (`float`): labels scoring at least this are chosen.

    Returns:
        `np.ndarray` of shape `(num_texts, num_labels)`, dtype int: the chosen labels as a multi-hot matrix; a text
        with no label at or above the threshold gets its top-scoring label (every text has at least one label, as
        with the generated sequences, which always hold one unless EOS comes first).
    """
    scores = np.asarray(scores, dtype=np.float64)
    chosen = scores >= threshold
    empty = ~chosen.any(axis=1)
    chosen[np.flatnonzero(empty), scores[empty].argmax(axis=1)] = True
    return chosen.astype(np.int64)


@dataclass
class DecisionChoice:
    """What [`tune_decision_threshold`] chose and why: validation micro-F1 of the best sequence and of the best
    threshold; `threshold` is None when the best sequence did at least as well."""

    threshold: float | None
    best_threshold: float
    sequence_micro_f1: float
    threshold_micro_f1: float

    def __str__(self) -> str:
        rule = "the best sequence" if self.threshold is None else f"label scores >= {self.threshold}"
        return (
            f"decision rule: {rule} (validation micro-F1: best sequence {self.sequence_micro_f1:.4f}, threshold "
            f"{self.best_threshold} {self.threshold_micro_f1:.4f})"
        )


def tune_decision_threshold(y_true: np.ndarray, scores: np.ndarray, sequence_multi_hot: np.ndarray) -> DecisionChoice:
    """
    Chooses between the best sequence and a threshold on the label scores by validation micro-F1.

    Args:
        y_true (`np.ndarray` of shape `(num_texts, num_labels)`): gold multi-hot matrix.
        scores (`np.ndarray` of shape `(num_texts, num_labels)`): the label scores.
        sequence_multi_hot (`np.ndarray` of shape `(num_texts, num_labels)`): the best sequences' labels.
    """
    sequence_f1 = multilabel_scores(y_true, sequence_multi_hot)["micro_f1"]
    by_threshold = {
        threshold: multilabel_scores(y_true, threshold_decision(scores, threshold))["micro_f1"]
        for threshold in THRESHOLD_GRID
    }
    best = max(by_threshold, key=lambda threshold: (by_threshold[threshold], -abs(threshold - 0.5)))
    return DecisionChoice(
        threshold=best if by_threshold[best] > sequence_f1 else None,
        best_threshold=best,
        sequence_micro_f1=sequence_f1,
        threshold_micro_f1=by_threshold[best],
    )


__all__ = ["DecisionChoice", "THRESHOLD_GRID", "threshold_decision", "tune_decision_threshold"]
