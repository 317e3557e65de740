"""The paper's comparison systems (Tables 2 and 5): classic BR/CC/LP, Kim CNN, CNN-RNN, hierarchical SU4MLC.

Each baseline is fit on the 400 training texts of the GoEmotions sample and must beat, on those texts, the constant
prediction of the most frequent training label set: a real learning signal, not a numerical accident.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM

from su4mlc_hf.baselines import (
    CLASSIC_BASELINES,
    CLASSIFIERS,
    CNNRNNConfig,
    CNNRNNForMultiLabelClassification,
    KimCNNConfig,
    KimCNNForMultiLabelClassification,
    SU4MLCHierarchicalConfig,
    SU4MLCHierarchicalForMultiLabelClassification,
    compare_parameter_counts,
    count_parameters,
    fit_classic_baseline,
)
from su4mlc_hf.data import load_goemotions
from su4mlc_hf.label_vocab import LabelVocabulary, special_label_token_ids
from su4mlc_hf.metrics import multi_hot, multilabel_scores, token_ids_to_multi_hot
from su4mlc_hf.tokenization_su4mlc import SU4MLCTokenizer

from .conftest import DATA_DIR, random_batch

# The label token ids of the tiny baselines' 8 labels: labels 0..7, then PAD, BOS, EOS.
_, BOS_ID, EOS_ID = special_label_token_ids(8)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine idle OpenMP threads spinning
    against other processes make each step many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def goemotions_train(tmp_path_factory):
    """`(texts, label_lists, label_vocab, gold multi-hot)` of the sample's train split."""
    train = load_goemotions(DATA_DIR / "goemotions", cache_dir=str(tmp_path_factory.mktemp("datasets")))["train"]
    texts, label_lists = list(train["text"]), list(train["labels"])
    label_vocab = LabelVocabulary.from_label_lists(label_lists)
    gold = multi_hot((label_vocab.indices(labels) for labels in label_lists), len(label_vocab))
    return texts, label_lists, label_vocab, gold


@pytest.fixture(scope="module")
def tokenizer(goemotions_train):
    return SU4MLCTokenizer.train_from_texts(goemotions_train[0], vocab_size=3000)


def most_frequent_set_micro_f1(label_lists, label_vocab, gold) -> float:
    """Micro-F1 of predicting the most frequent training label set for every text."""
    most_frequent = Counter(frozenset(labels) for labels in label_lists).most_common(1)[0][0]
    predicted = multi_hot([label_vocab.indices(most_frequent)] * len(label_lists), len(label_vocab))
    return multilabel_scores(gold, predicted)["micro_f1"]


def assert_beats_most_frequent_set(predicted_label_lists, goemotions_train) -> None:
    _, label_lists, label_vocab, gold = goemotions_train
    predicted = multi_hot((label_vocab.indices(labels) for labels in predicted_label_lists), len(label_vocab))
    micro_f1 = multilabel_scores(gold, predicted)["micro_f1"]
    floor = most_frequent_set_micro_f1(label_lists, label_vocab, gold)
    assert micro_f1 > floor + 0.1, (micro_f1, floor)


def train(model, loss_of_batch, batches, epochs: int, learning_rate: float = 1e-2) -> None:
    """Adam over `batches` for `epochs`; `loss_of_batch(model, batch)` returns the loss."""
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for _ in range(epochs):
        for batch in batches:
            optimizer.zero_grad()
            loss_of_batch(model, batch).backward()
            optimizer.step()
    model.eval()


BATCH_SIZE = 25


def word_batches(texts, tokenizer, batch_size=BATCH_SIZE):
    # Truncated: one sample text has 485 tokens, and training on it would cost more than all the others together.
    return [
        tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=64, return_tensors="pt")
        for start in range(0, len(texts), batch_size)
    ]


def label_sequence_batches(texts, label_lists, tokenizer, label_vocab, batch_size=BATCH_SIZE):
    """Word batches with `labels`: target label-token sequences (frequency order, EOS) padded with -100."""
    batches = word_batches(texts, tokenizer, batch_size)
    for start, batch in zip(range(0, len(texts), batch_size), batches):
        targets = [label_vocab.encode(labels) for labels in label_lists[start : start + batch_size]]
        batch["labels"] = torch.full((len(targets), max(map(len, targets))), -100)
        for row, target in enumerate(targets):
            batch["labels"][row, : len(target)] = torch.tensor(target)
    return batches


def sequence_loss(model, batch):
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


# ----------------------------------------------------------------------------------------------------------------
# Classic baselines


@pytest.mark.parametrize("classifier", CLASSIFIERS)
@pytest.mark.parametrize("name", CLASSIC_BASELINES)
def test_classic_baseline_learns(name, classifier, goemotions_train):
    texts, label_lists, label_vocab, _ = goemotions_train
    baseline = fit_classic_baseline(name, texts, label_lists, label_vocab, classifier=classifier)
    predicted = baseline.predict(texts)
    assert len(predicted) == len(texts)
    assert all(labels == [label for label in label_vocab.labels if label in labels] for labels in predicted)
    assert_beats_most_frequent_set(predicted, goemotions_train)


@pytest.mark.parametrize("name", CLASSIC_BASELINES)
def test_classic_baseline_with_labels_absent_from_training(name, goemotions_train):
    """Labels never seen in training are never predicted (no classifier can be fit on a single class)."""
    texts, label_lists, label_vocab, _ = goemotions_train
    wider_vocab = LabelVocabulary(label_vocab.labels + ["never_seen"])
    baseline = fit_classic_baseline(name, texts[:100], label_lists[:100], wider_vocab, classifier="logreg")
    assert not baseline.predict_multi_hot(texts)[:, -1].any()
    assert set(baseline.score(texts[:100], label_lists[:100])) >= {"micro_f1", "hamming_loss"}


def test_classic_baseline_rejects_unknown_names(goemotions_train):
    texts, label_lists, _, _ = goemotions_train
    with pytest.raises(ValueError, match="baseline"):
        fit_classic_baseline("knn", texts, label_lists)
    with pytest.raises(ValueError, match="classifier"):
        fit_classic_baseline("br", texts, label_lists, classifier="random_forest")


# ----------------------------------------------------------------------------------------------------------------
# Kim CNN


def tiny_cnn(**overrides) -> KimCNNForMultiLabelClassification:
    values = dict(
        source_vocab_size=60,
        id2label={index: f"label_{index}" for index in range(8)},
        embedding_size=12,
        num_filters=6,
        dropout=0.0,
    )
    torch.manual_seed(0)
    return KimCNNForMultiLabelClassification(KimCNNConfig(**{**values, **overrides})).eval()


def test_kim_cnn_learns(goemotions_train, tokenizer):
    texts, _, label_vocab, gold = goemotions_train
    model = tiny_cnn(source_vocab_size=len(tokenizer), id2label=label_vocab.id2label, embedding_size=32, num_filters=32)
    batches = word_batches(texts, tokenizer)
    for start, batch in zip(range(0, len(texts), BATCH_SIZE), batches):
        batch["labels"] = torch.from_numpy(gold[start : start + BATCH_SIZE]).float()
    train(model, lambda model, batch: model(**batch).loss, batches, epochs=10)
    assert_beats_most_frequent_set(model.predict(texts, tokenizer, at_least_one_label=True), goemotions_train)


def test_kim_cnn_ignores_padding_and_reads_short_texts():
    """Texts shorter than the widest kernel (5) and padded texts get the logits they get alone."""
    model = tiny_cnn()
    input_ids, attention_mask = random_batch([20, 1, 4, 5, 9, 0], seed=1)
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask).logits
        for row in range(input_ids.size(0)):
            length = int(attention_mask[row].sum())
            alone = model(
                input_ids=input_ids[row : row + 1, :length], attention_mask=attention_mask[row : row + 1, :length]
            ).logits
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=0)


def test_kim_cnn_threshold_and_top_label_fallback():
    model = tiny_cnn(id2label={0: "a", 1: "b", 2: "c"})
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, -0.5, -2.0]])
    assert model.predict_multi_hot(logits).tolist() == [[True, False, True], [False, False, False]]
    assert model.predict_multi_hot(logits, threshold=0.8).tolist() == [[True, False, False], [False, False, False]]
    assert model.predict_multi_hot(logits, at_least_one_label=True).tolist() == [
        [True, False, True],
        [False, True, False],
    ]


# ----------------------------------------------------------------------------------------------------------------
# CNN-RNN


def tiny_cnn_rnn(**overrides) -> CNNRNNForMultiLabelClassification:
    values = dict(
        source_vocab_size=60,
        id2label={index: f"label_{index}" for index in range(8)},
        embedding_size=12,
        num_filters=6,
        hidden_size=16,
        dropout=0.0,
        max_labels=6,
    )
    torch.manual_seed(0)
    return CNNRNNForMultiLabelClassification(CNNRNNConfig(**{**values, **overrides})).eval()


def test_cnn_rnn_learns(goemotions_train, tokenizer):
    texts, label_lists, label_vocab, _ = goemotions_train
    model = tiny_cnn_rnn(
        source_vocab_size=len(tokenizer),
        id2label=label_vocab.id2label,
        embedding_size=32,
        num_filters=32,
        hidden_size=32,
    )
    batches = label_sequence_batches(texts, label_lists, tokenizer, label_vocab)
    train(model, sequence_loss, batches, epochs=40, learning_rate=5e-3)
    assert_beats_most_frequent_set(model.predict(texts, tokenizer, batch_size=200, num_beams=3), goemotions_train)


@pytest.mark.parametrize("num_beams", [1, 4])
def test_cnn_rnn_generate_never_repeats_labels(num_beams):
    model = tiny_cnn_rnn(max_labels=8)
    # Untrained and biased towards one label, the decoder would emit it at every step without the ban.
    with torch.no_grad():
        model.decoder.output_layer.bias[5] = 5.0
    input_ids, attention_mask = random_batch([25, 9, 16, 3, 40, 1], seed=6)
    sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams)
    assert (sequences[:, 0] == BOS_ID).all()
    for row in sequences[:, 1:].tolist():
        labels = row[: row.index(EOS_ID)] if EOS_ID in row else row
        assert len(labels) == len(set(labels)) and all(0 <= token < 8 for token in labels) and 5 in labels
        assert BOS_ID not in row
    # Cached beam search (beams reordered through the shared SU4MLCDecoderCache) equals recomputing every prefix.
    recomputed = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, use_cache=False
    )
    assert torch.equal(sequences, recomputed)
    label_vocab = LabelVocabulary.from_id2label(model.config.id2label)
    multi_hot_labels, unknown_ids = token_ids_to_multi_hot(sequences[:, 1:].numpy(), label_vocab)
    assert unknown_ids == 0 and multi_hot_labels.sum() > 0


def test_cnn_rnn_ignores_padding():
    model = tiny_cnn_rnn()
    input_ids, attention_mask = random_batch([20, 2, 7], seed=3)
    decoder_input_ids = torch.tensor([[BOS_ID, 4, 6]] * 3)
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        for row in range(3):
            length = int(attention_mask[row].sum())
            alone = model(
                input_ids=input_ids[row : row + 1, :length],
                attention_mask=attention_mask[row : row + 1, :length],
                decoder_input_ids=decoder_input_ids[row : row + 1],
            ).logits
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# Hierarchical SU4MLC (Table 5)


def tiny_hierarchical(**overrides) -> SU4MLCHierarchicalForMultiLabelClassification:
    values = dict(
        source_vocab_size=60,
        id2label={index: f"label_{index}" for index in range(8)},
        embedding_size=12,
        hidden_size=16,
        dropout=0.0,
        max_labels=6,
        sentence_length=5,
    )
    torch.manual_seed(0)
    return SU4MLCHierarchicalForMultiLabelClassification(SU4MLCHierarchicalConfig(**{**values, **overrides})).eval()


def test_hierarchical_learns(goemotions_train, tokenizer):
    texts, label_lists, label_vocab, _ = goemotions_train
    model = tiny_hierarchical(
        source_vocab_size=len(tokenizer), id2label=label_vocab.id2label, embedding_size=32, hidden_size=32
    )
    train(model, sequence_loss, label_sequence_batches(texts, label_lists, tokenizer, label_vocab), epochs=25)
    assert_beats_most_frequent_set(model.predict(texts, tokenizer, batch_size=200, num_beams=1), goemotions_train)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"sentence_length": 3, "encoder_layers": 2, "decoder_layers": 2, "direction_merge": "sum"}],
    ids=["hier5", "hier3_two_layers_sum"],
)
def test_hierarchical_padding_does_not_change_logits(overrides):
    model = tiny_hierarchical(**overrides)
    input_ids, attention_mask = random_batch([31, 9, 4, 15, 1, 0], seed=1)
    decoder_input_ids = torch.tensor([[BOS_ID, 3, 6]] * 6)
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        for row in range(6):
            length = int(attention_mask[row].sum())
            alone = model(
                input_ids=input_ids[row : row + 1, :length],
                attention_mask=attention_mask[row : row + 1, :length],
                decoder_input_ids=decoder_input_ids[row : row + 1],
            ).logits
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=0)


def test_hierarchical_attends_one_annotation_per_sentence():
    model = tiny_hierarchical(sentence_length=5)
    input_ids, attention_mask = random_batch([31, 10, 4, 0])
    encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    assert encoded.last_hidden_state.shape == (4, 7, 16)
    assert encoded.source_mask.sum(dim=1).tolist() == [7, 2, 1, 1]
    assert encoded.semantic_units is None
    assert encoded.last_hidden_state[1, 2:].abs().max() == 0


def test_hierarchical_save_load_round_trip(tmp_path):
    """Saved and loaded back through `AutoModelForSeq2SeqLM` (importing `su4mlc_hf.baselines` registers it)."""
    model = tiny_hierarchical(sentence_length=4)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is SU4MLCHierarchicalForMultiLabelClassification
    assert loaded.config.sentence_length == 4 and loaded.config.attention == "word"
    assert loaded.generation_config.no_repeat_ngram_size == 1
    input_ids, attention_mask = random_batch([18, 6, 11], seed=2)
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=torch.tensor([[BOS_ID]] * 3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits)
    assert torch.equal(
        loaded.generate(input_ids=input_ids, attention_mask=attention_mask),
        model.generate(input_ids=input_ids, attention_mask=attention_mask),
    )


@pytest.mark.parametrize(
    "overrides, message",
    [({"attention": "hybrid"}, "attention"), ({"sentence_length": 0}, "sentence_length")],
)
def test_hierarchical_config_rejects_invalid_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        SU4MLCHierarchicalConfig(id2label={0: "a"}, **overrides)


def test_parameter_counts():
    """Hier = SU4MLC with word attention (same decoder) plus the sentence-level BiLSTM; no MDC."""
    sizes = dict(
        source_vocab_size=60, id2label={index: str(index) for index in range(8)}, embedding_size=12, hidden_size=16
    )
    counts = compare_parameter_counts(**sizes)
    hierarchical = tiny_hierarchical(**sizes)
    word_attention_su4mlc = compare_parameter_counts(**sizes, attention="word")["su4mlc"]
    assert counts["hierarchical"] == count_parameters(hierarchical)
    assert counts["hierarchical"] == word_attention_su4mlc + count_parameters(hierarchical.encoder.sentence_lstm)
    assert counts["su4mlc"] > word_attention_su4mlc  # MDC and the second attention layer
    assert count_parameters(tiny_hierarchical(**sizes, sentence_length=20)) == counts["hierarchical"]
    # Paper sizes: the source embedding (50,002 x 512) dominates both models.
    paper = compare_parameter_counts(id2label={index: str(index) for index in range(103)})
    assert 50_002 * 512 < paper["hierarchical"] < paper["su4mlc"] < 40_000_000
