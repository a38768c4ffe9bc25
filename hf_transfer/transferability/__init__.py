"""Choosing before training: transferability estimators (LogME, LEEP, NCE, H-score) and rankings of candidate
source datasets and candidate models built on them."""

from .ranking import ESTIMATORS, TransferabilityRanking, rank_models, rank_sources
from .scores import LogMEResult, h_score, leep, logme, nce

__all__ = [
    "ESTIMATORS",
    "LogMEResult",
    "TransferabilityRanking",
    "h_score",
    "leep",
    "logme",
    "nce",
    "rank_models",
    "rank_sources",
]
