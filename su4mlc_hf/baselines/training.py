"""Training the multi-hot baseline ([`KimCNNForMultiLabelClassification`]) with [`SU4MLCTrainer`].

The seq2seq systems (SU4MLC, CNN-RNN, Hier-N) read the prepared splits through [`SU4MLCDataCollator`] and are
scored on generated label sequences. Kim's CNN reads the same prepared splits but needs multi-hot targets and is
scored on its logits: [`MultiHotDataCollator`] turns the target label token ids into a multi-hot matrix, and
[`build_multi_hot_compute_metrics`] scores thresholded logits with the same [`multilabel_scores`]. Use them with
`SU4MLCTrainingArguments(predict_with_generate=False)`, so that the trainer keeps the paper's recipe (Adam, lr
halved per epoch, clipping, best checkpoint by validation micro-F1) and evaluates with a forward pass.

Example:

```python
>>> trainer = SU4MLCTrainer(
...     model=KimCNNForMultiLabelClassification(config),
...     args=SU4MLCTrainingArguments(output_dir="out", predict_with_generate=False),
...     train_dataset=prepared["train"],
...     eval_dataset=prepared["validation"],
...     data_collator=MultiHotDataCollator(label_vocab),
...     compute_metrics=build_multi_hot_compute_metrics(model),
... )
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data import LABELS_COLUMN, SU4MLCDataCollator
from ..label_vocab import LabelVocabulary
from ..metrics import multilabel_scores, token_ids_to_multi_hot

if TYPE_CHECKING:
    from transformers import EvalPrediction

    from .modeling_cnn import KimCNNForMultiLabelClassification


@dataclass
class MultiHotDataCollator:
    """Pads prepared examples like [`SU4MLCDataCollator`] and replaces the target label token ids by multi-hot
    targets.

    The batch holds `input_ids` and `attention_mask` as [`SU4MLCDataCollator`] builds them and, when the examples
    have `labels`, `labels` as a `torch.FloatTensor` of shape `(batch, num_labels)`: column `i` is label index `i`
    of `label_vocab`.

    Args:
        label_vocab ([`LabelVocabulary`]): the label vocabulary the target ids come from.
    """

    label_vocab: LabelVocabulary
    padding_collator: SU4MLCDataCollator = field(default_factory=SU4MLCDataCollator)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.padding_collator(examples)
        if LABELS_COLUMN in batch:
            multi_hot_targets, _ = token_ids_to_multi_hot(batch[LABELS_COLUMN].numpy(), self.label_vocab)
            batch[LABELS_COLUMN] = torch.from_numpy(multi_hot_targets).float()
        return batch


def build_multi_hot_compute_metrics(
    model: KimCNNForMultiLabelClassification,
) -> Callable[[EvalPrediction], dict[str, float]]:
    """The `compute_metrics` of a trainer evaluating [`KimCNNForMultiLabelClassification`] by its logits.

    Predictions are the model's own decision rule ([`KimCNNForMultiLabelClassification.predict_multi_hot`]: the
    config's threshold and `at_least_one_label`), so evaluation and `predict()` agree.
    """

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):
            logits = logits[0]
        y_pred = model.predict_multi_hot(torch.as_tensor(np.asarray(logits))).numpy()
        return multilabel_scores(np.asarray(eval_prediction.label_ids).round().astype(np.int8), y_pred)

    return compute_metrics


__all__ = ["MultiHotDataCollator", "build_multi_hot_compute_metrics"]
