"""F1, as a local `evaluate` module with the arguments of the Hub's `f1` (works offline): `average` ("binary",
"micro", "macro", "weighted", "samples" or None), `labels`, `pos_label`, `sample_weight`; the "multilabel" config
takes one 0/1 vector per row, as `examples/pytorch/text-classification/run_classification.py` passes it."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "F1 = 2 · precision · recall / (precision + recall), computed by scikit-learn's f1_score."
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (the "multilabel" config: one 0/1 vector per row).
    references: true labels, in the same form.
    average (`str` or `None`, defaults to "binary"), labels, pos_label (defaults to 1), sample_weight: as in
        `sklearn.metrics.f1_score`.
Returns:
    f1 (`float`, or one per class with `average=None`).
"""


class F1(evaluate.Metric):
    def _info(self):
        value = (
            datasets.Sequence(datasets.Value("int32")) if self.config_name == "multilabel" else datasets.Value("int32")
        )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None):
        score = f1_score(references, predictions, labels=labels, pos_label=pos_label, average=average,
                         sample_weight=sample_weight)  # fmt: skip
        return {"f1": score.tolist() if hasattr(score, "tolist") and getattr(score, "ndim", 0) else float(score)}
