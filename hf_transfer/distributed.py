"""What training on several processes needs beyond data parallelism: losses that are statistics of the global
batch, and modules trained outside the DDP-wrapped model. Only `all_gather` / `all_reduce`: gloo and NCCL alike."""

import torch
from torch import nn


class _GatherWithGradients(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = torch.distributed.get_rank(), rows.shape[0]
        gathered = [torch.empty_like(rows) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(gathered, rows.contiguous())
        return torch.cat(gathered, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad)  # the sum over every process's (identical) copy of the loss
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_gradients(rows: torch.Tensor) -> torch.Tensor:
    """All processes' `rows` (the same number on each), concatenated in rank order, differentiable.

    Every process then computes the same loss L of the global batch. The backward pass gives each process's rows
    the sum of the N processes' gradients of L, N · ∂L/∂rows, and data parallelism averages the parameter
    gradients over the N processes: the result is exactly ∂L/∂θ, as one process holding the global batch would
    compute it (tested in `tests/test_distributed.py`). Only `all_gather` and `all_reduce`, so it works on gloo too.
    """
    return _GatherWithGradients.apply(rows)


def average_gradients(accelerator, modules: list[nn.Module]) -> None:
    """Average the gradients of `modules` over the processes, as DDP does for the model: for modules a trainer
    trains outside the wrapped model (the DANN discriminator). One all-reduce of all their gradients."""
    grads = [p.grad for module in modules for p in module.parameters() if p.grad is not None]
    if accelerator.num_processes == 1 or not grads:
        return
    flat = accelerator.reduce(torch.cat([g.flatten() for g in grads]), reduction="mean")
    for grad, new in zip(grads, flat.split([g.numel() for g in grads])):
        grad.copy_(new.view_as(grad))
