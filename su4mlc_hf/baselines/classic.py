"""The classic multi-label baselines of the paper's Table 2, on scikit-learn: binary relevance (BR), classifier
chains (CC) and label powerset (LP), each a linear classifier (LinearSVC or logistic regression) on TF-IDF word
1-2-gram features.

- BR trains one binary classifier per label, independently.
- CC trains one binary classifier per label too, but label j's classifier also reads the predictions for labels
  0..j-1 (scikit-learn's `ClassifierChain`). The chain follows the label vocabulary's order: most frequent first.
- LP trains one multiclass classifier whose classes are the label sets seen in training (one-vs-rest over the sets,
  the scheme LinearSVC uses anyway and the only one liblinear's logistic regression has); it can only predict one
  of those sets.

Labels that are constant in the training data (never or always present) get no classifier: they are predicted as
that constant. This keeps a label vocabulary wider than the training sample usable (a binary classifier cannot be fit
on one class).

Example:

```python
>>> baseline = fit_classic_baseline("br", train_texts, train_label_lists, classifier="linear_svc")
>>> baseline.predict(["Shares of the company rose after the merger."])  # one list of label names per text
>>> baseline.score(test_texts, test_label_lists)["micro_f1"]
```

Command line, on a data set this package loads (scores on the test split, as JSON lines):

    python -m su4mlc_hf.baselines.classic --dataset reuters_modapte --data-dir DIR --valid-ids DIR/valid_ids.txt
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.multioutput import ClassifierChain
from sklearn.svm import LinearSVC

from ..label_vocab import LabelVocabulary
from ..metrics import multi_hot, multilabel_scores

CLASSIC_BASELINES = ("br", "cc", "lp")
CLASSIFIERS = ("linear_svc", "logreg")

# The features and classifiers of the project's reference figures, which these defaults reproduce exactly: on
# Reuters-21578 ModApte (trained on the 7,270 train documents outside the validation ids, tested on all 3,019) test
# micro-F1 is 0.8385 for BR LinearSVC, 0.8244 for CC logistic regression and 0.8036 for BR logistic regression.
DEFAULT_VECTORIZER_SETTINGS = {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 2}


def build_vectorizer(**overrides) -> TfidfVectorizer:
    """TF-IDF over word 1- and 2-grams (`DEFAULT_VECTORIZER_SETTINGS`, then `overrides`)."""
    return TfidfVectorizer(**{**DEFAULT_VECTORIZER_SETTINGS, **overrides})


# `classifier_kwargs` of `fit_classic_baseline` override these.
DEFAULT_CLASSIFIER_SETTINGS = {
    "linear_svc": {"C": 1.0},
    "logreg": {"C": 10.0, "solver": "liblinear"},
}


def build_classifier(classifier: str, random_state: int | None = 0, **classifier_kwargs) -> BaseEstimator:
    """The binary / multiclass learner of every baseline: `"linear_svc"` (`LinearSVC`) or `"logreg"`
    (`LogisticRegression`), with `DEFAULT_CLASSIFIER_SETTINGS` updated by `classifier_kwargs`."""
    if classifier not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {classifier!r}; expected one of {CLASSIFIERS}.")
    estimator_class = LinearSVC if classifier == "linear_svc" else LogisticRegression
    settings = {**DEFAULT_CLASSIFIER_SETTINGS[classifier], **classifier_kwargs}
    return estimator_class(random_state=random_state, **settings)


class LabelPowerset(ClassifierMixin, BaseEstimator):
    """Label powerset: one multiclass `estimator` whose classes are the distinct rows (label sets) of the training
    multi-hot matrix; `predict` returns the predicted class's row."""

    def __init__(self, estimator: BaseEstimator):
        self.estimator = estimator

    def fit(self, features, label_matrix: np.ndarray) -> "LabelPowerset":
        """`label_matrix` of shape `(n_examples, num_labels)` must hold at least two distinct rows."""
        self.label_sets_, label_set_ids = np.unique(label_matrix, axis=0, return_inverse=True)
        self.estimator_ = clone(self.estimator).fit(features, label_set_ids.ravel())
        return self

    def predict(self, features) -> np.ndarray:
        return self.label_sets_[self.estimator_.predict(features)]


class ClassicMultiLabelBaseline:
    """
    A fitted BR, CC or LP baseline: a TF-IDF vectorizer and a scikit-learn multi-label estimator over the labels of
    `label_vocab`. Build it with [`fit_classic_baseline`].

    Args:
        name (`str`): `"br"`, `"cc"` or `"lp"`.
        label_vocab ([`LabelVocabulary`]): the labels; multi-hot column `i` is `label_vocab.labels[i]`.
        vectorizer (`TfidfVectorizer`): fitted on the training texts.
        estimator (`BaseEstimator` or `None`): fitted on the labels that vary in training; None when none varies.
        varying_labels (`np.ndarray` of shape `(num_labels,)`, bool): the labels `estimator` predicts.
        constant_prediction (`np.ndarray` of shape `(num_labels,)`, int8): the value of every other label.
    """

    def __init__(
        self,
        name: str,
        label_vocab: LabelVocabulary,
        vectorizer: TfidfVectorizer,
        estimator: BaseEstimator | None,
        varying_labels: np.ndarray,
        constant_prediction: np.ndarray,
    ):
        self.name = name
        self.label_vocab = label_vocab
        self.vectorizer = vectorizer
        self.estimator = estimator
        self.varying_labels = varying_labels
        self.constant_prediction = constant_prediction

    def __repr__(self) -> str:
        return f"ClassicMultiLabelBaseline({self.name!r}, {self.estimator!r}, {len(self.label_vocab)} labels)"

    def predict_multi_hot(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted label sets as a multi-hot `np.ndarray` of shape `(len(texts), num_labels)`, dtype int8."""
        predictions = np.tile(self.constant_prediction, (len(texts), 1))
        if self.estimator is not None and len(texts):
            predictions[:, self.varying_labels] = self.estimator.predict(self.vectorizer.transform(texts)) > 0.5
        return predictions

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        """Predicted labels of each text, in label-vocabulary order (most frequent first)."""
        labels = self.label_vocab.labels
        return [[labels[index] for index in np.flatnonzero(row)] for row in self.predict_multi_hot(texts)]

    def score(self, texts: Sequence[str], label_lists: Sequence[Sequence[str]]) -> dict[str, float]:
        """[`multilabel_scores`] of the predictions against the gold `label_lists` (all in the vocabulary)."""
        gold = multi_hot((self.label_vocab.indices(labels) for labels in label_lists), len(self.label_vocab))
        return multilabel_scores(gold, self.predict_multi_hot(texts))


def fit_classic_baseline(
    name: str,
    train_texts: Sequence[str],
    train_label_lists: Sequence[Sequence[str]],
    label_vocab: LabelVocabulary | None = None,
    classifier: str = "linear_svc",
    vectorizer: TfidfVectorizer | None = None,
    random_state: int | None = 0,
    **classifier_kwargs,
) -> ClassicMultiLabelBaseline:
    """
    Fits a classic multi-label baseline.

    Args:
        name (`str`): `"br"` (binary relevance), `"cc"` (classifier chain) or `"lp"` (label powerset).
        train_texts (`Sequence[str]`): the training documents.
        train_label_lists (`Sequence[Sequence[str]]`): the gold labels of each training document.
        label_vocab ([`LabelVocabulary`], *optional*): defaults to the training labels, most frequent first (the CC
            chain order).
        classifier (`str`, *optional*, defaults to `"linear_svc"`): `"linear_svc"` or `"logreg"` (see
            [`build_classifier`]).
        vectorizer (`TfidfVectorizer`, *optional*): unfitted; defaults to [`build_vectorizer`]`()`.
        random_state (`int`, *optional*, defaults to 0): seed of the classifiers.
        classifier_kwargs: passed to the scikit-learn classifier (e.g. `C=0.5`).

    Returns:
        [`ClassicMultiLabelBaseline`]: call `predict(texts)` for label lists.
    """
    if name not in CLASSIC_BASELINES:
        raise ValueError(f"Unknown classic baseline {name!r}; expected one of {CLASSIC_BASELINES}.")
    if len(train_texts) != len(train_label_lists):
        raise ValueError(f"{len(train_texts)} training texts but {len(train_label_lists)} label lists.")
    label_vocab = label_vocab or LabelVocabulary.from_label_lists(train_label_lists)
    label_matrix = multi_hot((label_vocab.indices(labels) for labels in train_label_lists), len(label_vocab))
    vectorizer = vectorizer if vectorizer is not None else build_vectorizer()
    features = vectorizer.fit_transform(train_texts)

    varying_labels = label_matrix.min(axis=0) != label_matrix.max(axis=0)
    constant_prediction = np.where(varying_labels, 0, label_matrix[0]).astype(np.int8)
    estimator = None
    if varying_labels.any():
        base = build_classifier(classifier, random_state=random_state, **classifier_kwargs)
        if name == "br":
            estimator = OneVsRestClassifier(base)
        elif name == "cc":
            # order=None: the chain follows the columns, i.e. the label vocabulary's frequency order.
            estimator = ClassifierChain(base, order=None, random_state=random_state)
        else:
            estimator = LabelPowerset(OneVsRestClassifier(base))
        estimator.fit(features, label_matrix[:, varying_labels])
    return ClassicMultiLabelBaseline(name, label_vocab, vectorizer, estimator, varying_labels, constant_prediction)


def main(argv: Sequence[str] | None = None) -> None:
    """Fits each requested baseline on the train split and prints its test scores and timings as JSON lines."""
    from ..data import load_goemotions, load_reuters_modapte

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("reuters_modapte", "goemotions"), required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--valid-ids", help="reuters_modapte: train ids held out as validation (not trained on)")
    parser.add_argument("--baselines", nargs="+", choices=CLASSIC_BASELINES, default=list(CLASSIC_BASELINES))
    parser.add_argument("--classifiers", nargs="+", choices=CLASSIFIERS, default=list(CLASSIFIERS))
    args = parser.parse_args(argv)

    if args.dataset == "reuters_modapte":
        splits = load_reuters_modapte(args.data_dir, valid_ids_file=args.valid_ids)
    else:
        splits = load_goemotions(args.data_dir)
    train, test = splits["train"], splits["test"]
    label_vocab = LabelVocabulary.from_label_lists(train["labels"])
    for name in args.baselines:
        for classifier in args.classifiers:
            start = time.perf_counter()
            baseline = fit_classic_baseline(name, train["text"], train["labels"], label_vocab, classifier=classifier)
            train_seconds = time.perf_counter() - start
            scores = baseline.score(test["text"], test["labels"])
            print(json.dumps({
                "baseline": name,
                "classifier": classifier,
                "train_examples": len(train),
                "test_examples": len(test),
                "train_seconds": round(train_seconds, 1),
                **{metric: round(value, 4) for metric, value in scores.items()},
            }), flush=True)


if __name__ == "__main__":
    main()
