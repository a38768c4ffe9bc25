"""`ContinualTrainer`: a sequence of experiences learned in order, as one `transformers.Trainer` run.

The experiences (`train_dataset` and `eval_dataset`: dicts with the same names, in order) are laid end to end and
trained by one Trainer run whose steps are split between them (`ExperiencePlan`): one optimizer, one checkpointing,
one resume, while the learning-rate schedule and the optimizer's state start afresh with each experience. When an
experience ends, every evaluation set is evaluated (a row of the accuracy matrix) and what the method keeps is
taken: EWC's Fisher and anchor weights, LwF's copy of the model, the replay memory (rebuilt from the seed), the next
adapter. A checkpoint holds all of it, so a run killed in experience 3 resumes in experience 3, exactly.
"""

import copy
import json
import logging
import os
from collections import Counter

import torch
from safetensors.torch import load_file, save_file
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback
from transformers.optimization import get_scheduler

from ..base_trainer import BaseTrainerMixin
from ..hub.model_card import Method, TrainingDescription
from ..input_checks import labels_outside
from ..metrics import compute_classification_metrics
from .config import ContinualConfig
from .experiences import (
    EXPERIENCE_KEY,
    ContinualBatchSampler,
    ExperienceRows,
    ExperienceSequence,
    plan_experiences,
    replay_memory,
    replay_rows_per_batch,
)
from .losses import classification_loss, ewc_penalty, fisher_diagonal, lwf_loss, masked_logits, online_fisher
from .metrics import continual_metrics, matrix_table, plot_matrix

STATE_FILE = "continual_state.json"
EWC_FILE = "continual_ewc.safetensors"
PREVIOUS_MODEL_FILE = "continual_previous_model.safetensors"
RESULTS_FILE = "continual_results.json"
MATRIX_PLOT = "accuracy_matrix.png"
# An experience counts as not learned when, right after its training, its accuracy is at most this far (a fraction)
# above always predicting its most common class: the learning rate or the steps are too small for it.
NOT_LEARNED_MARGIN = 0.02

logger = logging.getLogger(__name__)


def adapter_name(experience: int) -> str:
    """The PEFT adapter of experience `experience` with `continual_method=['adapters']`."""
    return f"experience_{experience}"


class ContinualMixin(BaseTrainerMixin):
    """Continual learning for any `transformers.Trainer` (sub)class: `class MyTrainer(ContinualMixin, Trainer): pass`.

    `train_dataset` and `eval_dataset` are dicts {experience name: `datasets.Dataset`} with the same names in the
    order of training (model inputs and `label`/`labels`). `compute_metrics` must report `accuracy` (the default,
    `hf_transfer.compute_classification_metrics`, does). Extra keyword argument: `peft_config`.
    """

    config_class = ContinualConfig
    _tag_names = ["hf_transfer", "continual-learning"]
    loss_is_scaled_for_ga = False

    def __init__(self, model=None, args=None, *trainer_args, peft_config=None, **kwargs):
        args = copy.copy(self._upgrade_args(args))
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("`compute_loss_func` is not supported by ContinualTrainer: the loss is its own.")
        experiences = _named_sets(kwargs.get("train_dataset"), "train_dataset")
        evaluations = _named_sets(kwargs.get("eval_dataset"), "eval_dataset")
        if list(evaluations) != list(experiences):
            raise ValueError(
                f"`eval_dataset` names {list(evaluations)} but `train_dataset` names {list(experiences)}: give one "
                "evaluation set per experience, under the same names, in the same order."
            )
        if "adapters" in args.continual_method and not (args.uses_peft or peft_config is not None):
            raise ValueError(
                "`continual_method=['adapters']` trains one PEFT adapter per experience: set `transfer_strategy` to "
                "an adapter ('lora', 'ia3', ...) or pass `peft_config`."
            )
        self._names = list(experiences)
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        self._labels = [_labels_of(data, f"train_dataset[{name!r}]", num_labels) for name, data in experiences.items()]
        eval_labels = [_labels_of(data, f"eval_dataset[{name!r}]", num_labels) for name, data in evaluations.items()]
        self._replay_rows = 0
        if "replay" in args.continual_method:
            self._replay_rows = replay_rows_per_batch(args.per_device_train_batch_size, args.replay_fraction)
        self._plan = self._make_plan(args, [len(data) for data in experiences.values()])
        args.max_steps = self._plan.total_steps
        kwargs["compute_metrics"] = kwargs.get("compute_metrics") or compute_classification_metrics
        super().__init__(model, args, *trainer_args, peft_config=peft_config, **kwargs)
        self._schedule_factor(1)  # a schedule that cannot restart per experience fails now, not at step 1
        self._classes = self._class_table(num_labels, eval_labels)
        self._majority = [max(Counter(labels).values()) / len(labels) if labels else 0.0 for labels in eval_labels]
        self._rows = ExperienceSequence(list(experiences.values()))
        self.eval_dataset = {name: ExperienceRows(data, i) for i, (name, data) in enumerate(evaluations.items())}
        self._matrix, self._initial = [], None
        self._ewc_anchors: list[tuple[dict, dict]] = []
        self._previous_model = None
        self.add_callback(_ExperienceBoundaries(self))

    def _make_plan(self, args, sizes: list[int]):
        batches_per_step = args.gradient_accumulation_steps * args.world_size
        if args.continual_method == ["joint"]:
            steps = plan_experiences(
                self._names,
                sizes,
                args.per_device_train_batch_size,
                0,
                args.steps_per_experience,
                args.num_train_epochs,
                batches_per_step,
            ).total_steps
            return plan_experiences(["joint"], [sum(sizes)], 1, 0, steps, 1, 1)  # fmt: skip
        return plan_experiences(self._names, sizes, args.per_device_train_batch_size, self._replay_rows,
                                args.steps_per_experience, args.num_train_epochs, batches_per_step)  # fmt: skip

    def _class_table(self, num_labels: int, eval_labels: list[list[int]]) -> torch.Tensor:
        """(experiences, classes) bools: the classes of each experience's training rows."""
        table = torch.zeros(len(self._names), num_labels, dtype=torch.bool)
        for index, labels in enumerate(self._labels):
            table[index, sorted(set(labels))] = True
        if self.args.scenario == "task":
            for index, labels in enumerate(eval_labels):
                extra = sorted(set(labels) - set(self._labels[index]))
                if extra:
                    raise ValueError(
                        f"`eval_dataset[{self._names[index]!r}]` has label(s) {extra} that its experience's training "
                        "rows lack: with `scenario='task'` a row is classified among its experience's classes only, "
                        "so these rows could never be right. Use the same classes, or `scenario='class'`."
                    )
        return table.to(self.args.device)

    # ---- the model: one adapter per experience --------------------------------------------------------------------

    def _apply_strategy(self, model, args, peft_config):
        model = super()._apply_strategy(model, args, peft_config)
        if "adapters" not in args.continual_method:
            return model
        config = model.peft_config["default"]
        for index in range(len(self._names)):
            model.add_adapter(adapter_name(index), copy.deepcopy(config))
        model.set_adapter(adapter_name(0))
        model.delete_adapter("default")
        self._select_adapter(model, 0)
        return model

    def _select_adapter(self, model, experience: int) -> None:
        """Make experience `experience`'s adapter (and head) the active one; every adapter stays trainable, so the
        optimizer and DDP hold them all, and the inactive ones, out of the forward pass, get no gradient."""
        model.set_adapter(adapter_name(experience))
        model.set_requires_grad([adapter_name(i) for i in range(len(self._names))], requires_grad=True)

    def _uses(self, method: str) -> bool:
        return method in self.args.continual_method

    # ---- data ---------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        """Every batch of the sequence, in order (`ContinualBatchSampler`), the same for one process and several."""
        args = self.args
        offsets = self._rows.offsets
        segments = [[offsets[i] + r for r in range(len(labels))] for i, labels in enumerate(self._labels)]
        if args.continual_method == ["joint"]:
            segments = [[row for segment in segments for row in segment]]
        sampler = ContinualBatchSampler(
            self._plan, segments, args.per_device_train_batch_size, self._replay_rows,
            args.gradient_accumulation_steps * args.world_size, _data_seed(args),
            memory_of=self._memory_rows if self._replay_rows else None,
        )  # fmt: skip
        dataloader = DataLoader(
            self._rows,
            batch_sampler=sampler,
            collate_fn=self._get_collator_with_removed_columns(self.data_collator, "training"),
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(dataloader)

    def _memory_rows(self, experience: int) -> list[int]:
        """The replay memory while experience `experience` trains, as indices of `self._rows`."""
        args = self.args
        pairs = replay_memory(self._labels[:experience], args.memory_size, args.memory_strategy, _data_seed(args))
        return [self._rows.offsets[e] + row for e, row in pairs]

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if EXPERIENCE_KEY not in self._signature_columns:
            self._signature_columns.append(EXPERIENCE_KEY)

    # ---- the loss -----------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        experiences = inputs.pop(EXPERIENCE_KEY)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        training = model.training
        seen = self._plan_position() + 1 if training else self._trained_experience() + 1
        logits = masked_logits(outputs.logits, self._allowed_classes(experiences, seen))
        loss = classification_loss(logits, labels)
        if training:
            self._record("loss/task", loss)
            loss = loss + self._forgetting_losses(outputs.logits, inputs)
        if return_outputs:
            outputs.logits = logits
            return loss, outputs
        return loss

    def _forgetting_losses(self, logits: torch.Tensor, inputs: dict) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        if self._ewc_anchors:
            params = {n: p for n, p in self.accelerator.unwrap_model(self.model).named_parameters() if p.requires_grad}
            penalty = ewc_penalty(params, self._ewc_anchors, self.args.ewc_lambda)
            self._record("loss/ewc", penalty)
            total = total + penalty
        if self._previous_model is not None:
            with torch.no_grad():
                previous = self._previous_model(**inputs).logits.float()
            old_classes = self._classes[: self._experiences_done()].any(dim=0)
            if self.args.scenario == "domain":
                old_classes = torch.ones_like(old_classes)
            loss = lwf_loss(logits, previous, old_classes, self.args.lwf_alpha, self.args.lwf_temperature)
            self._record("loss/lwf", loss)
            total = total + loss
        return total

    def _allowed_classes(self, experiences: torch.Tensor, seen: int) -> torch.Tensor | None:
        """Which classes each row may be classified into: all (`"domain"`), its experience's (`"task"`), or those of
        the first `seen` experiences (`"class"`; every class in a joint run)."""
        if self.args.scenario == "domain":
            return None
        if self.args.scenario == "task":
            return self._classes[experiences]
        if self.args.continual_method == ["joint"]:
            seen = len(self._names)
        return self._classes[:seen].any(dim=0).expand(experiences.shape[0], -1)

    def _plan_position(self) -> int:
        """The experience being trained (in a joint run: the last, every experience being in it)."""
        if self.args.continual_method == ["joint"]:
            return len(self._names) - 1
        return self._plan.experience_at(self.state.global_step)

    def _trained_experience(self) -> int:
        """The experience that trained the last step done (the first before any step): what evaluation masks by."""
        if self.args.continual_method == ["joint"]:
            return len(self._names) - 1
        return self._plan.experience_at(max(self.state.global_step - 1, 0))

    def _experiences_done(self) -> int:
        if self.args.continual_method == ["joint"]:
            return len(self._names) if self.state.global_step >= self._plan.total_steps else 0
        return self._plan.finished(self.state.global_step)

    # ---- the schedule: afresh for each experience -----------------------------------------------------------------

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """`lr_scheduler_type` with its warm-up, restarted at the first step of each experience."""
        if self.lr_scheduler is None:
            factors = [self._schedule_factor(steps) for steps in self._plan.steps]
            starts = [end - steps for end, steps in zip(self._plan.ends, self._plan.steps)]

            def factor(step: int) -> float:
                index = self._plan.experience_at(step)
                return factors[index](step - starts[index])

            self.lr_scheduler = LambdaLR(self.optimizer if optimizer is None else optimizer, factor)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def _schedule_factor(self, steps: int):
        args = self.args
        dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        warmup = args.get_warmup_steps(steps)
        scheduler = get_scheduler(args.lr_scheduler_type, dummy, num_warmup_steps=warmup, num_training_steps=steps,
                                  scheduler_specific_kwargs=args.lr_scheduler_kwargs)  # fmt: skip
        if not isinstance(scheduler, LambdaLR):
            raise ValueError(
                f"`lr_scheduler_type`={args.lr_scheduler_type!r} cannot restart with each experience: use a step "
                "schedule ('linear', 'cosine', 'constant', 'constant_with_warmup', 'polynomial', ...)."
            )
        return scheduler.lr_lambdas[0]

    # ---- experience boundaries ------------------------------------------------------------------------------------

    def _begin(self) -> None:
        """At the start of training (fresh or resumed): the adapter of the current experience; on a fresh start, the
        accuracies of the untrained model (b of the forward transfer), which also checks `compute_metrics`."""
        if self._uses("adapters"):
            self._select_adapter(self.accelerator.unwrap_model(self.model), self._plan_position())
        if self.state.global_step == 0 and self._initial is None:
            self._initial = self._accuracies()

    def _end_experience(self, index: int) -> None:
        """Experience `index` is trained: its row of the matrix, then what the method keeps for the next ones."""
        self._matrix.append(self._accuracies())
        self._warn_if_not_learned()
        last = index == len(self._plan.steps) - 1
        if last:
            return
        base = self.accelerator.unwrap_model(self.model)
        if self._uses("ewc"):
            self._add_ewc_anchor(base, index)
        if self._uses("lwf"):
            self._previous_model = _frozen_copy(base)
        if self._uses("adapters"):
            self._select_adapter(base, index + 1)
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        optimizer.state.clear()  # Adam's moments belong to the finished experience

    def not_learned(self) -> list[str]:
        """The experiences whose accuracy right after their training (the matrix's diagonal; a joint run's only row)
        is at most `NOT_LEARNED_MARGIN` above both always predicting their most common class and the untrained
        model."""
        joint = self.args.continual_method == ["joint"]
        found = []
        for row_index, row in enumerate(self._matrix):
            for j in range(len(self._names)) if joint else [row_index]:
                floor = max(self._majority[j], self._initial[j] if self._initial else 0.0)
                if row[j] <= floor + NOT_LEARNED_MARGIN:
                    found.append(self._names[j])
        return found

    def _warn_if_not_learned(self) -> None:
        row = len(self._matrix) - 1
        for name in self.not_learned():
            j = self._names.index(name)
            if self.args.continual_method == ["joint"] or j == row:
                logger.warning(
                    f"Experience {name!r} was not learned: {100 * self._matrix[row][j]:.2f} % after its training, "
                    f"no better than always predicting its most common class ({100 * self._majority[j]:.2f} %) or "
                    "than the untrained model. "
                    "Raise `learning_rate` or `steps_per_experience` (an adapter over 50 steps needs about 2e-3, "
                    "docs/continual.md)."
                )

    def _accuracies(self) -> list[float]:
        """The accuracy on each experience's evaluation set (with its own adapter under `"adapters"`)."""
        metrics = self.evaluate()
        missing = [name for name in self._names if f"eval_{name}_accuracy" not in metrics]
        if missing:
            raise ValueError(
                f"`compute_metrics` reported no `accuracy` for {missing}: the accuracy matrix needs it. Return "
                "{'accuracy': ...} (as `hf_transfer.compute_classification_metrics` does), or leave it unset."
            )
        return [metrics[f"eval_{name}_accuracy"] for name in self._names]

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """`Trainer.evaluate`; with `"adapters"`, each experience's set is evaluated with its own adapter."""
        if eval_dataset is not None or not self._uses("adapters"):
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        base = self.accelerator.unwrap_model(self.model)
        metrics = {}
        for index, (name, data) in enumerate(self.eval_dataset.items()):
            self._select_adapter(base, index)
            metrics.update(super().evaluate({name: data}, ignore_keys, metric_key_prefix))
        self._select_adapter(base, self._plan_position())
        return metrics

    def _add_ewc_anchor(self, base, index: int) -> None:
        params = {name: p for name, p in base.named_parameters() if p.requires_grad}
        fisher = self._fisher(base, params, index)
        anchor = {name: p.detach().float().clone() for name, p in params.items()}
        if self.args.ewc_mode == "online":
            previous = self._ewc_anchors[0][0] if self._ewc_anchors else None
            self._ewc_anchors = [(online_fisher(previous, fisher, self.args.ewc_decay), anchor)]
        else:
            self._ewc_anchors.append((fisher, anchor))

    def _fisher(self, base, params: dict, index: int) -> dict[str, torch.Tensor]:
        """EWC's F on experience `index`: the mean over `ewc_fisher_batches` batches of its rows (dropout off) of the
        squared gradient of the batch's mean loss. A batch is a global training batch (`per_device_train_batch_size`
        rows per process): each process takes its share, the gradients are summed over processes before squaring,
        so one process and several give the same F."""
        args = self.args
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        generator = torch.Generator().manual_seed(_data_seed(args) * 1_000_003 + 7919 * (index + 1))
        order = torch.randperm(len(self._labels[index]), generator=generator).tolist()
        size = args.per_device_train_batch_size
        batches = [order[i : i + size * world] for i in range(0, len(order), size * world)][: args.ewc_fisher_batches]
        sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
        was_training = base.training
        base.eval()
        for batch in batches:
            grads = self._batch_gradient(base, params, index, batch[rank * size : (rank + 1) * size], len(batch))
            if world > 1:
                flat = torch.cat([g.flatten() for g in grads])
                torch.distributed.all_reduce(flat)
                grads = [part.view_as(g) for part, g in zip(flat.split([g.numel() for g in grads]), grads)]
            for name, grad in zip(params, grads):
                sums[name] += grad**2
        base.train(was_training)
        return fisher_diagonal(sums, len(batches))

    def _batch_gradient(self, base, params: dict, index: int, rows: list[int], batch_rows: int) -> list:
        """This process's part of the gradient of the batch's mean loss: ∇ (Σ over `rows` of the loss) / batch_rows
        (zeros for a process without rows), in float32."""
        if not rows:
            return [torch.zeros_like(p, dtype=torch.float32) for p in params.values()]
        collate = self._get_collator_with_removed_columns(self.data_collator, "fisher")
        inputs = self._prepare_inputs(collate([self._rows[self._rows.offsets[index] + r] for r in rows]))
        experiences, labels = inputs.pop(EXPERIENCE_KEY), inputs.pop("labels")
        with self.autocast_smart_context_manager():
            logits = base(**inputs).logits
        loss = classification_loss(masked_logits(logits, self._allowed_classes(experiences, index + 1)), labels)
        grads = torch.autograd.grad(loss * len(rows) / batch_rows, list(params.values()), allow_unused=True)
        return [
            torch.zeros_like(p, dtype=torch.float32) if g is None else g.float() for p, g in zip(params.values(), grads)
        ]

    # ---- saving and resuming --------------------------------------------------------------------------------------

    def _continual_facts(self) -> dict:
        """What a checkpoint must share with the run resuming from it."""
        args = self.args
        return {"experiences": self._names, "steps": list(self._plan.steps), "continual_method": args.continual_method,
                "scenario": args.scenario}  # fmt: skip

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if not self.args.should_save:
            return
        state = {**self._continual_facts(), "accuracy_matrix": self._matrix, "initial_accuracy": self._initial}
        with open(os.path.join(output_dir, STATE_FILE), "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2)
        if self._ewc_anchors:
            tensors = {}
            for k, (fisher, anchor) in enumerate(self._ewc_anchors):
                tensors.update({f"fisher.{k}.{n}": t.contiguous() for n, t in fisher.items()})
                tensors.update({f"anchor.{k}.{n}": t.contiguous() for n, t in anchor.items()})
            save_file(tensors, os.path.join(output_dir, EWC_FILE))
        if self._previous_model is not None:
            weights = {n: t.detach().contiguous() for n, t in self._previous_model.state_dict().items()}
            save_file(_untied(weights), os.path.join(output_dir, PREVIOUS_MODEL_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if self._uses("adapters"):  # loading leaves only the active adapter trainable: the optimizer needs them all
            self._select_adapter(self.accelerator.unwrap_model(self.model), 0)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is not None:
            self._load_continual_state(checkpoint)
        super()._load_optimizer_and_scheduler(checkpoint)

    def _load_continual_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.isfile(path):
            raise ValueError(
                f"The checkpoint {checkpoint} has no {STATE_FILE}: it was not written by a ContinualTrainer. Resume "
                "from a checkpoint of this continual run, or start without `resume_from_checkpoint`."
            )
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        ours = self._continual_facts()
        differ = [f"{key}: {state.get(key)!r} there, {ours[key]!r} here" for key in ours if state.get(key) != ours[key]]
        if differ:
            raise ValueError(f"The checkpoint {checkpoint} is of another continual run ({'; '.join(differ)}).")
        self._matrix, self._initial = state["accuracy_matrix"], state["initial_accuracy"]
        device = self.args.device
        if os.path.isfile(os.path.join(checkpoint, EWC_FILE)):
            tensors = load_file(os.path.join(checkpoint, EWC_FILE), device=str(device))
            count = 1 + max(int(key.split(".")[1]) for key in tensors)
            self._ewc_anchors = [
                tuple({n.split(".", 2)[2]: t for n, t in tensors.items() if n.startswith(f"{kind}.{k}.")}
                      for kind in ("fisher", "anchor"))
                for k in range(count)
            ]  # fmt: skip
        if os.path.isfile(os.path.join(checkpoint, PREVIOUS_MODEL_FILE)):
            previous = _frozen_copy(self.accelerator.unwrap_model(self.model))
            previous.load_state_dict(load_file(os.path.join(checkpoint, PREVIOUS_MODEL_FILE), device=str(device)))
            self._previous_model = previous

    # ---- results and the card ---------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None):
        """Train the experiences in order; then write `continual_results.json` (the matrix and its metrics) and the
        heatmap `accuracy_matrix.png` into `output_dir`."""
        result = super().train(resume_from_checkpoint, trial, ignore_keys_for_eval)
        report = self.continual_report()
        result.metrics.update({k: v for k, v in report["metrics"].items() if v is not None})
        if self.args.should_save:
            os.makedirs(self.args.output_dir, exist_ok=True)
            with open(os.path.join(self.args.output_dir, RESULTS_FILE), "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=2)
            plot_matrix(report["accuracy_matrix"], self._names, os.path.join(self.args.output_dir, MATRIX_PLOT),
                        report["row_names"])  # fmt: skip
        self._continual_report = report
        return result

    def continual_report(self) -> dict:
        """The accuracy matrix (rows: after each experience; a joint run has one row), the accuracies before
        training and the metrics read from them (`hf_transfer.continual.metrics`)."""
        joint = self.args.continual_method == ["joint"]
        row_names = ["after all (joint)"] if joint else [f"after {name}" for name in self._names[: len(self._matrix)]]
        return {
            "experiences": self._names,
            "row_names": row_names,
            "accuracy_matrix": self._matrix,
            "initial_accuracy": self._initial,
            "metrics": continual_metrics(self._matrix, self._initial) if self._matrix else {},
            "not_learned": self.not_learned(),
            "table": matrix_table(self._matrix, self._names, row_names) if self._matrix else "",
            "continual_method": self.args.continual_method,
            "scenario": self.args.scenario,
        }

    def describe_training(self) -> TrainingDescription:
        args = self.args
        hyperparameters = [("continual_method", ", ".join(args.continual_method)), ("scenario", args.scenario),
                           ("experiences (in order)", ", ".join(self._names)),
                           ("steps per experience", ", ".join(map(str, self._plan.steps)))]  # fmt: skip
        for method, names in _CARD_SETTINGS.items():
            if self._uses(method):
                hyperparameters += [(name, getattr(args, name)) for name in names]
        return TrainingDescription(
            summary=f"by continual learning ({', '.join(_METHODS[m].name for m in args.continual_method)}) on the "
            "experiences below, in order.",
            methods=[_METHODS[m] for m in args.continual_method],
            hyperparameters=hyperparameters,
            tags=["continual-learning", *args.continual_method],
            data_label="Experiences (labeled, trained in order)",
            intended_use=_intended_use(args),
        )


class _ExperienceBoundaries(TrainerCallback):
    """Calls the trainer at the start of training and when an experience's last step is done (before the Trainer
    logs, saves or evaluates that step, so a checkpoint of that step holds what the boundary took)."""

    def __init__(self, trainer: ContinualMixin):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._begin()

    def on_step_end(self, args, state, control, **kwargs):
        ends = self.trainer._plan.ends
        if state.global_step in ends:
            # evaluating clears the step's pending log / save / evaluation: they still happen, after the boundary
            flags = control.should_log, control.should_evaluate, control.should_save, control.should_training_stop
            self.trainer._end_experience(ends.index(state.global_step))
            control.should_log, control.should_evaluate, control.should_save, control.should_training_stop = flags
        return control


def _named_sets(value, argument: str) -> dict:
    import datasets

    if not isinstance(value, dict) or not value:
        raise TypeError(
            f"`{argument}` must be a dict {{experience name: datasets.Dataset}}, in the order of training, got "
            f"{type(value).__name__}."
        )
    for name, data in value.items():
        if not isinstance(data, datasets.Dataset):
            raise TypeError(f"`{argument}[{name!r}]` must be a `datasets.Dataset`, got {type(data).__name__}.")
        if len(data) == 0:
            raise ValueError(f"`{argument}[{name!r}]` is empty.")
    return dict(value)


def _labels_of(dataset, argument: str, num_labels: int | None) -> list[int]:
    """The integer labels of `dataset` (read from Arrow, without its transform), checked to be classes of the model."""
    column = next((c for c in ("labels", "label") if c in dataset.column_names), None)
    if column is None:
        raise ValueError(f"`{argument}` has no `label` or `labels` column (columns: {dataset.column_names}).")
    labels = dataset.with_format("arrow")[column].to_pylist()
    bad = [i for i, label in enumerate(labels) if not isinstance(label, int) or label < 0]
    if bad:
        raise ValueError(
            f"`{argument}` row {bad[0]} has the label {labels[bad[0]]!r}: every row of an experience needs a class id "
            "(0..num_labels-1); encode the labels (`dataset.class_encode_column('label')`)."
        )
    outside = labels_outside(dataset, num_labels) if num_labels else []
    if outside:
        raise ValueError(
            f"`{argument}` has label(s) {outside} outside the model's {num_labels} classes: load the model with "
            "`num_labels` covering every class of every experience."
        )
    return labels


def _frozen_copy(model):
    copied = copy.deepcopy(model)
    copied.eval()
    for param in copied.parameters():
        param.requires_grad_(False)
    return copied


def _untied(weights: dict) -> dict:
    """State-dict tensors with shared storage (tied embeddings) cloned, as safetensors requires."""
    seen, out = set(), {}
    for name, tensor in weights.items():
        key = (tensor.data_ptr(), tensor.shape)
        out[name] = tensor.clone() if key in seen else tensor
        seen.add(key)
    return out


def _data_seed(args) -> int:
    return args.data_seed if args.data_seed is not None else args.seed


def _intended_use(args) -> str:
    if args.continual_method == ["adapters"]:
        return ("Classification of inputs like those of the experiences above; each experience has its own adapter,\n"
                "chosen by name before predicting (`model.set_adapter('experience_<i>')`).")  # fmt: skip
    task = ""
    if args.scenario == "task":
        task = " given the experience (task-incremental: classes of that experience only)"
    return (f"Classification of inputs like those of the experiences above{task}. The accuracy matrix shows how much\n"
            "of each earlier experience the final model kept.")  # fmt: skip


_CARD_SETTINGS = {
    "ewc": ("ewc_lambda", "ewc_mode", "ewc_decay", "ewc_fisher_batches"),
    "replay": ("memory_size", "memory_strategy", "replay_fraction"),
    "lwf": ("lwf_alpha", "lwf_temperature"),
}

_METHODS = {
    "naive": Method("Sequential fine-tuning", "each experience in turn, nothing done against forgetting"),
    "joint": Method("Joint training", "every experience at once (the upper bound of continual learning)"),
    "ewc": Method("Elastic weight consolidation", "a quadratic penalty weighted by the Fisher information",
                  "Kirkpatrick et al., PNAS 2017; online: Schwarz et al., ICML 2018"),
    "replay": Method("Experience replay", "a memory of earlier rows mixed into every batch"),
    "lwf": Method("Learning without Forgetting", "distillation to the previous model's outputs on the new rows",
                  "Li & Hoiem, ECCV 2016 / TPAMI 2017"),
    "adapters": Method("An adapter per experience", "a PEFT adapter and head per experience on a frozen base"),
}  # fmt: skip


class ContinualTrainer(ContinualMixin, Trainer):
    """A `transformers.Trainer` that learns a sequence of experiences in order and reports the accuracy matrix.

    ```python
    from hf_transfer import ContinualConfig, ContinualTrainer

    args = ContinualConfig(output_dir="cl", continual_method=["replay"], memory_size=200, steps_per_experience=100)
    trainer = ContinualTrainer(model=model, args=args, processing_class=tokenizer,
                               train_dataset={"books": books, "dvd": dvd, "kitchen": kitchen},
                               eval_dataset={"books": books_test, "dvd": dvd_test, "kitchen": kitchen_test})
    trainer.train()
    trainer.continual_report()["metrics"]  # average accuracy, forgetting, backward / forward transfer
    ```
    """
