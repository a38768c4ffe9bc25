"""`TransferReport`: an adapted model's target results next to the baselines measured in the same study.

Without target labels a user cannot tell whether adaptation helped. When a study measured them, the report puts the
adapted model between the source-only baseline (same model, data, steps and seed, no alignment loss) and the oracle
(trained on target labels, an upper bound), and says how much of that gap adaptation closed, or that it did worse
than source-only (negative transfer). The model card and the benchmarks use it.
"""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TransferReport:
    """One metric on one evaluation set of the target domain, for the adapted model and its baselines.

    Args:
        metric: e.g. `"accuracy"`, `"macro_f1"`.
        adapted: the adapted model's value.
        source_only: the source-only baseline's value on the same set, if measured.
        oracle: the oracle's value on the same set, if measured.
        eval_set: the evaluation set's name (`"target_test"`).
    """

    metric: str
    adapted: float
    source_only: float | None = None
    oracle: float | None = None
    eval_set: str = "target_test"

    @property
    def gain(self) -> float | None:
        """adapted − source-only (negative: adaptation hurt)."""
        return None if self.source_only is None else self.adapted - self.source_only

    @property
    def gap_closed(self) -> float | None:
        """(adapted − source-only) / (oracle − source-only): 1 = as good as the oracle, < 0 = worse than source-only.

        `None` unless both baselines were measured and the oracle beats source-only (otherwise there is no gap).
        """
        if self.source_only is None or self.oracle is None or self.oracle <= self.source_only:
            return None
        return (self.adapted - self.source_only) / (self.oracle - self.source_only)

    @property
    def negative_transfer(self) -> bool | None:
        """Whether adaptation did worse than source-only; `None` when source-only was not measured."""
        return None if self.source_only is None else self.adapted < self.source_only

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "gain": self.gain,
            "gap_closed": self.gap_closed,
            "negative_transfer": self.negative_transfer,
        }

    @classmethod
    def from_results(
        cls,
        results: dict[str, float],
        source_only_results: dict[str, float] | None = None,
        oracle_results: dict[str, float] | None = None,
        eval_set: str = "target_test",
        metrics: tuple[str, ...] = ("accuracy", "macro_f1"),
    ) -> list["TransferReport"]:
        """Reports for each metric the adapted run has on `eval_set` (keys `eval_<set>_<metric>`, as in
        `all_results.json`); a baseline without that key is treated as not measured."""
        reports = []
        for metric in metrics:
            key = f"eval_{eval_set}_{metric}"
            if key not in results:
                continue
            reports.append(
                cls(
                    metric=metric,
                    adapted=float(results[key]),
                    source_only=_value(source_only_results, key),
                    oracle=_value(oracle_results, key),
                    eval_set=eval_set,
                )
            )
        return reports


def _value(results: dict[str, float] | None, key: str) -> float | None:
    return None if not results or key not in results else float(results[key])
