"""From per-label scores to label sets: the threshold decision rule and its tuning on a validation split.

*Not in the paper*, which takes the labels of the best generated sequence. Each label's score is its probability of
being in the set (summed over the final beams, see `SU4MLCForMultiLabelClassification.score_labels`, and mixed with
the label head's probability when the model has one); a threshold on it can trade precision for recall, which the
single best sequence cannot. Whether it does better, and how much the head should weigh, is data-dependent, so
`run_mlc.py` tunes both on the validation split and keeps the threshold only where it beats the best sequence there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import multilabel_scores

# Thresholds tried, from 0.05 to 0.95: a grid fine enough that validation micro-F1 changes little between
# neighbours, coarse enough that 5,000 validation texts do not overfit it.
THRESHOLD_GRID = tuple(round(value, 3) for value in np.arange(0.05, 0.951, 0.025))
# Weights of the label head's probability in the label scores (the beam marginals get the rest). On Reuters a head
# with n-gram features outscores the generated sequences, on GoEmotions the two are close: no single weight suits both.
HEAD_WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# Weights of the n-gram classifier's probability against the network's score: from the network alone to the n-gram
# classifier alone, which of the two is stronger depends on the data (BENCHMARKS.md).
NGRAM_WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def mix_label_scores(beam_scores, head_scores, head_weight: float, ngram_scores=None, ngram_weight: float = 0.0):
    """
    The label scores (tensors or arrays of any one shape): the network's, `(1 - w) * beam + w * head` for head weight
    w (the beam marginals alone without a head, `head_scores` None), and with an n-gram classifier
    `(1 - v) * network + v * ngram` for n-gram weight v.
    """
    scores = beam_scores if head_scores is None else (1 - head_weight) * beam_scores + head_weight * head_scores
    if ngram_scores is None:
        return scores
    return (1 - ngram_weight) * scores + ngram_weight * ngram_scores


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
    """What [`tune_decision_threshold`] chose and why: validation micro- and macro-F1 of the best sequence and of the
    best threshold; `threshold` is None when the best sequence did at least as well (see [`objective`])."""

    threshold: float | None
    best_threshold: float
    sequence_micro_f1: float
    threshold_micro_f1: float
    sequence_macro_f1: float
    threshold_macro_f1: float
    head_weight: float | None = None
    ngram_weight: float | None = None

    def __str__(self) -> str:
        rule = "the best sequence" if self.threshold is None else f"label scores >= {self.threshold}"
        weight = "" if self.head_weight is None else f", label head weight {self.head_weight}"
        weight += "" if self.ngram_weight is None else f", n-gram weight {self.ngram_weight}"
        return (
            f"decision rule: {rule} (validation micro-F1 / macro-F1: best sequence {self.sequence_micro_f1:.4f} / "
            f"{self.sequence_macro_f1:.4f}, threshold {self.best_threshold}{weight} {self.threshold_micro_f1:.4f} / "
            f"{self.threshold_macro_f1:.4f})"
        )


def tune_decision_threshold(
    y_true: np.ndarray,
    beam_scores: np.ndarray,
    sequence_multi_hot: np.ndarray,
    head_scores: np.ndarray | None = None,
    ngram_scores: np.ndarray | None = None,
) -> DecisionChoice:
    """
    Chooses between the best sequence and a threshold on the label scores by [`objective`] on validation; with a
    label head, the head's weight in the scores too (`HEAD_WEIGHT_GRID`), and with an n-gram classifier its weight
    (`NGRAM_WEIGHT_GRID`). Ties go to the threshold and weights nearest 0.5.

    Args:
        y_true (`np.ndarray` of shape `(num_texts, num_labels)`): gold multi-hot matrix.
        beam_scores (`np.ndarray` of shape `(num_texts, num_labels)`): the beam marginals (the label scores of a
            model without a head).
        sequence_multi_hot (`np.ndarray` of shape `(num_texts, num_labels)`): the best sequences' labels.
        head_scores (`np.ndarray` of shape `(num_texts, num_labels)`, *optional*): the label head's probabilities.
        ngram_scores (`np.ndarray` of shape `(num_texts, num_labels)`, *optional*): the n-gram classifier's.
    """
    sequence = multilabel_scores(y_true, sequence_multi_hot)
    head_weights = (None,) if head_scores is None else HEAD_WEIGHT_GRID
    ngram_weights = (None,) if ngram_scores is None else NGRAM_WEIGHT_GRID
    by_rule = {}
    for head_weight in head_weights:
        for ngram_weight in ngram_weights:
            scores = mix_label_scores(beam_scores, head_scores, head_weight, ngram_scores, ngram_weight)
            for threshold in THRESHOLD_GRID:
                rule = head_weight, ngram_weight, threshold
                by_rule[rule] = multilabel_scores(y_true, threshold_decision(scores, threshold))

    def distance_from_half(value: float | None) -> float:
        return 0.0 if value is None else abs(value - 0.5)

    def preference(rule: tuple[float | None, float | None, float]) -> tuple[float, ...]:
        return (objective(by_rule[rule]), *(-distance_from_half(value) for value in reversed(rule)))

    head_weight, ngram_weight, best = rule = max(by_rule, key=preference)
    return DecisionChoice(
        threshold=best if objective(by_rule[rule]) > objective(sequence) else None,
        best_threshold=best,
        sequence_micro_f1=sequence["micro_f1"],
        threshold_micro_f1=by_rule[rule]["micro_f1"],
        sequence_macro_f1=sequence["macro_f1"],
        threshold_macro_f1=by_rule[rule]["macro_f1"],
        head_weight=head_weight,
        ngram_weight=ngram_weight,
    )


def objective(scores: dict[str, float]) -> tuple[float, float]:
    """What the decision rule (and the n-gram classifier's C) is chosen for: validation micro-F1, as the linear
    baselines are tuned (`benchmarks/quality.py`) and as the paper reports; macro-F1 breaks ties. (Session 6 chose for
    micro-F1 + macro-F1, which on a model with the n-gram classifier traded 0.004-0.012 of validation micro-F1 for
    macro-F1 on GoEmotions and Reuters: BENCHMARKS.md "Third round".)"""
    return scores["micro_f1"], scores["macro_f1"]


__all__ = [
    "DecisionChoice",
    "HEAD_WEIGHT_GRID",
    "NGRAM_WEIGHT_GRID",
    "THRESHOLD_GRID",
    "mix_label_scores",
    "objective",
    "threshold_decision",
    "tune_decision_threshold",
]
