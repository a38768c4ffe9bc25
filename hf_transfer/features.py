"""The features a classifier's head sees: find the head, capture its input, pool features to one vector per row,
and one forward pass over a dataset for its features and logits.

Used by the trainers (the aligned features), the linear probe, label-free selection and the diagnostics, for any
transformers classification model (BERT family, ViT, ResNet, …) and its PEFT-wrapped version, without per-model code.
"""

import contextlib
import inspect

import datasets
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import default_data_collator

CLASSIFIER_MODULE_NAMES = ("classifier", "score")
# One vector per example: what the head receives, or the last hidden state pooled at [CLS] or over the tokens.
FEATURE_POOLINGS = ("head_input", "cls_token", "mean_pooling")
LABEL_COLUMNS = ("label", "labels")


def find_classifier_module(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The classification head of a transformers (or PEFT-wrapped) classification model, by module name."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for candidate in [name] if name else CLASSIFIER_MODULE_NAMES:
        try:
            return candidate, base.get_submodule(candidate)
        except AttributeError:
            continue
    raise ValueError(
        f"Could not find the classification head of {type(base).__name__} "
        f"(looked for {[name] if name else list(CLASSIFIER_MODULE_NAMES)}). Pass a model with a classification "
        "head (an `AutoModelForSequenceClassification` / `AutoModelForImageClassification`), or name the head "
        "module with `classifier_module`."
    )


def feature_dim(model: nn.Module, classifier: nn.Module, alignment_features: str) -> int:
    """Size of the pooled feature vector: the head's input size, or the hidden size for hidden-state pooling."""
    if alignment_features == "head_input":
        for module in classifier.modules():
            if isinstance(module, nn.Linear):
                return module.in_features
        raise ValueError(
            f"The classification head {type(classifier).__name__} has no nn.Linear layer to read the feature size "
            "from: set `alignment_features` to 'cls_token' or 'mean_pooling'."
        )
    config = model.config
    if getattr(config, "hidden_size", None):
        return config.hidden_size
    if getattr(config, "hidden_sizes", None):
        return config.hidden_sizes[-1]
    raise ValueError(f"Cannot tell the hidden size of {type(config).__name__}: use `alignment_features='head_input'`.")


def pool_features(features: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """Reduce `(B, D)`, `(B, T, D)` token or `(B, C, H, W)` map features to `(B, D)`."""
    if features.dim() == 2:
        return features
    if features.dim() == 4:  # CNN feature map: global average pooling
        return features.float().mean(dim=(2, 3)).to(features.dtype)
    if features.dim() != 3:
        raise ValueError(f"Cannot pool features of shape {tuple(features.shape)} into one vector per example.")
    if how == "mean_pooling":
        if attention_mask is None:
            return features.mean(dim=1)
        mask = attention_mask.unsqueeze(-1).to(features.dtype)
        return (features * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
    return features[:, 0]  # the [CLS] token, as BERT-style and ViT heads read it


@contextlib.contextmanager
def capture_head_input(classifier: nn.Module, enabled: bool = True):
    """Within the block, `captured["features"]` holds the input of the last forward call of `classifier`."""
    captured: dict[str, torch.Tensor] = {}
    if not enabled:
        yield captured
        return

    def hook(module, args, kwargs):
        captured["features"] = args[0] if args else next(iter(kwargs.values()))

    handle = classifier.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield captured
    finally:
        handle.remove()


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
