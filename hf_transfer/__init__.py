"""hf_transfer: transfer learning and unsupervised domain adaptation for Hugging Face `transformers` models."""

from .data import AMAZON_DOMAINS, load_amazon_reviews, load_digits, load_domain_dataset
from .domain_adaptation_config import DomainAdaptationConfig
from .domain_adaptation_trainer import DomainAdaptationMixin, DomainAdaptationTrainer, DomainMixingBatchSampler
from .linear_probe import embed_and_predict, extract_features, linear_probe
from .losses import (
    DomainDiscriminator,
    coral_loss,
    dann_coefficient,
    domain_adversarial_loss,
    gradient_reversal,
    information_maximization_loss,
    minimum_class_confusion_loss,
    mmd_loss,
)
from .metrics import compute_classification_metrics, load_metric
from .model_selection import VALIDATORS, LabelFreeModelSelection, label_free_validators
from .transfer_config import TransferConfig
from .transfer_report import TransferReport
from .transfer_strategies import ProgressiveUnfreezingCallback, layer_groups
from .transfer_trainer import NonFiniteLossError, TransferLearningMixin, TransferTrainer

__all__ = [
    "NonFiniteLossError",
    "AMAZON_DOMAINS",
    "VALIDATORS",
    "DomainAdaptationConfig",
    "DomainAdaptationMixin",
    "DomainAdaptationTrainer",
    "DomainDiscriminator",
    "DomainMixingBatchSampler",
    "LabelFreeModelSelection",
    "ProgressiveUnfreezingCallback",
    "TransferConfig",
    "TransferLearningMixin",
    "TransferReport",
    "TransferTrainer",
    "compute_classification_metrics",
    "coral_loss",
    "dann_coefficient",
    "embed_and_predict",
    "domain_adversarial_loss",
    "extract_features",
    "gradient_reversal",
    "information_maximization_loss",
    "minimum_class_confusion_loss",
    "label_free_validators",
    "layer_groups",
    "linear_probe",
    "load_amazon_reviews",
    "load_digits",
    "load_domain_dataset",
    "load_metric",
    "mmd_loss",
]
