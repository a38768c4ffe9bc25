"""`DomainAdaptationTrainer`: a `transformers.Trainer` that adds unsupervised domain-adaptation losses.

The trainer takes a labeled source `train_dataset` and an unlabeled `target_dataset`. Every training batch holds
source and target rows in a fixed ratio; one forward pass runs over both; the classification loss uses the source
rows only; each adaptation loss of `adaptation_loss` is computed as its entry in `ADAPTATION_LOSSES` says (on the
pooled features or the target logits, gathered over the processes when it is a statistic of the global batch).
Everything is in `DomainAdaptationMixin`, so an existing `Trainer` subclass becomes domain-adaptive by mixing it in.
"""

import copy
import inspect
import json
import os
import shutil

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.utils import logging

from ..base_trainer import BaseTrainerMixin
from ..callbacks import SamplerEpochCallback, StepEndCallback, ZeroGradientsCallback
from ..distributed import average_gradients, gather_with_gradients
from ..domain_mixing import DOMAIN_LABELS_KEY, mixed_dataloader, unlabeled_rows_like
from ..evaluation.guard import GuardDecision, GuardRule, negative_transfer_guard
from ..features import capture_head_input, feature_dim, pool_features
from ..hub.model_card import Method, TrainingDescription
from ..loss_spec import LossInputs
from .config import DomainAdaptationConfig
from .losses import ADAPTATION_LOSSES
from .masking import MASKED_TARGET_DOMAIN, TargetMasking
from .stages import (
    ADAPTED_FOLDER,
    GUARD_FILE,
    STAGE1_FOLDER,
    TwoStageCallback,
    as_eval_results,
    read_stage1_results,
    reset_optimizer_state,
    save_stage1,
    two_stage_scheduler,
)

logger = logging.get_logger(__name__)

INTENDED_USE = (
    "Classification of inputs like those of the target domain above, with the labels of the source data. The "
    "results\nabove were measured on the evaluation sets named there and say nothing about other domains, where the "
    "model may do\nworse than one fine-tuned with labels from that domain. Unsupervised adaptation can also hurt "
    "(negative transfer):\ncompare with a source-only run with the same seed and steps before relying on it."
)


def module_file(module_name: str) -> str:
    """The checkpoint file of a loss's own module (`domain_discriminator.safetensors`)."""
    return f"{module_name}.safetensors"


DISCRIMINATOR_WEIGHTS_NAME = module_file(ADAPTATION_LOSSES["dann"].module_name)


class DomainAdaptationMixin(BaseTrainerMixin):
    """Domain adaptation for any `transformers.Trainer` (sub)class.

    Usage: `class MyDomainAdaptiveTrainer(DomainAdaptationMixin, MyTrainer): pass`.

    Extra keyword arguments: `target_dataset` (unlabeled target-domain rows with the same model-input columns
    as `train_dataset`; a label column there is ignored) and `peft_config` (see `BaseTrainerMixin`: the
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
        _check_model_and_target(model, args, target_dataset)
        self.target_dataset = target_dataset
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError(
                "`compute_loss_func` is not supported by DomainAdaptationTrainer: it computes the source "
                "cross-entropy and the adaptation losses itself. Remove `compute_loss_func`."
            )
        super().__init__(model, args, *trainer_args, peft_config=peft_config, **kwargs)
        self.loss_modules = self._build_loss_modules()
        self._stage1: dict | None = None  # {"folder", "step", "results"} once the stage-1 model exists
        self._guard_report: dict | None = None
        if args.source_only_steps:
            self.add_callback(TwoStageCallback(args.source_only_steps, self._end_stage_one, self._resumed_in_stage_two))
        if args.adaptation_loss and args.alignment_features != "head_input":
            forward = inspect.signature(self.accelerator.unwrap_model(self.model).forward).parameters
            takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in forward.values())
            if "output_hidden_states" not in forward and not takes_kwargs:
                raise ValueError(self._no_hidden_states_message())
        self.add_callback(SamplerEpochCallback())

    def _build_loss_modules(self) -> nn.ModuleDict:
        """The modules the chosen losses own (discriminators, critic, teacher, masked-LM head), each initialised from
        the seed alone; the own optimizer of a module its loss trains; the masking of the target MLM."""
        modules = nn.ModuleDict()
        self.loss_module_optimizers: dict[str, torch.optim.Optimizer] = {}
        self._target_masking = None
        owners = [name for name in self.args.adaptation_loss if ADAPTATION_LOSSES[name].module is not None]
        if not owners:
            return modules
        self._check_loss_modules_can_train(owners)
        in_features = feature_dim(self.model, self._classifier, self.args.alignment_features)
        for name in owners:
            spec = ADAPTATION_LOSSES[name]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.args.seed)  # the same initial module for the same seed, whatever ran before
                modules[spec.module_name] = spec.module(self.model, in_features, self.args).to(self.args.device)
            if spec.module_trained_by == "loss":
                learning_rate = getattr(self.args, spec.module_learning_rate)
                self.loss_module_optimizers[spec.module_name] = torch.optim.Adam(
                    modules[spec.module_name].parameters(), lr=learning_rate
                )
        if "mlm" in self.args.adaptation_loss:  # after the head, which refuses models without token embeddings
            self._target_masking = TargetMasking(self.processing_class, self.args.mlm_probability, self.args.seed)
        self.add_callback(ZeroGradientsCallback(list(modules.values())))
        self.add_callback(StepEndCallback(self._after_optimizer_step))
        return modules

    def _modules_trained_by(self, who: str) -> list[tuple[str, nn.Module]]:
        """(name, module) of the loss modules that `who` ("optimizer", "loss", "none") trains."""
        return [
            (spec.module_name, self.loss_modules[spec.module_name])
            for spec in ADAPTATION_LOSSES.values()
            if spec.module_name in self.loss_modules and spec.module_trained_by == who
        ]

    def _after_optimizer_step(self) -> None:
        """Each loss's `after_step` (the EMA teacher's update), after every optimizer step of adaptation."""
        if self.state.global_step <= self.args.source_only_steps:
            return  # stage 1 (the teacher is reset when stage 2 starts)
        model = self.accelerator.unwrap_model(self.model)
        for spec in ADAPTATION_LOSSES.values():
            if spec.after_step is not None and spec.module_name in self.loss_modules:
                spec.after_step(self.loss_modules[spec.module_name], model, self.args)

    @property
    def domain_discriminator(self) -> nn.Module | None:
        """DANN's domain discriminator (`None` without DANN)."""
        name = ADAPTATION_LOSSES["dann"].module_name
        return self.loss_modules[name] if name in self.loss_modules else None

    def _check_loss_modules_can_train(self, owners: list[str]) -> None:
        """A loss's own module lives outside the (wrapped) model: DDP is fine (its gradients are all-reduced here, or
        its loss trains it identically on every process, or it does not train), but FSDP would not shard it,
        DeepSpeed's optimizer would not see it (nor the teacher's copy of the sharded model), nor would a custom
        optimizer."""
        engine = "DeepSpeed" if self.is_deepspeed_enabled else "FSDP" if self.is_fsdp_enabled else None
        if engine is not None:
            without = [name for name, spec in ADAPTATION_LOSSES.items() if spec.module is None]
            raise ValueError(
                f"`adaptation_loss` includes {', '.join(map(repr, owners))}, whose "
                f"{', '.join(ADAPTATION_LOSSES[n].module_name.replace('_', ' ') for n in owners)} trains outside the "
                f"model, which {engine} does not support. Use data parallelism for it (recipes/accelerate_configs/"
                f"multi_gpu.yaml), or keep {engine} and choose losses without parameters of their own: "
                f"`adaptation_loss` {', '.join(without[:-1])} or {without[-1]}."
            )
        if self.optimizer is not None and any(
            ADAPTATION_LOSSES[name].module_trained_by == "optimizer" for name in owners
        ):
            raise ValueError(
                f"A custom optimizer was passed in `optimizers`, but {owners} also train(s) the "
                f"{ADAPTATION_LOSSES[owners[0]].module_name.replace('_', ' ')}, whose parameters it would miss. Let "
                "the trainer create the optimizer (set `optim` and `learning_rate` in the config) or override "
                "`create_optimizer`."
            )

    def _model_tags(self) -> list[str]:
        return list(self._tag_names) + list(self.args.adaptation_loss)

    def _no_hidden_states_message(self) -> str:
        return (
            f"`alignment_features`={self.args.alignment_features!r} pools the model's last hidden states, but "
            f"{type(self.accelerator.unwrap_model(self.model)).__name__} cannot return them (its forward takes no "
            "`output_hidden_states`, or returns no `hidden_states`). Use `alignment_features='head_input'` (the "
            "classification head's input, which works with any model)."
        )

    def describe_training(self) -> TrainingDescription:
        args, losses = self.args, list(self.args.adaptation_loss)
        specs = [ADAPTATION_LOSSES[name] for name in losses]
        hyperparameters = [
            ("adaptation_loss", losses or "none (source-only)"),
            ("adaptation_loss_weights", args.adaptation_loss_weights),
        ]
        if losses:
            hyperparameters.append(("target_batch_fraction", args.target_batch_fraction))
            fields = [name for spec in specs for name in _card_fields(spec)]
            hyperparameters += [(name, getattr(args, name)) for name in dict.fromkeys(fields)]
            hyperparameters.append(("alignment_features", args.alignment_features))
        hyperparameters += [
            (name, module.origin) for name, module in self.loss_modules.items() if hasattr(module, "origin")
        ]
        if args.source_only_steps:
            hyperparameters.append(("source_only_steps", args.source_only_steps))
        if not losses:
            summary = "as a source-only baseline (no alignment loss)."
        else:
            reads_predictions = any(spec.reads != "features" for spec in specs)
            purpose = "adapt to the target domain" if reads_predictions else "align source and target features"
            summary = "using " + " + ".join(spec.method.name for spec in specs) + f" to {purpose}."
        if args.source_only_steps:
            first, second = args.source_only_steps, args.max_steps - args.source_only_steps
            summary = (
                f"in two stages: {first} step{'s' * (first > 1)} on the source alone, then {second} "
                f"step{'s' * (second > 1)} from those weights " + summary.removeprefix("as ")
            )
        source_only = Method("Source-only baseline", "fine-tuning on the labeled source rows alone, no adaptation loss")
        return TrainingDescription(
            summary=summary,
            methods=[spec.method for spec in specs] or [source_only],
            hyperparameters=hyperparameters,
            tags=["domain-adaptation"] + losses,
            data_label="Source domain (labeled)",
            intended_use=INTENDED_USE,
        )

    # ---- data -----------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        """Batches that hold `source_rows_per_batch` source rows and `target_rows_per_batch` target rows."""
        if self.train_dataset is None:
            raise ValueError("DomainAdaptationTrainer: training requires a labeled source `train_dataset`.")
        args = self.args
        source = self._prepare_training_dataset(self.train_dataset, "train_dataset")
        label_key = "labels" if "labels" in source.column_names else "label"
        if label_key not in source.column_names:
            raise ValueError(
                f"`train_dataset` has no `label` or `labels` column (columns: {source.column_names}): the source "
                "rows must be labeled."
            )
        target = self._target_rows_like(source, label_key) if args.target_rows_per_batch else None
        if len(source) < args.source_rows_per_batch:
            raise ValueError(
                f"`train_dataset` has {len(source)} rows, fewer than the {args.source_rows_per_batch} source rows "
                "of one batch: lower `per_device_train_batch_size` or add data."
            )
        self._log_batch_split()
        return mixed_dataloader(self, source, target, label_key, args.source_rows_per_batch, args.target_rows_per_batch)

    def _log_batch_split(self) -> None:
        """Say once how `per_device_train_batch_size` splits and what the logged loss holds (a drop-in user expects
        a batch of source rows and the task loss)."""
        args = self.args
        losses = ", ".join(f"{w} x {n}" for n, w in zip(args.adaptation_loss, args.adaptation_loss_weights))
        logger.warning(
            f"Each batch of per_device_train_batch_size={args.per_device_train_batch_size} holds "
            f"{args.source_rows_per_batch} labeled source rows and {args.target_rows_per_batch} unlabeled target rows "
            "(`target_batch_fraction`), so an epoch has fewer source batches than with a plain Trainer; `loss` / "
            f"`train_loss` is the task loss plus {losses or 'no adaptation loss'} (each logged as loss/<name>)."
        )

    def _target_rows_like(self, source, label_key: str):
        """The target dataset with the source's model-input columns only (its labels, if any, dropped)."""
        target = self._prepare_training_dataset(self.target_dataset, "target_dataset")
        return unlabeled_rows_like(source, target, label_key, "target_dataset")

    # ---- optimisation -----------------------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        """The Trainer's optimizer, plus parameter groups for each loss's own module (the domain discriminator)."""
        optimizer = super().create_optimizer(model)
        named = {group.get("name") for group in optimizer.param_groups}
        for name, module in self._modules_trained_by("optimizer"):
            if name in named:
                continue
            spec = next(spec for spec in ADAPTATION_LOSSES.values() if spec.module_name == name)
            learning_rate = getattr(self.args, spec.module_learning_rate or "", None) or self.args.learning_rate
            self._add_module_to_optimizer(optimizer, module, name, learning_rate)
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """The Trainer's schedule; in a two-stage run, one per stage (`two_stage_scheduler`)."""
        if self.args.source_only_steps and self.lr_scheduler is None:
            self.lr_scheduler = two_stage_scheduler(self.args, optimizer or self.optimizer, num_training_steps)
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # The loss modules are not inside the DDP-wrapped model: average their gradients across processes here.
        if self.accelerator.sync_gradients:
            average_gradients(self.accelerator, [module for _, module in self._modules_trained_by("optimizer")])
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        domain_labels = inputs.pop(DOMAIN_LABELS_KEY, None)
        labels = inputs.pop("labels", None)
        stage_one = model.training and domain_labels is not None and self._in_stage_one()
        if stage_one:
            inputs, labels, domain_labels = _source_rows_only(inputs, labels, domain_labels)
        adapting = model.training and domain_labels is not None and bool(self.args.adaptation_loss) and not stage_one
        from_hidden_states = adapting and self.args.alignment_features != "head_input"
        mlm_labels = None
        if adapting and self._target_masking is not None:
            inputs, domain_labels, labels, mlm_labels = self._target_masking(
                inputs, domain_labels, labels, self.state.global_step, self.args.process_index
            )
        if from_hidden_states or mlm_labels is not None:
            inputs["output_hidden_states"] = True
        with capture_head_input(self._classifier, enabled=adapting and not from_hidden_states) as captured:
            outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]

        if labels is None:
            loss = logits.new_zeros(())
        else:
            is_source = labels != -100 if domain_labels is None else domain_labels == 0
            loss = F.cross_entropy(
                logits[is_source].float(), labels[is_source], label_smoothing=self.args.label_smoothing_factor
            )
        if model.training:
            self._record("loss/task", loss)
        if adapting:
            features = self._pooled_features(outputs, captured, inputs.get("attention_mask"), from_hidden_states)
            batch = {"features": features, "logits": logits, "domain_labels": domain_labels, "inputs": inputs}
            if mlm_labels is not None:
                batch.update(hidden_states=outputs["hidden_states"][-1], mlm_labels=mlm_labels)
            loss = self._add_adaptation_losses(loss, batch)
        return (loss, outputs) if return_outputs else loss

    def _pooled_features(self, outputs, captured: dict, attention_mask, from_hidden_states: bool) -> torch.Tensor:
        """One feature vector per row: the head's input, or the last hidden state pooled (`alignment_features`)."""
        if not from_hidden_states:
            return pool_features(captured["features"], None, "head_input")
        if not (isinstance(outputs, dict) and outputs.get("hidden_states")):
            raise ValueError(self._no_hidden_states_message())
        return pool_features(outputs["hidden_states"][-1], attention_mask, self.args.alignment_features)

    def _add_adaptation_losses(self, loss, batch: dict) -> torch.Tensor:
        """`loss` plus each weighted adaptation loss, each logged as `loss/<name>` (with its own scalars)."""
        views: dict[tuple[str, bool], dict] = {}  # the inputs of each (reads, global_batch) kind, gathered once
        for name, weight in zip(self.args.adaptation_loss, self.args.adaptation_loss_weights):
            spec = ADAPTATION_LOSSES[name]
            module = self.loss_modules[spec.module_name] if spec.module_name else None
            key = (spec.reads, spec.global_batch)
            if key not in views:
                views[key] = self._loss_view(spec.reads, spec.global_batch, batch, module)
            inputs = LossInputs(
                **views[key],
                module=module,
                module_optimizer=self.loss_module_optimizers.get(spec.module_name),
                gather=self.accelerator.gather,
                progress=self._adaptation_progress(),
                step=self.state.global_step,
                args=self.args,
            )
            value, logs = self._compute_adaptation_loss(name, inputs)
            for log_name, scalar in logs.items():
                self._record(log_name, scalar)
            self._record(f"loss/{name}", value)
            loss = loss + weight * value
        return loss

    def _in_stage_one(self) -> bool:
        """Whether the step being computed is one of the source-only steps of stage 1."""
        return self.state.global_step < self.args.source_only_steps

    def _adaptation_progress(self) -> float:
        """Progress of adaptation in [0, 1] for the loss schedules, counted from the start of stage 2."""
        start = self.args.source_only_steps
        return (self.state.global_step - start) / max(self.state.max_steps - start, 1)

    def _loss_view(self, reads: str, global_batch: bool, batch: dict, module) -> dict:
        """The rows a loss reads (see `READS`); gathered over the processes for a statistic of the global batch (MMD,
        CORAL, IM's diversity term, MCC's per-class normalisation, CDAN+E's weights, the class-balanced pseudo-label
        selection), so it is computed on the global batch, with exactly the global batch's gradients (see
        `gather_with_gradients`)."""
        features, logits, domains = batch["features"], batch["logits"], batch["domain_labels"]
        source, target = domains == 0, domains == 1
        view = {}
        if reads in ("features", "features_and_logits"):
            view.update(source=features[source], target=features[target])
        if reads in ("target_logits", "features_and_logits", "teacher_logits"):
            view["target_logits"] = logits[target]
        if reads == "features_and_logits":
            view["source_logits"] = logits[source]
        if reads == "teacher_logits":
            view["teacher_logits"] = self._teacher_logits(module, batch["inputs"], target, domains.shape[0])
        if reads == "masked_lm":
            masked = domains == MASKED_TARGET_DOMAIN
            view = {
                "masked_hidden_states": batch["hidden_states"][masked],
                "masked_labels": batch["mlm_labels"][masked],
            }
        if global_batch and self.accelerator.num_processes > 1:
            view = {key: gather_with_gradients(rows) for key, rows in view.items()}
        return view

    @staticmethod
    def _teacher_logits(teacher: nn.Module, inputs: dict, rows: torch.Tensor, batch_size: int) -> torch.Tensor:
        """The teacher's logits on the target rows of the batch, without gradients."""
        teacher_inputs = {
            key: value[rows]
            for key, value in inputs.items()
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch_size
        }
        with torch.no_grad():
            outputs = teacher(**teacher_inputs)
        return (outputs["logits"] if isinstance(outputs, dict) else outputs[0]).detach()

    def _compute_adaptation_loss(self, name: str, inputs: LossInputs) -> tuple[torch.Tensor, dict]:
        return ADAPTATION_LOSSES[name].compute(inputs)

    def _extra_trained_parameters(self):
        trained = self._modules_trained_by("optimizer")
        return [(f"{name}.{n}", p) for name, module in trained for n, p in module.named_parameters()]

    def _non_finite_remedy(self, loss_name: str | None = None) -> str:
        args = self.args
        if loss_name is None and args.adaptation_loss:
            return (
                f"With `adaptation_loss`={args.adaptation_loss}, lower their `adaptation_loss_weights` "
                f"({args.adaptation_loss_weights}) first. " + super()._non_finite_remedy()
            )
        if loss_name in args.adaptation_loss:
            index = args.adaptation_loss.index(loss_name)
            advice = f"Lower its weight (`adaptation_loss_weights`[{index}] = {args.adaptation_loss_weights[index]})"
            fields = ADAPTATION_LOSSES[loss_name].remedy_fields
            if fields:
                advice += ", " + " or ".join(f"`{name}`" for name in fields)
            return advice + "; also lower `learning_rate`, and resume from the last checkpoint."
        return super()._non_finite_remedy(loss_name)

    # ---- two stages and the negative-transfer guard ------------------------------------------------------------

    def _end_stage_one(self) -> None:
        """The last source-only step is done: evaluate and save the stage-1 model, then start stage 2 from it with a
        fresh optimizer state (the schedule restarts by itself) and the loss modules' `at_adaptation_start`."""
        metrics = self.evaluate(metric_key_prefix=STAGE1_FOLDER) if self.eval_dataset is not None else {}
        folder = os.path.join(self.args.output_dir, STAGE1_FOLDER)
        model = self.accelerator.unwrap_model(self.model)
        if self.args.should_save:
            save_stage1(folder, model, self.processing_class, as_eval_results(metrics), self.state.global_step)
        self.accelerator.wait_for_everyone()
        self._read_stage_one()
        reset_optimizer_state(self.optimizer)
        for spec in ADAPTATION_LOSSES.values():
            if spec.at_adaptation_start is not None and spec.module_name in self.loss_modules:
                spec.at_adaptation_start(self.loss_modules[spec.module_name], model, self.args)

    def _resumed_in_stage_two(self) -> None:
        """Resuming past stage 1: its model is the `stage1` folder beside the checkpoint (copied into this run's
        `output_dir` when that is another folder)."""
        own = os.path.join(self.args.output_dir, STAGE1_FOLDER)
        checkpoint = getattr(self, "_resume_checkpoint", None)
        beside = os.path.join(os.path.dirname(os.path.normpath(checkpoint)), STAGE1_FOLDER) if checkpoint else own
        if os.path.abspath(beside) != os.path.abspath(own) and os.path.isdir(beside):
            if self.args.should_save:
                shutil.copytree(beside, own, dirs_exist_ok=True)
            self.accelerator.wait_for_everyone()
        self._read_stage_one(own)

    def _read_stage_one(self, folder: str | None = None) -> None:
        """Record the stage-1 model's folder and results (at the end of stage 1, or when resuming in stage 2); its
        results become the card's source-only baseline unless one was set."""
        folder = folder or os.path.join(self.args.output_dir, STAGE1_FOLDER)
        saved = read_stage1_results(folder)
        self._stage1 = {"folder": folder, "step": saved["step"], "results": saved["results"]}
        baselines = getattr(self, "_baselines", {})
        if not baselines.get("source_only_results") and saved["results"]:
            self.set_baselines(source_only_results=saved["results"], oracle_results=baselines.get("oracle_results"))

    def set_stage1_model(self, folder: str, results: dict[str, float] | None = None) -> None:
        """Stage 1 done elsewhere: `folder` holds the source-only model this run starts from (saved with
        `save_pretrained`, e.g. the `stage1` folder of another run or the output_dir of a source-only run), the
        reference of `guard_negative_transfer`. `results`: its `eval_<set>_<metric>` values (the card's source-only
        baseline); default: the folder's `stage1_results.json`. Load the same weights into the model you train."""
        if self.args.source_only_steps:
            raise ValueError(
                "`set_stage1_model` gives the stage-1 model of a run that starts from it; this run trains its own "
                f"stage 1 (`source_only_steps`={self.args.source_only_steps}). Set `source_only_steps=0`."
            )
        if results is None:
            self._read_stage_one(folder)
            return
        self._stage1 = {"folder": folder, "step": 0, "results": dict(results)}
        if not getattr(self, "_baselines", {}).get("source_only_results"):
            self.set_baselines(source_only_results=dict(results), oracle_results=None)

    @property
    def stage1(self) -> dict | None:
        """`{"folder", "step", "results"}` of the stage-1 (source-only) model, once there is one."""
        return self._stage1

    def guard_negative_transfer(
        self,
        source_validation,
        target=None,
        rule: GuardRule | None = None,
        max_target_rows: int | None = 1000,
    ) -> GuardDecision:
        """After a two-stage run: keep the adapted model or go back to the stage-1 model, without target labels
        (`hf_transfer.evaluation.guard`). Call it after `train()` and before saving.

        The decision and its evidence go to `<output_dir>/negative_transfer_guard.json` and the card. When the
        stage-1 model wins, the adapted one is evaluated (`adapted_*` metrics) and saved to `<output_dir>/adapted`,
        and the trainer's model gets the stage-1 weights back, so what is saved next is the chosen model.

        Args:
            source_validation: labeled source rows the model did not train on.
            target: unlabeled target rows; default: the trainer's `target_dataset`.
            rule: the decision rule (default `GuardRule()`, the declared one).
            max_target_rows: a fixed random subset of the target rows this large (seeded by the run's seed).
        """
        if self._stage1 is None:
            raise ValueError(
                "`guard_negative_transfer` compares the adapted model with its stage-1 (source-only) model, and "
                "this run has none: train with `source_only_steps` > 0, or call `set_stage1_model(folder)`, first."
            )
        rule = rule or GuardRule()
        model = self.accelerator.unwrap_model(self.model)
        decision = [None]
        if self.is_world_process_zero():
            reference = copy.deepcopy(model)
            self._load_from_checkpoint(self._stage1["folder"], model=reference)
            with self.autocast_smart_context_manager():  # in the run's precision, like its evaluations
                decision[0] = negative_transfer_guard(
                    reference, model, source_validation, self.target_dataset if target is None else target,
                    data_collator=self.data_collator, batch_size=self.args.per_device_eval_batch_size,
                    max_target_rows=max_target_rows, rule=rule, features=self.args.alignment_features,
                    classifier_module=self.args.classifier_module, seed=self.args.seed,
                )  # fmt: skip
            del reference
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(decision)
        decision = decision[0]
        adapted_results = None
        if not decision.keeps_adapted:
            metrics = self.evaluate(metric_key_prefix=ADAPTED_FOLDER) if self.eval_dataset is not None else {}
            adapted_results = as_eval_results(metrics, ADAPTED_FOLDER)
            if self.args.should_save:
                self._save(os.path.join(self.args.output_dir, ADAPTED_FOLDER))
            self._load_from_checkpoint(self._stage1["folder"])
        self._guard_report = {
            **decision.to_dict(),
            "stage1_results": self._stage1["results"],
            "adapted_results": adapted_results,
            "other_model_folder": STAGE1_FOLDER if decision.keeps_adapted else ADAPTED_FOLDER,
        }
        if self.args.should_save:
            with open(os.path.join(self.args.output_dir, GUARD_FILE), "w", encoding="utf-8") as handle:
                json.dump(self._guard_report, handle, indent=2)
        return decision

    # ---- training state ----------------------------------------------------------------------------------------

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if not self.args.should_save:
            return
        for name, module in self.loss_modules.items():
            save_model(module, os.path.join(output_dir, module_file(name)))
        for name, optimizer in self.loss_module_optimizers.items():
            torch.save(optimizer.state_dict(), os.path.join(output_dir, optimizer_file(name)))

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is not None:
            for name, module in self.loss_modules.items():
                path = os.path.join(checkpoint, module_file(name))
                if not os.path.isfile(path):
                    owner = next(n for n, spec in ADAPTATION_LOSSES.items() if spec.module_name == name)
                    raise ValueError(
                        f"The checkpoint {checkpoint} has no {module_file(name)}: it was not written by a run with "
                        f"adaptation_loss '{owner}'. Resume with the `adaptation_loss` the checkpoint was trained with."
                    )
                _check_no_missing_keys(load_model(module, path, strict=False, device=str(self.args.device)), path)
            for name, optimizer in self.loss_module_optimizers.items():
                state = torch.load(os.path.join(checkpoint, optimizer_file(name)), map_location=self.args.device)
                optimizer.load_state_dict(state)
        super()._load_optimizer_and_scheduler(checkpoint)


def _source_rows_only(inputs: dict, labels, domain_labels):
    """The source rows of a mixed batch (stage 1 trains on them alone): every per-row tensor cut to them."""
    keep = domain_labels == 0
    rows = domain_labels.shape[0]
    inputs = {
        key: value[keep] if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows else value
        for key, value in inputs.items()
    }
    return inputs, (labels[keep] if labels is not None else None), domain_labels[keep]


def _card_fields(spec) -> list[str]:
    """A loss's hyper-parameters as its card lists them: its own fields, then those it shares with other losses."""
    shared = [name for other in spec.uses_fields_of for name in ADAPTATION_LOSSES[other].config_fields]
    return list(spec.config_fields) + shared


def optimizer_file(module_name: str) -> str:
    """The checkpoint file of the own optimizer of a loss's module (`wasserstein_critic_optimizer.pt`)."""
    return f"{module_name}_optimizer.pt"


def _check_no_missing_keys(result: tuple[list[str], list[str]], path: str) -> None:
    missing, unexpected = result
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this run's module (missing {sorted(missing)[:5]}, unexpected "
            f"{sorted(unexpected)[:5]}): resume with the settings the checkpoint was trained with."
        )


def _check_model_and_target(model, args: DomainAdaptationConfig, target_dataset) -> None:
    """A single-label classifier, and unlabeled target rows whenever there is an adaptation loss."""
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
    if not args.adaptation_loss:
        return
    if target_dataset is None:
        raise ValueError(
            f"`adaptation_loss`={args.adaptation_loss} needs unlabeled target rows: pass `target_dataset=`, "
            "or set `adaptation_loss` to 'none' for the source-only baseline."
        )
    if len(target_dataset) == 0:
        raise ValueError("`target_dataset` is empty: pass at least one unlabeled target-domain row.")


class DomainAdaptationTrainer(DomainAdaptationMixin, Trainer):
    """A `transformers.Trainer` for unsupervised domain adaptation (DANN, MMD, CORAL, IM, MCC) of classifiers.

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
