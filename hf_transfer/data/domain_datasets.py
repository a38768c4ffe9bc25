"""Load a domain's dataset from the bundled benchmarks, a local file or folder, or the Hugging Face Hub."""

import gzip
import os

import datasets

from .amazon_reviews import AMAZON_DOMAINS, load_amazon_reviews
from .digits import DIGIT_SPLITS, load_digits

_FILE_BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
}


def _is_empty_file(path: str) -> bool:
    """True when the file holds nothing but white space (gzip files are read through)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 16):
            if chunk.strip():
                return False
    return True


def load_domain_dataset(spec: str, split: str, argument: str = "dataset") -> datasets.Dataset:
    """One split of a dataset named by `spec`.

    - `"amazon:<domain>"`: the bundled Amazon reviews (`books`, `dvd`, `electronics`, `kitchen`), splits
      `train`, `validation`, `unlabeled`, `test`.
    - `"digits:usps"`, `"digits:mnist"`: the bundled digits (USPS `train`, `test`; MNIST `unlabeled`, `test`,
      `oracle_train` = the `unlabeled` images with their labels).
    - a local file (`.json`, `.jsonl`, `.csv`, `.tsv`, `.parquet`, `.txt`, optionally `.gz`): the whole file
      (`split` does not apply to a single file).
    - a local folder: `datasets.load_dataset(folder, split=split)` (a folder saved with `save_to_disk` is read
      with `load_from_disk`).
    - anything else: a Hub dataset id, `datasets.load_dataset(spec, split=split)`.

    `argument` names the command-line argument in error messages.
    """
    if spec.startswith("amazon:"):
        domain = spec.split(":", 1)[1]
        if domain not in AMAZON_DOMAINS:
            raise ValueError(
                f"`{argument}`={spec!r}: the bundled Amazon domains are {[f'amazon:{d}' for d in AMAZON_DOMAINS]}."
            )
        return load_amazon_reviews(domain, split)
    if spec.startswith("digits:"):
        name = spec.split(":", 1)[1]
        if name not in DIGIT_SPLITS:
            raise ValueError(f"`{argument}`={spec!r}: the bundled digits are {[f'digits:{d}' for d in DIGIT_SPLITS]}.")
        if split not in DIGIT_SPLITS[name]:
            raise ValueError(
                f"`{argument}`={spec!r} has the splits {list(DIGIT_SPLITS[name])}, not {split!r}: set the split "
                "argument to one of them."
            )
        return load_digits(name, split)
    if os.path.isfile(spec):
        name = spec[:-3] if spec.endswith(".gz") else spec
        extension = os.path.splitext(name)[1].lower()
        if extension not in _FILE_BUILDERS:
            raise ValueError(
                f"`{argument}`={spec!r} has an unsupported extension {extension!r}: "
                f"use one of {sorted(_FILE_BUILDERS)}."
            )
        if _is_empty_file(spec):
            raise ValueError(f"`{argument}`={spec!r} is empty: it needs at least one row.")
        return _load_file(spec, extension, argument)
    if os.path.isdir(spec):
        return _load_folder(spec, split, argument)
    name = spec[:-3] if spec.endswith(".gz") else spec
    looks_like_path = (
        spec.startswith((".", "/", "~")) or spec.count("/") > 1 or os.path.splitext(name)[1].lower() in _FILE_BUILDERS
    )
    if looks_like_path:
        raise FileNotFoundError(
            f"`{argument}`={spec!r} is neither an existing local file or folder nor a Hub dataset id."
        )
    try:
        return datasets.load_dataset(spec, split=split)
    except (ConnectionError, OSError) as error:  # datasets' ConnectionError (offline) is an OSError too
        from huggingface_hub import constants

        if not (constants.HF_HUB_OFFLINE or datasets.config.HF_DATASETS_OFFLINE or "Offline" in str(error)):
            raise
        raise ConnectionError(
            f"`{argument}`={spec!r} is not a local file or folder, so it would come from the Hugging Face Hub, but "
            "the Hub is offline here (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the dataset is not in the local "
            "cache. Download it where the Hub is reachable and save it (`dataset.save_to_disk(folder)`), then give "
            "that folder; or use a local file or a bundled dataset (amazon:<domain>, digits:usps, digits:mnist)."
        ) from error


def _load_file(spec: str, extension: str, argument: str) -> datasets.Dataset:
    """A local data file, or an error naming the file, what could not be read and how its rows must look."""
    kwargs = {"delimiter": "\t"} if extension == ".tsv" else {}
    builder = _FILE_BUILDERS[extension]
    shapes = {"json": "a JSON list of objects, or one JSON object per line (JSON lines)",
              "csv": "a header row, then rows with as many fields", "parquet": "a Parquet table",
              "text": "one text per line"}  # fmt: skip
    try:
        dataset = datasets.load_dataset(builder, data_files=spec, split="train", **kwargs)
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__ or error
        raise ValueError(
            f"`{argument}`={spec!r} could not be read as {builder.upper()}: {str(cause).strip()[:300]}. The file must "
            f"hold {shapes[builder]}."
        ) from None
    nested = [name for name, feature in dataset.features.items() if isinstance(feature, dict | list)]
    if builder == "json" and len(dataset) == 1 and nested and len(nested) == len(dataset.column_names):
        raise ValueError(
            f"`{argument}`={spec!r} holds one JSON object with the keys {dataset.column_names} instead of rows: write "
            'a list of rows ([{"text": ..., "label": ...}, ...]) or one object per line.'
        )
    return dataset


def _load_folder(spec: str, split: str, argument: str) -> datasets.Dataset:
    """A folder saved with `save_to_disk`, or one `datasets.load_dataset` reads (e.g. an image folder with one
    subfolder per split and one per class): the split and the classes checked."""
    saved = ("dataset_info.json", "dataset_dict.json")
    if any(os.path.isfile(os.path.join(spec, name)) for name in saved):
        loaded = datasets.load_from_disk(spec)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"`{argument}`={spec!r} has the splits {list(loaded)}, not {split!r}: choose one.")
            return loaded[split]
        return loaded
    try:
        dataset = datasets.load_dataset(spec, split=split)
    except ValueError as error:
        if "split" not in str(error).lower():
            raise
        splits = sorted(e.name for e in os.scandir(spec) if e.is_dir())
        raise ValueError(
            f"`{argument}`={spec!r} has no split {split!r} (its subfolders: {splits}): an image folder needs one "
            "subfolder per split (train/, test/, ...) holding one subfolder per class; or set the split argument."
        ) from None
    _check_class_folders(dataset, spec, split, argument)
    return dataset


def _check_class_folders(dataset: datasets.Dataset, spec: str, split: str, argument: str) -> None:
    """An image folder's split must hold one subfolder per class, at least two (with one, `datasets` gives no label
    column at all)."""
    images = any(isinstance(feature, datasets.Image) for feature in dataset.features.values())
    split_folder = os.path.join(spec, split)
    if not images or "label" in dataset.column_names or not os.path.isdir(split_folder):
        return
    classes = sorted(entry.name for entry in os.scandir(split_folder) if entry.is_dir())
    where = f"`{argument}`={spec!r}, split folder {split}/,"
    if len(classes) == 1:
        raise ValueError(
            f"{where} has one class folder ({classes[0]}/): a classifier needs a folder per class, two or more."
        )
    raise ValueError(f"{where} holds its images directly: put each class's images in a subfolder named by the class.")
