"""Offline classification metrics: local `evaluate` modules and a ready `compute_metrics` for the Trainer.

`evaluate.load("accuracy")` downloads a script from the Hub, which fails offline; `load_metric("accuracy")` loads
the copy shipped inside hf_transfer instead.
"""

from functools import lru_cache
from pathlib import Path

import evaluate
import numpy as np

_METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("accuracy", "macro_f1")


@lru_cache(maxsize=None)
def load_metric(name: str) -> evaluate.EvaluationModule:
    """Load one of hf_transfer's offline `evaluate` metrics: `"accuracy"` or `"macro_f1"`."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}: hf_transfer ships {list(METRIC_NAMES)}.")
    return evaluate.load(str(_METRICS_DIR / name))


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
