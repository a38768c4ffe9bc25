"""Knowledge distillation: a student classifier trained on its teacher's soft labels (and, optionally, its hidden
states and attention maps), and students built from their teachers."""

from .config import DistillationConfig
from .losses import (
    HiddenStateProjection,
    attention_loss,
    default_layer_map,
    distillation_loss,
    hidden_state_loss,
    soft_label_loss,
)
from .student import build_student, evenly_spaced
from .trainer import DistillationMixin, DistillationTrainer, load_teacher

__all__ = [
    "DistillationConfig",
    "DistillationMixin",
    "DistillationTrainer",
    "HiddenStateProjection",
    "attention_loss",
    "build_student",
    "default_layer_map",
    "distillation_loss",
    "evenly_spaced",
    "hidden_state_loss",
    "load_teacher",
    "soft_label_loss",
]
