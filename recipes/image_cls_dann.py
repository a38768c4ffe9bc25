"""Unsupervised domain adaptation of an image classifier: labeled source images, unlabeled target images.

With no arguments it runs the embedded default, offline: USPS → MNIST digits (bundled with hf_transfer), a small
ResNet trained from scratch (no pretrained vision weights can be downloaded here), DANN:

    accelerate launch recipes/image_cls_dann.py

Other runs:

    # source-only baseline / other alignment losses, same seed and steps
    accelerate launch recipes/image_cls_dann.py --adaptation_loss none --output_dir outputs/usps_mnist_source_only
    accelerate launch recipes/image_cls_dann.py --adaptation_loss mmd --output_dir outputs/usps_mnist_mmd
    # a small ViT instead of the ResNet
    accelerate launch recipes/image_cls_dann.py --model_type vit
    # a pretrained Hub model (needs the network), its own image processor; images are resized for it
    accelerate launch recipes/image_cls_dann.py --model_name_or_path microsoft/resnet-50 --learning_rate 1e-4
    # your own data: image folders, local files or Hub dataset ids, with column names
    accelerate launch recipes/image_cls_dann.py --source_dataset path/to/source_imagefolder \\
        --target_dataset path/to/target_imagefolder --target_train_split train --target_test_split test

Images go through the model's image processor with `set_transform` (on the fly, nothing is cached): any PIL
mode is converted to RGB first, so grayscale digits become 3-channel images, and the processor resizes them.
`python recipes/image_cls_dann.py --help` lists every argument (model, data, `DomainAdaptationConfig`).
"""

import os
from dataclasses import dataclass, field

from transformers import default_data_collator, set_seed

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, compute_classification_metrics
from hf_transfer.recipe_utils import (
    EvaluationArguments,
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
    setup_logging,
    source_only_baseline,
)


@dataclass
class DataArguments:
    source_dataset: str = field(
        default="digits:usps",
        metadata={
            "help": "Labeled source images: 'digits:usps' / 'digits:mnist' (bundled), a local folder or a Hub id."
        },
    )
    source_train_split: str = field(default="train", metadata={"help": "Split of source_dataset to train on."})
    source_test_split: str | None = field(
        default="test", metadata={"help": "Held-out split of source_dataset to evaluate on; 'none' to skip."}
    )
    target_dataset: str = field(
        default="digits:mnist",
        metadata={"help": "Unlabeled target images: 'digits:<name>', a local folder or a Hub dataset id."},
    )
    target_train_split: str = field(
        default="unlabeled", metadata={"help": "Split of target_dataset used (without labels) for adaptation."}
    )
    target_test_dataset: str | None = field(
        default=None, metadata={"help": "Labeled target test images. Default: target_dataset."}
    )
    target_test_split: str = field(
        default="test", metadata={"help": "Split of the target test data (must not overlap target_train_split)."}
    )
    image_column: str = field(default="image", metadata={"help": "Column with the images."})
    label_column: str = field(default="label", metadata={"help": "Column with the labels (source and target test)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many source rows."})
    max_target_samples: int | None = field(default=None, metadata={"help": "Use only this many target rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many rows per eval set."})


# This recipe's defaults for `DomainAdaptationConfig` fields: USPS → MNIST in a few minutes on a 2-core CPU.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/image_cls_dann",
    "max_steps": 1500,
    "per_device_train_batch_size": 64,  # 32 source + 32 target images
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
        (ImageModelArguments, DataArguments, EvaluationArguments, DomainAdaptationConfig), RECIPE_DEFAULTS, argv
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, evaluation_args, training_args = parse_args(argv)
    setup_logging()
    check_image_training_args(training_args)
    seed = training_args.seed
    test_spec = data_args.target_test_dataset or data_args.target_dataset
    source = load_split(
        data_args.source_dataset, data_args.source_train_split, "source_dataset", data_args.max_train_samples, seed
    )
    source_test = load_split(
        data_args.source_dataset, data_args.source_test_split, "source_dataset", data_args.max_eval_samples, seed
    )
    target = load_split(
        data_args.target_dataset, data_args.target_train_split, "target_dataset", data_args.max_target_samples, seed
    )
    target_test = load_split(
        test_spec, data_args.target_test_split, "target_test_dataset", data_args.max_eval_samples, seed
    )
    if test_spec == data_args.target_dataset and data_args.target_test_split == data_args.target_train_split:
        raise ValueError(
            f"`target_test_split` and `target_train_split` are both {data_args.target_train_split!r}: the target "
            "test images must not be the ones adapted on. Choose another split."
        )
    fix = "set --image_column / --label_column to its column names."
    labeled = [data_args.image_column, data_args.label_column]
    check_columns(source, "source_dataset", labeled, fix)
    check_columns(target, "target_dataset", [data_args.image_column], fix)
    check_columns(target_test, "target_test_dataset", labeled, fix)
    label_names = label_names_of(source, data_args.label_column)

    set_seed(seed)  # the model (or its new head) is initialised from the seed
    model, image_processor, base_model = load_image_classifier(model_args, label_names)

    transform = image_transform(image_processor, data_args.image_column)

    def prepare(dataset, argument, labeled=True):
        label_column = data_args.label_column if labeled else None
        return prepare_image_dataset(dataset, argument, transform, data_args.image_column, label_column, label_names)

    with training_args.main_process_first(desc="label encoding"):
        source = prepare(source, "source_dataset")
        target = prepare(target, "target_dataset", labeled=False)  # target labels are never read
        target_test = prepare(target_test, "target_test_dataset")
        source_test = prepare(source_test, "source_dataset") if source_test is not None else None

    eval_sets = {"target_test": target_test}
    if source_test is not None:
        eval_sets = {"source_test": source_test, **eval_sets}

    card_info = dict(
        base_model=base_model,
        source_dataset=describe_dataset(data_args.source_dataset, data_args.source_train_split),
        target_dataset=describe_dataset(data_args.target_dataset, data_args.target_train_split),
        eval_datasets={
            "source_test": describe_dataset(data_args.source_dataset, data_args.source_test_split),
            "target_test": describe_dataset(test_spec, data_args.target_test_split),
        },
    )
    source_only_results = source_only_baseline(evaluation_args.source_only_run, training_args, card_info)
    selection = evaluation_args.selection_callback(training_args, source_test, target, default_data_collator)
    diagnostics = evaluation_args.diagnostics(training_args, source_test, target, default_data_collator, model)

    trainer = DomainAdaptationTrainer(
        model=model,
        args=training_args,
        train_dataset=source,
        target_dataset=target,
        eval_dataset=eval_sets,
        processing_class=image_processor,
        data_collator=default_data_collator,
        compute_metrics=compute_classification_metrics,
        callbacks=[selection] if selection else None,
    )
    trainer.set_model_card_info(**card_info)
    trainer.set_baselines(source_only_results=source_only_results)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if diagnostics is not None:
        trainer.set_transfer_diagnostics(diagnostics.after(trainer.model, training_args.output_dir))
    return finish_run(
        trainer,
        train_result,
        report=f"target-test accuracy ({data_args.source_dataset} -> {data_args.target_dataset}, "
        f"{os.path.basename(base_model) if base_model else model_args.model_type}, "
        f"adaptation_loss={training_args.adaptation_loss or 'none'}): {{eval_target_test_accuracy:.4f}}",
    )


if __name__ == "__main__":
    main()
