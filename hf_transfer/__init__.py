"""hf_transfer: transfer learning, unsupervised domain adaptation, knowledge distillation, few-shot and
meta-learning, and continual learning for Hugging Face `transformers` models.

One subpackage per trainer family (`fine_tuning`, `domain_adaptation`, `distillation`, `few_shot`,
`meta_learning`, `continual`), each a config + trainer pair; `transferability` scores and ranks candidates before
training; what the families share sits in named modules beside them (`base_config`, `base_trainer`, `strategies`,
`features`, `evaluation`, `hub`, ...). Every public name is importable from here.
"""

from .base_config import BaseConfig
from .base_trainer import BaseTrainerMixin, NonFiniteLossError
from .continual import ContinualConfig, ContinualMixin, ContinualTrainer
from .data import AMAZON_DOMAINS, load_amazon_reviews, load_digits, load_domain_dataset
from .distillation import DistillationConfig, DistillationMixin, DistillationTrainer, build_student, distillation_loss
from .domain_adaptation import (
    ADAPTATION_LOSSES,
    DomainAdaptationConfig,
    DomainAdaptationMixin,
    DomainAdaptationTrainer,
    DomainDiscriminator,
    coral_loss,
    dann_coefficient,
    domain_adversarial_loss,
    gradient_reversal,
    information_maximization_loss,
    minimum_class_confusion_loss,
    mmd_loss,
)
from .domain_mixing import DomainMixingBatchSampler
from .evaluation import (
    VALIDATORS,
    GuardDecision,
    GuardRule,
    LabelFreeModelSelection,
    TransferDiagnostics,
    TransferReport,
    label_free_validators,
    linear_probe,
    negative_transfer_guard,
    redecide,
)
from .features import embed_and_predict, extract_features
from .few_shot import (
    FewShotConfig,
    FewShotMixin,
    FewShotTrainer,
    SentenceClassifierConfig,
    SentenceClassifierForSequenceClassification,
    contrastive_pairs,
    zero_shot_classifier,
)
from .fine_tuning import FineTuningConfig, FineTuningMixin, FineTuningTrainer
from .loss_spec import LossInputs, LossSpec
from .meta_learning import MetaLearningConfig, MetaLearningMixin, MetaLearningTrainer
from .metrics import compute_classification_metrics, load_metric
from .strategies import ProgressiveUnfreezingCallback, layer_groups
from .transferability import TransferabilityRanking, h_score, leep, logme, nce, rank_models, rank_sources

# The fine-tuning family's former names, kept: `TransferTrainer` and `TransferConfig` are `FineTuningTrainer` and
# `FineTuningConfig`; `TransferLearningMixin` is `FineTuningMixin`.
TransferConfig = FineTuningConfig
TransferTrainer = FineTuningTrainer
TransferLearningMixin = FineTuningMixin

__all__ = [
    "ADAPTATION_LOSSES",
    "AMAZON_DOMAINS",
    "VALIDATORS",
    "BaseConfig",
    "BaseTrainerMixin",
    "ContinualConfig",
    "ContinualMixin",
    "ContinualTrainer",
    "DistillationConfig",
    "DistillationMixin",
    "DistillationTrainer",
    "DomainAdaptationConfig",
    "DomainAdaptationMixin",
    "DomainAdaptationTrainer",
    "DomainDiscriminator",
    "DomainMixingBatchSampler",
    "FineTuningConfig",
    "FineTuningMixin",
    "FineTuningTrainer",
    "FewShotConfig",
    "FewShotMixin",
    "FewShotTrainer",
    "GuardDecision",
    "GuardRule",
    "LabelFreeModelSelection",
    "LossInputs",
    "LossSpec",
    "MetaLearningConfig",
    "MetaLearningMixin",
    "MetaLearningTrainer",
    "NonFiniteLossError",
    "ProgressiveUnfreezingCallback",
    "SentenceClassifierConfig",
    "SentenceClassifierForSequenceClassification",
    "TransferConfig",
    "TransferDiagnostics",
    "TransferLearningMixin",
    "TransferReport",
    "TransferTrainer",
    "TransferabilityRanking",
    "compute_classification_metrics",
    "build_student",
    "contrastive_pairs",
    "coral_loss",
    "dann_coefficient",
    "distillation_loss",
    "domain_adversarial_loss",
    "embed_and_predict",
    "extract_features",
    "gradient_reversal",
    "h_score",
    "information_maximization_loss",
    "label_free_validators",
    "layer_groups",
    "leep",
    "linear_probe",
    "load_amazon_reviews",
    "load_digits",
    "load_domain_dataset",
    "load_metric",
    "logme",
    "minimum_class_confusion_loss",
    "mmd_loss",
    "nce",
    "negative_transfer_guard",
    "rank_models",
    "rank_sources",
    "redecide",
    "zero_shot_classifier",
]
