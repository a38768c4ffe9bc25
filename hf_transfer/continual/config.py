"""`ContinualConfig`: the `TrainingArguments` of `ContinualTrainer` (a sequence of experiences, learned in order)."""

from dataclasses import dataclass, field

from ..base_config import BaseConfig

CONTINUAL_METHODS = ("naive", "joint", "ewc", "replay", "lwf", "adapters")
COMBINABLE_METHODS = ("ewc", "replay", "lwf")
SCENARIOS = ("domain", "class", "task")
EWC_MODES = ("separate", "online")
MEMORY_STRATEGIES = ("reservoir", "class_balanced")

# The settings each method reads: giving one of them without its method is an error, never silently ignored.
METHOD_SETTINGS = {
    "ewc": ("ewc_lambda", "ewc_mode", "ewc_decay", "ewc_fisher_batches"),
    "replay": ("memory_size", "memory_strategy", "replay_fraction"),
    "lwf": ("lwf_alpha", "lwf_temperature"),
}


@dataclass
class ContinualConfig(BaseConfig):
    r"""
    Configuration of [`ContinualTrainer`]: every `TrainingArguments` field, the transfer strategy of [`BaseConfig`]
    and the continual-learning settings below.

    The experiences are trained in order, each for `steps_per_experience` optimizer steps (or, when 0,
    `num_train_epochs` passes over its rows); the learning-rate schedule (`lr_scheduler_type`, `warmup_steps`) and
    the optimizer's state start afresh with each experience. `max_steps` is the sum and is not set by hand.

    Parameters:
        continual_method (`list[str]`, defaults to `["naive"]`): how forgetting is fought:
            - `"naive"`: sequential fine-tuning (the lower bound); `"joint"`: every experience at once (the upper
              bound, evaluated once at the end);
            - `"ewc"` (Kirkpatrick et al. 2017): the penalty λ · Σ_i F_i (θ_i − θ*_i)² per finished experience, F the
              mean of the squared per-batch gradients on that experience (`ewc_mode="online"`: one running penalty,
              F ← γ F + F_new and θ* the latest weights, Schwarz et al. 2018);
            - `"replay"`: a memory of `memory_size` earlier rows mixed into every batch at `replay_fraction`;
            - `"lwf"` (Li & Hoiem 2017): the distillation loss α · T² · KL(previous model ‖ model) on the current rows,
              over the classes of the earlier experiences;
            - `"adapters"`: one PEFT adapter (and head) per experience on a frozen base; the experience is named at
              inference (`model.set_adapter("experience_<i>")`). Needs an adapter `transfer_strategy` or
              `peft_config`.
            `"ewc"`, `"replay"` and `"lwf"` combine; the others stand alone.
        scenario (`str`, defaults to `"domain"`): van de Ven et al. 2019's three scenarios. `"domain"`: every
            experience has the same classes (no masking); `"class"`: one head over the classes seen so far (the
            logits of later classes are masked in training and evaluation); `"task"`: the experience is known, so
            each row is classified among its own experience's classes only.
        steps_per_experience (`int`, defaults to `0`): optimizer steps per experience; 0: `num_train_epochs` passes.
        ewc_lambda (`float`, defaults to `1000.0`): λ of the EWC penalty.
        ewc_mode (`str`, defaults to `"separate"`): `"separate"` (one penalty per finished experience) or
            `"online"` (one running penalty, decayed by `ewc_decay`).
        ewc_decay (`float`, defaults to `1.0`): γ of online EWC.
        ewc_fisher_batches (`int`, defaults to `32`): batches of `per_device_train_batch_size` rows of the finished
            experience that estimate F.
        memory_size (`int`, defaults to `200`): rows kept in the replay memory.
        memory_strategy (`str`, defaults to `"reservoir"`): `"reservoir"` (every row seen so far equally likely) or
            `"class_balanced"` (an equal share per class seen, a reservoir within each).
        replay_fraction (`float`, defaults to `0.5`): the share of each batch drawn from the memory, once it holds rows.
        lwf_alpha (`float`, defaults to `1.0`): α, the weight of the LwF distillation loss.
        lwf_temperature (`float`, defaults to `2.0`): T of the LwF distillation loss.
    """

    continual_method: list[str] = field(
        default_factory=lambda: ["naive"],
        metadata={"help": "'naive', 'joint', 'adapters', or any of 'ewc', 'replay', 'lwf' (combinable)."},
    )
    scenario: str = field(
        default="domain",
        metadata={"help": "'domain' (same classes), 'class' (one head, growing) or 'task' (task id known).",
                  "choices": list(SCENARIOS)},
    )  # fmt: skip
    steps_per_experience: int = field(
        default=0, metadata={"help": "Optimizer steps per experience; 0: num_train_epochs passes over each."}
    )
    ewc_lambda: float = field(default=1000.0, metadata={"help": "λ of the EWC penalty."})
    ewc_mode: str = field(
        default="separate", metadata={"help": "'separate' or 'online' EWC.", "choices": list(EWC_MODES)}
    )
    ewc_decay: float = field(default=1.0, metadata={"help": "γ of online EWC (F ← γ F + F_new)."})
    ewc_fisher_batches: int = field(default=32, metadata={"help": "Batches of the finished experience for F."})
    memory_size: int = field(default=200, metadata={"help": "Rows kept in the replay memory."})
    memory_strategy: str = field(
        default="reservoir",
        metadata={"help": "'reservoir' or 'class_balanced'.", "choices": list(MEMORY_STRATEGIES)},
    )
    replay_fraction: float = field(default=0.5, metadata={"help": "Share of each batch drawn from the memory."})
    lwf_alpha: float = field(default=1.0, metadata={"help": "Weight α of the LwF distillation loss."})
    lwf_temperature: float = field(default=2.0, metadata={"help": "Temperature T of the LwF distillation loss."})

    def __post_init__(self):
        if isinstance(self.continual_method, str):
            self.continual_method = [self.continual_method]
        self._check_methods()
        self._check_settings_used()
        self._check_ranges()
        if self.max_steps not in (-1, None):
            raise ValueError(
                f"`max_steps`={self.max_steps} is not set by hand in continual learning: it is the sum of the "
                "experiences' steps. Give `steps_per_experience` (or `num_train_epochs` passes per experience)."
            )
        if self.load_best_model_at_end:
            raise ValueError(
                "`load_best_model_at_end` would replace the model at the end of the sequence by an earlier one: "
                "continual learning keeps the last model. Drop it."
            )
        if "adapters" in self.continual_method:
            if self.ddp_find_unused_parameters is False:
                raise ValueError(
                    "`continual_method=['adapters']` trains one adapter per experience, so the others get no "
                    "gradient: it needs `ddp_find_unused_parameters` True (the default it sets). Drop the flag."
                )
            self.ddp_find_unused_parameters = True
        super().__post_init__()

    def _check_methods(self) -> None:
        methods = self.continual_method
        unknown = [m for m in methods if m not in CONTINUAL_METHODS]
        if unknown or not methods:
            raise ValueError(f"`continual_method` must name methods of {list(CONTINUAL_METHODS)}, got {methods!r}.")
        if len(set(methods)) != len(methods):
            raise ValueError(f"`continual_method` names a method twice: {methods!r}.")
        alone = [m for m in methods if m not in COMBINABLE_METHODS]
        if alone and len(methods) > 1:
            raise ValueError(
                f"`continual_method` {methods!r}: {alone[0]!r} stands alone; only {list(COMBINABLE_METHODS)} combine."
            )
        if methods == ["adapters"] and not self.uses_peft and self.transfer_strategy != "full":
            raise ValueError(
                "`continual_method=['adapters']` trains one PEFT adapter per experience: set `transfer_strategy` "
                f"to an adapter ('lora', 'ia3', ...), not {self.transfer_strategy!r}."
            )

    def _check_settings_used(self) -> None:
        fields = type(self).__dataclass_fields__
        for method, names in METHOD_SETTINGS.items():
            if method in self.continual_method:
                continue
            changed = [n for n in names if getattr(self, n) != fields[n].default]
            if changed:
                raise ValueError(
                    f"{', '.join(f'`{n}`' for n in changed)} only apply to `continual_method` {method!r}, which is not "
                    f"in {self.continual_method!r}: add {method!r} or drop the setting."
                )
        if self.ewc_mode != "online" and self.ewc_decay != 1.0:
            raise ValueError("`ewc_decay` is the γ of online EWC: set `ewc_mode='online'` or leave it at 1.0.")

    def _check_ranges(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"`scenario` must be one of {list(SCENARIOS)}, got {self.scenario!r}.")
        if self.ewc_mode not in EWC_MODES:
            raise ValueError(f"`ewc_mode` must be one of {list(EWC_MODES)}, got {self.ewc_mode!r}.")
        if self.memory_strategy not in MEMORY_STRATEGIES:
            raise ValueError(
                f"`memory_strategy` must be one of {list(MEMORY_STRATEGIES)}, got {self.memory_strategy!r}."
            )
        rules = {
            "steps_per_experience": (self.steps_per_experience >= 0, ">= 0"),
            "ewc_lambda": (self.ewc_lambda > 0, "> 0"),
            "ewc_decay": (0 < self.ewc_decay <= 1, "in (0, 1]"),
            "ewc_fisher_batches": (self.ewc_fisher_batches >= 1, ">= 1"),
            "memory_size": (self.memory_size >= 1, ">= 1"),
            "replay_fraction": (0 < self.replay_fraction < 1, "in (0, 1)"),
            "lwf_alpha": (self.lwf_alpha > 0, "> 0"),
            "lwf_temperature": (self.lwf_temperature > 0, "> 0"),
        }
        for name, (valid, rule) in rules.items():
            if not valid:
                raise ValueError(f"`{name}` must be {rule}, got {getattr(self, name)}.")
        if self.steps_per_experience == 0 and not self.num_train_epochs > 0:
            raise ValueError(
                f"`num_train_epochs`={self.num_train_epochs} gives no step: set `steps_per_experience` >= 1 or "
                "`num_train_epochs` > 0 (passes over each experience)."
            )
