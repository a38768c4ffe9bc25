"""`DomainAdaptationConfig`: the `TrainingArguments` of `DomainAdaptationTrainer`."""

import math
from dataclasses import dataclass, field

from ..base_config import BaseConfig
from ..features import FEATURE_POOLINGS
from .losses import ADAPTATION_LOSSES
from .stages import schedule_function

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
            `"mcc"` (minimum class confusion of the target predictions, Jin et al., ECCV 2020), `"cdan"` (conditional
            adversarial, Long et al., NeurIPS 2018), `"wdgrl"` (Wasserstein distance, Shen et al., AAAI 2018),
            `"self_training"` (pseudo-labels from a teacher, CFd-style class balance) and `"mlm"` (masked-language
            modelling on the target text, UDALM, Karouzos et al., NAACL 2021; text models only).
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
        cdan_entropy_conditioning (`bool`, defaults to `False`): CDAN+E: weigh each row of the CDAN loss by
            1 + exp(−H(p)), normalised over the batch, so confidently predicted rows count more.
        cdan_randomized (`str`, defaults to `"auto"`): CDAN's conditioning map: the full multilinear map f ⊗ p
            (`"never"`), the randomized map of dimension `cdan_randomized_dim` (`"always"`), or the randomized map
            only when features × classes > 4096 (`"auto"`, the paper's rule).
        cdan_randomized_dim (`int`, defaults to `1024`): output dimension of the randomized multilinear map.
        wdgrl_critic_steps (`int`, defaults to `5`): ascent steps of the WDGRL critic per training step (paper: 5).
        wdgrl_critic_learning_rate (`float`, defaults to `1e-4`): Adam learning rate of the critic (paper: 1e-4).
        wdgrl_gradient_penalty (`float`, defaults to `10.0`): weight γ of the gradient penalty (paper: 10).
        wdgrl_critic_hidden_size (`int`, defaults to `100`): width of the critic's hidden layer (paper's code: 100).
            The feature extractor's weight on W is the `adaptation_loss_weights` entry of `"wdgrl"` (the paper's
            code: 1 for Amazon reviews, 0.01 for digits).
        self_training_teacher (`str`, defaults to `"ema"`): who gives the pseudo-labels: `"initial"`, a frozen copy
            of the model as it was when the trainer was built (use it when the model was already trained on the
            source), or `"ema"`, an exponential moving average of the model (mean teacher).
        ema_decay (`float`, defaults to `0.99`): decay of the EMA teacher, per optimizer step.
        self_training_threshold (`float`, defaults to `0.9`): a target row gets a pseudo-label when the teacher's top
            probability is at least this.
        self_training_top_fraction (`float` or `None`, defaults to `None`): also keep at most this fraction of the
            target rows of a batch, chosen class by class (round-robin over the predicted classes, most confident
            first, as in CFd), so no class crowds out the others. `None`: the threshold alone.
        self_training_ramp_ratio (`float`, defaults to `0.25`): the self-training weight rises linearly from 0 to 1
            over this fraction of training (0: full weight from the start).
        mlm_probability (`float`, defaults to `0.15`): share of the target tokens masked for the `"mlm"` loss (the
            `DataCollatorForLanguageModeling` rules: 80 % [MASK], 10 % random, 10 % kept).
        source_only_steps (`int` or `float`, defaults to `0`):
            Two stages in one run: the first `source_only_steps` of the `max_steps` optimizer steps (a fraction of
            `max_steps` when below 1, e.g. 0.5 for half of them) train on the
            source rows alone (stage 1, the source-only baseline); the model is then evaluated (`stage1_*` metrics)
            and saved to `<output_dir>/stage1`, and the remaining steps add the adaptation losses from those weights
            (stage 2), with a fresh optimizer state, the learning-rate schedule (warm-up included) restarted, the
            loss schedules (DANN's λ, the self-training ramp) counted from the start of stage 2 and the
            self-training teacher reset to the stage-1 model. The stage-1 results are the source-only baseline of
            the run's card; `trainer.guard_negative_transfer()` then keeps whichever model the label-free
            evidence prefers. 0: one stage, adaptation from the first step.
        alignment_features (`str`, defaults to `"head_input"`):
            The representation that is aligned: `"head_input"` is what the classification head receives (BERT's
            pooled output, ViT's [CLS] token, ResNet's pooled feature map), found automatically for every
            architecture; `"cls_token"` and `"mean_pooling"` pool the last hidden state instead.
    """

    adaptation_loss: list[str] = field(
        default_factory=lambda: ["dann"],
        metadata={
            "help": "Adaptation losses added to the source classification loss: any of 'dann', 'mmd', 'coral', 'im' "
            "(information maximisation of the target predictions), 'mcc' (minimum class confusion of the target "
            "predictions), 'cdan' (conditional adversarial), 'wdgrl' (Wasserstein critic), 'self_training' "
            "(pseudo-labels from a teacher), 'mlm' (masked-language modelling on the target text). "
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
    cdan_entropy_conditioning: bool = field(
        default=False,
        metadata={"help": "CDAN+E: weigh rows of the CDAN loss by 1 + exp(-entropy of the prediction) (Long et al.)."},
    )
    cdan_randomized: str = field(
        default="auto",
        metadata={
            "help": "CDAN conditioning map: 'never' (full multilinear map), 'always' (randomized map), 'auto' "
            "(randomized when features x classes > 4096, the paper's rule).",
            "choices": ["auto", "always", "never"],
        },
    )
    cdan_randomized_dim: int = field(default=1024, metadata={"help": "Dimension of CDAN's randomized map (1024)."})
    wdgrl_critic_steps: int = field(
        default=5, metadata={"help": "WDGRL critic ascent steps per training step (Shen et al. 2018: 5)."}
    )
    wdgrl_critic_learning_rate: float = field(
        default=1e-4, metadata={"help": "Adam learning rate of the WDGRL critic (paper: 1e-4)."}
    )
    wdgrl_gradient_penalty: float = field(
        default=10.0, metadata={"help": "Weight of the WDGRL critic's gradient penalty (paper: 10)."}
    )
    wdgrl_critic_hidden_size: int = field(
        default=100, metadata={"help": "Width of the WDGRL critic's hidden layer (paper's code: 100)."}
    )
    self_training_teacher: str = field(
        default="ema",
        metadata={
            "help": "Self-training teacher: 'initial' (a frozen copy of the model at the start; for a model already "
            "trained on the source) or 'ema' (exponential moving average of the model).",
            "choices": ["initial", "ema"],
        },
    )
    ema_decay: float = field(default=0.99, metadata={"help": "Decay of the EMA self-training teacher per step."})
    self_training_threshold: float = field(
        default=0.9, metadata={"help": "Teacher probability a target row needs to get a pseudo-label."}
    )
    self_training_top_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Keep at most this fraction of a batch's target rows, class by class (round-robin, most "
            "confident first; CFd). Default: the threshold alone."
        },
    )
    self_training_ramp_ratio: float = field(
        default=0.25, metadata={"help": "Fraction of training over which the self-training weight rises from 0 to 1."}
    )
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Share of target tokens masked for the 'mlm' loss (BERT, UDALM: 0.15)."}
    )
    source_only_steps: float = field(
        default=0,
        metadata={
            "help": "Two stages in one run: the first source_only_steps of max_steps (a number of steps, or a "
            "fraction of max_steps when below 1) train on the source alone (saved to <output_dir>/stage1 as the "
            "source-only baseline), the rest adapt from those weights with a fresh optimizer and learning-rate "
            "schedule. 0: adapt from the first step."
        },
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
        self._check_cdan_and_wdgrl()
        self._check_self_training_and_mlm()
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
        self._check_stages()  # after `max_steps` itself is checked
        if self.source_only_steps:
            schedule_function(self, self.source_only_steps)  # refuses a schedule that cannot restart for stage 2

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

    def _check_cdan_and_wdgrl(self) -> None:
        if self.cdan_randomized not in ("auto", "always", "never"):
            raise ValueError(f"`cdan_randomized` must be 'auto', 'always' or 'never', got {self.cdan_randomized!r}.")
        if self.cdan_randomized_dim < 1:
            raise ValueError(
                f"`cdan_randomized_dim` must be >= 1 (the paper uses 1024), got {self.cdan_randomized_dim}."
            )
        if self.wdgrl_critic_steps < 1:
            raise ValueError(f"`wdgrl_critic_steps` must be >= 1 (the paper uses 5), got {self.wdgrl_critic_steps}.")
        if not self.wdgrl_critic_learning_rate > 0:
            raise ValueError(
                f"`wdgrl_critic_learning_rate` must be > 0 (paper: 1e-4), got {self.wdgrl_critic_learning_rate}."
            )
        if not self.wdgrl_gradient_penalty >= 0:
            raise ValueError(
                f"`wdgrl_gradient_penalty` must be >= 0 (the paper uses 10), got {self.wdgrl_gradient_penalty}."
            )
        if self.wdgrl_critic_hidden_size < 1:
            raise ValueError(f"`wdgrl_critic_hidden_size` must be >= 1, got {self.wdgrl_critic_hidden_size}.")

    def _check_self_training_and_mlm(self) -> None:
        if self.self_training_teacher not in ("initial", "ema"):
            raise ValueError(f"`self_training_teacher` must be 'initial' or 'ema', got {self.self_training_teacher!r}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"`ema_decay` must be in [0, 1) (e.g. 0.99), got {self.ema_decay}.")
        if not 0.0 <= self.self_training_threshold <= 1.0:
            raise ValueError(
                f"`self_training_threshold` must be a probability in [0, 1], got {self.self_training_threshold}."
            )
        fraction = self.self_training_top_fraction
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ValueError(f"`self_training_top_fraction` must be in (0, 1] or None, got {fraction}.")
        if not 0.0 <= self.self_training_ramp_ratio <= 1.0:
            raise ValueError(f"`self_training_ramp_ratio` must be in [0, 1], got {self.self_training_ramp_ratio}.")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"`mlm_probability` must be in (0, 1) (BERT uses 0.15), got {self.mlm_probability}.")

    def _check_stages(self) -> None:
        if not self.source_only_steps >= 0:
            raise ValueError(f"`source_only_steps` must be >= 0, got {self.source_only_steps}.")
        if 0 < self.source_only_steps < 1:  # a fraction of max_steps, as `warmup_steps` may be
            if self.max_steps <= 0:
                raise ValueError(
                    f"`source_only_steps`={self.source_only_steps} is a fraction of `max_steps`, which is not set: "
                    "set `max_steps` (the steps of both stages), or give `source_only_steps` as a number of steps."
                )
            self.source_only_steps = max(1, round(self.source_only_steps * self.max_steps))
        if self.source_only_steps != int(self.source_only_steps):
            raise ValueError(f"`source_only_steps` above 1 is a number of steps, got {self.source_only_steps}.")
        self.source_only_steps = int(self.source_only_steps)
        if self.source_only_steps and not self.max_steps > self.source_only_steps:
            raise ValueError(
                f"`source_only_steps`={self.source_only_steps} needs `max_steps` (the steps of both stages) above "
                f"it, got max_steps={self.max_steps}: e.g. max_steps={2 * self.source_only_steps} for as many "
                "adaptation steps as source-only ones."
            )

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
