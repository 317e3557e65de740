"""Label vocabulary: frequency order, target sequences and back."""

from __future__ import annotations

import random

import pytest

from su4mlc_hf import LabelVocabulary, UnknownLabelError


def test_labels_are_ordered_by_descending_frequency_with_deterministic_ties():
    label_lists = [["b", "a"], ["a"], ["c", "b", "a"], ["d"], ["c", "c"]]
    vocab = LabelVocabulary.from_label_lists(label_lists)
    # a: 3, b: 2, c: 2 (counted once per example), d: 1; b before c by name.
    assert vocab.labels == ["a", "b", "c", "d"]
    assert LabelVocabulary.from_label_lists(reversed(label_lists)).labels == vocab.labels


def test_encode_orders_by_frequency_and_collapses_duplicates():
    vocab = LabelVocabulary(["a", "b", "c", "d"])
    eos = vocab.eos_id
    assert vocab.encode(["d", "a", "d", "b"]) == [0, 1, 3, eos]
    assert vocab.encode(["d", "a", "b"], order="rare_first") == [3, 1, 0, eos]
    shuffled = vocab.encode(["d", "a", "b", "c"], order="random", rng=random.Random(1))
    assert sorted(shuffled[:-1]) == [0, 1, 2, 3] and shuffled[-1] == eos
    assert vocab.encode([]) == [eos]


def test_label_token_ids_are_label_indices_and_special_tokens_follow_the_labels():
    vocab = LabelVocabulary(["a", "b", "c", "d"])
    assert [vocab.token_id(label) for label in vocab.labels] == list(vocab.id2label) == [0, 1, 2, 3]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id) == (4, 5, 6) and vocab.num_tokens == 7


def test_decode_drops_special_and_out_of_range_tokens_and_stops_at_eos():
    vocab = LabelVocabulary(["a", "b", "c"])
    generated = [vocab.bos_id, 2, vocab.pad_id, 0, 99, -100, 2, vocab.eos_id, 1]
    assert vocab.decode(generated) == ["c", "a"] and vocab.decode_indices(generated) == [2, 0]


def test_unknown_label_is_a_clear_error():
    vocab = LabelVocabulary(["a", "b"])
    with pytest.raises(UnknownLabelError, match="'zzz'"):
        vocab.encode(["a", "zzz"])
    assert vocab.indices(["b", "zzz"], strict=False) == [1]


def test_round_trip_through_config_id2label():
    vocab = LabelVocabulary.from_label_lists([["x", "y"], ["y"]])
    rebuilt = LabelVocabulary.from_id2label({str(k): v for k, v in vocab.id2label.items()})
    assert rebuilt == vocab and vocab.num_tokens == 5


def test_vocabulary_over_the_maximum_is_rejected():
    with pytest.raises(ValueError, match="3 distinct labels, more than the configured maximum of 2"):
        LabelVocabulary.from_label_lists([["a", "b", "c"]], max_labels=2)


@pytest.mark.parametrize("labels", [[], ["a", "a"], ["<pad>", "a"]])
def test_invalid_vocabularies_are_rejected(labels):
    with pytest.raises(ValueError):
        LabelVocabulary(labels)
