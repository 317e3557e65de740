"""The model core: attention variants, padding invariance, short texts, constrained generation and its cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from su4mlc_hf import SU4MLCConfig, SU4MLCDecoderCache
from su4mlc_hf.label_vocab import special_label_token_ids

from .conftest import ATTENTION_TYPES, AUTHORS_CODE_SWITCHES, random_batch, tiny_model

# The label token ids of `tiny_config`'s 8 labels: labels 0..7, then PAD, BOS, EOS.
PAD_ID, BOS_ID, EOS_ID = special_label_token_ids(8)
TARGETS = torch.tensor([[3, 5, EOS_ID], [4, EOS_ID, -100], [EOS_ID, -100, -100]])


@pytest.mark.parametrize("attention", ATTENTION_TYPES)
def test_each_attention_variant_trains_and_generates(attention):
    model = tiny_model(attention=attention).train()
    input_ids, attention_mask = random_batch([20, 7, 14])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=TARGETS).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    # Every parameter the variant owns takes part in the loss.
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in model.parameters())

    model.eval()
    for num_beams in (1, 3):
        sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams)
        assert sequences.shape[0] == 3 and (sequences[:, 0] == BOS_ID).all()


@pytest.mark.parametrize(
    "overrides",
    [{"attention": attention} for attention in ATTENTION_TYPES] + [AUTHORS_CODE_SWITCHES],
    ids=ATTENTION_TYPES + ["authors_code"],
)
def test_padding_does_not_change_logits(overrides):
    """The same text alone, or batched with longer texts (more padding), gets the same logits."""
    model = tiny_model(**overrides)
    batch_ids, batch_mask = random_batch([30, 9, 4, 17], seed=1)
    decoder_input_ids = torch.tensor([[BOS_ID, 3, 6]] * 4)
    with torch.no_grad():
        batched = model(input_ids=batch_ids, attention_mask=batch_mask, decoder_input_ids=decoder_input_ids).logits
        for row in range(4):
            length = int(batch_mask[row].sum())
            alone = model(
                input_ids=batch_ids[row : row + 1, :length],
                attention_mask=batch_mask[row : row + 1, :length],
                decoder_input_ids=decoder_input_ids[row : row + 1],
            ).logits
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=0)


def test_semantic_units_respect_receptive_field():
    """Without padding, a text of n >= 13 words has n - 12 semantic units; shorter texts get exactly one."""
    model = tiny_model()
    assert model.config.min_source_length == 13
    input_ids, attention_mask = random_batch([30, 13, 12, 1])
    encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    assert encoded.semantic_unit_mask.sum(dim=1).tolist() == [18, 1, 1, 1]
    assert encoded.source_mask.sum(dim=1).tolist() == [30, 13, 12, 1]
    padded = tiny_model(mdc_padding=1)
    assert padded.config.min_source_length == 7
    encoded = padded.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    assert encoded.semantic_unit_mask.sum(dim=1).tolist() == [24, 7, 6, 1]


def test_short_and_empty_texts_work():
    model = tiny_model()
    input_ids, attention_mask = random_batch([1, 2, 5, 12, 0])
    sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=3)
    assert sequences.shape[0] == 5
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([[3, EOS_ID]] * 5)).loss
    assert torch.isfinite(loss)


def reference_greedy(model, input_ids, attention_mask, max_new_tokens):
    """Greedy decoding written out by hand: rerun the decoder over the whole prefix at every step, ban PAD, BOS and
    every label already emitted, stop at EOS, which the last step must emit (so at most `max_new_tokens - 1`
    labels)."""
    sequence = [BOS_ID]
    for step in range(max_new_tokens):
        logits = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=torch.tensor([sequence]),
            use_cache=False,
        ).logits[0, -1]
        banned = [PAD_ID, BOS_ID] + sequence
        logits[banned] = float("-inf")
        sequence.append(EOS_ID if step == max_new_tokens - 1 else int(logits.argmax()))
        if sequence[-1] == EOS_ID:
            break
    return sequence


@pytest.mark.parametrize("attention", ["hybrid", "word"])
def test_greedy_generate_equals_hand_written_greedy(attention):
    model = tiny_model(seed=3, attention=attention)
    input_ids, attention_mask = random_batch([25, 9, 16, 3], seed=2)
    generated = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=1)
    with torch.no_grad():
        for row in range(4):
            length = int(attention_mask[row].sum())
            expected = reference_greedy(
                model, input_ids[row : row + 1, :length], attention_mask[row : row + 1, :length], 7
            )
            produced = generated[row].tolist()
            assert produced[: len(expected)] == expected
            assert all(token == PAD_ID for token in produced[len(expected) :])


def test_beam_search_with_cache_equals_without_cache():
    for seed in range(3):
        model = tiny_model(seed=seed, **AUTHORS_CODE_SWITCHES) if seed == 2 else tiny_model(seed=seed)
        input_ids, attention_mask = random_batch([25, 9, 16, 3, 40], seed=seed)
        with_cache = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=4)
        without_cache = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, num_beams=4, use_cache=False
        )
        assert torch.equal(with_cache, without_cache)


def test_broken_beam_reorder_is_caught(monkeypatch):
    """If the cache ignored beam reordering, cached beam search would drift from the cache-free reference."""
    model = tiny_model(seed=5)
    input_ids, attention_mask = random_batch([25, 9, 16, 3, 40, 12, 30, 7], seed=4)
    reference = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=4, use_cache=False)
    monkeypatch.setattr(SU4MLCDecoderCache, "reorder_cache", lambda self, beam_idx: None)
    broken = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=4)
    assert not torch.equal(broken, reference)


@pytest.mark.parametrize("num_beams", [1, 5])
def test_generated_sets_never_repeat_labels_or_emit_pad_bos(num_beams):
    model = tiny_model(seed=7, max_labels=10)
    # An untrained model with a strong bias towards one label would repeat it without the ban.
    with torch.no_grad():
        model.decoder.output_layer.bias[4] = 5.0
    input_ids, attention_mask = random_batch([25, 9, 16, 3, 40, 1], seed=6)
    sequences = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams)
    for row in sequences.tolist():
        body = row[1:]
        labels = body[: body.index(EOS_ID)] if EOS_ID in body else body
        assert PAD_ID not in labels and BOS_ID not in body
        assert len(labels) == len(set(labels))
        assert all(0 <= token < 8 for token in labels)
        assert 4 in labels


def test_generation_config_defaults():
    model = tiny_model()
    config = model.generation_config
    assert config.num_beams == 5
    assert config.no_repeat_ngram_size == 1
    assert config.suppress_tokens == [PAD_ID, BOS_ID]
    assert config.max_length == model.config.max_labels + 2 and config.max_new_tokens is None


def test_transition_scores_index_the_label_vocabulary():
    model = tiny_model()
    assert model.config.vocab_size == model.config.num_labels + 3 == 11
    input_ids, attention_mask = random_batch([10, 20])
    generated = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_beams=3,
        output_scores=True,
        return_dict_in_generate=True,
    )
    scores = model.compute_transition_scores(generated.sequences, generated.scores, generated.beam_indices)
    assert scores.shape[0] == 2 and (scores <= 0).all()


def test_output_attentions_are_distributions_over_real_positions():
    model = tiny_model(attention="hybrid")
    input_ids, attention_mask = random_batch([30, 15])
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=torch.tensor([[BOS_ID, 3]] * 2),
        output_attentions=True,
    )
    unit_weights, word_weights = output.cross_attentions
    assert unit_weights.shape == (2, 2, 18) and word_weights.shape == (2, 2, 30)
    torch.testing.assert_close(word_weights.sum(-1), torch.ones(2, 2))
    assert word_weights[1, :, 15:].abs().max() == 0
    assert unit_weights[1, :, 3:].abs().max() == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"attention": "global"}, "attention"),
        ({"mdc_dilation_rates": []}, "mdc_dilation_rates"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"embedding_size": -4}, "embedding_size"),
        ({"hidden_size": 15}, "even"),
        ({"direction_merge": "mean"}, "direction_merge"),
        ({"hybrid_output": "sum"}, "hybrid_output"),
        ({"mdc_activation": "gelu"}, "mdc_activation"),
        ({"dropout": 1.5}, "dropout"),
        ({"mdc_dilation_rates": [1, 0]}, "mdc_dilation_rates"),
    ],
)
def test_invalid_config_values_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        SU4MLCConfig(id2label={0: "a"}, **overrides)


def test_generation_parameters_are_not_config_fields():
    config = SU4MLCConfig(id2label={0: "a"}, num_beams=3)
    assert "num_beams" not in config.to_dict()


@pytest.mark.parametrize("num_beams", [1, 4])
def test_step_probabilities_are_the_model_probabilities_of_the_generated_sequence(num_beams):
    """Greedy and beam search report the same quantity: P(y_t | y_<t, x) over all label tokens, which teacher
    forcing the generated sequence reproduces."""
    model = tiny_model(seed=11)
    input_ids, attention_mask = random_batch([25, 9, 3], seed=8)
    scored = model.score_labels(input_ids, attention_mask, num_beams=num_beams)
    for row in range(3):
        sequence = [BOS_ID] + scored.sequences[row].tolist()
        end = sequence.index(EOS_ID) if EOS_ID in sequence else len(sequence) - 1
        probabilities = teacher_forced_probabilities(model, input_ids[row], attention_mask[row], sequence[: end + 1])
        torch.testing.assert_close(scored.step_probabilities[row, :end], probabilities, atol=1e-5, rtol=1e-4)


def teacher_forced_probabilities(model, input_ids, attention_mask, sequence: list[int]) -> torch.Tensor:
    """P(y_t | y_<t, x) of each token after BOS of `sequence`, for one text, by teacher forcing."""
    length = int(attention_mask.sum())
    with torch.no_grad():
        logits = model(input_ids=input_ids[None, :length], decoder_input_ids=torch.tensor([sequence[:-1]])).logits[0]
    return logits.softmax(-1)[torch.arange(len(sequence) - 1), torch.tensor(sequence[1:])]


def test_beam_label_probabilities_are_marginals_over_the_final_beams():
    """P(label in set) = sum over the returned beams of P(beam | x) where the label occurs, normalised: recomputed
    here by teacher forcing every beam that `generate()` returns."""
    model = tiny_model(seed=3, label_head_loss_weight=1.0)
    input_ids, attention_mask = random_batch([25, 9, 3], seed=8)
    num_beams = 4
    scored = model.score_labels(input_ids, attention_mask, num_beams=num_beams)
    beams = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, num_return_sequences=num_beams
    )
    for row in range(3):
        expected = torch.zeros(model.config.num_labels)
        weights = []
        for beam in beams[row * num_beams : (row + 1) * num_beams].tolist():
            end = beam.index(EOS_ID) if EOS_ID in beam else len(beam) - 1
            sequence = beam[: end + 1]
            weights.append(teacher_forced_probabilities(model, input_ids[row], attention_mask[row], sequence).prod())
            members = torch.zeros(model.config.num_labels)
            members[sequence[1:-1]] = 1  # label token id i is label i
            expected += weights[-1] * members
        expected /= sum(weights)
        torch.testing.assert_close(scored.beam_label_probabilities[row], expected, atol=1e-5, rtol=1e-4)
        head = torch.sigmoid(model.label_head(model.encoder(input_ids[row : row + 1], attention_mask[row : row + 1])))
        torch.testing.assert_close(scored.label_scores[row], (expected + head[0]) / 2, atol=1e-5, rtol=1e-4)


def test_label_head_adds_a_per_label_loss():
    """With a label head, the loss is the sequence cross-entropy plus the weighted binary cross-entropy of the
    label set, summed over labels and averaged over texts."""
    plain, with_head = tiny_model(seed=5), tiny_model(seed=5, label_head_loss_weight=0.5)
    with_head.load_state_dict(plain.state_dict(), strict=False)
    input_ids, attention_mask = random_batch([7, 4], seed=2)
    labels = torch.tensor([[0, 3, EOS_ID], [1, EOS_ID, -100]])
    sequence_loss = plain(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    output = with_head(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    targets = torch.zeros(2, with_head.config.num_labels)
    targets[0, [0, 3]] = targets[1, 1] = 1
    bce = torch.nn.functional.binary_cross_entropy_with_logits(output.label_logits, targets, reduction="sum") / 2
    torch.testing.assert_close(output.loss, sequence_loss + 0.5 * bce)


def test_ngram_bag_is_a_linear_classifier_over_the_hashed_words_and_bigrams_of_each_text():
    """The label head's n-gram classifier: a text's logits are the sum of the weight rows of its words and bigrams,
    each weighted 1 / sqrt(their count) (times a constant scale), whatever the padding and the batch around it."""
    model = tiny_model(seed=4, label_head_loss_weight=1.0, label_head_ngram_features=64)
    bag = model.label_head.ngrams
    torch.nn.init.normal_(bag.weights.weight)
    input_ids, attention_mask = random_batch([6, 3, 1], seed=5)
    logits = bag(input_ids, attention_mask)
    for row, length in enumerate([6, 3, 1]):
        words = input_ids[row, :length].tolist()
        ngrams = [(word,) for word in words] + list(zip(words, words[1:]))
        expected = sum(bag.weights.weight[hashed_ngram(ngram, 64)] for ngram in ngrams) / len(ngrams) ** 0.5
        expected = bag.LOGIT_SCALE * expected
        torch.testing.assert_close(logits[row], expected)
        alone = bag(input_ids[row : row + 1, :length], attention_mask[row : row + 1, :length])
        torch.testing.assert_close(alone[0], logits[row])
    # The head adds them to the logits of the pooled encoding.
    encoded = model.encoder(input_ids, attention_mask)
    model.label_head.ngrams = None
    pooled = model.label_head(encoded)
    model.label_head.ngrams = bag
    torch.testing.assert_close(model.label_head(encoded, input_ids, attention_mask), pooled + logits)
    with pytest.raises(ValueError, match="input_ids"):
        model.label_head(encoded)


def hashed_ngram(ngram: tuple[int, ...], num_features: int) -> int:
    """The feature of a word or a bigram, written out with Python's integers (wrapped to int64 as torch does)."""
    from su4mlc_hf.modeling_su4mlc import SU4MLCBagOfNgrams as Bag

    if len(ngram) == 1:
        value = (ngram[0] * Bag.LEFT) ^ Bag.UNIGRAM
    else:
        value = (ngram[0] * Bag.LEFT) ^ (ngram[1] * Bag.RIGHT)
    return value % num_features


def test_threshold_decision_keeps_labels_at_or_above_it_and_the_top_one_otherwise():
    from su4mlc_hf.decision import threshold_decision, tune_decision_threshold

    scores = np.array([[0.9, 0.6, 0.1], [0.2, 0.3, 0.1], [0.5, 0.5, 0.5]])
    assert threshold_decision(scores, 0.5).tolist() == [[1, 1, 0], [0, 1, 0], [1, 1, 1]]
    gold = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0]])
    # The best sequence found only the first label of each text: a threshold recovers the second label of text 0.
    sequence = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    choice = tune_decision_threshold(gold, np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.1], [0.8, 0.1, 0.3]]), sequence)
    assert choice.threshold is not None and 0.3 < choice.threshold <= 0.6 and choice.threshold_micro_f1 == 1.0
    # Scores that rank a wrong label first: the best sequence is kept.
    assert tune_decision_threshold(gold, 1 - gold, gold).threshold is None


def test_decision_tuning_weighs_the_label_head_where_it_scores_better():
    """Uninformative beam marginals and a head that separates the labels: the tuned rule leans on the head, and its
    weight goes into the mix that `mix_label_scores` (and so `predict`) uses."""
    from su4mlc_hf.decision import HEAD_WEIGHT_GRID, tune_decision_threshold

    generator = np.random.default_rng(0)
    gold = (generator.random((200, 6)) < 0.3).astype(int)
    gold[np.arange(200), generator.integers(0, 6, 200)] = 1
    beam, head = generator.random(gold.shape), 0.1 + 0.8 * gold
    sequence = np.eye(6, dtype=int)[generator.integers(0, 6, 200)]
    choice = tune_decision_threshold(gold, beam, sequence, head)
    assert choice.head_weight in HEAD_WEIGHT_GRID and choice.head_weight >= 0.75
    assert choice.threshold is not None and choice.threshold_micro_f1 == choice.threshold_macro_f1 == 1.0
    assert tune_decision_threshold(gold, beam, sequence).head_weight is None
    # Scores the weight cannot change (the head says what the beams say): the tie goes to the weight nearest 0.5.
    assert tune_decision_threshold(gold, head, sequence, head).head_weight == 0.5

    model = tiny_model(label_head_loss_weight=1.0, label_score_head_weight=choice.head_weight)
    expected = (1 - choice.head_weight) * beam + choice.head_weight * head
    np.testing.assert_allclose(model.mix_label_scores(beam, head), expected)
    np.testing.assert_allclose(model.mix_label_scores(beam, None), beam)


def test_predict_decision_threshold_and_all_labels():
    from su4mlc_hf import SU4MLCTokenizer

    tokenizer = SU4MLCTokenizer.train_from_texts(["a b c d e f", "g h"], vocab_size=60)
    model = tiny_model(seed=2)
    texts = ["a b c", "d e f g h"]
    every = model.predict(texts, tokenizer, all_labels=True, num_beams=3)
    for row, decided in zip(every, model.predict(texts, tokenizer, decision_threshold=0.3, num_beams=3)):
        assert len(row) == model.config.num_labels and [s for _, s in row] == sorted((s for _, s in row), reverse=True)
        expected = {label for label, score in row if score >= 0.3} or {row[0][0]}
        assert set(decided) == expected
    model.config.decision_threshold = 0.3
    assert model.predict(texts, tokenizer, num_beams=3) == model.predict(
        texts, tokenizer, decision_threshold=0.3, num_beams=3
    )


def test_predict_handles_empty_and_single_texts():
    from su4mlc_hf import SU4MLCTokenizer

    tokenizer = SU4MLCTokenizer.train_from_texts(["a b c d e f", "g h"], vocab_size=60)
    model = tiny_model()
    assert isinstance(model.predict("", tokenizer), list)
    batch = model.predict(["", "a b", "   "], tokenizer, return_scores=True, num_beams=2)
    assert len(batch) == 3 and all(0 < score <= 1 for row in batch for _, score in row)
