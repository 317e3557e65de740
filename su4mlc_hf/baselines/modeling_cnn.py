"""The CNN baseline of the paper's Table 2: Kim (2014) convolutional text classifier, made multi-label with one
sigmoid per label (binary cross-entropy on multi-hot targets)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput

from ..label_vocab import WORD_PAD_ID
from ..modeling_su4mlc import SU4MLCPreTrainedModel, lengths_to_mask


def check_positive_integers(config: PretrainedConfig, field_names: Iterable[str]) -> None:
    """Raises `ValueError` naming the first of `field_names` that is not a positive integer on `config`."""
    for field_name in field_names:
        value = getattr(config, field_name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(config).__name__}.{field_name} must be a positive integer, got {value!r}.")


def check_convolution_fields(config: PretrainedConfig) -> None:
    """Validates the fields [`KimCNNTextEncoder`] is built from (shared by the CNN and CNN-RNN configs)."""
    check_positive_integers(config, ("source_vocab_size", "embedding_size", "num_filters"))
    if not config.kernel_sizes or any(size <= 0 for size in config.kernel_sizes):
        raise ValueError(f"{type(config).__name__}.kernel_sizes must list positive widths, got {config.kernel_sizes}.")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{type(config).__name__}.dropout must be in [0, 1), got {config.dropout}.")
    if not config.id2label:
        raise ValueError(f"{type(config).__name__}.id2label must name at least one label.")


class KimCNNConfig(PretrainedConfig):
    r"""
    Configuration of [`KimCNNForMultiLabelClassification`] (Kim, "Convolutional Neural Networks for Sentence
    Classification", EMNLP 2014), the CNN baseline of SU4MLC's Table 2. Defaults are Kim's (CNN-rand).

    Args:
        source_vocab_size (`int`, *optional*, defaults to 50002):
            Number of word ids (the SU4MLC word tokenizer's vocabulary, `<pad>` = 0).
        id2label (`dict[int, str]`, *optional*):
            The labels, most frequent first: logit `i` is label `id2label[i]` (the label *index* of `label_vocab`).
        embedding_size (`int`, *optional*, defaults to 300):
            Size of the word embeddings.
        kernel_sizes (`list[int]`, *optional*, defaults to `[3, 4, 5]`):
            Widths (in words) of the convolution filters; one group of `num_filters` feature maps per width.
        num_filters (`int`, *optional*, defaults to 100):
            Feature maps per width.
        dropout (`float`, *optional*, defaults to 0.5):
            Dropout on the pooled features, before the output layer.
        threshold (`float`, *optional*, defaults to 0.5):
            A label is predicted when its sigmoid exceeds this.
        at_least_one_label (`bool`, *optional*, defaults to `False`):
            When no label passes `threshold`, predict the most probable one instead of the empty set.
        initializer_range (`float`, *optional*, defaults to 0.25):
            Half-width of the uniform initialisation of embeddings, convolutions and the output layer: Kim's range for
            randomly initialised word vectors (SU4MLC's 0.1 leaves the pooled features too small to learn from quickly).

    Example:

    ```python
    >>> from su4mlc_hf.baselines import KimCNNConfig, KimCNNForMultiLabelClassification
    >>> config = KimCNNConfig(source_vocab_size=1000, id2label={0: "earn", 1: "acq"}, embedding_size=64)
    >>> model = KimCNNForMultiLabelClassification(config)
    ```
    """

    model_type = "su4mlc_kim_cnn"

    source_vocab_size: int = 50002
    embedding_size: int = 300
    kernel_sizes: list[int] | tuple[int, ...] = (3, 4, 5)
    num_filters: int = 100
    dropout: float = 0.5
    threshold: float = 0.5
    at_least_one_label: bool = False
    initializer_range: float = 0.25
    pad_token_id: int = WORD_PAD_ID
    problem_type: str | None = "multi_label_classification"

    def __post_init__(self, **kwargs):
        self.kernel_sizes = [int(size) for size in self.kernel_sizes]
        super().__post_init__(**kwargs)
        if self.id2label and not self.label2id:
            self.label2id = {label: index for index, label in self.id2label.items()}
        check_convolution_fields(self)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"KimCNNConfig.threshold must be in (0, 1), got {self.threshold}.")


class KimCNNTextEncoder(nn.Module):
    """
    Word embeddings → one 1-D convolution per kernel width (ReLU) → max over time: a text as one feature vector of
    `num_filters * len(kernel_sizes)` features.

    Padding never reaches the pooled features: padded positions are zeroed before the convolutions and the windows
    that would start past a text's last full window are masked before the max. A text shorter than the widest kernel
    is zero-extended, so each width still has exactly one window over it; the result does not depend on how much
    padding its batch adds. Texts are padded on the right.
    """

    def __init__(self, config: KimCNNConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.source_vocab_size, config.embedding_size, padding_idx=WORD_PAD_ID)
        self.kernel_sizes = list(config.kernel_sizes)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(config.embedding_size, config.num_filters, kernel_size) for kernel_size in self.kernel_sizes
        )
        self.output_size = config.num_filters * len(self.kernel_sizes)

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): word ids, padded on the right.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*):
                1 at real words; by default every non-PAD id is a word.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, num_filters * len(kernel_sizes))`: the pooled features.
        """
        if attention_mask is None:
            attention_mask = input_ids.ne(WORD_PAD_ID)
        lengths = attention_mask.sum(dim=1)
        embedded = self.embed_tokens(input_ids) * attention_mask[:, :, None].to(self.embed_tokens.weight.dtype)
        short_by = max(self.kernel_sizes) - embedded.size(1)
        if short_by > 0:
            embedded = nn.functional.pad(embedded, (0, 0, 0, short_by))
        embedded = embedded.transpose(1, 2)  # Conv1d wants (batch, channels, length)

        pooled = []
        for convolution, kernel_size in zip(self.convolutions, self.kernel_sizes):
            feature_maps = torch.relu(convolution(embedded))  # (batch, num_filters, padded_length - kernel_size + 1)
            num_windows = (lengths - kernel_size + 1).clamp(min=1)
            windows = lengths_to_mask(num_windows, feature_maps.size(-1))
            feature_maps = feature_maps.masked_fill(~windows[:, None, :], torch.finfo(feature_maps.dtype).min)
            pooled.append(feature_maps.amax(dim=-1))
        return torch.cat(pooled, dim=-1)


class KimCNNPreTrainedModel(SU4MLCPreTrainedModel):
    """SU4MLC's weight initialisation (uniform ±`initializer_range`, zero biases and PAD embedding) for the CNN."""

    config_class = KimCNNConfig
    base_model_prefix = "kim_cnn"
    _no_split_modules = ["KimCNNTextEncoder"]


class KimCNNForMultiLabelClassification(KimCNNPreTrainedModel):
    """
    Kim (2014) CNN for multi-label classification: [`KimCNNTextEncoder`] → dropout → linear → one logit per label.
    Trained with binary cross-entropy on multi-hot targets; a label is predicted when its sigmoid exceeds
    `config.threshold` (see [`predict_multi_hot`]).
    """

    def __init__(self, config: KimCNNConfig):
        super().__init__(config)
        self.text_encoder = KimCNNTextEncoder(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.text_encoder.output_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.text_encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.text_encoder.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): word ids, padded on the right.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 at real words.
            labels (`torch.Tensor` of shape `(batch_size, num_labels)`, *optional*): multi-hot gold labels.

        Returns:
            [`SequenceClassifierOutput`] with `logits` of shape `(batch_size, num_labels)` and, given `labels`, the
            mean binary cross-entropy `loss`.
        """
        logits = self.classifier(self.dropout(self.text_encoder(input_ids, attention_mask)))
        loss = None
        if labels is not None:
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.to(logits.device).float())
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def predict_multi_hot(
        self, logits: torch.Tensor, threshold: float | None = None, at_least_one_label: bool | None = None
    ) -> torch.BoolTensor:
        """
        Predicted label sets from logits.

        Args:
            logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`).
            threshold (`float`, *optional*): sigmoid threshold (default `config.threshold`).
            at_least_one_label (`bool`, *optional*): fall back to the top label when none passes (default
                `config.at_least_one_label`).

        Returns:
            `torch.BoolTensor` of shape `(batch_size, num_labels)`.
        """
        threshold = self.config.threshold if threshold is None else threshold
        at_least_one_label = self.config.at_least_one_label if at_least_one_label is None else at_least_one_label
        predicted = logits.sigmoid() > threshold
        if at_least_one_label:
            top_label = nn.functional.one_hot(logits.argmax(dim=-1), logits.size(-1)).bool()
            predicted = torch.where(predicted.any(dim=-1, keepdim=True), predicted, top_label)
        return predicted

    @torch.inference_mode()
    def predict(
        self,
        texts: str | list[str],
        tokenizer,
        batch_size: int = 64,
        max_length: int | None = None,
        threshold: float | None = None,
        at_least_one_label: bool | None = None,
    ) -> list[str] | list[list[str]]:
        """
        Labels of each text, most frequent labels first.

        Args:
            texts (`str` or `list[str]`): raw texts.
            tokenizer: the word tokenizer the model was trained with.
            batch_size (`int`): texts encoded together.
            max_length (`int`, *optional*): truncate texts to this many words.
            threshold, at_least_one_label: see [`predict_multi_hot`].

        Returns:
            One list of label names per text (a single list for a single text).
        """
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        was_training = self.training
        self.eval()
        results = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=max_length is not None,
                max_length=max_length,
                return_tensors="pt",
            ).to(self.device)
            logits = self(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            for row in self.predict_multi_hot(logits, threshold, at_least_one_label).tolist():
                results.append([self.config.id2label[index] for index, chosen in enumerate(row) if chosen])
        self.train(was_training)
        return results[0] if single else results


__all__ = [
    "KimCNNConfig",
    "KimCNNForMultiLabelClassification",
    "KimCNNPreTrainedModel",
    "KimCNNTextEncoder",
]
