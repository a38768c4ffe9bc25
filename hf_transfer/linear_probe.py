"""A linear probe: logistic regression (scikit-learn) on the frozen features a classifier's head would see.

The cheapest transfer baseline: one forward pass, no gradient step through the backbone. It tells how much a
pretrained representation already separates the classes, before any fine-tuning or adaptation.
"""

import inspect

import datasets
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader
from transformers import default_data_collator

from .features import FEATURE_POOLINGS, capture_head_input, find_classifier_module, pool_features
from .metrics import load_metric

LABEL_COLUMNS = ("label", "labels")


def extract_features(
    model: nn.Module,
    dataset: datasets.Dataset,
    data_collator=None,
    batch_size: int = 64,
    classifier_module: str | None = None,
    features: str = "head_input",
) -> tuple[np.ndarray, np.ndarray | None]:
    """One feature vector per row: `(features (N, D), labels (N,) or None)`.

    `features="head_input"` is what the classification head receives (BERT's pooled output, ViT's [CLS] token,
    ResNet's pooled map); `"cls_token"` and `"mean_pooling"` pool the last hidden state instead, which suits
    encoders trained for mean-pooled embeddings (sentence-transformers), whose pooler played no part in training.

    `dataset` holds model inputs (e.g. tokenized text or `pixel_values`); other columns are dropped. The model runs
    in eval mode on its own device; `data_collator` defaults to `default_data_collator` (pass a
    `DataCollatorWithPadding` for text of different lengths).
    """
    outputs = embed_and_predict(model, dataset, data_collator, batch_size, classifier_module, features)
    return outputs["features"], outputs["labels"]


@torch.no_grad()
def embed_and_predict(
    model: nn.Module,
    dataset: datasets.Dataset,
    data_collator=None,
    batch_size: int = 64,
    classifier_module: str | None = None,
    features: str = "head_input",
) -> dict[str, np.ndarray | None]:
    """One forward pass over `dataset`: `{"features": (N, D), "logits": (N, C), "labels": (N,) or None}`.

    Features as in `extract_features`; the logits are the classifier's outputs for the same rows.
    """
    if features not in FEATURE_POOLINGS:
        raise ValueError(f"`features` must be one of {list(FEATURE_POOLINGS)}, got {features!r}.")
    _, classifier = find_classifier_module(model, classifier_module)
    accepted = set(inspect.signature(model.forward).parameters) | set(LABEL_COLUMNS)
    if dataset.format.get("type") != "custom":  # a `set_transform` dataset makes its model inputs on the fly
        dataset = dataset.remove_columns([c for c in dataset.column_names if c not in accepted])
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=data_collator or default_data_collator)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    vectors, logits, labels = [], [], []
    for batch in loader:
        batch = {k: v for k, v in batch.items() if k in accepted}
        batch_labels = next((batch.pop(c) for c in LABEL_COLUMNS if c in batch), None)
        if batch_labels is not None:
            labels.append(batch_labels.cpu().numpy())
        batch = {k: v.to(device) for k, v in batch.items()}
        if features == "head_input":
            with capture_head_input(classifier) as captured:
                outputs = model(**batch)
            pooled = pool_features(captured["features"], None, "head_input")
        else:
            outputs = model(**batch, output_hidden_states=True)
            pooled = pool_features(outputs["hidden_states"][-1], batch.get("attention_mask"), features)
        vectors.append(pooled.float().cpu().numpy())
        logits.append(outputs["logits"].float().cpu().numpy())
    model.train(was_training)
    return {
        "features": np.concatenate(vectors),
        "logits": np.concatenate(logits),
        "labels": np.concatenate(labels) if labels else None,
    }


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
