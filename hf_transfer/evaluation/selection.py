"""Label-free model selection for unsupervised domain adaptation: validators that need no target label.

In unsupervised adaptation the target labels are, by definition, not there to choose a checkpoint or a
hyper-parameter with. These validators score a model from what is available: labeled source validation data and
unlabeled target data. `LabelFreeModelSelection` computes them at every evaluation of a `Trainer`, records them in
the logs and, through `metric_for_best_model`, lets the Trainer keep the checkpoint one of them prefers.

Each is logged as `eval_selection_<name>`:

- `source_accuracy` (higher is better): accuracy on the labeled source validation set, the naive criterion.
- `target_entropy` (lower): mean entropy of the target predictions; confident predictions score well.
- `im` (higher): information maximisation, the entropy of the mean target prediction minus the mean entropy;
  confident and diverse predictions score well (Gomes et al. 2010; as a validator: Musgrave et al. 2022).
- `snd` (higher): soft neighbourhood density of the target predictions (Saito et al., ICCV 2021).
- `dev` (lower): deep embedded validation, the source validation loss importance-weighted towards the target,
  with a control variate (You et al., ICML 2019).
- `proxy_a_distance` (lower): how well a linear classifier tells source from target features, 2(1 − 2·error)
  (Ben-David et al. 2007); a diagnostic of alignment more than of accuracy.
"""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import TrainerCallback

from ..features import embed_and_predict, find_classifier_module

# validator -> whether a higher value is better
VALIDATORS = {
    "source_accuracy": True,
    "target_entropy": False,
    "im": True,
    "snd": True,
    "dev": False,
    "proxy_a_distance": False,
}
METRIC_PREFIX = "selection_"


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()


def _entropy(probs: np.ndarray) -> np.ndarray:
    return -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)


def prediction_entropy(target_logits: np.ndarray) -> float:
    """Mean entropy (nats) of the target predictions."""
    return float(_entropy(_softmax(target_logits)).mean())


def information_maximization(target_logits: np.ndarray) -> float:
    """H(mean prediction) − mean H(prediction): high when predictions are confident and the classes diverse."""
    probs = _softmax(target_logits)
    return float(_entropy(probs.mean(axis=0, keepdims=True))[0] - _entropy(probs).mean())


def soft_neighborhood_density(target_logits: np.ndarray, temperature: float = 0.05) -> float:
    """SND (Saito et al. 2021): the mean entropy of each target row's softmax-weighted similarity to the others.

    The similarities are cosine similarities of the L2-normalised softmax predictions, divided by `temperature`;
    a row's own similarity is left out. Dense neighbourhoods (clustered predictions) give a high value.
    """
    probs = torch.as_tensor(_softmax(target_logits))
    probs = torch.nn.functional.normalize(probs, dim=1)
    similarity = probs @ probs.T
    n = similarity.shape[0]
    if n < 2:
        raise ValueError("soft_neighborhood_density needs at least 2 target rows.")
    similarity = similarity[~torch.eye(n, dtype=torch.bool)].view(n, n - 1)
    weights = torch.softmax(similarity / temperature, dim=1)
    return float(-(weights * torch.log(weights.clamp_min(1e-12))).sum(dim=1).mean())


def _domain_classifier(seed: int):
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))


def deep_embedded_validation(
    source_features: np.ndarray,
    source_losses: np.ndarray,
    target_features: np.ndarray,
    seed: int = 0,
) -> float:
    """DEV (You et al. 2019): an estimate of the target risk from the labeled source validation rows.

    A domain classifier (logistic regression on standardised features) gives each source row the density ratio
    w = p(target | x) / p(source | x) · n_source / n_target; the risk is mean(w·loss) with the control variate
    η = −Cov(w·loss, w) / Var(w) added, η·(mean(w) − 1), which lowers its variance.
    """
    features = np.concatenate([source_features, target_features])
    domains = np.concatenate([np.zeros(len(source_features)), np.ones(len(target_features))])
    classifier = _domain_classifier(seed).fit(features, domains)
    p_target = np.clip(classifier.predict_proba(source_features)[:, 1], 1e-6, 1 - 1e-6)
    weights = p_target / (1 - p_target) * len(source_features) / len(target_features)
    weighted = weights * source_losses
    variance = weights.var(ddof=1)
    eta = 0.0 if variance == 0 else -np.cov(weighted, weights)[0, 1] / variance
    return float(weighted.mean() + eta * weights.mean() - eta)


def proxy_a_distance(source_features: np.ndarray, target_features: np.ndarray, seed: int = 0) -> float:
    """Proxy A-distance 2(1 − 2ε) (Ben-David et al. 2007), ε the held-out error of a linear domain classifier.

    Both domains are subsampled to the same size and split in halves (train / test), so 0 means the features do
    not tell the domains apart and 2 means they separate perfectly.
    """
    rng = np.random.default_rng(seed)
    n = min(len(source_features), len(target_features))
    if n < 4:
        raise ValueError("proxy_a_distance needs at least 4 rows from each domain.")
    source = source_features[rng.permutation(len(source_features))[:n]]
    target = target_features[rng.permutation(len(target_features))[:n]]
    half = n // 2
    train = np.concatenate([source[:half], target[:half]])
    test = np.concatenate([source[half:], target[half:]])
    train_domains = np.concatenate([np.zeros(half), np.ones(half)])
    test_domains = np.concatenate([np.zeros(n - half), np.ones(n - half)])
    error = 1.0 - _domain_classifier(seed).fit(train, train_domains).score(test, test_domains)
    return float(2.0 * (1.0 - 2.0 * min(error, 0.5)))


def label_free_validators(
    source_logits: np.ndarray,
    source_labels: np.ndarray,
    source_features: np.ndarray,
    target_logits: np.ndarray,
    target_features: np.ndarray,
    snd_temperature: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """Every validator of `VALIDATORS` from a model's outputs on source validation and unlabeled target rows."""
    source_losses = torch.nn.functional.cross_entropy(
        torch.as_tensor(source_logits, dtype=torch.float64), torch.as_tensor(source_labels), reduction="none"
    ).numpy()
    return {
        "source_accuracy": float((source_logits.argmax(axis=1) == source_labels).mean()),
        "target_entropy": prediction_entropy(target_logits),
        "im": information_maximization(target_logits),
        "snd": soft_neighborhood_density(target_logits, snd_temperature),
        "dev": deep_embedded_validation(source_features, source_losses, target_features, seed),
        "proxy_a_distance": proxy_a_distance(source_features, target_features, seed),
    }


def best_step(history: list[dict], validator: str) -> dict:
    """The entry of `history` (one per evaluation, with a `step` and the validators) that `validator` prefers;
    ties go to the later step."""
    if validator not in VALIDATORS:
        raise ValueError(f"Unknown validator {validator!r}; choose one of {list(VALIDATORS)}.")
    if not history:
        raise ValueError("No evaluation was recorded: evaluate during training (`eval_strategy='steps'`).")
    sign = 1.0 if VALIDATORS[validator] else -1.0
    return max(history, key=lambda entry: (sign * entry[validator], entry["step"]))


class LabelFreeModelSelection(TrainerCallback):
    """A `TrainerCallback` computing the label-free validators at every evaluation, without target labels.

    Each evaluation adds `eval_selection_<validator>` to the evaluation metrics (so `metric_for_best_model=
    "selection_snd"` with `load_best_model_at_end=True` keeps the checkpoint SND prefers; set `greater_is_better`
    per the list in this module, which is checked at the start of training) and to the trainer's log history;
    `history` holds one entry per evaluation and `best_step(validator)` the one a validator prefers.

    Args:
        source_validation: labeled source rows the model never trained on (model inputs and `label`/`labels`).
        target: unlabeled target rows (model inputs; labels, if present, are never read).
        data_collator: how to batch the rows (e.g. `DataCollatorWithPadding(tokenizer)`); default
            `default_data_collator`.
        batch_size: rows per forward pass.
        max_target_rows: a fixed random subset of the target rows this large is used (SND is quadratic in it).
        features: the features DEV and the proxy A-distance look at (see `hf_transfer.extract_features`).
        snd_temperature: SND's softmax temperature (0.05 in the paper).
        classifier_module: the head's module name when it is not found automatically.
        seed: for the target subset and the domain classifiers.
    """

    def __init__(
        self,
        source_validation,
        target,
        data_collator=None,
        batch_size: int = 64,
        max_target_rows: int | None = 1000,
        features: str = "head_input",
        snd_temperature: float = 0.05,
        classifier_module: str | None = None,
        seed: int = 0,
    ):
        if source_validation is None or len(source_validation) < 2:
            raise ValueError("`source_validation` must hold at least 2 labeled source rows the model did not train on.")
        columns = getattr(source_validation, "column_names", None)
        if columns is not None and not {"label", "labels"} & set(columns):
            raise ValueError(
                f"`source_validation` has no `label` / `labels` column (columns: {columns}): the source-accuracy and "
                "DEV validators need labeled held-out source rows. Give the labeled split."
            )
        if target is None or len(target) < 2:
            raise ValueError("`target` must hold at least 2 unlabeled target rows.")
        if max_target_rows is not None and len(target) > max_target_rows:
            rows = np.random.default_rng(seed).choice(len(target), size=max_target_rows, replace=False)
            target = target.select(sorted(rows.tolist()))
        label_columns = [c for c in ("label", "labels") if c in target.column_names]
        if label_columns and target.format.get("type") != "custom":
            target = target.remove_columns(label_columns)  # target labels are never read
        self.source_validation = source_validation
        self.target = target
        self.data_collator = data_collator
        self.batch_size = batch_size
        self.features = features
        self.snd_temperature = snd_temperature
        self.classifier_module = classifier_module
        self.seed = seed
        self.history: list[dict] = []
        self._training = False
        self._last_key = None
        self._last_scores: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self._training = True
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            raise ValueError(
                "`LabelFreeModelSelection` scores the model at each evaluation, and `eval_strategy` is 'no': it would "
                "never run and the selection would fail after training. Set `eval_strategy` ('steps' with "
                "`eval_steps`, or 'epoch'), or leave the callback out."
            )
        metric = (args.metric_for_best_model or "").removeprefix("eval_")
        if metric.startswith(METRIC_PREFIX):
            name = metric[len(METRIC_PREFIX) :]
            if name not in VALIDATORS:
                raise ValueError(
                    f"`metric_for_best_model={args.metric_for_best_model!r}` names no validator; choose one of "
                    f"{[METRIC_PREFIX + v for v in VALIDATORS]}."
                )
            if args.greater_is_better != VALIDATORS[name]:
                raise ValueError(
                    f"`metric_for_best_model={args.metric_for_best_model!r}`: {name} is better when "
                    f"{'higher' if VALIDATORS[name] else 'lower'}, so set `greater_is_better={VALIDATORS[name]}`."
                )

    def compute(self, model) -> dict[str, float]:
        """The validators of `model` now (it is left in the train/eval mode it was in)."""
        kwargs = dict(
            data_collator=self.data_collator,
            batch_size=self.batch_size,
            classifier_module=self.classifier_module,
            features=self.features,
        )
        with torch.random.fork_rng(devices=[]):  # building DataLoaders draws from torch's generator: keep it
            source = embed_and_predict(model, self.source_validation, **kwargs)
            target = embed_and_predict(model, self.target, **kwargs)
        if source["labels"] is None:
            raise ValueError("`source_validation` has no `label` or `labels` column.")
        return label_free_validators(
            source["logits"],
            source["labels"],
            source["features"],
            target["logits"],
            target["features"],
            self.snd_temperature,
            self.seed,
        )

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        # Computed once per model state: an evaluation of several eval sets calls this once per set. After
        # training (e.g. a final `evaluate()`, maybe of the best checkpoint loaded back) the scores describe the
        # model as it is then, and are not added to the training history.
        key = (state.global_step, self._head_checksum(model))
        if key != self._last_key:
            self._last_scores = self.compute(model)
            self._last_key = key
            if self._training:
                self.history.append({"step": state.global_step, **self._last_scores})
                state.log_history.append({**self._named(self._last_scores), "step": state.global_step})
        if metrics is not None:  # what `metric_for_best_model` is read from
            metrics.update(self._named(self._last_scores))

    def on_train_end(self, args, state, control, **kwargs):
        self._training = False

    @staticmethod
    def _named(scores: dict[str, float]) -> dict[str, float]:
        return {f"eval_{METRIC_PREFIX}{name}": value for name, value in scores.items()}

    def _head_checksum(self, model) -> float:
        """Tells model states apart at the same step (the head always trains), e.g. the best checkpoint reloaded."""
        _, head = find_classifier_module(model, self.classifier_module)
        with torch.no_grad():
            return float(sum(p.double().sum() for p in head.parameters()))

    def best_step(self, validator: str) -> dict:
        """The evaluation (`{"step": ..., <validators>}`) that `validator` prefers."""
        return best_step(self.history, validator)
