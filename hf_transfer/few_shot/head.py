"""Classification heads from embeddings: a logistic regression fitted on them, written into the model's own linear
head (so the result is an ordinary classifier), and the linear layer behind a (PEFT-wrapped) head."""

import numpy as np
import torch
from torch import nn


def fit_logistic_regression(
    features: np.ndarray, labels: np.ndarray, num_labels: int, regularization: float = 1.0, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """`(weight (num_labels, D), bias (num_labels,))` of a linear layer whose softmax gives the probabilities of a
    scikit-learn `LogisticRegression(C=regularization)` fitted on `features` (N, D) and `labels` (N,).

    With two classes scikit-learn fits one logit, w·x + b, of class 1 against class 0; the rows (−w/2, w/2) and
    biases (−b/2, b/2) give the same softmax. Every class 0..num_labels-1 must have a row: a class the regression
    never saw would have no weights."""
    from sklearn.linear_model import LogisticRegression

    check_every_class_labeled(labels, num_labels, "The labeled rows")
    regression = LogisticRegression(C=regularization, max_iter=max_iter)
    regression.fit(features, labels)
    coef, intercept = regression.coef_, regression.intercept_
    if num_labels == 2:
        return np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    return coef, intercept


def check_every_class_labeled(labels, num_labels: int, what: str) -> None:
    """Every class 0..num_labels-1 has a row in `labels`: a head cannot learn a class it never sees."""
    missing = sorted(set(range(num_labels)) - {int(label) for label in labels})
    if missing:
        raise ValueError(
            f"{what} have no row of class(es) {missing} of the model's {num_labels}: the logistic-regression head "
            "cannot learn a class it never sees. Give K rows of every class, or load the model with `num_labels` "
            "equal to the classes of the data."
        )


def linear_head(classifier: nn.Module) -> nn.Linear:
    """The `nn.Linear` a head module computes with: the module itself, or the trained copy of a PEFT
    `ModulesToSaveWrapper` (the head of a PEFT-wrapped model)."""
    if hasattr(classifier, "modules_to_save"):
        classifier = classifier.modules_to_save[classifier.active_adapter]
    if not isinstance(classifier, nn.Linear):
        raise ValueError(
            f"The classification head is a {type(classifier).__name__}, not one linear layer, so a head fitted on the "
            "embeddings cannot be written into it. Use a model whose head is linear on the sentence embedding "
            "(`hf_transfer.SentenceClassifierForSequenceClassification.from_encoder(...)`), or `head='none'`."
        )
    return classifier


@torch.no_grad()
def set_linear_head(classifier: nn.Module, weight, bias) -> None:
    """Write `weight` (num_labels, D) and `bias` (num_labels,) into the head (see `linear_head`)."""
    layer = linear_head(classifier)
    weight = torch.as_tensor(np.asarray(weight), dtype=layer.weight.dtype)
    if tuple(weight.shape) != tuple(layer.weight.shape):
        raise ValueError(
            f"The head's weight is {tuple(layer.weight.shape)} (labels × features), the new one {tuple(weight.shape)}: "
            "the model must have one output per label."
        )
    layer.weight.copy_(weight)
    if layer.bias is not None:
        layer.bias.copy_(torch.as_tensor(np.asarray(bias), dtype=layer.bias.dtype))
