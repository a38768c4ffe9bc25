"""`MetaLearningTrainer`: MAML, first-order MAML and Reptile as a `transformers.Trainer`.

One optimizer step is one meta-batch of tasks. `training_step` computes the meta-gradient of the tasks this process
holds into the parameters' `.grad` (the inner loop through `torch.func.functional_call`), the processes sum their
shares, and the Trainer's optimizer, schedule, clipping, logging and checkpoints do the rest. The model is never
run through DDP's forward (DDP does not support `torch.autograd.grad`): every process holds the same weights (DDP
broadcasts them at the start) and the meta-gradients are all-reduced here.
"""

import contextlib
import zlib
from functools import partial

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer_utils import seed_worker

from ..base_trainer import BaseTrainerMixin
from ..hub.model_card import Method, TrainingDescription
from .algorithms import maml_gradients, reptile_gradients
from .config import MetaLearningConfig
from .episodes import EpisodeDataset, collate_episode

INTENDED_USE = (
    "An initialisation meant to be fine-tuned on a few labeled examples of a new task or domain (e.g. with\n"
    "`FineTuningTrainer`); the results above are those of the meta-trained model itself."
)


class MetaLearningMixin(BaseTrainerMixin):
    """MAML / first-order MAML / Reptile for any `transformers.Trainer` (sub)class: `class MyTrainer(
    MetaLearningMixin, Trainer): pass`.

    `train_dataset` holds the meta-training rows: model inputs, `label`/`labels`, and the task column
    (`MetaLearningConfig.task_column`, e.g. `domain`). Tasks share the model's label space. Extra keyword argument:
    `peft_config` (the inner loop then adapts the adapter and the head only).
    """

    config_class = MetaLearningConfig
    _tag_names = ["hf_transfer", "meta-learning"]
    loss_is_scaled_for_ga = True  # training_step returns the meta-batch's query loss as it is (no accumulation)

    def __init__(self, model=None, args=None, *trainer_args, peft_config=None, **kwargs):
        args = self._upgrade_args(args)
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("`compute_loss_func` is not supported by MetaLearningTrainer: the loss is the model's.")
        super().__init__(model, args, *trainer_args, peft_config=peft_config, **kwargs)
        _check_attention(self.accelerator.unwrap_model(self.model), self.args.meta_algorithm)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            raise ValueError(
                "Meta-learning runs the inner loop on the model's own parameters, which DeepSpeed and FSDP shard: use "
                "data parallelism (several processes each holding the model), or one process."
            )

    # ---- data ---------------------------------------------------------------------------------------------------

    def get_train_dataloader(self) -> DataLoader:
        """One meta-batch per step, the same on every process (each takes its share of the tasks): not sharded."""
        if self.train_dataset is None:
            raise ValueError("MetaLearningTrainer: training requires `train_dataset` with a task column.")
        rows, tasks, labels = self._meta_training_rows()
        args = self.args
        episodes = EpisodeDataset(rows, tasks, labels, args.support_shots, args.query_shots, args.tasks_per_meta_batch,
                                  num_meta_batches=args.max_steps, seed=_data_seed(args))  # fmt: skip
        return DataLoader(
            episodes,
            batch_size=1,
            shuffle=False,
            collate_fn=collate_episode(self.data_collator),
            num_workers=args.dataloader_num_workers,
            worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
        )

    def _meta_training_rows(self):
        import datasets

        dataset, column = self.train_dataset, self.args.task_column
        if not isinstance(dataset, datasets.Dataset):
            raise TypeError(f"`train_dataset` must be a `datasets.Dataset`, got {type(dataset).__name__}.")
        if column not in dataset.column_names:
            raise ValueError(
                f"`train_dataset` has no task column {column!r} (columns: {dataset.column_names}): add one (e.g. the "
                "domain of each row) or set `task_column`."
            )
        label_key = next((key for key in ("labels", "label") if key in dataset.column_names), None)
        if label_key is None:
            raise ValueError(f"`train_dataset` has no `label` or `labels` column (columns: {dataset.column_names}).")
        tasks, labels = dataset[column], dataset[label_key]
        if min(labels) < 0:
            raise ValueError("`train_dataset` has unlabeled rows (-100): every support and query row needs a label.")
        rows = self._prepare_training_dataset(dataset.remove_columns(column), "train_dataset")
        return rows, tasks, labels

    # ---- the meta-update ----------------------------------------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The meta-gradient of one meta-batch into the trained parameters' `.grad`; returns its mean query loss."""
        base = self.accelerator.unwrap_model(model)
        base.train()
        inputs = self._prepare_inputs(inputs)
        tasks = inputs["tasks"]
        params = {name: p for name, p in base.named_parameters() if p.requires_grad}
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        total_loss = torch.zeros((), device=self.args.device)
        for index in range(rank, len(tasks), world):  # this process's share of the tasks
            with self._task_random_state(index), self.accelerator.autocast(), self._attention_context():
                loss, grads = self._task_gradients(base, params, tasks[index])
            total_loss += loss.float()
            for param, grad in zip(params.values(), grads):
                if grad is not None:
                    grad = grad.to(param.dtype) / len(tasks)
                    param.grad = grad if param.grad is None else param.grad + grad
        self._sum_over_processes(list(params.values()), total_loss)
        mean_loss = total_loss / len(tasks)
        self._record("loss/query" if self.args.meta_algorithm != "reptile" else "loss/inner", mean_loss)
        return mean_loss.detach()

    def _task_gradients(self, base, params: dict, task: dict):
        args = self.args
        if args.meta_algorithm == "reptile":
            batches = [task["support"], task["query"]]
            return reptile_gradients(base, params, batches, args.inner_learning_rate, args.inner_steps)
        first_order = args.meta_algorithm == "fomaml"
        return maml_gradients(base, params, task["support"], task["query"], args.inner_learning_rate,
                              args.inner_steps, first_order)  # fmt: skip

    def _task_random_state(self, index: int):
        """Dropout masks that depend on the step and the task, not on which process runs it: one process and several
        take the same meta-gradient."""
        stack = contextlib.ExitStack()
        devices = [self.args.device] if self.args.device.type == "cuda" else []
        stack.enter_context(torch.random.fork_rng(devices=devices))
        torch.manual_seed(zlib.crc32(f"{self.args.seed}/{self.state.global_step}/{index}".encode()))
        return stack

    def _attention_context(self):
        """Second-order MAML differentiates twice through attention: the math kernel of SDPA supports it."""
        if self.args.meta_algorithm == "maml":
            return sdpa_kernel([SDPBackend.MATH])
        return contextlib.nullcontext()

    def _sum_over_processes(self, params: list, total_loss: torch.Tensor) -> None:
        """Sum every process's share of the meta-gradient (and of the loss): each process then holds the mean over
        all the tasks of the meta-batch. Parameters no task reached get zeros, so every process sends the same."""
        if self.accelerator.num_processes == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.flatten().float() for g in grads] + [total_loss.reshape(1)])
        torch.distributed.all_reduce(flat)
        sizes = [g.numel() for g in grads] + [1]
        *parts, loss = flat.split(sizes)
        for param, part in zip(params, parts):
            param.grad = part.view_as(param).to(param.dtype)
        total_loss.copy_(loss.reshape(()))

    # ---- the card -----------------------------------------------------------------------------------------------

    def describe_training(self) -> TrainingDescription:
        args = self.args
        hyperparameters = [
            ("meta_algorithm", args.meta_algorithm),
            ("task_column", args.task_column),
            ("support_shots (per class)", args.support_shots),
            ("query_shots (per class)", args.query_shots),
            ("inner_learning_rate", args.inner_learning_rate),
            ("inner_steps", args.inner_steps),
            ("tasks_per_meta_batch", args.tasks_per_meta_batch),
        ]
        return TrainingDescription(
            summary=f"by meta-learning ({_METHODS[args.meta_algorithm].name}) on the tasks of the data below.",
            methods=[_METHODS[args.meta_algorithm]],
            hyperparameters=hyperparameters,
            tags=["meta-learning", args.meta_algorithm],
            data_label="Meta-training data (labeled, grouped into tasks)",
            intended_use=INTENDED_USE,
            unused_settings=("per_device_train_batch_size", "gradient_accumulation_steps"),  # the tasks are the batch
        )


def _data_seed(args) -> int:
    return args.data_seed if args.data_seed is not None else args.seed


def _check_attention(model, meta_algorithm: str) -> None:
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if meta_algorithm == "maml" and implementation not in (None, "eager", "sdpa"):
        raise ValueError(
            f"Second-order MAML differentiates twice through attention, which {implementation!r} does not support: "
            "load the model with `attn_implementation='sdpa'` or 'eager', or use `meta_algorithm='fomaml'`."
        )


_METHODS = {
    "maml": Method(
        "MAML",
        "inner SGD steps on each task's support set; the meta-gradient of the query loss through them (second order)",
        "Finn et al., ICML 2017",
    ),
    "fomaml": Method(
        "First-order MAML",
        "inner SGD steps on each task's support set; the query loss's gradient at the adapted weights",
        "Finn et al., ICML 2017",
    ),
    "reptile": Method(
        "Reptile",
        "inner SGD steps on each task's rows; the meta-gradient is the initial weights minus the adapted ones",
        "Nichol et al., 2018, arXiv:1803.02999",
    ),
}


class MetaLearningTrainer(MetaLearningMixin, Trainer):
    """A `transformers.Trainer` that meta-learns an initialisation (MAML, first-order MAML, Reptile). Example:

    ```python
    from hf_transfer import MetaLearningConfig, MetaLearningTrainer

    args = MetaLearningConfig(output_dir="meta", meta_algorithm="fomaml", task_column="domain", support_shots=8,
                              query_shots=8, inner_learning_rate=1e-3, inner_steps=1, max_steps=100)
    trainer = MetaLearningTrainer(model=model, args=args, train_dataset=rows_of_several_domains,
                                  processing_class=tokenizer)
    trainer.train()
    trainer.save_model()  # a regular checkpoint: fine-tune it on the new domain's K shots
    ```
    """
