"""Training batches that mix two domains: labeled source rows and unlabeled target rows in a fixed ratio.

`DomainMixingBatchSampler` chooses the rows, `TwoDomainDataset` serves both datasets as one (target rows with the
ignore label) and `DomainLabelCollator` adds each row's domain (`domain_labels`: 0 source, 1 target) to the batch.
"""

import math
from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers.trainer_utils import seed_worker

DOMAIN_LABELS_KEY = "domain_labels"
ROW_INDEX_KEY = "row_index"  # a row's index in the two-domain dataset, when a trainer asks for it


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


class TwoDomainDataset(Dataset):
    """Source rows then target rows; each row gets its domain label (and, with `with_index`, its index here), target
    rows get the ignore label -100."""

    def __init__(self, source, target, label_key: str, with_index: bool = False):
        self.source, self.target, self.label_key, self.with_index = source, target, label_key, with_index

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
        if self.with_index:
            row[ROW_INDEX_KEY] = index
        return row


class DomainLabelCollator:
    """Runs the user's collator on the rows without their domain label, then adds `domain_labels` to the batch."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, features: list[dict]) -> dict:
        domains = [feature.pop(DOMAIN_LABELS_KEY) for feature in features]
        indices = [feature.pop(ROW_INDEX_KEY) for feature in features if ROW_INDEX_KEY in feature]
        shapes = {tuple(feature["pixel_values"].shape) for feature in features if "pixel_values" in feature}
        if len(shapes) > 1:
            raise ValueError(
                f"The images of one batch have different `pixel_values` shapes {sorted(shapes)}: source and target "
                "images of mixed sizes or modes must be preprocessed to one size and mode (convert them to RGB and "
                "resize them with the model's image processor, as the image recipes do)."
            )
        batch = self.collator(features)
        batch[DOMAIN_LABELS_KEY] = torch.tensor(domains, dtype=torch.long)
        if indices:
            batch[ROW_INDEX_KEY] = torch.tensor(indices, dtype=torch.long)
        return batch


def mixed_dataloader(
    trainer, source, target, label_key: str, source_rows: int, target_rows: int, with_index: bool = False
) -> DataLoader:
    """The training DataLoader of a trainer whose batches hold `source_rows` rows of `source` (labeled) and
    `target_rows` rows of `target` (unlabeled, or `None` with `target_rows=0`), prepared by its accelerator; with
    `with_index`, each batch also holds the rows' indices (`row_index`: source rows first, then target rows)."""
    args = trainer.args
    sampler = DomainMixingBatchSampler(
        num_source=len(source),
        num_target=len(target) if target is not None else 0,
        source_rows=source_rows,
        target_rows=target_rows,
        seed=args.data_seed if args.data_seed is not None else args.seed,
    )
    dataloader = DataLoader(
        TwoDomainDataset(source, target, label_key, with_index),
        batch_sampler=sampler,
        collate_fn=DomainLabelCollator(trainer.data_collator),
        num_workers=args.dataloader_num_workers,
        pin_memory=args.dataloader_pin_memory,
        persistent_workers=args.dataloader_persistent_workers if args.dataloader_num_workers else False,
        worker_init_fn=partial(seed_worker, num_workers=args.dataloader_num_workers, rank=args.process_index),
    )
    return trainer.accelerator.prepare(dataloader)


def unlabeled_rows_like(source, target, label_key: str, argument: str):
    """`target` with the model-input columns of `source` only (its labels, if any, dropped unread)."""
    target = target.remove_columns([c for c in ("label", "labels") if c in target.column_names])
    missing = sorted(set(source.column_names) - {label_key} - set(target.column_names))
    if missing:
        raise ValueError(
            f"`{argument}` lacks the model-input column(s) {missing} that `train_dataset` has: preprocess both "
            "datasets the same way (same tokenizer / image processor)."
        )
    extra = [c for c in target.column_names if c not in source.column_names]
    return target.remove_columns(extra) if extra else target
