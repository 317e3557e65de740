"""A real learning signal: a tiny SU4MLC trained for seconds on real GoEmotions texts fits them far better than
the best constant prediction (the most frequent label set)."""

from __future__ import annotations

from collections import Counter

from su4mlc_hf.metrics import multi_hot, multilabel_scores

from .conftest import train_on_goemotions_sample


def test_tiny_model_fits_real_sample_far_better_than_most_frequent_label_set(tmp_path):
    model, prepared, tokenizer, label_vocab = train_on_goemotions_sample(tmp_path, size=64, epochs=25)
    train = prepared["train"]

    gold = [label_vocab.decode(target) for target in train["labels"]]
    predicted = model.predict(train["text"], tokenizer, num_beams=1)
    y_true = multi_hot((label_vocab.indices(labels) for labels in gold), len(label_vocab))
    model_f1 = multilabel_scores(y_true, multi_hot((label_vocab.indices(p) for p in predicted), len(label_vocab)))
    most_frequent_set, _ = Counter(tuple(labels) for labels in gold).most_common(1)[0]
    constant = multi_hot([label_vocab.indices(most_frequent_set)] * len(gold), len(label_vocab))
    constant_f1 = multilabel_scores(y_true, constant)
    print(f"micro-F1 on the 400 training texts: model {model_f1['micro_f1']:.3f}, constant {constant_f1['micro_f1']:.3f}")
    assert model_f1["micro_f1"] > constant_f1["micro_f1"] + 0.3
    assert model_f1["subset_accuracy"] > constant_f1["subset_accuracy"] + 0.3
