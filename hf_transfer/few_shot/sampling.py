"""K labeled rows per class: the few-shot training sets (and, for meta-learning, support and query sets)."""

import zlib

import numpy as np


def sample_per_class(dataset, k: int, seed: int, label_column: str = "label", argument: str = "dataset"):
    """`k` rows of each class of `dataset` (a `datasets.Dataset`), drawn at random by `seed`, in class order then
    draw order. The draw of a class depends only on the seed and that class's rows, so K = 8 and K = 16 with the
    same seed share their first 8 rows per class."""
    if k < 1:
        raise ValueError(f"K (rows per class) must be >= 1, got {k}.")
    if label_column not in dataset.column_names:
        raise ValueError(f"`{argument}` has no label column {label_column!r} (columns: {dataset.column_names}).")
    labels = np.asarray(dataset[label_column])
    chosen = []
    for label in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == label)
        if len(rows) < k:
            raise ValueError(
                f"`{argument}` has {len(rows)} row(s) of class {label}, fewer than K = {k}: lower K or add rows."
            )
        order = np.random.default_rng([seed, zlib.crc32(str(label).encode())]).permutation(rows)
        chosen += order[:k].tolist()
    return dataset.select(chosen)
