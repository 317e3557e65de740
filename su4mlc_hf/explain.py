"""Which words and semantic units each predicted label attended to: SU4MLC's attention as data, and as a heat map in
the style of the attention figure of Lin et al. (EMNLP 2018).

[`explain_attention`] (also `model.explain(texts, tokenizer)`) predicts each text's labels, then runs the decoder
teacher-forced over exactly those labels with `output_attentions=True`, so the weights of row i are those of the
decoder step that emitted label i. [`save_attention_figure`] draws one explanation as a PNG (matplotlib).

```python
>>> explanation = model.explain("thanks so much, this made my day!", tokenizer)
>>> explanation.labels, explanation.words[:3], explanation.word_attention.shape
(['gratitude'], ['thanks', 'so', 'much'], (1, 9))
>>> path = save_attention_figure(explanation, "attention.png")  # a PNG heat map
```
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .configuration_su4mlc import SU4MLCConfig
from .label_vocab import LabelVocabulary
from .modeling_su4mlc import SU4MLCEncoder

# What queries each memory, per attention type (the paper's notation): the hybrid attention's word attention is
# queried by the output s'_t of its semantic-unit attention, every other attention by the decoder state s_t.
ATTENTION_QUERIES = {
    "word": {"words": "s_t"},
    "mdc": {"units": "s_t"},
    "additive": {"units": "s_t", "words": "s_t"},
    "hybrid": {"units": "s_t", "words": "s'_t"},
    "none": {},
}


@dataclass
class AttentionExplanation:
    """
    The attention of one text's predicted labels.

    Args:
        text (`str`): the text.
        words (`list[str]`): the words the encoder read, as written in the text (the tokenizer's spans, before
            lower-casing and number folding), so `num_words = len(words)`.
        labels (`list[str]`): the predicted labels, in the order they were generated.
        scores (`list[float]`): each label's score, as `predict(..., return_scores=True)` gives it.
        attention (`str`): the model's `config.attention`.
        word_attention (`np.ndarray` of shape `(num_labels, num_words)`, *optional*):
            Row i: the attention over the words at the decoder step that emitted `labels[i]`; each row sums to 1.
            Hybrid: queried by s'_t (the output of the semantic-unit attention); `word`, `additive`: by s_t. None
            for the attention types that do not read words (`mdc`, `none`).
        unit_attention (`np.ndarray` of shape `(num_labels, num_units)`, *optional*):
            Row i: the attention over the semantic units at that step, queried by s_t; each row sums to 1. None for
            the attention types that do not read semantic units (`word`, `none`).
        unit_spans (`list[tuple[int, int] | None]`):
            Per semantic unit, the first and last word (inclusive, 0-based) it is computed from, see
            [`semantic_unit_spans`]; empty when the model has no semantic units.
    """

    text: str
    words: list[str]
    labels: list[str]
    scores: list[float]
    attention: str
    word_attention: np.ndarray | None
    unit_attention: np.ndarray | None
    unit_spans: list[tuple[int, int] | None]


def semantic_unit_spans(config: SU4MLCConfig, num_words: int) -> list[tuple[int, int] | None]:
    """
    The words each semantic unit of a `num_words`-word text is computed from.

    Each convolution of kernel k and dilation d widens what one output sees by (k - 1) * d words, so a unit sees
    `config.mdc_receptive_field` = 1 + (k - 1) * sum(d) consecutive positions; padding p shifts every layer's window
    p positions to the left. Unit j therefore covers positions [j - s, j - s + receptive_field - 1] with
    s = p * len(mdc_dilation_rates) (without padding: words [j, j + receptive_field - 1]), clipped to the text's
    words: positions outside them are padding, or the zero extension of texts shorter than
    `config.min_source_length`. A unit that covers padding only (possible with more padding than the kernel's
    reach) gets None.

    Returns:
        One `(first_word, last_word)` per semantic unit, as many units as the model computes for the text.
    """
    shift = config.mdc_padding * len(config.mdc_dilation_rates)
    reach = config.mdc_receptive_field - 1
    # The MDC's own length arithmetic: texts are zero-extended to min_source_length, and each layer adds 2p - (k-1)d.
    num_units = max(num_words, config.min_source_length) + 2 * shift - reach
    spans = []
    for unit in range(num_units):
        first, last = max(unit - shift, 0), min(unit - shift + reach, num_words - 1)
        spans.append((first, last) if first <= last else None)
    return spans


def check_explainable(model) -> None:
    """Refuses models whose encoder does not read words into SU4MLC's annotations (the baselines): their attention
    weights are over other things (sentences, or nothing), which the explanation would mislabel as words."""
    if type(model.encoder) is not SU4MLCEncoder:
        raise ValueError(
            f"explain() reads SU4MLC's word encoder, but {type(model).__name__} encodes texts with "
            f"{type(model.encoder).__name__}: its attention is not over words and semantic units."
        )


def teacher_forced_decoder_inputs(label_lists: list[list[str]], config: SU4MLCConfig) -> torch.LongTensor:
    """
    What the decoder reads to emit exactly `label_lists`: the start token, then each label but the last (step i
    reads label i - 1 and emits label i), padded on the right.

    Returns:
        `torch.LongTensor` of shape `(batch_size, max(1, longest label list))`.
    """
    label_vocab = LabelVocabulary.from_id2label(config.id2label)
    width = max([1, *map(len, label_lists)])
    decoder_input_ids = torch.full((len(label_lists), width), config.pad_token_id, dtype=torch.long)
    for row, labels in enumerate(label_lists):
        token_ids = [config.decoder_start_token_id, *(label_vocab.token_id(label) for label in labels[:-1])]
        decoder_input_ids[row, : len(token_ids)] = torch.tensor(token_ids)
    return decoder_input_ids


@torch.inference_mode()
def explain_attention(
    model,
    texts: str | list[str],
    tokenizer,
    batch_size: int = 64,
    max_length: int | None = None,
    **generate_kwargs,
) -> AttentionExplanation | list[AttentionExplanation]:
    """
    Predicts each text's labels and returns, for each, the attention over words and semantic units of the decoder
    step that emitted it.

    Args:
        model ([`SU4MLCForMultiLabelClassification`]): the model.
        texts (`str` or `list[str]`): raw texts.
        tokenizer: the word tokenizer the model was trained with (a fast tokenizer: the words are its spans).
        batch_size (`int`): texts encoded and decoded together.
        max_length (`int`, *optional*): truncate texts to this many words (as in `predict`).
        generate_kwargs: passed to `predict`, then `generate()` (e.g. `num_beams=1`).

    Returns:
        One [`AttentionExplanation`] per text (a single one for a single text).
    """
    check_explainable(model)
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    predictions = model.predict(
        texts, tokenizer, batch_size=batch_size, return_scores=True, max_length=max_length, **generate_kwargs
    )
    encodings = tokenizer(
        texts, truncation=max_length is not None, max_length=max_length, return_offsets_mapping=True
    )
    was_training = model.training
    model.eval()
    explanations = []
    for start in range(0, len(texts), batch_size):
        rows = range(start, min(start + batch_size, len(texts)))
        batch = tokenizer.pad({"input_ids": [encodings["input_ids"][row] for row in rows]}, return_tensors="pt")
        batch = batch.to(model.device)
        label_lists = [[label for label, _ in predictions[row]] for row in rows]
        outputs = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=teacher_forced_decoder_inputs(label_lists, model.config).to(model.device),
            output_attentions=True,
            use_cache=False,
        )
        # One weight tensor per memory the decoder attends, in the order of `decoder.memories`.
        weights = {
            name: weight.float().cpu().numpy() for name, weight in zip(model.decoder.memories, outputs.cross_attentions)
        }
        for index, row in enumerate(rows):
            offsets = encodings["offset_mapping"][row]
            num_labels, num_words = len(label_lists[index]), len(offsets)
            spans = semantic_unit_spans(model.config, num_words) if "units" in weights else []
            explanations.append(
                AttentionExplanation(
                    text=texts[row],
                    words=[texts[row][begin:end] for begin, end in offsets],
                    labels=label_lists[index],
                    scores=[score for _, score in predictions[row]],
                    attention=model.config.attention,
                    word_attention=weights["words"][index, :num_labels, :num_words] if "words" in weights else None,
                    unit_attention=weights["units"][index, :num_labels, : len(spans)] if "units" in weights else None,
                    unit_spans=spans,
                )
            )
    model.train(was_training)
    return explanations[0] if single else explanations


def shorten(word: str, width: int = 14) -> str:
    return word if len(word) <= width else word[: width - 1] + "…"


def attention_figure(explanation: AttentionExplanation, max_words: int = 80):
    """
    A heat map of `explanation` in the style of the paper's attention figure: one row per predicted label (with its
    score), one column per word, darker where the label attended more; a second panel has one column per semantic
    unit, named by the first and last word it covers. Each panel has its own colour scale, from 0 to its largest
    weight.

    Args:
        explanation ([`AttentionExplanation`]): what to draw.
        max_words (`int`): draw at most this many columns per panel (the first ones), so that long texts stay
            readable; the title says when columns are left out.

    Returns:
        `matplotlib.figure.Figure` (not attached to pyplot: nothing to close).
    """
    try:  # matplotlib is needed for pictures only; `explain_attention` works without it
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("Drawing attention needs matplotlib: pip install matplotlib") from error

    words = explanation.words
    # Per panel: title, weights, the column names under it, and (words only) the word numbers over it, which the
    # semantic units' names refer to.
    panels = []
    queries = ATTENTION_QUERIES[explanation.attention]
    if explanation.word_attention is not None:
        numbers = [str(position + 1) for position in range(len(words))]
        names = [shorten(word) for word in words]
        panels.append((f"words ({queries['words']} → h)", explanation.word_attention, names, numbers))
    if explanation.unit_attention is not None:
        names = [
            "(padding)" if span is None else f"words {span[0] + 1}–{span[1] + 1}" for span in explanation.unit_spans
        ]
        panels.append((f"semantic units ({queries['units']} → g)", explanation.unit_attention, names, None))
    rows = [f"{label} ({score:.2f})" for label, score in zip(explanation.labels, explanation.scores)]

    columns = min(max([1, *(len(names) for _, _, names, _ in panels)]), max_words)
    figure = Figure(
        figsize=(min(3 + 0.32 * columns, 30), 1.0 + sum(1.3 + 0.3 * len(rows) for _ in panels)), layout="constrained"
    )
    text = explanation.text if len(explanation.text) <= 110 else explanation.text[:109] + "…"
    figure.suptitle(text, fontsize=10)
    if not rows or not panels:
        reason = "no label predicted" if not rows else f"attention={explanation.attention!r} attends nothing"
        figure.text(0.5, 0.5, f"({reason})", ha="center", va="center")
        return figure
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for axis, (title, weights, names, numbers) in zip(axes, panels):
        shown = min(len(names), max_words)
        image = axis.imshow(weights[:, :shown], cmap="Reds", vmin=0.0, vmax=max(weights.max(), 1e-9), aspect="auto")
        axis.set_xticks(range(shown), names[:shown], rotation=90, fontsize=8)
        axis.set_yticks(range(len(rows)), rows, fontsize=9)
        if numbers is not None:
            axis.secondary_xaxis("top").set_xticks(range(shown), numbers[:shown], fontsize=6)
        cut = f" (first {shown} of {len(names)})" if shown < len(names) else ""
        axis.set_title(f"attention over {title}{cut}", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.025, pad=0.01)
    return figure


def save_attention_figure(explanation: AttentionExplanation, path: str | Path, max_words: int = 80) -> Path:
    """Draws [`attention_figure`] into the PNG file `path` (its folder is created) and returns the path. The file is
    written under a temporary name and renamed, so an interrupted run never leaves a truncated PNG at `path`."""
    figure = attention_figure(explanation, max_words=max_words)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp")
    with warnings.catch_warnings():
        # Characters the font lacks (emoji, in GoEmotions) are drawn as boxes; a warning per glyph says nothing more.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(temporary, format="png", dpi=150)
    os.replace(temporary, path)
    return path


__all__ = [
    "AttentionExplanation",
    "attention_figure",
    "explain_attention",
    "save_attention_figure",
    "semantic_unit_spans",
]
