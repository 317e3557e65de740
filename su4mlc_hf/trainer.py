"""Training SU4MLC with `Seq2SeqTrainer`: the paper's recipe as defaults, a per-epoch learning-rate decay and the
multi-label metrics; checkpoints written atomically, no pickle in saved folders, length-grouped batches in an order
that resumes exactly."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch.optim.lr_scheduler import LambdaLR
from transformers import EarlyStoppingCallback, Seq2SeqTrainer, Seq2SeqTrainingArguments
from transformers.trainer import TRAINER_STATE_NAME, TRAINING_ARGS_NAME
from transformers.trainer_pt_utils import LengthGroupedSampler, nested_gather
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput, rotate_checkpoints
from transformers.utils import SAFE_WEIGHTS_NAME

from .label_vocab import LabelVocabulary
from .metrics import METRIC_NAMES, build_compute_metrics
from .model_card import build_model_card, save_model_card
from .modeling_su4mlc import SU4MLCForMultiLabelClassification, unreadable_weights_error
from .output_folder import read_json, staged_folder, write_json

# A checkpoint is written into `_tmp-checkpoint-N/checkpoint-N`, then renamed to `checkpoint-N`. Names starting with
# `_tmp-` are invisible to `get_last_checkpoint` and `save_total_limit` (they look for `checkpoint-*`) and to the
# Trainer's Hub uploads of the output folder (which skip `_*`).
CHECKPOINT_STAGING_PREFIX = f"_tmp-{PREFIX_CHECKPOINT_DIR}-"
# The training arguments as JSON, in place of the pickled `training_args.bin` transformers writes.
TRAINING_ARGS_JSON_NAME = "training_args.json"
# In each checkpoint: the sum of the training losses up to it, so that a resumed run reports the whole run's loss.
TRAIN_LOSS_SUM_NAME = "train_loss_sum.json"


@dataclass
class SU4MLCTrainingArguments(Seq2SeqTrainingArguments):
    """
    `Seq2SeqTrainingArguments` whose defaults are the paper's recipe: Adam (lr 3e-4, β 0.9/0.999, ε 1e-8; AdamW
    with weight decay 0 is Adam), batch 64, the learning rate halved after every epoch, gradient clipping 10;
    evaluation and a checkpoint every epoch, the best checkpoint chosen by validation micro-F1, length-grouped
    batches, evaluation by generation.

    Args:
        lr_decay_per_epoch (`float`, *optional*, defaults to 0.5):
            The learning rate is multiplied by this after every epoch (paper: halved). Set it to 1.0 to use
            `lr_scheduler_type` instead.
    """

    lr_decay_per_epoch: float = field(
        default=0.5,
        metadata={"help": "Multiply the learning rate by this after every epoch (paper: 0.5); 1.0 uses lr_scheduler_type."},
    )
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam learning rate (paper: 3e-4)."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Training batch size (paper: 64)."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size."})
    max_grad_norm: float = field(default=10.0, metadata={"help": "Gradient clipping norm (paper: 10)."})
    lr_scheduler_type: str = field(
        default="constant", metadata={"help": "Scheduler under the per-epoch decay (used alone when the decay is 1)."}
    )
    num_train_epochs: float = field(default=10.0, metadata={"help": "Training epochs."})
    predict_with_generate: bool = field(default=True, metadata={"help": "Evaluate label sets produced by generate()."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: 'no', 'steps' or 'epoch'."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to save a checkpoint."})
    logging_strategy: str = field(default="steps", metadata={"help": "When to log."})
    logging_steps: float = field(default=20, metadata={"help": "Log every this many steps."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the best checkpoint at the end."})
    metric_for_best_model: str = field(default="micro_f1", metadata={"help": "Validation metric for the best model."})
    greater_is_better: bool = field(default=True, metadata={"help": "Whether a higher metric is better."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept on disk (the best one is kept)."})
    train_sampling_strategy: str = field(
        default="group_by_length", metadata={"help": "'group_by_length' batches texts of similar length together."}
    )
    ddp_find_unused_parameters: bool = field(
        default=False, metadata={"help": "Every parameter takes part in the loss, so DDP need not search for unused ones."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start a new run in an output folder that holds another one: its checkpoints and results are "
            "deleted first (examples/run_mlc.py)."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without a better metric_for_best_model (None: never)."},
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Keep the `length` column for the length-grouped sampler (the collator ignores extra columns)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 < self.lr_decay_per_epoch <= 1.0:
            raise ValueError(f"lr_decay_per_epoch must be in (0, 1], got {self.lr_decay_per_epoch}.")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience must be at least 1, got {self.early_stopping_patience}.")


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """
    `LengthGroupedSampler` whose order is drawn from `seed + epoch` instead of the global torch RNG.

    transformers' own sampler draws each epoch's order from the global RNG when the epoch starts. A run resumed in
    the middle of epoch e > 0 starts from a freshly seeded RNG (the checkpoint's RNG state is restored only after
    the skipped batches), so it would draw another order than the interrupted run and skip the wrong batches. Here
    the order depends on the epoch alone, which the Trainer passes through `set_epoch` before every epoch.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class SU4MLCTrainer(Seq2SeqTrainer):
    """
    `Seq2SeqTrainer` for SU4MLC: by default it scores evaluations with the multi-label metrics over the model's label
    vocabulary; with [`SU4MLCTrainingArguments`] it decays the learning rate by `lr_decay_per_epoch` after every
    epoch (a step function of the optimizer step, so it resumes exactly from a checkpoint); its model card (written
    by [`create_model_card`], uploaded by `push_to_hub`) is the SU4MLC card.

    Reliability: a checkpoint folder `checkpoint-N` appears only once complete (written under `_tmp-checkpoint-N/`,
    then renamed), so a run killed while saving resumes from the previous checkpoint; saved folders hold
    `training_args.json` instead of the pickled `training_args.bin` (nothing reads it back, resuming included);
    length-grouped batches come in an order drawn from the seed and the epoch, so that resuming in the middle of any
    epoch gives the weights of the uninterrupted run.

    Args:
        model_card_kwargs (`dict`, *optional*):
            Passed to [`build_model_card`] (e.g. `dataset_name`, `eval_results`, `eval_split`); without
            `eval_results` the card reports the last evaluation in the trainer's log. Can be updated after training.
        args, kwargs: as for `Seq2SeqTrainer`.
    """

    def __init__(self, *args, model_card_kwargs: dict | None = None, **kwargs):
        # Set while `_save_checkpoint` runs: the folder the Trainer then writes `checkpoint-N` into.
        self._checkpoint_staging_dir: str | None = None
        # The sum of the training losses before the checkpoint this run resumed from (None: not resumed).
        self._resumed_loss_sum: float | None = None
        super().__init__(*args, **kwargs)
        self.model_card_kwargs = dict(model_card_kwargs or {})
        patience = getattr(self.args, "early_stopping_patience", None)
        if patience is not None and self.args.load_best_model_at_end:
            self.add_callback(EarlyStoppingCallback(early_stopping_patience=patience))
        if self.compute_metrics is None and self.args.predict_with_generate:
            self.compute_metrics = build_compute_metrics(LabelVocabulary.from_id2label(self.model.config.id2label))

    def _inner_training_loop(self, *args, **kwargs):
        # `Trainer.train` has just aligned the model's PAD id with the word tokenizer's (0), a label id in SU4MLC.
        if isinstance(self.model, SU4MLCForMultiLabelClassification):
            self.model.restore_label_token_ids()
        return super()._inner_training_loop(*args, **kwargs)

    def recipe_hyperparameters(self) -> dict:
        """The training recipe as the model card reports it."""
        args = self.args
        return {
            "optimizer": f"Adam (β1={args.adam_beta1}, β2={args.adam_beta2}, ε={args.adam_epsilon}), "
            f"weight decay {args.weight_decay}",
            "learning_rate": args.learning_rate,
            "lr_decay_per_epoch": getattr(args, "lr_decay_per_epoch", None),
            "train_batch_size": self.get_total_train_batch_size(args),
            "num_train_epochs": args.num_train_epochs,
            "max_steps": args.max_steps,
            "max_grad_norm": args.max_grad_norm,
            "train_sampling_strategy": args.train_sampling_strategy,
            "seed": args.seed,
        }

    def create_model_card(self, **kwargs) -> None:
        """Writes the SU4MLC model card to `output_dir/README.md` (in place of the Trainer's generic draft, which is
        what `push_to_hub` would otherwise upload). `kwargs` from `push_to_hub` are accepted and ignored."""
        if not self.is_world_process_zero():
            return
        card_kwargs = dict(self.model_card_kwargs)
        card_kwargs["training_hyperparameters"] = {
            **self.recipe_hyperparameters(),
            **card_kwargs.get("training_hyperparameters", {}),
        }
        if card_kwargs.get("eval_results") is None:
            evaluations = [entry for entry in self.state.log_history if f"eval_{METRIC_NAMES[0]}" in entry]
            if evaluations:
                card_kwargs["eval_results"] = evaluations[-1]
                card_kwargs["eval_split"] = "validation"
        card_kwargs.setdefault("repo_id", self.hub_model_id)
        card = build_model_card(self.accelerator.unwrap_model(self.model), **card_kwargs)
        save_model_card(card, self.args.output_dir)

    def set_initial_training_values(self, args, dataloader):
        values = super().set_initial_training_values(args, dataloader)
        self._update_steps_per_epoch = values[1]
        return values

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        decay = getattr(self.args, "lr_decay_per_epoch", 1.0)
        if self.lr_scheduler is None and decay != 1.0:
            steps_per_epoch = self._update_steps_per_epoch
            self.lr_scheduler = LambdaLR(
                optimizer if optimizer is not None else self.optimizer,
                lambda step: decay ** (step // steps_per_epoch),
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def _get_train_sampler(self, train_dataset=None) -> torch.utils.data.Sampler | None:
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.batch_size, lengths=sampler.lengths, seed=seed)
        return sampler

    def _get_output_dir(self, trial) -> str:
        if self._checkpoint_staging_dir is not None:
            return self._checkpoint_staging_dir
        return super()._get_output_dir(trial)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # The upload runs in the background: it must read the checkpoint where it stays, after the rename.
        if self._checkpoint_staging_dir is None:
            super()._push_from_checkpoint(checkpoint_folder)

    def _save_checkpoint(self, model, trial) -> None:
        """
        The Trainer's checkpoint, written into `_tmp-checkpoint-N/checkpoint-N` and renamed to `checkpoint-N` once
        complete (a rename is atomic), then pushed and rotated as the Trainer does. A process killed while saving
        leaves a `_tmp-` folder, which the next save removes, and never a partial `checkpoint-N`.
        """
        run_dir = self._get_output_dir(trial)
        checkpoint_name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        checkpoint_dir = os.path.join(run_dir, checkpoint_name)
        staging_dir = os.path.join(run_dir, f"{CHECKPOINT_STAGING_PREFIX}{self.state.global_step}")
        staged_checkpoint_dir = os.path.join(staging_dir, checkpoint_name)
        if self.args.should_save:
            for stale in Path(run_dir).glob(f"{CHECKPOINT_STAGING_PREFIX}*"):  # left by a run killed while saving
                shutil.rmtree(stale)
        self.accelerator.wait_for_everyone()  # no process writes into the staging folder before it is clean
        self._checkpoint_staging_dir = staging_dir
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._checkpoint_staging_dir = None
        if self.state.best_model_checkpoint == staged_checkpoint_dir:
            # The Trainer recorded the best checkpoint where it wrote it; record where it will stay.
            self.state.best_model_checkpoint = checkpoint_dir
            if self.args.should_save:
                self.state.save_to_json(os.path.join(staged_checkpoint_dir, TRAINER_STATE_NAME))
        # Every process takes part in the gather, as for logging: the loss not yet logged is the mean over processes.
        loss_sum = self._loss_sum()
        if self.args.should_save:
            write_json(os.path.join(staged_checkpoint_dir, TRAIN_LOSS_SUM_NAME), {"train_loss_sum": loss_sum})
        self.accelerator.wait_for_everyone()  # every process has written its files (e.g. its RNG state)
        if self.args.should_save:
            if os.path.isdir(checkpoint_dir):
                # Saved again at the same step (a rerun in the same output folder): move the old one out of the way
                # by a rename too, so that `checkpoint-N` is never a half-deleted folder.
                os.replace(checkpoint_dir, os.path.join(staging_dir, "replaced"))
            os.replace(staged_checkpoint_dir, checkpoint_dir)
            shutil.rmtree(staging_dir)
        if self.args.push_to_hub:
            self._push_from_checkpoint(checkpoint_dir)
        if self.args.should_save:
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def _loss_sum(self) -> float:
        """The sum of the per-step training losses of the whole run so far (this call and the run it resumed)."""
        unlogged = nested_gather(self._tr_loss, self.args.parallel_mode).mean().item()
        return (self._resumed_loss_sum or 0.0) + self._total_loss_scalar + unlogged

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        try:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
        except SafetensorError as error:
            raise unreadable_weights_error(os.path.join(resume_from_checkpoint, SAFE_WEIGHTS_NAME), error) from error
        # A checkpoint of an older version has no loss sum: the loss is then that of this call, as transformers has it.
        saved = read_json(os.path.join(resume_from_checkpoint, TRAIN_LOSS_SUM_NAME))
        self._resumed_loss_sum = saved["train_loss_sum"] if isinstance(saved, dict) else None

    def _finalize_training(self, trial, num_train_samples, start_time) -> TrainOutput:
        """The Trainer's end of training, where a resumed run reports `train_loss` over the whole run (transformers
        reports it over the steps of this call: 0 for a run resumed from its last checkpoint), so a run killed and
        resumed reports the loss of the uninterrupted run."""
        output = super()._finalize_training(trial, num_train_samples, start_time)
        if self._resumed_loss_sum is None:
            return output
        # `super()` has added the last unlogged loss to `_total_loss_scalar`.
        train_loss = (self._resumed_loss_sum + self._total_loss_scalar) / max(self.state.global_step, 1)
        output.metrics["train_loss"] = train_loss
        logged = [entry for entry in self.state.log_history if "train_loss" in entry]
        if logged:
            logged[-1]["train_loss"] = train_loss
        return TrainOutput(output.global_step, train_loss, output.metrics)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The Trainer's save of the model, tokenizer and arguments, each file written whole: into a staging folder
        inside `output_dir`, then renamed into place. A run killed while saving the final model leaves whole files
        only (a mix of old and new ones), and its rerun saves them again."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return super()._save(output_dir, state_dict)
        with staged_folder(output_dir) as staging:
            super()._save(str(staging), state_dict)
            # transformers pickles the arguments to `training_args.bin`, which nothing reads back (resuming reads
            # `trainer_state.json`) and which could only be read by unpickling. Saved folders hold them as JSON.
            (staging / TRAINING_ARGS_NAME).unlink()
            (staging / TRAINING_ARGS_JSON_NAME).write_text(self.args.to_json_string(), encoding="utf-8")
        (Path(output_dir) / TRAINING_ARGS_NAME).unlink(missing_ok=True)  # left by an older version

    def save_metrics(self, split: str, metrics: dict[str, float], combined: bool = True) -> None:
        """`Trainer.save_metrics`, written atomically; an `all_results.json` that is not whole JSON (left by a killed
        run of an older version) is started again instead of failing the run."""
        if not self.is_world_process_zero():
            return
        output_dir = Path(self.args.output_dir)
        write_json(output_dir / f"{split}_results.json", metrics)
        if combined:
            all_metrics = read_json(output_dir / "all_results.json")
            write_json(output_dir / "all_results.json", {**(all_metrics if isinstance(all_metrics, dict) else {}), **metrics})

    def save_state(self) -> None:
        """`Trainer.save_state`, written atomically."""
        if self.is_world_process_zero():
            with staged_folder(self.args.output_dir) as staging:
                self.state.save_to_json(staging / TRAINER_STATE_NAME)


__all__ = ["SU4MLCTrainer", "SU4MLCTrainingArguments"]
