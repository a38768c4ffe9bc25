"""What the meta-learning recipe adds: its data (several labeled source domains as tasks, the target's K shots) and
the meta-test (K-shot fine-tuning of the meta-trained model on the target, evaluated before and after)."""

from dataclasses import dataclass, field

import datasets

from ..few_shot.sampling import sample_per_class
from .preprocessing import describe_dataset, encode_labels, label_names_of, load_split

TASK_COLUMN = "domain"


@dataclass
class MetaDataArguments:
    source_datasets: list[str] = field(
        default_factory=lambda: ["amazon:books", "amazon:dvd", "amazon:electronics"],
        metadata={"help": "Labeled meta-training data, one task per dataset: 'amazon:<domain>', files, Hub ids."},
    )
    source_split: str = field(default="train", metadata={"help": "Split of each source dataset."})
    target_dataset: str = field(default="amazon:kitchen", metadata={"help": "The new domain (meta-test)."})
    target_train_split: str = field(default="train", metadata={"help": "Split the K target shots are drawn from."})
    target_test_split: str = field(default="test", metadata={"help": "Labeled split of the target to test on."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    label_column: str = field(default="label", metadata={"help": "Column with the label."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer ones are truncated)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many target test rows."})


@dataclass
class MetaTestArguments:
    k_shot: int = field(default=16, metadata={"help": "Target rows per class for the meta-test fine-tuning."})
    meta_test_steps: int = field(
        default=100, metadata={"help": "Fine-tuning steps on the K shots (0: evaluate the meta-trained model only)."}
    )
    meta_test_learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of those steps."})
    meta_test_batch_size: int = field(default=16, metadata={"help": "Batch size of those steps."})

    def check(self) -> None:
        if self.k_shot < 1 or self.meta_test_steps < 0 or self.meta_test_batch_size < 1:
            raise ValueError(
                "`k_shot` and `meta_test_batch_size` must be >= 1 and `meta_test_steps` >= 0, got "
                f"{self.k_shot}, {self.meta_test_batch_size}, {self.meta_test_steps}."
            )


def load_meta_sets(data_args: MetaDataArguments, k_shot: int, seed: int):
    """(label names, meta-training rows with a `domain` column, target K shots, target test rows)."""
    if not data_args.source_datasets:
        raise ValueError("`source_datasets` is empty: give the labeled datasets to meta-train on (one task each).")
    if data_args.target_dataset in data_args.source_datasets:
        raise ValueError(
            f"`target_dataset` {data_args.target_dataset!r} is also a source: the new domain must not be meta-trained "
            "on. Remove it from `source_datasets`."
        )
    sources = [load_split(spec, data_args.source_split, "source_datasets") for spec in data_args.source_datasets]
    label_names = label_names_of(sources[0], data_args.label_column)
    parts = []
    for spec, data in zip(data_args.source_datasets, sources):
        data = encode_labels(data, "source_datasets", data_args.label_column, label_names)
        data = data.select_columns([data_args.text_column, "label"]).cast_column("label", datasets.Value("int64"))
        parts.append(data.add_column(TASK_COLUMN, [spec] * len(data)))
    train = encode_labels(load_split(data_args.target_dataset, data_args.target_train_split, "target_dataset"),
                          "target_dataset", data_args.label_column, label_names)  # fmt: skip
    shots = sample_per_class(train, k_shot, seed, "label", "target_dataset")
    test = load_split(data_args.target_dataset, data_args.target_test_split, "target_dataset",
                      data_args.max_eval_samples, seed)  # fmt: skip
    test = encode_labels(test, "target_dataset", data_args.label_column, label_names)
    return label_names, datasets.concatenate_datasets(parts), shots, test


def meta_card_info(base_model: str, data_args: MetaDataArguments) -> dict:
    sources = ", ".join(describe_dataset(spec, data_args.source_split) for spec in data_args.source_datasets)
    return dict(
        base_model=base_model,
        source_dataset=f"one task per dataset: {sources}",
        eval_datasets={"target_test": describe_dataset(data_args.target_dataset, data_args.target_test_split)},
    )
