"""`BaseTrainerMixin`: what every hf_transfer trainer family adds to a `transformers.Trainer`.

- the transfer strategy of its `BaseConfig` (full, a PEFT adapter with the head saved, feature extraction, frozen
  layers, layer-wise learning-rate decay, gradual unfreezing), applied once, here;
- fail-loud training: labels checked against the model before the first step, a non-finite loss or gradient
  stopped before it is applied (`NonFiniteLossError`), `resume_from_checkpoint="last"` skipping a checkpoint cut off
  while saving;
- evaluation that leaves the random number generators as they were (so evaluating never changes training);
- extra training scalars recorded, averaged over processes and logged (`self._record("loss/task", value)`);
- a model card in every save, from the run itself and the family's `describe_training()` hook; merged exports.

A family is a config (a `BaseConfig` subclass) and a mixin on this one that sets `config_class`, `_tag_names`
and `describe_training()` (see `hf_transfer.fine_tuning` and `hf_transfer.domain_adaptation`).
"""

import copy
import json
import math
import os
from collections import defaultdict
from typing import Any

import torch
from transformers import TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy

from .callbacks import TrainingClock
from .checkpoints import check_checkpoint_facts, resolve_resume_checkpoint, write_checkpoint_facts
from .features import find_classifier_module
from .hub.model_card import TrainingDescription, as_list, describe_data, is_hub_id, write_model_card
from .input_checks import check_classes, check_label_ranges, check_model_inputs, check_token_ids
from .strategies import (
    ProgressiveUnfreezingCallback,
    build_peft_config,
    check_target_modules,
    freeze_backbone,
    freeze_lowest_layers,
    keep_frozen_batch_norm_in_eval_mode,
    layer_groups,
    layerwise_learning_rates,
    with_head_saved,
)


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss or gradient. Raised before the optimizer step that would apply it, so
    the weights, and every checkpoint saved so far, stay as they were."""


class BaseTrainerMixin:
    """The shared part of every hf_transfer trainer; put a family's mixin built on it before a `Trainer` class.

    Extra keyword argument: `peft_config`, a PEFT config object, as an alternative to an adapter
    `transfer_strategy`; the classification head always trains and is saved with the adapter. A plain
    `TrainingArguments` is accepted and upgraded to the trainer's `config_class` with its defaults.
    """

    config_class = None  # a BaseConfig subclass, set by each family
    _tag_names = ["hf_transfer"]

    def __init__(self, model=None, args=None, *trainer_args, peft_config=None, **kwargs):
        args = self._upgrade_args(args)
        if model is None or isinstance(model, str):
            raise TypeError(
                "`model` must be a loaded classification model, e.g. "
                "`AutoModelForSequenceClassification.from_pretrained(name, num_labels=...)`."
            )
        model = self._apply_strategy(model, args, peft_config)
        if isinstance(kwargs.get("eval_dataset"), list | tuple):
            raise TypeError(
                "`eval_dataset` is a list: give one dataset, or a dict {name: dataset} to evaluate several (each "
                "reported as eval_<name>_<metric>)."
            )
        super().__init__(model, args, *trainer_args, **kwargs)

        if self.args.fp16 and self.accelerator.device.type == "cpu":
            raise ValueError(
                "`fp16` mixed precision needs a GPU: on the CPU accelerate ignores it and would train in fp32 "
                "without saying so. Use `bf16` on the CPU (supported), or drop `fp16`."
            )
        self._clock = TrainingClock()
        self.add_callback(self._clock)
        self._last_loss = None
        self._metrics = defaultdict(list)
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

    def _apply_strategy(self, model, args, peft_config):
        """The model with the strategy applied: PEFT-wrapped (the head in `modules_to_save`) or partly frozen."""
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

            check_target_modules(model, peft_config)
            model = get_peft_model(model, peft_config)
        self._classifier_name, self._classifier = find_classifier_module(model, args.classifier_module)
        if args.transfer_strategy == "feature_extraction":
            freeze_backbone(model, self._classifier_name)
        elif args.transfer_strategy == "freeze_layers":
            freeze_lowest_layers(model, self._classifier_name, args.num_frozen_layers)
        keep_frozen_batch_norm_in_eval_mode(model)
        return model

    def _model_tags(self) -> list[str]:
        return list(self._tag_names)

    def describe_training(self) -> TrainingDescription:
        """What this family's model card says of the run: its methods, hyper-parameters, tags, intended use."""
        raise NotImplementedError(f"{type(self).__name__} must define `describe_training()` for its model cards.")

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
        """(name, parameter) of what the optimizer updates besides the model (e.g. the DANN discriminator)."""
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

    def _add_module_to_optimizer(self, optimizer, module: torch.nn.Module, name: str, learning_rate=None) -> None:
        """Parameter groups for a module trained outside the model (a discriminator, a projection): weight decay
        on its matrices, none on its biases and norms, as the Trainer splits the model's parameters."""
        rate = {} if learning_rate is None else {"lr": learning_rate}
        decay = [p for p in module.parameters() if p.dim() > 1]
        no_decay = [p for p in module.parameters() if p.dim() <= 1]
        optimizer.add_param_group({"params": decay, "weight_decay": self.args.weight_decay, "name": name, **rate})
        optimizer.add_param_group({"params": no_decay, "weight_decay": 0.0, "name": name, **rate})

    def _prepare_training_dataset(self, dataset, argument: str):
        """A training dataset checked (a non-empty `datasets.Dataset`) and cut to the model's input columns."""
        import datasets

        if not isinstance(dataset, datasets.Dataset):
            raise TypeError(f"`{argument}` must be a `datasets.Dataset`, got {type(dataset).__name__}.")
        if len(dataset) == 0:
            raise ValueError(f"`{argument}` is empty.")
        return self._remove_unused_columns(dataset, description=argument)

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

    # ---- logging ------------------------------------------------------------------------------------------------

    def _record(self, name: str, value: torch.Tensor) -> None:
        """Store a training scalar, averaged over processes; `log()` flushes the mean since the last log.

        A non-finite loss raises `NonFiniteLossError` naming it, on every process alike (the value is gathered),
        before its backward pass, so nothing of it reaches the weights."""
        value = value.detach().float().reshape(1)
        mean = self.accelerator.gather(value).mean().item()
        if name.startswith("loss/") and not math.isfinite(mean):
            loss_name = name.removeprefix("loss/")
            raise NonFiniteLossError(
                f"The {loss_name} loss is {mean} at step {self.state.global_step + 1}; training stopped before "
                "applying it, so the checkpoints saved so far are unaffected. " + self._non_finite_remedy(loss_name)
            )
        self._metrics[name].append(mean)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metrics:
            logs = {**logs, **{name: sum(values) / len(values) for name, values in self._metrics.items()}}
            self._metrics.clear()
        super().log(logs, start_time)

    # ---- training and evaluation ----------------------------------------------------------------------------

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
        resume_from_checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir)
        self._resume_checkpoint = resume_from_checkpoint  # the folder resumed from (None: a fresh start)
        if resume_from_checkpoint:
            check_checkpoint_facts(resume_from_checkpoint, self._checkpoint_facts())
        self._check_data()
        return super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)

    def _checkpoint_facts(self) -> dict:
        """What a checkpoint of this run must share with the run resuming from it (`hf_transfer_checkpoint.json`):
        the trainer, the model class and classes, the strategy."""
        model = self.accelerator.unwrap_model(self.model)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        peft_config = getattr(model, "peft_config", None)
        return {
            "trainer": type(self).__name__,
            "model_class": type(base).__name__,
            "num_labels": getattr(getattr(base, "config", None), "num_labels", None),
            "transfer_strategy": self.args.transfer_strategy,
            "adapters": sorted(peft_config) if peft_config else None,
        }

    def _check_data(self) -> None:
        """The data checks made before the first step: labels inside the model's classes, at least two classes,
        token ids inside its vocabulary and sequences inside its positions."""
        num_labels = getattr(getattr(self.model, "config", None), "num_labels", None)
        check_label_ranges(num_labels, self.train_dataset, self.eval_dataset)
        check_classes(num_labels, self.train_dataset)
        eval_sets = self.eval_dataset if isinstance(self.eval_dataset, dict) else {"": self.eval_dataset}
        model = self.accelerator.unwrap_model(self.model)
        for name, dataset in [("train_dataset", self.train_dataset)] + [
            (f"eval_dataset[{key!r}]" if key else "eval_dataset", data) for key, data in eval_sets.items()
        ]:
            check_model_inputs(model, dataset, name)
            check_token_ids(model, dataset, name)

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

    # ---- export and model cards --------------------------------------------------------------------------------

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

    def _card_info(self) -> dict:
        """What the cards say of the data: `set_model_card_info`'s, or, without it, what the trainer's own datasets
        tell (builder, file names, rows, columns; never a local path)."""
        recorded = getattr(self, "_model_card_info", None)
        if recorded is not None:
            return recorded
        eval_sets = self.eval_dataset if isinstance(self.eval_dataset, dict) else {"eval": self.eval_dataset}
        return {
            "source_dataset": describe_data(self.train_dataset),
            "target_dataset": describe_data(getattr(self, "target_dataset", None)) or None,
            "eval_datasets": {name: describe_data(data) for name, data in eval_sets.items() if data is not None},
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
        """The results of `hf_transfer.evaluation.TransferDiagnostics.after` (proxy A-distance before and after
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
            return
        write_checkpoint_facts(output_dir, self._checkpoint_facts())
        pushes_checkpoints = self.args.push_to_hub and self.args.hub_strategy != HubStrategy.END
        for card_dir in [output_dir] + ([self.args.output_dir] if pushes_checkpoints else []):
            write_model_card(
                self,
                model_name=os.path.basename(os.path.normpath(self.args.output_dir)),
                output_dir=card_dir,
                checkpoint_step=self.state.global_step,
                training_seconds=self._clock.seconds(),
                **self._card_info(),
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
        """Write `README.md` into `output_dir`, describing this run (see `hf_transfer.hub.model_card`).

        Takes `Trainer.create_model_card`'s arguments (which `push_to_hub(**kwargs)` passes on): `language`,
        `license`, `tags`, `dataset_tags` / `dataset` (Hub dataset ids) are added to the card's metadata,
        `finetuned_from` names the base model when the run did not record one, `tasks` sets the pipeline tag.
        Further keyword arguments go to `hf_transfer.hub.write_model_card` (e.g. `results`).
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
        info = {**self._card_info(), **getattr(self, "_baselines", {})}
        info["diagnostics"] = getattr(self, "_diagnostics", None)
        info["guard"] = getattr(self, "_guard_report", None)
        info["teacher"] = getattr(self, "_teacher_report", None)
        info["continual"] = getattr(self, "_continual_report", None)
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
