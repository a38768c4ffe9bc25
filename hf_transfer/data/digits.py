"""USPS and MNIST digits, bundled with hf_transfer (provenance and splits: `hf_transfer/data/digits/README.md`)."""

from pathlib import Path

import datasets
import numpy as np

DIGIT_SPLITS = {"usps": ("train", "test"), "mnist": ("unlabeled", "test", "oracle_train")}
MNIST_UNLABELED_ROWS = 5000

_DATA_DIR = Path(__file__).resolve().parent / "digits"


def load_digits(name: str, split: str) -> datasets.Dataset:
    """One split of the bundled digits as a `datasets.Dataset` with `image` (grayscale PIL) and `label` columns.

    Args:
        name: `"usps"` (16×16) or `"mnist"` (28×28).
        split: for USPS `"train"` (7291) or `"test"` (2007); for MNIST `"unlabeled"` (the first 5000 MNIST test
            images, without the `label` column), `"test"` (the last 5000) or `"oracle_train"` (the same 5000 images
            as `"unlabeled"`, with their labels: to train an oracle, the upper bound of adaptation, on target labels).
    """
    if name not in DIGIT_SPLITS:
        raise ValueError(f"`name` must be one of {list(DIGIT_SPLITS)}, got {name!r}.")
    if split not in DIGIT_SPLITS[name]:
        raise ValueError(f"`split` for {name!r} must be one of {list(DIGIT_SPLITS[name])}, got {split!r}.")
    arrays = np.load(_DATA_DIR / f"{name}_{'test' if name == 'mnist' else split}.npz")
    images, labels = arrays["x"], arrays["y"]
    if name == "mnist":
        rows = slice(MNIST_UNLABELED_ROWS, None) if split == "test" else slice(0, MNIST_UNLABELED_ROWS)
        images, labels = images[rows], labels[rows]
    columns = {"image": list(images)}
    features = {"image": datasets.Image()}
    if split != "unlabeled":
        columns["label"] = labels.tolist()
        features["label"] = datasets.ClassLabel(names=[str(d) for d in range(10)])
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features), split=datasets.NamedSplit(split))
