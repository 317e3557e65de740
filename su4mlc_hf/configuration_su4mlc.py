"""SU4MLC model configuration."""

from __future__ import annotations

from transformers import PretrainedConfig

from .label_vocab import (
    LABEL_TOKEN_LAYOUT,
    LEGACY_LABEL_TOKEN_LAYOUT,
    LEGACY_SPECIAL_LABEL_TOKEN_IDS,
    NUM_SPECIAL_LABEL_TOKENS,
    special_label_token_ids,
)

ATTENTION_TYPES = ("none", "word", "mdc", "additive", "hybrid")
DIRECTION_MERGES = ("concat", "sum")
HYBRID_OUTPUTS = ("concat", "residual")
MDC_ACTIVATIONS = ("none", "relu", "selu")
LABEL_TOKEN_LAYOUTS = (LABEL_TOKEN_LAYOUT, LEGACY_LABEL_TOKEN_LAYOUT)

# Upper bounds of the size fields, far above any useful SU4MLC (the paper's is 512 wide, 50k words, 3 rates) but
# low enough that a config, e.g. a hostile or corrupted config.json, cannot ask for tens of GB or hang the process.
SIZE_FIELD_MAXIMA = {
    "source_vocab_size": 5_000_000,
    "embedding_size": 16_384,
    "hidden_size": 16_384,
    "encoder_layers": 32,
    "decoder_layers": 32,
    "mdc_kernel_size": 64,
    "max_labels": 4_096,
}
MAX_NUM_LABELS = 1_000_000
MAX_NGRAM_FEATURES = 1 << 24
MAX_NGRAM_CLASSIFIER_FEATURES = 1 << 24
MAX_DILATION_RATE = 1_024
MAX_DILATION_LEVELS = 16
MAX_MDC_PADDING = 1_024
# Shortest text the MDC accepts, in words: every text is zero-extended to it, so it bounds memory per text too.
MAX_MIN_SOURCE_LENGTH = 10_000
# 2^31 parameters are 8 GiB in float32.
MAX_PARAMETERS = 2**31
# A beam wider than this is a typo or an attack on memory (the authors decode with 5).
MAX_NUM_BEAMS = 1_024


class SU4MLCConfig(PretrainedConfig):
    r"""
    Configuration of [`SU4MLCForMultiLabelClassification`]: SU4MLC (Lin et al., "Semantic-Unit-Based Dilated
    Convolution for Multi-Label Text Classification", EMNLP 2018). The defaults are the paper's; the switches
    marked *2018 code* reproduce the choices of the authors' released PyTorch 0.4 code instead.

    Vocabularies. The encoder reads word ids (`source_vocab_size` words, `<pad>` = 0). The decoder reads and
    emits label tokens: the real labels first, so that `generate()`'s token id `i` is `id2label[i]`, then
    `<pad>`, `<s>` (BOS) and `</s>` (EOS) at `num_labels`, `num_labels + 1` and `num_labels + 2` (`pad_token_id`,
    `bos_token_id` = `decoder_start_token_id`, `eos_token_id`; set from `id2label`, not given). `vocab_size` is
    therefore the label-token vocabulary (`num_labels + 3`): that is what `generate()` and
    `compute_transition_scores` index. `label_token_layout` is `"labels_first"`; a config.json saved before this
    layout has none and PAD/BOS/EOS = 0/1/2: it loads as `"specials_first"`, and
    [`SU4MLCForMultiLabelClassification.from_pretrained`] reorders the weights of such a folder.

    Every field is checked when the config is built or loaded: a value out of range raises a `ValueError` naming
    the field, and the size fields have upper bounds (`SIZE_FIELD_MAXIMA`, at most 2^31 parameters in all).

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
        label_head_ngram_features (`int`, *optional*, defaults to 0):
            *Not in the paper.* With a label head: the number of hashed features of a linear classifier over each
            text's words and word bigrams, whose logits the head adds to its own (see `SU4MLCBagOfNgrams`). 0 (the
            paper): none.
        label_score_head_weight (`float`, *optional*, defaults to 0.5):
            *Not in the paper.* With a label head: the weight w of its probability in each label's score,
            (1 - w) * beam marginal + w * head probability. `run_mlc.py` tunes it on the validation split with
            `decision_threshold`.
        ngram_classifier_bigrams (`int`, *optional*):
            *Not in the paper.* None (the paper): no n-gram classifier. A count: the model has a linear classifier
            over each text's words and this many word bigrams (see `SU4MLCNgramClassifier`), fitted before the
            network is trained (`su4mlc_hf.ngram_fit`), whose probabilities enter the per-label scores.
        ngram_classifier_char_ngrams (`int`, *optional*, defaults to 0):
            With an n-gram classifier: how many character n-grams of the words it reads.
        ngram_classifier_char_entries (`int`, *optional*, defaults to 0):
            With an n-gram classifier: how many (word, character n-gram) pairs its table of the words' n-grams holds.
        label_score_ngram_weight (`float`, *optional*, defaults to 0.5):
            *Not in the paper.* With an n-gram classifier: the weight v of its probability in each label's score,
            (1 - v) * (the network's score) + v * n-gram probability. `run_mlc.py` tunes it on the validation split
            with `decision_threshold`.
        decision_threshold (`float`, *optional*):
            *Not in the paper.* How [`~SU4MLCForMultiLabelClassification.predict`] turns a text into a label set.
            None (the paper): the labels of the best generated sequence. A number in (0, 1): every label whose
            per-label score (its probability of being in the set: summed over the final beams, mixed with the
            label head's probability when there is one, see `label_score_head_weight`) reaches it, and the
            top-scoring label when none does.
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
    label_head_ngram_features: int = 0
    label_score_head_weight: float = 0.5
    ngram_classifier_bigrams: int | None = None
    ngram_classifier_char_ngrams: int = 0
    ngram_classifier_char_entries: int = 0
    label_score_ngram_weight: float = 0.5
    decision_threshold: float | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    decoder_start_token_id: int | None = None
    label_token_layout: str | None = None
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        self._check_dilation_rates()
        self.mdc_dilation_rates = list(self.mdc_dilation_rates)
        super().__post_init__(**kwargs)
        if self.id2label and not self.label2id:
            self.label2id = {label: index for index, label in self.id2label.items()}
        self._check_values()
        assign_label_token_ids(self)

    def _check_values(self) -> None:
        """Rejects values the model cannot be built from, naming the field (subclasses add their own fields)."""
        self._check_choices()
        self._check_sizes()
        self._check_mdc()
        self._check_dropouts()
        self._check_labels()

    def _check_choices(self) -> None:
        choices = {
            "attention": ATTENTION_TYPES,
            "direction_merge": DIRECTION_MERGES,
            "hybrid_output": HYBRID_OUTPUTS,
            "mdc_activation": MDC_ACTIVATIONS,
        }
        for field, allowed in choices.items():
            if getattr(self, field) not in allowed:
                raise ValueError(f"SU4MLCConfig.{field}={getattr(self, field)!r} is not one of {allowed}.")

    def _check_sizes(self) -> None:
        """Each size field is an integer in [1, its maximum] (`label_head_ngram_features` and the n-gram classifier's
        sizes in [0, their maximum]), checked
        before the parameter count reads them; the whole model stays under `MAX_PARAMETERS`."""
        check_integer_fields(self, SIZE_FIELD_MAXIMA)
        check_integer_fields(self, {"label_head_ngram_features": MAX_NGRAM_FEATURES}, minimum=0)
        if self.ngram_classifier_bigrams is not None:
            check_integer_fields(self, {"ngram_classifier_bigrams": MAX_NGRAM_CLASSIFIER_FEATURES}, minimum=0)
        check_integer_fields(
            self,
            {"ngram_classifier_char_ngrams": MAX_NGRAM_CLASSIFIER_FEATURES, "ngram_classifier_char_entries": 1 << 30},
            minimum=0,
        )
        if self.direction_merge == "concat" and self.hidden_size % 2:
            raise ValueError(
                f"SU4MLCConfig.hidden_size={self.hidden_size} must be even with direction_merge='concat': "
                "each LSTM direction gets half of it."
            )
        if self.estimated_num_parameters > MAX_PARAMETERS:
            raise ValueError(
                f"SU4MLCConfig asks for about {self.estimated_num_parameters:,} parameters, more than the "
                f"{MAX_PARAMETERS:,} allowed: lower source_vocab_size, embedding_size, hidden_size or the layers."
            )

    def _check_dilation_rates(self) -> None:
        """Checked before anything reads them: a list of 1 to `MAX_DILATION_LEVELS` integers in
        [1, `MAX_DILATION_RATE`]."""
        rates = self.mdc_dilation_rates
        if (
            not isinstance(rates, (list, tuple))
            or not 1 <= len(rates) <= MAX_DILATION_LEVELS
            or not all(is_integer(rate) and 1 <= rate <= MAX_DILATION_RATE for rate in rates)
        ):
            raise ValueError(
                f"SU4MLCConfig.mdc_dilation_rates must list 1 to {MAX_DILATION_LEVELS} integers in "
                f"[1, {MAX_DILATION_RATE}], got {rates!r}."
            )

    def _check_mdc(self) -> None:
        check_integer_fields(self, {"mdc_padding": MAX_MDC_PADDING}, minimum=0)
        if self.min_source_length > MAX_MIN_SOURCE_LENGTH:
            raise ValueError(
                f"SU4MLCConfig's semantic units need texts of {self.min_source_length} words "
                f"(1 + (mdc_kernel_size - 1) * sum(mdc_dilation_rates), less padding), more than "
                f"{MAX_MIN_SOURCE_LENGTH}: lower mdc_kernel_size or mdc_dilation_rates."
            )

    def _check_dropouts(self) -> None:
        for field in ("dropout", "mdc_dropout"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise ValueError(f"SU4MLCConfig.{field} must be a number in [0, 1), got {value!r}.")
        value = self.initializer_range
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value <= 10.0:
            raise ValueError(f"SU4MLCConfig.initializer_range must be a number in (0, 10], got {value!r}.")

    def _check_labels(self) -> None:
        if not self.id2label:
            raise ValueError("SU4MLCConfig.id2label must name at least one label.")
        if len(self.id2label) > MAX_NUM_LABELS:
            raise ValueError(f"SU4MLCConfig.id2label has {len(self.id2label)} labels, more than {MAX_NUM_LABELS}.")
        if self.label_token_layout not in (None, *LABEL_TOKEN_LAYOUTS):
            raise ValueError(
                f"SU4MLCConfig.label_token_layout={self.label_token_layout!r} is not one of {LABEL_TOKEN_LAYOUTS}."
            )
        self._check_decision_values()

    def _check_decision_values(self) -> None:
        """The auxiliary label head's weight and the decision threshold (see the class docstring)."""
        weight = self.label_head_loss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 100.0:
            raise ValueError(f"SU4MLCConfig.label_head_loss_weight must be a number in [0, 100], got {weight!r}.")
        for field in ("label_score_head_weight", "label_score_ngram_weight"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"SU4MLCConfig.{field} must be a number in [0, 1], got {value!r}.")
        threshold = self.decision_threshold
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0
        ):
            raise ValueError(f"SU4MLCConfig.decision_threshold must be None or in (0, 1), got {threshold!r}.")

    @property
    def estimated_num_parameters(self) -> int:
        """An upper estimate of the model's parameter count, from the size fields (for the bound check)."""
        embedding, hidden, labels = self.embedding_size, self.hidden_size, self.label_vocab_size
        direction = hidden // 2 if self.direction_merge == "concat" else hidden
        encoder = 2 * self.encoder_layers * 4 * direction * (max(embedding, 2 * direction) + direction + 2)
        mdc = len(self.mdc_dilation_rates) * (hidden * hidden * self.mdc_kernel_size + hidden)
        decoder = self.decoder_layers * 4 * hidden * (max(embedding, hidden) + hidden + 2) + 6 * hidden * hidden
        head = (2 * hidden + 1) * labels + self.label_head_ngram_features * self.num_labels
        if self.ngram_classifier_bigrams is not None:
            features = self.source_vocab_size + self.ngram_classifier_bigrams + self.ngram_classifier_char_ngrams
            head += (features + 1) * self.num_labels
        return (self.source_vocab_size + labels) * embedding + encoder + mdc + decoder + head

    @property
    def label_vocab_size(self) -> int:
        """Number of label tokens the decoder embeds and scores: the real labels, then PAD, BOS and EOS."""
        return self.num_labels + NUM_SPECIAL_LABEL_TOKENS

    @property
    def mdc_receptive_field(self) -> int:
        """Words one semantic unit covers: 1 + (kernel - 1) * sum(dilation rates)."""
        return 1 + (self.mdc_kernel_size - 1) * sum(self.mdc_dilation_rates)

    @property
    def min_source_length(self) -> int:
        """Shortest input (in words) that yields one semantic unit; shorter texts are zero-extended to it."""
        return max(1, self.mdc_receptive_field - 2 * self.mdc_padding * len(self.mdc_dilation_rates))


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_integer_fields(config, maxima: dict[str, int], minimum: int = 1) -> None:
    """Each field of `config` named in `maxima` is an integer in [minimum, its maximum], or a `ValueError` names it."""
    for field, maximum in maxima.items():
        value = getattr(config, field)
        if not is_integer(value) or not minimum <= value <= maximum:
            raise ValueError(
                f"{type(config).__name__}.{field} must be an integer in [{minimum}, {maximum:,}], got {value!r}."
            )


def check_generation_config(config, generation_config, source: str = "the generation config") -> None:
    """
    Rejects generation settings this model cannot decode with, naming `source` (e.g. the
    `generation_config.json` they were read from): `num_beams` and `max_length` out of range, or special
    token ids that are not `config`'s (a generation config of another model, or of the old label layout).
    """
    # None is transformers' "not set": its default (1 beam, max_length 20) applies.
    num_beams = generation_config.num_beams
    if num_beams is not None and (not is_integer(num_beams) or not 1 <= num_beams <= MAX_NUM_BEAMS):
        raise ValueError(f"{source}: num_beams must be an integer in [1, {MAX_NUM_BEAMS}], got {num_beams!r}.")
    max_length = generation_config.max_length
    if max_length is not None and (
        not is_integer(max_length) or not 2 <= max_length <= SIZE_FIELD_MAXIMA["max_labels"] + 2
    ):
        raise ValueError(
            f"{source}: max_length (BOS, the labels, EOS) must be an integer in "
            f"[2, {SIZE_FIELD_MAXIMA['max_labels'] + 2}], got {max_length!r}."
        )
    for field in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
        if getattr(generation_config, field) != getattr(config, field):
            raise ValueError(
                f"{source}: {field}={getattr(generation_config, field)!r} is not the model's "
                f"{getattr(config, field)} (config.json): the generation config belongs to another model."
            )


def assign_label_token_ids(config) -> None:
    """
    Sets a label decoder's `pad_token_id`, `bos_token_id`, `eos_token_id` and `decoder_start_token_id` from its
    number of labels (see `label_vocab`), and `label_token_layout`.

    A config.json written before the layout existed has no `label_token_layout` and PAD/BOS/EOS = 0/1/2: it is
    marked `"specials_first"`, which `from_pretrained` reads to reorder the weights. Any other id given must be
    the one the layout fixes, so a hand-edited config cannot point EOS at a label.
    """
    expected = dict(zip(("pad_token_id", "bos_token_id", "eos_token_id"), special_label_token_ids(config.num_labels)))
    expected["decoder_start_token_id"] = expected["bos_token_id"]
    given = {field: getattr(config, field) for field in expected}
    legacy = dict(zip(expected, (*LEGACY_SPECIAL_LABEL_TOKEN_IDS, LEGACY_SPECIAL_LABEL_TOKEN_IDS[1])))
    if config.label_token_layout is None:
        config.label_token_layout = LEGACY_LABEL_TOKEN_LAYOUT if given == legacy else LABEL_TOKEN_LAYOUT
    if config.label_token_layout == LABEL_TOKEN_LAYOUT:
        for field, value in given.items():
            if value is not None and value != expected[field]:
                raise ValueError(
                    f"{type(config).__name__}.{field}={value!r}, but with {config.num_labels} labels first the "
                    f"label token ids fix it to {expected[field]}: id2label or the token ids were edited (without the "
                    "token ids, they follow from id2label)."
                )
    for field, value in expected.items():
        setattr(config, field, value)


__all__ = ["SU4MLCConfig"]
