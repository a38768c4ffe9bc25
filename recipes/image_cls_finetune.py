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

from hf_transfer import TransferConfig, TransferTrainer, compute_classification_metrics
from hf_transfer.recipe_utils import (
    FineTuningArguments,
    ImageModelArguments,
    check_columns,
    check_image_training_args,
    describe_dataset,
    finish_run,
    image_transform,
    label_names_of,
    load_image_classifier,
    load_split,
    parse_recipe_args,
    prepare_image_dataset,
    run_linear_probe,
    setup_logging,
)


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


# This recipe's defaults for `TransferConfig` fields: the source rows of `image_cls_dann.py`'s batches, same steps.
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
        (ImageModelArguments, DataArguments, FineTuningArguments, TransferConfig), RECIPE_DEFAULTS, argv
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, fine_tuning_args, training_args = parse_args(argv)
    setup_logging()
    check_image_training_args(training_args)
    fine_tuning_args.check(training_args)
    seed = training_args.seed
    train = load_split(data_args.dataset, data_args.train_split, "dataset", data_args.max_train_samples, seed)
    validation = load_split(data_args.dataset, data_args.validation_split, "dataset", data_args.max_eval_samples)
    test = None
    if data_args.test_dataset not in (None, "", "none"):
        test = load_split(data_args.test_dataset, data_args.test_split, "test_dataset", data_args.max_eval_samples)
    fix = "set --image_column / --label_column to its column names."
    for argument, dataset in (("dataset", train), ("dataset", validation), ("test_dataset", test)):
        if dataset is not None:
            check_columns(dataset, argument, [data_args.image_column, data_args.label_column], fix)
    label_names = label_names_of(train, data_args.label_column)

    set_seed(seed)  # the model (or its new head) is initialised from the seed
    model, image_processor, base_model = load_image_classifier(model_args, label_names)
    transform = image_transform(image_processor, data_args.image_column)

    def prepare(dataset, argument):
        return prepare_image_dataset(
            dataset, argument, transform, data_args.image_column, data_args.label_column, label_names
        )

    with training_args.main_process_first(desc="label encoding"):
        train = prepare(train, "dataset")
        eval_sets = {
            name: prepare(dataset, argument)
            for name, dataset, argument in (("validation", validation, "dataset"), ("test", test, "test_dataset"))
            if dataset is not None
        }

    probe_metrics = run_linear_probe(fine_tuning_args, model, train, eval_sets, default_data_collator)

    trainer = TransferTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=eval_sets or None,
        processing_class=image_processor,
        data_collator=default_data_collator,
        compute_metrics=compute_classification_metrics,
    )
    trainer.set_model_card_info(
        base_model=base_model,
        source_dataset=describe_dataset(data_args.dataset, data_args.train_split),
        eval_datasets={
            "validation": describe_dataset(data_args.dataset, data_args.validation_split),
            "test": describe_dataset(data_args.test_dataset or "", data_args.test_split),
        },
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    first_eval = next(iter(eval_sets), None)
    architecture = os.path.basename(base_model) if base_model else model_args.model_type
    return finish_run(
        trainer,
        train_result,
        report=f"{first_eval} accuracy ({data_args.dataset}, {architecture}, {training_args.transfer_strategy}): "
        f"{{eval_{first_eval}_accuracy:.4f}}"
        if first_eval
        else "trained (no evaluation set)",
        extra_metrics=probe_metrics,
        merge_adapter=fine_tuning_args.merge_adapter,
    )


if __name__ == "__main__":
    main()
