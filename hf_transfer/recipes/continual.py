"""What the continual-learning recipes add: their data (one experience per dataset for text domains, groups of
classes of one dataset for split digits) and the run (the `ContinualTrainer`, its report and card)."""

import copy
import os
from dataclasses import dataclass, field

from ..continual import ContinualTrainer, split_by_classes
from ..metrics import compute_classification_metrics
from .preprocessing import dataset_name, describe_dataset, encode_labels, label_names_of, load_split
from .run import finish_run


@dataclass
class TextExperienceArguments:
    experiences: list[str] = field(
        default_factory=lambda: ["amazon:books", "amazon:dvd", "amazon:electronics", "amazon:kitchen"],
        metadata={"help": "Labeled datasets, one experience each, in the order of training: 'amazon:<domain>', local "
                  "files or folders, Hub ids."},
    )  # fmt: skip
    train_split: str = field(default="train", metadata={"help": "Split of each dataset to train on."})
    eval_split: str = field(default="test", metadata={"help": "Labeled split of each dataset to evaluate on."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    label_column: str = field(default="label", metadata={"help": "Column with the label."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer ones are truncated)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many rows per experience."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only this many evaluation rows per experience."}
    )


@dataclass
class ImageExperienceArguments:
    dataset: str = field(
        default="digits:mnist",
        metadata={
            "help": "Labeled images split into experiences by class: 'digits:mnist' (bundled), a folder, a Hub id."
        },
    )
    train_split: str = field(default="oracle_train", metadata={"help": "Split to train on (bundled MNIST: 5000 rows)."})
    eval_split: str = field(default="test", metadata={"help": "Labeled split to evaluate on (bundled MNIST: 5000)."})
    classes_per_experience: int = field(
        default=2, metadata={"help": "Classes per experience, consecutive in class order (2: split MNIST)."}
    )
    image_column: str = field(default="image", metadata={"help": "Column with the images."})
    label_column: str = field(default="label", metadata={"help": "Column with the labels."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many evaluation rows."})


def load_text_experiences(data_args: TextExperienceArguments, seed: int):
    """(label names, {name: train split}, {name: eval split}), labels encoded as ids of the first dataset's."""
    names = [dataset_name(spec) for spec in data_args.experiences]
    if len(data_args.experiences) < 2:
        raise ValueError(f"`experiences` needs at least 2 datasets to learn in sequence, got {data_args.experiences}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`experiences` {data_args.experiences} name the same experience twice ({names}).")
    train, evaluation = {}, {}
    for name, spec in zip(names, data_args.experiences):
        train[name] = load_split(spec, data_args.train_split, "experiences", data_args.max_train_samples, seed)
        evaluation[name] = load_split(spec, data_args.eval_split, "experiences", data_args.max_eval_samples, seed)
    for name, data in [*train.items(), *evaluation.items()]:
        missing = [c for c in (data_args.text_column, data_args.label_column) if c not in data.column_names]
        if missing:
            raise ValueError(
                f"`experiences` dataset {name!r} has no column(s) {missing} (it has {data.column_names}): set "
                "--text_column / --label_column."
            )
    label_names = label_names_of(next(iter(train.values())), data_args.label_column)
    encode = lambda data: encode_labels(data, "experiences", data_args.label_column, label_names)  # noqa: E731
    return label_names, {n: encode(d) for n, d in train.items()}, {n: encode(d) for n, d in evaluation.items()}


def load_image_experiences(data_args: ImageExperienceArguments, seed: int):
    """(label names, {name: train rows}, {name: eval rows}) of the classes split into experiences."""
    train = load_split(data_args.dataset, data_args.train_split, "dataset", data_args.max_train_samples, seed)
    evaluation = load_split(data_args.dataset, data_args.eval_split, "dataset", data_args.max_eval_samples, seed)
    for data in (train, evaluation):
        missing = [c for c in (data_args.image_column, data_args.label_column) if c not in data.column_names]
        if missing:
            raise ValueError(
                f"`dataset` has no column(s) {missing} (it has {data.column_names}): set --image_column / "
                "--label_column."
            )
    label_names = label_names_of(train, data_args.label_column)
    train = encode_labels(train, "dataset", data_args.label_column, label_names)
    evaluation = encode_labels(evaluation, "dataset", data_args.label_column, label_names)
    train_sets = split_by_classes(train, data_args.classes_per_experience)
    eval_sets = split_by_classes(evaluation, data_args.classes_per_experience)
    if list(eval_sets) != list(train_sets):
        raise ValueError(
            f"The `{data_args.eval_split}` split has the class groups {list(eval_sets)} but the training split "
            f"{list(train_sets)}: both need rows of every class."
        )
    return label_names, train_sets, eval_sets


def continual_card_info(base_model: str | None, specs: dict[str, str], split: str, eval_split: str) -> dict:
    """What a continual recipe's card says of its model and data: every experience, in order."""
    order = "; ".join(f"{name}: {describe_dataset(spec, split)}" for name, spec in specs.items())
    return dict(
        base_model=base_model,
        source_dataset=f"in order: {order}",
        eval_datasets={name: describe_dataset(spec, eval_split) for name, spec in specs.items()},
    )


def train_continual(training_args, *, model, processing_class, data_collator, train_sets, eval_sets, card_info):
    """Train the experiences in order, then end the run (`finish_run`): the matrix, its metrics and the card.

    With adapters on a model built from a config (no pretrained weights to reload), its untrained weights are saved
    beside the adapters in `base_model/`, so the adapters can be loaded again (the card says how)."""
    untrained_base = None
    if "adapters" in training_args.continual_method and not getattr(model, "name_or_path", ""):
        untrained_base = copy.deepcopy(model)
    trainer = ContinualTrainer(model=model, args=training_args, train_dataset=train_sets, eval_dataset=eval_sets,
                               processing_class=processing_class, data_collator=data_collator,
                               compute_metrics=compute_classification_metrics)  # fmt: skip
    trainer.set_model_card_info(**card_info)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if untrained_base is not None and trainer.args.should_save:
        untrained_base.save_pretrained(os.path.join(training_args.output_dir, "base_model"))
        processing_class.save_pretrained(os.path.join(training_args.output_dir, "base_model"))
    report = trainer.continual_report()
    values = [f"{key.replace('_', ' ')} {100 * v:.2f}" for key, v in report["metrics"].items() if v is not None]
    text = f"{report['table']}\n{', '.join(training_args.continual_method)} ({training_args.scenario}-incremental): "
    text += ", ".join(values)
    return finish_run(trainer, train_result, report=text.replace("{", "{{").replace("}", "}}"))
