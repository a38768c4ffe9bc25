"""Continual learning: a sequence of experiences (domains, or groups of classes) learned one after the other without
forgetting the earlier ones: sequential fine-tuning, joint training, EWC (separate or online), replay, LwF and an
adapter per experience, in the domain-, class- and task-incremental scenarios, with the accuracy matrix."""

from .config import CONTINUAL_METHODS, SCENARIOS, ContinualConfig
from .experiences import ContinualBatchSampler, ExperiencePlan, replay_memory
from .losses import ewc_penalty, fisher_diagonal, lwf_loss, masked_logits, online_fisher
from .metrics import continual_metrics, matrix_table, plot_matrix
from .splits import split_by_classes
from .trainer import ContinualMixin, ContinualTrainer, adapter_name

__all__ = [
    "CONTINUAL_METHODS",
    "SCENARIOS",
    "ContinualBatchSampler",
    "ContinualConfig",
    "ContinualMixin",
    "ContinualTrainer",
    "ExperiencePlan",
    "adapter_name",
    "continual_metrics",
    "ewc_penalty",
    "fisher_diagonal",
    "lwf_loss",
    "masked_logits",
    "matrix_table",
    "online_fisher",
    "plot_matrix",
    "replay_memory",
    "split_by_classes",
]
