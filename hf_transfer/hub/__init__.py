"""The Hub side of a run: the model card every run writes (and pushes with `push_to_hub`)."""

from .model_card import Method, TrainingDescription, write_model_card

__all__ = ["Method", "TrainingDescription", "write_model_card"]
