"""Offline classification metrics: local `evaluate` modules and a ready `compute_metrics` for the Trainer.

`evaluate.load("accuracy")` downloads a script from the Hub, which fails offline; `load_metric("accuracy")` loads
the copy shipped inside hf_transfer instead.
"""

from functools import lru_cache
from pathlib import Path

import evaluate
import numpy as np

_METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "macro_f1")  # what `compute_classification_metrics` reports
OFFLINE_METRICS = (*METRIC_NAMES, "f1", "mse")  # also the metrics of transformers' classification examples


@lru_cache(maxsize=None)
def load_metric(name: str, config_name: str | None = None) -> evaluate.EvaluationModule:
    """Load one of hf_transfer's offline `evaluate` metrics: `"accuracy"`, `"macro_f1"`, `"f1"` (config
    `"multilabel"` for 0/1 vectors) or `"mse"` (config `"multilist"`), with the arguments of the Hub's modules."""
    if name not in OFFLINE_METRICS:
        raise ValueError(
            f"Unknown metric {name!r}: hf_transfer ships {list(OFFLINE_METRICS)} offline; other `evaluate` metrics "
            "need the Hub (`evaluate.load(name)` where it is reachable)."
        )
    return evaluate.load(str(_METRICS_DIR / name), config_name)


def compute_classification_metrics(eval_prediction) -> dict[str, float]:
    """`compute_metrics` for `Trainer`: accuracy and macro-F1 from the logits of a classification model."""
    logits = eval_prediction.predictions
    if isinstance(logits, tuple):
        logits = logits[0]
    predictions = np.argmax(logits, axis=-1)
    references = eval_prediction.label_ids
    results = {}
    for name in METRIC_NAMES:
        results.update(load_metric(name).compute(predictions=predictions, references=references))
    return results
