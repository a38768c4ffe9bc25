"""Supervised fine-tuning of a pretrained classifier with any transfer strategy."""

from .config import FineTuningConfig
from .trainer import FineTuningMixin, FineTuningTrainer

__all__ = ["FineTuningConfig", "FineTuningMixin", "FineTuningTrainer"]
