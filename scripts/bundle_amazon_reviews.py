"""Build the Amazon reviews bundle shipped in `hf_transfer/data/amazon/` from the raw benchmark copy.

Run once by maintainers, not by users (the bundle is committed):

    python scripts/bundle_amazon_reviews.py ../shared/data/amazon hf_transfer/data/amazon

For each domain it writes `labeled.jsonl.gz` (the 2000 labeled reviews with a fixed `split` column,
"train" or "validation") and `unlabeled.jsonl.gz` (the unlabeled reviews). The validation split holds
200 positive and 200 negative reviews chosen by the SHA-1 of the review text, and reviews with
identical text always land in the same split, so the split cannot leak duplicates.
"""

import gzip
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

DOMAINS = ("books", "dvd", "electronics", "kitchen")
VALIDATION_PER_LABEL = 200


def assign_splits(rows: list[dict]) -> None:
    for label in (0, 1):
        groups = defaultdict(list)
        for row in rows:
            if row["label"] == label:
                groups[row["text"]].append(row)
        ordered = sorted(groups, key=lambda text: hashlib.sha1(text.encode("utf-8")).hexdigest())
        taken = 0
        for text in ordered:
            split = "validation" if taken < VALIDATION_PER_LABEL else "train"
            for row in groups[text]:
                row["split"] = split
            if split == "validation":
                taken += len(groups[text])


def write_jsonl_gz(rows: list[dict], path: Path) -> None:
    # mtime=0 keeps the archive byte-identical across rebuilds.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def main(source_dir: str, target_dir: str) -> None:
    for domain in DOMAINS:
        out = Path(target_dir) / domain
        out.mkdir(parents=True, exist_ok=True)
        labeled = [json.loads(line) for line in open(Path(source_dir) / domain / "labeled.jsonl", encoding="utf-8")]
        assign_splits(labeled)
        keep = ("text", "label", "rating", "asin", "unique_id", "split")
        write_jsonl_gz([{key: row[key] for key in keep} for row in labeled], out / "labeled.jsonl.gz")
        unlabeled = [json.loads(line) for line in open(Path(source_dir) / domain / "unlabeled.jsonl", encoding="utf-8")]
        write_jsonl_gz([{"text": row["text"]} for row in unlabeled], out / "unlabeled.jsonl.gz")
        counts = defaultdict(int)
        for row in labeled:
            counts[(row["split"], row["label"])] += 1
        print(domain, dict(counts), "unlabeled", len(unlabeled))


if __name__ == "__main__":
    main(*sys.argv[1:3])
