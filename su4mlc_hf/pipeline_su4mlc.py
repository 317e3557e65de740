"""The `su4mlc-multi-label-classification` pipeline: texts in, each text's labels with scores out, in the format of
transformers' text-classification pipeline (`[{"label": ..., "score": ...}]`).

Saved SU4MLC folders carry the pipeline (`custom_pipelines` in config.json, and this file), so that

    >>> from transformers import pipeline
    >>> classifier = pipeline(model="path/to/model", trust_remote_code=True)   # no task, no import needed
    >>> classifier = pipeline("text-classification", model="path/to/model", trust_remote_code=True)   # the same
    >>> classifier("thanks so much, this made my day!", threshold=0.3)
    [{'label': 'gratitude', 'score': 0.93}, {'label': 'joy', 'score': 0.41}]

Where `su4mlc_hf` is imported, `pipeline("su4mlc-multi-label-classification", model=...)` needs no
`trust_remote_code`.
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
    - `top_k` (`int`, *optional*): the `top_k` highest-scoring labels of all, highest first (as the
      text-classification pipeline does), instead of the model's decision.
    - `threshold` (`float`, *optional*): every label scoring at least this, highest first, instead of the model's
      decision (with `top_k` too: at most `top_k` of them).

    Example:

    ```python
    >>> import su4mlc_hf
    >>> from transformers import pipeline

    >>> classifier = pipeline("su4mlc-multi-label-classification", model="path/to/model", batch_size=32)
    >>> classifier(["I love it", "what a waste of time"], num_beams=1, max_length=200)
    [[{'label': 'love', 'score': 0.88}], [{'label': 'annoyance', 'score': 0.52}, {'label': 'anger', 'score': 0.2}]]
    >>> classifier("what a waste of time", top_k=1)
    [{'label': 'annoyance', 'score': 0.52}]
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    _pipeline_calls_generate = True
    # Our `max_length` counts the words of a text and `top_k` the labels returned: neither is the generation parameter.
    _non_generation_params = ("max_length", "top_k")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.label_vocab = LabelVocabulary.from_id2label(self.model.config.id2label)

    def _sanitize_parameters(
        self,
        max_length: int | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
        **generate_kwargs,
    ):
        self.check_arguments(max_length=max_length, top_k=top_k, threshold=threshold)
        preprocess_params = {} if max_length is None else {"max_length": max_length}
        postprocess_params = {
            name: value for name, value in (("top_k", top_k), ("threshold", threshold)) if value is not None
        }
        return preprocess_params, generate_kwargs, postprocess_params

    @staticmethod
    def check_arguments(
        max_length: int | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        """Each argument given is in range, or a `ValueError` names it: `max_length`, `top_k` and `batch_size`
        positive integers, `threshold` a number in [0, 1]."""
        for name, value in (("max_length", max_length), ("top_k", top_k), ("batch_size", batch_size)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if threshold is not None and (
            not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0.0 <= threshold <= 1.0
        ):
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}.")

    def __call__(self, inputs: str | list[str], **kwargs) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """
        Labels the text(s).

        Args:
            inputs (`str` or `list[str]`): one text or several.
            kwargs: `max_length`, `batch_size`, `num_beams` or other `generate()` parameters (see the class).

        Returns:
            For one text, a list of `{"label": str, "score": float}` in the order of the decision, or highest first
            with `top_k` (empty when no label is generated or passes `threshold`); for a list of texts, one such
            list per text.
        """
        self.check_arguments(batch_size=kwargs.get("batch_size"))
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

    def postprocess(
        self, model_outputs: dict[str, torch.Tensor], top_k: int | None = None, threshold: float | None = None
    ) -> list[dict[str, Any]]:
        # The pipeline hands over one text at a time: a batch of one. The scores come from `_forward` only.
        (sequence,) = model_outputs["sequences"].tolist()
        scores = model_outputs["label_scores"].float().numpy()
        best = [self.label_vocab.label2index[label] for label in self.label_vocab.decode(sequence)]
        # With `top_k` or `threshold` every label is a candidate, highest score first, as a sigmoid classifier is
        # read; otherwise the model's decision rule (`predict`) chooses.
        ranked = top_k is not None or threshold is not None
        (chosen,) = self.model.choose_labels([best], scores, all_labels=ranked)
        chosen = [index for index in chosen if threshold is None or scores[0, index] >= threshold][:top_k]
        return [{"label": self.label_vocab.labels[index], "score": float(scores[0, index])} for index in chosen]


PIPELINE_REGISTRY.register_pipeline(
    SU4MLC_PIPELINE_TASK, pipeline_class=SU4MLCMultiLabelPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
)
# What a saved folder's config.json records under `custom_pipelines` (in `Pipeline.save_pretrained`'s format), so
# that `pipeline(model=folder, trust_remote_code=True)` finds this file without a task name. It is recorded under
# the Hub task of its output format, "text-classification" (the model card's `pipeline_tag`), so that
# `pipeline("text-classification", model=folder, trust_remote_code=True)` runs it too; without `trust_remote_code`
# transformers refuses that with a message asking for it. Not under SU4MLC_PIPELINE_TASK: transformers would then
# ask for `trust_remote_code` even where su4mlc_hf is imported and registers that task.
CUSTOM_PIPELINES = {
    "text-classification": {
        "impl": f"{__name__.split('.')[-1]}.{SU4MLCMultiLabelPipeline.__name__}",
        "pt": [AutoModelForSeq2SeqLM.__name__],
        "type": "text",
    }
}

__all__ = ["CUSTOM_PIPELINES", "SU4MLC_PIPELINE_TASK", "SU4MLCMultiLabelPipeline"]
