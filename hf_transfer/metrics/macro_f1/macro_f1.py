"""Macro-averaged F1, as a local `evaluate` module (works offline: `evaluate.load` of this folder downloads nothing)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Macro F1: the unweighted mean over classes of 2·precision·recall / (precision + recall)."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted labels.
    references (`list[int]`): ground-truth labels.
Returns:
    macro_f1 (`float`): in [0, 1]; the mean over the classes present in predictions or references. A class that
    is never predicted and never true is not counted; one with no true positives scores 0.
"""


class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        scores = []
        for label in np.union1d(predictions, references):
            true_positive = np.sum((predictions == label) & (references == label))
            predicted = np.sum(predictions == label)
            actual = np.sum(references == label)
            scores.append(2.0 * true_positive / (predicted + actual) if predicted + actual else 0.0)
        return {"macro_f1": float(np.mean(scores))}
