"""A linear probe: logistic regression (scikit-learn) on the frozen features a classifier's head would see.

The cheapest transfer baseline: one forward pass, no gradient step through the backbone. It tells how much a
pretrained representation already separates the classes, before any fine-tuning or adaptation.
"""

import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..features import extract_features
from ..metrics import load_metric


def linear_probe(
    model: nn.Module,
    train_dataset: datasets.Dataset,
    eval_datasets: dict[str, datasets.Dataset],
    data_collator=None,
    batch_size: int = 64,
    regularization: float = 1.0,
    max_iter: int = 2000,
    classifier_module: str | None = None,
    features: str = "head_input",
) -> dict[str, float]:
    """Fit a logistic regression on `train_dataset`'s features; return `<name>_accuracy` / `<name>_macro_f1`.

    Features are standardised (mean 0, variance 1 on the training rows); `regularization` is scikit-learn's `C`
    (inverse L2 strength); `features` as in `extract_features`. Every dataset needs a `label` (or `labels`) column.
    """
    train_features, train_labels = extract_features(
        model, train_dataset, data_collator, batch_size, classifier_module, features
    )
    if train_labels is None:
        raise ValueError("`train_dataset` has no `label` or `labels` column: the linear probe needs labeled rows.")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=regularization, max_iter=max_iter))
    probe.fit(train_features, train_labels)
    results = {}
    for name, dataset in eval_datasets.items():
        eval_features, eval_labels = extract_features(
            model, dataset, data_collator, batch_size, classifier_module, features
        )
        if eval_labels is None:
            raise ValueError(f"`eval_datasets[{name!r}]` has no `label` or `labels` column.")
        predictions = probe.predict(eval_features)
        results[f"{name}_accuracy"] = load_metric("accuracy").compute(predictions=predictions, references=eval_labels)[
            "accuracy"
        ]
        results[f"{name}_macro_f1"] = load_metric("macro_f1").compute(predictions=predictions, references=eval_labels)[
            "macro_f1"
        ]
    return results
