"""The transfer strategies: which parameters of a pretrained classifier train (layer groups, frozen layers, feature
extraction, gradual unfreezing, a PEFT adapter with the head saved) and at which learning rate (layer-wise decay),
for any BERT-family, ViT or ResNet classifier without per-model code. Every trainer family applies them.

A model is split into layer groups from input to output: the embeddings (everything before the repeated
blocks), one group per block (a transformer layer, a ResNet stage), and the classification head. Whatever sits
between the last block and the head (BERT's pooler, ViT's final layer norm) belongs to the last block's group.
The blocks are the longest `nn.ModuleList` of modules of one class (`bert.encoder.layer`, `vit.layers`,
`resnet.encoder.stages`).
"""

import copy
import inspect
from dataclasses import dataclass

from torch import nn
from transformers import TrainerCallback

from .config_files import read_yaml_or_json

PEFT_STRATEGIES = ("lora", "dora", "ia3", "loha", "lokr", "peft")
TRANSFER_STRATEGIES = ("full", "feature_extraction", "freeze_layers") + PEFT_STRATEGIES


@dataclass
class LayerGroup:
    """A named set of parameters that is frozen, unfrozen or given a learning rate together."""

    name: str
    parameter_names: list[str]


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The repeated blocks of the backbone: the longest `nn.ModuleList` whose modules all have one class."""
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0 and len({type(child) for child in module}) == 1
    ]
    if not candidates:
        raise ValueError(
            f"{type(model).__name__} has no list of repeated blocks (an nn.ModuleList of transformer layers or "
            "stages), so its layers cannot be grouped: use full fine-tuning or a PEFT adapter instead."
        )
    # the most blocks; among equals, the outermost list
    return max(candidates, key=lambda item: (len(item[1]), -item[0].count(".")))


def layer_groups(model: nn.Module, classifier_name: str) -> list[LayerGroup]:
    """Layer groups from input to output: `embeddings`, `block_0` … `block_{N-1}`, `head` (the classifier module).

    Args:
        model: a transformers classification model (not PEFT-wrapped).
        classifier_name: name of the classification head module (e.g. `"classifier"`).
    """
    blocks_name, blocks = find_blocks(model)
    block_of = {}
    for index in range(len(blocks)):
        for name, _ in blocks[index].named_parameters(prefix=f"{blocks_name}.{index}"):
            block_of[name] = index
    head_prefix = classifier_name + "."
    embeddings, head = [], []
    per_block: list[list[str]] = [[] for _ in blocks]
    seen_block = False
    for name, _ in model.named_parameters():
        if name.startswith(head_prefix):
            head.append(name)
        elif name in block_of:
            per_block[block_of[name]].append(name)
            seen_block = True
        elif not seen_block:
            embeddings.append(name)
        else:
            per_block[-1].append(name)  # between the last block and the head: pooler, final layer norm
    groups = [LayerGroup("embeddings", embeddings)] if embeddings else []
    groups += [LayerGroup(f"block_{index}", names) for index, names in enumerate(per_block)]
    groups.append(LayerGroup("head", head))
    return groups


def freeze_lowest_layers(model: nn.Module, classifier_name: str, num_layers: int) -> list[str]:
    """Freeze the embeddings and the lowest `num_layers` blocks; return the names of the frozen parameters."""
    groups = layer_groups(model, classifier_name)
    blocks = [g for g in groups if g.name.startswith("block_")]
    if not 0 <= num_layers <= len(blocks):
        raise ValueError(
            f"`num_frozen_layers`={num_layers} but {type(model).__name__} has {len(blocks)} blocks: "
            f"choose 0 to {len(blocks)} (or feature extraction to freeze the whole backbone)."
        )
    if num_layers == 0:
        return []
    frozen = [n for g in groups if g.name == "embeddings" for n in g.parameter_names]
    frozen += [n for g in blocks[:num_layers] for n in g.parameter_names]
    _set_requires_grad(model, frozen, False)
    return frozen


def freeze_backbone(model: nn.Module, classifier_name: str) -> list[str]:
    """Feature extraction: freeze everything but the classification head; return the frozen parameter names."""
    frozen = [n for n, _ in model.named_parameters() if not n.startswith(classifier_name + ".")]
    _set_requires_grad(model, frozen, False)
    return frozen


def layerwise_learning_rates(
    model: nn.Module, classifier_name: str, learning_rate: float, decay: float
) -> dict[str, float]:
    """Discriminative fine-tuning (Howard & Ruder, 2018): each group's rate is `decay` times the rate above it.

    The head trains at `learning_rate`, the last block at `learning_rate · decay`, …, the embeddings at
    `learning_rate · decay^(N+1)`. Returns the learning rate of every parameter, by name.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"`layerwise_lr_decay` must be in (0, 1], got {decay}.")
    rates = {}
    for depth, group in enumerate(reversed(layer_groups(model, classifier_name))):
        for name in group.parameter_names:
            rates[name] = learning_rate * decay**depth
    return rates


def _set_requires_grad(model: nn.Module, names: list[str], value: bool) -> None:
    parameters = dict(model.named_parameters())
    for name in names:
        parameters[name].requires_grad_(value)


class ProgressiveUnfreezingCallback(TrainerCallback):
    """Gradual unfreezing (ULMFiT, Howard & Ruder, ACL 2018): the head trains first, then one more layer group
    from the top every `unfreeze_every_steps` optimizer steps, down to the embeddings.

    At global step s the top `1 + s // unfreeze_every_steps` groups train. The state is a function of the global
    step alone, so a resumed run is frozen exactly as the uninterrupted run was. The optimizer must hold every
    parameter from the start (the trainers create it before this callback first freezes anything);
    a frozen parameter gets no gradient, so the optimizer leaves it alone until it is unfrozen.
    """

    def __init__(self, groups: list[LayerGroup], unfreeze_every_steps: int):
        if unfreeze_every_steps < 1:
            raise ValueError(f"`progressive_unfreezing_steps` must be >= 1, got {unfreeze_every_steps}.")
        self.groups = groups
        self.unfreeze_every_steps = unfreeze_every_steps

    def num_trainable_groups(self, global_step: int) -> int:
        return min(len(self.groups), 1 + global_step // self.unfreeze_every_steps)

    def apply(self, model: nn.Module, global_step: int) -> None:
        trainable = self.num_trainable_groups(global_step)
        parameters = dict(model.named_parameters())
        for depth, group in enumerate(reversed(self.groups)):
            for name in group.parameter_names:
                parameters[name].requires_grad_(depth < trainable)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.apply(model, state.global_step)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.apply(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.apply(model, len(self.groups) * self.unfreeze_every_steps)  # leave the model fully trainable


def default_target_modules(model: nn.Module) -> list[str]:
    """Every linear and convolution layer inside the repeated blocks, by full module name.

    The adapter default for architectures PEFT has no mapping for (ViT, ResNet, …): the attention and MLP
    projections of a transformer, the convolutions of a ResNet stage; never the embeddings or the head.
    """
    blocks_name, _ = find_blocks(model)
    adaptable = (nn.Linear, nn.Conv1d, nn.Conv2d)
    names = [
        name
        for name, module in model.named_modules()
        if name.startswith(blocks_name + ".") and isinstance(module, adaptable)
    ]
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no linear or convolution layer inside {blocks_name}: name the modules "
            "to adapt with `peft_target_modules`."
        )
    return names


def read_peft_config_file(path: str) -> dict:
    """The fields of a PEFT config file (JSON or YAML), checked to name a `peft_type`."""
    values = read_yaml_or_json(path, "`peft_config_file`")
    if not isinstance(values, dict) or "peft_type" not in values:
        raise ValueError(
            f"`peft_config_file` {path!r} must hold a mapping with a `peft_type` (e.g. LORA, IA3, LOHA, BOFT) and "
            "that method's fields, as in a PEFT adapter_config.json."
        )
    return values


def build_peft_config(args, model: nn.Module, classifier_name: str):
    """The PEFT config of a `BaseConfig` with an adapter strategy; the head is always in `modules_to_save`."""
    import peft
    from peft.utils import constants

    strategy = args.transfer_strategy
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if isinstance(getattr(config, "encoder", None), dict):  # a SentenceClassifier: the encoder's modules are named
        model_type = config.encoder.get("model_type")
    task_type = "SEQ_CLS" if "input_ids" in inspect.signature(model.forward).parameters else None
    if strategy == "peft":
        values = read_peft_config_file(args.peft_config_file)
        known = [member.value for member in peft.PeftType]
        if str(values["peft_type"]).upper() not in known:
            raise ValueError(
                f"`peft_config_file` {args.peft_config_file!r} has `peft_type` {values['peft_type']!r}, which PEFT "
                f"{peft.__version__} does not have: choose one of {known}."
            )
        values["peft_type"] = str(values["peft_type"]).upper()
        values.setdefault("task_type", task_type)
        try:
            config = peft.get_peft_config(values)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"`peft_config_file` {args.peft_config_file!r} is not a valid PEFT config: {error}")
    else:
        mapping = {
            "lora": constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
            "dora": constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
            "ia3": constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
            "loha": constants.TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING,
            "lokr": constants.TRANSFORMERS_MODELS_TO_LOKR_TARGET_MODULES_MAPPING,
        }[strategy]
        target_modules = args.peft_target_modules
        known_architecture = mapping.get(model_type) is not None
        if target_modules is None and not known_architecture:
            target_modules = default_target_modules(model)
        elif target_modules is None and model_type != config.model_type:  # PEFT reads the wrapper's type: name them
            target_modules = list(mapping[model_type])
        common = {"task_type": task_type, "target_modules": target_modules}
        if strategy in ("lora", "dora"):
            config = peft.LoraConfig(
                r=args.adapter_rank,
                lora_alpha=args.adapter_alpha,
                lora_dropout=args.adapter_dropout,
                use_dora=strategy == "dora",
                **common,
            )
        elif strategy == "ia3":
            feedforward = None if known_architecture and args.peft_target_modules is None else []
            config = peft.IA3Config(feedforward_modules=feedforward, **common)
        elif strategy == "loha":
            config = peft.LoHaConfig(
                r=args.adapter_rank, alpha=args.adapter_alpha, rank_dropout=args.adapter_dropout, **common
            )
        else:
            config = peft.LoKrConfig(
                r=args.adapter_rank, alpha=args.adapter_alpha, rank_dropout=args.adapter_dropout, **common
            )
    return with_head_saved(config, classifier_name)


def with_head_saved(peft_config, classifier_name: str):
    """A copy of `peft_config` whose `modules_to_save` includes the classification head."""
    peft_config = copy.deepcopy(peft_config)
    modules_to_save = list(getattr(peft_config, "modules_to_save", None) or [])
    if classifier_name not in modules_to_save:
        peft_config.modules_to_save = modules_to_save + [classifier_name]
    return peft_config


def keep_frozen_batch_norm_in_eval_mode(model: nn.Module) -> list:
    """Frozen BatchNorm layers run in inference mode in training too: their running statistics stay as loaded.

    A BatchNorm layer whose weight and bias are frozen (feature extraction, frozen layers, a PEFT adapter, a group
    that gradual unfreezing has not reached yet) would otherwise still update its running mean and variance in
    training mode, so a "frozen" backbone would change, and an adapter saved without those buffers would no
    longer reproduce the trained model. This is Keras' rule for non-trainable BatchNorm layers. The check runs at
    every forward pass, so a layer that is unfrozen later trains normally from then on. Returns the hook handles.
    """

    def hook(module, args):
        parameters = list(module.parameters(recurse=False))
        if module.training and parameters and not any(p.requires_grad for p in parameters):
            module.training = False

    return [
        module.register_forward_pre_hook(hook)
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    ]


def check_target_modules(model: nn.Module, peft_config) -> None:
    """Every name in a PEFT config's `target_modules` list matches a module of the model (PEFT's rule: the full
    name, or its last parts); otherwise say which match nothing and which layer names the model has."""
    targets = getattr(peft_config, "target_modules", None)
    if not isinstance(targets, list | set | tuple):
        return  # None (PEFT's choice), "all-linear" or a regular expression: PEFT checks them
    names = [name for name, _ in model.named_modules()]
    unmatched = sorted(t for t in targets if not any(name == t or name.endswith("." + t) for name in names))
    if unmatched:
        layers = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d)})  # fmt: skip
        raise ValueError(
            f"`peft_target_modules` / `target_modules` {unmatched} match no module of the model. Its linear and "
            f"convolution layers are named {layers}: choose among them (or leave it unset for PEFT's default)."
        )
