"""Dataset preparation for the recipes: load a split (bundled, local file or folder, Hub), check its columns, encode
its labels, tokenize text or transform images on the fly, and describe it for the model card."""

import logging
import os

import datasets
import pyarrow

from ..data import load_domain_dataset
from ..hub.model_card import describe_source

logger = logging.getLogger(__name__)


def load_split(spec: str, split: str | None, argument: str, max_rows: int | None = None, seed: int = 0):
    """`load_domain_dataset`, optionally cut to `max_rows` rows (`sample_rows`: seeded, class-stratified); `None`
    when `split` is 'none' or empty."""
    if split in (None, "", "none"):
        return None
    if max_rows is not None and max_rows < 1:
        raise ValueError(
            f"A row limit of {max_rows} for `{argument}` (`--max_train_samples` / `--max_eval_samples` / ...) keeps "
            "no row: give at least 1, or leave it unset for every row."
        )
    dataset = load_domain_dataset(spec, split, argument)
    if len(dataset) == 0:
        raise ValueError(f"`{argument}`={spec!r} (split {split!r}) has no rows: it needs at least one.")
    if max_rows is not None and max_rows < len(dataset):
        dataset = dataset.select(sample_rows(dataset, max_rows, seed))
    return dataset


def sample_rows(dataset: datasets.Dataset, rows: int, seed: int) -> list[int]:
    """`rows` row indices drawn with `seed`, class-stratified when there is a `label` column: each class keeps its
    share (largest remainders round), so a file stored sorted by label (the bundled Amazon splits are) still gives
    every class; in a seeded random order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if "label" not in dataset.column_names:
        return rng.permutation(len(dataset))[:rows].tolist()
    by_class: dict = {}
    for index, label in enumerate(dataset.with_format("arrow")["label"].to_pylist()):
        by_class.setdefault(str(label), []).append(index)
    shares = {c: rows * len(members) / len(dataset) for c, members in by_class.items()}
    take = {c: int(share) for c, share in shares.items()}
    for c in sorted(shares, key=lambda c: (take[c] - shares[c], c))[: rows - sum(take.values())]:
        take[c] += 1
    chosen = [i for c in sorted(by_class) for i in rng.permutation(by_class[c])[: take[c]].tolist()]
    return rng.permutation(chosen).tolist()


def source_specs(value) -> list[str]:
    """The source datasets of a recipe: `--source_dataset` takes one or several (a config file may give a string)."""
    specs = [value] if isinstance(value, str) else list(value or [])
    if not specs:
        raise ValueError("`source_dataset` is empty: give at least one labeled source dataset.")
    if len(set(specs)) != len(specs):
        raise ValueError(f"`source_dataset` names a dataset twice: {specs}.")
    return specs


def load_sources(specs, split: str | None, max_rows: int | None, seed: int, label_column: str, mixing: str,
                 argument: str = "source_dataset"):  # fmt: skip
    """One split of every source dataset (`max_rows` each), as one dataset: the rows of all sources
    (`source_mixing="proportional"`: each source in proportion to its rows) or each source drawn with replacement up
    to the size of the largest (`"equal"`: every source equally likely per row). Labels are encoded as ids of the
    first source's label names, so sources with `ClassLabel`, string or integer labels combine; the columns every
    source has are kept. `None` for 'none'."""
    specs = source_specs(specs)
    parts = [load_split(spec, split, argument, max_rows, seed) for spec in specs]
    if len(parts) == 1 or parts[0] is None:
        return parts[0]
    names = label_names_of(parts[0], label_column)
    keep = [c for c in parts[0].column_names if all(c in part.column_names for part in parts)]  # shared columns
    encoded = []
    for part in parts:
        check_columns(part, argument, [label_column], "every source needs the label column (--label_column).")
        part = encode_labels(part.select_columns(keep), argument, label_column, names)
        encoded.append(part.cast_column("label", datasets.ClassLabel(names=names)))
    if mixing == "equal":
        largest = max(len(part) for part in encoded)
        encoded = [_resample(part, largest, seed + i) for i, part in enumerate(encoded)]
    return datasets.concatenate_datasets(encoded)


def _sources(data_args, split: str | None, max_rows: int | None, seed: int):
    return load_sources(
        data_args.source_dataset, split, max_rows, seed, data_args.label_column, data_args.source_mixing
    )


def _resample(dataset: datasets.Dataset, rows: int, seed: int) -> datasets.Dataset:
    """`rows` rows: every row once, then a seeded draw with replacement for the rest."""
    import numpy as np

    extra = np.random.default_rng(seed).integers(0, len(dataset), rows - len(dataset)).tolist()
    return dataset.select(list(range(len(dataset))) + extra)


def describe_sources(value, split: str | None) -> str:
    """What the card says of the source data: each source, joined."""
    return "; ".join(describe_dataset(spec, split) for spec in source_specs(value))


def check_target_not_a_source(data_args) -> None:
    target = getattr(data_args, "target_dataset", None)
    if target and target in source_specs(data_args.source_dataset):
        raise ValueError(f"`target_dataset` {target!r} is also a source: remove it from `source_dataset`.")


def load_text_domain_sets(data_args, seed: int) -> dict:
    """{name: (dataset or None, argument)} of a `TextDomainDataArguments`: the source train and validation splits
    (of every source, `load_sources`), the unlabeled target rows and the labeled target test set (`None` where
    'none' or not given)."""
    check_target_not_a_source(data_args)
    target_spec = data_args.target_dataset
    if target_spec in ("", "none"):
        target_spec = None
    test_spec = data_args.target_test_dataset or target_spec
    max_train, max_eval = data_args.max_train_samples, data_args.max_eval_samples
    validation = target = test = None
    if not any(os.path.isfile(spec) for spec in source_specs(data_args.source_dataset)):  # files have no validation
        validation = _sources(data_args, data_args.source_validation_split, max_eval, seed)
    if target_spec is not None:
        target = load_split(target_spec, data_args.target_train_split, "target_dataset")
    if test_spec not in (None, "", "none"):
        test = load_split(test_spec, data_args.target_test_split, "target_test_dataset", max_eval, seed)
    train = _sources(data_args, data_args.source_train_split, max_train, seed)
    return {
        "source": (train, "source_dataset"),
        "source_validation": (validation, "source_dataset"),
        "target": (target, "target_dataset"),
        "target_test": (test, "target_test_dataset"),
    }


def load_image_domain_sets(data_args, seed: int) -> dict:
    """{name: (dataset or None, argument)} of an `ImageDomainDataArguments`: the source train and test splits, the
    unlabeled target images and the labeled target test images (never the ones trained on; `None` where 'none')."""
    target = None if data_args.target_dataset in (None, "", "none") else data_args.target_dataset
    test_spec = data_args.target_test_dataset or target
    if target is not None and test_spec == target and data_args.target_test_split == data_args.target_train_split:
        raise ValueError(
            f"`target_test_split` and `target_train_split` are both {data_args.target_train_split!r}: the target "
            "test images must not be the ones trained on. Choose another split."
        )
    check_target_not_a_source(data_args)
    max_eval = data_args.max_eval_samples
    unlabeled = test = None
    if target is not None:
        unlabeled = load_split(
            target, data_args.target_train_split, "target_dataset", data_args.max_target_samples, seed
        )
    if test_spec not in (None, "", "none"):
        test = load_split(test_spec, data_args.target_test_split, "target_test_dataset", max_eval, seed)
    train = _sources(data_args, data_args.source_train_split, data_args.max_train_samples, seed)
    return {
        "source": (train, "source_dataset"),
        "source_test": (_sources(data_args, data_args.source_test_split, max_eval, seed), "source_dataset"),
        "target": (unlabeled, "target_dataset"),
        "target_test": (test, "target_test_dataset"),
    }


def check_columns(dataset: datasets.Dataset, argument: str, columns: list[str], fix: str) -> None:
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise ValueError(f"`{argument}` has no column(s) {missing} (it has {dataset.column_names}): {fix}")


def label_names_of(dataset: datasets.Dataset, column: str, argument: str = "dataset") -> list[str]:
    """The class names of a label column: its `ClassLabel` names, else its sorted distinct values as strings; at
    least two classes, and no missing label (the file, row and column named)."""
    feature = dataset.features[column]
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
    else:
        values = dataset.with_format("arrow")[column].to_pylist()
        missing = next((row for row, value in enumerate(values) if value is None), None)
        if missing is not None:
            raise ValueError(
                f"`{argument}` row {missing} has no value in its label column {column!r}: give every training row a "
                "label (or drop the unlabeled rows)."
            )
        names = [str(value) for value in sorted(set(values))]
    if len(names) < 2:
        raise ValueError(
            f"`{argument}` has one class only ({names}) in its label column {column!r}: a classifier needs rows of "
            "at least two classes. Check the file (or the split / filter that dropped the others)."
        )
    return names


def encode_labels(dataset: datasets.Dataset, argument: str, column: str, label_names: list[str]) -> datasets.Dataset:
    """Labels as ids of `label_names`, in a `ClassLabel` column named `label` (what the Trainer's collators read).

    Names are matched as strings; integer labels that are no label name but lie in 0..len(label_names)-1 are read as
    class ids (said in the log). Missing labels, and labels that are neither, are refused with the row named."""
    if isinstance(dataset.features[column], datasets.ClassLabel):
        names = dataset.features[column].names
        if names != label_names:
            raise ValueError(
                f"`{argument}` has label names {names} but the training data has {label_names}: both must use the "
                "same labels in the same order."
            )
    else:
        label2id = _label_ids(dataset.with_format("arrow")[column].to_pylist(), argument, column, label_names)
        features = dataset.features.copy()
        features[column] = datasets.ClassLabel(names=label_names)
        dataset = dataset.map(lambda row: {column: label2id[row[column]]}, features=features)
    if column != "label":
        dataset = dataset.remove_columns([c for c in ("label",) if c in dataset.column_names])
        dataset = dataset.rename_column(column, "label")
    return dataset


def _label_ids(values: list, argument: str, column: str, label_names: list[str]) -> dict:
    """{value: class id} for every distinct label value (see `encode_labels`)."""
    missing = next((row for row, value in enumerate(values) if value is None), None)
    if missing is not None:
        raise ValueError(f"`{argument}` row {missing} has no value in its label column {column!r}: give it a label.")
    by_name = {name: i for i, name in enumerate(label_names)}
    distinct = set(values)
    if all(str(v) in by_name for v in distinct):
        return {v: by_name[str(v)] for v in distinct}
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in distinct)
    if integers and all(0 <= v < len(label_names) for v in distinct):
        mapping = ", ".join(f"{i} = {name!r}" for i, name in enumerate(label_names))
        logger.info(f"`{argument}`: its integer labels are read as class ids ({mapping}).")
        return {v: v for v in distinct}
    outside = [v for v in distinct if not (0 <= v < len(label_names))] if integers else distinct
    unknown = sorted(str(v) for v in outside if str(v) not in by_name)
    row = next(i for i, v in enumerate(values) if str(v) in unknown)
    raise ValueError(
        f"`{argument}` has labels {unknown} (first at row {row}) that the training data does not have ({label_names}): "
        "use the same label names in every set, or integer class ids 0.."
        f"{len(label_names) - 1} (float or boolean labels: convert them to those ids or names)."
    )


def dataset_name(spec: str) -> str:
    """A short name for a dataset: the domain of 'amazon:<domain>' / 'digits:<name>', else the last part of the path
    or Hub id (an experience's name, a candidate source's)."""
    return spec.split(":", 1)[1] if ":" in spec else os.path.basename(os.path.normpath(spec))


def describe_dataset(spec: str, split: str | None) -> str:
    """What the model card says of a dataset: never an absolute local path."""
    if spec.startswith("amazon:"):
        return f"Amazon reviews, {spec.split(':', 1)[1]} (Blitzer et al. 2007, bundled), split {split}"
    if spec.startswith("digits:"):
        name = spec.split(":", 1)[1]
        source = "USPS (Hull 1994" if name == "usps" else "MNIST (LeCun et al. 1998"
        return f"{source}, bundled), split {split}"
    if os.path.exists(spec):
        return describe_source(spec)
    return spec if split in (None, "", "train") else f"{spec}, split {split}"


def image_transform(image_processor, image_column: str):
    """A `set_transform` function: images (any mode; grayscale becomes 3 channels) → `pixel_values`.

    The label column, if present, passes through; every other column is dropped from the formatted rows.
    """

    def transform(batch: dict) -> dict:
        images = [image.convert("RGB") for image in batch[image_column]]
        out = {"pixel_values": image_processor(images, return_tensors="pt")["pixel_values"]}
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    return transform


def prepare_image_dataset(
    dataset: datasets.Dataset,
    argument: str,
    transform,
    image_column: str,
    label_column: str | None,
    label_names: list[str],
) -> datasets.Dataset:
    """Labels encoded (`label_column=None`: an unlabeled set, any label column dropped), other columns dropped,
    and `transform` set to make `pixel_values` on the fly."""
    if label_column is not None:
        dataset = encode_labels(dataset, argument, label_column, label_names)
    check_images(dataset, argument, image_column)
    keep = (image_column, "label") if label_column is not None else (image_column,)
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in keep])
    dataset.set_transform(transform)
    return dataset


def check_images(dataset: datasets.Dataset, argument: str, column: str) -> None:
    """Every image of `column` decodes (a corrupt, truncated or non-image file would fail a step, or an evaluation
    after training): the first that does not is named by row and file."""
    import io

    from PIL import Image, UnidentifiedImageError

    if not isinstance(dataset.features.get(column), datasets.Image):
        return
    raw = dataset.cast_column(column, datasets.Image(decode=False))
    for start in range(0, len(raw), 512):
        for offset, item in enumerate(raw[start : start + 512][column]):
            source = item.get("path") if item.get("bytes") is None else io.BytesIO(item["bytes"])
            try:
                with Image.open(source) as image:
                    image.load()
            except (OSError, UnidentifiedImageError, ValueError) as error:
                name = os.path.basename(item.get("path") or "") or "an image stored in the data"
                raise ValueError(
                    f"`{argument}` row {start + offset} ({name}) is not a readable image ({error}): remove or replace "
                    "the file."
                ) from None


def text_tokenizer_function(tokenizer, text_column: str, text_pair_column: str | None, max_length: int):
    """A batched `map` function: text (and optional pair) columns → token ids, truncated to `max_length`; missing
    or non-text values are refused with the row named."""
    if max_length is None or max_length < 1:
        raise ValueError(f"`max_length`={max_length} keeps no token: give the tokens per example to keep, e.g. 128.")
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit < 100_000 and max_length > limit:
        raise ValueError(
            f"`max_length`={max_length} is more than the {limit} tokens the model takes (its tokenizer's "
            f"`model_max_length`): give `--max_length` {limit} or less."
        )

    def tokenize(batch):
        pair = batch[text_pair_column] if text_pair_column else None
        return tokenizer(batch[text_column], pair, truncation=True, max_length=max_length)

    return tokenize


def check_image_training_args(training_args) -> None:
    if training_args.remove_unused_columns:
        raise ValueError(
            "`remove_unused_columns=True` would drop the image column before it becomes pixel_values: "
            "leave it False in the image recipes."
        )


# ---- the sets of a recipe at once: {name: (dataset or None, argument)} ----------------------------------------


def check_text_columns(sets: dict, data_args, unlabeled: tuple[str, ...] = ()) -> None:
    """Every set has the text (and pair) column, holding text in every row, and the label column unless its name is
    in `unlabeled`."""
    text = [data_args.text_column] + ([data_args.text_pair_column] if data_args.text_pair_column else [])
    fix = "set --text_column / --text_pair_column / --label_column to its column names."
    for name, (dataset, argument) in sets.items():
        if dataset is not None:
            check_columns(dataset, argument, text + ([] if name in unlabeled else [data_args.label_column]), fix)
            for column in text:
                check_text_values(dataset, argument, column)


def check_text_values(dataset: datasets.Dataset, argument: str, column: str) -> None:
    """A text column holds a string in every row (read from Arrow): name the first row that does not."""
    values = dataset.with_format("arrow")[column]
    if not (pyarrow.types.is_string(values.type) or pyarrow.types.is_large_string(values.type)):
        if pyarrow.types.is_null(values.type):
            raise ValueError(f"`{argument}` column {column!r} is empty in every row: give the text to classify.")
        raise ValueError(
            f"`{argument}` column {column!r} holds {values.type} values, not text: choose the text column with "
            "--text_column (or convert the values to strings)."
        )
    if values.null_count:
        row = values.is_null().to_pylist().index(True)
        raise ValueError(
            f"`{argument}` row {row} has no text in column {column!r}: fill it in or drop the row (an empty string "
            "is allowed)."
        )


def prepare_text_sets(sets: dict, tokenizer, data_args, label_names: list[str], training_args, unlabeled=()) -> dict:
    """{name: tokenized dataset or None}: labels encoded as ids of `label_names` (not for the names in `unlabeled`),
    text tokenized to `data_args.max_length`; done by the main process first, the others reuse its cache."""
    tokenize = text_tokenizer_function(
        tokenizer, data_args.text_column, data_args.text_pair_column, data_args.max_length
    )
    prepared = {}
    with training_args.main_process_first(desc="tokenization"):
        for name, (dataset, argument) in sets.items():
            if dataset is not None and name not in unlabeled:
                dataset = encode_labels(dataset, argument, data_args.label_column, label_names)
            prepared[name] = None if dataset is None else dataset.map(tokenize, batched=True)
    return prepared


def check_image_columns(sets: dict, data_args, unlabeled: tuple[str, ...] = ()) -> None:
    """Every set has the image column, and the label column unless its name is in `unlabeled`."""
    fix = "set --image_column / --label_column to its column names."
    for name, (dataset, argument) in sets.items():
        if dataset is not None:
            labeled = [] if name in unlabeled else [data_args.label_column]
            check_columns(dataset, argument, [data_args.image_column] + labeled, fix)


def prepare_image_sets(sets: dict, image_processor, data_args, label_names: list[str], training_args, unlabeled=()):
    """{name: dataset or None} with labels encoded (the names in `unlabeled`: any label column dropped, never read)
    and `pixel_values` made on the fly by the image processor."""
    transform = image_transform(image_processor, data_args.image_column)
    prepared = {}
    with training_args.main_process_first(desc="label encoding"):
        for name, (dataset, argument) in sets.items():
            label_column = None if name in unlabeled else data_args.label_column
            if dataset is not None:
                dataset = prepare_image_dataset(
                    dataset, argument, transform, data_args.image_column, label_column, label_names
                )
            prepared[name] = dataset
    return prepared


def fine_tuning_card_info(base_model: str | None, data_args) -> dict:
    """What a fine-tuning recipe's card says of its model and data (`trainer.set_model_card_info`)."""
    return dict(
        base_model=base_model,
        source_dataset=describe_sources(data_args.dataset, data_args.train_split),
        eval_datasets={
            "validation": describe_sources(data_args.dataset, data_args.validation_split),
            "test": describe_dataset(data_args.test_dataset or "", data_args.test_split),
        },
    )


def domain_card_info(base_model: str | None, data_args, source_eval: str, source_eval_split: str | None) -> dict:
    """What a recipe trained on two domains says of its model and data in its card (`trainer.set_model_card_info`);
    a target (or target test) set given as 'none' is left out."""
    target = None if data_args.target_dataset in (None, "", "none") else data_args.target_dataset
    test_spec = data_args.target_test_dataset or target
    eval_datasets = {source_eval: describe_sources(data_args.source_dataset, source_eval_split)}
    if test_spec not in (None, "", "none"):
        eval_datasets["target_test"] = describe_dataset(test_spec, data_args.target_test_split)
    return dict(
        base_model=base_model,
        source_dataset=describe_sources(data_args.source_dataset, data_args.source_train_split),
        target_dataset=None if target is None else describe_dataset(target, data_args.target_train_split),
        eval_datasets=eval_datasets,
    )
