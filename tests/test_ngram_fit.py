"""The n-gram classifier: its features are scikit-learn's TF-IDF over the word ids, its margins the fitted SVMs', it
survives saving, and the decision rule weighs it against the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification
from su4mlc_hf.data import load_goemotions, prepare_datasets
from su4mlc_hf.decision import NGRAM_WEIGHT_GRID, mix_label_scores, tune_decision_threshold
from su4mlc_hf.metrics import multi_hot, multilabel_scores
from su4mlc_hf.ngram_fit import MIN_NGRAM_TEXTS, char_wb_ngrams, feature_matrix, fit_ngram_classifier

from .conftest import REPO_ROOT


@pytest.fixture(scope="module")
def fitted():
    """A small model with an n-gram classifier fitted on 3,000 GoEmotions training texts, 600 validating."""
    raw = load_goemotions(REPO_ROOT / "data" / "goemotions")
    raw = {"train": raw["train"].select(range(3000)), "validation": raw["validation"].select(range(600))}
    prepared, tokenizer, label_vocab, _ = prepare_datasets(raw)

    def targets(split):
        return multi_hot((label_vocab.indices(labels, strict=False) for labels in prepared[split]["gold_labels"]),
                         len(label_vocab))  # fmt: skip

    config = SU4MLCConfig(source_vocab_size=len(tokenizer), id2label=label_vocab.id2label, hidden_size=8,
                          embedding_size=8)  # fmt: skip
    model = SU4MLCForMultiLabelClassification(config).eval()
    word_ids = {split: prepared[split]["input_ids"] for split in ("train", "validation")}
    special = set(tokenizer.all_special_ids)
    words = ["" if index in special else word for index, word in enumerate(tokenizer.convert_ids_to_tokens(range(len(tokenizer))))]
    fit = fit_ngram_classifier(
        model, words, word_ids["train"], targets("train"), word_ids["validation"], targets("validation")
    )
    return model, tokenizer, word_ids, {split: targets(split) for split in word_ids}, fit


def as_words(word_id_lists):
    """Each text's word ids as words of their own, for scikit-learn's word analyzer."""
    return [" ".join(map(str, ids)) for ids in word_id_lists]


def as_text(tokenizer, word_id_lists):
    """Each text as its tokenizer's words, special tokens left out, for scikit-learn's `char_wb` analyzer."""
    special = set(tokenizer.all_special_ids)
    vocabulary = tokenizer.convert_ids_to_tokens(range(len(tokenizer)))
    return [" ".join(vocabulary[word] for word in ids if word not in special) for ids in word_id_lists]


def test_features_are_scikit_learns_tfidf_over_the_word_ids(fitted):
    """Words and the bigrams of at least `MIN_NGRAM_TEXTS` training texts, sublinear tf, smoothed idf fitted on the
    training split, unit length: `TfidfVectorizer` with that vocabulary gives the same matrix. The character n-grams
    are `char_wb` 2-5-grams of the words of at least as many texts: the same block up to the order of its columns
    (so the same dot products between texts)."""
    model, tokenizer, word_ids, _, fit = fitted
    classifier = model.ngram_classifier
    vocab_size = model.config.source_vocab_size
    bigram_counts = {}
    for ids in word_ids["train"]:
        for key in {(left, right) for left, right in zip(ids, ids[1:])}:
            bigram_counts[key] = bigram_counts.get(key, 0) + 1
    bigrams = sorted(key for key, texts in bigram_counts.items() if texts >= MIN_NGRAM_TEXTS)
    assert fit.num_bigrams == len(bigrams) == model.config.ngram_classifier_bigrams
    assert classifier.bigram_keys.tolist() == [left * vocab_size + right for left, right in bigrams]
    vocabulary = {str(word): word for word in range(vocab_size)}
    vocabulary.update({f"{left} {right}": vocab_size + rank for rank, (left, right) in enumerate(bigrams)})
    words = TfidfVectorizer(
        vocabulary=vocabulary, ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+", lowercase=False
    ).fit(as_words(word_ids["train"]))
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=False, min_df=2)
    chars.fit(as_text(tokenizer, word_ids["train"]))
    assert fit.num_char_ngrams == len(chars.vocabulary_) == model.config.ngram_classifier_char_ngrams
    assert char_wb_ngrams("ok") == [" o", "ok", "k ", " ok", "ok ", " ok "]  # the 5-gram is the 4-character " ok "
    first_char = vocab_size + len(bigrams)
    np.testing.assert_allclose(classifier.idf[:first_char].numpy(), words.idf_, rtol=1e-5)
    for split in ("train", "validation"):
        ours = feature_matrix(classifier, word_ids[split]).toarray()
        np.testing.assert_allclose(ours[:, :first_char], words.transform(as_words(word_ids[split])).toarray(), atol=1e-6)
        theirs = chars.transform(as_text(tokenizer, word_ids[split])).toarray()
        np.testing.assert_allclose(ours[:, first_char:] @ ours[:, first_char:].T, theirs @ theirs.T, atol=1e-5)


def test_margins_are_the_fitted_svms_whatever_the_batch_and_survive_saving(fitted, tmp_path):
    model, tokenizer, word_ids, targets, fit = fitted
    classifier = model.ngram_classifier
    features = feature_matrix(classifier, word_ids["validation"])
    label = int(targets["train"].sum(axis=0).argmax())
    svm = LinearSVC(C=fit.c, random_state=label).fit(feature_matrix(classifier, word_ids["train"]), targets["train"][:, label])
    batch = tokenizer.pad({"input_ids": word_ids["validation"][:50]}, return_tensors="pt")
    margins = classifier(batch["input_ids"], batch["attention_mask"])
    np.testing.assert_allclose(margins[:, label].numpy(), svm.decision_function(features[:50]), atol=1e-4)
    alone = tokenizer.pad({"input_ids": word_ids["validation"][7:8]}, return_tensors="pt")
    torch.testing.assert_close(classifier(alone["input_ids"], alone["attention_mask"])[0], margins[7], atol=1e-5,
                               rtol=1e-5)  # fmt: skip
    # A real classifier: on validation it beats always answering the most frequent label.
    chance = multilabel_scores(targets["validation"], np.eye(targets["train"].shape[1], dtype=int)[[label] * 600])
    assert fit.validation_micro_f1 > chance["micro_f1"] + 0.05

    model.save_pretrained(tmp_path)
    loaded = SU4MLCForMultiLabelClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.ngram_classifier_bigrams == fit.num_bigrams
    torch.testing.assert_close(
        loaded.ngram_classifier.probabilities(batch["input_ids"], batch["attention_mask"]),
        classifier.probabilities(batch["input_ids"], batch["attention_mask"]),
    )
    scored = loaded.score_labels(batch["input_ids"], batch["attention_mask"])
    expected = mix_label_scores(scored.beam_label_probabilities, None, 0.5, scored.ngram_label_probabilities, 0.5)
    torch.testing.assert_close(scored.label_scores, expected)


def test_the_decision_weighs_the_ngram_classifier_against_the_network():
    """With n-gram scores that are the gold labels and beam scores that are wrong, the tuning gives the n-gram
    classifier the larger weight (the one nearest 0.5 of those that separate them: 0.75); with the two swapped, the
    smaller."""
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    wrong = 1.0 - gold
    choice = tune_decision_threshold(gold, wrong, wrong, ngram_scores=gold.astype(float))
    assert choice.ngram_weight == 0.75 and choice.threshold_micro_f1 == 1.0 and 0.75 in NGRAM_WEIGHT_GRID
    assert tune_decision_threshold(gold, gold.astype(float), wrong, ngram_scores=wrong).ngram_weight == 0.25
    assert tune_decision_threshold(gold, gold.astype(float), wrong).ngram_weight is None
