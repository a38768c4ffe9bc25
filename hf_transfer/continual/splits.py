"""Experiences made from one labeled dataset: groups of classes, one experience each (split MNIST and the like)."""

import datasets


def split_by_classes(dataset: datasets.Dataset, classes_per_experience: int, label_column: str = "label") -> dict:
    """{name: the rows of `classes_per_experience` consecutive classes}, in class order: 10 digit classes by 2 give
    the five experiences "0-1", "2-3", ... of split MNIST (Zenke et al. 2017; van de Ven et al. 2019). Labels keep
    their ids: one head of every class (the class- and task-incremental scenarios mask it)."""
    if label_column not in dataset.column_names:
        raise ValueError(f"The dataset has no label column {label_column!r} (columns: {dataset.column_names}).")
    labels = dataset.with_format("arrow")[label_column].to_pylist()
    classes = sorted(set(labels))
    if classes_per_experience < 1 or classes_per_experience >= len(classes):
        raise ValueError(
            f"`classes_per_experience` must be between 1 and {len(classes) - 1} (the data has {len(classes)} "
            f"classes), got {classes_per_experience}."
        )
    if len(classes) % classes_per_experience:
        raise ValueError(
            f"{len(classes)} classes do not split into groups of {classes_per_experience}: choose a divisor."
        )
    feature = dataset.features[label_column]
    names = feature.names if isinstance(feature, datasets.ClassLabel) else [str(c) for c in range(max(classes) + 1)]
    experiences = {}
    for start in range(0, len(classes), classes_per_experience):
        group = classes[start : start + classes_per_experience]
        rows = [i for i, label in enumerate(labels) if label in group]
        name = names[group[0]] if len(group) == 1 else f"{names[group[0]]}-{names[group[-1]]}"
        experiences[name] = dataset.select(rows)
    return experiences
