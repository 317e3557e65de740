"""Tests of `su4mlc_hf.metrics` and of the `evaluate` module that wraps it."""

import importlib.util
import logging
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support
from transformers import EvalPrediction

from su4mlc_hf.label_vocab import LabelVocabulary
from su4mlc_hf.metrics import (
    EVALUATE_METRIC_PATH,
    METRIC_NAMES,
    build_compute_metrics,
    load_evaluate_metric,
    multi_hot,
    multilabel_scores,
    token_ids_to_multi_hot,
)

# ------------------------------------------------------------------------------------------------------
# Worked example: 5 examples, 5 labels, scored by hand.
#
#          gold (y_true)   predicted (y_pred)
#   ex0    {0, 1}          {0}
#   ex1    {2}             {1, 2}
#   ex2    {}              {}           <- both sets empty
#   ex3    {0, 2}          {}           <- empty predicted set
#   ex4    {}              {3}          <- empty gold set
#
# Per label (tp, gold count, predicted count -> precision, recall, F1 = 2tp / (gold + predicted)):
#   l0: tp 1, gold 2 (ex0, ex3), pred 1 (ex0) -> P 1,   R 1/2, F 2/3
#   l1: tp 0, gold 1 (ex0),      pred 1 (ex1) -> P 0,   R 0,   F 0
#   l2: tp 1, gold 2 (ex1, ex3), pred 1 (ex1) -> P 1,   R 1/2, F 2/3
#   l3: tp 0, gold 0,            pred 1 (ex4) -> P 0,   R 0/0 -> 0, F 0
#   l4: tp 0, gold 0,            pred 0       -> P, R, F all 0/0 -> 0 (still counted in the macro mean)
# hamming_loss:    differing cells ex0 l1, ex1 l1, ex3 l0, ex3 l2, ex4 l3 = 5 of 25 cells = 0.2
# micro:           tp 2, predicted 4, gold 5 -> P 2/4 = 0.5, R 2/5 = 0.4, F 2*2 / (5 + 4) = 4/9
# macro:           P (1 + 0 + 1 + 0 + 0) / 5 = 0.4, R (1/2 + 0 + 1/2 + 0 + 0) / 5 = 0.2,
#                  F (2/3 + 0 + 2/3 + 0 + 0) / 5 = 4/15
# subset_accuracy: only ex2 matches exactly -> 1/5 = 0.2
# example_f1:      ex0 2*1/(2+1) = 2/3, ex1 2*1/(1+2) = 2/3, ex2 both empty -> 1, ex3 0, ex4 0
#                  -> (2/3 + 2/3 + 1) / 5 = 7/15   (scikit-learn's default zero_division gives ex2 0 -> 4/15)
GOLD_LABEL_INDICES = [[0, 1], [2], [], [0, 2], []]
PREDICTED_LABEL_INDICES = [[0], [1, 2], [], [], [3]]
NUM_LABELS = 5
EXPECTED_SCORES = {
    "hamming_loss": 0.2,
    "micro_precision": 0.5,
    "micro_recall": 0.4,
    "micro_f1": 4 / 9,
    "macro_precision": 0.4,
    "macro_recall": 0.2,
    "macro_f1": 4 / 15,
    "subset_accuracy": 0.2,
    "example_f1": 7 / 15,
}

# The same example as label-token sequences. Label index i is token id i, then PAD, BOS, EOS = 5, 6, 7, so 8 is
# already outside the vocabulary.
LABEL_VOCAB = LabelVocabulary(["a", "b", "c", "d", "e"])
PAD, BOS, EOS = LABEL_VOCAB.pad_id, LABEL_VOCAB.bos_id, LABEL_VOCAB.eos_id
GENERATED_IDS = np.array(
    [
        [BOS, 0, EOS, 1, 2],  # {0}: the labels after EOS are ignored
        [BOS, 2, PAD, 1, 2],  # {1, 2}: no EOS, a PAD in the middle, a repeated label
        [BOS, EOS, PAD, PAD, PAD],  # {}
        [BOS, 99, -100, BOS, EOS],  # {}: 99 is not a label, -100 and BOS are dropped
        [BOS, 3, -5, 8, EOS],  # {3}: -5 and 8 are not labels
    ]
)
NUM_UNKNOWN_GENERATED_IDS = 3  # 99, -5 and 8
TARGET_IDS = np.array(
    [
        [0, 1, EOS, -100],
        [2, EOS, -100, -100],
        [EOS, -100, -100, -100],
        [0, 2, EOS, -100],
        [EOS, -100, -100, -100],
    ]
)


def assert_scores_equal(scores, expected):
    assert list(scores) == list(METRIC_NAMES)
    assert all(type(value) is float for value in scores.values())
    assert scores == pytest.approx(expected, abs=1e-12)


def test_multi_hot():
    expected = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(multi_hot(GOLD_LABEL_INDICES, NUM_LABELS), expected)
    np.testing.assert_array_equal(multi_hot([[1, 1]], 2), [[0, 1]])
    assert multi_hot([], 3).shape == (0, 3)


@pytest.mark.parametrize("label_indices", [[[0, 5]], [[-1]]])
def test_multi_hot_rejects_out_of_range_indices(label_indices):
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        multi_hot(label_indices, 5)


def test_multilabel_scores_worked_example():
    y_true = multi_hot(GOLD_LABEL_INDICES, NUM_LABELS)
    y_pred = multi_hot(PREDICTED_LABEL_INDICES, NUM_LABELS)
    assert_scores_equal(multilabel_scores(y_true, y_pred), EXPECTED_SCORES)
    assert_scores_equal(multilabel_scores(y_true.astype(bool), y_pred.astype(bool)), EXPECTED_SCORES)


def test_multilabel_scores_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes differ"):
        multilabel_scores(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        multilabel_scores(np.full((2, 3), 2), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        multilabel_scores(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="at least one example"):
        multilabel_scores(np.zeros((0, 3)), np.zeros((0, 3)))


# scikit-learn reads an (n, 1) 0/1 matrix as a binary target, not a multi-label one, so at least 2 labels.
multi_hot_pairs = st.tuples(st.integers(1, 12), st.integers(2, 6)).flatmap(
    lambda shape: st.tuples(*(arrays(np.int8, shape, elements=st.integers(0, 1)) for _ in range(2)))
)


@settings(deadline=None)
@given(multi_hot_pairs)
def test_multilabel_scores_match_scikit_learn(matrices):
    y_true, y_pred = matrices
    scores = multilabel_scores(y_true, y_pred)
    assert all(0.0 <= value <= 1.0 for value in scores.values())

    micro = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    macro = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    expected = {
        "hamming_loss": hamming_loss(y_true, y_pred),
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
        "macro_precision": macro[0],
        "macro_recall": macro[1],
        "macro_f1": macro[2],
        "subset_accuracy": accuracy_score(y_true, y_pred),
        # Our convention: an example with empty gold and predicted sets scores 1.0.
        "example_f1": f1_score(y_true, y_pred, average="samples", zero_division=1.0),
    }
    assert scores == pytest.approx(expected, abs=1e-9)

    # scikit-learn's default convention differs exactly by those both-empty examples.
    num_both_empty = np.sum(~y_true.any(axis=1) & ~y_pred.any(axis=1))
    sklearn_default_example_f1 = f1_score(y_true, y_pred, average="samples", zero_division=0)
    assert scores["example_f1"] - sklearn_default_example_f1 == pytest.approx(num_both_empty / len(y_true))


def test_token_ids_to_multi_hot_drops_non_label_ids():
    y_pred, num_unknown_ids = token_ids_to_multi_hot(GENERATED_IDS, LABEL_VOCAB)
    np.testing.assert_array_equal(y_pred, multi_hot(PREDICTED_LABEL_INDICES, NUM_LABELS))
    assert num_unknown_ids == NUM_UNKNOWN_GENERATED_IDS

    y_true, num_unknown_ids = token_ids_to_multi_hot(TARGET_IDS, LABEL_VOCAB)
    np.testing.assert_array_equal(y_true, multi_hot(GOLD_LABEL_INDICES, NUM_LABELS))
    assert num_unknown_ids == 0


def test_token_ids_to_multi_hot_accepts_ragged_lists():
    sequences = [[0, 1, EOS], [EOS], [BOS, 4], []]
    y, num_unknown_ids = token_ids_to_multi_hot(sequences, LABEL_VOCAB)
    np.testing.assert_array_equal(y, multi_hot([[0, 1], [], [4], []], NUM_LABELS))
    assert num_unknown_ids == 0


@settings(deadline=None)
@given(st.lists(st.lists(st.sampled_from([-100, -1, *range(10)]), max_size=8), min_size=1, max_size=6))
def test_token_ids_to_multi_hot_matches_label_vocabulary_decode(sequences):
    y, _ = token_ids_to_multi_hot(sequences, LABEL_VOCAB)
    decoded = [LABEL_VOCAB.indices(LABEL_VOCAB.decode(sequence)) for sequence in sequences]
    np.testing.assert_array_equal(y, multi_hot(decoded, NUM_LABELS))


def test_compute_metrics_on_eval_prediction(caplog):
    compute_metrics = build_compute_metrics(LABEL_VOCAB)
    with caplog.at_level(logging.WARNING, logger="su4mlc_hf.metrics"):
        scores = compute_metrics(EvalPrediction(predictions=GENERATED_IDS, label_ids=TARGET_IDS))
    assert_scores_equal(scores, EXPECTED_SCORES)
    assert f"Dropped {NUM_UNKNOWN_GENERATED_IDS} generated and 0 target token ids" in caplog.text

    # Generation outputs padded to a longer length, handed over as a tuple.
    padded = np.pad(GENERATED_IDS, ((0, 0), (0, 3)), constant_values=PAD)
    scores = compute_metrics(EvalPrediction(predictions=(padded, np.zeros(5)), label_ids=TARGET_IDS))
    assert_scores_equal(scores, EXPECTED_SCORES)


def test_compute_metrics_rejects_logits():
    compute_metrics = build_compute_metrics(LABEL_VOCAB)
    logits = np.zeros((5, 4, LABEL_VOCAB.num_tokens), dtype=np.float32)
    with pytest.raises(ValueError, match="predict_with_generate=True"):
        compute_metrics(EvalPrediction(predictions=logits, label_ids=TARGET_IDS))


def test_evaluate_module_matches_multilabel_scores(tmp_path):
    metric = load_evaluate_metric(keep_in_memory=True, cache_dir=str(tmp_path))
    assert metric.name == "su4mlc_multilabel"
    scores = metric.compute(
        predictions=PREDICTED_LABEL_INDICES, references=GOLD_LABEL_INDICES, num_labels=NUM_LABELS
    )
    assert_scores_equal(scores, EXPECTED_SCORES)

    for predicted, gold in zip(PREDICTED_LABEL_INDICES, GOLD_LABEL_INDICES):
        metric.add(predictions=predicted, references=gold)
    assert_scores_equal(metric.compute(num_labels=NUM_LABELS), EXPECTED_SCORES)

    with pytest.raises(ValueError, match="needs `num_labels`"):
        metric.compute(predictions=[[0]], references=[[0]])


def test_evaluate_module_explains_a_missing_package(monkeypatch):
    # `evaluate` imports a copy of the script from its cache, where `su4mlc_hf` is importable only if installed
    # (or on sys.path); the script must then say so instead of failing on a bare import error.
    monkeypatch.setitem(sys.modules, "su4mlc_hf.metrics", None)
    spec = importlib.util.spec_from_file_location("su4mlc_multilabel_copy", EVALUATE_METRIC_PATH)
    with pytest.raises(ImportError, match="pip install su4mlc-hf"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
