"""Knowledge distillation of an image classifier: a smaller student trained on its teacher's soft labels.

With no arguments it runs the embedded default, offline: the teacher is a small ResNet with 2 basic blocks per stage
trained from scratch on the bundled USPS digits (saved in `<output_dir>/teacher`); the student keeps the first block
of each stage (the recipes' usual 1-block ResNet), initialised from the teacher; it is distilled on the labeled USPS
images plus unlabeled MNIST images (soft labels only), and evaluated with its teacher on the USPS and MNIST test
images:

    accelerate launch recipes/image_cls_distill.py

Other runs:

    # a ViT teacher of 8 layers, a student of 4
    accelerate launch recipes/image_cls_distill.py --model_type vit --student_num_layers 4
    # a teacher you trained (e.g. with image_cls_finetune.py), no unlabeled images
    accelerate launch recipes/image_cls_distill.py --teacher_model_name_or_path outputs/image_cls_finetune \\
        --target_dataset none --target_test_dataset digits:mnist
    # the feature maps too, and the student on hard labels only (the baseline)
    accelerate launch recipes/image_cls_distill.py --hidden_state_loss mse
    accelerate launch recipes/image_cls_distill.py --alpha 1 --target_dataset none --target_test_dataset digits:mnist

`python recipes/image_cls_distill.py --help` lists every argument.
"""

import logging
from dataclasses import dataclass, field

from transformers import AutoModelForImageClassification, default_data_collator, set_seed

from hf_transfer import DistillationConfig
from hf_transfer.hub.model_card import describe_source
from hf_transfer.recipes.arguments import ImageDomainDataArguments, ImageModelArguments
from hf_transfer.recipes.models import from_pretrained_or_explain, load_image_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import (
    check_image_columns,
    check_image_training_args,
    describe_sources,
    domain_card_info,
    label_names_of,
    load_image_domain_sets,
    prepare_image_sets,
)
from hf_transfer.recipes.run import setup_logging, train_distillation
from hf_transfer.recipes.teachers import (
    DistillationArguments,
    make_student,
    saved_teacher,
    teacher_facts,
    train_teacher,
)

logger = logging.getLogger(__name__)


@dataclass
class ImageTeacherArguments:
    teacher_depth_scale: int = field(
        default=2,
        metadata={
            "help": "The teacher trained here (no --teacher_model_name_or_path) has this many times the blocks of "
            "the --model_type network: ResNet blocks per stage, ViT layers."
        },
    )


# This recipe's defaults: those of image_cls_dann.py (USPS → MNIST, 64 images per batch: 32 labeled + 32 unlabeled)
# for the student, and the teacher trained as image_cls_finetune.py trains its model.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/image_cls_distill",
    "max_steps": 1500,
    "per_device_train_batch_size": 64,
    "per_device_eval_batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "warmup_steps": 0.05,  # a fraction of max_steps
    "alpha": 0.5,
    "temperature": 2.0,
    "teacher_max_steps": 1500,
    "teacher_batch_size": 32,
    "teacher_learning_rate": 1e-3,
    "logging_steps": 100,
    "eval_strategy": "no",
    "save_strategy": "no",
    "remove_unused_columns": False,  # the image column is turned into pixel_values on the fly
}


def parse_args(argv: list[str] | None = None):
    dataclasses = (ImageModelArguments, ImageTeacherArguments, DistillationArguments, ImageDomainDataArguments,
                   DistillationConfig)  # fmt: skip
    return parse_recipe_args(dataclasses, RECIPE_DEFAULTS, argv)


def load_teacher_and_processor(model_args, teacher_args, distill_args, data_args, training_args, raw, label_names):
    """(teacher, image processor, how the card names the teacher, prepared sets): the given teacher, the one this
    run trained before with the same settings, or a new one trained here."""
    if distill_args.teacher_model_name_or_path:
        model_args.model_name_or_path = distill_args.teacher_model_name_or_path
        teacher, processor, name = load_image_classifier(model_args, label_names, keep_head=True)
        sets = prepare_image_sets(raw, processor, data_args, label_names, training_args, unlabeled=("target",))
        return teacher, processor, describe_source(name), sets
    if model_args.model_name_or_path:
        raise ValueError(
            "--model_name_or_path is the starting point of a teacher trained here from scratch only: give a trained "
            "teacher as --teacher_model_name_or_path instead."
        )
    scale = teacher_args.teacher_depth_scale
    model, processor, _ = load_image_classifier(model_args, label_names, depth_scale=scale)
    sets = prepare_image_sets(raw, processor, data_args, label_names, training_args, unlabeled=("target",))
    source = describe_sources(data_args.source_dataset, data_args.source_train_split)
    base = f"{model_args.model_type} from scratch ({scale}x the recipe's blocks)"
    facts = teacher_facts(base, source, distill_args, training_args)
    name = f"a {base} trained on {source} ({distill_args.teacher_max_steps} steps, in teacher/)"
    folder = saved_teacher(training_args.output_dir, facts)
    if folder is not None:
        logger.info("Reusing the teacher this run trained before, in %s", folder)
        auto = AutoModelForImageClassification
        teacher = from_pretrained_or_explain(auto, folder, "teacher_model_name_or_path", use_safetensors=True)
        return teacher, processor, name, sets
    teacher = train_teacher(model, training_args, distill_args, facts, train_dataset=sets["source"],
                            processing_class=processor, data_collator=default_data_collator)  # fmt: skip
    return teacher, processor, name, sets


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, teacher_args, distill_args, data_args, training_args = parse_args(argv)
    setup_logging()
    check_image_training_args(training_args)
    distill_args.check()
    raw = load_image_domain_sets(data_args, training_args.seed)
    check_image_columns(raw, data_args, unlabeled=("target",))
    label_names = label_names_of(raw["source"][0], data_args.label_column, "source_dataset")

    set_seed(training_args.seed)  # a teacher trained here is initialised from the seed
    teacher, processor, teacher_name, sets = load_teacher_and_processor(
        model_args, teacher_args, distill_args, data_args, training_args, raw, label_names
    )

    def load_student(path):
        student_args = ImageModelArguments(model_name_or_path=path, trust_remote_code=model_args.trust_remote_code)
        return load_image_classifier(student_args, label_names)[0]

    student = make_student(teacher, distill_args, load_student, default_layers=1)  # ResNet: 1 block per stage
    eval_sets = {name: sets[name] for name in ("source_test", "target_test") if sets[name] is not None}
    first_eval = "target_test" if "target_test" in eval_sets else next(iter(eval_sets), None)
    return train_distillation(
        training_args,
        student=student,
        teacher=teacher,
        teacher_name=teacher_name,
        processing_class=processor,
        data_collator=default_data_collator,
        train_dataset=sets["source"],
        unlabeled_dataset=sets["target"],
        eval_datasets=eval_sets,
        card_info=domain_card_info(None, data_args, "source_test", data_args.source_test_split),
        report=f"student {first_eval} accuracy: {{eval_{first_eval}_accuracy:.4f}}" if first_eval else "trained",
    )


if __name__ == "__main__":
    main()
