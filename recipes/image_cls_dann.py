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

from transformers import default_data_collator, set_seed

from hf_transfer import DomainAdaptationConfig
from hf_transfer.recipes.arguments import EvaluationArguments, ImageDomainDataArguments, ImageModelArguments
from hf_transfer.recipes.baselines import use_stage1_run
from hf_transfer.recipes.models import load_image_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import (
    check_image_columns,
    check_image_training_args,
    domain_card_info,
    label_names_of,
    load_image_domain_sets,
    prepare_image_sets,
    source_specs,
)
from hf_transfer.recipes.run import setup_logging, train_domain_adaptation

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
    dataclasses = (ImageModelArguments, ImageDomainDataArguments, EvaluationArguments, DomainAdaptationConfig)
    return parse_recipe_args(dataclasses, RECIPE_DEFAULTS, argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, evaluation_args, training_args = parse_args(argv)
    stage1 = use_stage1_run(model_args, evaluation_args, training_args)
    setup_logging()
    check_image_training_args(training_args)
    raw = load_image_domain_sets(data_args, training_args.seed)
    check_image_columns(raw, data_args, unlabeled=("target",))
    label_names = label_names_of(raw["source"][0], data_args.label_column, "source_dataset")

    set_seed(training_args.seed)  # the model (or its new head) is initialised from the seed
    model, image_processor, base_model = load_image_classifier(model_args, label_names)
    base_model = stage1["facts"]["base_model"] if stage1 else base_model
    sets = prepare_image_sets(raw, image_processor, data_args, label_names, training_args, unlabeled=("target",))
    eval_sets = {name: sets[name] for name in ("source_test", "target_test") if sets[name] is not None}
    architecture = os.path.basename(base_model) if base_model else model_args.model_type
    sources = " + ".join(source_specs(data_args.source_dataset))
    return train_domain_adaptation(
        training_args,
        evaluation_args,
        model=model,
        processing_class=image_processor,
        data_collator=default_data_collator,
        source=sets["source"],
        target=sets["target"],
        source_validation=sets["source_test"],
        eval_datasets=eval_sets,
        card_info=domain_card_info(base_model, data_args, "source_test", data_args.source_test_split),
        stage1=stage1,
        report=f"target-test accuracy ({sources} -> {data_args.target_dataset}, {architecture}, "
        f"adaptation_loss={training_args.adaptation_loss or 'none'}): {{eval_target_test_accuracy:.4f}}",
    )


if __name__ == "__main__":
    main()
