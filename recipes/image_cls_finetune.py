"""Supervised fine-tuning of an image classifier with any transfer strategy: full, LoRA / DoRA / IA3 / LoHa / LoKr
or any PEFT config file, feature extraction, frozen layers (ViT layers, ResNet stages), layer-wise learning-rate
decay, gradual unfreezing.

With no arguments it runs the embedded default, offline: a small ResNet trained from scratch (no pretrained vision
weights can be downloaded here) on the bundled USPS digits, evaluated on the USPS test split and, out of domain, on
MNIST test images:

    accelerate launch recipes/image_cls_finetune.py

Other runs (the pretrained ones need the network):

    accelerate launch recipes/image_cls_finetune.py --model_type vit
    accelerate launch recipes/image_cls_finetune.py --model_name_or_path microsoft/resnet-50 \\
        --transfer_strategy freeze_layers --num_frozen_layers 2 --learning_rate 1e-4
    accelerate launch recipes/image_cls_finetune.py --model_name_or_path google/vit-base-patch16-224-in21k \\
        --transfer_strategy lora --learning_rate 5e-4
    accelerate launch recipes/image_cls_finetune.py --model_name_or_path google/vit-base-patch16-224-in21k \\
        --dataset beans --validation_split validation --test_dataset beans --test_split test

`--linear_probe true` first fits a logistic regression on the (pretrained) model's frozen features, reported as
`probe_<set>_accuracy`. Images go through the model's image processor with `set_transform`; grayscale images
become 3 channels and the processor resizes them. `python recipes/image_cls_finetune.py --help` lists every argument.
"""

import os
from dataclasses import dataclass, field

from transformers import default_data_collator, set_seed

from hf_transfer import FineTuningConfig
from hf_transfer.recipes.arguments import FineTuningArguments, ImageModelArguments
from hf_transfer.recipes.models import load_image_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import (
    check_image_columns,
    check_image_training_args,
    fine_tuning_card_info,
    label_names_of,
    load_split,
    prepare_image_sets,
)
from hf_transfer.recipes.run import setup_logging, train_fine_tuning


@dataclass
class DataArguments:
    dataset: str = field(
        default="digits:usps",
        metadata={"help": "Labeled images: 'digits:usps' / 'digits:mnist' (bundled), a local folder or a Hub id."},
    )
    train_split: str = field(default="train", metadata={"help": "Split of dataset to train on."})
    validation_split: str | None = field(
        default="test", metadata={"help": "Held-out split of dataset to evaluate on; 'none' to skip."}
    )
    test_dataset: str | None = field(
        default="digits:mnist",
        metadata={"help": "Labeled test images (another domain, or the same dataset); 'none' to skip."},
    )
    test_split: str = field(default="test", metadata={"help": "Split of test_dataset."})
    image_column: str = field(default="image", metadata={"help": "Column with the images."})
    label_column: str = field(default="label", metadata={"help": "Column with the labels."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many rows per eval set."})


# This recipe's defaults for `FineTuningConfig` fields: the source rows of `image_cls_dann.py`'s batches, same steps.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/image_cls_finetune",
    "max_steps": 1500,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 0.05,  # a fraction of max_steps
    "logging_steps": 100,
    "eval_strategy": "no",
    "save_strategy": "no",
    "remove_unused_columns": False,  # the image column is turned into pixel_values on the fly
}


def parse_args(argv: list[str] | None = None):
    return parse_recipe_args(
        (ImageModelArguments, DataArguments, FineTuningArguments, FineTuningConfig), RECIPE_DEFAULTS, argv
    )


def load_datasets(data_args: DataArguments, seed: int) -> dict:
    """{name: (dataset or None, argument)}: the training split, the held-out validation split and the test set."""
    test = None
    if data_args.test_dataset not in (None, "", "none"):
        test = load_split(data_args.test_dataset, data_args.test_split, "test_dataset", data_args.max_eval_samples)
    return {
        "train": (
            load_split(data_args.dataset, data_args.train_split, "dataset", data_args.max_train_samples, seed),
            "dataset",
        ),
        "validation": (
            load_split(data_args.dataset, data_args.validation_split, "dataset", data_args.max_eval_samples),
            "dataset",
        ),
        "test": (test, "test_dataset"),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, fine_tuning_args, training_args = parse_args(argv)
    setup_logging()
    check_image_training_args(training_args)
    fine_tuning_args.check(training_args)
    raw = load_datasets(data_args, training_args.seed)
    check_image_columns(raw, data_args)
    label_names = label_names_of(raw["train"][0], data_args.label_column, "dataset")

    set_seed(training_args.seed)  # the model (or its new head) is initialised from the seed
    model, image_processor, base_model = load_image_classifier(model_args, label_names)
    sets = prepare_image_sets(raw, image_processor, data_args, label_names, training_args)
    eval_sets = {name: sets[name] for name in ("validation", "test") if sets[name] is not None}
    first_eval = next(iter(eval_sets), None)
    architecture = os.path.basename(base_model) if base_model else model_args.model_type
    return train_fine_tuning(
        training_args,
        fine_tuning_args,
        model=model,
        processing_class=image_processor,
        data_collator=default_data_collator,
        train_dataset=sets["train"],
        eval_datasets=eval_sets,
        card_info=fine_tuning_card_info(base_model, data_args),
        report=f"{first_eval} accuracy ({data_args.dataset}, {architecture}, {training_args.transfer_strategy}): "
        f"{{eval_{first_eval}_accuracy:.4f}}"
        if first_eval
        else "trained (no evaluation set)",
    )


if __name__ == "__main__":
    main()
