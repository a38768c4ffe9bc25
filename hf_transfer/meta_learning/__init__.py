"""Meta-learning: an initialisation that adapts to a new task in a few gradient steps, learned by MAML (second
order), first-order MAML or Reptile over tasks grouped by a column of the data (e.g. the domain)."""

from .algorithms import adapt, maml_gradients, reptile_gradients, task_loss
from .config import META_ALGORITHMS, MetaLearningConfig
from .episodes import EpisodeDataset
from .trainer import MetaLearningMixin, MetaLearningTrainer

__all__ = [
    "META_ALGORITHMS",
    "EpisodeDataset",
    "MetaLearningConfig",
    "MetaLearningMixin",
    "MetaLearningTrainer",
    "adapt",
    "maml_gradients",
    "reptile_gradients",
    "task_loss",
]
