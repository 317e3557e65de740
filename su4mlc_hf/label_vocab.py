"""The label vocabulary: real labels ordered by descending training frequency, plus PAD/BOS/EOS.

Label token ids (what the decoder reads and `generate()` emits) put the real labels first and the three special
tokens after them: label `i` has token id `i`, so `config.id2label[token_id]` names a generated label, as for any
transformers classifier; PAD, BOS and EOS are `num_labels`, `num_labels + 1` and `num_labels + 2`
(`LabelVocabulary.pad_id`, `.bos_id`, `.eos_id`; `config.pad_token_id`, ...). The same number is a label's index
in `config.id2label` and its column in multi-hot matrices.

Folders saved before this layout (label token id `i + 3`, PAD/BOS/EOS = 0/1/2) carry no `label_token_layout` in
their config.json; `SU4MLCForMultiLabelClassification.from_pretrained` converts them on load.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

# The word tokenizer's `<pad>` id, which word inputs (`input_ids`) are padded with; it is not a label token id.
WORD_PAD_ID = 0
# The name the data collator imports for the same id.
PAD_ID = WORD_PAD_ID
# Label token ids past the real labels, in this order: PAD, BOS, EOS.
SPECIAL_LABEL_TOKENS = ("<pad>", "<s>", "</s>")
NUM_SPECIAL_LABEL_TOKENS = len(SPECIAL_LABEL_TOKENS)
# `config.label_token_layout`: real labels first (today), or the special tokens first (folders saved before).
LABEL_TOKEN_LAYOUT = "labels_first"
LEGACY_LABEL_TOKEN_LAYOUT = "specials_first"
# PAD, BOS and EOS in the old layout, where label i had token id i + NUM_SPECIAL_LABEL_TOKENS.
LEGACY_SPECIAL_LABEL_TOKEN_IDS = (0, 1, 2)


def special_label_token_ids(num_labels: int) -> tuple[int, int, int]:
    """`(pad_id, bos_id, eos_id)` of a label vocabulary of `num_labels` real labels: the ids after the labels."""
    return num_labels, num_labels + 1, num_labels + 2

LABEL_ORDERS = ("frequency", "rare_first", "random")


class UnknownLabelError(ValueError):
    """A label that is not in the vocabulary was met where every label must be known (training data)."""


class LabelVocabulary:
    """Maps label names to label token ids and back.

    Args:
        labels (`Sequence[str]`):
            The real labels, most frequent first. Their position is both their label index and their token id.
    """

    def __init__(self, labels: Sequence[str]):
        labels = [str(label) for label in labels]
        if not labels:
            raise ValueError("A label vocabulary needs at least one label.")
        duplicates = sorted(label for label, count in Counter(labels).items() if count > 1)
        if duplicates:
            raise ValueError(f"Duplicate labels in the label vocabulary: {duplicates}")
        reserved = sorted(set(labels) & set(SPECIAL_LABEL_TOKENS))
        if reserved:
            raise ValueError(f"Labels {reserved} clash with the special label tokens {SPECIAL_LABEL_TOKENS}.")
        self.labels: list[str] = labels
        self.label2index: dict[str, int] = {label: index for index, label in enumerate(labels)}

    # ----------------------------------------------------------------------------------------------
    # Construction
    @classmethod
    def from_label_lists(
        cls, label_lists: Iterable[Iterable[str]], max_labels: int | None = None
    ) -> "LabelVocabulary":
        """Builds the vocabulary from training label lists, most frequent label first.

        A label counts once per example (duplicates inside one list collapse). Ties are broken by label
        name, so the order does not depend on the order of the examples.

        Raises:
            `ValueError`: no label at all, or more distinct labels than `max_labels`.
        """
        counts: Counter[str] = Counter()
        for label_list in label_lists:
            counts.update({str(label) for label in label_list})
        if max_labels is not None and len(counts) > max_labels:
            raise ValueError(
                f"The training data has {len(counts)} distinct labels, more than the configured maximum of "
                f"{max_labels}."
            )
        ordered = sorted(counts, key=lambda label: (-counts[label], label))
        return cls(ordered)

    @classmethod
    def from_id2label(cls, id2label: Mapping[int | str, str]) -> "LabelVocabulary":
        """Rebuilds the vocabulary saved in a config's `id2label` (keys are label indices)."""
        indices = sorted(int(index) for index in id2label)
        if indices != list(range(len(indices))):
            raise ValueError(f"id2label keys must be 0..{len(indices) - 1}, got {indices}")
        return cls([id2label[index] if index in id2label else id2label[str(index)] for index in indices])

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return dict(self.label2index)

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.label2index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelVocabulary) and self.labels == other.labels

    def __repr__(self) -> str:
        return f"LabelVocabulary({len(self)} labels: {self.labels[:5]}{'...' if len(self) > 5 else ''})"

    @property
    def num_tokens(self) -> int:
        """Size of the decoder's output vocabulary: real labels plus special tokens."""
        return len(self) + NUM_SPECIAL_LABEL_TOKENS

    @property
    def pad_id(self) -> int:
        return special_label_token_ids(len(self))[0]

    @property
    def bos_id(self) -> int:
        return special_label_token_ids(len(self))[1]

    @property
    def eos_id(self) -> int:
        return special_label_token_ids(len(self))[2]

    # ----------------------------------------------------------------------------------------------
    # Labels <-> token ids
    def token_id(self, label: str) -> int:
        try:
            return self.label2index[label]
        except KeyError:
            raise UnknownLabelError(f"Unknown label {label!r}: it is not in the label vocabulary.") from None

    def encode(
        self, labels: Iterable[str], order: str = "frequency", rng: random.Random | None = None
    ) -> list[int]:
        """Turns a label set into a target sequence of token ids, ended by EOS.

        Duplicates collapse. `order` is `"frequency"` (descending training frequency, the paper),
        `"rare_first"` (ascending) or `"random"` (shuffled with `rng`).

        Raises:
            `UnknownLabelError`: a label is not in the vocabulary.
        """
        if order not in LABEL_ORDERS:
            raise ValueError(f"Unknown label order {order!r}; expected one of {LABEL_ORDERS}.")
        token_ids = sorted({self.token_id(str(label)) for label in labels})
        if order == "rare_first":
            token_ids.reverse()
        elif order == "random":
            (rng or random).shuffle(token_ids)
        return token_ids + [self.eos_id]

    def decode(self, token_ids: Iterable[int]) -> list[str]:
        """Turns generated token ids back into label names (see [`decode_indices`])."""
        return [self.labels[index] for index in self.decode_indices(token_ids)]

    def decode_indices(self, token_ids: Iterable[int]) -> list[int]:
        """Turns generated token ids into label indices, in generation order (label token id i is label i).

        Special tokens and ids outside the label range are dropped (never mapped to some label);
        reading stops at the first EOS; a repeated label is kept once, at its first position.
        """
        indices: list[int] = []
        for token_id in token_ids:
            token_id = int(token_id)
            if token_id == self.eos_id:
                break
            if 0 <= token_id < len(self.labels) and token_id not in indices:
                indices.append(token_id)
        return indices

    def indices(self, labels: Iterable[str], strict: bool = True) -> list[int]:
        """Label indices (0-based among real labels) of a label set, sorted; with `strict=False`
        unknown labels are skipped instead of raising."""
        labels = [str(label) for label in labels]
        known = {self.label2index[label] for label in labels if label in self.label2index}
        if strict:
            unknown = sorted({label for label in labels if label not in self.label2index})
            if unknown:
                raise UnknownLabelError(f"Unknown labels {unknown}: they are not in the label vocabulary.")
        return sorted(known)
