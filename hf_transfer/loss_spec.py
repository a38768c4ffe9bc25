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

# What a loss reads: pooled source/target features; the target logits; both (CDAN); the target logits and a
# teacher's logits of the same rows (self-training); the last hidden states of masked copies of the target rows
# with their masked-LM labels (target MLM).
READS = ("features", "target_logits", "features_and_logits", "teacher_logits", "masked_lm")
# Who trains a loss's module: the trainer's optimizer (gradients averaged over processes like the model's), the
# loss itself with the module's own optimizer (WDGRL's critic), or nobody (a teacher, updated by `after_step`).
TRAINED_BY = ("optimizer", "loss", "none")


@dataclass
class LossInputs:
    """What a loss is computed from, for one training batch.

    Args:
        source, target: `(n, d)` / `(m, d)` pooled features of the source and target rows (losses that read
            "features").
        target_logits: `(m, C)` logits of the target rows; source_logits: `(n, C)` of the source rows.
        teacher_logits: `(m, C)` logits of the loss's teacher module on the target rows (no gradient).
        masked_hidden_states, masked_labels: `(k, T, d)` last hidden states of the masked copies of the target rows
            and their `(k, T)` masked-LM labels (-100 where nothing is predicted).
        module: the module the loss owns (e.g. the domain discriminator), or `None`.
        module_optimizer: that module's own optimizer, for a loss that trains its module itself (WDGRL).
        gather: the same tensor from every process, concatenated (no gradient); the identity on one process.
        progress: adaptation progress in [0, 1], for schedules: `global_step / max_steps`, or from the start of
            stage 2 in a two-stage run: `(global_step − source_only_steps) / (max_steps − source_only_steps)`.
        step: the optimizer steps done so far (`global_step`), e.g. to seed a loss's own random draws.
        args: the trainer's config, for the loss's hyper-parameters.
    """

    source: torch.Tensor | None = None
    target: torch.Tensor | None = None
    target_logits: torch.Tensor | None = None
    source_logits: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    masked_hidden_states: torch.Tensor | None = None
    masked_labels: torch.Tensor | None = None
    module: nn.Module | None = None
    module_optimizer: torch.optim.Optimizer | None = None
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda rows: rows
    progress: float = 0.0
    step: int = 0
    args: Any = None


@dataclass(frozen=True)
class LossSpec:
    """A loss as its trainer sees it.

    Args:
        compute: `LossInputs -> (loss, {log name: scalar})`, the scalars logged next to `loss/<name>`.
        reads: what the loss is computed from, one of `READS`.
        global_batch: whether the loss is a statistic of the whole batch (not a mean of per-row terms): with several
            processes its inputs are then gathered from every process, with gradients, first.
        method: the card's entry for it: name, what it does, its paper.
        config_fields: the config fields that are its hyper-parameters (listed in the card).
        uses_fields_of: other losses whose `config_fields` it reads too (CDAN: DANN's schedule and discriminator).
        module: builds the module the loss owns, from `(model, feature size, args)`; `None` for none. Such a module
            is saved in every checkpoint and restored on resume, and it is not part of the exported model.
        module_trained_by: `"optimizer"`: the module trains in its own parameter group of the trainer's optimizer,
            its gradients averaged over processes; `"loss"`: `compute` trains it with `module_optimizer` (Adam at
            `module_learning_rate`), saved and restored with it; `"none"`: it gets no gradients.
        after_step: `(module, unwrapped model, args) -> None`, called after every optimizer step (an EMA teacher).
        at_adaptation_start: `(module, unwrapped model, args) -> None`, called when stage 2 of a two-stage run
            starts (`source_only_steps`): the teacher becomes the stage-1 model.
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
    uses_fields_of: tuple[str, ...] = ()
    module: Callable[[int, Any], nn.Module] | None = None
    module_name: str | None = None
    module_learning_rate: str | None = None
    module_trained_by: str = "optimizer"
    after_step: Callable[[nn.Module, nn.Module, Any], None] | None = None
    at_adaptation_start: Callable[[nn.Module, nn.Module, Any], None] | None = None
    remedy_fields: tuple[str, ...] = ()

    def __post_init__(self):
        if self.reads not in READS:
            raise ValueError(f"`reads` must be one of {list(READS)}, got {self.reads!r}.")
        if (self.module is None) != (self.module_name is None):
            raise ValueError("A loss that owns a module needs both `module` and `module_name`.")
        if self.module_trained_by not in TRAINED_BY:
            raise ValueError(f"`module_trained_by` must be one of {list(TRAINED_BY)}, got {self.module_trained_by!r}.")
