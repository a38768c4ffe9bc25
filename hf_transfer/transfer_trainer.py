"""`TransferTrainer`: a `transformers.Trainer` that fine-tunes a pretrained classifier with a transfer strategy.

The strategy (`TransferConfig.transfer_strategy`: full, a PEFT adapter, feature extraction, frozen layers; plus
layer-wise learning-rate decay and gradual unfreezing) is applied here, once, for every recipe and for
`DomainAdaptationTrainer`, which builds on `TransferLearningMixin`.
"""

import copy
import os
import time
from collections import defaultdict
from typing import Any

from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .features import find_classifier_module
from .model_card import write_model_card
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

        self._clock = _TrainingClock()
        self.add_callback(self._clock)
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

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """`Trainer.save_model`, plus a model card `README.md` in every checkpoint (before it can be pushed)."""
        super().save_model(output_dir, _internal_call)
        folder = os.path.basename(os.path.normpath(output_dir or self.args.output_dir))
        if _internal_call and folder.startswith(PREFIX_CHECKPOINT_DIR) and self.is_world_process_zero():
            write_model_card(
                self,
                model_name=os.path.basename(os.path.normpath(self.args.output_dir)),
                output_dir=output_dir,
                checkpoint_step=self.state.global_step,
                training_seconds=self._clock.seconds(),
                **getattr(self, "_model_card_info", {}),
            )

    def create_model_card(self, model_name: str | None = None, dataset_name: str | None = None, **kwargs: Any) -> None:
        """Write `README.md` into `output_dir`, describing this run (see `hf_transfer.model_card`)."""
        if not self.is_world_process_zero():
            return
        write_model_card(self, model_name=model_name, **{**getattr(self, "_model_card_info", {}), **kwargs})


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
