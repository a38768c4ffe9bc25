"""The modules that adaptation losses own, beside the model: domain discriminators (DANN, CDAN), the Wasserstein
critic (WDGRL), the self-training teacher and the masked-language-model head (target MLM).

None of them is part of the exported model. Each is built from `(model, feature size, config)` by the builder named
in its `LossSpec` (see `losses.ADAPTATION_LOSSES`), saved in every checkpoint and restored on resume.
"""

import copy
import math

import torch
from torch import nn


class DomainDiscriminator(nn.Module):
    """MLP that predicts the domain of a feature vector (logit > 0: target).

    `in_features → hidden_size → … → 1` with ReLU and dropout between layers, as in DANN (Ganin et al., 2016)
    and Transfer-Learning-Library's `DomainDiscriminator`, but without batch normalisation so that the loss of
    a batch is the mean of per-example losses (which keeps gradient accumulation exact).
    """

    def __init__(self, in_features: int, hidden_size: int = 1024, num_hidden_layers: int = 2, dropout: float = 0.1):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)


class MultilinearMap(nn.Module):
    """CDAN's conditioning map T(f, g) of features `f` `(N, F)` and class probabilities `g` `(N, C)` (Long et al.,
    NeurIPS 2018, §3.1).

    Full map (`randomized_dim=None`): T⊗(f, g) = vec(g fᵀ), `(N, C·F)`, the flattened outer product.
    Randomized map: T⊙(f, g) = (f R_f) ⊙ (g R_g) / √d with fixed Gaussian matrices R_f `(F, d)` and R_g `(C, d)`,
    drawn once when the module is built (from the run's seed) and kept as buffers, so they are saved in every
    checkpoint and a resumed run uses the same map. Its inner products approximate those of T⊗ (Theorem 1).
    """

    def __init__(self, features_dim: int, num_classes: int, randomized_dim: int | None = None):
        super().__init__()
        self.randomized = randomized_dim is not None
        self.output_dim = randomized_dim if self.randomized else features_dim * num_classes
        if self.randomized:
            self.register_buffer("random_features", torch.randn(features_dim, randomized_dim))
            self.register_buffer("random_classes", torch.randn(num_classes, randomized_dim))

    def forward(self, features: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        if not self.randomized:
            return torch.bmm(probabilities.unsqueeze(2), features.unsqueeze(1)).flatten(1)
        projected = (features @ self.random_features) * (probabilities @ self.random_classes)
        return projected / math.sqrt(self.output_dim)


class ConditionalDomainDiscriminator(nn.Module):
    """CDAN's discriminator: a `DomainDiscriminator` on the `MultilinearMap` of features and predictions."""

    def __init__(self, features_dim: int, num_classes: int, randomized_dim: int | None, **discriminator_kwargs):
        super().__init__()
        self.map = MultilinearMap(features_dim, num_classes, randomized_dim)
        self.discriminator = DomainDiscriminator(self.map.output_dim, **discriminator_kwargs)


class WassersteinCritic(nn.Module):
    """WDGRL's critic c: `in_features → hidden_size → 1` with ReLU (Shen et al., AAAI 2018; the official code's
    critic has one hidden layer of 100 units). Trained by its own optimizer to estimate the Wasserstein-1 distance
    E_s[c(h)] − E_t[c(h)] under a gradient penalty; no dropout, no normalisation (the penalty is per row)."""

    def __init__(self, in_features: int, hidden_size: int = 100):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden_size), nn.ReLU(), nn.Linear(hidden_size, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)


def frozen_copy(model: nn.Module) -> nn.Module:
    """The self-training teacher: a copy of `model` as it is now, in eval mode, with no gradients."""
    teacher = copy.deepcopy(model)
    teacher.requires_grad_(False)
    return teacher.eval()


@torch.no_grad()
def update_ema(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher ← decay · teacher + (1 − decay) · student for every parameter; buffers (BatchNorm statistics) are
    copied (mean teacher, Tarvainen & Valpola, NeurIPS 2017)."""
    teacher_params, student_params = list(teacher.parameters()), list(student.parameters())
    if len(teacher_params) != len(student_params):
        raise ValueError("The EMA teacher and the model have different parameters; rebuild the trainer.")
    for teacher_param, student_param in zip(teacher_params, student_params):
        teacher_param.lerp_(student_param.detach().to(teacher_param.dtype), 1.0 - decay)
    for teacher_buffer, student_buffer in zip(teacher.buffers(), student.buffers()):
        teacher_buffer.copy_(student_buffer)


class MaskedLMHead(nn.Module):
    """A masked-language-model head on the classifier's encoder: `(k, d)` last hidden states → `(k, vocab)` logits.

    `head` is the prediction head of the architecture's `*ForMaskedLM` class (BERT's `cls`, RoBERTa's `lm_head`,
    …). Its output projection is tied to the classifier's input embeddings, as in pretraining: that weight is the
    model's, not the head's, so the head's own parameters (transform and bias) are what it saves and trains.
    `origin` says where its weights came from (the card shows it).
    """

    def __init__(self, head: nn.Module, decoder: nn.Linear, embeddings: nn.Embedding, origin: str):
        super().__init__()
        if decoder.weight.shape != embeddings.weight.shape:
            raise ValueError(
                f"The masked-LM head's output projection {tuple(decoder.weight.shape)} does not match the input "
                f"embeddings {tuple(embeddings.weight.shape)}: the head cannot be tied to this model."
            )
        del decoder.weight  # tied to the model's embeddings at every forward, never a parameter of the head
        self.head, self.origin = head, origin
        self._tied = (decoder, embeddings)  # a tuple: neither is registered again as a submodule

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        decoder, embeddings = self._tied
        decoder.weight = embeddings.weight.view_as(embeddings.weight)  # a tensor, not a parameter of the head
        return self.head(hidden_states)


def masked_lm_head(model: nn.Module) -> MaskedLMHead:
    """The masked-LM head for a text classifier: the checkpoint's own pretraining head where it has one (e.g.
    bert-base-uncased's `cls.predictions.*`), else a new head of the architecture's `*ForMaskedLM` class, randomly
    initialised (e.g. all-MiniLM-L6-v2, whose weights hold no head). Its output projection is tied to `model`'s
    input embeddings, so the classifier and the head share the encoder and the vocabulary."""
    from transformers import AutoModelForMaskedLM

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        embeddings = base.get_input_embeddings()
    except (AttributeError, NotImplementedError):  # vision models have none
        embeddings = None
    if not isinstance(embeddings, nn.Embedding):
        raise ValueError(
            f"`adaptation_loss` 'mlm' (target masked-language modelling) is for text models, but "
            f"{type(base).__name__} has no token embeddings. Remove 'mlm' from `adaptation_loss`."
        )
    source = getattr(base.config, "_name_or_path", "") or ""
    try:
        if source:
            masked_lm, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
        else:
            masked_lm, info = AutoModelForMaskedLM.from_config(base.config), None
    except ValueError as error:  # an architecture without a masked-LM class
        raise ValueError(
            f"`adaptation_loss` 'mlm' needs a masked-LM head for {type(base.config).__name__}, which transformers "
            f"has none of ({error}). Remove 'mlm' from `adaptation_loss`."
        ) from error
    heads = [(name, child) for name, child in masked_lm.named_children() if name != masked_lm.base_model_prefix]
    decoder = masked_lm.get_output_embeddings()
    if len(heads) != 1 or not isinstance(decoder, nn.Linear):
        raise ValueError(
            f"`adaptation_loss` 'mlm' supports architectures whose masked-LM class has one head module on the encoder "
            f"(BERT, RoBERTa, …); {type(masked_lm).__name__} has {[name for name, _ in heads]}. Remove 'mlm'."
        )
    name, head = heads[0]
    loaded_head = info is not None and not any(key.startswith(name + ".") for key in info["missing_keys"])
    origin = (
        f"the pretraining head of {source}"
        if loaded_head
        else "new: the checkpoint has no masked-LM head, so it started untrained"
    )
    return MaskedLMHead(head, decoder, embeddings, origin).to(embeddings.weight.device, embeddings.weight.dtype)
