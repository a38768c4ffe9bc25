"""Checks of the data a trainer is given, made before the first training step."""

import inspect
import logging

import datasets
import pyarrow
import pyarrow.compute

logger = logging.getLogger(__name__)


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


def _label_column(dataset) -> str | None:
    if not isinstance(dataset, datasets.Dataset):
        return None
    column = "labels" if "labels" in dataset.column_names else "label" if "label" in dataset.column_names else None
    if column is None or not pyarrow.types.is_integer(dataset.features.arrow_schema.field(column).type):
        return None
    return column


def check_classes(num_labels: int | None, train_dataset, argument: str = "train_dataset") -> None:
    """A classifier needs rows of at least two classes; a model with more classes than the data has is said (the
    extra outputs are only ever pushed down)."""
    column = _label_column(train_dataset)
    if column is None or not num_labels:
        return
    values = pyarrow.compute.unique(train_dataset.with_format("arrow")[column]).to_pylist()
    classes = sorted(v for v in values if v is not None and v != -100)
    if len(classes) == 1:
        raise ValueError(
            f"`{argument}` has rows of one class only (label {classes[0]}): a classifier learns nothing from it. Give "
            "rows of at least two classes (check the file, or a filter that dropped the others)."
        )
    if 1 < len(classes) < num_labels:
        logger.warning(
            f"The model has {num_labels} classes but `{argument}` has rows of {len(classes)} ({classes}): the other "
            f"{num_labels - len(classes)} outputs are only trained to be unlikely. Load the model with "
            f"`num_labels={len(classes)}` if the data has no other class."
        )


def check_token_ids(model, dataset, argument: str) -> None:
    """Token ids inside the model's vocabulary and sequences no longer than its position embeddings, read from the
    `input_ids` column (Arrow, no transform), before the first step rather than as an index error at step 1."""
    if not isinstance(dataset, datasets.Dataset) or "input_ids" not in dataset.column_names:
        return
    column = dataset.with_format("arrow")["input_ids"]
    if not pyarrow.types.is_list(column.type) and not pyarrow.types.is_large_list(column.type):
        return
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    vocabulary = getattr(embeddings, "num_embeddings", None)
    largest = pyarrow.compute.max(pyarrow.compute.list_flatten(column)).as_py()
    if vocabulary is not None and largest is not None and largest >= vocabulary:
        raise ValueError(
            f"`{argument}` has token id {largest}, but the model's vocabulary has {vocabulary} tokens: the data was "
            "tokenized with another tokenizer. Tokenize it with the model's own tokenizer (`--tokenizer_name` only "
            "for a tokenizer of the same vocabulary)."
        )
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    longest = pyarrow.compute.max(pyarrow.compute.list_value_length(column)).as_py()
    if positions is not None and longest is not None and longest > positions:
        raise ValueError(
            f"`{argument}` has rows of {longest} tokens, more than the model's {positions} positions: truncate them "
            f"(`--max_length` at most {positions}, or `truncation=True, max_length=...` when tokenizing)."
        )


MODEL_INPUTS = ("input_ids", "inputs_embeds", "pixel_values", "input_values", "input_features")


def check_model_inputs(model, dataset, argument: str) -> None:
    """A dataset that holds none of the model's inputs (text not tokenized, images not transformed) is refused
    before the collator fails on it at step 1."""
    if not isinstance(dataset, datasets.Dataset) or dataset.format.get("type") == "custom":
        return  # a `set_transform` dataset makes its inputs when read
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inputs = [name for name in MODEL_INPUTS if name in inspect.signature(base.forward).parameters]
    if inputs and not set(inputs) & set(dataset.column_names):
        raise ValueError(
            f"`{argument}` has the columns {dataset.column_names} but none of the model's inputs {inputs}: it is not "
            "prepared. Tokenize text (`dataset.map(lambda rows: tokenizer(rows['text'], truncation=True), "
            "batched=True)`) or make images into pixel_values (`dataset.set_transform(...)` with the image processor)."
        )
