"""`BaseConfig`: the `TrainingArguments` every hf_transfer trainer family starts from.

It adds what all families share: the transfer strategy (which parameters of the pretrained model train and at which
learning rate: full, a PEFT adapter, feature extraction, frozen layers, layer-wise decay, gradual unfreezing) and
arguments that never carry a token or a local path when pickled. Each family's config subclasses it
(`FineTuningConfig`, `DomainAdaptationConfig`, ...).
"""

import copy
import os
import typing
from dataclasses import dataclass, field, fields

from transformers import TrainingArguments

from .strategies import PEFT_STRATEGIES, TRANSFER_STRATEGIES, read_peft_config_file

# Neutral adapter names and the LoRA-only names they replace (still accepted, see `BaseConfig`).
ADAPTER_ALIASES = {"lora_r": "adapter_rank", "lora_alpha": "adapter_alpha", "lora_dropout": "adapter_dropout"}
ADAPTER_RULES = {
    "adapter_rank": (lambda value: value >= 1, "must be >= 1"),
    "adapter_alpha": (lambda value: value > 0, "must be > 0"),
    "adapter_dropout": (lambda value: 0.0 <= value < 1.0, "must be in [0, 1)"),
}


@dataclass
class BaseConfig(TrainingArguments):
    r"""
    The fields every hf_transfer config shares: every `TrainingArguments` field plus which parameters of the
    pretrained model train and at which learning rate. Parsed into a command line by `HfArgumentParser`.

    Parameters:
        transfer_strategy (`str`, defaults to `"full"`):
            - `"full"`: every parameter trains;
            - `"feature_extraction"`: the backbone is frozen, only the classification head trains;
            - `"freeze_layers"`: the embeddings and the lowest `num_frozen_layers` blocks (transformer layers,
              ResNet stages) are frozen;
            - `"lora"`, `"dora"`, `"ia3"`, `"loha"`, `"lokr"`: a PEFT adapter of that kind, built from
              `adapter_rank`, `adapter_alpha`, `adapter_dropout` and `peft_target_modules`;
            - `"peft"`: any PEFT method, from the config file `peft_config_file`.
            With every PEFT strategy the classification head trains too and is saved with the adapter.
        num_frozen_layers (`int`, defaults to `0`): blocks frozen from the bottom with `"freeze_layers"`.
        layerwise_lr_decay (`float`, defaults to `1.0`): discriminative fine-tuning; each layer group below the head
            trains at this factor times the learning rate of the group above it. 1.0 turns it off.
        progressive_unfreezing_steps (`int`, defaults to `0`): gradual unfreezing (ULMFiT); the head trains first
            and one more layer group from the top is unfrozen every this many optimizer steps. 0 turns it off.
        adapter_rank (`int`, defaults to `16`): rank of the adapter: PEFT's `r` of LoRA, DoRA, LoHa and LoKr.
        adapter_alpha (`float`, defaults to `32`): scaling of the adapter: `lora_alpha` of LoRA / DoRA, `alpha` of
            LoHa / LoKr.
        adapter_dropout (`float`, defaults to `0.1`): `lora_dropout` of LoRA / DoRA, `rank_dropout` of LoHa / LoKr.
            IA3 has no rank, scaling or dropout: the three are not used with `"ia3"`.
        lora_r, lora_alpha, lora_dropout (defaults to `None`): the former names of `adapter_rank`, `adapter_alpha`,
            `adapter_dropout`, still accepted for every adapter (giving both names with different values is an
            error). After validation they read `None`; the value is in the `adapter_*` field.
        peft_target_modules (`list[str]` or `None`, defaults to `None`): modules the adapter wraps. `None`: PEFT's
            choice for architectures it knows (`query`, `value` for BERT), otherwise every linear and convolution
            layer inside the repeated blocks (ViT, ResNet, …).
        peft_config_file (`str` or `None`, defaults to `None`): a JSON or YAML PEFT config (`peft_type` and its
            fields, e.g. an `adapter_config.json`), with `transfer_strategy="peft"`.
        classifier_module (`str` or `None`, defaults to `None`): name of the classification head module; `None`
            finds it (`classifier`, then `score`).
    """

    transfer_strategy: str = field(
        default="full",
        metadata={
            "help": "Which parameters train: 'full', 'feature_extraction' (head only), 'freeze_layers' (freeze the "
            "embeddings and the lowest num_frozen_layers blocks), a PEFT adapter ('lora', 'dora', 'ia3', 'loha', "
            "'lokr') or 'peft' (any PEFT method from --peft_config_file). Adapters always train the head too.",
            "choices": list(TRANSFER_STRATEGIES),
        },
    )
    num_frozen_layers: int = field(
        default=0, metadata={"help": "Blocks frozen from the bottom with transfer_strategy='freeze_layers'."}
    )
    layerwise_lr_decay: float = field(
        default=1.0,
        metadata={
            "help": "Discriminative fine-tuning: each layer group's learning rate is this times the one above it."
        },
    )
    progressive_unfreezing_steps: int = field(
        default=0,
        metadata={"help": "Gradual unfreezing (ULMFiT): unfreeze one more layer group every N steps; 0 = off."},
    )
    adapter_rank: int = field(default=16, metadata={"help": "Rank r of the LoRA / DoRA / LoHa / LoKr adapter."})
    adapter_alpha: float = field(
        default=32, metadata={"help": "Scaling alpha of the adapter (lora_alpha of LoRA/DoRA, alpha of LoHa/LoKr)."}
    )
    adapter_dropout: float = field(
        default=0.1, metadata={"help": "Dropout of the adapter (lora_dropout of LoRA/DoRA, rank_dropout of LoHa/LoKr)."}
    )
    lora_r: int | None = field(default=None, metadata={"help": "Former name of --adapter_rank (any adapter)."})
    lora_alpha: float | None = field(default=None, metadata={"help": "Former name of --adapter_alpha (any adapter)."})
    lora_dropout: float | None = field(
        default=None, metadata={"help": "Former name of --adapter_dropout (any adapter)."}
    )
    peft_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Modules the adapter wraps. Default: PEFT's choice for the architecture, else every linear and "
            "convolution layer of the repeated blocks."
        },
    )
    peft_config_file: str | None = field(
        default=None,
        metadata={"help": "JSON/YAML PEFT config (peft_type + fields) for transfer_strategy='peft'."},
    )
    classifier_module: str | None = field(
        default=None,
        metadata={
            "help": "Name of the classification head module. Default: found automatically ('classifier', 'score')."
        },
    )

    def __post_init__(self):
        self._convert_number_strings()
        self._resolve_adapter_aliases()
        self._check_strategy()
        self._check_adapter()
        self._check_numbers()
        if self.max_steps == 0:
            raise ValueError(
                "`max_steps`=0 would not stop training at 0 steps: the Trainer would run `num_train_epochs` epochs "
                "instead. Give `max_steps` >= 1, or -1 to train for `num_train_epochs`."
            )
        if self.output_dir is not None and os.path.isfile(self.output_dir):
            raise ValueError(
                f"`output_dir`={self.output_dir!r} is an existing file, not a folder: choose a folder for the run."
            )
        super().__post_init__()

    def _convert_number_strings(self) -> None:
        """Numbers given as strings (YAML reads `5e-5` without a dot as a string; `HfArgumentParser.parse_yaml_file`
        and `parse_dict` pass it on) become numbers by their field's type, or are refused naming the field."""
        hints = typing.get_type_hints(type(self))
        for item in fields(self):
            value, hint = getattr(self, item.name, None), hints.get(item.name)
            if not isinstance(value, str):
                continue
            kinds = set(typing.get_args(hint)) or {hint}
            number = next((kind for kind in (int, float) if kind in kinds), None)
            if number is None or str in kinds:
                continue
            try:
                setattr(
                    self,
                    item.name,
                    number(float(value)) if number is int and float(value).is_integer() else number(value),
                )
            except ValueError:
                raise ValueError(f"`{item.name}`={value!r} is not a number ({number.__name__} expected).") from None

    def _check_numbers(self) -> None:
        """The Trainer numbers whose bad values would train silently wrong, or fail only after training."""
        if not self.learning_rate > 0:
            raise ValueError(
                f"`learning_rate`={self.learning_rate} would leave every weight as it is (or move it backwards): give "
                "a positive learning rate, e.g. 5e-5."
            )
        steps_set_elsewhere = getattr(self, "steps_per_experience", 0)  # continual learning counts its own steps
        if (self.max_steps is None or self.max_steps < 0) and not self.num_train_epochs > 0 and not steps_set_elsewhere:
            raise ValueError(
                f"`num_train_epochs`={self.num_train_epochs} with `max_steps`={self.max_steps} trains no step: give "
                "`num_train_epochs` > 0, or `max_steps` >= 1."
            )
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if not 0.0 <= self.label_smoothing_factor < 1.0:
            raise ValueError(f"`label_smoothing_factor` must be in [0, 1), got {self.label_smoothing_factor}.")
        if self.seed < 0:
            raise ValueError(f"`seed` must be >= 0 (torch and NumPy take non-negative seeds), got {self.seed}.")
        for name in ("logging_steps", "eval_steps", "save_steps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(
                    f"`{name}` must be > 0 (a number of steps, or a fraction of the run below 1), got {value}."
                )

    def _resolve_adapter_aliases(self) -> None:
        """`lora_r` / `lora_alpha` / `lora_dropout`, when given, set `adapter_rank` / `adapter_alpha` /
        `adapter_dropout` (and are then cleared, so a copy with a new `adapter_*` value is not contradicted); each
        value is checked under the name it was given by."""
        for old, new in ADAPTER_ALIASES.items():
            old_value, new_value = getattr(self, old), getattr(self, new)
            if old_value is not None and new_value not in (type(self).__dataclass_fields__[new].default, old_value):
                raise ValueError(
                    f"`{old}`={old_value} and `{new}`={new_value} set the same thing (`{old}` is the former name of "
                    f"`{new}`): give only `{new}`."
                )
            name, value = (new, new_value) if old_value is None else (old, old_value)
            is_valid, rule = ADAPTER_RULES[new]
            if not is_valid(value):
                raise ValueError(f"`{name}` {rule}, got {value}.")
            setattr(self, new, value)
            setattr(self, old, None)

    def _check_strategy(self) -> None:
        if self.transfer_strategy not in TRANSFER_STRATEGIES:
            raise ValueError(
                f"`transfer_strategy` must be one of {list(TRANSFER_STRATEGIES)}, got {self.transfer_strategy!r}."
            )
        if self.transfer_strategy == "freeze_layers" and self.num_frozen_layers < 1:
            raise ValueError("`transfer_strategy='freeze_layers'` needs `num_frozen_layers` >= 1.")
        if self.transfer_strategy != "freeze_layers" and self.num_frozen_layers:
            raise ValueError(
                f"`num_frozen_layers`={self.num_frozen_layers} is only used with `transfer_strategy='freeze_layers'`: "
                "set that strategy or leave num_frozen_layers at 0."
            )
        if not 0.0 < self.layerwise_lr_decay <= 1.0:
            raise ValueError(f"`layerwise_lr_decay` must be in (0, 1], got {self.layerwise_lr_decay}.")
        if self.progressive_unfreezing_steps < 0:
            raise ValueError(f"`progressive_unfreezing_steps` must be >= 0, got {self.progressive_unfreezing_steps}.")
        if self.progressive_unfreezing_steps and self.transfer_strategy != "full":
            raise ValueError(
                "`progressive_unfreezing_steps` unfreezes the whole model step by step: use it with "
                f"`transfer_strategy='full'`, not {self.transfer_strategy!r}."
            )
        if self.uses_peft and self.layerwise_lr_decay != 1.0:
            raise ValueError(
                f"`layerwise_lr_decay` sets learning rates of pretrained layers, which `transfer_strategy="
                f"{self.transfer_strategy!r}` freezes (only the adapter and the head train): leave it at 1.0."
            )

    def _check_adapter(self) -> None:
        if self.transfer_strategy == "peft":
            if not self.peft_config_file:
                raise ValueError(
                    "`transfer_strategy='peft'` needs `peft_config_file`: a JSON/YAML file with `peft_type` and its "
                    "fields (e.g. an adapter_config.json), or choose 'lora', 'dora', 'ia3', 'loha' or 'lokr'."
                )
            read_peft_config_file(self.peft_config_file)  # fail now, not after the model has loaded
        elif self.peft_config_file:
            raise ValueError(
                f"`peft_config_file` is only read with `transfer_strategy='peft'` (got {self.transfer_strategy!r}): "
                "set --transfer_strategy peft, or drop the file."
            )

    def __getstate__(self) -> dict:
        """What pickling writes, i.e. `training_args.bin` in the output dir, every checkpoint and every Hub push.

        Tokens (`hub_token`, any `*_token`) are left out and absolute local paths (`output_dir`, ...) are reduced to
        their last component, so a pushed or shared run never carries a credential or the local directory layout.
        The run itself, and `copy.copy` / `copy.deepcopy` of these arguments, keep the real values.
        """
        state = dict(self.__dict__)
        for name, value in state.items():
            if name.endswith("_token") and value is not None:
                state[name] = None
            elif isinstance(value, str) and os.path.isabs(value):
                state[name] = os.path.basename(os.path.normpath(value))
        return state

    def __copy__(self):
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    @property
    def uses_peft(self) -> bool:
        """Whether the strategy trains a PEFT adapter (plus the head) instead of the pretrained weights."""
        return self.transfer_strategy in PEFT_STRATEGIES
