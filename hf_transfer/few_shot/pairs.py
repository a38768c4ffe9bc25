"""Contrastive pairs from a few labeled rows (SetFit's pair generation)."""

from itertools import zip_longest

import torch
from torch.utils.data import Dataset

SAMPLING_STRATEGIES = ("oversampling", "undersampling", "unique")
PAIR_SIMILARITY_KEY = "pair_similarity"


def contrastive_pairs(
    labels, sampling_strategy: str = "oversampling", num_iterations: int | None = None, seed: int = 42
) -> list[tuple[int, int, float]]:
    """Pairs `(i, j, similarity)` of row indices, similarity 1.0 for two rows of the same label, 0.0 otherwise.

    As SetFit 1.x (`setfit.sampler.ContrastiveDataset`): the candidates are every unordered pair of rows, a row with
    itself included (N (N + 1) / 2 of them), in an order shuffled by `seed`; they split into positives and
    negatives, whose counts are then set by the strategy:

    - `"oversampling"`: both the size of the larger list, the smaller one cycled (balanced);
    - `"undersampling"`: both the size of the smaller list (balanced);
    - `"unique"`: each list as it is;
    - `num_iterations` (overrides the strategy): both `num_iterations * N`, cycled.

    Positives and negatives then alternate (p, n, p, n, ...). With K rows in each of C classes there are
    C·K(K+1)/2 positives and K²·C(C−1)/2 negatives (2 classes, K = 8: 72 and 64, so 144 pairs by oversampling).
    """
    labels = [int(label) for label in labels]
    if sampling_strategy not in SAMPLING_STRATEGIES:
        raise ValueError(f"`sampling_strategy` must be one of {list(SAMPLING_STRATEGIES)}, got {sampling_strategy!r}.")
    if len(set(labels)) < 2:
        raise ValueError(
            f"Contrastive pairs need rows of at least two classes, got only {sorted(set(labels))}: negative pairs "
            "are two rows of different classes."
        )
    rows = torch.triu_indices(len(labels), len(labels))
    order = torch.randperm(rows.shape[1], generator=torch.Generator().manual_seed(seed))
    positives, negatives = [], []
    for i, j in rows[:, order].t().tolist():
        (positives if labels[i] == labels[j] else negatives).append((i, j, float(labels[i] == labels[j])))
    if num_iterations is not None:
        sizes = (num_iterations * len(labels),) * 2
    elif sampling_strategy == "oversampling":
        sizes = (max(len(positives), len(negatives)),) * 2
    elif sampling_strategy == "undersampling":
        sizes = (min(len(positives), len(negatives)),) * 2
    else:
        sizes = (len(positives), len(negatives))
    positives, negatives = _cycled(positives, sizes[0]), _cycled(negatives, sizes[1])
    return [pair for both in zip_longest(positives, negatives) for pair in both if pair is not None]


def _cycled(pairs: list, size: int) -> list:
    return [pairs[index % len(pairs)] for index in range(size)]


class PairDataset(Dataset):
    """The rows of each pair, side by side: item k is `[row_i, row_j]`, each row a dict of model inputs, the second
    also holding the pair's target similarity."""

    def __init__(self, rows, pairs: list[tuple[int, int, float]]):
        self.rows, self.pairs = rows, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> list[dict]:
        i, j, similarity = self.pairs[index]
        return [dict(self.rows[i]), {**self.rows[j], PAIR_SIMILARITY_KEY: similarity}]


class PairCollator:
    """One batch of 2B rows (the B first rows of the pairs, then the B second rows) through the user's collator,
    plus the B target similarities (`pair_similarity`); labels are dropped (the pair's similarity replaces them)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, items: list[list[dict]]) -> dict:
        similarities = [second.pop(PAIR_SIMILARITY_KEY) for _, second in items]
        rows = [first for first, _ in items] + [second for _, second in items]
        for row in rows:
            row.pop("label", None)
            row.pop("labels", None)
        batch = self.collator(rows)
        batch[PAIR_SIMILARITY_KEY] = torch.tensor(similarities, dtype=torch.float32)
        return batch
