"""What the few-shot recipe adds: its arguments (method, K, templates, data), the K-shot sets and the sentence
classifier it builds or reloads."""

from dataclasses import dataclass, field

from ..few_shot import DEFAULT_TEMPLATES, SentenceClassifierConfig, SentenceClassifierForSequenceClassification
from ..few_shot.modeling_sentence_classifier import POOLINGS
from ..few_shot.sampling import sample_per_class
from .models import check_pretrained_folder, from_pretrained_or_explain
from .preprocessing import encode_labels, label_names_of, load_split

FEW_SHOT_METHODS = ("contrastive", "zero_shot", "head_only", "fine_tune")
# The arguments only some methods use (any other method refuses them when they differ from their defaults).
USED_BY = {
    "k_shot": ("contrastive", "head_only", "fine_tune"),
    "templates": ("zero_shot",),
    "label_descriptions": ("zero_shot",),
    "pooling": ("contrastive", "zero_shot", "head_only"),
    "max_steps": ("contrastive", "fine_tune"),
    "num_train_epochs": ("contrastive", "fine_tune"),
    "learning_rate": ("contrastive", "fine_tune"),
    "sampling_strategy": ("contrastive",),
    "num_iterations": ("contrastive",),
    "head": ("contrastive",),
    "head_regularization": ("contrastive", "head_only"),
    "pseudo_label_threshold": ("contrastive", "head_only"),
}


@dataclass
class FewShotArguments:
    method: str = field(
        default="contrastive",
        metadata={
            "help": "'contrastive': SetFit (contrastive pairs of the K shots, then a logistic-regression head); "
            "'zero_shot': no labeled row, the head from embedded label descriptions; 'head_only': a "
            "logistic-regression head on the frozen encoder's embeddings of the K shots; 'fine_tune': plain "
            "fine-tuning of AutoModelForSequenceClassification on the K shots.",
            "choices": list(FEW_SHOT_METHODS),
        },
    )
    k_shot: int = field(default=8, metadata={"help": "Labeled rows per class drawn (by --seed) from the train split."})
    templates: list[str] = field(
        default_factory=lambda: list(DEFAULT_TEMPLATES),
        metadata={"help": "Zero-shot: sentences with one {} for a label's description, averaged per label."},
    )
    label_descriptions: list[str] | None = field(
        default=None,
        metadata={
            "help": "Zero-shot: 'label=description' entries (several per label allowed), e.g. negative=bad "
            "negative=disappointing positive=great. Default: each label's name."
        },
    )
    pooling: str = field(
        default="mean",
        metadata={
            "help": "Sentence embedding of the encoder: 'mean' (sentence-transformers) or 'cls'.",
            "choices": list(POOLINGS),
        },  # fmt: skip
    )

    def check(self, training_args, training_defaults: dict) -> None:
        """The method is known, and no argument is set that the method would not use (`training_defaults`: the
        values of `FewShotConfig` fields this run would have without the command line)."""
        if self.method not in FEW_SHOT_METHODS:
            raise ValueError(f"`method` must be one of {list(FEW_SHOT_METHODS)}, got {self.method!r}.")
        if self.k_shot < 1:
            raise ValueError(f"`k_shot` must be >= 1, got {self.k_shot}.")
        own_defaults = {name: f.default_factory() if callable(f.default_factory) else f.default
                        for name, f in FewShotArguments.__dataclass_fields__.items()}  # fmt: skip
        for name, methods in USED_BY.items():
            holder, default = (
                (self, own_defaults[name]) if name in own_defaults else (training_args, training_defaults[name])
            )
            if self.method not in methods and getattr(holder, name) != default:
                raise ValueError(
                    f"--{name} is not used by --method {self.method} (only by {', '.join(methods)}): drop it, or "
                    "choose a method that uses it."
                )
        if self.method == "head_only" and training_args.head != "logistic_regression":
            raise ValueError("--method head_only fits the logistic-regression head: leave --head at its default.")

    def descriptions(self, label_names: list[str]) -> dict[str, list[str]]:
        """{label: [descriptions]} for zero-shot: the given ones, else each label's name."""
        if not self.label_descriptions:
            return {name: [name] for name in label_names}
        described: dict[str, list[str]] = {name: [] for name in label_names}
        for entry in self.label_descriptions:
            label, _, text = entry.partition("=")
            if label not in described or not text.strip():
                raise ValueError(
                    f"--label_descriptions entry {entry!r} must be 'label=description' with a label of the data "
                    f"({label_names})."
                )
            described[label].append(text.strip())
        missing = [name for name, texts in described.items() if not texts]
        if missing:
            raise ValueError(f"--label_descriptions gives no description of {missing}: describe every label.")
        return described


@dataclass
class FewShotDataArguments:
    dataset: str = field(
        default="amazon:kitchen",
        metadata={"help": "The target data: 'amazon:<domain>' (bundled), a local file/folder or a Hub dataset id."},
    )
    train_split: str = field(default="train", metadata={"help": "Split the K labeled rows per class are drawn from."})
    test_split: str = field(default="test", metadata={"help": "Labeled split to evaluate on."})
    unlabeled_split: str = field(
        default="unlabeled",
        metadata={"help": "Split read without labels, only with --pseudo_label_threshold (self-training)."},
    )
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    label_column: str = field(default="label", metadata={"help": "Column with the label."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer ones are truncated)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many test rows."})
    max_unlabeled_samples: int | None = field(
        default=2000, metadata={"help": "Use only this many unlabeled rows for self-training (a random subset)."}
    )


def load_few_shot_sets(data_args: FewShotDataArguments, few_args: FewShotArguments, seed: int, unlabeled: bool):
    """(label names, K-shot rows, test rows, unlabeled rows or None), labels encoded as ids of the label names."""
    train = load_split(data_args.dataset, data_args.train_split, "dataset")
    label_names = label_names_of(train, data_args.label_column)
    train = encode_labels(train, "dataset", data_args.label_column, label_names)
    shots = sample_per_class(train, few_args.k_shot, seed, "label", "dataset")
    test = load_split(data_args.dataset, data_args.test_split, "dataset", data_args.max_eval_samples, seed)
    test = encode_labels(test, "dataset", data_args.label_column, label_names)
    rows = None
    if unlabeled:
        rows = load_split(
            data_args.dataset, data_args.unlabeled_split, "dataset", data_args.max_unlabeled_samples, seed
        )
        rows = rows.remove_columns([c for c in rows.column_names if c != data_args.text_column])
    return label_names, shots, test, rows


def load_sentence_classifier(path: str, label_names: list[str], pooling: str):
    """A `SentenceClassifierForSequenceClassification` for `label_names`: reloaded when `path` holds one (its head
    kept if it predicts these labels), else built around the encoder in `path` (a new head)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    check_pretrained_folder(path, "model_name_or_path")
    config = from_pretrained_or_explain(AutoConfig, path, "model_name_or_path")
    mapping = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
               "label2id": {name: i for i, name in enumerate(label_names)}}  # fmt: skip
    if isinstance(config, SentenceClassifierConfig):
        if config.pooling != pooling:
            raise ValueError(
                f"{path} is a sentence classifier with {config.pooling!r} pooling, not {pooling!r}: pass --pooling "
                f"{config.pooling}."
            )
        same_labels = [config.id2label.get(i) for i in range(config.num_labels)] == label_names
        kwargs = {} if same_labels else {**mapping, "ignore_mismatched_sizes": True}
        return from_pretrained_or_explain(AutoModelForSequenceClassification, path, "model_name_or_path", **kwargs)
    return SentenceClassifierForSequenceClassification.from_encoder(path, pooling=pooling, **mapping)
