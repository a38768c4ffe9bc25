"""Zero-shot classification by label embeddings: a classifier whose head rows are the embeddings of the labels'
descriptions, so it predicts the label whose description is most similar to the input.

The result is a regular sequence-classification model: it evaluates, saves, pushes to the Hub and serves as the
starting point of few-shot training like any other. Text only (image models would need a dual encoder).
"""

import datasets
import numpy as np
import torch
from transformers import DataCollatorWithPadding

from ..features import embed_and_predict, find_classifier_module
from .head import linear_head, set_linear_head
from .modeling_sentence_classifier import SentenceClassifierForSequenceClassification

DEFAULT_TEMPLATES = ("{}", "This is {}.", "This text is {}.")
# The cosine similarities are multiplied by this (the head rows' norm): a temperature of 0.05, the scale of
# sentence-transformers' MultipleNegativesRankingLoss. It sets the confidence of the predictions, not their order.
DEFAULT_LOGIT_SCALE = 20.0
ZERO_SHOT_RECORD = "hf_transfer_zero_shot"  # config attribute: the labels' descriptions, templates and scale


def label_descriptions(labels) -> dict[str, list[str]]:
    """`{label: [descriptions]}` from a list of label names (each its own description) or a dict whose values are a
    description or a list of them."""
    if isinstance(labels, dict):
        described = {str(k): [v] if isinstance(v, str) else list(v) for k, v in labels.items()}
    else:
        described = {str(label): [str(label)] for label in labels}
    empty = [name for name, texts in described.items() if not (texts and all(_is_text(t) for t in texts))]
    if len(described) < 2 or empty:
        raise ValueError(
            "`labels` must name at least two labels, each with at least one non-empty description: a list of label "
            "names, or a dict {label: description or [descriptions]}."
        )
    return described


def label_embeddings(
    model, tokenizer, labels, templates=DEFAULT_TEMPLATES, max_length: int = 128, batch_size: int = 64
) -> torch.Tensor:
    """(num_labels, D) unit vectors: for each label, the mean of the normalised embeddings (the head's input) of
    every template filled with every description of the label, normalised again (CLIP's prompt ensembling,
    Radford et al. 2021)."""
    described = label_descriptions(labels)
    templates = _checked_templates(templates)
    texts, owners = [], []
    for index, descriptions in enumerate(described.values()):
        for description in descriptions:
            texts += [template.format(description) for template in templates]
            owners += [index] * len(templates)
    rows = datasets.Dataset.from_dict(dict(tokenizer(texts, truncation=True, max_length=max_length)))
    features = embed_and_predict(model, rows, DataCollatorWithPadding(tokenizer), batch_size)["features"]
    features = torch.nn.functional.normalize(torch.from_numpy(features), dim=-1)
    owners = torch.tensor(owners)
    means = torch.stack([features[owners == index].mean(dim=0) for index in range(len(described))])
    return torch.nn.functional.normalize(means, dim=-1)


def zero_shot_classifier(
    model,
    tokenizer,
    labels,
    templates=DEFAULT_TEMPLATES,
    logit_scale: float = DEFAULT_LOGIT_SCALE,
    max_length: int = 128,
    **from_encoder_kwargs,
):
    """A classifier that predicts the label whose embedded descriptions are nearest (cosine) to the input's.

    Args:
        model: an encoder's Hub id or folder (a `SentenceClassifierForSequenceClassification` is built around it,
            mean pooling, normalised: right for sentence-transformers encoders such as all-MiniLM-L6-v2), or a
            classification model whose head is one linear layer with one output per label (its head is replaced).
        tokenizer: the model's tokenizer.
        labels: label names in class order (`["negative", "positive"]`), or `{label: description or
            [descriptions]}` (e.g. `{"negative": ["bad", "disappointing"], ...}`).
        templates: sentences with one `{}` for the description, averaged per label (e.g. `"This review is {}."`).
        logit_scale: the head rows' norm, multiplying the cosine similarities (confidence, not the ranking).
        from_encoder_kwargs: passed on to `from_encoder` when `model` is a name (`pooling`, `attn_implementation`).

    The head's weight is `logit_scale` × the label embeddings, its bias zero; `config.id2label` names the labels.
    """
    if logit_scale <= 0:
        raise ValueError(f"`logit_scale` must be > 0, got {logit_scale}.")
    names = list(label_descriptions(labels))
    mapping = {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        model = SentenceClassifierForSequenceClassification.from_encoder(
            str(model), num_labels=len(names), **mapping, **from_encoder_kwargs
        )
    elif from_encoder_kwargs:
        raise ValueError(f"{sorted(from_encoder_kwargs)} only apply when `model` is a name or folder to load.")
    _, head = find_classifier_module(model)
    if linear_head(head).out_features != len(names):
        raise ValueError(
            f"The model's head has {linear_head(head).out_features} outputs for {len(names)} labels: load it with "
            f"`num_labels={len(names)}`, or pass the encoder's name to build one."
        )
    embeddings = label_embeddings(model, tokenizer, labels, templates, max_length)
    set_linear_head(head, logit_scale * embeddings, np.zeros(len(names)))
    model.config.update(mapping)
    record = {
        "labels": label_descriptions(labels),
        "templates": _checked_templates(templates),
        "logit_scale": logit_scale,
    }
    setattr(model.config, ZERO_SHOT_RECORD, record)  # what the model card says of the head
    return model


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _checked_templates(templates) -> list[str]:
    templates = [templates] if isinstance(templates, str) else list(templates)
    bad = [t for t in templates if not isinstance(t, str) or t.count("{}") != 1]
    if not templates or bad:
        raise ValueError(
            "Each template must be a string with exactly one `{}` for the label's description, got "
            f"{bad or templates}."
        )
    return templates
