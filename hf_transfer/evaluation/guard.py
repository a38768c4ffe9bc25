"""The negative-transfer guard: keep an adapted model only when the evidence without target labels says it is not
worse than the source-only model it started from.

Unsupervised adaptation can make a model worse on the target domain while its source accuracy looks fine. With no
target label, the guard compares the two models on what there is, labeled source validation rows and unlabeled
target rows, and measures for each:

- **ATC** (Average Thresholded Confidence, Garg et al., ICLR 2022): a confidence threshold fitted on the source
  validation rows so that as many rows fall below it as the model gets wrong there; the share of target rows above
  it is the model's predicted target accuracy. The score is the negative entropy of the prediction (ATC-NE, the
  paper's best) or the top probability (ATC-MC);
- its **source-validation accuracy** (adaptation must not forget the task);
- the **diversity** of its target predictions: the entropy of the mean target prediction over log(classes), 1 for
  balanced classes, 0 when every row gets the same class (the collapse that DANN can cause);
- **DEV** (deep embedded validation, You et al. 2019), the source validation loss importance-weighted towards the
  target (evidence only, not in the rule);

and, between them, their **agreement** on the target rows.

The rule (`GuardRule`, each part declared in `docs/benchmarks.md` before the runs that test it): keep the adapted
model when its ATC estimate is not lower than the reference's (by more than `min_atc_gain` allows), its source
accuracy dropped by at most `max_source_accuracy_drop`, its diversity by at most `max_diversity_drop`, and it
agrees with the reference on at least `min_agreement` of the target rows (rule 2: a weak adaptation loss that
changes more than a tenth of the predictions cannot be vouched for without labels); otherwise keep the reference.

`negative_transfer_guard(reference, adapted, source_validation, target)` works on any two classifiers (e.g. your
source-only and adapted models); `DomainAdaptationTrainer.guard_negative_transfer` runs it on a two-stage run.
"""

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..features import embed_and_predict
from .selection import _entropy, _softmax, deep_embedded_validation

ATC_SCORES = ("negative_entropy", "max_confidence")


@dataclass(frozen=True)
class GuardRule:
    """The guard's decision rule (defaults: the declared protocol of `docs/benchmarks.md`).

    Args:
        min_atc_gain: the adapted model's ATC estimate minus the reference's must be at least this (0: not lower).
        max_source_accuracy_drop: the reference's source-validation accuracy minus the adapted model's, at most.
        max_diversity_drop: the reference's target diversity minus the adapted model's, at most.
        min_agreement: the share of target rows on which both models predict the same class, at least (0.9: rule 2
            of the declared protocol; 0: rule 1, agreement not used).
        atc_score: `"negative_entropy"` (ATC-NE) or `"max_confidence"` (ATC-MC).
    """

    min_atc_gain: float = 0.0
    max_source_accuracy_drop: float = 0.02
    max_diversity_drop: float = 0.1
    min_agreement: float = 0.9
    atc_score: str = "negative_entropy"

    def __post_init__(self):
        if self.atc_score not in ATC_SCORES:
            raise ValueError(f"`atc_score` must be one of {list(ATC_SCORES)}, got {self.atc_score!r}.")
        for name in ("max_source_accuracy_drop", "max_diversity_drop"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if not 0 <= self.min_agreement <= 1:
            raise ValueError(f"`min_agreement` must be in [0, 1], got {self.min_agreement}.")
        if not math.isfinite(self.min_atc_gain):
            raise ValueError(f"`min_atc_gain` must be finite, got {self.min_atc_gain}.")


@dataclass(frozen=True)
class ModelEvidence:
    """What the guard measured of one model (no target label read)."""

    atc_target_accuracy: float
    atc_threshold: float
    source_accuracy: float
    target_diversity: float
    target_class_shares: list[float]
    dev: float


@dataclass(frozen=True)
class GuardDecision:
    """The guard's choice (`"adapted"` or `"reference"`), why, and the evidence of both models."""

    choice: str
    reasons: list[str]
    reference: ModelEvidence
    adapted: ModelEvidence
    agreement: float
    rule: GuardRule = field(default_factory=GuardRule)
    target_rows: int = 0
    source_rows: int = 0

    @property
    def keeps_adapted(self) -> bool:
        return self.choice == "adapted"

    def to_dict(self) -> dict:
        return {**asdict(self), "keeps_adapted": self.keeps_adapted}

    def summary(self) -> str:
        """One line: the choice and the numbers behind it."""
        ref, ada = self.reference, self.adapted
        return (
            f"kept the {self.choice} model ({'; '.join(self.reasons)}). ATC target-accuracy estimate "
            f"{ref.atc_target_accuracy:.4f} (reference) vs {ada.atc_target_accuracy:.4f} (adapted); source accuracy "
            f"{ref.source_accuracy:.4f} vs {ada.source_accuracy:.4f}; target diversity {ref.target_diversity:.3f} vs "
            f"{ada.target_diversity:.3f}; agreement {self.agreement:.4f} on {self.target_rows} target rows."
        )


def confidence_scores(probabilities: np.ndarray, score: str = "negative_entropy") -> np.ndarray:
    """ATC's per-row confidence: the negative entropy of the prediction, or its top probability."""
    if score == "negative_entropy":
        return -_entropy(probabilities)
    if score == "max_confidence":
        return probabilities.max(axis=1)
    raise ValueError(f"`score` must be one of {list(ATC_SCORES)}, got {score!r}.")


def average_thresholded_confidence(
    source_scores: np.ndarray, source_correct: np.ndarray, target_scores: np.ndarray
) -> tuple[float, float]:
    """ATC (Garg et al. 2022): `(predicted target accuracy, threshold)`.

    The threshold t is the source score at which the incorrect rows at or above it balance the correct rows below
    or at it (so the share of source rows below t matches the source error, the reference code's rule, first best
    on ties); the prediction is the share of target rows with a score of at least t.
    """
    source_scores, source_correct = np.asarray(source_scores, float), np.asarray(source_correct, bool)
    if len(source_scores) == 0 or len(target_scores) == 0:
        raise ValueError("ATC needs at least one source validation row and one target row.")
    order = np.argsort(source_scores, kind="stable")
    scores, correct = source_scores[order], source_correct[order]
    false_positives = (~correct).sum() - np.cumsum(~correct)  # incorrect rows above position i
    false_negatives = np.cumsum(correct)  # correct rows at or below position i
    gaps = np.abs(false_positives - false_negatives)
    start = abs(int((~correct).sum()))  # the reference code starts from t = 0 (its scores are probabilities)
    best = int(np.argmin(gaps))
    threshold = scores[best] if gaps[best] < start else -np.inf
    return float(np.mean(np.asarray(target_scores) >= threshold)), float(threshold)


def prediction_diversity(probabilities: np.ndarray) -> tuple[float, list[float]]:
    """The entropy of the mean prediction over log(classes) (1: balanced, 0: one class), and the predicted-class
    shares."""
    num_classes = probabilities.shape[1]
    mean = probabilities.mean(axis=0, keepdims=True)
    diversity = float(_entropy(mean)[0] / math.log(num_classes))
    shares = np.bincount(probabilities.argmax(axis=1), minlength=num_classes) / len(probabilities)
    return diversity, [float(s) for s in shares]


def model_evidence(outputs_source: dict, outputs_target: dict, score: str, seed: int = 0) -> ModelEvidence:
    """`ModelEvidence` from one model's `embed_and_predict` outputs on the source validation and target rows."""
    labels = outputs_source["labels"]
    if labels is None:
        raise ValueError("`source_validation` has no `label` or `labels` column: the guard needs labeled source rows.")
    source_probs, target_probs = _softmax(outputs_source["logits"]), _softmax(outputs_target["logits"])
    correct = source_probs.argmax(axis=1) == labels
    estimate, threshold = average_thresholded_confidence(
        confidence_scores(source_probs, score), correct, confidence_scores(target_probs, score)
    )
    diversity, shares = prediction_diversity(target_probs)
    losses = -np.log(np.clip(source_probs[np.arange(len(labels)), labels], 1e-12, None))
    dev = deep_embedded_validation(outputs_source["features"], losses, outputs_target["features"], seed)
    return ModelEvidence(estimate, threshold, float(correct.mean()), diversity, shares, dev)


def decide(reference: ModelEvidence, adapted: ModelEvidence, agreement: float, rule: GuardRule = GuardRule(), **rows):
    """Apply `rule` to the evidence of both models: a `GuardDecision`."""
    reasons = []
    atc_gain = adapted.atc_target_accuracy - reference.atc_target_accuracy
    if atc_gain < rule.min_atc_gain:
        reasons.append(f"ATC estimate {atc_gain:+.4f}, below the required {rule.min_atc_gain:+.4f}")
    source_drop = reference.source_accuracy - adapted.source_accuracy
    if source_drop > rule.max_source_accuracy_drop:
        reasons.append(f"source accuracy dropped {source_drop:.4f} > {rule.max_source_accuracy_drop}")
    diversity_drop = reference.target_diversity - adapted.target_diversity
    if diversity_drop > rule.max_diversity_drop:
        reasons.append(f"target diversity dropped {diversity_drop:.3f} > {rule.max_diversity_drop} (collapse)")
    if agreement < rule.min_agreement:
        reasons.append(f"agreement with the reference {agreement:.4f} < {rule.min_agreement}")
    if not reasons:
        reasons = [
            f"ATC estimate {atc_gain:+.4f}, source accuracy {-source_drop:+.4f}, diversity {-diversity_drop:+.3f}, "
            f"agreement {agreement:.4f}"
        ]
        choice = "adapted"
    else:
        choice = "reference"
    return GuardDecision(choice, reasons, reference, adapted, agreement, rule, **rows)


def redecide(report: dict, rule: GuardRule) -> GuardDecision:
    """Apply another `rule` to the evidence of a stored decision (`GuardDecision.to_dict()`, e.g. the
    `negative_transfer_guard.json` of a run): nothing is recomputed, no model is needed."""
    fields = ModelEvidence.__dataclass_fields__
    reference, adapted = (ModelEvidence(**{k: report[name][k] for k in fields}) for name in ("reference", "adapted"))
    rows = {k: report[k] for k in ("target_rows", "source_rows") if k in report}
    return decide(reference, adapted, report["agreement"], rule, **rows)


def negative_transfer_guard(
    reference_model,
    adapted_model,
    source_validation,
    target,
    data_collator=None,
    batch_size: int = 64,
    max_target_rows: int | None = 1000,
    rule: GuardRule = GuardRule(),
    features: str = "head_input",
    classifier_module: str | None = None,
    seed: int = 0,
) -> GuardDecision:
    """Decide, without target labels, whether `adapted_model` should replace `reference_model` (its source-only
    starting point, or any source-only model of the same task).

    Args:
        reference_model, adapted_model: two classifiers with the same label space (left in the mode they were in).
        source_validation: labeled source rows neither model trained on (model inputs and `label`/`labels`).
        target: unlabeled target rows (model inputs; a label column is dropped unread).
        data_collator: how to batch the rows (e.g. `DataCollatorWithPadding(tokenizer)`).
        max_target_rows: a fixed random subset of the target rows this large (seeded by `seed`); `None`: all.
        rule: the decision rule (`GuardRule`).
        features: the features DEV compares (see `hf_transfer.extract_features`).
    Returns:
        A `GuardDecision`; `decision.keeps_adapted` says which model to use.
    """
    if source_validation is None or len(source_validation) < 2:
        raise ValueError("`source_validation` must hold at least 2 labeled source rows neither model trained on.")
    if target is None or len(target) < 2:
        raise ValueError("`target` must hold at least 2 unlabeled target rows.")
    ref_labels = getattr(getattr(reference_model, "config", None), "num_labels", None)
    ada_labels = getattr(getattr(adapted_model, "config", None), "num_labels", None)
    if ref_labels != ada_labels:
        raise ValueError(f"The two models have different label spaces ({ref_labels} vs {ada_labels} labels).")
    if max_target_rows is not None and len(target) > max_target_rows:
        rows = np.random.default_rng(seed).choice(len(target), size=max_target_rows, replace=False)
        target = target.select(sorted(rows.tolist()))
    labels = [c for c in ("label", "labels") if c in target.column_names]
    if labels and target.format.get("type") != "custom":
        target = target.remove_columns(labels)  # never read
    kwargs = dict(
        data_collator=data_collator, batch_size=batch_size, features=features, classifier_module=classifier_module
    )
    outputs = {
        name: (embed_and_predict(model, source_validation, **kwargs), embed_and_predict(model, target, **kwargs))
        for name, model in (("reference", reference_model), ("adapted", adapted_model))
    }
    evidence = {name: model_evidence(*pair, rule.atc_score, seed) for name, pair in outputs.items()}
    agreement = float(
        np.mean(outputs["reference"][1]["logits"].argmax(axis=1) == outputs["adapted"][1]["logits"].argmax(axis=1))
    )
    return decide(
        evidence["reference"], evidence["adapted"], agreement, rule,
        target_rows=len(target), source_rows=len(source_validation),
    )  # fmt: skip
