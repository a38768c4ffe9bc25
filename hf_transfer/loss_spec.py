"""`LossSpec`: one training loss declared in one place.

A trainer family keeps a plain table `{name: LossSpec(...)}` of its losses (see
`hf_transfer.domain_adaptation.losses.ADAPTATION_LOSSES`) and its trainer reads everything about a loss from there:
what to compute and on which inputs, whether to gather those inputs over the processes first, which module the
loss owns and trains, what its model card says, which config fields are its hyper-parameters (shown in the card and
named when the loss goes non-finite). Adding a loss is one function, one entry in the table, and its tests.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .hub.model_card import Method

READS = ("features", "target_logits")


@dataclass
class LossInputs:
    """What a loss is computed from, for one training batch.

    Args:
        source, target: `(n, d)` / `(m, d)` pooled features of the source and target rows (losses that read
            "features").
        target_logits: `(m, C)` logits of the target rows (losses that read "target_logits").
        module: the module the loss owns (e.g. the domain discriminator), or `None`.
        progress: training progress `global_step / max_steps`, in [0, 1], for schedules.
        args: the trainer's config, for the loss's hyper-parameters.
    """

    source: torch.Tensor | None = None
    target: torch.Tensor | None = None
    target_logits: torch.Tensor | None = None
    module: nn.Module | None = None
    progress: float = 0.0
    args: Any = None


@dataclass(frozen=True)
class LossSpec:
    """A loss as its trainer sees it.

    Args:
        compute: `LossInputs -> (loss, {log name: scalar})`, the scalars logged next to `loss/<name>`.
        reads: `"features"` (pooled source and target features) or `"target_logits"`.
        global_batch: whether the loss is a statistic of the whole batch (not a mean of per-row terms): with several
            processes its inputs are then gathered from every process, with gradients, first.
        method: the card's entry for it: name, what it does, its paper.
        config_fields: the config fields that are its hyper-parameters (listed in the card).
        module: builds the module the loss owns and trains, from `(input size, args)`; `None` for none. Such a
            module trains in its own optimizer parameter group, is saved in every checkpoint and restored on resume,
            its gradients are averaged over processes, and it is not part of the exported model.
        module_name: the name of that module (trainer attribute, parameter group, `<name>.safetensors` file).
        module_learning_rate: the config field with that module's learning rate (its value `None`:
            `learning_rate`).
        remedy_fields: settings to lower, besides the loss's weight, when it is not finite.
    """

    compute: Callable[[LossInputs], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    reads: str
    global_batch: bool
    method: Method
    config_fields: tuple[str, ...] = ()
    module: Callable[[int, Any], nn.Module] | None = None
    module_name: str | None = None
    module_learning_rate: str | None = None
    remedy_fields: tuple[str, ...] = ()

    def __post_init__(self):
        if self.reads not in READS:
            raise ValueError(f"`reads` must be one of {list(READS)}, got {self.reads!r}.")
        if (self.module is None) != (self.module_name is None):
            raise ValueError("A loss that owns a module needs both `module` and `module_name`.")
