"""A real learning signal: a tiny SU4MLC trained for seconds on real GoEmotions texts fits them far better than
the best constant prediction (the most frequent label set)."""

from __future__ import annotations

from collections import Counter

import torch

from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification
from su4mlc_hf.data import SU4MLCDataCollator, load_goemotions, prepare_datasets
from su4mlc_hf.metrics import multi_hot, multilabel_scores
from su4mlc_hf.trainer import SU4MLCTrainer, SU4MLCTrainingArguments

from .conftest import DATA_DIR


def test_tiny_model_fits_real_sample_far_better_than_most_frequent_label_set(tmp_path):
    torch.manual_seed(0)
    raw = load_goemotions(DATA_DIR / "goemotions")
    prepared, tokenizer, label_vocab, _ = prepare_datasets(raw)
    train = prepared["train"]
    config = SU4MLCConfig(
        source_vocab_size=len(tokenizer), id2label=label_vocab.id2label, embedding_size=64, hidden_size=64,
        dropout=0.0, max_labels=4,
    )  # fmt: skip
    model = SU4MLCForMultiLabelClassification(config)
    args = SU4MLCTrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-2, lr_decay_per_epoch=1.0, num_train_epochs=25,
        per_device_train_batch_size=32, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
        logging_strategy="no", disable_tqdm=True, seed=0,
    )  # fmt: skip
    SU4MLCTrainer(model=model, args=args, train_dataset=train, data_collator=SU4MLCDataCollator()).train()

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
