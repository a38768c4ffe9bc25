"""`DistillationTrainer`: a `transformers.Trainer` that trains a student classifier on a teacher's soft labels.

The teacher is loaded once, frozen, kept in eval mode and run under `torch.no_grad` on the student's device; it is
never wrapped by DDP / FSDP (each process holds its own copy) and never saved with the student. Every training batch
holds labeled rows of `train_dataset` and, with an `unlabeled_dataset`, a fixed share of unlabeled rows, which get the
soft term only. The loss (`DistillationConfig`) is a sum of per-batch means over batches of a fixed composition, so
the Trainer's division by the accumulation steps is exact (tested against the equivalent larger batch).
"""

import hashlib
import inspect
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    EvalPrediction,
    Trainer,
)

from ..base_trainer import BaseTrainerMixin
from ..callbacks import SamplerEpochCallback, ZeroGradientsCallback
from ..distributed import average_gradients
from ..domain_mixing import DOMAIN_LABELS_KEY, ROW_INDEX_KEY, mixed_dataloader, unlabeled_rows_like
from ..features import embed_and_predict
from ..hub.model_card import Method, TrainingDescription, describe_source
from .config import DistillationConfig
from .losses import (
    IGNORE_INDEX,
    HiddenStateProjection,
    attention_loss,
    channels_last,
    default_layer_map,
    distillation_loss,
    hidden_state_loss,
)
from .student import STUDENT_RECORD

PROJECTION_FILE = "hidden_state_projection.safetensors"
TEACHER_LOGITS_FOLDER = "teacher_logits"
TEACHER_REPORT_FILE = "teacher_results.json"
INTENDED_USE = (
    "Classification of inputs like the training data above, with its labels: a smaller model trained to match its "
    "teacher.\nThe results above were measured on the evaluation sets named there, next to the teacher's on the "
    "same sets; on other\ndomains both usually do worse, and the student may lose more than the teacher."
)


class DistillationMixin(BaseTrainerMixin):
    """Knowledge distillation for any `transformers.Trainer` (sub)class: `class MyTrainer(DistillationMixin,
    Trainer): pass`.

    Extra keyword arguments: `teacher_model` (a loaded classifier, or a local path / Hub id loaded with the Auto
    class of the student's task), `unlabeled_dataset` (rows with the student's model-input columns; a label column
    there is ignored) and `peft_config` (see `BaseTrainerMixin`: the student can train with any strategy).
    """

    config_class = DistillationConfig
    _tag_names = ["hf_transfer", "knowledge-distillation"]
    # compute_loss returns per-batch means; every micro-batch holds the same numbers of labeled and unlabeled rows,
    # so the Trainer's division by the accumulation steps gives the loss of the accumulated batch exactly.
    loss_is_scaled_for_ga = False

    def __init__(self, model=None, args=None, *trainer_args, teacher_model=None, unlabeled_dataset=None,
                 peft_config=None, **kwargs):  # fmt: skip
        args = self._upgrade_args(args)
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError(
                "`compute_loss_func` is not supported by DistillationTrainer: it computes the distillation loss "
                "itself (see DistillationConfig). Remove `compute_loss_func`."
            )
        teacher = load_teacher(teacher_model, model)
        _check_teacher_fits(teacher, model, args)
        _check_unlabeled(unlabeled_dataset, args)
        self.unlabeled_dataset = unlabeled_dataset
        super().__init__(model, args, *trainer_args, peft_config=peft_config, **kwargs)
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self._teacher_report: dict | None = None
        self._teacher_name: str | None = None
        self._cached_logits: torch.Tensor | None = None  # cache_teacher_logits: the teacher's logits per row
        self.layer_map, self.projection = self._build_projection()
        if self.projection is not None and self.projection.has_parameters:
            self._check_projection_can_train()
            self.add_callback(ZeroGradientsCallback([self.projection]))
        self.add_callback(SamplerEpochCallback())

    # ---- the teacher's layers -------------------------------------------------------------------------------

    def _build_projection(self) -> tuple[list[int] | None, HiddenStateProjection | None]:
        """The layer map and the projection of the student's hidden states (when the hidden-state or attention loss
        is on); the projection initialised from the seed alone."""
        if not self.args.distils_layers:
            return None, None
        student = self.accelerator.unwrap_model(self.model)
        student_widths, teacher_widths = hidden_state_widths(student), hidden_state_widths(self.teacher)
        layers, teacher_layers = len(student_widths) - 1, len(teacher_widths) - 1
        layer_map = list(self.args.layer_map or default_layer_map(layers, teacher_layers))
        if len(layer_map) != layers or max(layer_map) > teacher_layers:
            raise ValueError(
                f"`layer_map` must give one teacher layer (0 to {teacher_layers}) for each of the student's {layers} "
                f"layers, got {layer_map}."
            )
        if self.args.attention_loss_weight > 0:
            _check_attention_maps(student, self.teacher, layer_map)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.args.seed)
            projection = HiddenStateProjection(student_widths[1:], [teacher_widths[i] for i in layer_map])
        return layer_map, projection.to(self.args.device)

    def _check_projection_can_train(self) -> None:
        engine = "DeepSpeed" if self.is_deepspeed_enabled else "FSDP" if self.is_fsdp_enabled else None
        if engine is not None:
            raise ValueError(
                f"The student's hidden states are narrower than the teacher's, so `hidden_state_loss` trains a "
                f"projection outside the model, which {engine} does not support. Use data parallelism, or a student "
                "as wide as its teacher (`build_student`), or `hidden_state_loss='none'`."
            )
        if self.optimizer is not None:
            raise ValueError(
                "A custom optimizer was passed in `optimizers`, but the hidden-state projection also trains and its "
                "parameters would be missed. Let the trainer create the optimizer, or use a student as wide as "
                "its teacher."
            )

    # ---- data ---------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        """Batches of `rows_per_batch` labeled rows of `train_dataset` and unlabeled rows of `unlabeled_dataset`."""
        if self.train_dataset is None:
            raise ValueError("DistillationTrainer: training requires a labeled `train_dataset`.")
        labeled = self._prepare_training_dataset(self.train_dataset, "train_dataset")
        label_key = "labels" if "labels" in labeled.column_names else "label"
        if label_key not in labeled.column_names:
            raise ValueError(
                f"`train_dataset` has no `label` or `labels` column (columns: {labeled.column_names}). Pass rows "
                "without labels as `unlabeled_dataset`: they get the soft term only."
            )
        _check_all_labeled(labeled, label_key)
        unlabeled = None
        if self.unlabeled_dataset is not None:
            unlabeled = self._prepare_training_dataset(self.unlabeled_dataset, "unlabeled_dataset")
            unlabeled = unlabeled_rows_like(labeled, unlabeled, label_key, "unlabeled_dataset")
        labeled_rows, unlabeled_rows = self.args.rows_per_batch(unlabeled is not None)
        if len(labeled) < labeled_rows:
            raise ValueError(
                f"`train_dataset` has {len(labeled)} rows, fewer than the {labeled_rows} labeled rows of one batch: "
                "lower `per_device_train_batch_size` or add data."
            )
        cache = self.args.cache_teacher_logits
        if cache:
            self._cached_logits = self._teacher_logits_cache(labeled, unlabeled)
        return mixed_dataloader(self, labeled, unlabeled, label_key, labeled_rows, unlabeled_rows, with_index=cache)

    def _teacher_logits_cache(self, labeled, unlabeled) -> torch.Tensor:
        """The teacher's logits on the labeled rows then the unlabeled ones, computed once (by the main process
        first, under the training precision) and saved, or read back from an earlier run with the same data and
        teacher."""
        parts = [labeled] + ([unlabeled] if unlabeled is not None else [])
        key = "_".join([d._fingerprint for d in parts] + [_teacher_signature(self.teacher)])
        path = os.path.join(self.args.output_dir, TEACHER_LOGITS_FOLDER, f"{key}.pt")
        with self.args.main_process_first(desc="teacher logits"):
            if os.path.isfile(path):
                return torch.load(path, map_location="cpu")
            batch = self.args.per_device_eval_batch_size
            with self.accelerator.autocast():
                logits = [embed_and_predict(self.teacher, part.remove_columns([c for c in ("label", "labels")
                                                                                if c in part.column_names]),
                                            data_collator=self.data_collator, batch_size=batch)["logits"]
                          for part in parts]  # fmt: skip
            logits = torch.from_numpy(np.concatenate(logits)).float()
            if self.args.should_save:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                torch.save(logits, path + ".partial")
                os.replace(path + ".partial", path)
        return logits

    # ---- the loss -----------------------------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, plus a parameter group for the hidden-state projection when it has weights."""
        optimizer = super().create_optimizer(model)
        trains_projection = self.projection is not None and self.projection.has_parameters
        if trains_projection and not any(group.get("name") == "projection" for group in optimizer.param_groups):
            self._add_module_to_optimizer(optimizer, self.projection, "projection")
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.sync_gradients and self.projection is not None:  # outside the DDP-wrapped model
            average_gradients(self.accelerator, [self.projection])
        return loss

    def _extra_trained_parameters(self):
        if self.projection is None:
            return []
        return [(f"projection.{name}", p) for name, p in self.projection.named_parameters()]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        inputs.pop(DOMAIN_LABELS_KEY, None)
        rows = inputs.pop(ROW_INDEX_KEY, None)
        labels = inputs.pop("labels", None)
        if not model.training:  # evaluation: the cross-entropy with the labels, no teacher
            outputs = model(**inputs)
            logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
            loss = _cross_entropy(logits, labels)
            return (loss, outputs) if return_outputs else loss
        layers = self.args.distils_layers
        wants = {"output_hidden_states": self.args.hidden_state_loss != "none",
                 "output_attentions": self.args.attention_loss_weight > 0}  # fmt: skip
        extra = {key: True for key, on in wants.items() if on}
        outputs = model(**inputs, **extra)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if rows is not None:  # cache_teacher_logits
            teacher_outputs = {"logits": self._cached_logits[rows.cpu()].to(logits.device)}
        else:
            teacher_outputs = self._teacher_outputs(inputs, extra) if self.args.uses_teacher else None
        teacher_logits = None if teacher_outputs is None else teacher_outputs["logits"]
        loss, hard, soft = distillation_loss(logits, teacher_logits, labels, self.args.alpha, self.args.temperature)
        self._record("loss/hard", hard)
        if self.args.alpha < 1.0:
            self._record("loss/soft", soft)
        if layers:
            loss = loss + self._layer_losses(outputs, teacher_outputs, inputs.get("attention_mask"))
        return (loss, outputs) if return_outputs else loss

    def _teacher_outputs(self, inputs: dict, extra: dict) -> dict:
        with torch.no_grad():
            outputs = self.teacher(**inputs, **extra)
        return {key: outputs[key] for key in ("logits", "hidden_states", "attentions") if outputs.get(key) is not None}

    def _layer_losses(self, outputs, teacher_outputs: dict, attention_mask) -> torch.Tensor:
        """The weighted hidden-state and attention losses over the mapped layers (the mean over the layers)."""
        total = outputs["logits"].new_zeros((), dtype=torch.float32)
        pairs = list(enumerate(self.layer_map, start=1))
        if self.args.hidden_state_loss != "none":
            student_states, teacher_states = outputs["hidden_states"], teacher_outputs["hidden_states"]
            if len(student_states) != len(pairs) + 1:
                raise ValueError(
                    f"The student returned {len(student_states)} hidden states, not the {len(pairs) + 1} its config "
                    "says (embeddings + one per layer): set `layer_map` for this architecture or turn "
                    "`hidden_state_loss` off."
                )
            values = [
                hidden_state_loss(
                    self.projection(i - 1, channels_last(student_states[i])),
                    channels_last(teacher_states[j]),
                    attention_mask if student_states[i].dim() == 3 else None,
                    self.args.hidden_state_loss,
                )
                for i, j in pairs
            ]
            value = torch.stack(values).mean()
            self._record("loss/hidden_states", value)
            total = total + self.args.hidden_state_loss_weight * value
        if self.args.attention_loss_weight > 0:
            student_maps, teacher_maps = outputs.get("attentions"), teacher_outputs.get("attentions")
            if not student_maps or not teacher_maps:
                raise ValueError(_EAGER_ATTENTION)
            values = [attention_loss(student_maps[i - 1], teacher_maps[j - 1], attention_mask) for i, j in pairs]
            value = torch.stack(values).mean()
            self._record("loss/attention", value)
            total = total + self.args.attention_loss_weight * value
        return total

    def _non_finite_remedy(self, loss_name: str | None = None) -> str:
        advice = super()._non_finite_remedy(loss_name)
        if loss_name in ("soft", "hidden_states", "attention"):
            advice = f"Check the teacher's outputs (finite logits, same inputs as the student's). {advice}"
        return advice

    # ---- the teacher's results and the card -------------------------------------------------------------------

    def evaluate_teacher(self, eval_dataset=None, batch_size: int | None = None) -> dict[str, float]:
        """The teacher's `eval_<set>_<metric>` results on the evaluation sets (default: the trainer's), with the
        trainer's `compute_metrics` (accuracy and macro-F1 if it has none), under the run's mixed precision; shown
        next to the student's in the card. Every process computes them alike (no gradients, no random numbers)."""
        eval_dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if eval_dataset is None:
            raise ValueError("`evaluate_teacher` needs evaluation sets: pass `eval_dataset` or give the trainer one.")
        sets = eval_dataset if isinstance(eval_dataset, dict) else {"": eval_dataset}
        metrics = self.compute_metrics or _accuracy_and_macro_f1
        results = {}
        for name, dataset in sets.items():
            dataset = self._remove_unused_columns(dataset, description=f"eval_dataset[{name!r}]")
            with self.accelerator.autocast():  # the precision the student is evaluated in
                outputs = embed_and_predict(self.teacher, dataset, data_collator=self.data_collator,
                                            batch_size=batch_size or self.args.per_device_eval_batch_size)  # fmt: skip
            if outputs["labels"] is None:
                raise ValueError(f"`eval_dataset[{name!r}]` has no labels: the teacher cannot be evaluated on it.")
            prefix = f"eval_{name}_" if name else "eval_"
            values = metrics(EvalPrediction(predictions=outputs["logits"], label_ids=outputs["labels"]))
            results.update({prefix + key: float(value) for key, value in values.items()})
        self._teacher_report = {**self._teacher_description(), "results": results}
        return results

    def set_teacher_name(self, name: str) -> None:
        """How the card names the teacher (e.g. "all-MiniLM-L6-v2 fine-tuned on amazon:books (train)"); default: its
        Hub id, or the name of its local folder."""
        self._teacher_name = name

    def _teacher_description(self) -> dict:
        student = self.accelerator.unwrap_model(self.model)
        built = getattr(getattr(student, "config", None), STUDENT_RECORD, None)
        return {
            "teacher": self._teacher_name or describe_source(getattr(self.teacher.config, "_name_or_path", None)),
            "teacher_parameters": sum(p.numel() for p in self.teacher.parameters()),
            "student_parameters": sum(p.numel() for p in student.parameters()),
            "student_layers": None if built is None else built.get("layers"),
        }

    def describe_training(self) -> TrainingDescription:
        args = self.args
        teacher = self._teacher_description()
        hyperparameters = [("teacher", teacher["teacher"]), ("alpha", args.alpha), ("temperature", args.temperature)]
        if args.distils_layers:
            hyperparameters += [("hidden_state_loss", args.hidden_state_loss),
                                ("hidden_state_loss_weight", args.hidden_state_loss_weight),
                                ("attention_loss_weight", args.attention_loss_weight),
                                ("layer_map (student layer 1.. → teacher layer)", self.layer_map)]  # fmt: skip
        if teacher["student_layers"] is not None:
            hyperparameters.append(("student built from the teacher, keeping its layers", teacher["student_layers"]))
        if self.unlabeled_dataset is not None:
            hyperparameters.append(("unlabeled_batch_fraction", args.unlabeled_batch_fraction))
        if args.cache_teacher_logits:
            hyperparameters.append(("cache_teacher_logits (computed once before training)", True))
        methods = [_KD if args.alpha < 1 else _HARD_LABELS]
        if args.hidden_state_loss != "none":
            methods.append(_HIDDEN_STATES)
        if args.attention_loss_weight > 0:
            methods.append(_ATTENTION)
        return TrainingDescription(
            summary=(
                f"by knowledge distillation from {teacher['teacher']} ({teacher['teacher_parameters']:,} parameters) "
                f"into this {teacher['student_parameters']:,}-parameter student."
            ),
            methods=methods,
            hyperparameters=hyperparameters,
            tags=["knowledge-distillation"],
            data_label="Training data (labeled)",
            intended_use=INTENDED_USE,
        )

    # ---- training state -----------------------------------------------------------------------------------------

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save and self.projection is not None and self.projection.has_parameters:
            save_model(self.projection, os.path.join(output_dir, PROJECTION_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is not None and self.projection is not None and self.projection.has_parameters:
            path = os.path.join(checkpoint, PROJECTION_FILE)
            if not os.path.isfile(path):
                raise ValueError(
                    f"The checkpoint {checkpoint} has no {PROJECTION_FILE}: it was not trained with this run's "
                    "hidden-state loss. Resume with the `hidden_state_loss` and `layer_map` it was trained with."
                )
            missing, unexpected = load_model(self.projection, path, strict=False, device=str(self.args.device))
            if missing or unexpected:
                raise ValueError(f"{path} does not fit this run's projection: resume with the same `layer_map`.")
        super()._load_optimizer_and_scheduler(checkpoint)


_KD = Method(
    "Knowledge distillation",
    "α · cross-entropy with the labels + (1 − α) · T² · KL(teacher ‖ student) of the temperature-T softmaxes; rows "
    "without a label get the soft term only",
    "Hinton et al., 2015, arXiv:1503.02531",
)
_HARD_LABELS = Method("Hard labels only", "cross-entropy with the labels (alpha = 1): the baseline without the teacher")
_HIDDEN_STATES = Method(
    "Hidden-state distillation",
    "the distance between each student layer's output (projected to the teacher's width where narrower) and its "
    "mapped teacher layer's",
    "Jiao et al., TinyBERT, Findings of EMNLP 2020",
)
_ATTENTION = Method(
    "Attention distillation",
    "the mean squared difference of the attention maps of mapped layers",
    "Jiao et al., TinyBERT, Findings of EMNLP 2020",
)
_EAGER_ATTENTION = (
    "`attention_loss_weight` > 0 needs the attention maps of both models, which only eager attention returns: load "
    "the student and the teacher with `attn_implementation='eager'` (or call `model.set_attn_implementation('eager')`)."
)


def load_teacher(teacher_model, student):
    """The teacher: a loaded model as is, or a local path / Hub id loaded with the Auto class of the student's task
    (sequence or image classification)."""
    if teacher_model is None:
        raise ValueError(
            "DistillationTrainer needs `teacher_model=`: a loaded classifier, or a local path / Hub id of one."
        )
    if isinstance(teacher_model, (str, os.PathLike)):
        forward = inspect.signature(student.forward).parameters if student is not None else {}
        auto = AutoModelForImageClassification if "pixel_values" in forward else AutoModelForSequenceClassification
        try:
            return auto.from_pretrained(str(teacher_model))
        except OSError as error:
            raise OSError(
                f"`teacher_model`={str(teacher_model)!r} could not be loaded as a {auto.__name__} ({error}). Give a "
                "local folder with config.json and the weights of a trained classifier, a Hub id reachable from "
                "here, or a loaded model."
            ) from error
    if not isinstance(teacher_model, nn.Module):
        raise TypeError(f"`teacher_model` must be a model or a path / Hub id, got {type(teacher_model).__name__}.")
    return teacher_model


def _check_teacher_fits(teacher, student, args: DistillationConfig) -> None:
    """The same label space; the same vocabulary for text (both read the same token ids)."""
    if student is None:
        return  # BaseTrainerMixin names the missing model
    teacher_config, student_config = teacher.config, getattr(student, "config", None)
    if teacher_config.num_labels != getattr(student_config, "num_labels", None):
        raise ValueError(
            f"The teacher has {teacher_config.num_labels} labels and the student "
            f"{getattr(student_config, 'num_labels', None)}: distillation needs one label space. Load the student "
            "with the teacher's `num_labels`, `id2label` and `label2id`."
        )
    teacher_labels, student_labels = teacher_config.id2label, student_config.id2label
    if _named(teacher_labels) and _named(student_labels) and teacher_labels != student_labels:
        raise ValueError(
            f"The teacher's labels {teacher_labels} and the student's {student_labels} differ: the soft labels would "
            "teach the wrong classes. Load the student with the teacher's `id2label` and `label2id`."
        )
    vocabularies = (getattr(teacher_config, "vocab_size", None), getattr(student_config, "vocab_size", None))
    if None not in vocabularies and vocabularies[0] != vocabularies[1]:
        raise ValueError(
            f"The teacher's vocabulary has {vocabularies[0]} tokens and the student's {vocabularies[1]}: the same "
            "token ids would mean different tokens to them. Use a student with the teacher's tokenizer (e.g. "
            "`hf_transfer.build_student(teacher, num_layers=...)`); teachers with another tokenizer are not supported."
        )
    if args.distils_layers and hasattr(teacher, "peft_config"):
        raise ValueError("Merge the PEFT teacher first (`teacher.merge_and_unload()`) to distil its layers.")


def _named(id2label: dict) -> bool:
    """Whether labels have names (not transformers' default `LABEL_0`, `LABEL_1`, ...)."""
    return any(label != f"LABEL_{index}" for index, label in id2label.items())


def _check_unlabeled(unlabeled_dataset, args: DistillationConfig) -> None:
    default = DistillationConfig.__dataclass_fields__["unlabeled_batch_fraction"].default
    if unlabeled_dataset is None and args.unlabeled_batch_fraction != default:
        raise ValueError(
            f"`unlabeled_batch_fraction`={args.unlabeled_batch_fraction} sets the share of unlabeled rows, but no "
            "`unlabeled_dataset` was given: pass one, or leave the fraction at its default."
        )
    if unlabeled_dataset is not None and args.alpha == 1.0:
        raise ValueError(
            "`unlabeled_dataset` rows get the soft (teacher) term only, which `alpha`=1 turns off: they would train "
            "nothing. Lower `alpha` (e.g. 0.5), or drop `unlabeled_dataset`."
        )
    if unlabeled_dataset is not None and len(unlabeled_dataset) == 0:
        raise ValueError("`unlabeled_dataset` is empty: pass at least one row, or leave it out.")
    rows = args.per_device_train_batch_size * args.unlabeled_batch_fraction
    if unlabeled_dataset is not None and (abs(rows - round(rows)) > 1e-9 or round(rows) < 1):
        raise ValueError(
            f"`per_device_train_batch_size`={args.per_device_train_batch_size} × `unlabeled_batch_fraction`="
            f"{args.unlabeled_batch_fraction} is not a whole number of unlabeled rows (>= 1): choose values that "
            "split the batch evenly."
        )


def _check_all_labeled(dataset, label_key: str) -> None:
    """No row of the labeled data without a label: such rows belong in `unlabeled_dataset` (a fixed share of each
    batch), or the accumulated and multi-process losses would weigh rows unevenly."""
    labels = np.asarray(dataset.with_format("numpy")[label_key])
    if labels.dtype.kind in "iu" and (labels == IGNORE_INDEX).any():
        row = int(np.flatnonzero(labels == IGNORE_INDEX)[0])
        raise ValueError(
            f"`train_dataset` row {row} (and {int((labels == IGNORE_INDEX).sum()) - 1} more) has the label -100 (no "
            "label). Pass unlabeled rows as `unlabeled_dataset=`: each batch then holds a fixed share of them, which "
            "get the soft term only."
        )


def _check_attention_maps(student, teacher, layer_map: list[int]) -> None:
    heads = (getattr(student.config, "num_attention_heads", None), getattr(teacher.config, "num_attention_heads", None))
    if None in heads or heads[0] != heads[1]:
        raise ValueError(
            f"The attention loss compares attention maps head by head, but the student has {heads[0]} heads and the "
            f"teacher {heads[1]}: use a student with the teacher's heads (`build_student`), or "
            "`attention_loss_weight=0`."
        )
    if 0 in layer_map:
        raise ValueError("`layer_map` maps a student layer to the embeddings (0), which have no attention map.")
    for model in (student, teacher):
        if getattr(model.config, "_attn_implementation", "eager") != "eager":
            raise ValueError(_EAGER_ATTENTION)


def hidden_state_widths(model) -> list[int]:
    """The width of each hidden state the model returns (embeddings first, then one per layer or stage)."""
    config = model.config
    if getattr(config, "hidden_sizes", None) and getattr(config, "embedding_size", None):
        return [config.embedding_size] + list(config.hidden_sizes)  # ResNet-style stages
    if getattr(config, "hidden_size", None) and getattr(config, "num_hidden_layers", None):
        return [config.hidden_size] * (config.num_hidden_layers + 1)
    raise ValueError(
        f"{type(model).__name__}'s config gives neither `hidden_size` and `num_hidden_layers` nor `embedding_size` "
        "and `hidden_sizes`, so its hidden states cannot be paired: use `hidden_state_loss='none'` and "
        "`attention_loss_weight=0`."
    )


def _teacher_signature(teacher) -> str:
    """A short hash of the teacher's config and weights (which teacher a logits cache belongs to)."""
    digest = hashlib.sha256(teacher.config.to_json_string().encode())
    for name, parameter in teacher.state_dict().items():
        digest.update(name.encode())
        digest.update(np.float64(parameter.detach().double().sum().item()).tobytes())
    return digest.hexdigest()[:16]


def _cross_entropy(logits: torch.Tensor, labels) -> torch.Tensor:
    if labels is None:
        return logits.new_zeros(())
    labeled = labels != IGNORE_INDEX
    if not labeled.any():
        return logits.new_zeros(())
    return F.cross_entropy(logits[labeled].float(), labels[labeled])


def _accuracy_and_macro_f1(prediction: EvalPrediction) -> dict[str, float]:
    from ..metrics import compute_classification_metrics

    return compute_classification_metrics(prediction)


class DistillationTrainer(DistillationMixin, Trainer):
    """A `transformers.Trainer` for knowledge distillation of classifiers (text or images).

    Example:

    ```python
    from hf_transfer import DistillationConfig, DistillationTrainer, build_student

    student = build_student(teacher, num_layers=3)  # every weight from the teacher's layers 0, 3, 5
    args = DistillationConfig(output_dir="out", alpha=0.5, temperature=2.0, hidden_state_loss="mse")
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=train,
                                  unlabeled_dataset=target_unlabeled, eval_dataset={"validation": validation},
                                  processing_class=tokenizer, compute_metrics=compute_classification_metrics)
    trainer.train()
    trainer.evaluate_teacher()  # the teacher's results, next to the student's in the card
    trainer.save_model()
    ```
    """
