"""The losses of continual learning, each a pure function, and the class masks of the three scenarios.

- `ewc_penalty`: λ · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)² (Kirkpatrick et al. 2017, PNAS);
- `fisher_diagonal`: F = the mean over batches of the squared gradient of the batch's loss (the empirical Fisher
  of the EWC paper's implementations); `online_fisher`: F ← γ F + F_new (Schwarz et al. 2018, "Progress & Compress");
- `lwf_loss`: α · T² · KL(softmax(previous / T) ‖ softmax(current / T)) over the earlier experiences' classes
  (Li & Hoiem 2017, "Learning without Forgetting"; the soft-label loss of `hf_transfer.distillation`);
- `masked_logits`: logits of the classes a row may be classified into, the others at a large negative value.
"""

import torch
import torch.nn.functional as F

from ..distillation.losses import soft_label_loss

MASKED_LOGIT = -1e4  # exp(-1e4) is exactly 0 in float32: a masked class takes no probability


def masked_logits(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """`logits` (rows, classes) in float32 with the classes not `allowed` (a (rows, classes) bool mask, or `None`:
    all allowed) set to `MASKED_LOGIT`."""
    logits = logits.float()
    return logits if allowed is None else logits.masked_fill(~allowed, MASKED_LOGIT)


def ewc_penalty(params: dict[str, torch.Tensor], anchors: list[tuple[dict, dict]], ewc_lambda: float) -> torch.Tensor:
    """λ · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)², summed over the (F_k, θ*_k) of `anchors` (name → tensor dicts) and the
    parameters of `params` they name; 0 without anchors."""
    total = next(iter(params.values())).new_zeros((), dtype=torch.float32)
    for fisher, anchor in anchors:
        for name, weight in fisher.items():
            total = total + (weight * (params[name].float() - anchor[name]) ** 2).sum()
    return ewc_lambda * total


def fisher_diagonal(squared_gradient_sums: dict[str, torch.Tensor], batches: int) -> dict[str, torch.Tensor]:
    """F_i = (1 / batches) Σ_b (∂L_b / ∂θ_i)², from the per-parameter sums of squared batch gradients."""
    return {name: total / batches for name, total in squared_gradient_sums.items()}


def online_fisher(previous: dict[str, torch.Tensor] | None, new: dict[str, torch.Tensor], decay: float) -> dict:
    """Online EWC's running importance: γ F_previous + F_new (F_new alone for the first experience)."""
    if previous is None:
        return dict(new)
    return {name: decay * previous[name] + value for name, value in new.items()}


def lwf_loss(
    logits: torch.Tensor, previous_logits: torch.Tensor, old_classes: torch.Tensor, alpha: float, temperature: float
) -> torch.Tensor:
    """α · T² · KL(softmax(previous / T) ‖ softmax(logits / T)) over the classes of `old_classes` (a bool mask of
    the classes): the current model keeps the previous model's answers among the classes it knew; the mean over rows."""
    return alpha * soft_label_loss(logits[:, old_classes], previous_logits[:, old_classes], temperature)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The cross-entropy of (masked) logits with the labels, the mean over the rows."""
    return F.cross_entropy(logits.float(), labels)
