"""`FewShotConfig`: the `TrainingArguments` of `FewShotTrainer` (SetFit-style contrastive few-shot training)."""

from dataclasses import dataclass, field

from transformers.trainer_utils import IntervalStrategy

from ..base_config import BaseConfig
from .pairs import SAMPLING_STRATEGIES

HEADS = ("logistic_regression", "none")


@dataclass
class FewShotConfig(BaseConfig):
    r"""
    Configuration of [`FewShotTrainer`]: every `TrainingArguments` field, the transfer strategy of [`BaseConfig`]
    (the encoder can train in full, with LoRA or any PEFT method, ...) and the few-shot hyper-parameters below.

    Training has two stages (SetFit, Tunstall et al. 2022, "Efficient few-shot learning without prompts"):

    1. **Contrastive**: pairs of the K labeled rows per class (`contrastive_pairs`), target similarity 1 for two
       rows of the same class and 0 otherwise; the loss is the mean squared error between the cosine similarity of
       the two rows' embeddings (the input of the classification head) and that target. The Trainer's optimizer,
       schedule, precision, checkpoints and processes apply to this stage; one epoch is one pass over the pairs.
    2. **Head**: with `head="logistic_regression"`, a logistic regression is fitted on the trained embeddings of
       the labeled rows and written into the model's linear head, so the result is an ordinary classifier.
       With `pseudo_label_threshold`, the unlabeled rows the head predicts with at least that probability are
       added with their predicted labels and the head is fitted again (self-training on target-domain text).

    Defaults follow SetFit 1.x where it has one: learning rate 2e-5, batch 16, 1 epoch, 10 % warm-up,
    `"oversampling"`, `LogisticRegression(C=1.0)`.

    Parameters:
        sampling_strategy (`str`, defaults to `"oversampling"`): which pairs make an epoch, from every unordered
            pair of labeled rows (a row with itself included): `"oversampling"` cycles the smaller of the positive
            and negative lists up to the size of the larger; `"undersampling"` cuts the larger down to the smaller;
            `"unique"` keeps every pair once (not balanced).
        num_iterations (`int` or `None`, defaults to `None`): instead of `sampling_strategy`, `num_iterations` ×
            N positive and as many negative pairs per epoch, N the number of labeled rows (SetFit's former
            default was 20).
        head (`str`, defaults to `"logistic_regression"`): `"logistic_regression"` fits the head on the embeddings
            after the contrastive stage; `"none"` keeps the model's head as it is (e.g. a zero-shot head, or a
            head to train end to end afterwards with `FineTuningTrainer`).
        head_regularization (`float`, defaults to `1.0`): the inverse regularisation strength `C` of the logistic
            regression (scikit-learn's default 1.0; smaller is stronger).
        head_max_iter (`int`, defaults to `1000`): iterations of the logistic regression's solver (lbfgs).
        pseudo_label_threshold (`float` or `None`, defaults to `None`): with the trainer's `unlabeled_dataset`, add
            the unlabeled rows whose predicted probability is at least this (in (0.5, 1]) to the head's data with
            their predicted labels, then fit the head again. `None`: off.
    """

    learning_rate: float = field(default=2e-5, metadata={"help": "Learning rate of the contrastive stage."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "Pairs per batch and device."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the contrastive pairs."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up: steps, or a fraction (< 1) of all steps."})
    sampling_strategy: str = field(
        default="oversampling",
        metadata={
            "help": "Pairs per epoch: 'oversampling' (balanced, the larger side's size), 'undersampling' "
            "(balanced, the smaller side's size) or 'unique' (every pair once).",
            "choices": list(SAMPLING_STRATEGIES),
        },
    )
    num_iterations: int | None = field(
        default=None,
        metadata={"help": "Instead of sampling_strategy: num_iterations x N positive and negative pairs per epoch."},
    )
    head: str = field(
        default="logistic_regression",
        metadata={
            "help": "After the contrastive stage: 'logistic_regression' fits the head on the embeddings; 'none' "
            "keeps the model's head.",
            "choices": list(HEADS),
        },
    )
    head_regularization: float = field(
        default=1.0, metadata={"help": "Inverse regularisation C of the logistic-regression head."}
    )
    head_max_iter: int = field(default=1000, metadata={"help": "Solver iterations of the logistic-regression head."})
    pseudo_label_threshold: float | None = field(
        default=None,
        metadata={
            "help": "Self-training of the head: unlabeled rows predicted with at least this probability join the "
            "head's data with their predicted label. Needs an unlabeled dataset; default: off."
        },
    )

    def __post_init__(self):
        if self.sampling_strategy not in SAMPLING_STRATEGIES:
            raise ValueError(
                f"`sampling_strategy` must be one of {list(SAMPLING_STRATEGIES)}, got {self.sampling_strategy!r}."
            )
        if self.num_iterations is not None and self.num_iterations < 1:
            raise ValueError(f"`num_iterations` must be >= 1 (None: `sampling_strategy`), got {self.num_iterations}.")
        if self.head not in HEADS:
            raise ValueError(f"`head` must be one of {list(HEADS)}, got {self.head!r}.")
        if not self.head_regularization > 0:
            raise ValueError(f"`head_regularization` (C) must be > 0, got {self.head_regularization}.")
        if self.head_max_iter < 1:
            raise ValueError(f"`head_max_iter` must be >= 1, got {self.head_max_iter}.")
        if self.pseudo_label_threshold is not None:
            if not 0.5 < self.pseudo_label_threshold <= 1.0:
                raise ValueError(
                    f"`pseudo_label_threshold` must be in (0.5, 1] (a predicted probability), got "
                    f"{self.pseudo_label_threshold}."
                )
            if self.head != "logistic_regression":
                raise ValueError(
                    "`pseudo_label_threshold` refits the logistic-regression head with pseudo-labels: set "
                    "`head='logistic_regression'`, or drop the threshold."
                )
        super().__post_init__()
        if self.head == "logistic_regression" and self.eval_strategy != IntervalStrategy.NO:
            raise ValueError(
                f"`eval_strategy`='{self.eval_strategy.value}': the logistic-regression head is fitted when training "
                "ends, so evaluations during training would score a head that is not fitted yet. Set "
                "`eval_strategy='no'` and call `trainer.evaluate()` after `trainer.train()`, or use `head='none'`."
            )
