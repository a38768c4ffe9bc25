"""The sequence of experiences: how many steps each trains (`ExperiencePlan`), which rows the replay memory holds
(`replay_memory`), the batches of every step (`ContinualBatchSampler`) and the rows tagged with their experience
(`ExperienceRows`, `ExperienceSequence`).

Every choice depends only on the seed, the experiences' sizes and labels, and the step: a resumed run sees exactly
the batches and the memory of an uninterrupted one, and needs nothing saved to rebuild them.
"""

import math
import random
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Sampler

EXPERIENCE_KEY = "experience_ids"  # each row's experience (0, 1, ...), in every batch


@dataclass(frozen=True)
class ExperiencePlan:
    """The optimizer steps of each experience, in order: experience i trains steps [starts[i], ends[i])."""

    names: tuple[str, ...]
    steps: tuple[int, ...]

    @property
    def ends(self) -> list[int]:
        ends, total = [], 0
        for steps in self.steps:
            total += steps
            ends.append(total)
        return ends

    @property
    def total_steps(self) -> int:
        return sum(self.steps)

    def experience_at(self, step: int) -> int:
        """The experience that trains optimizer step `step` (0-based: `state.global_step` before the step); the last
        one from the end of training on."""
        return next((i for i, end in enumerate(self.ends) if step < end), len(self.steps) - 1)

    def finished(self, global_step: int) -> int:
        """How many experiences are finished after `global_step` optimizer steps."""
        return sum(end <= global_step for end in self.ends)


def replay_rows_per_batch(batch_rows: int, replay_fraction: float) -> int:
    """Rows of each batch drawn from the memory: `round(batch_rows · replay_fraction)`, at least 1 and leaving at
    least 1 row of the current experience."""
    if batch_rows < 2:
        raise ValueError(
            f"Replay needs batches of at least 2 rows (1 from the memory, 1 new), got per_device_train_batch_size="
            f"{batch_rows}: raise it."
        )
    return min(batch_rows - 1, max(1, round(batch_rows * replay_fraction)))


def plan_experiences(names, sizes, batch_rows, replay_rows, steps_per_experience, epochs, rows_per_batch_group):
    """The `ExperiencePlan`: `steps_per_experience` each, or `epochs` passes over each experience's rows, where an
    optimizer step takes `rows_per_batch_group` batches (processes × accumulation) of `batch_rows` rows, of which
    `replay_rows` come from the memory after the first experience."""
    steps = []
    for index, size in enumerate(sizes):
        if steps_per_experience:
            steps.append(steps_per_experience)
            continue
        new_rows = batch_rows - (replay_rows if index else 0)
        steps.append(max(1, math.floor(epochs * size / (new_rows * rows_per_batch_group))))
    return ExperiencePlan(tuple(names), tuple(steps))


def replay_memory(experience_labels: list[list[int]], size: int, strategy: str, seed: int) -> list[tuple[int, int]]:
    """The memory after the given experiences, as (experience, row) pairs, in slot order.

    - `"reservoir"` (Vitter 1985): the rows stream in, experience after experience (each in a seeded random order);
      the n-th row takes a random slot with probability size / n, so every row seen is equally likely to be kept;
    - `"class_balanced"`: each class seen so far owns size // classes slots (the first size % classes classes one
      more); after each experience, a class over its share drops random rows, then the class's new rows stream
      through a reservoir of its share.
    """
    rng = random.Random(seed)
    memory: list[tuple[int, int]] = []
    per_class: dict[int, list[tuple[int, int]]] = {}
    seen = 0
    seen_per_class: dict[int, int] = {}
    for experience, labels in enumerate(experience_labels):
        order = list(range(len(labels)))
        rng.shuffle(order)
        if strategy == "reservoir":
            for row in order:
                seen += 1
                if len(memory) < size:
                    memory.append((experience, row))
                else:
                    slot = rng.randrange(seen)
                    if slot < size:
                        memory[slot] = (experience, row)
            continue
        classes = sorted(set(per_class) | set(labels))
        shares = {c: size // len(classes) + (i < size % len(classes)) for i, c in enumerate(classes)}
        for c in classes:
            kept = per_class.setdefault(c, [])
            while len(kept) > shares[c]:
                kept.pop(rng.randrange(len(kept)))
        for row in order:
            c = labels[row]
            seen_per_class[c] = seen_per_class.get(c, 0) + 1
            kept = per_class[c]
            if len(kept) < shares[c]:
                kept.append((experience, row))
            else:
                slot = rng.randrange(seen_per_class[c])
                if slot < shares[c]:
                    kept[slot] = (experience, row)
        memory = [pair for c in classes for pair in per_class[c]]
    return memory


class ContinualBatchSampler(Sampler[list[int]]):
    """The batches of a whole continual run (one "epoch" is the whole sequence), as indices into the experiences'
    rows laid end to end (`offsets[i]` is the first row of experience i).

    Optimizer step s of experience i takes `batches_per_step` batches (processes × accumulation, handed out in turn);
    each batch holds `batch_rows − replay_rows` rows of experience i, from back-to-back seeded permutations of its
    rows, and, from the second experience on with a memory, `replay_rows` rows of the memory (`replay_memory` after
    experiences 0..i−1), from back-to-back seeded permutations of the memory. `segments` replaces the experiences
    for joint training: one segment holding every row.
    """

    def __init__(self, plan, segments, batch_rows, replay_rows, batches_per_step, seed, memory_of=None):
        self.plan, self.segments = plan, segments  # segments[i]: the row indices experience i trains on
        self.batch_rows, self.replay_rows = batch_rows, replay_rows
        self.batches_per_step, self.seed, self.memory_of = batches_per_step, seed, memory_of
        self.batch_size, self.drop_last = batch_rows, False

    def __len__(self) -> int:
        return self.plan.total_steps * self.batches_per_step

    def __iter__(self):
        for index, steps in enumerate(self.plan.steps):
            memory = self.memory_of(index) if self.memory_of is not None and index else []
            replay = self.replay_rows if memory else 0
            count = steps * self.batches_per_step
            new = _stream(self.segments[index], count * (self.batch_rows - replay), self._generator(index, 0))
            old = _stream(memory, count * replay, self._generator(index, 1))
            for batch in range(count):
                rows = self.batch_rows - replay
                yield new[batch * rows : (batch + 1) * rows] + old[batch * replay : (batch + 1) * replay]

    def _generator(self, index: int, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + index * 2 + stream)


def _stream(rows: list[int], length: int, generator: torch.Generator) -> list[int]:
    """`length` items of back-to-back random permutations of `rows`."""
    out: list[int] = []
    while len(out) < length:
        out += [rows[i] for i in torch.randperm(len(rows), generator=generator).tolist()]
    return out[:length]


class ExperienceRows(Dataset):
    """A dataset's rows, each with its experience id under `experience_ids`."""

    def __init__(self, dataset, experience: int):
        self.dataset, self.experience = dataset, experience

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], EXPERIENCE_KEY: self.experience}


class ExperienceSequence(Dataset):
    """The experiences' rows laid end to end (row r of experience i at `offsets[i] + r`), tagged with their
    experience."""

    def __init__(self, datasets: list):
        self.datasets = datasets
        self.offsets = [0]
        for dataset in datasets[:-1]:
            self.offsets.append(self.offsets[-1] + len(dataset))

    def __len__(self) -> int:
        return self.offsets[-1] + len(self.datasets[-1])

    def __getitem__(self, index: int) -> dict:
        experience = max(i for i, offset in enumerate(self.offsets) if offset <= index)
        row = self.datasets[experience][index - self.offsets[experience]]
        return {**row, EXPERIENCE_KEY: experience}
