"""Adapter strategies of `TransferConfig` (LoRA, DoRA, IA3, LoHa, LoKr, a PEFT config file) with `TransferTrainer`:
exactly which parameters train, frozen ones unchanged, adapter and merged exports reload with identical logits."""

import json

import pytest
import torch
from conftest import TINY_VISION_CONFIGS as CONFIGS
from conftest import make_images, tiny_bert
from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification, default_data_collator

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, TransferConfig, TransferTrainer
from hf_transfer.strategies import default_target_modules

# the parameter-name fragment each adapter type adds
ADAPTER_MARKERS = {
    "lora": ("lora_A", "lora_B"),
    "dora": ("lora_A", "lora_B", "lora_magnitude_vector"),
    "ia3": ("ia3_l",),
    "loha": ("hada_w1", "hada_w2"),
    "lokr": ("lokr_w1", "lokr_w2"),
}


def is_head(name: str) -> bool:
    return "classifier" in name and "modules_to_save" in name


def bert_trainer(tmp_path, text_domains, **config):
    source, _, _ = text_domains
    args = TransferConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        **config,
    )
    return TransferTrainer(model=tiny_bert(), args=args, train_dataset=source)


def moved_and_frozen(trainer):
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    return trainable, moved


@pytest.mark.parametrize("strategy", ["lora", "dora", "ia3", "loha", "lokr"])
def test_adapter_strategies_train_exactly_the_adapter_and_the_head(tmp_path, text_domains, strategy):
    trainer = bert_trainer(tmp_path, text_domains, transfer_strategy=strategy, lora_r=2, lora_alpha=4)
    trainable, moved = moved_and_frozen(trainer)
    markers = ADAPTER_MARKERS[strategy]
    adapter = {n for n in trainable if any(m in n for m in markers)}
    head = {n for n in trainable if is_head(n)}
    assert adapter and head == {
        n for n, _ in trainer.model.named_parameters() if is_head(n)
    }  # the whole head (dense + out_proj for BERT's classifier) trains
    assert trainable == adapter | head  # nothing else
    assert moved <= trainable  # every frozen parameter unchanged
    assert head <= moved
    assert {n for n in moved if any(m in n for m in markers)}  # the adapter itself learned
    # PEFT's defaults for BERT: LoRA-family adapters on query and value
    if strategy != "ia3":
        assert all(".query." in n or ".value." in n for n in adapter)
        assert any(".query." in n for n in adapter) and any(".value." in n for n in adapter)


def test_peft_config_file_any_method(tmp_path, text_domains):
    config_file = tmp_path / "adapter_config.json"
    config_file.write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["key"]}))
    trainer = bert_trainer(tmp_path, text_domains, transfer_strategy="peft", peft_config_file=str(config_file))
    trainable, moved = moved_and_frozen(trainer)
    assert {n for n in trainable if "lora_" in n} and all(".key." in n for n in trainable if "lora_" in n)
    assert trainable == {n for n in trainable if "lora_" in n or is_head(n)}
    assert moved <= trainable


def test_a_peft_config_file_without_a_method_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("r: 8\n")
    with pytest.raises(ValueError, match="must hold a mapping with a `peft_type`"):
        TransferConfig(output_dir=str(tmp_path), transfer_strategy="peft", peft_config_file=str(bad))


@pytest.mark.parametrize("strategy", ["lora", "dora", "ia3", "loha", "lokr"])
def test_adapter_and_merged_exports_reload_with_identical_logits(tmp_path, text_domains, tokenizer, strategy):
    from peft import PeftModel

    trainer = bert_trainer(tmp_path, text_domains, transfer_strategy=strategy, lora_r=2, lora_alpha=4)
    trainer.train()
    trainer.save_model()
    trainer.save_merged_model(str(tmp_path / "merged"))
    batch = tokenizer(text_domains[2]["text"][:4], padding=True, return_tensors="pt")
    batch = {k: batch[k] for k in ("input_ids", "attention_mask")}
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(**batch).logits
        # the base weights never train with an adapter strategy: the adapter goes onto a fresh copy of the base
        adapter = PeftModel.from_pretrained(tiny_bert(), tmp_path / "out").eval()
        torch.testing.assert_close(adapter(**batch).logits, expected)
        merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=1e-4)
    assert not any("lora" in k or "hada" in k or "lokr" in k or "ia3" in k for k in merged.state_dict())


@pytest.mark.parametrize("architecture", ["vit", "resnet"])
def test_lora_on_architectures_peft_does_not_know_wraps_every_block_layer(tmp_path, architecture):
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(CONFIGS[architecture])
    targets = default_target_modules(model)
    expected_type = torch.nn.Linear if architecture == "vit" else torch.nn.Conv2d
    assert targets and all(isinstance(model.get_submodule(t), expected_type) for t in targets)
    assert not any("embeddings" in t or "classifier" in t for t in targets)
    args = DomainAdaptationConfig(
        output_dir=str(tmp_path / "out"),
        transfer_strategy="lora",
        lora_r=2,
        adaptation_loss=["dann"],
        max_steps=2,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
    )
    trainer = DomainAdaptationTrainer(
        model=model,
        args=args,
        train_dataset=make_images(16, 0.0, 0),
        target_dataset=make_images(16, 2.0, 1).remove_columns("label"),
        data_collator=default_data_collator,
    )
    trainable, moved = moved_and_frozen(trainer)
    assert trainable == {n for n in trainable if "lora_" in n or is_head(n)}
    assert len({n for n in trainable if "lora_A" in n}) == len(targets)
    assert moved <= trainable
    pixels = torch.randn(2, 3, 16, 16)
    trainer.save_merged_model(str(tmp_path / "merged"))
    trainer.model.eval()
    with torch.no_grad():
        merged = AutoModelForImageClassification.from_pretrained(tmp_path / "merged").eval()
        torch.testing.assert_close(
            merged(pixel_values=pixels).logits, trainer.model(pixel_values=pixels).logits, atol=1e-5, rtol=1e-4
        )


def test_a_peft_config_and_an_adapter_strategy_together_are_a_clear_error(tmp_path, text_domains):
    from peft import LoraConfig

    args = TransferConfig(output_dir=str(tmp_path), transfer_strategy="lora", report_to="none")
    with pytest.raises(ValueError, match="Both `peft_config` and `transfer_strategy='lora'`"):
        TransferTrainer(
            model=tiny_bert(),
            args=args,
            train_dataset=text_domains[0],
            peft_config=LoraConfig(target_modules=["query"]),
        )


def test_plain_training_arguments_are_upgraded(tmp_path, text_domains):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, report_to="none", use_cpu=True, seed=7)
    trainer = TransferTrainer(model=tiny_bert(), args=args, train_dataset=text_domains[0])
    assert isinstance(trainer.args, TransferConfig) and trainer.args.seed == 7
    assert trainer.args.transfer_strategy == "full"
