"""The features a classifier's head sees: find the head, capture its input, pool features to one vector per row.

Used by `DomainAdaptationTrainer` (the aligned features) and by the linear probe, for any transformers
classification model (BERT family, ViT, ResNet, …) and its PEFT-wrapped version, without per-model code.
"""

import contextlib

import torch
from torch import nn

CLASSIFIER_MODULE_NAMES = ("classifier", "score")
# One vector per example: what the head receives, or the last hidden state pooled at [CLS] or over the tokens.
FEATURE_POOLINGS = ("head_input", "cls_token", "mean_pooling")


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
