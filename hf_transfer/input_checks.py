"""Checks of the data a trainer is given, made before the first training step."""

import datasets
import pyarrow
import pyarrow.compute


def labels_outside(dataset, num_labels: int) -> list[int]:
    """The distinct integer labels of `dataset` (a `datasets.Dataset` with `label` or `labels`) that are not classes
    0..num_labels-1 (-100, the ignore index, is allowed); read from Arrow, without any transform."""
    if not isinstance(dataset, datasets.Dataset):
        return []
    column = "labels" if "labels" in dataset.column_names else "label" if "label" in dataset.column_names else None
    if column is None or not pyarrow.types.is_integer(dataset.features.arrow_schema.field(column).type):
        return []
    values = pyarrow.compute.unique(dataset.with_format("arrow")[column]).to_pylist()
    return sorted(v for v in values if v is not None and v != -100 and not 0 <= v < num_labels)


def check_label_ranges(num_labels: int | None, train_dataset, eval_dataset) -> None:
    """Every label of the training and evaluation sets is a class of the model (0..num_labels-1)."""
    if num_labels is None:
        return
    eval_sets = eval_dataset if isinstance(eval_dataset, dict) else {"": eval_dataset}
    named = [("train_dataset", train_dataset)]
    named += [(f"eval_dataset[{name!r}]" if name else "eval_dataset", data) for name, data in eval_sets.items()]
    for argument, dataset in named:
        outside = labels_outside(dataset, num_labels)
        if outside:
            raise ValueError(
                f"`{argument}` has label(s) {outside} outside the model's {num_labels} classes (0 to "
                f"{num_labels - 1}): load the model with `num_labels` (and `id2label`) for every class of the "
                "data, or encode the labels as 0..num_labels-1 (`dataset.class_encode_column('label')`)."
            )
