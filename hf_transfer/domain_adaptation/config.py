"""`DomainAdaptationConfig`: the `TrainingArguments` of `DomainAdaptationTrainer`."""

import math
from dataclasses import dataclass, field

from ..base_config import BaseConfig
from ..features import FEATURE_POOLINGS
from .losses import ADAPTATION_LOSSES

ALIGNMENT_FEATURES = FEATURE_POOLINGS


@dataclass
class DomainAdaptationConfig(BaseConfig):
    r"""
    Configuration of [`DomainAdaptationTrainer`]: every `TrainingArguments` field, the transfer strategy of
    [`BaseConfig`] (full, LoRA and other adapters, frozen layers, …) and the domain-adaptation hyper-parameters
    below. Parsed into a command line by `HfArgumentParser`.

    `per_device_train_batch_size` counts the rows of both domains: with the default `target_batch_fraction=0.5`
    and a batch of 32, every training batch holds 16 labeled source rows and 16 unlabeled target rows. With no
    alignment loss (the source-only baseline) the target share is left out, so a source-only run sees exactly the
    source rows an adapted run with the same seed sees.

    Parameters:
        adaptation_loss (`list[str]`, defaults to `["dann"]`):
            Alignment losses added to the source classification loss, any combination of `"dann"` (Ganin et al.,
            JMLR 2016), `"mmd"` (multi-kernel MMD, DAN, Long et al., ICML 2015), `"coral"` (Sun & Saenko, 2016),
            `"im"` (information maximisation of the target predictions, Shi & Sha 2012; SHOT, Liang et al. 2020) and
            `"mcc"` (minimum class confusion of the target predictions, Jin et al., ECCV 2020).
            An empty list (`--adaptation_loss none` on the command line) trains the source-only baseline.
        adaptation_loss_weights (`list[float]` or `None`, defaults to `None`):
            One weight per entry of `adaptation_loss`; `None` weighs every loss 1.0.
        target_batch_fraction (`float`, defaults to `0.5`):
            Fraction of each training batch taken from the target dataset.
        dann_schedule (`str`, defaults to `"ganin"`):
            Gradient-reversal coefficient schedule: `"ganin"` (λ_p = 2/(1+exp(-γ·p)) - 1 with p = global_step /
            max_steps) or `"constant"`.
        dann_gamma (`float`, defaults to `10.0`): γ of the `"ganin"` schedule.
        dann_max_coefficient (`float`, defaults to `1.0`): the coefficient the schedule rises to (or holds).
        discriminator_hidden_size (`int`, defaults to `1024`): width of the domain discriminator's hidden layers.
        discriminator_num_layers (`int`, defaults to `2`): number of hidden layers of the discriminator.
        discriminator_dropout (`float`, defaults to `0.1`): dropout between the discriminator's layers.
        discriminator_learning_rate (`float` or `None`, defaults to `None`): learning rate of the discriminator;
            `None` uses `learning_rate`.
        mmd_kernel_multipliers (`list[float]`, defaults to `[0.25, 0.5, 1.0, 2.0, 4.0]`):
            Gaussian kernel bandwidths of MMD, as multiples of the median pairwise squared distance of the batch.
        mmd_estimator (`str`, defaults to `"unbiased"`): `"unbiased"` (U-statistic) or `"biased"` (V-statistic).
        mcc_temperature (`float`, defaults to `2.5`): the temperature MCC rescales the target logits by (the paper's
            and Transfer-Learning-Library's default).
        alignment_features (`str`, defaults to `"head_input"`):
            The representation that is aligned: `"head_input"` is what the classification head receives (BERT's
            pooled output, ViT's [CLS] token, ResNet's pooled feature map), found automatically for every
            architecture; `"cls_token"` and `"mean_pooling"` pool the last hidden state instead.
    """

    adaptation_loss: list[str] = field(
        default_factory=lambda: ["dann"],
        metadata={
            "help": "Alignment losses added to the source classification loss: any of 'dann', 'mmd', 'coral', 'im' "
            "(information maximisation of the target predictions), 'mcc' (minimum class confusion of the target "
            "predictions). "
            "Use 'none' (or an empty list in a config file) for the source-only baseline."
        },
    )
    adaptation_loss_weights: list[float] | None = field(
        default=None,
        metadata={"help": "One weight per adaptation loss, in the same order. Default: 1.0 for each."},
    )
    target_batch_fraction: float = field(
        default=0.5,
        metadata={
            "help": "Fraction of each training batch drawn from the unlabeled target dataset. "
            "per_device_train_batch_size counts both domains."
        },
    )
    dann_schedule: str = field(
        default="ganin",
        metadata={
            "help": "Gradient-reversal coefficient schedule: 'ganin' (2/(1+exp(-gamma*p))-1, p = step/max_steps, "
            "Ganin et al. 2016) or 'constant'.",
            "choices": ["ganin", "constant"],
        },
    )
    dann_gamma: float = field(default=10.0, metadata={"help": "gamma of the 'ganin' schedule (paper: 10)."})
    dann_max_coefficient: float = field(
        default=1.0,
        metadata={"help": "Value the gradient-reversal coefficient rises to ('ganin') or holds ('constant')."},
    )
    discriminator_hidden_size: int = field(
        default=1024, metadata={"help": "Width of the domain discriminator's hidden layers."}
    )
    discriminator_num_layers: int = field(default=2, metadata={"help": "Number of hidden layers of the discriminator."})
    discriminator_dropout: float = field(default=0.1, metadata={"help": "Dropout between discriminator layers."})
    discriminator_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the domain discriminator. Default: learning_rate."}
    )
    mmd_kernel_multipliers: list[float] = field(
        default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0],
        metadata={
            "help": "Bandwidths of the Gaussian kernels of MMD, as multiples of the median pairwise squared "
            "distance of the batch (DAN uses a family of kernels around the median)."
        },
    )
    mmd_estimator: str = field(
        default="unbiased",
        metadata={
            "help": "MMD estimator: 'unbiased' (U-statistic) or 'biased' (V-statistic).",
            "choices": ["unbiased", "biased"],
        },
    )
    mcc_temperature: float = field(
        default=2.5, metadata={"help": "Temperature of the target logits in the MCC loss (Jin et al. 2020: 2.5)."}
    )
    alignment_features: str = field(
        default="head_input",
        metadata={
            "help": "Representation to align: 'head_input' (what the classification head receives, per "
            "architecture), 'cls_token' or 'mean_pooling' (of the last hidden state).",
            "choices": list(ALIGNMENT_FEATURES),
        },
    )

    def __post_init__(self):
        self._check_losses()
        self._check_batch_split()
        self._check_dann()
        if not self.mmd_kernel_multipliers or any(m <= 0 for m in self.mmd_kernel_multipliers):
            raise ValueError(
                "`mmd_kernel_multipliers` must be a non-empty list of positive numbers, "
                f"got {self.mmd_kernel_multipliers}."
            )
        if self.mmd_estimator not in ("unbiased", "biased"):
            raise ValueError(f"`mmd_estimator` must be 'unbiased' or 'biased', got {self.mmd_estimator!r}.")
        if self.mcc_temperature <= 0:
            raise ValueError(f"`mcc_temperature` must be > 0 (2.5 is the paper's default), got {self.mcc_temperature}.")
        if self.alignment_features not in ALIGNMENT_FEATURES:
            raise ValueError(
                f"`alignment_features` must be one of {list(ALIGNMENT_FEATURES)}, got {self.alignment_features!r}."
            )
        super().__post_init__()

    def _check_losses(self) -> None:
        self.adaptation_loss = _normalise_loss_names(self.adaptation_loss)
        unknown = [name for name in self.adaptation_loss if name not in ADAPTATION_LOSSES]
        if unknown:
            raise ValueError(
                f"`adaptation_loss` has unknown loss name(s) {unknown}: choose from {list(ADAPTATION_LOSSES)}, "
                "or 'none' for the source-only baseline."
            )
        if len(set(self.adaptation_loss)) != len(self.adaptation_loss):
            raise ValueError(f"`adaptation_loss` lists a loss twice ({self.adaptation_loss}): name each loss once.")
        if self.adaptation_loss_weights is None:
            self.adaptation_loss_weights = [1.0] * len(self.adaptation_loss)
        if len(self.adaptation_loss_weights) != len(self.adaptation_loss):
            raise ValueError(
                f"`adaptation_loss_weights` has {len(self.adaptation_loss_weights)} value(s) but `adaptation_loss` "
                f"has {len(self.adaptation_loss)} ({self.adaptation_loss}): "
                "give one weight per loss, in the same order."
            )
        if any(not math.isfinite(w) or w < 0 for w in self.adaptation_loss_weights):
            raise ValueError(f"`adaptation_loss_weights` must be finite and >= 0, got {self.adaptation_loss_weights}.")

    def _check_batch_split(self) -> None:
        if not 0.0 < self.target_batch_fraction < 1.0:
            raise ValueError(
                f"`target_batch_fraction` must be strictly between 0 and 1, got {self.target_batch_fraction}."
            )
        if not self.adaptation_loss:
            return
        target_rows = self.per_device_train_batch_size * self.target_batch_fraction
        source_rows = self.per_device_train_batch_size - target_rows
        if abs(target_rows - round(target_rows)) > 1e-9:
            raise ValueError(
                f"`per_device_train_batch_size`={self.per_device_train_batch_size} times "
                f"`target_batch_fraction`={self.target_batch_fraction} is not a whole number of target rows: "
                "choose a batch size that splits evenly (an even one for half/half mixing)."
            )
        if round(target_rows) < 2 or round(source_rows) < 2:
            raise ValueError(
                f"`per_device_train_batch_size`={self.per_device_train_batch_size} with `target_batch_fraction`="
                f"{self.target_batch_fraction} gives fewer than 2 rows of one domain per batch; alignment "
                "statistics need at least 2 rows of each: raise the batch size."
            )

    def _check_dann(self) -> None:
        if self.dann_schedule not in ("ganin", "constant"):
            raise ValueError(f"`dann_schedule` must be 'ganin' or 'constant', got {self.dann_schedule!r}.")
        if self.dann_gamma <= 0:
            raise ValueError(f"`dann_gamma` must be > 0, got {self.dann_gamma}.")
        if self.dann_max_coefficient < 0:
            raise ValueError(f"`dann_max_coefficient` must be >= 0, got {self.dann_max_coefficient}.")
        if self.discriminator_hidden_size < 1 or self.discriminator_num_layers < 0:
            raise ValueError(
                "`discriminator_hidden_size` must be >= 1 and `discriminator_num_layers` >= 0, got "
                f"{self.discriminator_hidden_size} and {self.discriminator_num_layers}."
            )
        if not 0.0 <= self.discriminator_dropout < 1.0:
            raise ValueError(f"`discriminator_dropout` must be in [0, 1), got {self.discriminator_dropout}.")
        if self.discriminator_learning_rate is not None and self.discriminator_learning_rate <= 0:
            raise ValueError(f"`discriminator_learning_rate` must be > 0, got {self.discriminator_learning_rate}.")

    @property
    def target_rows_per_batch(self) -> int:
        """Target rows in each per-device training batch (0 for the source-only baseline)."""
        if not self.adaptation_loss:
            return 0
        return round(self.per_device_train_batch_size * self.target_batch_fraction)

    @property
    def source_rows_per_batch(self) -> int:
        """Labeled source rows in each per-device training batch."""
        return round(self.per_device_train_batch_size * (1.0 - self.target_batch_fraction))


def _normalise_loss_names(names) -> list[str]:
    """Accept `["dann", "mmd"]`, `"dann,mmd"`, `["dann,mmd"]`; `"none"`, `""` and `[]` mean no loss."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    flat = [part.strip().lower() for name in names for part in str(name).split(",")]
    return [name for name in flat if name and name != "none"]
