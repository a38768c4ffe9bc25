"""`DistillationConfig`: the `TrainingArguments` of `DistillationTrainer`."""

from dataclasses import dataclass, field

from ..base_config import BaseConfig

HIDDEN_STATE_LOSSES = ("none", "mse", "cosine")


@dataclass
class DistillationConfig(BaseConfig):
    r"""
    Configuration of [`DistillationTrainer`]: every `TrainingArguments` field, the transfer strategy of
    [`BaseConfig`] (the student can train in full, with LoRA or any PEFT method, ...) and the distillation
    hyper-parameters below. Parsed into a command line by `HfArgumentParser`.

    The loss of a batch (Hinton et al. 2015, "Distilling the knowledge in a neural network"):

        α · CE(student, labels) + (1 − α) · T² · KL(softmax(teacher / T) ‖ softmax(student / T))
        + hidden_state_loss_weight · hidden-state loss + attention_loss_weight · attention loss

    The cross-entropy is the mean over the labeled rows, the KL term the mean over every row: unlabeled rows
    (`unlabeled_dataset` of the trainer, e.g. target-domain text) get the soft term only, which makes distillation
    on target-domain data a form of adaptation. T² keeps the soft term's gradients on the scale of the hard term's
    when T changes.

    Parameters:
        alpha (`float`, defaults to `0.5`): weight α of the hard-label cross-entropy; 1 − α weighs the soft term.
            `alpha=1` trains on hard labels alone (the baseline without the teacher's soft labels).
        temperature (`float`, defaults to `2.0`): T, the softmax temperature of both models in the soft term
            (DistilBERT used 2).
        hidden_state_loss (`str`, defaults to `"none"`): distil hidden states too (TinyBERT, Jiao et al. 2020;
            DistilBERT's cosine loss, Sanh et al. 2019): `"mse"` or `"cosine"` between each student layer's output
            and the output of the teacher layer `layer_map` gives it, over the non-padding positions. When the widths
            differ, a learned linear projection maps the student's states to the teacher's width (trained with the
            student, saved in checkpoints, not in the exported student).
        hidden_state_loss_weight (`float`, defaults to `1.0`): weight of the hidden-state loss.
        attention_loss_weight (`float`, defaults to `0.0`): weight of the attention-map loss (TinyBERT): the mean
            squared error between the attention probabilities of each mapped pair of layers. Needs the same number of
            heads in both models and eager attention (`attn_implementation="eager"` when loading them). 0: off.
        layer_map (`list[int]` or `None`, defaults to `None`): for each student layer 1..L_s, the teacher layer
            1..L_t whose output it learns (0: the embeddings). `None`: uniform, student layer i ↔ teacher layer
            round(i · L_t / L_s) (TinyBERT's mapping; 3 of 6 layers: [2, 4, 6]).
        unlabeled_batch_fraction (`float`, defaults to `0.5`): with an `unlabeled_dataset`, the fraction of each
            training batch taken from it (e.g. 0.5 and a batch of 32: 16 labeled and 16 unlabeled rows). Not used
            without one.
        cache_teacher_logits (`bool`, defaults to `False`): run the teacher once over every training row before
            the first step and reuse its logits (cheaper from the second epoch on); saved under
            `<output_dir>/teacher_logits/`, keyed by the datasets' fingerprints and the teacher's weights, and reused
            by a resumed run. Equal to the logits of the teacher run in each step up to floating-point rounding
            (rows are padded in other batches). Not with the hidden-state or attention losses (they need the
            teacher's layers at every step), and only for deterministic preprocessing (no random augmentation).
    """

    alpha: float = field(
        default=0.5,
        metadata={"help": "Weight α of the hard-label cross-entropy; 1 − α weighs the soft (teacher) term."},
    )
    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T of the soft term (T > 0)."})
    hidden_state_loss: str = field(
        default="none",
        metadata={
            "help": "Distil hidden states too: 'mse' or 'cosine' between mapped layers (see --layer_map); 'none'.",
            "choices": list(HIDDEN_STATE_LOSSES),
        },
    )
    hidden_state_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the hidden-state loss."})
    attention_loss_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the attention-map MSE between mapped layers (TinyBERT); 0 = off."},
    )
    layer_map: list[int] | None = field(
        default=None,
        metadata={
            "help": "For each student layer, the teacher layer (1..L_t, 0 = embeddings) it learns from. Default: "
            "uniform, round(i * L_t / L_s)."
        },
    )
    unlabeled_batch_fraction: float = field(
        default=0.5,
        metadata={"help": "With an unlabeled dataset: the fraction of each training batch taken from it."},
    )
    cache_teacher_logits: bool = field(
        default=False,
        metadata={
            "help": "Compute the teacher's logits on every training row once before training and reuse them "
            "(saved in <output_dir>/teacher_logits/). Not with hidden-state or attention losses."
        },
    )

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1] (the weight of the hard-label loss), got {self.alpha}.")
        if not self.temperature > 0:
            raise ValueError(f"`temperature` must be > 0 (DistilBERT used 2), got {self.temperature}.")
        if self.hidden_state_loss not in HIDDEN_STATE_LOSSES:
            raise ValueError(
                f"`hidden_state_loss` must be one of {list(HIDDEN_STATE_LOSSES)}, got {self.hidden_state_loss!r}."
            )
        if self.hidden_state_loss_weight < 0 or self.attention_loss_weight < 0:
            raise ValueError(
                "`hidden_state_loss_weight` and `attention_loss_weight` must be >= 0, got "
                f"{self.hidden_state_loss_weight} and {self.attention_loss_weight}."
            )
        if self.hidden_state_loss == "none" and self.hidden_state_loss_weight != 1.0:
            raise ValueError(
                f"`hidden_state_loss_weight`={self.hidden_state_loss_weight} weighs a loss that is off: set "
                "`hidden_state_loss` to 'mse' or 'cosine', or leave the weight at 1.0."
            )
        if self.layer_map is not None and not self.distils_layers:
            raise ValueError(
                "`layer_map` pairs student and teacher layers for the hidden-state and attention losses, which are "
                "off: set `hidden_state_loss` or `attention_loss_weight`, or drop `layer_map`."
            )
        if self.layer_map is not None and (not self.layer_map or min(self.layer_map) < 0):
            raise ValueError(f"`layer_map` must list one teacher layer >= 0 per student layer, got {self.layer_map}.")
        if self.cache_teacher_logits and self.distils_layers:
            raise ValueError(
                "`cache_teacher_logits` keeps the teacher's logits only, but the hidden-state or attention loss needs "
                "its layers at every step: turn the cache off, or those losses."
            )
        if self.cache_teacher_logits and self.alpha == 1.0:
            raise ValueError("`cache_teacher_logits` with `alpha`=1: the teacher is not used at all; drop the cache.")
        if not 0.0 < self.unlabeled_batch_fraction < 1.0:
            raise ValueError(
                f"`unlabeled_batch_fraction` must be strictly between 0 and 1, got {self.unlabeled_batch_fraction}."
            )
        super().__post_init__()

    @property
    def distils_layers(self) -> bool:
        """Whether a hidden-state or attention loss pairs the layers of the two models."""
        return self.hidden_state_loss != "none" or self.attention_loss_weight > 0

    @property
    def uses_teacher(self) -> bool:
        """Whether training runs the teacher (not with `alpha=1`, the hard-label baseline)."""
        return self.alpha < 1.0 or self.distils_layers

    def rows_per_batch(self, with_unlabeled: bool) -> tuple[int, int]:
        """(labeled, unlabeled) rows of each per-device training batch."""
        if not with_unlabeled:
            return self.per_device_train_batch_size, 0
        unlabeled = round(self.per_device_train_batch_size * self.unlabeled_batch_fraction)
        return self.per_device_train_batch_size - unlabeled, unlabeled
