"""The inner and outer updates of MAML, first-order MAML and Reptile on any `transformers` (or PEFT) model, through
`torch.func.functional_call`: the model's own modules run with other values of the trained parameters, so no
module is copied or patched and the other parameters and buffers are the model's own."""

import torch
from torch.func import functional_call


def task_loss(model, params: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
    """The model's loss on `batch` (with its `labels`) when its trained parameters take the values `params`."""
    outputs = functional_call(model, params, args=(), kwargs=batch, strict=False)
    return outputs["loss"] if isinstance(outputs, dict) else outputs[0]


def adapt(model, params: dict, batch: dict, learning_rate: float, steps: int, create_graph: bool) -> dict:
    """The inner loop: `steps` SGD steps φ ← φ − α ∇L_batch(φ) from φ = `params`. With `create_graph` the result stays
    differentiable with respect to `params` through the steps (second-order MAML)."""
    fast = dict(params)
    for _ in range(steps):
        loss = task_loss(model, fast, batch)
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph, allow_unused=True)
        fast = {name: w if g is None else w - learning_rate * g for (name, w), g in zip(fast.items(), grads)}
    return fast


def maml_gradients(model, params: dict, support: dict, query: dict, learning_rate: float, steps: int,
                   first_order: bool) -> tuple[torch.Tensor, list]:  # fmt: skip
    """(query loss after adaptation, meta-gradient of each of `params`) of one task (Finn et al. 2017).

    Second order: ∇_θ L_query(φ(θ)), differentiating through the inner steps. First order (FOMAML): the inner
    gradients are constants, so the meta-gradient is ∇_φ L_query(φ) at the adapted φ. A parameter the loss does not
    reach gets `None`."""
    if first_order:
        start = {name: p.detach().requires_grad_() for name, p in params.items()}
        fast = adapt(model, start, support, learning_rate, steps, create_graph=False)
        fast = {name: w.detach().requires_grad_() for name, w in fast.items()}
        loss = task_loss(model, fast, query)
        return loss.detach(), list(torch.autograd.grad(loss, list(fast.values()), allow_unused=True))
    fast = adapt(model, params, support, learning_rate, steps, create_graph=True)
    loss = task_loss(model, fast, query)
    return loss.detach(), list(torch.autograd.grad(loss, list(params.values()), allow_unused=True))


def reptile_gradients(model, params: dict, batches: list[dict], learning_rate: float,
                      steps: int) -> tuple[torch.Tensor, list]:  # fmt: skip
    """(loss of the last inner step, θ − φ for each of `params`) of one task (Nichol et al. 2018): φ after `steps`
    SGD steps from θ, cycling through `batches` (the task's support, then query rows)."""
    fast = {name: p.detach().clone().requires_grad_() for name, p in params.items()}
    loss = None
    for step in range(steps):
        loss = task_loss(model, fast, batches[step % len(batches)])
        grads = torch.autograd.grad(loss, list(fast.values()), allow_unused=True)
        fast = {n: (w if g is None else w - learning_rate * g).detach().requires_grad_()
                for (n, w), g in zip(fast.items(), grads)}  # fmt: skip
    return loss.detach(), [p.detach() - fast[name].detach() for name, p in params.items()]
