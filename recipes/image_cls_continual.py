"""Continual learning of classes: one labeled image dataset split into experiences of a few classes each (split
MNIST), trained in order, evaluated on every experience after each (the accuracy matrix and its metrics).

With no arguments it runs the embedded default, offline: a small ResNet trained from scratch on the bundled MNIST
digits split into five experiences of two classes (0-1, 2-3, 4-5, 6-7, 8-9), 200 steps of 32 images each, in the
class-incremental scenario (one head; at test time every class seen so far competes), without anything against
forgetting (`naive`):

    accelerate launch recipes/image_cls_continual.py

Other runs (van de Ven et al. 2019, "Three scenarios for continual learning"):

    accelerate launch recipes/image_cls_continual.py --scenario task          # the experience is known at test time
    accelerate launch recipes/image_cls_continual.py --continual_method replay --memory_size 500 \\
        --memory_strategy class_balanced
    accelerate launch recipes/image_cls_continual.py --continual_method ewc --ewc_lambda 1e4
    accelerate launch recipes/image_cls_continual.py --continual_method lwf --scenario task
    accelerate launch recipes/image_cls_continual.py --continual_method joint  # the upper bound
    accelerate launch recipes/image_cls_continual.py --dataset cifar10 --image_column img --classes_per_experience 2

`python recipes/image_cls_continual.py --help` lists every argument.
"""

from transformers import default_data_collator, set_seed

from hf_transfer import ContinualConfig
from hf_transfer.recipes.arguments import ImageModelArguments
from hf_transfer.recipes.continual import (
    ImageExperienceArguments,
    continual_card_info,
    load_image_experiences,
    train_continual,
)
from hf_transfer.recipes.models import load_image_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import check_image_training_args, image_transform
from hf_transfer.recipes.run import setup_logging

# This recipe's defaults for `ContinualConfig` fields.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/image_cls_continual",
    "scenario": "class",
    "steps_per_experience": 200,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 0.05,  # a fraction of each experience's steps
    "logging_steps": 50,
    "eval_strategy": "no",
    "save_strategy": "no",
    "remove_unused_columns": False,  # the image column is turned into pixel_values on the fly
}


def parse_args(argv: list[str] | None = None):
    return parse_recipe_args((ImageModelArguments, ImageExperienceArguments, ContinualConfig), RECIPE_DEFAULTS, argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(argv)
    setup_logging()
    check_image_training_args(training_args)
    label_names, train_sets, eval_sets = load_image_experiences(data_args, training_args.seed)
    set_seed(training_args.seed)  # the model (or its new head) is initialised from the seed
    model, image_processor, base_model = load_image_classifier(model_args, label_names)
    transform = image_transform(image_processor, data_args.image_column)
    with training_args.main_process_first(desc="image transforms"):
        for data in [*train_sets.values(), *eval_sets.values()]:
            data.set_transform(transform)
    specs = {name: data_args.dataset for name in train_sets}
    card_info = continual_card_info(base_model, specs, data_args.train_split, data_args.eval_split)
    card_info["source_dataset"] = (
        f"{data_args.dataset} ({data_args.train_split}), split by class into {', '.join(train_sets)}, in this order"
    )
    return train_continual(
        training_args,
        model=model,
        processing_class=image_processor,
        data_collator=default_data_collator,
        train_sets=train_sets,
        eval_sets=eval_sets,
        card_info=card_info,
    )


if __name__ == "__main__":
    main()
