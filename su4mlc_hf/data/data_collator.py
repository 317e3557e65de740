"""[`SU4MLCDataCollator`]: pads prepared examples into a batch for the SU4MLC model."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..label_vocab import PAD_ID
from .readers import LABELS_COLUMN

LABEL_PAD_ID = -100  # ignored by the cross-entropy loss


@dataclass
class SU4MLCDataCollator:
    """Pads prepared examples into a batch for the SU4MLC model.

    Each example needs `input_ids` and, for training and evaluation, `labels` (label token ids ended by EOS);
    other keys (`text`, `length`, ...) are ignored. The batch holds, with `batch = len(examples)`:

    - `input_ids` (`torch.LongTensor` of shape `(batch, source_length)`): right-padded with the PAD id 0;
      `source_length` is the longest text, at least 1 (so that a batch never has an empty dimension).
    - `attention_mask` (`torch.LongTensor` of shape `(batch, source_length)`): 1 on words, 0 on padding.
    - `labels` (`torch.LongTensor` of shape `(batch, target_length)`): right-padded with -100 (ignored by the loss).
      The model shifts them right behind BOS itself for teacher forcing.

    Args:
        shuffle_labels (`bool`, *optional*, defaults to `False`):
            Put the labels of each target (all but the final EOS) in a random order, drawn anew at every call,
            for `label_order="random"`. Reproducible: the draws come from a `random.Random` seeded with `seed`. In
            a `DataLoader` worker the collator is a copy taken when the worker starts, and workers restart every
            epoch, so a plain carried-over generator would replay the same orders; there the generator is
            seeded with `seed` and the worker's torch seed, which differs per worker and per epoch (and is
            itself drawn from the trainer's seed).
        seed (`int`, *optional*, defaults to 0):
            Seed of the label shuffling.
    """

    shuffle_labels: bool = False
    seed: int = 0
    _rng: random.Random | None = field(default=None, init=False, repr=False)
    _rng_worker_seed: int | None = field(default=None, init=False, repr=False)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        sources = [torch.as_tensor(example["input_ids"], dtype=torch.long) for example in examples]
        source_length = max(1, max(len(source) for source in sources))
        input_ids = torch.full((len(examples), source_length), PAD_ID, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, source in enumerate(sources):
            input_ids[row, : len(source)] = source
            attention_mask[row, : len(source)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if LABELS_COLUMN not in examples[0]:
            return batch

        targets = [torch.as_tensor(example[LABELS_COLUMN], dtype=torch.long).tolist() for example in examples]
        if self.shuffle_labels:
            targets = [self._shuffled(target) for target in targets]
        target_length = max(len(target) for target in targets)
        labels = torch.full((len(examples), target_length), LABEL_PAD_ID, dtype=torch.long)
        for row, target in enumerate(targets):
            labels[row, : len(target)] = torch.as_tensor(target, dtype=torch.long)
        batch["labels"] = labels
        return batch

    def _shuffled(self, target: list[int]) -> list[int]:
        labels, end = target[:-1], target[-1:]
        self._label_rng().shuffle(labels)
        return labels + end

    def _label_rng(self) -> random.Random:
        worker = torch.utils.data.get_worker_info()
        worker_seed = None if worker is None else worker.seed
        if self._rng is None or worker_seed != self._rng_worker_seed:
            self._rng = random.Random(self.seed if worker_seed is None else f"{self.seed}/{worker_seed}")
            self._rng_worker_seed = worker_seed
        return self._rng

