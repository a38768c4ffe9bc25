"""`MetaLearningConfig`: the `TrainingArguments` of `MetaLearningTrainer` (MAML, first-order MAML, Reptile)."""

from dataclasses import dataclass, field

from ..base_config import BaseConfig

META_ALGORITHMS = ("maml", "fomaml", "reptile")


@dataclass
class MetaLearningConfig(BaseConfig):
    r"""
    Configuration of [`MetaLearningTrainer`]: every `TrainingArguments` field, the transfer strategy of
    [`BaseConfig`] (the inner loop adapts what the strategy trains: every parameter, or only a PEFT adapter and the
    head) and the meta-learning hyper-parameters below.

    One optimizer step is one meta-batch of `tasks_per_meta_batch` tasks. A task is a group of rows sharing the value
    of `task_column` (a domain, or any grouping); from it `support_shots` rows per class form the support set and
    `query_shots` other rows per class the query set. θ are the trained parameters, α the inner learning rate:

    - `"maml"` (Finn et al. 2017): φ = θ − α ∇L_support(θ) (repeated `inner_steps` times), and the meta-gradient
      is ∇_θ L_query(φ(θ)), through the inner steps (second order: Hessian-vector products);
    - `"fomaml"`: the same with the inner gradients treated as constants: the meta-gradient is ∇_φ L_query(φ);
    - `"reptile"` (Nichol et al. 2018): `inner_steps` SGD steps on the task's support and query rows give φ; the
      meta-gradient is θ − φ.

    The meta-gradient, averaged over the tasks of the meta-batch, is applied by the Trainer's optimizer and schedule
    (`learning_rate` is the outer learning rate). Training is counted in meta-batches: `max_steps` (default 100).

    Parameters:
        meta_algorithm (`str`, defaults to `"fomaml"`): `"maml"`, `"fomaml"` or `"reptile"`.
        task_column (`str`, defaults to `"domain"`): the column whose values define the tasks.
        support_shots (`int`, defaults to `8`): support rows per class and task (K).
        query_shots (`int`, defaults to `8`): query rows per class and task.
        inner_learning_rate (`float`, defaults to `1e-3`): α, the learning rate of the inner SGD steps.
        inner_steps (`int`, defaults to `1`): inner SGD steps per task.
        tasks_per_meta_batch (`int`, defaults to `4`): tasks per optimizer step, drawn uniformly from the tasks
            (with replacement when there are fewer tasks); with several processes they are split between them.
    """

    max_steps: int = field(default=100, metadata={"help": "Meta-batches (optimizer steps) to train."})
    meta_algorithm: str = field(
        default="fomaml",
        metadata={
            "help": "'maml' (second order), 'fomaml' (first order) or 'reptile'.",
            "choices": list(META_ALGORITHMS),
        },
    )
    task_column: str = field(default="domain", metadata={"help": "Column whose values define the tasks."})
    support_shots: int = field(default=8, metadata={"help": "Support rows per class and task (K)."})
    query_shots: int = field(default=8, metadata={"help": "Query rows per class and task."})
    inner_learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate α of the inner SGD steps."})
    inner_steps: int = field(default=1, metadata={"help": "Inner SGD steps per task."})
    tasks_per_meta_batch: int = field(default=4, metadata={"help": "Tasks per optimizer step (meta-batch)."})

    def __post_init__(self):
        if self.meta_algorithm not in META_ALGORITHMS:
            raise ValueError(f"`meta_algorithm` must be one of {list(META_ALGORITHMS)}, got {self.meta_algorithm!r}.")
        for name in ("support_shots", "query_shots", "inner_steps", "tasks_per_meta_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if not self.inner_learning_rate > 0:
            raise ValueError(f"`inner_learning_rate` must be > 0, got {self.inner_learning_rate}.")
        if self.max_steps is None or self.max_steps < 1:
            raise ValueError(
                "Meta-training is counted in meta-batches: give `max_steps` >= 1 (one optimizer step per meta-batch of "
                "`tasks_per_meta_batch` tasks); epochs are not defined for sampled tasks."
            )
        if self.per_device_train_batch_size != 8:  # the TrainingArguments default
            raise ValueError(
                "`per_device_train_batch_size` is not used by meta-learning: a step's rows are its tasks' support and "
                "query sets (`support_shots`, `query_shots`, `tasks_per_meta_batch`). Leave it at its default."
            )
        if self.gradient_accumulation_steps != 1:
            raise ValueError(
                "`gradient_accumulation_steps` must be 1: one optimizer step is one meta-batch. Raise "
                "`tasks_per_meta_batch` for more tasks per step."
            )
        super().__post_init__()
