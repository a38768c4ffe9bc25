"""`TransferTrainer`: a `transformers.Trainer` that fine-tunes a pretrained classifier with a transfer strategy.

The strategy (`TransferConfig.transfer_strategy`: full, a PEFT adapter, feature extraction, frozen layers; plus
layer-wise learning-rate decay and gradual unfreezing) is applied here, once, for every recipe and for
`DomainAdaptationTrainer`, which builds on `TransferLearningMixin`.
"""

import copy
import json
import math
import os
import time
from collections import defaultdict
from typing import Any

import datasets
import pyarrow
import pyarrow.compute
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy
from transformers.utils import logging

from .features import find_classifier_module
from .model_card import as_list, is_hub_id, write_model_card
from .transfer_config import TransferConfig
from .transfer_strategies import (
    ProgressiveUnfreezingCallback,
    build_peft_config,
    freeze_backbone,
    freeze_lowest_layers,
    keep_frozen_batch_norm_in_eval_mode,
    layer_groups,
    layerwise_learning_rates,
    with_head_saved,
)


class _TrainingClock(TrainerCallback):
    """Wall time since this process's `train()` began (a resumed run counts from its restart)."""

    def __init__(self):
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def seconds(self) -> float | None:
        return None if self.start is None else time.perf_counter() - self.start


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss or gradient. Raised before the optimizer step that would apply it, so
    the weights, and every checkpoint saved so far, stay as they were."""


logger = logging.get_logger(__name__)
TRAINER_STATE_FILE = "trainer_state.json"  # the Trainer writes it last into a checkpoint


def _checkpoints(folder: str) -> list[str]:
    """The `checkpoint-<step>` folders in `folder`, newest (highest step) first."""
    if not os.path.isdir(folder):
        return []
    steps = []
    for name in os.listdir(folder):
        prefix, _, step = name.rpartition("-")
        if prefix == PREFIX_CHECKPOINT_DIR and step.isdigit() and os.path.isdir(os.path.join(folder, name)):
            steps.append(int(step))
    return [os.path.join(folder, f"{PREFIX_CHECKPOINT_DIR}-{step}") for step in sorted(steps, reverse=True)]


def _is_complete_checkpoint(folder: str) -> bool:
    try:
        with open(os.path.join(folder, TRAINER_STATE_FILE)) as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(output_dir: str) -> str:
    """The newest checkpoint in `output_dir` that was completely written; incomplete newer ones are skipped."""
    for folder in _checkpoints(output_dir):
        if _is_complete_checkpoint(folder):
            return folder
        logger.warning(
            f"Skipping {folder}: it has no readable {TRAINER_STATE_FILE}, so it was cut off while being saved."
        )
    raise ValueError(
        f"`resume_from_checkpoint`='last', but `output_dir` ({output_dir}) holds no complete checkpoint. Start "
        "without `resume_from_checkpoint`, or give the checkpoint folder to resume from."
    )


def labels_outside(dataset, num_labels: int) -> list[int]:
    """The distinct integer labels of `dataset` (a `datasets.Dataset` with `label` or `labels`) that are not classes
    0..num_labels-1 (-100, the ignore index, is allowed); read from Arrow, without any transform."""
    if not isinstance(dataset, datasets.Dataset):
        return []
    column = "labels" if "labels" in dataset.column_names else "label" if "label" in dataset.column_names else None
    if column is None or not pyarrow.types.is_integer(dataset.features.arrow_schema.field(column).type):
        return []
    values = pyarrow.compute.unique(dataset.with_format("arrow")[column]).to_pylist()
    return sorted(v for v in values if v is not None and v != -100 and not 0 <= v < num_labels)


class TransferLearningMixin:
    """Transfer strategies for any `transformers.Trainer` (sub)class.

    Usage: `class MyTransferTrainer(TransferLearningMixin, MyTrainer): pass`.

    Extra keyword argument: `peft_config`, a PEFT config object, as an alternative to an adapter
    `transfer_strategy`; the classification head always trains and is saved with the adapter. A plain
    `TrainingArguments` is accepted and upgraded to the trainer's config class with its defaults.
    """

    config_class = TransferConfig
    _tag_names = ["hf_transfer", "transfer-learning"]

    def __init__(self, model=None, args=None, *trainer_args, peft_config=None, **kwargs):
        args = self._upgrade_args(args)
        if model is None or isinstance(model, str):
            raise TypeError(
                "`model` must be a loaded classification model, e.g. "
                "`AutoModelForSequenceClassification.from_pretrained(name, num_labels=...)`."
            )

        # PEFT: an adapter strategy or an explicit `peft_config`; the classification head always trains
        if peft_config is not None and args.transfer_strategy != "full":
            raise ValueError(
                f"Both `peft_config` and `transfer_strategy={args.transfer_strategy!r}` were given: with a "
                "`peft_config` only the adapter and the classification head train. Leave `transfer_strategy` at "
                "'full', or drop `peft_config` and let the strategy build the adapter."
            )
        if peft_config is not None and (args.layerwise_lr_decay != 1.0 or args.progressive_unfreezing_steps):
            raise ValueError(
                "With `peft_config` only the adapter and the classification head train: `layerwise_lr_decay` and "
                "`progressive_unfreezing_steps` apply to fine-tuning without PEFT. Leave them at their defaults, "
                "or drop `peft_config`."
            )
        head_name, _ = find_classifier_module(model, args.classifier_module)
        if args.uses_peft:
            peft_config = build_peft_config(args, model, head_name)  # the head already in modules_to_save
        elif peft_config is not None:
            peft_config = with_head_saved(peft_config, head_name)
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)

        # which pretrained parameters train
        self._classifier_name, self._classifier = find_classifier_module(model, args.classifier_module)
        if args.transfer_strategy == "feature_extraction":
            freeze_backbone(model, self._classifier_name)
        elif args.transfer_strategy == "freeze_layers":
            freeze_lowest_layers(model, self._classifier_name, args.num_frozen_layers)
        keep_frozen_batch_norm_in_eval_mode(model)

        super().__init__(model, args, *trainer_args, **kwargs)

        if self.args.fp16 and self.accelerator.device.type == "cpu":
            raise ValueError(
                "`fp16` mixed precision needs a GPU: on the CPU accelerate ignores it and would train in fp32 "
                "without saying so. Use `bf16` on the CPU (supported), or drop `fp16`."
            )
        self._clock = _TrainingClock()
        self.add_callback(self._clock)
        self._last_loss = None
        if args.progressive_unfreezing_steps:
            groups = layer_groups(self.model, self._classifier_name)
            self.add_callback(ProgressiveUnfreezingCallback(groups, args.progressive_unfreezing_steps))
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(self._model_tags())

    def _upgrade_args(self, args):
        config_class = self.config_class
        if args is None:
            return config_class(output_dir="trainer_output")
        if isinstance(args, config_class):
            return args
        if not isinstance(args, TrainingArguments):
            raise TypeError(f"`args` must be a TrainingArguments or {config_class.__name__}, got {type(args)}.")
        fields = config_class.__dataclass_fields__
        values = {name: getattr(args, name) for name in type(args).__dataclass_fields__ if name in args.__dict__}
        return config_class(**{name: value for name, value in values.items() if name in fields and fields[name].init})

    def _model_tags(self) -> list[str]:
        return list(self._tag_names)

    # ---- optimisation -----------------------------------------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._last_loss = loss
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        """The Trainer's gradient norm of this optimizer step (before clipping), checked to be finite.

        A private Trainer method, overridden because no documented hook sees the norm before clipping (a callback's
        `on_pre_optimizer_step` comes after it, when an overflowing norm has already zeroed the gradients); if
        transformers renamed it, `tests/test_fault_tolerance.py` would fail."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        self._check_finite_gradients(grad_norm)
        return grad_norm

    def _extra_trained_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """(name, parameter) of what the optimizer updates besides the model (the DANN discriminator)."""
        return []

    def _check_finite_gradients(self, grad_norm) -> None:
        """Raise `NonFiniteLossError` before the optimizer step if the gradients about to be applied are not finite:
        a NaN or infinite gradient, or a norm that overflows (gradient clipping would then zero or NaN the update).

        Runs after the all-reduce, so every process sees the same gradients and raises together. With fp16 loss
        scaling infinite gradients are expected now and then (the scaler skips those steps), so nothing is checked.
        """
        if self.accelerator.scaler is not None:
            return
        model_ok = grad_norm is None or math.isfinite(float(grad_norm))
        extra = [(name, p.grad) for name, p in self._extra_trained_parameters() if p.grad is not None]
        extra_ok = all(bool(torch.isfinite(grad).all()) for _, grad in extra)
        if model_ok and extra_ok:
            return
        named = [(n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None] + extra
        bad = [name for name, grad in named if not torch.isfinite(grad).all()]
        where = f"NaN or infinite in {len(bad)} parameter(s), e.g. {bad[:3]}" if bad else "too large for float32"
        loss = None if self._last_loss is None else float(self._last_loss)
        raise NonFiniteLossError(
            f"The gradients at step {self.state.global_step + 1} are not finite (norm {grad_norm}; {where}; loss "
            f"{loss}). Training stopped before applying them, so the checkpoints saved so far are unaffected. "
            f"{self._non_finite_remedy()}"
        )

    def _non_finite_remedy(self, loss_name: str | None = None) -> str:
        return (
            "Remedies: lower `learning_rate`, keep gradient clipping on (`max_grad_norm`, default 1.0), train in "
            "bf16 or fp32 rather than fp16, and check the inputs and labels; then resume from the last checkpoint "
            "(`resume_from_checkpoint`)."
        )

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, its parameter groups split by layer when `layerwise_lr_decay` < 1."""
        optimizer = super().create_optimizer(model)
        if self.args.layerwise_lr_decay != 1.0 and not any("layerwise_lr" in g for g in optimizer.param_groups):
            self._split_by_layer_learning_rate(optimizer)
        return optimizer

    def _split_by_layer_learning_rate(self, optimizer) -> None:
        """Discriminative fine-tuning: split each parameter group by layer group, with the layer's learning rate."""
        rates = layerwise_learning_rates(
            self.model, self._classifier_name, self.args.learning_rate, self.args.layerwise_lr_decay
        )
        names = {id(p): n for n, p in self.model.named_parameters()}
        groups = []
        for group in optimizer.param_groups:
            by_rate = defaultdict(list)  # one learning rate per layer group (decay < 1 makes them distinct)
            for param in group["params"]:
                by_rate[rates[names[id(param)]]].append(param)
            settings = {key: value for key, value in group.items() if key != "params"}
            for rate, params in sorted(by_rate.items(), reverse=True):
                groups.append({**settings, "params": params, "lr": rate, "layerwise_lr": True})
        optimizer.param_groups = []
        for group in groups:
            optimizer.add_param_group(group)

    # ---- resuming ---------------------------------------------------------------------------------------------

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: "optuna.Trial | dict[str, Any] | None" = None,  # noqa: F821
        ignore_keys_for_eval: list[str] | None = None,
    ):
        """`Trainer.train`; `resume_from_checkpoint` may also be `"last"` (or `True`, `"true"`): the newest *complete*
        checkpoint in `output_dir`. A checkpoint folder whose `trainer_state.json` (written last) is missing or
        unreadable was cut off while saving, e.g. by a killed job: it is skipped (with a warning) or, when named
        explicitly, refused with the complete ones to choose from."""
        if resume_from_checkpoint is True or (
            isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() in ("last", "true")
        ):
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
        elif isinstance(resume_from_checkpoint, str | os.PathLike):
            resume_from_checkpoint = os.fspath(resume_from_checkpoint)
            if not os.path.isdir(resume_from_checkpoint):
                raise ValueError(
                    f"`resume_from_checkpoint`={resume_from_checkpoint!r} is not a folder. Give a checkpoint folder "
                    f"(<output_dir>/{PREFIX_CHECKPOINT_DIR}-<step>) or 'last' for the newest one in `output_dir`."
                )
            if not _is_complete_checkpoint(resume_from_checkpoint):
                siblings = _checkpoints(os.path.dirname(os.path.abspath(resume_from_checkpoint)))
                complete = [c for c in siblings if _is_complete_checkpoint(c)]
                raise ValueError(
                    f"`resume_from_checkpoint`={resume_from_checkpoint!r} has no readable {TRAINER_STATE_FILE}: it "
                    "was cut off while being saved (the job was killed?). Resume from a complete checkpoint: "
                    f"{complete or 'none in that folder'}, or 'last'."
                )
        self._check_label_ranges()
        return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)

    def _check_label_ranges(self) -> None:
        """Every label of the training and evaluation sets is a class of the model (before any step)."""
        num_labels = getattr(getattr(self.model, "config", None), "num_labels", None)
        if num_labels is None:
            return
        eval_sets = self.eval_dataset if isinstance(self.eval_dataset, dict) else {"": self.eval_dataset}
        named = [("train_dataset", self.train_dataset)]
        named += [(f"eval_dataset[{name!r}]" if name else "eval_dataset", data) for name, data in eval_sets.items()]
        for argument, dataset in named:
            outside = labels_outside(dataset, num_labels)
            if outside:
                raise ValueError(
                    f"`{argument}` has label(s) {outside} outside the model's {num_labels} classes (0 to "
                    f"{num_labels - 1}): load the model with `num_labels` (and `id2label`) for every class of the "
                    "data, or encode the labels as 0..num_labels-1 (`dataset.class_encode_column('label')`)."
                )

    # ---- evaluation -------------------------------------------------------------------------------------------

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        """`Trainer.evaluate`, leaving the random number generators as they were.

        Building an evaluation DataLoader draws from torch's global generator, so with a plain Trainer an
        evaluation during training changes the dropout masks of every later step: the same run with and without
        `eval_strategy` ends with different weights. Here evaluating (and what callbacks do in `on_evaluate`, such
        as `LabelFreeModelSelection`) leaves training exactly as it would be without it.
        """
        devices = [self.args.device] if self.args.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return super().evaluate(*args, **kwargs)

    # ---- export -----------------------------------------------------------------------------------------------

    def save_merged_model(self, output_dir: str) -> None:
        """Save a PEFT-trained model with its adapter merged into the base weights (`merge_and_unload`).

        The result is a stock transformers checkpoint (plus the tokenizer / processor) that loads without PEFT and
        gives the adapter model's logits. The trainer's own model is left as it was (a copy is merged).
        """
        model = self.accelerator.unwrap_model(self.model)
        if not hasattr(model, "merge_and_unload"):
            raise ValueError("`save_merged_model` needs a model trained with a PEFT adapter; use `save_model` instead.")
        if not self.args.should_save:
            return
        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def set_model_card_info(
        self,
        base_model: str | None = None,
        source_dataset: str | None = None,
        target_dataset: str | None = None,
        eval_datasets: dict[str, str] | None = None,
    ) -> None:
        """What every card of this run states about its inputs (Hub ids or descriptions, never absolute paths).

        Call it before `train()`: the card written into each checkpoint uses it too. Without it the base model
        is read from the model's config and the datasets are "not recorded".
        """
        self._model_card_info = {
            "base_model": base_model,
            "source_dataset": source_dataset,
            "target_dataset": target_dataset,
            "eval_datasets": eval_datasets,
        }

    def set_baselines(
        self, source_only_results: dict[str, float] | None = None, oracle_results: dict[str, float] | None = None
    ) -> None:
        """The baselines measured in the same study, on the same evaluation sets, for the final model card.

        Each is a run's final `eval_<set>_<metric>` values (e.g. its `all_results.json`): `source_only_results`
        from the same model, data, steps and seed without an alignment loss, `oracle_results` from a model trained
        on target labels that were not in the test set. The card compares the run with them, reports the gap
        closed and flags negative transfer (`hf_transfer.TransferReport`). Leave out what was not measured.
        """
        self._baselines = {"source_only_results": source_only_results, "oracle_results": oracle_results}

    def set_transfer_diagnostics(self, diagnostics: dict | None) -> None:
        """The results of `hf_transfer.diagnostics.TransferDiagnostics.after` (proxy A-distance before and after
        training, the plot's file name in `output_dir`), shown in the final model card."""
        self._diagnostics = diagnostics

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """`Trainer.save_model`, plus a model card `README.md` next to the saved model: in `output_dir` (or the
        folder given) describing the run so far, and in every checkpoint (before it can be pushed) stating its step.

        When checkpoints are pushed (`push_to_hub` with a `hub_strategy` other than "end"), the checkpoint's card
        is also written to `output_dir`, whose files the Trainer pushes with it: the repository's card then says
        which step its weights are from.
        """
        super().save_model(output_dir, _internal_call)
        target = output_dir or self.args.output_dir
        self._make_adapter_config_portable(target)
        folder = os.path.basename(os.path.normpath(target))
        if not self.is_world_process_zero():
            return
        if not (_internal_call and folder.startswith(PREFIX_CHECKPOINT_DIR)):
            self.create_model_card(model_name=folder, output_dir=target)
        else:
            pushes_checkpoints = self.args.push_to_hub and self.args.hub_strategy != HubStrategy.END
            for card_dir in [output_dir] + ([self.args.output_dir] if pushes_checkpoints else []):
                write_model_card(
                    self,
                    model_name=os.path.basename(os.path.normpath(self.args.output_dir)),
                    output_dir=card_dir,
                    checkpoint_step=self.state.global_step,
                    training_seconds=self._clock.seconds(),
                    **getattr(self, "_model_card_info", {}),
                )

    def _make_adapter_config_portable(self, folder: str) -> None:
        """An adapter's `base_model_name_or_path` (in `folder/adapter_config.json`) as others can use it: the
        recorded Hub id of the base model, or the local folder's name, never this machine's absolute path.

        The saved file is rewritten rather than the live config, which PEFT reads while saving (a local path lets
        it check the base model's vocabulary without going to the Hub).
        """
        path = os.path.join(folder, "adapter_config.json")
        if not self.args.should_save or not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        recorded = getattr(self, "_model_card_info", {}).get("base_model")
        base = config.get("base_model_name_or_path")
        if recorded and is_hub_id(recorded):
            config["base_model_name_or_path"] = recorded
        elif base and os.path.isabs(base):
            config["base_model_name_or_path"] = os.path.basename(os.path.normpath(base))
        else:
            return
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)

    def create_model_card(
        self,
        model_name: str | None = None,
        language: str | list[str] | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        finetuned_from: str | None = None,
        tasks: str | list[str] | None = None,
        dataset_tags: str | list[str] | None = None,
        dataset: str | list[str] | None = None,
        dataset_args: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write `README.md` into `output_dir`, describing this run (see `hf_transfer.model_card`).

        Takes `Trainer.create_model_card`'s arguments (which `push_to_hub(**kwargs)` passes on): `language`,
        `license`, `tags`, `dataset_tags` / `dataset` (Hub dataset ids) are added to the card's metadata,
        `finetuned_from` names the base model when the run did not record one, `tasks` sets the pipeline tag.
        Further keyword arguments go to `hf_transfer.model_card.write_model_card` (e.g. `results`).
        """
        if dataset_args is not None:
            raise ValueError(
                "`dataset_args` is not used by hf_transfer cards: each evaluation set is described by "
                "`trainer.set_model_card_info(eval_datasets={set_name: description})`. Drop `dataset_args`."
            )
        if tasks is not None and not isinstance(tasks, str) and len(tasks) != 1:
            raise ValueError(f"`tasks` must name one pipeline task (e.g. 'text-classification'), got {tasks!r}.")
        if not self.is_world_process_zero():
            return
        info = {**getattr(self, "_model_card_info", {}), **getattr(self, "_baselines", {})}
        info["diagnostics"] = getattr(self, "_diagnostics", None)
        if finetuned_from and not info.get("base_model"):
            info["base_model"] = finetuned_from
        info.update(
            language=language,
            license=license,
            tags=tags,
            datasets=as_list(dataset_tags) + as_list(dataset),
            pipeline_tag=tasks if isinstance(tasks, str) or tasks is None else tasks[0],
        )
        write_model_card(self, model_name=model_name, **{**info, **kwargs})


class TransferTrainer(TransferLearningMixin, Trainer):
    """A `transformers.Trainer` for fine-tuning a pretrained classifier with a transfer strategy.

    Example:

    ```python
    from hf_transfer import TransferConfig, TransferTrainer

    args = TransferConfig(output_dir="out", transfer_strategy="lora", lora_r=8)
    trainer = TransferTrainer(model=model, args=args, train_dataset=train, eval_dataset=validation,
                              processing_class=tokenizer, compute_metrics=compute_classification_metrics)
    trainer.train()
    trainer.save_merged_model("out/merged")  # LoRA folded into the base weights, loads without PEFT
    ```
    """
