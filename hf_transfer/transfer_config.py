"""`TransferConfig`: the `TrainingArguments` of `TransferTrainer`, with the transfer strategy of a fine-tuning run."""

import copy
import os
from dataclasses import dataclass, field

import yaml
from transformers import TrainingArguments

PEFT_STRATEGIES = ("lora", "dora", "ia3", "loha", "lokr", "peft")
TRANSFER_STRATEGIES = ("full", "feature_extraction", "freeze_layers") + PEFT_STRATEGIES


@dataclass
class TransferConfig(TrainingArguments):
    r"""
    Configuration of [`TransferTrainer`]: every `TrainingArguments` field plus which parameters of the pretrained
    model train and at which learning rate. Parsed into a command line by `HfArgumentParser`.

    Parameters:
        transfer_strategy (`str`, defaults to `"full"`):
            - `"full"`: every parameter trains;
            - `"feature_extraction"`: the backbone is frozen, only the classification head trains;
            - `"freeze_layers"`: the embeddings and the lowest `num_frozen_layers` blocks (transformer layers,
              ResNet stages) are frozen;
            - `"lora"`, `"dora"`, `"ia3"`, `"loha"`, `"lokr"`: a PEFT adapter of that kind, built from `lora_r`,
              `lora_alpha`, `lora_dropout` and `peft_target_modules`;
            - `"peft"`: any PEFT method, from the config file `peft_config_file`.
            With every PEFT strategy the classification head trains too and is saved with the adapter.
        num_frozen_layers (`int`, defaults to `0`): blocks frozen from the bottom with `"freeze_layers"`.
        layerwise_lr_decay (`float`, defaults to `1.0`): discriminative fine-tuning; each layer group below the head
            trains at this factor times the learning rate of the group above it. 1.0 turns it off.
        progressive_unfreezing_steps (`int`, defaults to `0`): gradual unfreezing (ULMFiT); the head trains first
            and one more layer group from the top is unfrozen every this many optimizer steps. 0 turns it off.
        lora_r (`int`, defaults to `16`): rank of LoRA / DoRA / LoHa / LoKr.
        lora_alpha (`int`, defaults to `32`): scaling alpha of LoRA / DoRA / LoHa / LoKr.
        lora_dropout (`float`, defaults to `0.1`): dropout of LoRA / DoRA (rank dropout of LoHa / LoKr).
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
    lora_r: int = field(default=16, metadata={"help": "Rank of the LoRA / DoRA / LoHa / LoKr adapter."})
    lora_alpha: int = field(default=32, metadata={"help": "Alpha of the LoRA / DoRA / LoHa / LoKr adapter."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout of the adapter (LoRA/DoRA; LoHa/LoKr rank)."})
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
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(
                f"`lora_r` must be >= 1, `lora_alpha` > 0 and `lora_dropout` in [0, 1); got {self.lora_r}, "
                f"{self.lora_alpha}, {self.lora_dropout}."
            )
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


def read_peft_config_file(path: str) -> dict:
    """The fields of a PEFT config file (JSON or YAML), checked to name a `peft_type`."""
    if not os.path.isfile(path):
        raise ValueError(f"`peft_config_file` {path!r} does not exist: pass the path of a JSON or YAML PEFT config.")
    with open(path, encoding="utf-8") as handle:
        try:
            values = yaml.safe_load(handle)  # JSON is YAML
        except yaml.YAMLError as error:
            raise ValueError(f"`peft_config_file` {path!r} is not valid JSON/YAML: {error}") from error
    if not isinstance(values, dict) or "peft_type" not in values:
        raise ValueError(
            f"`peft_config_file` {path!r} must hold a mapping with a `peft_type` (e.g. LORA, IA3, LOHA, BOFT) and "
            "that method's fields, as in a PEFT adapter_config.json."
        )
    return values
