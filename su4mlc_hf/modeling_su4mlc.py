"""PyTorch SU4MLC model: a BiLSTM encoder, multi-level dilated convolution (MDC) over its annotations, and an
LSTM label decoder with hybrid attention that generates one label per step (Lin et al., EMNLP 2018)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn
from transformers import GenerationConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.utils import GENERATION_CONFIG_NAME, SAFE_WEIGHTS_NAME, ModelOutput, cached_file
from transformers.utils.logging import tqdm

from .configuration_su4mlc import SU4MLCConfig, check_generation_config
from .decision import mix_label_scores, threshold_decision
from .label_vocab import (
    LABEL_TOKEN_LAYOUT,
    LEGACY_LABEL_TOKEN_LAYOUT,
    NUM_SPECIAL_LABEL_TOKENS,
    WORD_PAD_ID,
    LabelVocabulary,
    special_label_token_ids,
)
from .pipeline_su4mlc import CUSTOM_PIPELINES


@dataclass
class SU4MLCEncoderOutput(ModelOutput):
    """
    What the decoder needs from a text, batch first throughout so that `generate()` can expand every field per beam.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, source_length, hidden_size)`):
            Word annotations h_i; zero at padded positions. `source_length` is at least `config.min_source_length`.
        semantic_units (`torch.FloatTensor` of shape `(batch_size, num_units, hidden_size)`):
            MDC outputs g_j (semantic-unit representations); zero past each text's last unit. None for the
            attention variants that do not read them (`none`, `word`).
        source_mask (`torch.BoolTensor` of shape `(batch_size, source_length)`):
            True at real words of `last_hidden_state`.
        semantic_unit_mask (`torch.BoolTensor` of shape `(batch_size, num_units)`):
            True at real semantic units; every text has at least one. None with `semantic_units`.
        decoder_initial_hidden (`torch.FloatTensor` of shape `(batch_size, decoder_layers, hidden_size)`):
            Initial decoder LSTM hidden state, from the encoder's final states.
        decoder_initial_cell (`torch.FloatTensor` of shape `(batch_size, decoder_layers, hidden_size)`):
            Initial decoder LSTM cell state.
    """

    last_hidden_state: torch.FloatTensor | None = None
    semantic_units: torch.FloatTensor | None = None
    source_mask: torch.BoolTensor | None = None
    semantic_unit_mask: torch.BoolTensor | None = None
    decoder_initial_hidden: torch.FloatTensor | None = None
    decoder_initial_cell: torch.FloatTensor | None = None


@dataclass
class SU4MLCSeq2SeqOutput(ModelOutput):
    """
    Output of [`SU4MLCForMultiLabelClassification.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Teacher-forced cross-entropy of the label sequence (padding positions, -100, ignored).
        logits (`torch.FloatTensor` of shape `(batch_size, target_length, config.vocab_size)`):
            Scores of the next label token at each decoder step.
        cache ([`SU4MLCDecoderCache`], *optional*, returned when `use_cache=True`):
            Decoder state after the last step, to continue generation one step at a time.
        decoder_attentions (`None`):
            Kept for `generate(output_attentions=True)`: the decoder has no self-attention.
        cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
            Attention weights of each attention layer, in the order they are applied (hybrid: over semantic units,
            then over words), each of shape `(batch_size, target_length, num_units or source_length)`.
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, source_length, hidden_size)`):
            The word annotations h.
        label_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            The auxiliary label head's logits (see `config.label_head_loss_weight`), returned with `labels`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: SU4MLCDecoderCache | None = None
    decoder_attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None
    encoder_last_hidden_state: torch.FloatTensor | None = None
    label_logits: torch.FloatTensor | None = None


class SU4MLCDecoderCache:
    """
    The decoder's recurrent state between generation steps: the LSTM hidden and cell states. (The attention needs
    nothing per text beyond the encoder outputs: see [`SU4MLCAttention`].)

    Beam search calls [`reorder_cache`] with the surviving beams' rows.

    Args:
        hidden (`torch.FloatTensor` of shape `(decoder_layers, batch_size, hidden_size)`)
        cell (`torch.FloatTensor` of shape `(decoder_layers, batch_size, hidden_size)`)
        length (`int`): decoder steps taken.
    """

    # What `generate()` asks of a cache: it is neither compilable nor croppable, and its length is the steps taken.
    is_compileable = False
    is_croppable = False

    def __init__(self, hidden: torch.Tensor, cell: torch.Tensor, length: int):
        self.hidden = hidden
        self.cell = cell
        self.length = length

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keeps the LSTM state of the beams in `beam_idx` (shape `(batch_size * num_beams,)`), in place."""
        self.hidden = self.hidden.index_select(1, beam_idx.to(self.hidden.device))
        self.cell = self.cell.index_select(1, beam_idx.to(self.cell.device))


# The generation config fields that hold label token ids (a single id or a list of ids).
LABEL_TOKEN_ID_GENERATION_FIELDS = (
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "decoder_start_token_id",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
)


def unreadable_weights_error(weights_file: str, error: Exception) -> OSError:
    """The error for a safetensors file that cannot be read, naming the file (safetensors' own error does not)."""
    return OSError(
        f"Cannot read the weights in {weights_file}: {error}. The file is truncated or corrupt (was its save "
        "interrupted?)."
    )


def check_loading_info(loading_info: dict, weights_file: str) -> None:
    """Raises an `OSError` naming `weights_file` and the tensors when `from_pretrained`'s `loading_info` reports
    tensors missing from the file or unexpected in it."""
    problems = [
        f"{kind} {sorted(loading_info[key])}"
        for kind, key in (("missing", "missing_keys"), ("unexpected", "unexpected_keys"))
        if loading_info[key]
    ]
    if problems:
        raise OSError(
            f"The weights in {weights_file} do not match the model's config: tensors {' and '.join(problems)}. The "
            "config.json (e.g. mdc_dilation_rates, layers, attention) is not the one the weights were saved with; "
            "pass allow_missing_and_unexpected_weights=True only to load a partial checkpoint on purpose."
        )


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.BoolTensor:
    """`(batch_size,)` lengths → `(batch_size, max_length)` mask, True before each length."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


# A gate pre-activation this far from 0 makes the sigmoid exactly 0 or 1 (float32, bfloat16 and float16 alike).
def cpu_supports_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 BF16 or AMX): without them `torch.lstm` under a
    bfloat16 autocast fails ("could not create a primitive descriptor for the LSTM forward propagation primitive")."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


PADDING_GATE_SATURATION = 1e4


def lstm_over_padded_batch(
    lstm: nn.LSTM, inputs: torch.Tensor, mask: torch.BoolTensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Runs a batch-first `lstm` over right-padded texts with the results of running it over each text alone (as a
    packed sequence would), in one call per layer over the padded batch. PyTorch runs a packed sequence one step
    at a time and its backward pass op by op; a padded batch runs through the fused LSTM kernel (oneDNN on CPU),
    several times faster to train.

    Each layer reads one extra input feature, 1 at padding, weighted -S on the input gate and +S on the forget
    gate (S = `PADDING_GATE_SATURATION`, a constant, not a parameter): at padding i = 0 and f = 1 exactly, so the
    cell state crosses the padding unchanged and the reverse direction reaches a text's last word with the zero
    state. The gradients through padding are exactly zero (the saturated gates' derivatives are 0).

    Args:
        lstm (`nn.LSTM`): batch first, without projections.
        inputs (`torch.FloatTensor` of shape `(batch_size, length, input_size)`): zero or anything finite at padding.
        mask (`torch.BoolTensor` of shape `(batch_size, length)`): True at each text's positions, at least one.

    Returns:
        `(outputs, final_hidden, final_cell)`: outputs of shape `(batch_size, length, directions * hidden_size)`,
        zero at padding; final states of shape `(layers * directions, batch_size, hidden_size)`, those of each
        text's own last position (its first one for the reverse direction).
    """
    directions = 2 if lstm.bidirectional else 1
    hidden_size = lstm.hidden_size
    padding = (~mask).to(inputs.dtype)[..., None]
    padding_weight = inputs.new_zeros(4 * hidden_size, 1)
    padding_weight[:hidden_size] = -PADDING_GATE_SATURATION  # input gate (PyTorch's gate order is i, f, g, o)
    padding_weight[hidden_size : 2 * hidden_size] = PADDING_GATE_SATURATION  # forget gate
    last_positions = mask.sum(dim=1) - 1
    rows = torch.arange(inputs.size(0), device=inputs.device)
    initial = inputs.new_zeros(directions, inputs.size(0), hidden_size)
    final_hidden, final_cell = [], []
    for layer in range(lstm.num_layers):
        weights = []
        for direction in range(directions):
            suffix = f"_l{layer}{'_reverse' if direction else ''}"
            weights.append(torch.cat([getattr(lstm, f"weight_ih{suffix}"), padding_weight], dim=1))
            weights.append(getattr(lstm, f"weight_hh{suffix}"))
            if lstm.bias:
                weights.extend([getattr(lstm, f"bias_ih{suffix}"), getattr(lstm, f"bias_hh{suffix}")])
        if layer > 0:
            inputs = nn.functional.dropout(inputs, lstm.dropout, lstm.training)
        inputs, hidden, cell = torch.lstm(
            torch.cat([inputs, padding], dim=-1),
            (initial, initial),
            weights,
            lstm.bias,
            1,
            0.0,
            lstm.training,
            lstm.bidirectional,
            True,
        )
        # The forward direction's last state is that of the padding after the text: take its last word's output.
        hidden = torch.cat([inputs[rows, last_positions, :hidden_size][None], hidden[1:]])
        final_hidden.append(hidden)
        final_cell.append(cell)
    return inputs * mask[..., None].to(inputs.dtype), torch.cat(final_hidden), torch.cat(final_cell)


class SU4MLCMultiLevelDilatedConvolution(nn.Module):
    """
    Multi-level dilated convolution: stacked 1-D convolutions (kernel `mdc_kernel_size`, one per dilation rate, no
    pooling, no stride) turning word annotations h into semantic units g.

    Each layer's output is zeroed past the length the text alone would give, so a text's units do not depend on how
    much padding its batch has. A text shorter than `config.min_source_length` is zero-extended to it, so it has one
    semantic unit covering all its words.
    """

    def __init__(self, config: SU4MLCConfig):
        super().__init__()
        self.padding = config.mdc_padding
        self.kernel_size = config.mdc_kernel_size
        self.min_source_length = config.min_source_length
        self.convolutions = nn.ModuleList(
            nn.Conv1d(
                config.hidden_size,
                config.hidden_size,
                config.mdc_kernel_size,
                dilation=rate,
                padding=config.mdc_padding,
            )
            for rate in config.mdc_dilation_rates
        )
        self.dilation_rates = list(config.mdc_dilation_rates)
        if config.mdc_activation == "selu":
            self.activation, self.dropout = nn.SELU(), nn.AlphaDropout(config.mdc_dropout)
        else:
            self.activation = nn.ReLU() if config.mdc_activation == "relu" else nn.Identity()
            self.dropout = nn.Dropout(config.mdc_dropout)

    def forward(self, annotations: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.BoolTensor]:
        """
        Args:
            annotations (`torch.FloatTensor` of shape `(batch_size, source_length, hidden_size)`):
                h, zero past each length; `source_length >= min_source_length`.
            lengths (`torch.LongTensor` of shape `(batch_size,)`): words per text.

        Returns:
            `(semantic_units, semantic_unit_mask)` of shapes `(batch_size, num_units, hidden_size)` and
            `(batch_size, num_units)`.
        """
        lengths = lengths.clamp(min=self.min_source_length)
        units = annotations.transpose(1, 2)  # Conv1d wants (batch, channels, length)
        for convolution, rate in zip(self.convolutions, self.dilation_rates):
            units = self.dropout(self.activation(convolution(units)))
            lengths = lengths + 2 * self.padding - (self.kernel_size - 1) * rate
            units = units * lengths_to_mask(lengths, units.size(-1))[:, None, :].to(units.dtype)
        return units.transpose(1, 2), lengths_to_mask(lengths, units.size(-1))


class SU4MLCEncoder(nn.Module):
    """Word embeddings → bidirectional LSTM over each text's words (annotations h) → MDC (semantic units g)."""

    main_input_name = "input_ids"

    def __init__(self, config: SU4MLCConfig):
        super().__init__()
        self.config = config
        self.direction_merge = config.direction_merge
        direction_size = config.hidden_size // 2 if config.direction_merge == "concat" else config.hidden_size
        self.embed_tokens = nn.Embedding(config.source_vocab_size, config.embedding_size, padding_idx=WORD_PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embedding_size,
            direction_size,
            num_layers=config.encoder_layers,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
            bidirectional=True,
            batch_first=True,
        )
        # Only the variants that attend semantic units need them computed.
        uses_units = config.attention in ("mdc", "additive", "hybrid")
        self.mdc = SU4MLCMultiLevelDilatedConvolution(config) if uses_units else None
        # Decoder layer l starts from encoder layer min(l, encoder_layers - 1).
        self.decoder_state_layers = [min(layer, config.encoder_layers - 1) for layer in range(config.decoder_layers)]

    def _merge_directions(self, forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
        return torch.cat([forward, backward], dim=-1) if self.direction_merge == "concat" else forward + backward

    def _decoder_state(self, final: torch.Tensor) -> torch.Tensor:
        """`(encoder_layers * 2, batch, direction_size)` final LSTM states → `(batch, decoder_layers, hidden_size)`:
        decoder layer l starts from encoder layer min(l, encoder_layers - 1)."""
        final = final.view(self.config.encoder_layers, 2, final.size(1), final.size(2))
        merged = self._merge_directions(final[:, 0], final[:, 1])
        return merged[self.decoder_state_layers].transpose(0, 1)

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
                1 at real words; by default every non-PAD id is a word. An empty text reads one PAD token.
        """
        if attention_mask is None:
            attention_mask = input_ids.ne(WORD_PAD_ID)
        if input_ids.size(1) == 0:  # a batch of empty texts: each reads one PAD token
            input_ids = nn.functional.pad(input_ids, (0, 1), value=WORD_PAD_ID)
            attention_mask = nn.functional.pad(attention_mask, (0, 1), value=0)
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        embedded = self.dropout(self.embed_tokens(input_ids))
        output, final_hidden, final_cell = lstm_over_padded_batch(
            self.lstm, embedded, lengths_to_mask(lengths, input_ids.size(1))
        )
        total_length = max(input_ids.size(1), self.config.min_source_length)
        output = nn.functional.pad(output, (0, 0, 0, total_length - output.size(1)))
        forward_output, backward_output = output.chunk(2, dim=-1)
        annotations = self._merge_directions(forward_output, backward_output)
        semantic_units, semantic_unit_mask = self.mdc(annotations, lengths) if self.mdc else (None, None)

        return SU4MLCEncoderOutput(
            last_hidden_state=annotations,
            semantic_units=semantic_units,
            source_mask=lengths_to_mask(attention_mask.sum(dim=1), total_length),
            semantic_unit_mask=semantic_unit_mask,
            decoder_initial_hidden=self._decoder_state(final_hidden),
            decoder_initial_cell=self._decoder_state(final_cell),
        )


class SU4MLCAttention(nn.Module):
    """
    Luong "general" attention: e_{t,i} = s_tᵀ W_a x_i, α = softmax over the unmasked positions, c_t = Σ α_{t,i} x_i,
    output tanh(W_c [c_t; s_t]).

    The scores are computed as (W_aᵀ s_t)ᵀ x_i: W_a projects the decoder's few queries (a label set takes about 3
    steps) instead of every word and unit of the text (about 150), and the memory is read as the encoder left it,
    with no projected copy per text, or per beam once `generate()` has expanded the texts.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.key_projection = nn.Linear(hidden_size, hidden_size, bias=False)  # W_a
        self.output_projection = nn.Linear(2 * hidden_size, hidden_size, bias=False)  # W_c

    def forward(
        self, queries: torch.Tensor, memory: torch.Tensor, mask: torch.BoolTensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            queries (`(batch, steps, hidden)`), memory (`(batch, length, hidden)`), mask (`(batch, length)`).

        Returns:
            `(outputs, weights)` of shapes `(batch, steps, hidden)` and `(batch, steps, length)`.
        """
        # key_projection(x) = x W_aᵀ, so s · key_projection(x) = (s W_a) · x.
        scores = torch.bmm(torch.matmul(queries, self.key_projection.weight), memory.transpose(1, 2))
        scores = scores.masked_fill(~mask[:, None, :], torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        context = torch.bmm(weights, memory)
        return torch.tanh(self.output_projection(torch.cat([context, queries], dim=-1))), weights


class SU4MLCDecoder(nn.Module):
    """LSTM over label embeddings, then the configured attention over g and/or h, then a linear label scorer."""

    def __init__(self, config: SU4MLCConfig):
        super().__init__()
        self.config = config
        self.attention_type = config.attention
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embedding_size,
            config.hidden_size,
            num_layers=config.decoder_layers,
            dropout=config.dropout if config.decoder_layers > 1 else 0.0,
            batch_first=True,
        )
        # Memories attended, in order: "mdc" reads g, "word" reads h, "additive" and "hybrid" read g then h.
        self.memories = {
            "none": (),
            "word": ("words",),
            "mdc": ("units",),
            "additive": ("units", "words"),
            "hybrid": ("units", "words"),
        }[config.attention]
        self.attentions = nn.ModuleList(SU4MLCAttention(config.hidden_size) for _ in self.memories)
        concatenated = config.attention == "hybrid" and config.hybrid_output == "concat"
        self.output_layer = nn.Linear((2 if concatenated else 1) * config.hidden_size, config.vocab_size)

    def _memory(self, encoder_outputs: SU4MLCEncoderOutput, name: str) -> tuple[torch.Tensor, torch.BoolTensor]:
        if name == "units":
            return encoder_outputs.semantic_units, encoder_outputs.semantic_unit_mask
        return encoder_outputs.last_hidden_state, encoder_outputs.source_mask

    def forward(
        self,
        decoder_input_ids: torch.LongTensor,
        encoder_outputs: SU4MLCEncoderOutput,
        cache: SU4MLCDecoderCache | None = None,
    ) -> tuple[torch.Tensor, SU4MLCDecoderCache, tuple[torch.Tensor, ...]]:
        """
        Args:
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, steps)`):
                Label tokens read at each step (BOS first when `cache` is None).
            encoder_outputs ([`SU4MLCEncoderOutput`]): the encoded texts.
            cache ([`SU4MLCDecoderCache`], *optional*): state after the steps already taken.

        Returns:
            `(logits, cache, attention_weights)`: logits of shape `(batch_size, steps, vocab_size)`, the state
            after the last step, and one `(batch_size, steps, length)` weight tensor per attention layer.
        """
        if cache is None:
            cache = SU4MLCDecoderCache(
                encoder_outputs.decoder_initial_hidden.transpose(0, 1).contiguous(),
                encoder_outputs.decoder_initial_cell.transpose(0, 1).contiguous(),
                length=0,
            )
        embedded = self.dropout(self.embed_tokens(decoder_input_ids))
        states, (hidden, cell) = self.lstm(embedded, (cache.hidden, cache.cell))
        next_cache = SU4MLCDecoderCache(hidden, cell, cache.length + decoder_input_ids.size(1))

        # The rows of a text's beams are consecutive and share the text's encoder outputs (see
        # `SU4MLCForMultiLabelClassification._expand_inputs_for_generation`): attention takes the beams of a text as
        # more steps of that text, and reads its memory once for all of them.
        rows, steps = states.shape[:2]
        texts = encoder_outputs.source_mask.size(0)
        if rows % texts:
            raise ValueError(f"{rows} decoder rows cannot be the beams of {texts} encoded texts.")
        weights = []
        attended = []
        for attention, name in zip(self.attentions, self.memories):
            memory, mask = self._memory(encoder_outputs, name)
            # Hybrid: the word attention is queried by the semantic-unit attention's output s'_t.
            query = attended[-1] if self.attention_type == "hybrid" and attended else states
            output, weight = attention(query.reshape(texts, rows // texts * steps, -1), memory, mask)
            attended.append(output.reshape(rows, steps, -1))
            weights.append(weight.reshape(rows, steps, -1))

        if self.attention_type == "none":
            outputs = states
        elif self.attention_type in ("word", "mdc"):
            outputs = attended[0]
        elif self.attention_type == "additive" or self.config.hybrid_output == "residual":
            outputs = attended[0] + attended[1]
        else:  # hybrid, as in the paper: o_t = s'_t ⊕ s̃_t
            outputs = torch.cat(attended, dim=-1)
        return self.output_layer(self.dropout(outputs)), next_cache, tuple(weights)


class SU4MLCBagOfNgrams(nn.Module):
    """
    *Not in the paper*: a linear classifier over each text's bag of words and word bigrams, hashed into
    `config.label_head_ngram_features` features, whose logits the label head adds to its own. Why: with thousands of
    training texts the recurrent encoder learns a label's rare but telling words slowly, while a linear model over
    n-grams learns them in a few passes (it is what the linear baselines are); trained jointly, the recurrent part
    learns what the n-grams miss. A text's features are weighted 1 / sqrt(their count), as a binary bag normalised
    to unit length, and the sum multiplied by `LOGIT_SCALE`.
    """

    # Why a scale: the unit-length features are small (0.06 for a Reuters article of 120 words), and Adam moves each
    # weight by about the learning rate per update, so unscaled logits grow too slowly: a Reuters model of the n-grams
    # alone reached validation micro-F1 0.70 after 6 epochs unscaled, 0.81 after 3 at 10 and 0.82 after 1 at 30.
    LOGIT_SCALE = 10.0
    # Multipliers of the hash (Knuth's and xxHash's 32-bit primes); word ids stay below 2^23, so the products fit
    # in int64.
    LEFT, RIGHT, UNIGRAM = 2654435761, 2246822519, 3266489917

    def __init__(self, config: SU4MLCConfig):
        super().__init__()
        self.num_features = config.label_head_ngram_features
        self.weights = nn.EmbeddingBag(self.num_features, config.num_labels, mode="sum")

    def features(self, input_ids: torch.LongTensor, mask: torch.BoolTensor) -> tuple[torch.LongTensor, torch.Tensor]:
        """
        `(batch, length)` word ids and mask → `(batch, 2 * length - 1)` feature ids (the words, then the bigrams)
        and their weights (0 where a word or bigram is padding).
        """
        left, right = input_ids[:, :-1], input_ids[:, 1:]
        unigrams = (input_ids * self.LEFT) ^ self.UNIGRAM
        bigrams = (left * self.LEFT) ^ (right * self.RIGHT)
        ids = torch.cat([unigrams, bigrams], dim=1).remainder(self.num_features)
        present = torch.cat([mask, mask[:, :-1] & mask[:, 1:]], dim=1).float()
        return ids, present * present.sum(dim=1, keepdim=True).clamp(min=1.0).rsqrt()

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): word ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`): 1 at real words.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, num_labels)`: one logit per label.
        """
        if input_ids.size(1) == 0:
            return self.weights.weight.new_zeros(input_ids.size(0), self.weights.embedding_dim)
        ids, weights = self.features(input_ids, attention_mask.bool())
        return self.LOGIT_SCALE * self.weights(ids, per_sample_weights=weights.to(self.weights.weight.dtype))


class SU4MLCNgramClassifier(nn.Module):
    """
    *Not in the paper*: a linear classifier over each text's words, word bigrams and the character n-grams of its
    words, one linear SVM per label, fitted on the training split before the network is trained
    (`su4mlc_hf.ngram_fit`) and not trained with it. Its margins, made probabilities by a logistic calibration fitted
    on validation, enter the label scores with weight `config.label_score_ngram_weight`. Why: on thousands of texts
    such a classifier is as strong as the network (it is the linear baselines' model) and errs differently, so the
    mix of the two can beat each (BENCHMARKS.md).

    Features, in three blocks:

    - words: word id w is feature w;
    - bigrams: the word ids (l, r) are feature `source_vocab_size + i` when `l * source_vocab_size + r` is
      `bigram_keys[i]` (bigrams of at least two training texts), none otherwise;
    - character n-grams: word id w brings the features `char_ngram_ids[char_ngram_offsets[w]:char_ngram_offsets[w+1]]`
      (after the bigrams), its 2- to 5-character n-grams padded with a space at each end, as scikit-learn's
      `char_wb` analyzer (those of at least two training texts).

    A text's values are TF-IDF, (1 + log count) × idf, and each block (words and bigrams; character n-grams) is
    scaled to unit length, as the linear baselines' two stacked vectorizers.
    """

    def __init__(self, config: SU4MLCConfig):
        super().__init__()
        self.vocab_size = config.source_vocab_size
        self.num_bigrams = config.ngram_classifier_bigrams
        num_features = self.vocab_size + self.num_bigrams + config.ngram_classifier_char_ngrams
        # Sorted, for `torch.searchsorted`.
        self.register_buffer("bigram_keys", torch.zeros(self.num_bigrams, dtype=torch.long))
        self.register_buffer("char_ngram_offsets", torch.zeros(self.vocab_size + 1, dtype=torch.long))
        self.register_buffer("char_ngram_ids", torch.zeros(config.ngram_classifier_char_entries, dtype=torch.long))
        self.register_buffer("idf", torch.ones(num_features))
        # (a, b) of P(label) = sigmoid(a * margin + b).
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))
        self.weight = nn.Parameter(torch.zeros(num_features, config.num_labels), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(config.num_labels), requires_grad=False)

    @property
    def num_features(self) -> int:
        return self.idf.numel()

    def bigram_ids(self, input_ids: torch.LongTensor) -> tuple[torch.LongTensor, torch.BoolTensor]:
        """`(batch, length)` word ids → `(batch, length - 1)` feature ids of the bigrams and whether each is one."""
        keys = input_ids[:, :-1] * self.vocab_size + input_ids[:, 1:]
        if self.bigram_keys.numel() == 0:
            return keys, torch.zeros_like(keys, dtype=torch.bool)
        ranks = torch.searchsorted(self.bigram_keys, keys).clamp(max=self.bigram_keys.numel() - 1)
        return self.vocab_size + ranks, self.bigram_keys[ranks].eq(keys)

    def char_ngram_occurrences(self, rows: torch.LongTensor, words: torch.LongTensor) -> tuple[torch.LongTensor, ...]:
        """The character n-grams of word occurrences (`rows[k]` holds word `words[k]`) → their rows and feature ids."""
        starts, ends = self.char_ngram_offsets[words], self.char_ngram_offsets[words + 1]
        counts = ends - starts
        first = torch.repeat_interleave(starts - (counts.cumsum(0) - counts), counts)
        positions = first + torch.arange(first.numel(), device=first.device)
        return torch.repeat_interleave(rows, counts), self.char_ngram_ids[positions]

    def tfidf(self, rows: torch.LongTensor, ids: torch.LongTensor, batch_size: int) -> tuple[torch.Tensor, ...]:
        """Occurrences (row, feature id) → one entry per row and feature, its values unit length per row."""
        entries, counts = torch.unique(rows * self.num_features + ids, return_counts=True)
        rows, ids = entries // self.num_features, entries % self.num_features
        values = (1.0 + counts.float().log()) * self.idf[ids]
        norms = values.new_zeros(batch_size).index_add_(0, rows, values.square()).sqrt()
        return rows, ids, values / norms[rows].clamp(min=1e-12)

    def features(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor
    ) -> tuple[torch.LongTensor, torch.LongTensor, torch.Tensor]:
        """
        The texts' feature vectors as `(rows, feature ids, values)` of their nonzero entries, one entry per text and
        feature (for a sparse `(batch, num_features)` matrix).
        """
        mask = attention_mask.bool()
        bigrams, known = self.bigram_ids(input_ids)
        ids = torch.cat([input_ids, bigrams], dim=1)
        present = torch.cat([mask, mask[:, :-1] & mask[:, 1:] & known], dim=1)
        rows = torch.arange(ids.size(0), device=ids.device)[:, None].expand_as(ids)
        words = self.tfidf(rows[present], ids[present], ids.size(0))
        char_rows, char_ids = self.char_ngram_occurrences(rows[:, : input_ids.size(1)][mask], input_ids[mask])
        chars = self.tfidf(char_rows, char_ids, ids.size(0))
        return tuple(torch.cat(parts) for parts in zip(words, chars))

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): word ids.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`): 1 at real words.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, num_labels)`: each label's SVM margin.
        """
        margins = self.bias.expand(input_ids.size(0), -1).clone()
        if input_ids.size(1) == 0:
            return margins
        rows, ids, values = self.features(input_ids, attention_mask)
        return margins.index_add_(0, rows, values[:, None] * self.weight[ids])

    def probabilities(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`(batch_size, num_labels)` calibrated probabilities, sigmoid(a × margin + b)."""
        slope, offset = self.calibration
        return (slope * self(input_ids, attention_mask) + offset).sigmoid()


class SU4MLCLabelHead(nn.Module):
    """
    *Not in the paper*: an auxiliary per-label sigmoid classifier over the max-pooled word annotations h and, for
    the variants that compute them, the max-pooled semantic units g, trained with binary cross-entropy beside the
    sequence loss (`config.label_head_loss_weight`). Why: the sequence loss teaches a label only at the step its
    target sequence names it, so rare labels get few gradient signals; the per-label loss gives every label one
    signal per text, and its probabilities, mixed with the beam marginals, make better per-label scores.
    """

    def __init__(self, config: SU4MLCConfig):
        super().__init__()
        self.pools_units = config.attention in ("mdc", "additive", "hybrid")
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear((2 if self.pools_units else 1) * config.hidden_size, config.num_labels)
        self.ngrams = SU4MLCBagOfNgrams(config) if getattr(config, "label_head_ngram_features", 0) else None

    @staticmethod
    def _max_pool(memory: torch.Tensor, mask: torch.BoolTensor) -> torch.Tensor:
        """`(batch, length, hidden)` → `(batch, hidden)`: the maximum over the unmasked positions."""
        return memory.masked_fill(~mask[..., None], torch.finfo(memory.dtype).min).amax(dim=1)

    def forward(
        self,
        encoder_outputs: SU4MLCEncoderOutput,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            encoder_outputs ([`SU4MLCEncoderOutput`]): the encoded texts.
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`, *optional*):
                Their word ids; needed when the head has a bag of n-grams (`config.label_head_ngram_features`).
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 at real words.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, num_labels)`: one logit per label.
        """
        pooled = [self._max_pool(encoder_outputs.last_hidden_state, encoder_outputs.source_mask)]
        if self.pools_units:
            pooled.append(self._max_pool(encoder_outputs.semantic_units, encoder_outputs.semantic_unit_mask))
        logits = self.classifier(self.dropout(torch.cat(pooled, dim=-1)))
        if self.ngrams is not None:
            if input_ids is None:
                raise ValueError("This label head reads the texts' n-grams: pass `input_ids` with the encoding.")
            if attention_mask is None:
                attention_mask = input_ids.ne(WORD_PAD_ID)
            logits = logits + self.ngrams(input_ids, attention_mask)
        return logits


@dataclass
class SU4MLCLabelScores(ModelOutput):
    """
    Output of [`SU4MLCForMultiLabelClassification.score_labels`].

    Args:
        sequences (`torch.LongTensor` of shape `(batch_size, generated_length)`):
            The best generated label sequence of each text, without the decoder start token.
        step_probabilities (`torch.FloatTensor` of shape `(batch_size, generated_length)`):
            P(y_t | y_<t, x) of each token of `sequences`, from the model's raw distribution.
        label_scores (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Each label's probability of being in the text's label set: the beam marginals, mixed with the label
            head's probabilities when the model has a head (`config.label_score_head_weight`).
        beam_label_probabilities (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Σ over the final beams of P(sequence | x) where the label occurs, normalised over the beams. With one
            beam (greedy), the probability of the step that emitted the label, 0 for the others.
        head_label_probabilities (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            The label head's sigmoid probabilities; None without a head.
        ngram_label_probabilities (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            The n-gram classifier's calibrated probabilities; None without one.
    """

    sequences: torch.LongTensor | None = None
    step_probabilities: torch.FloatTensor | None = None
    label_scores: torch.FloatTensor | None = None
    beam_label_probabilities: torch.FloatTensor | None = None
    head_label_probabilities: torch.FloatTensor | None = None
    ngram_label_probabilities: torch.FloatTensor | None = None


class TextLabelScores(NamedTuple):
    """What [`SU4MLCForMultiLabelClassification.score_texts`] returns for `n` texts: the label indices of each one's
    best sequence (in generation order) and `(n, num_labels)` arrays of the beam marginals, the label head's and the
    n-gram classifier's probabilities (None where the model has no such part)."""

    sequences: list[list[int]]
    beam: np.ndarray
    head: np.ndarray | None
    ngram: np.ndarray | None


class SU4MLCPreTrainedModel(PreTrainedModel):
    config_class = SU4MLCConfig
    base_model_prefix = "su4mlc"
    main_input_name = "input_ids"
    _no_split_modules = ["SU4MLCEncoder", "SU4MLCDecoder"]

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path, *model_args, allow_missing_and_unexpected_weights: bool = False, **kwargs
    ):
        """
        `PreTrainedModel.from_pretrained`, with these safeguards:

        - weights are read from safetensors files only (`use_safetensors=True` unless given): a pickled
          `pytorch_model.bin`, which could run code when unpickled, is never opened; pass `use_safetensors=False`
          to allow it (transformers then still unpickles it with `torch.load(weights_only=True)`);
        - a truncated or corrupt safetensors file raises an `OSError` that names it (safetensors' own error does
          not), e.g. one left by a save that did not finish;
        - a weights file that lacks a tensor the config asks for, or holds one it does not (e.g. a config with
          fewer `mdc_dilation_rates` than the weights were trained with), raises an `OSError` naming the file and
          the tensors, instead of initialising the missing ones at random and dropping the others.

        [`SU4MLCForMultiLabelClassification.from_pretrained`] adds the checks of the generation config and the
        conversion of the old label-token layout.

        Args:
            allow_missing_and_unexpected_weights (`bool`, *optional*, defaults to `False`):
                Load anyway when tensors are missing from the weights file or unexpected in it: missing tensors are
                then initialised at random and unexpected ones ignored (transformers' default behaviour). Only for
                deliberately partial checkpoints, e.g. to fine-tune from another model's encoder.
            kwargs: as for `PreTrainedModel.from_pretrained`.
        """
        kwargs.setdefault("use_safetensors", True)
        output_loading_info = kwargs.pop("output_loading_info", False)
        weights_file = os.path.join(str(pretrained_model_name_or_path), kwargs.get("subfolder", ""), SAFE_WEIGHTS_NAME)
        try:
            model, loading_info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        except SafetensorError as error:
            raise unreadable_weights_error(weights_file, error) from error
        if not allow_missing_and_unexpected_weights:
            check_loading_info(loading_info, weights_file)
        return (model, loading_info) if output_loading_info else model

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Uniform(-r, r) for embeddings, convolutions and linear layers (as the authors' code), zero biases and
        zero PAD embeddings; LSTMs get transformers' default (Xavier weights, zero biases)."""
        bound = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.uniform_(module.weight, -bound, bound)
            if module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.EmbeddingBag):
            # The n-gram classifier starts as no opinion: the head's first logits are those of the pooled encoding.
            init.zeros_(module.weight)
        else:
            super()._init_weights(module)


class SU4MLCForMultiLabelClassification(SU4MLCPreTrainedModel, GenerationMixin):
    """
    SU4MLC: generates a text's label set as a sequence, one label per step, most frequent labels first.

    Encoder: word embeddings → BiLSTM → annotations h (`hidden_size` features) → multi-level dilated convolution →
    semantic units g. Decoder: LSTM over label embeddings, starting from the encoder's final state; at step t its state
    s_t attends g and/or h according to `config.attention`; the result o_t scores the next label.

    Attention ignores padding over both h and g, so a text's logits do not depend on its batch. Use `generate()` (greedy
    or beam search; the saved `generation_config.json` bans repeated labels and PAD/BOS, beam 5) or [`predict`].
    """

    # Subclasses that keep the decoder and generation but read texts differently (the baselines) swap this.
    encoder_class = SU4MLCEncoder

    def __init__(self, config: SU4MLCConfig):
        super().__init__(config)
        self.encoder = self.encoder_class(config)
        self.decoder = SU4MLCDecoder(config)
        # Configs of the models that reuse this class (the CNN-RNN baseline) have no head and no threshold.
        self.label_head = SU4MLCLabelHead(config) if getattr(config, "label_head_loss_weight", 0.0) > 0 else None
        self.ngram_classifier = (
            None if getattr(config, "ngram_classifier_bigrams", None) is None else SU4MLCNgramClassifier(config)
        )
        self.generation_config = self.default_generation_config(config)
        # The weights this model is built for are always in today's label layout; `from_pretrained` reads the
        # layout of the folder they come from here, to reorder them once they are loaded.
        self.loaded_label_token_layout = config.label_token_layout
        config.label_token_layout = LABEL_TOKEN_LAYOUT
        self.post_init()

    @staticmethod
    def default_generation_config(config: SU4MLCConfig) -> GenerationConfig:
        """Decoding defaults saved with the model: beam 5 (the authors' setting), each label at most once
        (`no_repeat_ngram_size=1`), PAD and BOS never emitted, at most `max_labels` labels then EOS."""
        return GenerationConfig(
            num_beams=5,
            no_repeat_ngram_size=1,
            suppress_tokens=[config.pad_token_id, config.bos_token_id],
            max_length=config.max_labels + 2,  # BOS, the labels, EOS
            # Without it the last position may hold a label instead of EOS: max_labels + 1 labels.
            forced_eos_token_id=config.eos_token_id,
            bos_token_id=config.bos_token_id,
            eos_token_id=config.eos_token_id,
            pad_token_id=config.pad_token_id,
            decoder_start_token_id=config.decoder_start_token_id,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """
        [`SU4MLCPreTrainedModel.from_pretrained`] (safetensors only, every tensor accounted for), and then:

        - an unreadable `generation_config.json` raises an `OSError` naming it instead of being replaced by
          defaults, and one this model cannot decode with (`num_beams` < 1, special ids of another model) a
          `ValueError` naming it;
        - a folder saved in the old label-token layout (PAD/BOS/EOS = 0/1/2 before the labels, no
          `label_token_layout` in config.json) is converted to today's (labels first) by
          [`convert_legacy_label_token_layout`], so that it predicts exactly as before.
        """
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if model.loaded_label_token_layout == LEGACY_LABEL_TOKEN_LAYOUT:
            model.convert_legacy_label_token_layout()
        check_generation_config(
            model.config, model.generation_config, getattr(model, "generation_config_file", "the generation config")
        )
        return loaded


    def adjust_generation_fn(
        self, generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path, **kwargs
    ):
        """
        Reads the folder's `generation_config.json` strictly: a file that exists but cannot be read raises an
        `OSError` naming it, where transformers falls back to bare defaults (greedy, repeated labels allowed); a
        folder without the file decodes with [`default_generation_config`], not with those bare defaults.
        """
        if generation_config is not None or pretrained_model_name_or_path is None:
            return super().adjust_generation_fn(
                generation_config, from_auto_class, from_pipeline, pretrained_model_name_or_path, **kwargs
            )
        download_kwargs = {
            name: kwargs[name]
            for name in ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision")
            if kwargs.get(name) is not None
        }
        resolved = cached_file(
            pretrained_model_name_or_path,
            GENERATION_CONFIG_NAME,
            subfolder=kwargs.get("subfolder") or "",
            _raise_exceptions_for_missing_entries=False,
            **download_kwargs,
        )
        if resolved is None:
            self.generation_config = self.default_generation_config(self.config)
            return
        try:
            with open(resolved, encoding="utf-8") as file:
                self.generation_config = GenerationConfig.from_dict(json.load(file))
        except (OSError, ValueError, TypeError) as error:
            raise OSError(
                f"Cannot read the generation config {resolved}: {error}. Fix the file, or delete it to decode with "
                "the model's defaults."
            ) from error
        self.generation_config_file = resolved

    def restore_label_token_ids(self) -> None:
        """
        Sets PAD, BOS, EOS and the decoder start of the config and the generation config back to the label token ids.
        `Trainer.train` aligns them with its tokenizer's, and the word tokenizer's PAD (0) is a label id here.
        """
        pad_id, bos_id, eos_id = special_label_token_ids(self.config.num_labels)
        for config in (self.config, self.generation_config):
            config.pad_token_id, config.bos_token_id, config.eos_token_id = pad_id, bos_id, eos_id
            config.decoder_start_token_id = bos_id

    @torch.no_grad()
    def convert_legacy_label_token_layout(self) -> None:
        """
        Reorders weights loaded from a folder of the old label-token layout (PAD, BOS, EOS = 0, 1, 2, label i =
        i + 3) into today's (label i = i, then PAD, BOS, EOS): the rows of the label embedding and of the output
        layer, and the token ids of the generation config. Predictions are unchanged.
        """
        num_labels = self.config.num_labels
        # Today's token id j reads the old row new_to_old[j].
        new_to_old = torch.cat(
            [
                torch.arange(NUM_SPECIAL_LABEL_TOKENS, NUM_SPECIAL_LABEL_TOKENS + num_labels),
                torch.arange(NUM_SPECIAL_LABEL_TOKENS),
            ]
        )
        for parameter in (
            self.decoder.embed_tokens.weight,
            self.decoder.output_layer.weight,
            self.decoder.output_layer.bias,
        ):
            parameter.copy_(parameter[new_to_old.to(parameter.device)])

        def new_id(old_id: int) -> int:
            return old_id + num_labels if old_id < NUM_SPECIAL_LABEL_TOKENS else old_id - NUM_SPECIAL_LABEL_TOKENS

        generation_config = self.generation_config
        for field in LABEL_TOKEN_ID_GENERATION_FIELDS:
            value = getattr(generation_config, field, None)
            if isinstance(value, int):
                setattr(generation_config, field, new_id(value))
            elif isinstance(value, (list, tuple)):
                setattr(generation_config, field, [new_id(old_id) for old_id in value])
        self.loaded_label_token_layout = LABEL_TOKEN_LAYOUT

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # The decoder is an LSTM: its cache is SU4MLCDecoderCache, not a key/value cache.
        return False

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, recording this class for `AutoModelForSeq2SeqLM` too in the `auto_map`
        (registration records only `AutoModel`), so both load with `trust_remote_code=True`, and the SU4MLC pipeline
        in `custom_pipelines` (its file is saved with the model code, which imports it), so that
        `pipeline(model=folder, trust_remote_code=True)` needs no task name (see `pipeline_su4mlc.CUSTOM_PIPELINES`)."""
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoModelForSeq2SeqLM": f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}",
            }
            self.config.custom_pipelines = CUSTOM_PIPELINES
        return super().save_pretrained(save_directory, *args, **kwargs)

    def get_encoder(self, modality: str | None = None) -> SU4MLCEncoder:
        return self.encoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder.output_layer

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        encoder_outputs: SU4MLCEncoderOutput | None = None,
        cache: SU4MLCDecoderCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SU4MLCSeq2SeqOutput:
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): word ids of the texts.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 at real words.
            decoder_input_ids (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
                Label tokens read by the decoder; by default `labels` shifted right behind BOS.
            labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
                Target label tokens ending with EOS, padded with -100 (ignored by the loss).
            encoder_outputs ([`SU4MLCEncoderOutput`], *optional*): reuse an encoding instead of `input_ids`.
            cache ([`SU4MLCDecoderCache`], *optional*): continue decoding from this state.
            use_cache (`bool`, *optional*): return the decoder state (default: `config.use_cache`).
            output_attentions (`bool`, *optional*): return the attention weights in `cross_attentions`.
        """
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("SU4MLC needs `labels` or `decoder_input_ids` to run its decoder.")
            decoder_input_ids = shift_labels_right(labels, self.config.bos_token_id, self.config.pad_token_id)
        logits, next_cache, weights = self.decoder(decoder_input_ids, encoder_outputs, cache)

        loss = label_logits = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1).to(logits.device), ignore_index=-100
            )
            if self.label_head is not None:
                # Summed over labels, averaged over texts: the negative log-likelihood of the label set under
                # independent sigmoids, on the same per-text scale as the sequence loss.
                label_logits = self.label_head(encoder_outputs, input_ids, attention_mask)
                per_label = nn.functional.binary_cross_entropy_with_logits(
                    label_logits.float(), self.label_multi_hot(labels.to(logits.device)), reduction="none"
                )
                loss = loss + self.config.label_head_loss_weight * per_label.sum(dim=-1).mean()
        use_cache = use_cache if use_cache is not None else getattr(self.config, "use_cache", True)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return SU4MLCSeq2SeqOutput(
            loss=loss,
            logits=logits,
            cache=next_cache if use_cache else None,
            cross_attentions=weights if output_attentions else None,
            label_logits=label_logits,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
        )

    def _expand_inputs_for_generation(
        self,
        expand_size: int = 1,
        is_encoder_decoder: bool = False,
        input_ids: torch.LongTensor | None = None,
        **model_kwargs,
    ) -> tuple[torch.LongTensor | None, dict]:
        """
        `generate()`'s copy of its inputs for every beam (or returned sequence), except that the beams of a text share
        its word annotations, semantic units and masks instead of each getting a copy: the decoder attends them once
        for all the beams (see `SU4MLCDecoder.forward`). Only the decoder's initial state is copied per beam. (The
        copies took a fifth of beam-5 decoding, and reading them at every step as much again.)
        """
        encoder_outputs = model_kwargs.pop("encoder_outputs", None)
        input_ids, model_kwargs = super()._expand_inputs_for_generation(expand_size, False, input_ids, **model_kwargs)
        if encoder_outputs is not None:
            per_beam = {
                name: getattr(encoder_outputs, name).repeat_interleave(expand_size, dim=0)
                for name in ("decoder_initial_hidden", "decoder_initial_cell")
            }
            model_kwargs["encoder_outputs"] = SU4MLCEncoderOutput(**{**encoder_outputs, **per_beam})
        return input_ids, model_kwargs

    def prepare_inputs_for_generation(
        self,
        decoder_input_ids: torch.LongTensor,
        cache: SU4MLCDecoderCache | None = None,
        encoder_outputs: SU4MLCEncoderOutput | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> dict:
        # With a cache the LSTM has read every label but the newest; without one it rereads them all.
        if cache is not None:
            decoder_input_ids = decoder_input_ids[:, cache.get_seq_length() :]
        return {
            "decoder_input_ids": decoder_input_ids,
            "encoder_outputs": encoder_outputs,
            "cache": cache,
            "use_cache": use_cache,
            "output_attentions": output_attentions,
        }

    def label_multi_hot(self, label_token_ids: torch.LongTensor) -> torch.FloatTensor:
        """
        `(batch_size, length)` label token ids (targets or generated; anything after EOS, special tokens and -100
        ignored) → `(batch_size, num_labels)` multi-hot float matrix over the real labels.
        """
        before_eos = label_token_ids.eq(self.config.eos_token_id).long().cumsum(dim=1).eq(0)
        # Label token id i is label i.
        valid = before_eos & label_token_ids.ge(0) & label_token_ids.lt(self.config.num_labels)
        # Invalid positions scatter into an extra column that is cut off.
        columns = torch.where(valid, label_token_ids, self.config.num_labels)
        multi_hot = label_token_ids.new_zeros(label_token_ids.size(0), self.config.num_labels + 1, dtype=torch.float)
        multi_hot.scatter_(1, columns, 1.0)
        return multi_hot[:, :-1]

    @torch.inference_mode()
    def score_labels(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None, **generate_kwargs
    ) -> SU4MLCLabelScores:
        """
        Generates the label sequences of tokenized texts and scores every label: the best sequence with the
        probability of each of its steps, and each label's probability of being in the set (see
        [`SU4MLCLabelScores`]). Beam search returns all its final beams for the marginals, whose probabilities come
        from the model's raw distribution (before the repeat and PAD/BOS bans), as do the step probabilities.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, source_length)`): word ids of the texts.
            attention_mask (`torch.Tensor` of shape `(batch_size, source_length)`, *optional*): 1 at real words.
            generate_kwargs: passed to `generate()` (e.g. `num_beams=1` for greedy decoding).
        """
        encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        num_beams = generate_kwargs.pop("num_beams", None) or self.generation_config.num_beams
        generate_kwargs.pop("num_return_sequences", None)
        generated = self.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_outputs=encoder_outputs,
            num_beams=num_beams,
            num_return_sequences=num_beams,
            output_logits=True,
            return_dict_in_generate=True,
            **generate_kwargs,
        )
        log_probabilities = self.compute_transition_scores(
            generated.sequences, generated.logits, getattr(generated, "beam_indices", None), normalize_logits=True
        )
        tokens = generated.sequences[:, 1:]
        # Steps after a sequence's EOS (padding) do not belong to it.
        is_eos = tokens.eq(self.config.eos_token_id).long()
        log_probabilities = log_probabilities.masked_fill((is_eos.cumsum(dim=1) - is_eos).gt(0), 0.0)
        texts = input_ids.size(0)
        # Beam search returns each text's beams consecutively, best first.
        best = torch.arange(texts, device=tokens.device) * num_beams
        sequences, step_probabilities = tokens[best], log_probabilities[best].exp()
        labels_per_beam = self.label_multi_hot(tokens).view(texts, num_beams, -1)
        if num_beams > 1:
            beam_weights = log_probabilities.sum(dim=1).view(texts, num_beams).float().softmax(dim=-1)
            # Clamped: the weights' rounding can sum a label present in every beam to 1 + 1e-7.
            beam_label_probabilities = torch.einsum("tb,tbl->tl", beam_weights, labels_per_beam).clamp(max=1.0)
        else:
            # One sequence: a label's score is the probability of the step that emitted it.
            beam_label_probabilities = torch.zeros_like(labels_per_beam[:, 0])
            indices = sequences.clamp(0, self.config.num_labels - 1)
            # EOS and the PAD after it are clamped onto the last label: only label steps may score it.
            is_label = sequences.lt(self.config.num_labels)
            emitted = labels_per_beam[:, 0].gather(1, indices) * step_probabilities.float() * is_label
            beam_label_probabilities.scatter_reduce_(1, indices, emitted, reduce="amax")
        head_label_probabilities = None
        if self.label_head is not None:
            head_label_probabilities = self.label_head(encoder_outputs, input_ids, attention_mask).float().sigmoid()
        ngram_label_probabilities = None
        if self.ngram_classifier is not None:
            if attention_mask is None:
                attention_mask = input_ids.ne(WORD_PAD_ID)
            ngram_label_probabilities = self.ngram_classifier.probabilities(input_ids, attention_mask)
        return SU4MLCLabelScores(
            sequences=sequences,
            step_probabilities=step_probabilities,
            label_scores=self.mix_label_scores(
                beam_label_probabilities, head_label_probabilities, ngram_label_probabilities
            ),
            beam_label_probabilities=beam_label_probabilities,
            head_label_probabilities=head_label_probabilities,
            ngram_label_probabilities=ngram_label_probabilities,
        )

    @torch.inference_mode()
    def score_texts(
        self,
        texts: Sequence[str],
        tokenizer,
        batch_size: int = 64,
        max_length: int | None = None,
        progress_bar: bool = False,
        **generate_kwargs,
    ) -> TextLabelScores:
        """
        [`score_labels`] over raw texts in batches of similar length (see [`TextLabelScores`]);
        [`mix_label_scores`] makes the label scores of them. `progress_bar` shows one over the batches.
        """
        self.check_tokenizer(tokenizer)
        texts = list(texts)  # e.g. a `datasets` column
        label_vocab = LabelVocabulary.from_id2label(self.config.id2label)
        word_ids = tokenizer(texts, truncation=max_length is not None, max_length=max_length)["input_ids"]
        # Batches of texts of similar length: little of a batch is padding. (In file order, batches of 64 Reuters
        # texts hold 3.6x their words and decode 3.4x slower.)
        order = sorted(range(len(texts)), key=lambda index: len(word_ids[index]))
        best_sequences: list[list[int]] = [[] for _ in texts]
        beam_scores = np.zeros((len(texts), self.config.num_labels), dtype=np.float32)
        head_scores = None if self.label_head is None else np.zeros_like(beam_scores)
        ngram_scores = None if self.ngram_classifier is None else np.zeros_like(beam_scores)
        was_training = self.training
        self.eval()
        for start in tqdm(range(0, len(texts), batch_size), desc="Predicting", unit="batch", disable=not progress_bar):
            indices = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [word_ids[index] for index in indices]}, return_tensors="pt")
            batch = batch.to(self.device)
            scored = self.score_labels(batch["input_ids"], batch["attention_mask"], **generate_kwargs)
            beam_scores[indices] = scored.beam_label_probabilities.cpu().numpy()
            if head_scores is not None:
                head_scores[indices] = scored.head_label_probabilities.cpu().numpy()
            if ngram_scores is not None:
                ngram_scores[indices] = scored.ngram_label_probabilities.cpu().numpy()
            for index, row in zip(indices, scored.sequences.tolist()):
                best_sequences[index] = label_vocab.decode_indices(row)
        self.train(was_training)
        return TextLabelScores(best_sequences, beam_scores, head_scores, ngram_scores)

    def mix_label_scores(
        self,
        beam_scores,
        head_scores,
        ngram_scores=None,
        head_weight: float | None = None,
        ngram_weight: float | None = None,
    ):
        """
        The label scores ([`~decision.mix_label_scores`]) with the weights given, or else the config's
        (`label_score_head_weight`, `label_score_ngram_weight`); tensors or arrays, any one shape.
        """
        if head_weight is None:
            head_weight = getattr(self.config, "label_score_head_weight", 0.5)
        if ngram_weight is None:
            ngram_weight = getattr(self.config, "label_score_ngram_weight", 0.5)
        return mix_label_scores(beam_scores, head_scores, head_weight, ngram_scores, ngram_weight)

    def set_ngram_classifier(self, classifier: SU4MLCNgramClassifier) -> None:
        """Installs a fitted n-gram classifier; the config records its sizes, so that `from_pretrained` builds it."""
        self.ngram_classifier = classifier
        self.config.ngram_classifier_bigrams = classifier.num_bigrams
        self.config.ngram_classifier_char_ngrams = classifier.num_features - classifier.vocab_size - classifier.num_bigrams
        self.config.ngram_classifier_char_entries = classifier.char_ngram_ids.numel()

    def predict(
        self,
        texts: str | list[str],
        tokenizer,
        batch_size: int = 64,
        return_scores: bool = False,
        max_length: int | None = None,
        decision_threshold: float | None = None,
        all_labels: bool = False,
        progress_bar: bool = False,
        **generate_kwargs,
    ) -> list[list[str]] | list[list[tuple[str, float]]]:
        """
        Labels of each text, most frequent labels first.

        Args:
            texts (`str` or `list[str]`): raw texts.
            tokenizer: the word tokenizer the model was trained with.
            batch_size (`int`): texts encoded and decoded together.
            return_scores (`bool`): also return each label's score, its probability of being in the text's label set
                (see [`SU4MLCLabelScores.label_scores`]).
            max_length (`int`, *optional*): truncate texts to this many words.
            decision_threshold (`float`, *optional*): overrides `config.decision_threshold` (None there: the best
                sequence's labels; a number: the labels whose score reaches it, at least the top one).
            all_labels (`bool`): return every label with its score, highest first, instead of a decision.
            progress_bar (`bool`): show a progress bar over the batches.
            generate_kwargs: passed to `generate()` (e.g. `num_beams=1` for greedy decoding).

        Returns:
            One list per text of label names, or of `(label, score)` pairs with `return_scores=True` or
            `all_labels=True`.

        Returns `[]` for no texts; an empty text gets the labels the model predicts from no words.

        Raises:
            `ValueError`: `batch_size` or `max_length` is not a positive integer, a text is not a string, or the
            tokenizer has more words than the model embeds (it is not the model's tokenizer).
        """
        self.check_predict_arguments(batch_size=batch_size, max_length=max_length)
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        not_strings = [index for index, text in enumerate(texts) if not isinstance(text, str)]
        if not_strings:
            raise ValueError(
                f"predict: texts must be strings; text {not_strings[0]} is a {type(texts[not_strings[0]]).__name__}."
            )
        if not texts:
            return []
        scored = self.score_texts(
            texts, tokenizer, batch_size=batch_size, max_length=max_length, progress_bar=progress_bar, **generate_kwargs
        )
        scores = self.mix_label_scores(scored.beam, scored.head, scored.ngram)
        chosen = self.choose_labels(scored.sequences, scores, decision_threshold, all_labels)
        labels = [self.config.id2label[index] for index in range(self.config.num_labels)]
        results = [
            [(labels[index], float(row[index])) for index in indices] if return_scores or all_labels
            else [labels[index] for index in indices]
            for indices, row in zip(chosen, scores)
        ]
        return results[0] if single else results

    @staticmethod
    def check_predict_arguments(batch_size: int | None = None, max_length: int | None = None) -> None:
        """`batch_size` and `max_length` (when given) are positive integers, or a `ValueError` names the argument."""
        for name, value in (("batch_size", batch_size), ("max_length", max_length)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    def check_tokenizer(self, tokenizer) -> None:
        """A tokenizer with more words than the model embeds is not the model's: its word ids would index past
        the embedding matrix, an obscure IndexError deep in the encoder."""
        if len(tokenizer) > self.config.source_vocab_size:
            raise ValueError(
                f"The tokenizer has {len(tokenizer)} words but the model embeds {self.config.source_vocab_size} "
                "(config.source_vocab_size): it is not the tokenizer this model was trained with."
            )

    def decode_labels(self, sequences) -> list[list[str]]:
        """
        Label names of `generate()` output, one list per sequence: the documented way from generated ids to labels
        (`tokenizer.batch_decode` refuses them: they are label ids, not word ids). Generated id `i` is
        `config.id2label[i]`; BOS, PAD and ids outside the labels are dropped, reading stops at EOS, and a repeated
        label is kept once.

        Args:
            sequences (`torch.LongTensor` of shape `(batch_size, length)`, a list of id lists, or `generate()`'s
                output with `return_dict_in_generate=True`).

        Example:

        ```python
        >>> generated = model.generate(**tokenizer(["the markets fell"], return_tensors="pt"))
        >>> model.decode_labels(generated)
        [['earn', 'acq']]
        ```
        """
        sequences = getattr(sequences, "sequences", sequences)
        rows = sequences.tolist() if isinstance(sequences, torch.Tensor) else sequences
        label_vocab = LabelVocabulary.from_id2label(self.config.id2label)
        return [label_vocab.decode(row) for row in rows]

    def choose_labels(
        self,
        best_sequences: list[list[int]],
        scores: np.ndarray,
        decision_threshold: float | None = None,
        all_labels: bool = False,
    ) -> list[list[int]]:
        """
        The decision rule: label indices per text from the outputs of [`score_texts`] (see [`predict`] for the
        arguments). With a threshold the labels come most frequent first (their index order), like a sequence.
        """
        if decision_threshold is None:
            decision_threshold = getattr(self.config, "decision_threshold", None)
        if all_labels:
            return [np.argsort(-row, kind="stable").tolist() for row in scores]
        if decision_threshold is None:
            return best_sequences
        return [np.flatnonzero(row).tolist() for row in threshold_decision(scores, decision_threshold)]

    def explain(self, texts: str | list[str], tokenizer, **kwargs):
        """
        Predicts the labels of `texts` and returns, for each predicted label, the attention over the words and over
        the semantic units (with the words each covers) of the decoder step that emitted it: one
        `su4mlc_hf.explain.AttentionExplanation` per text. `su4mlc_hf.explain.save_attention_figure` draws one as a
        PNG heat map.

        Args:
            texts (`str` or `list[str]`): raw texts.
            tokenizer: the word tokenizer the model was trained with.
            kwargs: `batch_size`, `max_length` and `generate()` arguments, as for [`predict`].
        """
        # Imported here: explain.py builds on this module's classes.
        from .explain import explain_attention

        return explain_attention(self, texts, tokenizer, **kwargs)


def shift_labels_right(labels: torch.LongTensor, bos_id: int, pad_id: int) -> torch.LongTensor:
    """Decoder inputs for teacher forcing: BOS followed by `labels[:, :-1]`, with -100 padding read as PAD."""
    decoder_input_ids = labels.new_full(labels.shape, pad_id)
    decoder_input_ids[:, 0] = bos_id
    decoder_input_ids[:, 1:] = labels[:, :-1]
    return decoder_input_ids.masked_fill(decoder_input_ids.eq(-100), pad_id)


__all__ = [
    "SU4MLCDecoderCache",
    "SU4MLCEncoderOutput",
    "SU4MLCForMultiLabelClassification",
    "SU4MLCPreTrainedModel",
    "SU4MLCSeq2SeqOutput",
]
