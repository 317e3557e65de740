"""The `su4mlc-multi-label-classification` pipeline: texts in, each text's generated label set with scores out.

Importing `su4mlc_hf` registers the task, so that a saved SU4MLC folder (weights and tokenizer) loads with

    >>> import su4mlc_hf
    >>> from transformers import pipeline
    >>> classifier = pipeline("su4mlc-multi-label-classification", model="path/to/model")
    >>> classifier("thanks so much, this made my day!")
    [{'label': 'gratitude', 'score': 0.93}, {'label': 'joy', 'score': 0.41}]
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .label_vocab import LabelVocabulary

SU4MLC_PIPELINE_TASK = "su4mlc-multi-label-classification"


class SU4MLCMultiLabelPipeline(Pipeline):
    """
    Multi-label text classification with an SU4MLC model: for each text, the labels the model chooses (by its
    decision rule, as [`~SU4MLCForMultiLabelClassification.predict`]), each with its score, the probability of being
    in the text's label set.

    The steps are those of `predict`: preprocessing tokenizes one text, the forward pass runs the model's
    `score_labels` on a batch, and postprocessing applies its `choose_labels`.

    Pipeline parameters (at creation or per call):

    - `num_beams` and any other `generate()` parameter; the model's `generation_config.json` gives the defaults
      (beam 5, each label at most once).
    - `max_length` (`int`, *optional*): truncate each text to this many words. (Not `generate()`'s `max_length`:
      the number of labels is capped by the model's generation config.)
    - `batch_size` (`int`, *optional*, defaults to 1): texts generated together.

    Example:

    ```python
    >>> import su4mlc_hf
    >>> from transformers import pipeline

    >>> classifier = pipeline("su4mlc-multi-label-classification", model="path/to/model", batch_size=32)
    >>> classifier(["I love it", "what a waste of time"], num_beams=1, max_length=200)
    [[{'label': 'love', 'score': 0.88}], [{'label': 'annoyance', 'score': 0.52}, {'label': 'anger', 'score': 0.2}]]
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    _pipeline_calls_generate = True
    # Our `max_length` counts the words of a text, so it must not be taken for the generation parameter.
    _non_generation_params = ("max_length",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_vocab = LabelVocabulary.from_id2label(self.model.config.id2label)

    def _sanitize_parameters(self, max_length: int | None = None, **generate_kwargs):
        preprocess_params = {} if max_length is None else {"max_length": max_length}
        return preprocess_params, generate_kwargs, {}

    def __call__(self, inputs: str | list[str], **kwargs) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """
        Labels the text(s).

        Args:
            inputs (`str` or `list[str]`): one text or several.
            kwargs: `max_length`, `batch_size`, `num_beams` or other `generate()` parameters (see the class).

        Returns:
            For one text, a list of `{"label": str, "score": float}` in generation order (empty when the model
            generates no label); for a list of texts, one such list per text.
        """
        if isinstance(inputs, list) and not inputs:
            # `Pipeline.__call__` reads `inputs[0]` to detect chat inputs, which fails on an empty list.
            return []
        return super().__call__(inputs, **kwargs)

    def preprocess(self, text: str, max_length: int | None = None) -> dict[str, torch.Tensor]:
        return self.tokenizer(text, truncation=max_length is not None, max_length=max_length, return_tensors="pt")

    def _forward(self, model_inputs: dict[str, torch.Tensor], **generate_kwargs) -> dict[str, torch.Tensor]:
        scored = self.model.score_labels(
            model_inputs["input_ids"], model_inputs["attention_mask"], **self._prepare_generate_kwargs(generate_kwargs)
        )
        return {"sequences": scored.sequences, "label_scores": scored.label_scores}

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        # The pipeline hands over one text at a time: a batch of one. The decision rule is the model's (`predict`).
        (sequence,) = model_outputs["sequences"].tolist()
        scores = model_outputs["label_scores"].float().numpy()
        best = [self.label_vocab.label2index[label] for label in self.label_vocab.decode(sequence)]
        (chosen,) = self.model.choose_labels([best], scores)
        return [{"label": self.label_vocab.labels[index], "score": float(scores[0, index])} for index in chosen]


PIPELINE_REGISTRY.register_pipeline(
    SU4MLC_PIPELINE_TASK, pipeline_class=SU4MLCMultiLabelPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
)

__all__ = ["SU4MLC_PIPELINE_TASK", "SU4MLCMultiLabelPipeline"]
