"""Layer groups, frozen layers, feature extraction and layer-wise learning rates on BERT, ViT and ResNet."""

import pytest
import torch
from conftest import TINY_VISION_CONFIGS as CONFIGS
from conftest import tiny_bert
from transformers import AutoModelForImageClassification

from hf_transfer.strategies import (
    find_blocks,
    freeze_backbone,
    freeze_lowest_layers,
    layer_groups,
    layerwise_learning_rates,
)


def models():
    torch.manual_seed(0)
    return {
        "bert": tiny_bert(),
        "vit": AutoModelForImageClassification.from_config(CONFIGS["vit"]),
        "resnet": AutoModelForImageClassification.from_config(CONFIGS["resnet"]),
    }


BLOCKS = {"bert": "bert.encoder.layer", "vit": "vit.layers", "resnet": "resnet.encoder.stages"}


@pytest.mark.parametrize("architecture", ["bert", "vit", "resnet"])
def test_layer_groups_partition_the_parameters_from_input_to_output(architecture):
    model = models()[architecture]
    assert find_blocks(model)[0] == BLOCKS[architecture]
    groups = layer_groups(model, "classifier")
    assert [g.name for g in groups] == ["embeddings", "block_0", "block_1", "head"]
    names = [n for g in groups for n in g.parameter_names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())  # every parameter exactly once
    assert all(n.startswith("classifier.") for n in groups[-1].parameter_names)
    assert all(n.startswith(f"{BLOCKS[architecture]}.0.") for n in groups[1].parameter_names)


def test_pooler_and_final_norm_join_the_last_block():
    bert_groups = layer_groups(models()["bert"], "classifier")
    assert "bert.pooler.dense.weight" in bert_groups[2].parameter_names
    vit_groups = layer_groups(models()["vit"], "classifier")
    assert "vit.layernorm.weight" in vit_groups[2].parameter_names


@pytest.mark.parametrize("architecture", ["bert", "vit", "resnet"])
def test_freeze_lowest_layers_freezes_embeddings_and_exactly_the_lowest_blocks(architecture):
    model = models()[architecture]
    groups = {g.name: g.parameter_names for g in layer_groups(model, "classifier")}
    frozen = freeze_lowest_layers(model, "classifier", 1)
    assert sorted(frozen) == sorted(groups["embeddings"] + groups["block_0"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(groups["block_1"] + groups["head"])
    with pytest.raises(ValueError, match="`num_frozen_layers`=3 but .* has 2 blocks"):
        freeze_lowest_layers(model, "classifier", 3)


@pytest.mark.parametrize("architecture", ["bert", "vit", "resnet"])
def test_feature_extraction_trains_only_the_head(architecture):
    model = models()[architecture]
    freeze_backbone(model, "classifier")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("classifier.") for n in trainable)


def test_layerwise_learning_rates_decay_from_the_head_down():
    model = models()["bert"]
    rates = layerwise_learning_rates(model, "classifier", 1e-3, 0.5)
    assert rates["classifier.weight"] == 1e-3
    assert rates["bert.pooler.dense.weight"] == rates["bert.encoder.layer.1.output.dense.weight"] == 5e-4
    assert rates["bert.encoder.layer.0.output.dense.weight"] == 2.5e-4
    assert rates["bert.embeddings.word_embeddings.weight"] == 1.25e-4
    assert set(rates) == {n for n, _ in model.named_parameters()}
    with pytest.raises(ValueError, match="`layerwise_lr_decay` must be in"):
        layerwise_learning_rates(model, "classifier", 1e-3, 1.5)


# ---- wired into DomainAdaptationTrainer ----------------------------------------------------------------------------


def strategy_trainer(tmp_path, text_domains, tokenizer, **kwargs):
    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer

    source, target, _ = text_domains
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        max_steps=3,
        learning_rate=1e-3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    args = DomainAdaptationConfig(**{**defaults, **kwargs})
    return DomainAdaptationTrainer(
        model=tiny_bert(), args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
    )


def moved_groups(trainer, before):
    after = dict(trainer.model.named_parameters())
    return {
        g.name
        for g in layer_groups(trainer.model, "classifier")
        if any(not torch.equal(before[n], after[n]) for n in g.parameter_names)
    }


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "kwargs, expected_moved",
    [
        ({"transfer_strategy": "feature_extraction"}, {"head"}),
        ({"transfer_strategy": "freeze_layers", "num_frozen_layers": 1}, {"block_1", "head"}),
        ({}, {"embeddings", "block_0", "block_1", "head"}),
    ],
)
def test_strategies_train_exactly_the_configured_parameters(tmp_path, text_domains, tokenizer, kwargs, expected_moved):
    trainer = strategy_trainer(tmp_path, text_domains, tokenizer, adaptation_loss=["dann", "mmd"], **kwargs)
    before, disc_before = snapshot(trainer.model), snapshot(trainer.domain_discriminator)
    trainer.train()
    assert moved_groups(trainer, before) == expected_moved
    assert all(not torch.equal(p, disc_before[n]) for n, p in trainer.domain_discriminator.named_parameters())


def test_layerwise_lr_decay_sets_each_groups_learning_rate(tmp_path, text_domains, tokenizer):
    trainer = strategy_trainer(tmp_path, text_domains, tokenizer, layerwise_lr_decay=0.5)
    optimizer = trainer.create_optimizer()
    expected = layerwise_learning_rates(trainer.model, "classifier", 1e-3, 0.5)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    seen = set()
    for group in optimizer.param_groups:
        for param in group["params"]:
            if id(param) in names:
                assert group["lr"] == pytest.approx(expected[names[id(param)]]), names[id(param)]
                seen.add(names[id(param)])
            else:  # the discriminator keeps the base learning rate
                assert group["name"] == "domain_discriminator" and group["lr"] == 1e-3
    assert seen == set(expected)


def test_progressive_unfreezing_unfreezes_one_group_every_k_steps_and_the_optimizer_updates_it(
    tmp_path, text_domains, tokenizer
):
    from transformers import TrainerCallback

    trainer = strategy_trainer(
        tmp_path, text_domains, tokenizer, adaptation_loss=[], progressive_unfreezing_steps=2, max_steps=6
    )
    moved_per_step = []

    class Spy(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            self.before = snapshot(model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            moved_per_step.append(moved_groups(trainer, self.before))

    trainer.add_callback(Spy())
    initial = snapshot(trainer.model)
    trainer.train()
    assert moved_per_step == [
        {"head"},
        {"head"},
        {"head", "block_1"},
        {"head", "block_1"},
        {"head", "block_1", "block_0"},
        {"head", "block_1", "block_0"},
    ]
    assert "embeddings" not in moved_groups(trainer, initial)  # its turn would have come at step 6
    assert all(p.requires_grad for p in trainer.model.parameters())  # fully trainable again after training


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"transfer_strategy": "prompt_tuning"}, "`transfer_strategy` must be one of"),
        ({"transfer_strategy": "peft"}, "needs `peft_config_file`"),
        ({"peft_config_file": "adapter_config.json"}, "only read with `transfer_strategy='peft'`"),
        ({"transfer_strategy": "peft", "peft_config_file": "missing.json"}, "does not exist"),
        ({"transfer_strategy": "lora", "layerwise_lr_decay": 0.9}, "leave it at 1.0"),
        ({"transfer_strategy": "lora", "lora_r": 0}, "`lora_r` must be >= 1"),
        ({"transfer_strategy": "freeze_layers"}, "needs `num_frozen_layers` >= 1"),
        ({"num_frozen_layers": 2}, "only used with `transfer_strategy='freeze_layers'`"),
        ({"layerwise_lr_decay": 0.0}, "`layerwise_lr_decay` must be in (0, 1]"),
        ({"progressive_unfreezing_steps": 5, "transfer_strategy": "feature_extraction"}, "use it with"),
    ],
)
def test_strategy_config_errors(kwargs, message):
    from hf_transfer import DomainAdaptationConfig

    with pytest.raises(ValueError) as error:
        DomainAdaptationConfig(output_dir="x", report_to="none", **kwargs)
    assert message in str(error.value)


def test_strategies_with_peft_are_a_clear_error(tmp_path, text_domains, tokenizer):
    from peft import LoraConfig

    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer

    source, target, _ = text_domains
    args = DomainAdaptationConfig(output_dir=str(tmp_path), report_to="none", layerwise_lr_decay=0.8)
    with pytest.raises(ValueError, match="With `peft_config` only the adapter and the classification head train"):
        DomainAdaptationTrainer(
            model=tiny_bert(),
            args=args,
            train_dataset=source,
            target_dataset=target,
            peft_config=LoraConfig(target_modules=["query"]),
        )


def test_the_model_card_states_the_strategy(tmp_path, text_domains, tokenizer):
    trainer = strategy_trainer(
        tmp_path,
        text_domains,
        tokenizer,
        transfer_strategy="freeze_layers",
        num_frozen_layers=1,
        layerwise_lr_decay=0.8,
        max_steps=1,
    )
    trainer.train()
    trainer.create_model_card()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "embeddings and the lowest 1 blocks frozen; layer-wise learning-rate decay 0.8" in card


@pytest.mark.parametrize("strategy", [{"transfer_strategy": "feature_extraction"}, {"transfer_strategy": "lora"}])
def test_frozen_batch_norm_keeps_its_running_statistics(tmp_path, strategy):
    from conftest import make_images
    from transformers import default_data_collator

    from hf_transfer import TransferConfig, TransferTrainer

    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(CONFIGS["resnet"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = TransferConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=8, report_to="none", use_cpu=True, **strategy
    )
    trainer = TransferTrainer(
        model=model, args=args, train_dataset=make_images(16, 3.0, 0), data_collator=default_data_collator
    )
    trainer.train()
    base = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    after = {k.replace(".base_layer", ""): v for k, v in base.state_dict().items() if "lora_" not in k}
    backbone = [k for k in before if not k.startswith("classifier.")]
    assert any("running_mean" in k for k in backbone)
    assert all(torch.equal(after[k], before[k]) for k in backbone)  # weights and BatchNorm statistics alike


def test_trainable_batch_norm_still_updates_its_statistics(tmp_path):
    from conftest import make_images
    from transformers import default_data_collator

    from hf_transfer import TransferConfig, TransferTrainer

    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(CONFIGS["resnet"])
    before = model.resnet.embedder.embedder.normalization.running_mean.clone()
    args = TransferConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, report_to="none")
    TransferTrainer(
        model=model, args=args, train_dataset=make_images(16, 3.0, 0), data_collator=default_data_collator
    ).train()
    assert not torch.equal(model.resnet.embedder.embedder.normalization.running_mean, before)
