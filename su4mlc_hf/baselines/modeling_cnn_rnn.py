"""The CNN-RNN baseline of the paper's Table 2 (Chen et al., "Ensemble Application of Convolutional and Recurrent
Neural Networks for Multi-Label Text Categorization", IJCNN 2017): a CNN reads the text into one feature vector, which
becomes the initial state of an LSTM that emits the labels one per step.

The label decoder is SU4MLC's own with no attention (`attention="none"`: an LSTM over label embeddings, from the
encoder's state, then a linear label scorer), and so are the teacher-forced loss, the label tokens, `generate()` (its
cache, beam reordering, no repeated labels) and `predict`: [`CNNRNNForMultiLabelClassification`] subclasses
[`SU4MLCForMultiLabelClassification`] and replaces only the encoder.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig

from ..configuration_su4mlc import assign_label_token_ids
from ..label_vocab import NUM_SPECIAL_LABEL_TOKENS
from ..modeling_su4mlc import (
    SU4MLCEncoderOutput,
    SU4MLCForMultiLabelClassification,
)
from .modeling_cnn import KimCNNTextEncoder, check_convolution_fields, check_positive_integers


class CNNRNNConfig(PretrainedConfig):
    r"""
    Configuration of [`CNNRNNForMultiLabelClassification`].

    Label tokens are SU4MLC's (see `label_vocab`): `<pad>` = 0, `<s>` = 1, `</s>` = 2, then the real labels, so
    `vocab_size` (`num_labels + 3`) is the decoder's output vocabulary.

    Args:
        source_vocab_size (`int`, *optional*, defaults to 50002):
            Number of word ids (`<pad>` = 0).
        id2label (`dict[int, str]`, *optional*):
            The real labels, most frequent first (target sequences follow this order).
        embedding_size (`int`, *optional*, defaults to 512):
            Size of the word and of the label embeddings.
        kernel_sizes (`list[int]`, *optional*, defaults to `[3, 4, 5]`):
            Widths of the convolution filters (Kim 2014, as in Chen et al.).
        num_filters (`int`, *optional*, defaults to 100):
            Feature maps per width; the text feature has `num_filters * len(kernel_sizes)` features.
        hidden_size (`int`, *optional*, defaults to 512):
            Size of the decoder LSTM state.
        decoder_layers (`int`, *optional*, defaults to 1):
            Layers of the decoder LSTM; each starts from its own projection of the text feature.
        dropout (`float`, *optional*, defaults to 0.2):
            Dropout on the text feature, on the label embeddings, between LSTM layers and before the output layer
            (SU4MLC's default, so that the two decoders are regularised alike).
        max_labels (`int`, *optional*, defaults to 16):
            Most labels generated for one text.
        initializer_range (`float`, *optional*, defaults to 0.25):
            Half-width of the uniform initialisation of embeddings, convolutions and linear layers: Kim's range for
            randomly initialised word vectors (SU4MLC's 0.1 leaves the pooled features too small to learn from quickly).

    Generation parameters live in the model's `GenerationConfig`, as for SU4MLC.
    """

    model_type = "su4mlc_cnn_rnn"
    attribute_map = {"vocab_size": "label_vocab_size", "num_hidden_layers": "decoder_layers"}
    # What `SU4MLCDecoder` reads to pick its variant: CNN-RNN's decoder attends nothing.
    attention: ClassVar[str] = "none"
    # What `SU4MLCForMultiLabelClassification` reads for its auxiliary label head and decision rule: CNN-RNN has no
    # head and keeps the best sequence's labels.
    label_head_loss_weight: ClassVar[float] = 0.0
    decision_threshold: ClassVar[float | None] = None

    source_vocab_size: int = 50002
    embedding_size: int = 512
    kernel_sizes: list[int] | tuple[int, ...] = (3, 4, 5)
    num_filters: int = 100
    hidden_size: int = 512
    decoder_layers: int = 1
    dropout: float = 0.2
    max_labels: int = 16
    initializer_range: float = 0.25
    # Label token ids, real labels first: set from `id2label` (see `assign_label_token_ids`).
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    decoder_start_token_id: int | None = None
    label_token_layout: str | None = None
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.kernel_sizes = [int(size) for size in self.kernel_sizes]
        super().__post_init__(**kwargs)
        if self.id2label and not self.label2id:
            self.label2id = {label: index for index, label in self.id2label.items()}
        check_convolution_fields(self)
        check_positive_integers(self, ("hidden_size", "decoder_layers", "max_labels"))
        assign_label_token_ids(self)

    @property
    def label_vocab_size(self) -> int:
        """Number of label tokens the decoder embeds and scores: the real labels, then PAD, BOS and EOS."""
        return self.num_labels + NUM_SPECIAL_LABEL_TOKENS


class CNNRNNEncoder(KimCNNTextEncoder):
    """
    [`KimCNNTextEncoder`]'s text feature f (max-pooled convolutions, padding-invariant), then the decoder's initial
    state: hidden h_0 = tanh(W f + b) per decoder layer, cell c_0 = 0.
    """

    main_input_name = "input_ids"

    def __init__(self, config: CNNRNNConfig):
        super().__init__(config)
        self.decoder_layers = config.decoder_layers
        self.hidden_size = config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.initial_state = nn.Linear(self.output_size, config.decoder_layers * config.hidden_size)

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
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 at real words.

        Returns:
            [`SU4MLCEncoderOutput`] whose `last_hidden_state` is the text feature as a one-position memory,
            `(batch_size, 1, num_filters * len(kernel_sizes))` (all of `source_mask` True), and whose
            `decoder_initial_hidden`/`decoder_initial_cell` are `(batch_size, decoder_layers, hidden_size)`.
        """
        features = self.dropout(super().forward(input_ids, attention_mask))
        initial_hidden = torch.tanh(self.initial_state(features)).view(-1, self.decoder_layers, self.hidden_size)
        return SU4MLCEncoderOutput(
            last_hidden_state=features[:, None, :],
            source_mask=torch.ones(features.size(0), 1, dtype=torch.bool, device=features.device),
            decoder_initial_hidden=initial_hidden,
            decoder_initial_cell=torch.zeros_like(initial_hidden),
        )


class CNNRNNForMultiLabelClassification(SU4MLCForMultiLabelClassification):
    """
    CNN-RNN (Chen et al., 2017): [`CNNRNNEncoder`] (a Kim CNN whose text feature initialises the decoder) and SU4MLC's
    attention-free LSTM label decoder. Trained with teacher-forced cross-entropy on label sequences (most frequent
    first, ended by EOS, padded with -100) and decoded with `generate()` (beam 5, no repeated labels) or `predict`,
    exactly like [`SU4MLCForMultiLabelClassification`], whose forward and generation hooks it inherits.
    """

    config_class = CNNRNNConfig
    base_model_prefix = "cnn_rnn"
    _no_split_modules = ["CNNRNNEncoder", "SU4MLCDecoder"]
    # Loaded through this package's Auto registration (`su4mlc_hf.baselines`), not as remote code.
    _auto_class = None

    encoder_class = CNNRNNEncoder


__all__ = ["CNNRNNConfig", "CNNRNNEncoder", "CNNRNNForMultiLabelClassification"]
