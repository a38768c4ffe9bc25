"""`SentenceClassifier`: a sentence-embedding encoder and a linear head, as one `transformers` model.

Sentence-embedding encoders (all-MiniLM-L6-v2, mpnet, E5, ...) are trained on the mean of their token states, not on
the first token, while `BertForSequenceClassification` classifies the pooler's first-token output. This model keeps
the encoder's own embedding: the masked mean of the last hidden states (or the first token's), L2-normalised, then
one linear layer. With normalised head rows the logits are scaled cosine similarities, which is what zero-shot
classification by label embeddings and SetFit-style contrastive training rely on.

This file imports only torch and transformers: `save_pretrained` copies it next to the weights and names it in
`config.json` (`auto_map`), so a saved model loads without hf_transfer,

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

and, where `hf_transfer` is imported (which registers both classes with the Auto classes), without
`trust_remote_code`.
"""

import inspect

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("mean", "cls")


class SentenceClassifierConfig(PretrainedConfig):
    r"""
    Parameters:
        encoder (`dict`): the encoder's config (`encoder_config.to_dict()`, with its `model_type`).
        pooling (`str`, defaults to `"mean"`): `"mean"`, the mean of the token states over the attention mask (how
            sentence-transformers models are trained), or `"cls"`, the first token's state.
        normalize (`bool`, defaults to `True`): L2-normalise the sentence embedding before the head.
        classifier_dropout (`float`, defaults to `0.0`): dropout on the embedding before the head, in training.
    """

    model_type = "hf_transfer_sentence_classifier"

    def __init__(self, encoder=None, pooling="mean", normalize=True, classifier_dropout=0.0, **kwargs):
        if encoder is not None and not isinstance(encoder, dict):
            encoder = encoder.to_dict()
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}, got {pooling!r}.")
        if not 0.0 <= classifier_dropout < 1.0:
            raise ValueError(f"`classifier_dropout` must be in [0, 1), got {classifier_dropout}.")
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)

    def encoder_config(self) -> PretrainedConfig:
        """The encoder's config object."""
        if not self.encoder or "model_type" not in self.encoder:
            raise ValueError("`SentenceClassifierConfig.encoder` must be an encoder config dict with its `model_type`.")
        values = dict(self.encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)

    @property
    def hidden_size(self) -> int:
        return self.encoder["hidden_size"]


class SentenceClassifierPreTrainedModel(PreTrainedModel):
    config_class = SentenceClassifierConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True


class SentenceClassifierForSequenceClassification(SentenceClassifierPreTrainedModel):
    """An encoder (`AutoModel`), a pooled and normalised sentence embedding, and a linear head `classifier`.

    `embed(**inputs)` gives the sentence embeddings, `forward(**inputs, labels=...)` the usual
    `SequenceClassifierOutput` (cross-entropy with `labels`). Build one around a pretrained encoder with
    `from_encoder`.
    """

    def __init__(self, config: SentenceClassifierConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else _encoder_from_config(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def from_encoder(cls, name_or_path: str, pooling: str = "mean", normalize: bool = True, **kwargs):
        """A classifier around a pretrained encoder (a Hub id or a folder); the head is new. Keyword arguments
        other than `attn_implementation` and `dtype` go to the config (`num_labels`, `id2label`, `label2id`,
        `classifier_dropout`, ...)."""
        load = {key: kwargs.pop(key) for key in ("attn_implementation", "dtype") if key in kwargs}
        encoder_class = AutoModel._model_mapping[AutoConfig.from_pretrained(name_or_path).__class__]
        load.update(_without_pooler(encoder_class))
        encoder = AutoModel.from_pretrained(name_or_path, **load)
        encoder_values = {k: v for k, v in encoder.config.to_dict().items() if k != "_name_or_path"}
        config = SentenceClassifierConfig(encoder=encoder_values, pooling=pooling, normalize=normalize, **kwargs)
        config._name_or_path = str(name_or_path)
        model = cls(config, encoder=encoder)
        model.config._attn_implementation = encoder.config._attn_implementation
        return model.eval()  # as `from_pretrained` returns models

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def embed(self, input_ids=None, attention_mask=None, **kwargs) -> torch.Tensor:
        """The sentence embeddings (batch, hidden): pooled last hidden states, L2-normalised if configured."""
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **_encoder_kwargs(kwargs))
        return self._pool(outputs.last_hidden_state, attention_mask)

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            if attention_mask is None:
                attention_mask = torch.ones(hidden.shape[:2], device=hidden.device)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        labels=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        outputs = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **_encoder_kwargs(kwargs),
        )
        embedding = self._pool(outputs.last_hidden_state, attention_mask)
        logits = self.classifier(self.dropout(embedding))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device).view(-1))
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


def _encoder_from_config(config: SentenceClassifierConfig) -> nn.Module:
    encoder_config = config.encoder_config()
    encoder_config._attn_implementation = getattr(config, "_attn_implementation", None)
    encoder_class = AutoModel._model_mapping[type(encoder_config)]
    return encoder_class(encoder_config, **_without_pooler(encoder_class))


def _without_pooler(encoder_class) -> dict:
    """`add_pooling_layer=False` where the encoder has that switch (BERT, RoBERTa, ...): the pooler is not used."""
    switch = "add_pooling_layer" in inspect.signature(encoder_class.__init__).parameters
    return {"add_pooling_layer": False} if switch else {}


def _encoder_kwargs(kwargs: dict) -> dict:
    """The inputs the encoder takes besides ids and mask (token types, positions, embeddings), without `None`s and
    without the Trainer's loss arguments."""
    keep = ("token_type_ids", "position_ids", "inputs_embeds")
    return {key: value for key, value in kwargs.items() if key in keep and value is not None}


SentenceClassifierConfig.register_for_auto_class()
SentenceClassifierForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
