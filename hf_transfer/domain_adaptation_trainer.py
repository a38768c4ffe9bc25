"""`DomainAdaptationTrainer`: a `transformers.Trainer` that adds DANN, MMD and CORAL alignment losses.

The trainer takes a labeled source `train_dataset` and an unlabeled `target_dataset`. Every training batch holds
source and target rows in a fixed ratio; one forward pass runs over both; the classification loss uses the source
rows only; the alignment losses compare the pooled source and target features. Everything is in
`DomainAdaptationMixin`, so an existing `Trainer` subclass becomes domain-adaptive by mixing it in.
"""

import inspect
import math
import os
from collections import defaultdict
from functools import partial

import datasets
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import seed_worker

from .domain_adaptation_config import DomainAdaptationConfig
from .features import capture_head_input, feature_dim, pool_features
from .losses import (
    DomainDiscriminator,
    coral_loss,
    dann_coefficient,
    domain_adversarial_loss,
    information_maximization_loss,
    minimum_class_confusion_loss,
    mmd_loss,
)
from .transfer_trainer import NonFiniteLossError, TransferLearningMixin

DOMAIN_LABELS_KEY = "domain_labels"
DISCRIMINATOR_WEIGHTS_NAME = "domain_discriminator.safetensors"


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


class DomainMixingBatchSampler(Sampler[list[int]]):
    """Batches of `source_rows` source indices followed by `target_rows` target indices.

    Indices address a dataset that holds the `num_source` source rows first and the `num_target` target rows
    after them. An epoch is one pass over a fresh permutation of the source (the last `num_source % source_rows`
    rows of the permutation are left for later epochs); target rows are drawn from back-to-back permutations of
    the target, so a smaller target set cycles and a larger one is sampled without repeats. The order depends
    only on `(seed, epoch)`, so a resumed run sees exactly the batches an uninterrupted run sees.
    """

    def __init__(self, num_source: int, num_target: int, source_rows: int, target_rows: int, seed: int):
        self.num_source, self.num_target = num_source, num_target
        self.source_rows, self.target_rows = source_rows, target_rows
        self.batch_size = source_rows + target_rows
        self.drop_last = False
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_source // self.source_rows

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        source_order = torch.randperm(self.num_source, generator=generator).tolist()
        num_batches = len(self)
        target_order: list[int] = []
        if self.target_rows:
            permutations = math.ceil(num_batches * self.target_rows / self.num_target)
            for _ in range(permutations):
                target_order += torch.randperm(self.num_target, generator=generator).tolist()
        for batch in range(num_batches):
            source = source_order[batch * self.source_rows : (batch + 1) * self.source_rows]
            target = target_order[batch * self.target_rows : (batch + 1) * self.target_rows]
            yield source + [self.num_source + index for index in target]


class _TwoDomainDataset(Dataset):
    """Source rows then target rows; each row gets its domain label, target rows get the ignore label -100."""

    def __init__(self, source, target, label_key: str):
        self.source, self.target, self.label_key = source, target, label_key

    def __len__(self) -> int:
        return len(self.source) + (len(self.target) if self.target is not None else 0)

    def __getitem__(self, index: int) -> dict:
        if index < len(self.source):
            row = dict(self.source[index])
            row[DOMAIN_LABELS_KEY] = 0
        else:
            row = dict(self.target[index - len(self.source)])
            row[self.label_key] = -100  # target labels, if any, never reach the loss
            row[DOMAIN_LABELS_KEY] = 1
        return row


class _DomainLabelCollator:
    """Runs the user's collator on the rows without their domain label, then adds `domain_labels` to the batch."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict:
        domains = [feature.pop(DOMAIN_LABELS_KEY) for feature in features]
        shapes = {tuple(feature["pixel_values"].shape) for feature in features if "pixel_values" in feature}
        if len(shapes) > 1:
            raise ValueError(
                f"The images of one batch have different `pixel_values` shapes {sorted(shapes)}: source and target "
                "images of mixed sizes or modes must be preprocessed to one size and mode (convert them to RGB and "
                "resize them with the model's image processor, as the image recipes do)."
            )
        batch = self.collator(features)
        batch[DOMAIN_LABELS_KEY] = torch.tensor(domains, dtype=torch.long)
        return batch


class _ZeroDiscriminatorGradients(TrainerCallback):
    """The Trainer zeroes the model's gradients after each optimizer step; this does the same for the discriminator."""

    def __init__(self, discriminator: nn.Module):
        self.discriminator = discriminator

    def on_step_end(self, args, state, control, **kwargs):
        self.discriminator.zero_grad(set_to_none=True)


class _SamplerEpochCallback(TrainerCallback):
    """Tells the mixing sampler the epoch that is starting.

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


class DomainAdaptationMixin(TransferLearningMixin):
    """Domain adaptation for any `transformers.Trainer` (sub)class.

    Usage: `class MyDomainAdaptiveTrainer(DomainAdaptationMixin, MyTrainer): pass`.

    Extra keyword arguments: `target_dataset` (unlabeled target-domain rows with the same model-input columns
    as `train_dataset`; a label column there is ignored) and `peft_config` (see `TransferLearningMixin`: the
    transfer strategies all apply). A plain `TrainingArguments` is accepted and upgraded to a
    `DomainAdaptationConfig` with the default adaptation settings (DANN).
    """

    config_class = DomainAdaptationConfig
    _tag_names = ["hf_transfer", "domain-adaptation"]
    # compute_loss returns per-batch means; the Trainer divides them by the accumulation steps, which is exact
    # because every micro-batch holds the same number of source and target rows.
    loss_is_scaled_for_ga = False

    def __init__(self, model=None, args=None, *trainer_args, target_dataset=None, peft_config=None, **kwargs):
        args = self._upgrade_args(args)
        problem_type = getattr(getattr(model, "config", None), "problem_type", None)
        if problem_type not in (None, "single_label_classification"):
            raise ValueError(
                f"The model's `config.problem_type` is {problem_type!r}; DomainAdaptationTrainer trains single-label "
                "classification (cross-entropy on the source rows). Set `problem_type='single_label_classification'`."
            )
        if getattr(getattr(model, "config", None), "num_labels", 2) < 2:
            raise ValueError(
                "The model has `num_labels` < 2 (regression); DomainAdaptationTrainer needs a classifier with at "
                "least 2 labels: load it with `num_labels=<number of classes>`."
            )

        if args.adaptation_loss:
            if target_dataset is None:
                raise ValueError(
                    f"`adaptation_loss`={args.adaptation_loss} needs unlabeled target rows: pass `target_dataset=`, "
                    "or set `adaptation_loss` to 'none' for the source-only baseline."
                )
            if len(target_dataset) == 0:
                raise ValueError("`target_dataset` is empty: pass at least one unlabeled target-domain row.")
        self.target_dataset = target_dataset

        if kwargs.get("compute_loss_func") is not None:
            raise ValueError(
                "`compute_loss_func` is not supported by DomainAdaptationTrainer: it computes the source "
                "cross-entropy and the alignment losses itself. Remove `compute_loss_func`."
            )
        super().__init__(model, args, *trainer_args, peft_config=peft_config, **kwargs)
        discriminator_input_size = feature_dim(self.model, self._classifier, args.alignment_features)

        self.domain_discriminator = None
        if "dann" in args.adaptation_loss:
            self._check_discriminator_can_train()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(args.seed)  # the same initial discriminator for the same seed, whatever ran before
                self.domain_discriminator = DomainDiscriminator(
                    discriminator_input_size,
                    hidden_size=args.discriminator_hidden_size,
                    num_hidden_layers=args.discriminator_num_layers,
                    dropout=args.discriminator_dropout,
                )
            if self.optimizer is not None:
                raise ValueError(
                    "A custom optimizer was passed in `optimizers`, but DANN also trains the domain discriminator, "
                    "whose parameters it would miss. Let the trainer create the optimizer (set `optim` and "
                    "`learning_rate` in the config) or override `create_optimizer`."
                )
            self.domain_discriminator.to(self.args.device)
            self.add_callback(_ZeroDiscriminatorGradients(self.domain_discriminator))

        if args.adaptation_loss and args.alignment_features != "head_input":
            forward = inspect.signature(self.accelerator.unwrap_model(self.model).forward).parameters
            takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in forward.values())
            if "output_hidden_states" not in forward and not takes_kwargs:
                raise ValueError(self._no_hidden_states_message())
        self.add_callback(_SamplerEpochCallback())
        self._metrics = defaultdict(list)

    def _model_tags(self) -> list[str]:
        return list(self._tag_names) + list(self.args.adaptation_loss)

    def _no_hidden_states_message(self) -> str:
        return (
            f"`alignment_features`={self.args.alignment_features!r} pools the model's last hidden states, but "
            f"{type(self.accelerator.unwrap_model(self.model)).__name__} cannot return them (its forward takes no "
            "`output_hidden_states`, or returns no `hidden_states`). Use `alignment_features='head_input'` (the "
            "classification head's input, which works with any model)."
        )

    def _check_discriminator_can_train(self) -> None:
        """DANN's discriminator is a module of its own, outside the (wrapped) model: DDP is fine (its gradients are
        all-reduced here), but FSDP would not shard it and DeepSpeed's optimizer would not see it."""
        engine = "DeepSpeed" if self.is_deepspeed_enabled else "FSDP" if self.is_fsdp_enabled else None
        if engine is not None:
            raise ValueError(
                f"`adaptation_loss` includes 'dann', whose domain discriminator trains outside the model, which "
                f"{engine} does not support. Use data parallelism for DANN (recipes/accelerate_configs/"
                f"multi_gpu.yaml), or keep {engine} and choose losses without parameters of their own: "
                "`adaptation_loss` mmd, coral, im or mcc."
            )

    # ---- data -----------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        """Batches that hold `source_rows_per_batch` source rows and `target_rows_per_batch` target rows."""
        if self.train_dataset is None:
            raise ValueError("DomainAdaptationTrainer: training requires a labeled source `train_dataset`.")
        args = self.args
        source = self._prepare_domain_dataset(self.train_dataset, "train_dataset")
        label_key = "labels" if "labels" in source.column_names else "label"
        if label_key not in source.column_names:
            raise ValueError(
                f"`train_dataset` has no `label` or `labels` column (columns: {source.column_names}): the source "
                "rows must be labeled."
            )
        target = None
        if args.target_rows_per_batch:
            target = self._prepare_domain_dataset(self.target_dataset, "target_dataset")
            target = target.remove_columns([c for c in ("label", "labels") if c in target.column_names])
            missing = sorted(set(source.column_names) - {label_key} - set(target.column_names))
            if missing:
                raise ValueError(
                    f"`target_dataset` lacks the model-input column(s) {missing} that `train_dataset` has: "
                    "preprocess both datasets the same way (same tokenizer / image processor)."
                )
            extra = [c for c in target.column_names if c not in source.column_names]
            target = target.remove_columns(extra) if extra else target
        if len(source) < args.source_rows_per_batch:
            raise ValueError(
                f"`train_dataset` has {len(source)} rows, fewer than the {args.source_rows_per_batch} source rows "
                "of one batch: lower `per_device_train_batch_size` or add data."
            )
        sampler = DomainMixingBatchSampler(
            num_source=len(source),
            num_target=len(target) if target is not None else 0,
            source_rows=args.source_rows_per_batch,
            target_rows=args.target_rows_per_batch,
            seed=args.data_seed if args.data_seed is not None else args.seed,
        )
        dataloader = DataLoader(
            _TwoDomainDataset(source, target, label_key),
            batch_sampler=sampler,
            collate_fn=_DomainLabelCollator(self.data_collator),
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers if args.dataloader_num_workers else False,
            worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        )
        return self.accelerator.prepare(dataloader)

    def _prepare_domain_dataset(self, dataset, argument: str):
        if not isinstance(dataset, datasets.Dataset):
            raise TypeError(f"`{argument}` must be a `datasets.Dataset`, got {type(dataset).__name__}.")
        if len(dataset) == 0:
            raise ValueError(f"`{argument}` is empty.")
        return self._remove_unused_columns(dataset, description=argument)

    # ---- optimisation -----------------------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, plus one parameter group for the domain discriminator."""
        optimizer = super().create_optimizer(model)
        if self.domain_discriminator is not None and not any(
            group.get("name") == "domain_discriminator" for group in optimizer.param_groups
        ):
            learning_rate = self.args.discriminator_learning_rate or self.args.learning_rate
            decay = [p for p in self.domain_discriminator.parameters() if p.dim() > 1]
            no_decay = [p for p in self.domain_discriminator.parameters() if p.dim() <= 1]
            optimizer.add_param_group(
                {
                    "params": decay,
                    "weight_decay": self.args.weight_decay,
                    "lr": learning_rate,
                    "name": "domain_discriminator",
                }
            )
            optimizer.add_param_group(
                {"params": no_decay, "weight_decay": 0.0, "lr": learning_rate, "name": "domain_discriminator"}
            )
        return optimizer

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # The discriminator is not inside the DDP-wrapped model: average its gradients across processes here.
        if (
            self.domain_discriminator is not None
            and self.accelerator.num_processes > 1
            and self.accelerator.sync_gradients
        ):
            grads = [p.grad for p in self.domain_discriminator.parameters() if p.grad is not None]
            if grads:
                flat = self.accelerator.reduce(torch.cat([g.flatten() for g in grads]), reduction="mean")
                for grad, new in zip(grads, flat.split([g.numel() for g in grads])):
                    grad.copy_(new.view_as(grad))
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        domain_labels = inputs.pop(DOMAIN_LABELS_KEY, None)
        labels = inputs.pop("labels", None)
        align = model.training and domain_labels is not None and bool(self.args.adaptation_loss)
        from_hidden_states = align and self.args.alignment_features != "head_input"
        if from_hidden_states:
            inputs["output_hidden_states"] = True

        with capture_head_input(self._classifier, enabled=align and not from_hidden_states) as captured:
            outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if from_hidden_states and not (isinstance(outputs, dict) and outputs.get("hidden_states")):
            raise ValueError(self._no_hidden_states_message())

        if labels is None:
            loss = logits.new_zeros(())
        else:
            is_source = labels != -100 if domain_labels is None else domain_labels == 0
            loss = F.cross_entropy(
                logits[is_source].float(), labels[is_source], label_smoothing=self.args.label_smoothing_factor
            )
        if model.training:
            self._record("loss/task", loss)

        if align:
            if from_hidden_states:
                hidden = outputs["hidden_states"][-1]
                features = pool_features(hidden, inputs.get("attention_mask"), self.args.alignment_features)
            else:
                features = pool_features(captured["features"], None, "head_input")
            source, target = features[domain_labels == 0], features[domain_labels == 1]
            if {"mmd", "coral"} & set(self.args.adaptation_loss):
                source, target = self._gather(source), self._gather(target)
            if {"im", "mcc"} & set(self.args.adaptation_loss):  # on the target predictions, not the features
                target_logits = self._gather(logits[domain_labels == 1])
            for name, weight in zip(self.args.adaptation_loss, self.args.adaptation_loss_weights):
                if name == "im":
                    value = information_maximization_loss(target_logits)
                elif name == "mcc":
                    value = minimum_class_confusion_loss(target_logits, self.args.mcc_temperature)
                elif name == "dann":  # a mean over rows: each process's own rows, like the task loss
                    value = self._alignment_loss(name, features[domain_labels == 0], features[domain_labels == 1])
                else:
                    value = self._alignment_loss(name, source, target)
                self._record(f"loss/{name}", value)
                loss = loss + weight * value

        return (loss, outputs) if return_outputs else loss

    def _gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Every process's `rows`, concatenated in rank order, with gradients (one process: `rows` itself).

        MMD, CORAL, the IM diversity term and MCC's per-class normalisation are statistics of the whole batch, not
        means of per-row terms, so with several processes they are computed on the global batch, the same value on
        every process. See `gather_with_gradients` for why the gradients are then exactly those of the global batch."""
        if self.accelerator.num_processes == 1:
            return rows
        return gather_with_gradients(rows)

    def _alignment_loss(self, name: str, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if name == "dann":
            progress = self.state.global_step / max(self.state.max_steps, 1)
            coefficient = dann_coefficient(
                progress, self.args.dann_schedule, self.args.dann_gamma, self.args.dann_max_coefficient
            )
            value, accuracy = domain_adversarial_loss(self.domain_discriminator, source, target, coefficient)
            self._record("dann/lambda", torch.tensor(coefficient, device=value.device))
            self._record("dann/discriminator_accuracy", accuracy)
            return value
        if name == "mmd":
            return mmd_loss(source, target, tuple(self.args.mmd_kernel_multipliers), self.args.mmd_estimator)
        if name == "coral":
            return coral_loss(source, target)
        raise ValueError(f"Unknown adaptation loss {name!r}.")

    # ---- logging ------------------------------------------------------------------------------------------------

    def _record(self, name: str, value: torch.Tensor) -> None:
        """Store a training scalar, averaged over processes; `log()` flushes the mean since the last log.

        A non-finite loss raises `NonFiniteLossError` naming it, on every process alike (the value is gathered),
        before its backward pass, so nothing of it reaches the weights."""
        value = value.detach().float().reshape(1)
        mean = self.accelerator.gather(value).mean().item()
        if name.startswith("loss/") and not math.isfinite(mean):
            loss_name = name.removeprefix("loss/")
            raise NonFiniteLossError(
                f"The {loss_name} loss is {mean} at step {self.state.global_step + 1}; training stopped before "
                "applying it, so the checkpoints saved so far are unaffected. " + self._non_finite_remedy(loss_name)
            )
        self._metrics[name].append(mean)

    def _extra_trained_parameters(self):
        if self.domain_discriminator is None:
            return []
        return [(f"domain_discriminator.{n}", p) for n, p in self.domain_discriminator.named_parameters()]

    def _non_finite_remedy(self, loss_name: str | None = None) -> str:
        if loss_name is None and self.args.adaptation_loss:
            return (
                f"With `adaptation_loss`={self.args.adaptation_loss}, lower their `adaptation_loss_weights` "
                f"({self.args.adaptation_loss_weights}) first. " + super()._non_finite_remedy()
            )
        if loss_name in self.args.adaptation_loss:
            index = self.args.adaptation_loss.index(loss_name)
            advice = (
                f"Lower its weight (`adaptation_loss_weights`[{index}] = {self.args.adaptation_loss_weights[index]})"
            )
            if loss_name == "dann":
                advice += ", `dann_max_coefficient` or `discriminator_learning_rate`"
            return advice + "; also lower `learning_rate`, and resume from the last checkpoint."
        return super()._non_finite_remedy(loss_name)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._metrics:
            logs = {**logs, **{name: sum(values) / len(values) for name, values in self._metrics.items()}}
            self._metrics.clear()
        super().log(logs, start_time)

    # ---- training state ----------------------------------------------------------------------------------------

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.domain_discriminator is not None and self.args.should_save:
            state = {k: v.detach().cpu().contiguous() for k, v in self.domain_discriminator.state_dict().items()}
            save_file(state, os.path.join(output_dir, DISCRIMINATOR_WEIGHTS_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is not None and self.domain_discriminator is not None:
            path = os.path.join(checkpoint, DISCRIMINATOR_WEIGHTS_NAME)
            if not os.path.isfile(path):
                raise ValueError(
                    f"The checkpoint {checkpoint} has no {DISCRIMINATOR_WEIGHTS_NAME}: it was not written by a DANN "
                    "run. Resume with the `adaptation_loss` the checkpoint was trained with."
                )
            self.domain_discriminator.load_state_dict(load_file(path, device=str(self.args.device)))
        super()._load_optimizer_and_scheduler(checkpoint)


class DomainAdaptationTrainer(DomainAdaptationMixin, Trainer):
    """A `transformers.Trainer` for unsupervised domain adaptation (DANN, MMD, CORAL) of classification models.

    Example:

    ```python
    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer

    args = DomainAdaptationConfig(output_dir="out", adaptation_loss=["dann"], per_device_train_batch_size=32)
    trainer = DomainAdaptationTrainer(
        model=model, args=args, train_dataset=source_train, target_dataset=target_unlabeled,
        eval_dataset={"source_validation": source_val, "target_test": target_test},
        processing_class=tokenizer, compute_metrics=compute_classification_metrics,
    )
    trainer.train()
    ```
    """
