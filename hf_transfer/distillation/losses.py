"""The losses of knowledge distillation, each a pure function, and the projection of student hidden states.

- `distillation_loss`: α · CE(student, labels) + (1 − α) · T² · KL(softmax(teacher / T) ‖ softmax(student / T))
  (Hinton et al. 2015), the cross-entropy over the labeled rows only;
- `hidden_state_loss`: MSE or cosine distance between paired hidden states (TinyBERT, Jiao et al. 2020;
  DistilBERT's cosine loss, Sanh et al. 2019), over the non-padding positions;
- `attention_loss`: MSE between paired attention maps (TinyBERT);
- `default_layer_map`: which teacher layer each student layer learns from (uniform, TinyBERT's g(m) = m · N / M).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), the mean over the rows (`(rows, classes)` logits).

    Computed in float32 (autocast-safe); T² keeps the gradients on the scale of the hard-label loss's (Hinton et
    al. 2015, section 2)."""
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor | None,
    alpha: float,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(loss, hard, soft)`: loss = α · hard + (1 − α) · soft.

    hard: the cross-entropy of the student with the labels, the mean over the rows whose label is not -100 (0
    when none is); soft: `soft_label_loss` over every row (0 when `alpha` is 1, where `teacher_logits` may be
    `None`). Rows without a label thus get the soft term only."""
    zero = student_logits.new_zeros((), dtype=torch.float32)
    hard = zero
    if labels is not None:
        labeled = labels != IGNORE_INDEX
        if labeled.any():
            hard = F.cross_entropy(student_logits[labeled].float(), labels[labeled])
    soft = zero if alpha == 1.0 else soft_label_loss(student_logits, teacher_logits, temperature)
    return alpha * hard + (1.0 - alpha) * soft, hard, soft


def default_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """For student layers 1..L_s, the teacher layers round(i · L_t / L_s) (halves rounded up): 3 of 6 → [2, 4, 6],
    6 of 12 → [2, 4, 6, 8, 10, 12]."""
    return [math.floor(i * teacher_layers / student_layers + 0.5) for i in range(1, student_layers + 1)]


def channels_last(states: torch.Tensor) -> torch.Tensor:
    """Hidden states as `(rows, positions, width)`: transformer states as they are, convolution maps
    `(rows, channels, height, width)` with their channels last."""
    if states.dim() == 4:
        return states.flatten(2).transpose(1, 2)
    if states.dim() != 3:
        raise ValueError(f"Hidden states must have 3 (tokens) or 4 (feature maps) dimensions, got {states.dim()}.")
    return states


def hidden_state_loss(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None, kind: str = "mse"
) -> torch.Tensor:
    """The distance between paired hidden states `(rows, positions, width)` (the student's projected to the
    teacher's width), averaged over the positions where `mask` `(rows, positions)` is 1 (all when `None`).

    `"mse"`: the mean squared difference per feature (TinyBERT's hidden-state loss); `"cosine"`: 1 − the cosine
    similarity of the two vectors at each position (DistilBERT's cosine embedding loss)."""
    student, teacher = student.float(), teacher.float()
    if kind == "mse":
        per_position = (student - teacher).pow(2).mean(dim=-1)
    elif kind == "cosine":
        per_position = 1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)
    else:
        raise ValueError(f"`kind` must be 'mse' or 'cosine', got {kind!r}.")
    if mask is None:
        return per_position.mean()
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1.0)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """TinyBERT's attention loss: the mean squared difference of two attention maps `(rows, heads, queries, keys)`
    (probabilities), over the heads, the keys and the queries where `mask` `(rows, positions)` is 1."""
    per_query = (student.float() - teacher.float()).pow(2).mean(dim=(1, 3))  # (rows, queries)
    if mask is None:
        return per_query.mean()
    mask = mask.to(per_query.dtype)
    return (per_query * mask).sum() / mask.sum().clamp(min=1.0)


class HiddenStateProjection(nn.Module):
    """One learned linear map per paired layer from the student's width to the teacher's (TinyBERT's W_h); an
    identity where the widths are equal. Initialised from the seed alone (the trainer forks the RNG)."""

    def __init__(self, student_widths: list[int], teacher_widths: list[int]):
        super().__init__()
        self.maps = nn.ModuleList(
            nn.Identity() if s == t else nn.Linear(s, t) for s, t in zip(student_widths, teacher_widths, strict=True)
        )

    def forward(self, index: int, states: torch.Tensor) -> torch.Tensor:
        return self.maps[index](states)

    @property
    def has_parameters(self) -> bool:
        return any(True for _ in self.parameters())
