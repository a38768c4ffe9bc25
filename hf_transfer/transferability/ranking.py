"""Rankings a user acts on: which candidate model (`rank_models`) or which candidate source dataset (`rank_sources`)
should transfer best to a target, from forward passes over a small labeled target sample (and each source), with
every estimator of `hf_transfer.transferability.scores`, their ranks and what each candidate cost to score."""

import json
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..features import embed_and_predict
from .scores import h_score, leep, logme, nce

ESTIMATORS = ("logme", "h_score", "leep", "nce")
MODEL_ESTIMATORS = ("logme", "h_score")  # LEEP and NCE also need each model's own trained head over its source labels


@dataclass
class TransferabilityRanking:
    """One row per candidate: its score under each estimator, its rank (1 = expected to transfer best) and the
    seconds scoring it took; `kind` is "model" or "source"."""

    kind: str
    estimators: tuple[str, ...]
    rows: list[dict] = field(default_factory=list)

    def best(self, estimator: str = "logme") -> str:
        """The candidate ranked first by `estimator`."""
        return min(self.rows, key=lambda row: row[f"rank_{estimator}"])["candidate"]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "estimators": list(self.estimators), "rows": self.rows}

    def to_markdown(self) -> str:
        head = "| candidate | " + " | ".join(f"{e} (rank)" for e in self.estimators) + " | seconds |"
        lines = [head, "|---" * (len(self.estimators) + 2) + "|"]
        for row in sorted(self.rows, key=lambda r: r[f"rank_{self.estimators[0]}"]):
            cells = [f"{row[e]:.4f} ({row[f'rank_{e}']})" for e in self.estimators]
            lines.append(f"| {row['candidate']} | " + " | ".join(cells) + f" | {row['seconds']:.1f} |")
        return "\n".join(lines)

    def save(self, path_without_suffix: str) -> None:
        """Write `<path>.json` and `<path>.md`."""
        with open(f"{path_without_suffix}.json", "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2)
        with open(f"{path_without_suffix}.md", "w", encoding="utf-8") as handle:
            handle.write(self.to_markdown() + "\n")


def rank_models(
    candidate_models: dict,
    target_dataset,
    data_collator=None,
    estimators: tuple[str, ...] = MODEL_ESTIMATORS,
    batch_size: int = 64,
    features: str = "head_input",
) -> TransferabilityRanking:
    """Rank pretrained models for a target task from their features on a labeled target sample.

    Args:
        candidate_models: {name: classification model} (a new, untrained head is fine for LogME and H-score, which
            read the head's *input*; LEEP and NCE read each model's own head, so ask for them only when every
            candidate is a classifier trained on its source labels).
        target_dataset: a labeled `datasets.Dataset` every model reads, or {name: dataset} prepared for each model
            (e.g. tokenized with its own tokenizer). data_collator: one for all, or {name: collator}.
        features: the pooled features (`"head_input"`, `"mean_pooling"`, ... as in `hf_transfer.embed_and_predict`).
    """
    _check_estimators(estimators)
    ranking = TransferabilityRanking("model", tuple(estimators))
    for name, model in tqdm(candidate_models.items(), desc="scoring models"):
        start = time.perf_counter()
        dataset = target_dataset[name] if isinstance(target_dataset, dict) else target_dataset
        collator = data_collator[name] if isinstance(data_collator, dict) else data_collator
        out = embed_and_predict(model, dataset, collator, batch_size=batch_size, features=features)
        labels = _labels(out, f"target_dataset for {name!r}")
        scores = _scores(estimators, out["features"], _softmax(out["logits"]), labels)
        ranking.rows.append({"candidate": name, **scores, "seconds": round(time.perf_counter() - start, 2)})
    _add_ranks(ranking)
    return ranking


def rank_sources(
    model,
    candidate_sources: dict,
    target_dataset,
    data_collator=None,
    estimators: tuple[str, ...] = ESTIMATORS,
    batch_size: int = 64,
    features: str = "head_input",
    max_iter: int = 1000,
) -> TransferabilityRanking:
    """Rank labeled source datasets for a target, with one model's frozen features.

    Each source gets a source classifier: a logistic regression on the model's features of its labeled rows. Its
    outputs on the labeled target sample are what every estimator reads: LEEP its probabilities, NCE its labels,
    LogME and H-score its log-probabilities as (N, classes) features. A source whose classifier predicts the target
    labels well ranks high. The target sample is embedded once; each source costs a forward pass over its rows and
    a logistic-regression fit.

    Args:
        candidate_sources: {name: labeled `datasets.Dataset`} prepared like `target_dataset` (same tokenizer).
        target_dataset: a small labeled sample of the target (the estimators read its labels, as the papers do).
    """
    from sklearn.linear_model import LogisticRegression

    _check_estimators(estimators)
    target = embed_and_predict(model, target_dataset, data_collator, batch_size=batch_size, features=features)
    labels = _labels(target, "target_dataset")
    ranking = TransferabilityRanking("source", tuple(estimators))
    for name, source in tqdm(candidate_sources.items(), desc="scoring sources"):
        start = time.perf_counter()
        out = embed_and_predict(model, source, data_collator, batch_size=batch_size, features=features)
        classifier = LogisticRegression(max_iter=max_iter).fit(out["features"], _labels(out, f"source {name!r}"))
        probabilities = _full_probabilities(classifier, target["features"])
        log_probabilities = np.log(np.clip(probabilities, 1e-12, None))
        scores = _scores(estimators, log_probabilities, probabilities, labels)
        ranking.rows.append({"candidate": name, **scores, "seconds": round(time.perf_counter() - start, 2)})
    _add_ranks(ranking)
    return ranking


def _scores(estimators, features: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict:
    functions = {
        "logme": lambda: logme(features, labels),
        "h_score": lambda: h_score(features, labels),
        "leep": lambda: leep(probabilities, labels),
        "nce": lambda: nce(probabilities.argmax(1), labels),
    }
    return {estimator: functions[estimator]() for estimator in estimators}


def _full_probabilities(classifier, features: np.ndarray) -> np.ndarray:
    """The classifier's probabilities over every class id up to its largest (classes it never saw get 0)."""
    probabilities = classifier.predict_proba(features)
    full = np.zeros((features.shape[0], int(classifier.classes_.max()) + 1))
    full[:, classifier.classes_] = probabilities
    return full


def _add_ranks(ranking: TransferabilityRanking) -> None:
    """rank_<estimator>: 1 for the highest score; equal scores share the better rank."""
    for estimator in ranking.estimators:
        scores = [row[estimator] for row in ranking.rows]
        for row in ranking.rows:
            row[f"rank_{estimator}"] = 1 + sum(score > row[estimator] for score in scores)


def _labels(out: dict, argument: str) -> np.ndarray:
    labels = out["labels"]
    if labels is None:
        raise ValueError(f"`{argument}` has no `label` / `labels` column: the estimators need labeled rows.")
    labels = np.asarray(labels)
    if (labels < 0).any():
        raise ValueError(f"`{argument}` has rows without a label (-100): give labeled rows only.")
    return labels.astype(np.int64)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(1, keepdims=True)


def _check_estimators(estimators) -> None:
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown or not estimators:
        raise ValueError(f"`estimators` must name some of {list(ESTIMATORS)}, got {list(estimators)}.")
