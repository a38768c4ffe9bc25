"""Mean squared error, as a local `evaluate` module with the arguments of the Hub's `mse` (works offline):
`sample_weight`, `multioutput` ("uniform_average", "raw_values"), `squared` (False: the root); the "multilist"
config takes one vector per row."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "MSE = (1/n) Σ (prediction − reference)², per output then averaged (or not: multioutput='raw_values')."
_KWARGS_DESCRIPTION = """
Args:
    predictions, references: numbers (the "multilist" config: one vector per row).
    sample_weight: a weight per row. multioutput: "uniform_average" (default) or "raw_values". squared: False for
        the root mean squared error.
Returns:
    mse (`float`, or one per output with multioutput="raw_values").
"""


class MSE(evaluate.Metric):
    def _info(self):
        value = (
            datasets.Sequence(datasets.Value("float")) if self.config_name == "multilist" else datasets.Value("float")
        )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, sample_weight=None, multioutput="uniform_average", squared=True):
        errors = (np.asarray(predictions, dtype=np.float64) - np.asarray(references, dtype=np.float64)) ** 2
        errors = errors.reshape(len(errors), -1)
        per_output = np.average(errors, axis=0, weights=sample_weight)
        if not squared:
            per_output = np.sqrt(per_output)
        if multioutput == "raw_values":
            return {"mse": per_output.tolist()}
        return {"mse": float(np.mean(per_output))}
