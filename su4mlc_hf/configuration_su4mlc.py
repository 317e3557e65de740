"""SU4MLC model configuration."""

from __future__ import annotations

from transformers import PretrainedConfig

from .label_vocab import BOS_ID, EOS_ID, NUM_SPECIAL_LABEL_TOKENS, PAD_ID

ATTENTION_TYPES = ("none", "word", "mdc", "additive", "hybrid")
DIRECTION_MERGES = ("concat", "sum")
HYBRID_OUTPUTS = ("concat", "residual")
MDC_ACTIVATIONS = ("none", "relu", "selu")


class SU4MLCConfig(PretrainedConfig):
    r"""
    Configuration of [`SU4MLCForMultiLabelClassification`]: SU4MLC (Lin et al., "Semantic-Unit-Based Dilated
    Convolution for Multi-Label Text Classification", EMNLP 2018). The defaults are the paper's; the switches
    marked *2018 code* reproduce the choices of the authors' released PyTorch 0.4 code instead.

    Vocabularies. The encoder reads word ids (`source_vocab_size` words, `<pad>` = 0). The decoder reads and
    emits label tokens: `<pad>` = 0, `<s>` (BOS) = 1, `</s>` (EOS) = 2, then the real labels, so the label
    token id of `id2label[i]` is `i + 3`. `vocab_size` is therefore the label-token vocabulary
    (`num_labels + 3`): that is what `generate()` and `compute_transition_scores` index.

    Args:
        source_vocab_size (`int`, *optional*, defaults to 50002):
            Number of word ids the encoder embeds (the paper caps the vocabulary at 50k words, plus PAD/UNK).
        id2label (`dict[int, str]`, *optional*):
            The real labels, most frequent first (target sequences follow this order). Required in practice;
            a config without it has 2 placeholder labels like every transformers config.
        embedding_size (`int`, *optional*, defaults to 512):
            Size of word and label embeddings (paper: 512).
        hidden_size (`int`, *optional*, defaults to 512):
            Size of the word annotations h_i, of the MDC channels and of the decoder state (paper: 512). With
            `direction_merge="concat"` each LSTM direction has `hidden_size // 2` units, so that
            h_i = [→h_i; ←h_i] has `hidden_size` features.
        encoder_layers (`int`, *optional*, defaults to 1):
            Layers of the bidirectional LSTM encoder (*2018 code*: 2).
        decoder_layers (`int`, *optional*, defaults to 1):
            Layers of the LSTM decoder (*2018 code*: 2). Decoder layer l starts from the final state of
            encoder layer min(l, encoder_layers - 1).
        dropout (`float`, *optional*, defaults to 0.2):
            Dropout on embeddings, between LSTM layers and before the output layer.
        direction_merge (`str`, *optional*, defaults to `"concat"`):
            How the two LSTM directions form h_i: `"concat"` (paper) or `"sum"` (*2018 code*).
        mdc_kernel_size (`int`, *optional*, defaults to 3):
            Kernel width of each dilated convolution.
        mdc_dilation_rates (`list[int]`, *optional*, defaults to `[1, 2, 3]`):
            One stacked 1-D convolution per rate (paper: [1, 2, 3], no common factor so no gridding).
        mdc_padding (`int`, *optional*, defaults to 0):
            Zero padding on each side of each convolution (paper: 0; *2018 code*: 1). Without padding the
            semantic units are shorter than the text: a text needs `mdc_receptive_field` words for one unit;
            shorter texts are zero-extended to that length (see the model's docstring).
        mdc_activation (`str`, *optional*, defaults to `"relu"`):
            Non-linearity after each convolution: `"relu"`, `"none"`, or `"selu"` (*2018 code*, together with
            `AlphaDropout(mdc_dropout)`). The paper's text names no activation; ReLU is our default.
        mdc_dropout (`float`, *optional*, defaults to 0.0):
            Dropout after each convolution (AlphaDropout with SELU; *2018 code*: 0.05).
        attention (`str`, *optional*, defaults to `"hybrid"`):
            The paper's Table 4 ablation: `"none"`, `"word"` (Luong general attention over h), `"mdc"` (over g),
            `"additive"` (attend g and h separately and add), `"hybrid"` (attend g → s'_t, then s'_t attends h
            → s̃_t; the model of the paper).
        hybrid_output (`str`, *optional*, defaults to `"concat"`):
            How the hybrid attention forms o_t: `"concat"` o_t = [s'_t; s̃_t] (paper) or `"residual"`
            o_t = s'_t + s̃_t (*2018 code*).
        max_labels (`int`, *optional*, defaults to 16):
            Most labels generated for one text (the decoder stops at EOS or after this many).
        initializer_range (`float`, *optional*, defaults to 0.1):
            Half-width of the uniform initialisation of embeddings, convolutions and linear layers (LSTMs use
            transformers' default Xavier initialisation).
        label_head_loss_weight (`float`, *optional*, defaults to 0.0):
            *Not in the paper.* Weight of an auxiliary per-label objective: a linear sigmoid classifier over the
            max-pooled word annotations and semantic units, trained with binary cross-entropy beside the decoder's
            sequence loss. 0 (the paper) builds no such head. Its
            probabilities also enter the per-label scores (see `decision_threshold`).
        decision_threshold (`float`, *optional*):
            *Not in the paper.* How [`~SU4MLCForMultiLabelClassification.predict`] turns a text into a label set.
            None (the paper): the labels of the best generated sequence. A number in (0, 1): every label whose
            per-label score (its probability of being in the set: summed over the final beams, averaged with the
            label head's probability when there is one) reaches it, and the top-scoring label when none does.
            `run_mlc.py` tunes it on the validation split and keeps it only where it beats the best sequence.

    Generation parameters (beam size, banning repeated labels, ...) are not part of this config: they live in
    the model's `GenerationConfig` (`generation_config.json`), built by
    [`SU4MLCForMultiLabelClassification.default_generation_config`].

    Example:

    ```python
    >>> from su4mlc_hf import SU4MLCConfig, SU4MLCForMultiLabelClassification
    >>> config = SU4MLCConfig(source_vocab_size=1000, id2label={0: "earn", 1: "acq"}, hidden_size=64, embedding_size=64)
    >>> model = SU4MLCForMultiLabelClassification(config)
    ```
    """

    model_type = "su4mlc"
    attribute_map = {"vocab_size": "label_vocab_size", "num_hidden_layers": "encoder_layers"}

    source_vocab_size: int = 50002
    embedding_size: int = 512
    hidden_size: int = 512
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.2
    direction_merge: str = "concat"
    mdc_kernel_size: int = 3
    mdc_dilation_rates: list[int] | tuple[int, ...] = (1, 2, 3)
    mdc_padding: int = 0
    mdc_activation: str = "relu"
    mdc_dropout: float = 0.0
    attention: str = "hybrid"
    hybrid_output: str = "concat"
    max_labels: int = 16
    initializer_range: float = 0.1
    label_head_loss_weight: float = 0.0
    decision_threshold: float | None = None
    pad_token_id: int = PAD_ID
    bos_token_id: int = BOS_ID
    eos_token_id: int = EOS_ID
    decoder_start_token_id: int = BOS_ID
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self.mdc_dilation_rates = [int(rate) for rate in self.mdc_dilation_rates]
        super().__post_init__(**kwargs)
        if self.id2label and not self.label2id:
            self.label2id = {label: index for index, label in self.id2label.items()}
        self._check_values()

    def _check_values(self) -> None:
        """Rejects values the model cannot be built from, naming the field."""
        choices = {
            "attention": ATTENTION_TYPES,
            "direction_merge": DIRECTION_MERGES,
            "hybrid_output": HYBRID_OUTPUTS,
            "mdc_activation": MDC_ACTIVATIONS,
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"SU4MLCConfig.{field}={getattr(self, field)!r} is not one of {allowed}.")
        for field in (
            "source_vocab_size",
            "embedding_size",
            "hidden_size",
            "encoder_layers",
            "decoder_layers",
            "mdc_kernel_size",
            "max_labels",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SU4MLCConfig.{field} must be a positive integer, got {value!r}.")
        if not self.mdc_dilation_rates:
            raise ValueError("SU4MLCConfig.mdc_dilation_rates must list at least one dilation rate.")
        if any(rate <= 0 for rate in self.mdc_dilation_rates):
            raise ValueError(f"SU4MLCConfig.mdc_dilation_rates must be positive, got {self.mdc_dilation_rates}.")
        if self.mdc_padding < 0:
            raise ValueError(f"SU4MLCConfig.mdc_padding must be >= 0, got {self.mdc_padding}.")
        for field in ("dropout", "mdc_dropout"):
            if not 0.0 <= getattr(self, field) < 1.0:
                raise ValueError(f"SU4MLCConfig.{field} must be in [0, 1), got {getattr(self, field)}.")
        if self.direction_merge == "concat" and self.hidden_size % 2:
            raise ValueError(
                f"SU4MLCConfig.hidden_size={self.hidden_size} must be even with direction_merge='concat': "
                "each LSTM direction gets half of it."
            )
        if not self.id2label:
            raise ValueError("SU4MLCConfig.id2label must name at least one label.")
        self._check_decision_values()

    def _check_decision_values(self) -> None:
        """The auxiliary label head's weight and the decision threshold (see the class docstring)."""
        weight = self.label_head_loss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 100.0:
            raise ValueError(f"SU4MLCConfig.label_head_loss_weight must be a number in [0, 100], got {weight!r}.")
        threshold = self.decision_threshold
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0
        ):
            raise ValueError(f"SU4MLCConfig.decision_threshold must be None or in (0, 1), got {threshold!r}.")

    @property
    def label_vocab_size(self) -> int:
        """Number of label tokens the decoder embeds and scores: PAD, BOS, EOS and the real labels."""
        return self.num_labels + NUM_SPECIAL_LABEL_TOKENS

    @property
    def mdc_receptive_field(self) -> int:
        """Words one semantic unit covers: 1 + (kernel - 1) * sum(dilation rates)."""
        return 1 + (self.mdc_kernel_size - 1) * sum(self.mdc_dilation_rates)

    @property
    def min_source_length(self) -> int:
        """Shortest input (in words) that yields one semantic unit; shorter texts are zero-extended to it."""
        return max(1, self.mdc_receptive_field - 2 * self.mdc_padding * len(self.mdc_dilation_rates))


__all__ = ["SU4MLCConfig"]
