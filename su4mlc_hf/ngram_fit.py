"""Fitting the n-gram classifier ([`SU4MLCNgramClassifier`]) of a model, before its network is trained.

*Not in the paper.* One linear SVM per label (scikit-learn's `LinearSVC`, squared hinge loss) over the TF-IDF words,
bigrams and character n-grams the classifier computes itself from the word ids, so that training and prediction read
the same features; then a logistic calibration of its margins into probabilities. With a validation split, the SVMs' C is
chosen on it (by [`decision.objective`] at the best threshold) and the calibration is fitted on its margins; without
one, C is `DEFAULT_C` and the calibration is fitted on the training margins.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import joblib
import numpy as np
import scipy.sparse
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from .decision import THRESHOLD_GRID, objective, threshold_decision
from .metrics import multilabel_scores
from .modeling_su4mlc import SU4MLCForMultiLabelClassification, SU4MLCNgramClassifier

# The SVMs' C values tried on validation (those of the linear baselines' grid in `benchmarks/quality.py`), and the
# one used without a validation split.
C_GRID = (0.3, 1.0)
DEFAULT_C = 1.0
# A bigram or character n-gram is a feature when it occurs in at least this many training texts (rarer ones cannot
# generalise).
MIN_NGRAM_TEXTS = 2
# Character n-grams of each word padded with a space at each end, from 2 to 5 characters (the linear baselines').
CHAR_NGRAM_SIZES = range(2, 6)
# The classifier's weights, (words + bigrams + character n-grams) × labels, stay within this many: the n-grams found
# in most training texts are kept, half of the room for each kind at most. (Reuters: 154k features × 89 labels.)
MAX_WEIGHTS = 1 << 25
# Texts featurised at once.
BATCH_SIZE = 256


@dataclass
class NgramFit:
    """What [`fit_ngram_classifier`] chose and measured."""

    c: float
    num_bigrams: int
    num_char_ngrams: int
    validation_micro_f1: float | None
    validation_macro_f1: float | None
    seconds: float

    def __str__(self) -> str:
        scores = (
            "" if self.validation_micro_f1 is None
            else f"; alone on validation micro-F1 / macro-F1 {self.validation_micro_f1:.4f} / {self.validation_macro_f1:.4f}"
        )
        return (
            f"n-gram classifier: {self.num_bigrams:,} bigrams, {self.num_char_ngrams:,} character n-grams, C={self.c}"
            f"{scores}, fitted in {self.seconds:.0f} s"
        )


def most_frequent(values: np.ndarray, texts: np.ndarray, limit: int) -> np.ndarray:
    """The sorted `values` found in at least `MIN_NGRAM_TEXTS` texts; the `limit` found in most texts when there are
    more (ties: the smaller value)."""
    values, texts = values[texts >= MIN_NGRAM_TEXTS], texts[texts >= MIN_NGRAM_TEXTS]
    if len(values) > limit:
        values = values[np.argsort(-texts, kind="stable")[:limit]]
    return np.sort(values)


def bigram_vocabulary(word_id_lists: Sequence[Sequence[int]], vocab_size: int, limit: int) -> torch.LongTensor:
    """The sorted keys (`left * vocab_size + right`) of the bigrams kept by [`most_frequent`]."""
    keys = [np.unique(np.asarray(ids[:-1], dtype=np.int64) * vocab_size + np.asarray(ids[1:], dtype=np.int64))
            for ids in word_id_lists if len(ids) > 1]  # fmt: skip
    if not keys:
        return torch.zeros(0, dtype=torch.long)
    return torch.from_numpy(most_frequent(*np.unique(np.concatenate(keys), return_counts=True), limit))


def char_wb_ngrams(word: str) -> list[str]:
    """A word's character n-grams as scikit-learn's `char_wb` analyzer makes them: of the word padded with a space at
    each end, each size of `CHAR_NGRAM_SIZES`, up to the first size that covers the whole padded word (which counts
    once, even if shorter)."""
    padded, ngrams = f" {word} ", []
    for n in CHAR_NGRAM_SIZES:
        ngrams += [padded[start : start + n] for start in range(max(1, len(padded) - n + 1))]
        if len(padded) <= n:
            break
    return ngrams


def char_ngram_table(words: Sequence[str]) -> tuple[list[str], torch.LongTensor, torch.LongTensor]:
    """The distinct character n-grams of `words` (word id → word; "" for the special tokens) and the table of each
    word's: `(n-grams, offsets, ids)`, word w's n-grams being `ids[offsets[w]:offsets[w + 1]]` (an n-gram twice in
    a word, twice)."""
    index: dict[str, int] = {}
    offsets, ids = [0], []
    for word in words:
        ids.extend(index.setdefault(ngram, len(index)) for ngram in (char_wb_ngrams(word) if word else ()))
        offsets.append(len(ids))
    return list(index), torch.tensor(offsets, dtype=torch.long), torch.tensor(ids, dtype=torch.long)


def new_classifier(config, bigram_keys: torch.LongTensor, num_char_ngrams: int, offsets, ids: torch.LongTensor):
    """An unfitted classifier with these bigrams and `num_char_ngrams` character n-grams, of ids 0, 1, ... in the
    word → character n-gram table `(offsets, ids)` (its sizes set in `config`)."""
    config.ngram_classifier_bigrams = bigram_keys.numel()
    config.ngram_classifier_char_ngrams = num_char_ngrams
    config.ngram_classifier_char_entries = ids.numel()
    classifier = SU4MLCNgramClassifier(config)
    classifier.bigram_keys.copy_(bigram_keys)
    classifier.char_ngram_offsets.copy_(offsets)
    classifier.char_ngram_ids.copy_(ids + config.source_vocab_size + bigram_keys.numel())
    return classifier


def feature_matrix(classifier: SU4MLCNgramClassifier, word_id_lists: Sequence[Sequence[int]]) -> scipy.sparse.csr_matrix:
    """`(len(word_id_lists), classifier.num_features)`: the texts' TF-IDF vectors, as the classifier computes them."""
    blocks = []
    for start in range(0, len(word_id_lists), BATCH_SIZE):
        batch = word_id_lists[start : start + BATCH_SIZE]
        length = max((len(ids) for ids in batch), default=0)
        input_ids = torch.zeros(len(batch), max(length, 1), dtype=torch.long)
        mask = torch.zeros_like(input_ids, dtype=torch.bool)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = True
        with torch.no_grad():
            rows, ids, values = classifier.features(input_ids, mask)
        shape = (len(batch), classifier.num_features)
        # float64: what liblinear reads (it would copy a float32 matrix once per label).
        values = values.double().numpy()
        blocks.append(scipy.sparse.csr_matrix((values, (rows.numpy(), ids.numpy())), shape=shape))
    return scipy.sparse.vstack(blocks, format="csr")


def fit_label_svm(features: scipy.sparse.csr_matrix, column: np.ndarray, c: float, seed: int):
    """One label's `LinearSVC` → its `(num_features,)` weights and its bias; None for a constant label."""
    if column.min() == column.max():
        return None
    svm = LinearSVC(C=c, random_state=seed).fit(features, column)
    return svm.coef_[0].astype(np.float32), svm.intercept_[0]


def fit_svms(features: scipy.sparse.csr_matrix, targets: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """One `LinearSVC` per label → `(num_features, num_labels)` weights and `(num_labels,)` biases. A label that is
    never (always) present in training gets no SVM: weights 0 and bias -1 (+1), a margin that says no (yes).

    The labels' SVMs are fitted side by side, one process per CPU core this one may use (this runs before the network
    trains, so the cores are free; on 2 cores GoEmotions' 28 take about half the time). Processes, not threads:
    liblinear draws the order in which it visits the texts from one random generator per process, which threads
    would share, and the same seed would no longer give the same weights. Label j's SVM has the random state j."""
    weights = np.zeros((features.shape[1], targets.shape[1]), dtype=np.float32)
    biases = np.zeros(targets.shape[1], dtype=np.float32)
    fitted = joblib.Parallel(n_jobs=len(os.sched_getaffinity(0)))(
        joblib.delayed(fit_label_svm)(features, targets[:, label], c, label) for label in range(targets.shape[1])
    )
    for label, result in enumerate(fitted):
        if result is None:
            biases[label] = 1.0 if targets[0, label] else -1.0
        else:
            weights[:, label], biases[label] = result
    return weights, biases


def fit_calibration(margins: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(a, b) of P(label) = sigmoid(a * margin + b), one logistic regression over every (text, label) pair."""
    if targets.min() == targets.max():
        return 1.0, 0.0
    regression = LogisticRegression(C=1e4).fit(margins.reshape(-1, 1), targets.reshape(-1))
    return float(regression.coef_[0, 0]), float(regression.intercept_[0])


def best_threshold_scores(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The scores of the threshold of `THRESHOLD_GRID` that [`decision.objective`] prefers."""
    by_threshold = (multilabel_scores(targets, threshold_decision(probabilities, t)) for t in THRESHOLD_GRID)
    return max(by_threshold, key=objective)


def fit_ngram_classifier(
    model: SU4MLCForMultiLabelClassification,
    words: Sequence[str],
    train_word_ids: Sequence[Sequence[int]],
    train_targets: np.ndarray,
    validation_word_ids: Sequence[Sequence[int]] | None = None,
    validation_targets: np.ndarray | None = None,
) -> NgramFit:
    """
    Fits an n-gram classifier on the training texts and installs it in `model` (`model.set_ngram_classifier`).

    Args:
        model: the model; its config's `source_vocab_size` and labels size the classifier.
        words: the tokenizer's words by id ("" for the special tokens), whose character n-grams the classifier reads.
        train_word_ids: each training text's word ids (no padding).
        train_targets (`np.ndarray` of shape `(num_texts, num_labels)`): their gold multi-hot labels.
        validation_word_ids, validation_targets: the same for the validation split, if there is one.
    """
    start = time.perf_counter()
    config = model.config
    train_word_ids = [list(ids) for ids in train_word_ids]
    vocab_size = config.source_vocab_size
    room = max(0, MAX_WEIGHTS // max(config.num_labels, 1) - vocab_size) // 2
    keys = bigram_vocabulary(train_word_ids, vocab_size, room)
    # Every character n-gram of the words first, to count the training texts that have each; then those kept.
    char_ngrams, offsets, ids = char_ngram_table(words)
    every = new_classifier(config, keys, len(char_ngrams), offsets, ids)
    texts = np.bincount(feature_matrix(every, train_word_ids).indices, minlength=every.num_features)
    first = vocab_size + keys.numel()
    kept = most_frequent(np.arange(texts.size - first), texts[first:], room)
    new_ids = np.full(texts.size - first, -1)
    new_ids[kept] = np.arange(len(kept))
    ids = torch.from_numpy(new_ids)[ids]
    is_kept = ids >= 0
    # A word's entries start after the kept entries of the words before it.
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), is_kept.cumsum(0)])[offsets]
    classifier = new_classifier(config, keys, len(kept), offsets, ids[is_kept])
    # Smoothed idf, as scikit-learn's TfidfVectorizer: ln((1 + n) / (1 + document frequency)) + 1. The counts are the
    # first pass's: a text has a character n-gram when one of its words has it, whichever others are kept.
    texts_with_feature = np.concatenate([texts[:first], texts[first:][kept]])
    idf = np.log((1 + len(train_word_ids)) / (1 + texts_with_feature)) + 1
    classifier.idf.copy_(torch.from_numpy(idf).float())
    train_features = feature_matrix(classifier, train_word_ids)

    has_validation = validation_word_ids is not None and len(validation_word_ids) > 0
    validation_features = feature_matrix(classifier, [list(ids) for ids in validation_word_ids]) if has_validation else None
    best = None
    for c in C_GRID if has_validation else (DEFAULT_C,):
        weights, biases = fit_svms(train_features, train_targets, c)
        if not has_validation:
            margins, targets = train_features @ weights + biases, train_targets
            best = (None, c, weights, biases, fit_calibration(margins, targets))
            break
        margins = validation_features @ weights + biases
        calibration = fit_calibration(margins, validation_targets)
        probabilities = 1 / (1 + np.exp(-(calibration[0] * margins + calibration[1])))
        scores = best_threshold_scores(validation_targets, probabilities)
        if best is None or objective(scores) > objective(best[0]):
            best = (scores, c, weights, biases, calibration)
    scores, c, weights, biases, calibration = best
    classifier.weight.data.copy_(torch.from_numpy(weights))
    classifier.bias.data.copy_(torch.from_numpy(biases))
    classifier.calibration.copy_(torch.tensor(calibration))
    model.set_ngram_classifier(classifier.to(model.device))
    return NgramFit(
        c=c,
        num_bigrams=len(keys),
        num_char_ngrams=len(kept),
        validation_micro_f1=None if scores is None else scores["micro_f1"],
        validation_macro_f1=None if scores is None else scores["macro_f1"],
        seconds=time.perf_counter() - start,
    )


__all__ = ["C_GRID", "NgramFit", "bigram_vocabulary", "char_wb_ngrams", "feature_matrix", "fit_ngram_classifier"]
