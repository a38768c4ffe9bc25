"""Judging a transferred model: the linear-probe baseline, label-free model selection, feature diagnostics, the
negative-transfer guard and the transfer report (adapted model vs source-only and oracle)."""

from .diagnostics import TransferDiagnostics
from .guard import GuardDecision, GuardRule, negative_transfer_guard, redecide
from .linear_probe import linear_probe
from .report import TransferReport
from .selection import VALIDATORS, LabelFreeModelSelection, best_step, label_free_validators

__all__ = [
    "GuardDecision",
    "GuardRule",
    "VALIDATORS",
    "LabelFreeModelSelection",
    "TransferDiagnostics",
    "TransferReport",
    "best_step",
    "label_free_validators",
    "linear_probe",
    "negative_transfer_guard",
    "redecide",
]
