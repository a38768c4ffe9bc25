"""`FineTuningTrainer`: a `transformers.Trainer` that fine-tunes a pretrained classifier with a transfer strategy.

Everything but the model card's description is shared with the other families (`hf_transfer.BaseTrainerMixin`):
the strategy (full, a PEFT adapter, feature extraction, frozen layers, layer-wise learning-rate decay, gradual
unfreezing), the non-finite guard, exact resume, RNG-neutral evaluation, cards and merged exports.
"""

from transformers import Trainer

from ..base_trainer import BaseTrainerMixin
from ..hub.model_card import Method, TrainingDescription
from .config import FineTuningConfig


class FineTuningMixin(BaseTrainerMixin):
    """Supervised fine-tuning with a transfer strategy, for any `transformers.Trainer` (sub)class.

    Usage: `class MyFineTuningTrainer(FineTuningMixin, MyTrainer): pass`. `TransferLearningMixin` is its former
    name, kept as an alias. Extra keyword argument: `peft_config` (see `BaseTrainerMixin`).
    """

    config_class = FineTuningConfig
    _tag_names = ["hf_transfer", "transfer-learning"]

    def describe_training(self) -> TrainingDescription:
        return TrainingDescription(
            summary="by supervised fine-tuning on the labeled data below.",
            methods=[Method("Supervised fine-tuning", "on the labeled training data, with the strategy above")],
            tags=["transfer-learning"],
            data_label="Training data (labeled)",
            intended_use=(
                "Classification of inputs like the training data above, with its labels. The results above were "
                "measured on the\nevaluation sets named there and say nothing about other domains, where accuracy "
                "usually drops."
            ),
        )


class FineTuningTrainer(FineTuningMixin, Trainer):
    """A `transformers.Trainer` for fine-tuning a pretrained classifier with a transfer strategy.

    `TransferTrainer` is its former name, kept as an alias. Example:

    ```python
    from hf_transfer import FineTuningConfig, FineTuningTrainer

    args = FineTuningConfig(output_dir="out", transfer_strategy="lora", adapter_rank=8)
    trainer = FineTuningTrainer(model=model, args=args, train_dataset=train, eval_dataset=validation,
                                processing_class=tokenizer, compute_metrics=compute_classification_metrics)
    trainer.train()
    trainer.save_merged_model("out/merged")  # LoRA folded into the base weights, loads without PEFT
    ```
    """
