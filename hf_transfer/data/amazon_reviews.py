"""The Amazon multi-domain sentiment reviews (Blitzer et al., ACL 2007), bundled with hf_transfer.

Provenance, counts and the fixed splits are described in `hf_transfer/data/amazon/README.md`.
"""

import gzip
import json
from pathlib import Path

import datasets

AMAZON_DOMAINS = ("books", "dvd", "electronics", "kitchen")
AMAZON_SPLITS = ("train", "validation", "test", "unlabeled")
AMAZON_LABEL_NAMES = ["negative", "positive"]

_DATA_DIR = Path(__file__).resolve().parent / "amazon"


def _read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load_amazon_reviews(domain: str, split: str = "train") -> datasets.Dataset:
    """Load one split of one domain of the bundled Amazon reviews.

    Args:
        domain: one of `"books"`, `"dvd"`, `"electronics"`, `"kitchen"`.
        split: `"train"` (1600 labeled reviews) and `"validation"` (400) are the source-side splits;
            `"unlabeled"` holds the domain's unlabeled reviews (text only) for adaptation;
            `"test"` is all 2000 labeled reviews, the target-test set of the standard protocol.

    Returns:
        A `datasets.Dataset` with a `text` column and, for the labeled splits, a `label` column
        (`ClassLabel` with names `["negative", "positive"]`). The labeled splits are stored sorted by label (all
        negative reviews, then all positive ones): take a subset by a seeded, class-stratified sample
        (`hf_transfer.recipes.preprocessing.sample_rows`, what the recipes' `--max_*_samples` do), never the first
        rows.
    """
    if domain not in AMAZON_DOMAINS:
        raise ValueError(f"`domain` must be one of {list(AMAZON_DOMAINS)}, got {domain!r}.")
    if split not in AMAZON_SPLITS:
        raise ValueError(f"`split` must be one of {list(AMAZON_SPLITS)}, got {split!r}.")

    if split == "unlabeled":
        rows = _read_jsonl_gz(_DATA_DIR / domain / "unlabeled.jsonl.gz")
        features = datasets.Features({"text": datasets.Value("string")})
        return datasets.Dataset.from_list(rows, features=features, split=datasets.NamedSplit(split))

    rows = _read_jsonl_gz(_DATA_DIR / domain / "labeled.jsonl.gz")
    if split != "test":
        rows = [row for row in rows if row["split"] == split]
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=AMAZON_LABEL_NAMES),
            "rating": datasets.Value("float32"),
            "asin": datasets.Value("string"),
            "unique_id": datasets.Value("string"),
        }
    )
    rows = [{name: row[name] for name in features} for row in rows]
    return datasets.Dataset.from_list(rows, features=features, split=datasets.NamedSplit(split))
