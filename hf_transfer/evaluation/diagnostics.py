"""Transfer diagnostics a user would rather look at than read: are source and target features aligned?

`TransferDiagnostics` takes the features of source and target rows before training and after it, and reports the
proxy A-distance of each (0: a linear classifier cannot tell the domains apart; 2: it separates them perfectly) and
a PNG with a 2-D PCA projection of both domains, before and after, side by side. The recipes write both into the
output dir (`--transfer_diagnostics true`) and the model card shows them.
"""

import json
import os

import numpy as np

from ..features import embed_and_predict
from .selection import proxy_a_distance

PLOT_NAME = "transfer_diagnostics.png"
RESULTS_NAME = "transfer_diagnostics.json"


class TransferDiagnostics:
    """Features of the same source and target rows before and after training, compared.

    Args:
        source: labeled source rows (model inputs and `label`), e.g. the source validation set.
        target: target rows (model inputs); labels, if present, are never read.
        data_collator, batch_size: how to batch the rows.
        max_rows: a fixed random subset of each domain this large is used.
        features: which features (see `hf_transfer.extract_features`); by default what the head sees.
        classifier_module: the head's module name when it is not found automatically.
        seed: for the subsets, the domain classifier and the PCA.
    """

    def __init__(
        self,
        source,
        target,
        data_collator=None,
        batch_size: int = 64,
        max_rows: int | None = 500,
        features: str = "head_input",
        classifier_module: str | None = None,
        seed: int = 0,
    ):
        rng = np.random.default_rng(seed)
        if max_rows is not None and len(source) > max_rows:
            source = source.select(sorted(rng.choice(len(source), size=max_rows, replace=False).tolist()))
        if max_rows is not None and len(target) > max_rows:
            target = target.select(sorted(rng.choice(len(target), size=max_rows, replace=False).tolist()))
        if "label" in target.column_names and target.format.get("type") != "custom":
            target = target.remove_columns("label")  # never read
        self.source, self.target = source, target
        self.kwargs = dict(
            data_collator=data_collator, batch_size=batch_size, classifier_module=classifier_module, features=features
        )
        self.seed = seed
        self.initial: dict | None = None

    def _features(self, model) -> dict:
        source = embed_and_predict(model, self.source, **self.kwargs)
        target = embed_and_predict(model, self.target, **self.kwargs)
        id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
        labels = source["labels"]
        if labels is not None:
            labels = np.array([id2label.get(int(label), str(label)) for label in labels])
        return {"source": source["features"], "source_labels": labels, "target": target["features"]}

    def before(self, model) -> None:
        """Record the features of the model before training (call it before `train()`)."""
        self.initial = self._features(model)

    def after(self, model, output_dir: str) -> dict:
        """Compare with the model now; write `transfer_diagnostics.json` and `.png` into `output_dir`."""
        if self.initial is None:
            raise ValueError("Call `TransferDiagnostics.before(model)` before training, then `after(...)`.")
        final = self._features(model)
        results = {
            "proxy_a_distance_before": proxy_a_distance(self.initial["source"], self.initial["target"], self.seed),
            "proxy_a_distance_after": proxy_a_distance(final["source"], final["target"], self.seed),
            "source_rows": len(self.source),
            "target_rows": len(self.target),
            "features": self.kwargs["features"],
            "plot": PLOT_NAME,
        }
        os.makedirs(output_dir, exist_ok=True)
        plot_projection(self.initial, final, results, os.path.join(output_dir, PLOT_NAME), self.seed)
        with open(os.path.join(output_dir, RESULTS_NAME), "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
        return results


def plot_projection(initial: dict, final: dict, results: dict, path: str, seed: int = 0) -> None:
    """Two panels, before and after: each domain's rows in the 2-D PCA of that model's features (source rows
    marked by class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    panels = [
        (initial, f"before training (proxy A-distance {results['proxy_a_distance_before']:.2f})"),
        (final, f"after training (proxy A-distance {results['proxy_a_distance_after']:.2f})"),
    ]
    for axis, (features, title) in zip(axes, panels):
        points = PCA(n_components=2, random_state=seed).fit_transform(
            np.concatenate([features["source"], features["target"]])
        )
        source, target = points[: len(features["source"])], points[len(features["source"]) :]
        axis.scatter(target[:, 0], target[:, 1], s=8, c="tab:orange", alpha=0.5, label="target (unlabeled)")
        labels = features["source_labels"]
        for value, marker in zip(np.unique(labels) if labels is not None else [None], "o^sPDv*X"):
            rows = source if value is None else source[labels == value]
            name = "source" if value is None else f"source, {value}"
            axis.scatter(rows[:, 0], rows[:, 1], s=8, c="tab:blue", marker=marker, alpha=0.5, label=name)
        axis.set_title(title, fontsize=10)
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0].legend(fontsize=8, loc="best")
    figure.suptitle("Source and target features, 2-D PCA", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
