"""Unsupervised domain adaptation: labeled source rows, unlabeled target rows, and the losses that use both."""

from .config import DomainAdaptationConfig
from .losses import (
    ADAPTATION_LOSSES,
    DomainDiscriminator,
    coral_loss,
    dann_coefficient,
    domain_adversarial_loss,
    gradient_reversal,
    information_maximization_loss,
    minimum_class_confusion_loss,
    mmd_loss,
)
from .trainer import DomainAdaptationMixin, DomainAdaptationTrainer

__all__ = [
    "ADAPTATION_LOSSES",
    "DomainAdaptationConfig",
    "DomainAdaptationMixin",
    "DomainAdaptationTrainer",
    "DomainDiscriminator",
    "coral_loss",
    "dann_coefficient",
    "domain_adversarial_loss",
    "gradient_reversal",
    "information_maximization_loss",
    "minimum_class_confusion_loss",
    "mmd_loss",
]
