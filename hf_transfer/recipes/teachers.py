"""The teacher and the student of the distillation recipes: a teacher loaded from a folder or Hub id, or fine-tuned
first in the run (and reused when the run is started again); the student built from the teacher or loaded."""

import json
import logging
import os
from dataclasses import dataclass, field

from ..distillation import build_student
from ..fine_tuning import FineTuningConfig, FineTuningTrainer
from ..hub.model_card import describe_source

logger = logging.getLogger(__name__)

TEACHER_FOLDER = "teacher"
TEACHER_FACTS = "hf_transfer_teacher.json"


@dataclass
class DistillationArguments:
    """Where the distillation recipes get their teacher and student."""

    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A fine-tuned classifier of the same labels (a local folder, e.g. the output_dir of a "
            "fine-tuning recipe run, or a Hub id). Default: the recipe first fine-tunes --model_name_or_path on the "
            "labeled source data (--teacher_max_steps steps) and saves it in <output_dir>/teacher."
        },
    )
    teacher_max_steps: int = field(default=150, metadata={"help": "Steps of the teacher trained in the recipe."})
    teacher_learning_rate: float = field(
        default=5e-5, metadata={"help": "Learning rate of the teacher trained in the recipe."}
    )
    teacher_batch_size: int = field(default=16, metadata={"help": "Batch size of the teacher trained in the recipe."})
    student_num_layers: int | None = field(
        default=None,
        metadata={
            "help": "The student keeps this many of the teacher's layers (evenly spaced, first and last included; "
            "for ResNet teachers: blocks per stage), initialised from them (hf_transfer.build_student). Default: "
            "the recipe's (text: 3 layers; images: 1 block per stage)."
        },
    )
    student_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Instead of building the student from the teacher: this model (same tokenizer/labels)."},
    )

    def check(self) -> None:
        if self.student_model_name_or_path and self.student_num_layers is not None:
            raise ValueError(
                "Both --student_model_name_or_path and --student_num_layers were given: the student is either "
                "loaded or built from the teacher. Drop one."
            )
        if self.teacher_max_steps < 1:
            raise ValueError(f"`teacher_max_steps` must be >= 1, got {self.teacher_max_steps}.")


def teacher_facts(base_model: str | None, source_dataset: str, args: DistillationArguments, training_args) -> dict:
    """What decides the teacher a run trains: a teacher saved with the same facts is reused."""
    return {
        "base_model": describe_source(base_model),
        "source_dataset": source_dataset,
        "max_steps": args.teacher_max_steps,
        "learning_rate": args.teacher_learning_rate,
        "per_device_train_batch_size": args.teacher_batch_size,
        "seed": training_args.seed,
        "bf16": training_args.bf16,
        "world_size": training_args.world_size,
    }


def saved_teacher(output_dir: str, facts: dict) -> str | None:
    """The folder of a teacher this run trained before with the same facts (a restarted or resumed run)."""
    folder = os.path.join(output_dir, TEACHER_FOLDER)
    path = os.path.join(folder, TEACHER_FACTS)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        if json.load(handle) != facts:
            raise ValueError(
                f"{folder} holds a teacher trained with other settings than this run's ({path}): choose another "
                "--output_dir, delete that folder, or pass it as --teacher_model_name_or_path."
            )
    return folder


def train_teacher(model, training_args, args: DistillationArguments, facts: dict, **trainer_kwargs):
    """Fine-tune `model` as the teacher (`FineTuningTrainer`, no evaluation: the distillation run evaluates it on
    its own evaluation sets), save it with its card in `<output_dir>/teacher`, and return it."""
    folder = os.path.join(training_args.output_dir, TEACHER_FOLDER)
    config = FineTuningConfig(
        output_dir=folder,
        max_steps=args.teacher_max_steps,
        per_device_train_batch_size=args.teacher_batch_size,
        learning_rate=args.teacher_learning_rate,
        warmup_steps=training_args.warmup_steps,
        weight_decay=training_args.weight_decay,
        remove_unused_columns=training_args.remove_unused_columns,
        logging_steps=training_args.logging_steps,
        bf16=training_args.bf16,
        use_cpu=training_args.use_cpu,
        seed=training_args.seed,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
    )
    trainer = FineTuningTrainer(model=model, args=config, **trainer_kwargs)
    trainer.train()
    trainer.save_model()
    trainer.save_state()  # trainer_state.json: the teacher's logs and training time
    if trainer.is_world_process_zero():
        with open(os.path.join(folder, TEACHER_FACTS), "w", encoding="utf-8") as handle:
            json.dump(facts, handle, indent=2)
    trainer.accelerator.wait_for_everyone()
    teacher = trainer.accelerator.unwrap_model(trainer.model)
    teacher.config._name_or_path = folder
    return teacher


def make_student(teacher, args: DistillationArguments, load_student, default_layers: int):
    """The student: `load_student(path)` when --student_model_name_or_path is given, else built from the teacher
    with --student_num_layers (default: `default_layers`)."""
    if args.student_model_name_or_path:
        return load_student(args.student_model_name_or_path)
    return build_student(teacher, num_layers=args.student_num_layers or default_layers)
