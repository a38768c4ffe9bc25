"""`TrainerCallback`s the trainer families add for themselves (users never need to pass them)."""

import time

from torch import nn
from transformers import TrainerCallback

from .domain_mixing import DomainMixingBatchSampler


class TrainingClock(TrainerCallback):
    """Wall time since this process's `train()` began (a resumed run counts from its restart)."""

    def __init__(self):
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def seconds(self) -> float | None:
        return None if self.start is None else time.perf_counter() - self.start


class ZeroGradientsCallback(TrainerCallback):
    """The Trainer zeroes the model's gradients after each optimizer step; this does the same for modules trained
    outside the model (a loss's own module, such as the DANN discriminator)."""

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules

    def on_step_end(self, args, state, control, **kwargs):
        for module in self.modules:
            module.zero_grad(set_to_none=True)


class SamplerEpochCallback(TrainerCallback):
    """Tells the domain-mixing sampler the epoch that is starting.

    The Trainer's own `set_epoch` cannot reach a batch sampler under accelerate's `SkipBatchSampler` and
    `BatchSamplerShard` (several processes, resumed mid-epoch); `state.epoch` is a whole number at an epoch's
    start and `epoch + fraction` in a checkpoint, so its integer part is the epoch in every case.
    """

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        sampler = getattr(train_dataloader, "batch_sampler", None)
        while sampler is not None and not isinstance(sampler, DomainMixingBatchSampler):
            sampler = getattr(sampler, "batch_sampler", None)
        if sampler is not None:
            sampler.set_epoch(int(state.epoch or 0))


class StepEndCallback(TrainerCallback):
    """Calls `function()` after every optimizer step (e.g. a loss's EMA teacher update)."""

    def __init__(self, function):
        self.function = function

    def on_step_end(self, args, state, control, **kwargs):
        self.function()
