"""Unsupervised domain adaptation: labeled source rows, unlabeled target rows, and the losses that use both."""

from .config import DomainAdaptationConfig
from .losses import (
    ADAPTATION_LOSSES,
    conditional_adversarial_loss,
    coral_loss,
    dann_coefficient,
    domain_adversarial_loss,
    gradient_penalty,
    gradient_reversal,
    information_maximization_loss,
    masked_lm_loss,
    minimum_class_confusion_loss,
    mmd_loss,
    select_pseudo_labels,
    self_training_loss,
    train_wasserstein_critic,
    wasserstein_estimate,
)
from .modules import (
    ConditionalDomainDiscriminator,
    DomainDiscriminator,
    MaskedLMHead,
    MultilinearMap,
    WassersteinCritic,
    masked_lm_head,
)
from .trainer import DomainAdaptationMixin, DomainAdaptationTrainer

__all__ = [
    "ADAPTATION_LOSSES",
    "DomainAdaptationConfig",
    "DomainAdaptationMixin",
    "DomainAdaptationTrainer",
    "DomainDiscriminator",
    "ConditionalDomainDiscriminator",
    "MaskedLMHead",
    "MultilinearMap",
    "WassersteinCritic",
    "conditional_adversarial_loss",
    "gradient_penalty",
    "masked_lm_head",
    "masked_lm_loss",
    "select_pseudo_labels",
    "self_training_loss",
    "train_wasserstein_critic",
    "wasserstein_estimate",
    "coral_loss",
    "dann_coefficient",
    "domain_adversarial_loss",
    "gradient_reversal",
    "information_maximization_loss",
    "minimum_class_confusion_loss",
    "mmd_loss",
]
