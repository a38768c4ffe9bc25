"""Episodes: meta-batches of tasks, each with a support and a query set of K rows per class, drawn from a dataset
with a task column. Meta-batch i depends only on (seed, i), so a resumed run and every process see the same ones."""

import logging

import numpy as np
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)


class EpisodeDataset(Dataset):
    """Item i is meta-batch i: a list of `tasks_per_meta_batch` tasks `{"task", "support", "query"}` (lists of rows).

    Args:
        rows: the model-input rows with their labels (a `datasets.Dataset` without the task column).
        tasks: the task of each row (same length as `rows`).
        labels: the label of each row.
        num_meta_batches: the dataset's length (the run's optimizer steps).
    """

    def __init__(self, rows, tasks, labels, support_shots: int, query_shots: int, tasks_per_meta_batch: int,
                 num_meta_batches: int, seed: int):  # fmt: skip
        self.rows, self.seed = rows, seed
        self.support_shots, self.query_shots = support_shots, query_shots
        self.tasks_per_meta_batch, self.num_meta_batches = tasks_per_meta_batch, num_meta_batches
        self.by_task = task_index(tasks, labels, support_shots + query_shots)

    def __len__(self) -> int:
        return self.num_meta_batches

    def __getitem__(self, index: int) -> list[dict]:
        generator = np.random.default_rng([self.seed, index])
        names = sorted(self.by_task)
        replace = len(names) < self.tasks_per_meta_batch
        chosen = generator.choice(len(names), size=self.tasks_per_meta_batch, replace=replace)
        return [self._task(names[i], generator) for i in chosen]

    def _task(self, name: str, generator) -> dict:
        support, query = [], []
        for rows in self.by_task[name].values():
            drawn = generator.choice(rows, size=self.support_shots + self.query_shots, replace=False)
            support += drawn[: self.support_shots].tolist()
            query += drawn[self.support_shots :].tolist()
        return {"task": name, "support": [self.rows[i] for i in support], "query": [self.rows[i] for i in query]}


def task_index(tasks, labels, rows_needed: int) -> dict[str, dict[int, np.ndarray]]:
    """{task: {label: row indices}} of the tasks that have at least `rows_needed` rows of each of at least two
    classes; an error naming the tasks when none has."""
    tasks, labels = np.asarray([str(t) for t in tasks]), np.asarray(labels)
    index, short = {}, {}
    for name in sorted(set(tasks.tolist())):
        rows = {
            int(label): np.flatnonzero((tasks == name) & (labels == label))
            for label in np.unique(labels[tasks == name])
        }
        counts = {label: len(r) for label, r in rows.items()}
        if len(rows) >= 2 and min(counts.values()) >= rows_needed:
            index[name] = rows
        else:
            short[name] = counts
    if short and index:
        logger.warning("Tasks left out (fewer than %d rows of two classes or more): %s", rows_needed, short)
    if not index:
        raise ValueError(
            f"No task has {rows_needed} rows (support_shots + query_shots) of each of two classes or more: rows per "
            f"class by task: {short}. Lower `support_shots` / `query_shots`, or group the rows into larger tasks."
        )
    return index


def collate_episode(collator):
    """The DataLoader's `collate_fn` for one meta-batch: each task's support and query rows through `collator`."""

    def collate(items: list[list[dict]]) -> dict:
        (tasks,) = items  # batch size 1: one meta-batch
        return {
            "tasks": [
                {
                    "task": t["task"],
                    "support": collator([dict(r) for r in t["support"]]),
                    "query": collator([dict(r) for r in t["query"]]),
                }  # fmt: skip
                for t in tasks
            ]
        }

    return collate
