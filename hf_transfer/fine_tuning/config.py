"""`FineTuningConfig`: the `TrainingArguments` of `FineTuningTrainer`."""

from dataclasses import dataclass

from ..base_config import BaseConfig


@dataclass
class FineTuningConfig(BaseConfig):
    r"""
    Configuration of [`FineTuningTrainer`]: every `TrainingArguments` field and the transfer strategy of
    [`BaseConfig`] (`transfer_strategy`: full, LoRA / DoRA / IA3 / LoHa / LoKr or any PEFT config file, feature
    extraction, frozen layers; `layerwise_lr_decay`, `progressive_unfreezing_steps`; the adapter's `adapter_rank`,
    `adapter_alpha`, `adapter_dropout`, `peft_target_modules`). Supervised fine-tuning adds no field of its own.
    Parsed into a command line by `HfArgumentParser`. `TransferConfig` is its former name, kept as an alias.
    """
