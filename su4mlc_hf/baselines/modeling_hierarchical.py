"""The hierarchical encoders of the paper's Table 5 (Hier-5, Hier-10, Hier-15, Hier-20): instead of convolving word
annotations into semantic units, cut the text into "sentences" of a fixed number of words, read each sentence with the
word-level BiLSTM, read the sentence vectors with a sentence-level BiLSTM, and let the decoder attend to the
sentence-level annotations.

[`SU4MLCHierarchicalForMultiLabelClassification`] is SU4MLC with only the encoder replaced: the decoder (Luong
attention over the sentence annotations, `attention="word"`), the loss, `generate()`, `predict` and save/load are
inherited.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..configuration_su4mlc import SU4MLCConfig
from ..label_vocab import WORD_PAD_ID
from ..modeling_su4mlc import (
    SU4MLCEncoder,
    SU4MLCEncoderOutput,
    SU4MLCForMultiLabelClassification,
    lengths_to_mask,
)

HIERARCHICAL_ATTENTION_TYPES = ("none", "word")
# The sentence lengths of the paper's Table 5.
PAPER_SENTENCE_LENGTHS = (5, 10, 15, 20)


class SU4MLCHierarchicalConfig(SU4MLCConfig):
    r"""
    Configuration of [`SU4MLCHierarchicalForMultiLabelClassification`]: every [`SU4MLCConfig`] field keeps its
    meaning, except that the encoder has no MDC (the `mdc_*` fields are unused) and the attention reads sentence
    annotations.

    Args:
        sentence_length (`int`, *optional*, defaults to 10):
            Words per sentence: a boundary every `sentence_length` words (Hier-5/10/15/20 of the paper's Table 5); the
            last sentence of a text holds the remaining words.
        attention (`str`, *optional*, defaults to `"word"`):
            `"word"`: the decoder attends the sentence-level annotations (the paper's Hier models); `"none"`: no
            attention. The semantic-unit variants do not apply.
        encoder_layers (`int`, *optional*, defaults to 1):
            Layers of the word-level and of the sentence-level BiLSTM.
        kwargs: the other [`SU4MLCConfig`] fields.

    Example:

    ```python
    >>> from su4mlc_hf.baselines import SU4MLCHierarchicalConfig, SU4MLCHierarchicalForMultiLabelClassification
    >>> config = SU4MLCHierarchicalConfig(source_vocab_size=1000, id2label={0: "earn", 1: "acq"}, sentence_length=5)
    >>> model = SU4MLCHierarchicalForMultiLabelClassification(config)  # Hier-5
    ```
    """

    model_type = "su4mlc_hierarchical"
    # Loaded through this package's Auto registration (`su4mlc_hf.baselines`), not as remote code.
    _auto_class = None

    sentence_length: int = 10
    attention: str = "word"

    def _check_values(self) -> None:
        super()._check_values()
        if self.attention not in HIERARCHICAL_ATTENTION_TYPES:
            raise ValueError(
                f"SU4MLCHierarchicalConfig.attention={self.attention!r} is not one of {HIERARCHICAL_ATTENTION_TYPES}: "
                "the hierarchical encoder has sentence annotations, no semantic units."
            )
        length = self.sentence_length
        if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
            raise ValueError(f"SU4MLCHierarchicalConfig.sentence_length must be a positive integer, got {length!r}.")


class SU4MLCHierarchicalEncoder(SU4MLCEncoder):
    """
    Word embeddings → word-level BiLSTM over each sentence of `sentence_length` words (its final states, both
    directions, are the sentence vector) → sentence-level BiLSTM over the sentence vectors (the annotations the
    decoder attends; its final states start the decoder).

    Sentences are cut from the start of each text, so right padding only adds empty sentences, which are never read:
    a text's annotations do not depend on its batch. An empty text reads one PAD token, as in [`SU4MLCEncoder`].
    """

    def __init__(self, config: SU4MLCHierarchicalConfig):
        super().__init__(config)  # embeddings and the word-level BiLSTM (`self.lstm`); no MDC with these attentions
        self.sentence_length = config.sentence_length
        self.sentence_lstm = nn.LSTM(
            config.hidden_size,
            self.lstm.hidden_size,
            num_layers=config.encoder_layers,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
            bidirectional=True,
            batch_first=True,
        )

    def _last_layer_state(self, final: torch.Tensor) -> torch.Tensor:
        """`(layers * 2, batch, direction_size)` final LSTM states → `(batch, hidden_size)` of the last layer."""
        return self._merge_directions(final[-2], final[-1])

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
        **kwargs,
    ) -> SU4MLCEncoderOutput:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): word ids, padded on the right.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*):
                1 at real words; by default every non-PAD id is a word.

        Returns:
            [`SU4MLCEncoderOutput`] with `last_hidden_state` the sentence annotations `(batch_size, num_sentences,
            hidden_size)` (zero past each text's last sentence), `source_mask` `(batch_size, num_sentences)` True at
            real sentences, and the decoder's initial states `(batch_size, decoder_layers, hidden_size)`;
            `num_sentences = ceil(source_length / sentence_length)`.
        """
        if attention_mask is None:
            attention_mask = input_ids.ne(WORD_PAD_ID)
        batch_size = input_ids.size(0)
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        num_sentences = (lengths + self.sentence_length - 1) // self.sentence_length  # (batch_size,)
        max_sentences = max(1, math.ceil(input_ids.size(1) / self.sentence_length))

        # (batch_size, max_sentences, sentence_length) word ids and words per sentence (0 for padding sentences).
        padding = max_sentences * self.sentence_length - input_ids.size(1)
        padded_ids = nn.functional.pad(input_ids, (0, padding), value=WORD_PAD_ID)
        sentence_ids = padded_ids.view(batch_size, max_sentences, self.sentence_length)
        sentence_starts = torch.arange(max_sentences, device=input_ids.device) * self.sentence_length
        words_per_sentence = (lengths[:, None] - sentence_starts[None, :]).clamp(0, self.sentence_length)
        sentence_mask = words_per_sentence > 0

        # Word level: only the real sentences of the whole batch, as one packed batch of sequences.
        embedded = self.dropout(self.embed_tokens(sentence_ids[sentence_mask]))
        packed_words = pack_padded_sequence(
            embedded, words_per_sentence[sentence_mask].cpu(), batch_first=True, enforce_sorted=False
        )
        _, (word_final_hidden, _) = self.lstm(packed_words)
        sentence_vectors = word_final_hidden.new_zeros(batch_size, max_sentences, self.config.hidden_size)
        sentence_vectors[sentence_mask] = self._last_layer_state(word_final_hidden)

        # Sentence level.
        packed_sentences = pack_padded_sequence(
            self.dropout(sentence_vectors), num_sentences.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_output, (final_hidden, final_cell) = self.sentence_lstm(packed_sentences)
        output, _ = pad_packed_sequence(packed_output, batch_first=True, total_length=max_sentences)
        forward_output, backward_output = output.chunk(2, dim=-1)
        return SU4MLCEncoderOutput(
            last_hidden_state=self._merge_directions(forward_output, backward_output),
            source_mask=lengths_to_mask(num_sentences, max_sentences),
            decoder_initial_hidden=self._decoder_state(final_hidden),
            decoder_initial_cell=self._decoder_state(final_cell),
        )


class SU4MLCHierarchicalForMultiLabelClassification(SU4MLCForMultiLabelClassification):
    """
    The paper's hierarchical comparison model (Table 5): [`SU4MLCHierarchicalEncoder`] instead of SU4MLC's
    BiLSTM + MDC encoder; the decoder attends the sentence annotations. Everything else (loss, `generate()`,
    `predict`, save/load) is [`SU4MLCForMultiLabelClassification`]'s.
    """

    config_class = SU4MLCHierarchicalConfig
    _no_split_modules = ["SU4MLCHierarchicalEncoder", "SU4MLCDecoder"]
    # Loaded through this package's Auto registration (`su4mlc_hf.baselines`), not as remote code.
    _auto_class = None

    encoder_class = SU4MLCHierarchicalEncoder


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of `model` (all trainable here)."""
    return sum(parameter.numel() for parameter in model.parameters())


def compare_parameter_counts(**config_kwargs) -> dict[str, int]:
    """
    Parameter counts of SU4MLC and of its hierarchical counterpart built from the same config values (the models are
    built on the meta device, so paper-sized configs cost no memory). The count does not depend on `sentence_length`.

    Args:
        config_kwargs: [`SU4MLCConfig`] fields (`source_vocab_size`, `id2label`, sizes, ...), shared by both; the
            hierarchical model uses `attention="word"`, SU4MLC `config_kwargs.get("attention", "hybrid")`.

    Returns:
        `dict[str, int]`: `{"su4mlc": ..., "hierarchical": ...}`.

    Example (the paper's sizes: 50k words + PAD/UNK, 103 RCV1-v2 labels):

    ```python
    >>> compare_parameter_counts(id2label={i: str(i) for i in range(103)})
    ```
    """
    hierarchical_kwargs = {**config_kwargs, "attention": "word"}
    with torch.device("meta"):
        su4mlc = SU4MLCForMultiLabelClassification(SU4MLCConfig(**config_kwargs))
        hierarchical = SU4MLCHierarchicalForMultiLabelClassification(SU4MLCHierarchicalConfig(**hierarchical_kwargs))
    return {"su4mlc": count_parameters(su4mlc), "hierarchical": count_parameters(hierarchical)}


__all__ = [
    "PAPER_SENTENCE_LENGTHS",
    "SU4MLCHierarchicalConfig",
    "SU4MLCHierarchicalEncoder",
    "SU4MLCHierarchicalForMultiLabelClassification",
    "compare_parameter_counts",
    "count_parameters",
]
