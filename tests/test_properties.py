"""Property tests (hypothesis): any Unicode text tokenizes, and a label set survives `LabelVocabulary.encode` then
`decode`. The metrics have theirs in tests/test_metrics.py (scores equal scikit-learn's on random multi-hot
matrices; generated token ids map to the same label sets as `LabelVocabulary.decode`)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from transformers.tokenization_utils_tokenizers import TokenizersBackend

from su4mlc_hf import LabelVocabulary, SU4MLCTokenizer
from su4mlc_hf.label_vocab import SPECIAL_LABEL_TOKENS
from su4mlc_hf.tokenization_su4mlc import PAD_TOKEN_ID

from .conftest import goemotions_train_texts, tiny_model

# Every code point but surrogates (which no `str` read from UTF-8 holds): controls, format characters, emoji,
# right-to-left scripts, combining marks, private use, unassigned code points.
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
AWKWARD_TEXTS = [
    "",
    "\x00\x07\x1b[31m\x7f",  # control characters, a terminal escape
    "\u200b\u200d\ufeff\u2060",  # zero-width and format characters
    "👨‍👩‍👧 🏳️‍🌈 🎉🎉",  # emoji joined by zero-width joiners
    "שלום עולם مرحبا بالعالم",  # right-to-left scripts
    "\u202eevil\u202c",  # a bidirectional override
    "e\u0301 \u0301\u0301 Z\u0335\u0337\u0334",  # combining marks, alone or stacked
    "Ｆｕｌｌ　ｗｉｄｔｈ　１２",  # full-width letters, digits and space (NFKC)
    "<pad> <unk> </s>",  # the special tokens, written out
    "\U0010ffff\ue000",  # the last code point, private use
]


@pytest.fixture(scope="module")
def tokenizer() -> SU4MLCTokenizer:
    return SU4MLCTokenizer.train_from_texts(goemotions_train_texts(), vocab_size=60)


@pytest.fixture(scope="module")
def generic_tokenizer(tokenizer, tmp_path_factory) -> TokenizersBackend:
    """The tokenizer saved, then loaded by transformers' generic class from its `tokenizer.json`, as a user without
    this package gets it."""
    folder = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(folder)
    return TokenizersBackend.from_pretrained(folder)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def with_awkward_examples(test):
    for text in AWKWARD_TEXTS:
        test = example(text=text)(test)
    return test


@settings(deadline=None)
@given(text=ANY_TEXT)
@with_awkward_examples
def test_any_text_tokenizes_to_word_ids(tokenizer, generic_tokenizer, text):
    encoded = tokenizer(text)
    input_ids = encoded["input_ids"]
    assert all(isinstance(token_id, int) and 0 <= token_id < len(tokenizer) for token_id in input_ids)
    assert PAD_TOKEN_ID not in input_ids  # padding is never confused with a word
    assert encoded["attention_mask"] == [1] * len(input_ids)
    assert generic_tokenizer(text)["input_ids"] == input_ids
    # In a padded batch, next to a longer text, the text keeps its ids.
    batch = tokenizer([text, text + " and more words"], padding=True)
    assert batch["input_ids"][0][: len(input_ids)] == input_ids


@settings(deadline=None, max_examples=5)  # each example is a call to generate(): keep them few
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=8))
@example(texts=AWKWARD_TEXTS)
def test_any_texts_get_valid_label_sets(model, tokenizer, texts):
    label_sets = model.predict(texts, tokenizer, num_beams=2)
    assert len(label_sets) == len(texts)
    for labels in label_sets:
        assert set(labels) <= set(model.config.id2label.values())
        assert len(labels) == len(set(labels)) <= model.config.max_labels


LABEL_NAMES = st.text(min_size=1, max_size=12).filter(lambda label: label not in SPECIAL_LABEL_TOKENS)


@st.composite
def vocabularies_and_label_sets(draw):
    """A vocabulary (labels in frequency order) and a label set drawn from it, possibly with repeats."""
    labels = draw(st.lists(LABEL_NAMES, min_size=1, max_size=20, unique=True))
    label_set = draw(st.lists(st.sampled_from(labels), max_size=2 * len(labels)))
    return LabelVocabulary(labels), label_set


@given(vocabularies_and_label_sets())
def test_encode_then_decode_gives_the_label_set_in_frequency_order(vocabulary_and_label_set):
    vocabulary, label_set = vocabulary_and_label_set
    token_ids = vocabulary.encode(label_set)
    assert token_ids[-1] == vocabulary.eos_id and vocabulary.eos_id not in token_ids[:-1]
    assert all(0 <= token_id < len(vocabulary) for token_id in token_ids[:-1])
    decoded = vocabulary.decode(token_ids)
    assert set(decoded) == set(label_set)
    assert decoded == sorted(set(label_set), key=vocabulary.labels.index)
    # Reading stops at EOS: whatever follows is ignored.
    assert vocabulary.decode(token_ids + vocabulary.encode(vocabulary.labels)) == decoded


@given(vocabularies_and_label_sets())
def test_other_label_orders_keep_the_label_set(vocabulary_and_label_set):
    vocabulary, label_set = vocabulary_and_label_set
    by_frequency = vocabulary.decode(vocabulary.encode(label_set))
    assert vocabulary.decode(vocabulary.encode(label_set, order="rare_first")) == by_frequency[::-1]
    assert sorted(vocabulary.decode(vocabulary.encode(label_set, order="random"))) == sorted(by_frequency)


@given(st.lists(st.lists(LABEL_NAMES, max_size=5), min_size=1, max_size=20), st.randoms(use_true_random=False))
def test_vocabulary_is_ordered_by_frequency_whatever_the_example_order(label_lists, random):
    assume(any(label_lists))  # no label at all is a ValueError (tests/test_label_vocab.py)
    vocabulary = LabelVocabulary.from_label_lists(label_lists)
    counts = Counter(label for labels in label_lists for label in set(labels))
    assert vocabulary.labels == sorted(counts, key=lambda label: (-counts[label], label))
    shuffled = list(label_lists)
    random.shuffle(shuffled)
    assert LabelVocabulary.from_label_lists(shuffled) == vocabulary
