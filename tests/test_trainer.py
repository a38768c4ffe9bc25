import json
import math
import os

import pytest
import torch
from conftest import domain_adaptation_config, tiny_bert
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

from hf_transfer import DomainAdaptationConfig, DomainAdaptationMixin, DomainAdaptationTrainer, DomainMixingBatchSampler
from hf_transfer.domain_adaptation import ADAPTATION_LOSSES
from hf_transfer.domain_adaptation.trainer import DISCRIMINATOR_WEIGHTS_NAME
from hf_transfer.domain_mixing import DOMAIN_LABELS_KEY


def config(tmp_path, **kwargs):
    return domain_adaptation_config(tmp_path, **kwargs)


def make_trainer(tmp_path, text_domains, tokenizer, model=None, **kwargs):
    source, target, target_test = text_domains
    peft_config = kwargs.pop("peft_config", None)
    return DomainAdaptationTrainer(
        model=model or tiny_bert(),
        args=config(tmp_path, **kwargs),
        train_dataset=source,
        target_dataset=target,
        eval_dataset={"target_test": target_test},
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def narrow_pooler_bert():
    """A tiny BERT whose pooled output (the classifier's input) has 24 features while its hidden states have 32."""
    model = tiny_bert(hidden_dropout_prob=0.0)
    model.bert.pooler.dense = torch.nn.Linear(32, 24)
    model.classifier = torch.nn.Linear(24, 2)
    return model


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


# ---- batches ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction, batch", [(0.5, 8), (0.25, 8)])
def test_every_batch_holds_both_domains_in_the_configured_ratio(tmp_path, text_domains, tokenizer, fraction, batch):
    trainer = make_trainer(
        tmp_path,
        text_domains,
        tokenizer,
        adaptation_loss=["mmd"],
        target_batch_fraction=fraction,
        per_device_train_batch_size=batch,
    )
    n_target = int(batch * fraction)
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == 64 // (batch - n_target)  # one epoch = one pass over the 64 source rows
    seen_source = []
    for inputs in batches:
        domains = inputs[DOMAIN_LABELS_KEY]
        assert domains.tolist() == [0] * (batch - n_target) + [1] * n_target
        assert (inputs["labels"][domains == 1] == -100).all()  # target labels never reach the loss
        assert (inputs["labels"][domains == 0] >= 0).all()
        seen_source += inputs["input_ids"][domains == 0].tolist()
    assert len(seen_source) == len(batches) * (batch - n_target) > 64 - (batch - n_target)


def test_smaller_target_set_cycles_and_epochs_reshuffle():
    sampler = DomainMixingBatchSampler(num_source=20, num_target=6, source_rows=4, target_rows=4, seed=0)
    batches = list(sampler)
    assert len(batches) == 5
    assert sorted(i for b in batches for i in b[:4]) == list(range(20))
    targets = [i - 20 for b in batches for i in b[4:]]
    assert len(targets) == 20
    for start in range(0, 18, 6):  # every window of 6 draws is a permutation of the 6 target rows
        assert sorted(targets[start : start + 6]) == list(range(6))
    assert list(sampler) == batches  # deterministic for a given epoch
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_source_only_batches_hold_only_the_source_share(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(tmp_path, text_domains, tokenizer, adaptation_loss=[])
    for inputs in trainer.get_train_dataloader():
        assert inputs[DOMAIN_LABELS_KEY].tolist() == [0] * 4


# ---- what trains ----------------------------------------------------------------------------------------------


def test_all_parameters_and_the_discriminator_move(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(tmp_path, text_domains, tokenizer, adaptation_loss=["dann", "mmd", "coral"])
    model_before, disc_before = snapshot(trainer.model), snapshot(trainer.domain_discriminator)
    trainer.train()
    unchanged = [n for n, p in trainer.model.named_parameters() if torch.equal(p, model_before[n])]
    # the pooler of a BERT model only sees [CLS]; every other weight gets a gradient from the task loss
    assert unchanged == []
    assert all(not torch.equal(p, disc_before[n]) for n, p in trainer.domain_discriminator.named_parameters())
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"loss/task", "loss/dann", "loss/mmd", "loss/coral", "dann/lambda", "dann/discriminator_accuracy"} <= logged


def test_lambda_follows_the_ganin_schedule_in_the_logs(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(tmp_path, text_domains, tokenizer, max_steps=4)
    trainer.train()
    lambdas = [e["dann/lambda"] for e in trainer.state.log_history if "dann/lambda" in e]
    import math

    assert lambdas == pytest.approx([2 / (1 + math.exp(-10 * s / 4)) - 1 for s in range(4)], abs=1e-6)


def test_lora_freezes_the_base_and_trains_adapter_head_and_discriminator(tmp_path, text_domains, tokenizer):
    from peft import LoraConfig

    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    )
    before, disc_before = snapshot(trainer.model), snapshot(trainer.domain_discriminator)
    trainer.train()
    after = dict(trainer.model.named_parameters())
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    trainable = {n for n, p in after.items() if p.requires_grad}
    assert moved <= trainable
    assert any("lora_A" in n for n in moved) and any("lora_B" in n for n in moved)
    assert any("classifier.modules_to_save" in n for n in moved)  # the head trains ...
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)  # ... and nothing of the base does
    assert all(not torch.equal(p, disc_before[n]) for n, p in trainer.domain_discriminator.named_parameters())


# ---- exactness ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch, max_steps, resume_at",
    [(8, 6, 3), (32, 10, 6)],  # 16 batches an epoch: resume in epoch 0; 4 batches an epoch: resume mid-epoch 1
)
def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_run(
    tmp_path, text_domains, tokenizer, batch, max_steps, resume_at
):
    kwargs = dict(
        adaptation_loss=["dann", "mmd"],
        max_steps=max_steps,
        save_strategy="steps",
        save_steps=resume_at,
        per_device_train_batch_size=batch,
    )
    full = make_trainer(tmp_path / "full", text_domains, tokenizer, **kwargs)
    full.train()
    checkpoint = tmp_path / "full" / "out" / f"checkpoint-{resume_at}"
    assert (checkpoint / DISCRIMINATOR_WEIGHTS_NAME).is_file()

    resumed = make_trainer(tmp_path / "resumed", text_domains, tokenizer, model=tiny_bert(seed=123), **kwargs)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for name, param in full.model.named_parameters():
        torch.testing.assert_close(param, dict(resumed.model.named_parameters())[name], rtol=0, atol=0)
    for name, param in full.domain_discriminator.named_parameters():
        torch.testing.assert_close(param, dict(resumed.domain_discriminator.named_parameters())[name], rtol=0, atol=0)
    lambdas = lambda t: [e["dann/lambda"] for e in t.state.log_history if "dann/lambda" in e]  # noqa: E731
    assert lambdas(resumed) == lambdas(full)  # the log history continues from the checkpoint's


def test_the_sampler_learns_the_epoch_through_accelerates_wrappers():
    from types import SimpleNamespace

    from accelerate.data_loader import BatchSamplerShard, SkipBatchSampler

    from hf_transfer.callbacks import SamplerEpochCallback

    sampler = DomainMixingBatchSampler(num_source=20, num_target=8, source_rows=2, target_rows=2, seed=0)
    wrapped = SimpleNamespace(batch_sampler=SkipBatchSampler(BatchSamplerShard(sampler, num_processes=2), 3))
    SamplerEpochCallback().on_epoch_begin(None, SimpleNamespace(epoch=1.5), None, train_dataloader=wrapped)
    assert sampler.epoch == 1


@pytest.mark.parametrize("losses", [["dann"], ["cdan"], []])
def test_gradient_accumulation_equals_the_larger_batch(tmp_path, text_domains, tokenizer, losses):
    """Exact for the per-row losses (task, DANN, CDAN without entropy weights). Not for the batch statistics (MMD,
    CORAL, IM, MCC, CDAN+E's normalised weights, self-training's selection), WDGRL (its critic steps on every
    micro-batch) and MLM (a mean over each micro-batch's masked tokens): those are computed per micro-batch."""

    def run(name, batch, accumulation):
        model = tiny_bert()
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
        model = AutoModelForSequenceClassification.from_config(model.config)
        model.load_state_dict(tiny_bert().state_dict())
        trainer = make_trainer(
            tmp_path / name,
            text_domains,
            tokenizer,
            model=model,
            adaptation_loss=losses,
            max_steps=2,
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation,
            discriminator_dropout=0.0,
        )
        trainer.train()
        return trainer

    large, accumulated = run("large", 16, 1), run("accumulated", 8, 2)
    for name, param in large.model.named_parameters():
        torch.testing.assert_close(param, dict(accumulated.model.named_parameters())[name], rtol=1e-4, atol=1e-6)
    assert (
        set(large.loss_modules)
        == set(accumulated.loss_modules)
        == {{"dann": "domain_discriminator", "cdan": "cdan_discriminator"}[name] for name in losses}
    )
    for module_name, module in large.loss_modules.items():
        for name, param in module.named_parameters():
            # AdamW divides by sqrt(v): near-zero gradients amplify float noise, so compare at 1 % of one step (lr 1e-3)
            torch.testing.assert_close(
                param, accumulated.loss_modules[module_name].get_parameter(name), rtol=1e-4, atol=1e-5
            )


# ---- export ------------------------------------------------------------------------------------------------------


def test_exported_model_reloads_with_identical_logits_and_no_unexpected_keys(tmp_path, text_domains, tokenizer, caplog):
    trainer = make_trainer(tmp_path, text_domains, tokenizer)
    trainer.train()
    trainer.save_model()
    out = tmp_path / "out"
    assert DISCRIMINATOR_WEIGHTS_NAME not in os.listdir(out)
    assert not any("discriminator" in key for key in load_file(out / "model.safetensors"))

    reloaded, info = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert info["unexpected_keys"] == set() or info["unexpected_keys"] == []
    assert not info["missing_keys"]
    batch = tokenizer(["great book", "awful pan broken"], return_tensors="pt", padding=True)
    trainer.model.eval()
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, trainer.model(**batch).logits, rtol=0, atol=0)


def test_lora_export_holds_the_head_and_reloads_with_identical_logits(tmp_path, text_domains, tokenizer):
    from peft import AutoPeftModelForSequenceClassification, LoraConfig

    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    )
    trainer.train()
    trainer.save_model()
    out = tmp_path / "out"
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(os.listdir(out))
    keys = load_file(out / "adapter_model.safetensors").keys()
    assert any("classifier" in key for key in keys)
    assert not any("discriminator" in key for key in keys)
    # the base model the adapter refers to is a local directory in this offline test
    base_dir = tmp_path / "base"
    tiny_bert().save_pretrained(base_dir)
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = str(base_dir)
    (out / "adapter_config.json").write_text(json.dumps(adapter_config))

    reloaded = AutoPeftModelForSequenceClassification.from_pretrained(out)
    batch = tokenizer(["great book", "awful pan broken"], return_tensors="pt", padding=True)
    trainer.model.eval()
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, trainer.model(**batch).logits, rtol=0, atol=1e-6)


# ---- evaluation and the plugin -----------------------------------------------------------------------------------


def test_evaluate_reports_each_eval_set_under_its_own_prefix(tmp_path, text_domains, tokenizer):
    from hf_transfer import compute_classification_metrics

    source, target, target_test = text_domains
    trainer = DomainAdaptationTrainer(
        model=tiny_bert(),
        args=config(tmp_path),
        train_dataset=source,
        target_dataset=target,
        eval_dataset={"source_validation": source, "target_test": target_test},
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
    )
    metrics = trainer.evaluate()
    for prefix in ("eval_source_validation_", "eval_target_test_"):
        assert {prefix + "loss", prefix + "accuracy", prefix + "macro_f1"} <= set(metrics)
    # the evaluation loss is the plain cross-entropy of the eval rows
    batch = trainer.data_collator(
        [{k: target_test[i][k] for k in ("input_ids", "token_type_ids", "attention_mask")} for i in range(16)]
    )
    with torch.no_grad():
        logits = trainer.model(**batch).logits
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(target_test["label"][:16]))
    assert metrics["eval_target_test_loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_a_trainer_script_becomes_domain_adaptive_by_swapping_the_class(tmp_path, text_domains, tokenizer):
    source, target, _ = text_domains
    args = TrainingArguments(
        output_dir=str(tmp_path / "plain"),
        per_device_train_batch_size=8,
        max_steps=3,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        learning_rate=1e-3,
    )
    trainer = DomainAdaptationTrainer(
        model=tiny_bert(), args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
    )
    assert isinstance(trainer.args, DomainAdaptationConfig)
    assert trainer.args.max_steps == 3 and trainer.args.learning_rate == 1e-3
    trainer.train()
    assert any("loss/dann" in entry for entry in trainer.state.log_history)


def test_mixing_into_a_users_own_trainer_subclass(tmp_path, text_domains, tokenizer):
    source, target, _ = text_domains

    class MyTrainer(Trainer):
        def __init__(self, *args, note="", **kwargs):
            super().__init__(*args, **kwargs)
            self.note = note
            self.logged = []

        def log(self, logs, start_time=None):
            self.logged.append(dict(logs))
            super().log(logs, start_time)

    class MyDomainAdaptiveTrainer(DomainAdaptationMixin, MyTrainer):
        pass

    trainer = MyDomainAdaptiveTrainer(
        tiny_bert(),
        config(tmp_path, adaptation_loss=["coral"], max_steps=2),
        train_dataset=source,
        target_dataset=target,
        processing_class=tokenizer,
        note="mine",
    )
    trainer.train()
    assert trainer.note == "mine"
    assert any("loss/coral" in logs for logs in trainer.logged)  # the user's log() sees the alignment losses


# ---- errors ------------------------------------------------------------------------------------------------------


def test_missing_or_empty_target_dataset_is_a_clear_error(tmp_path, text_domains, tokenizer):
    source, target, _ = text_domains
    with pytest.raises(ValueError, match="pass `target_dataset=`"):
        DomainAdaptationTrainer(model=tiny_bert(), args=config(tmp_path), train_dataset=source)
    with pytest.raises(ValueError, match="`target_dataset` is empty"):
        DomainAdaptationTrainer(
            model=tiny_bert(), args=config(tmp_path), train_dataset=source, target_dataset=target.select([])
        )


def test_target_without_the_model_input_columns_is_a_clear_error(tmp_path, text_domains, tokenizer):
    source, target, _ = text_domains
    trainer = DomainAdaptationTrainer(
        model=tiny_bert(),
        args=config(tmp_path),
        train_dataset=source,
        target_dataset=target.remove_columns(["input_ids"]),
        processing_class=tokenizer,
    )
    with pytest.raises(ValueError, match=r"`target_dataset` lacks the model-input column\(s\) \['input_ids'\]"):
        trainer.train()


def test_model_without_a_classification_head_is_a_clear_error(tmp_path, text_domains):
    from transformers import BertModel

    source, target, _ = text_domains
    with pytest.raises(ValueError, match="Could not find the classification head of BertModel"):
        DomainAdaptationTrainer(
            model=BertModel(tiny_bert().config), args=config(tmp_path), train_dataset=source, target_dataset=target
        )


def test_custom_optimizer_with_dann_is_a_clear_error(tmp_path, text_domains):
    source, target, _ = text_domains
    model = tiny_bert()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="discriminator"):
        DomainAdaptationTrainer(
            model=model,
            args=config(tmp_path),
            train_dataset=source,
            target_dataset=target,
            optimizers=(optimizer, None),
        )


@pytest.mark.parametrize("features", ["cls_token", "mean_pooling"])
def test_hidden_state_features_can_be_aligned_instead_of_the_head_input(tmp_path, text_domains, tokenizer, features):
    """A BERT whose pooler maps the hidden size 32 to 24, so the head's input (24) and the hidden states (32) differ:
    the aligned features are the last hidden state pooled as asked, not the head's input."""
    model = narrow_pooler_bert()
    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, model=model, adaptation_loss=["dann", "mmd"], alignment_features=features,
        max_steps=2,
    )  # fmt: skip
    assert trainer.domain_discriminator.layers[0].in_features == 32  # the hidden size, not the head's 24
    seen = []
    trainer._compute_adaptation_loss = lambda name, inputs: (
        seen.append(inputs) or type(trainer)._compute_adaptation_loss(trainer, name, inputs)
    )
    trainer.train()
    batch = next(iter(trainer.get_train_dataloader()))
    domains = batch.pop(DOMAIN_LABELS_KEY)
    batch.pop("labels")
    torch.manual_seed(0)
    with torch.no_grad():
        hidden = trainer.model(**batch, output_hidden_states=True).hidden_states[-1]
    if features == "cls_token":
        expected = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).float()
        expected = (hidden * mask).sum(1) / mask.sum(1)
    assert seen[0].source.shape == (4, 32)
    # the first step's features come from the initial weights; compare shapes and pooling on the trained model
    features_now = trainer._pooled_features({"hidden_states": (hidden,)}, {}, batch["attention_mask"], True)
    torch.testing.assert_close(features_now[domains == 0], expected[domains == 0])
    assert all(math.isfinite(e["loss/mmd"]) for e in trainer.state.log_history if "loss/mmd" in e)


def test_head_input_features_are_what_the_head_receives(tmp_path, text_domains, tokenizer):
    model = narrow_pooler_bert()
    trainer = make_trainer(tmp_path, text_domains, tokenizer, model=model, adaptation_loss=["dann"], max_steps=1)
    assert trainer.domain_discriminator.layers[0].in_features == 24  # the pooler's output, the classifier's input


def test_the_same_seed_gives_the_same_discriminator_whatever_ran_before(tmp_path, text_domains, tokenizer):
    first = make_trainer(tmp_path, text_domains, tokenizer)
    torch.randn(100)  # consume global random state
    second = make_trainer(tmp_path, text_domains, tokenizer)
    for (name, a), b in zip(first.domain_discriminator.named_parameters(), second.domain_discriminator.parameters()):
        assert torch.equal(a, b), name


def test_lora_merged_export_reloads_with_identical_logits_without_peft(tmp_path, text_domains, tokenizer):
    from peft import LoraConfig

    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    )
    trainer.train()
    trainer.save_merged_model(str(tmp_path / "merged"))
    assert "adapter_config.json" not in os.listdir(tmp_path / "merged")
    merged, info = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert not any("lora" in name for name, _ in merged.named_parameters())
    batch = tokenizer(["great book", "awful pan broken"], return_tensors="pt", padding=True)
    trainer.model.eval()
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, trainer.model(**batch).logits, rtol=1e-5, atol=1e-5)
    assert any("lora_A" in name for name, _ in trainer.model.named_parameters())  # the trainer's model is untouched


def test_save_merged_model_without_peft_is_a_clear_error(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(tmp_path, text_domains, tokenizer)
    with pytest.raises(ValueError, match="needs a model trained with a PEFT adapter"):
        trainer.save_merged_model(str(tmp_path / "merged"))


def test_information_maximization_is_computed_on_the_target_predictions(tmp_path, text_domains, tokenizer, monkeypatch):
    import hf_transfer.domain_adaptation.losses as module

    config = tiny_bert().config
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    model = AutoModelForSequenceClassification.from_config(config)
    model.load_state_dict(tiny_bert().state_dict())
    trainer = make_trainer(tmp_path, text_domains, tokenizer, model=model, adaptation_loss=["im"], max_steps=3)
    assert trainer.domain_discriminator is None  # IM needs no discriminator
    batch = next(iter(trainer.get_train_dataloader()))  # the sampler is deterministic: the first training batch
    is_target = batch[DOMAIN_LABELS_KEY] == 1
    assert is_target.any() and (~is_target).any()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    seen = []
    real = module.information_maximization_loss
    monkeypatch.setattr(module, "information_maximization_loss", lambda x: seen.append(x.detach()) or real(x))
    trainer.train()
    assert len(seen) == 3
    torch.testing.assert_close(seen[0], logits[is_target])  # exactly the target rows' logits of the first batch
    logged = [e["loss/im"] for e in trainer.state.log_history if "loss/im" in e]
    assert len(logged) == 3 and logged[0] == pytest.approx(real(logits[is_target]).item(), abs=1e-6)


def test_bf16_mixed_precision_trains_every_loss_on_the_cpu(tmp_path, text_domains, tokenizer):
    """Features from the bf16 forward meet the fp32 discriminator (outside the model's autocast) in its dtype."""
    losses = list(ADAPTATION_LOSSES)
    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, bf16=True, adaptation_loss=losses, max_steps=2, self_training_threshold=0.0
    )
    trained = [m for n, m in trainer.loss_modules.items() if n != "self_training_teacher"]
    before = [{n: p.detach().clone() for n, p in module.named_parameters()} for module in trained]
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss/dann" in e]
    assert len(logged) == 2 and all(math.isfinite(e[f"loss/{n}"]) for e in logged for n in losses)
    assert len(trained) == 4  # DANN's and CDAN's discriminators, WDGRL's critic, the masked-LM head
    for module, initial in zip(trained, before):
        assert all(p.dtype == torch.float32 for p in module.parameters())
        assert any(not torch.equal(p, initial[n]) for n, p in module.named_parameters())


# ---- the optimizer's view of the discriminator -------------------------------------------------------------------


def test_the_total_loss_weighs_each_adaptation_loss_by_its_weight(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, adaptation_loss=["mmd", "coral", "im"],
        adaptation_loss_weights=[0.3, 2.0, 0.5], max_steps=3,
    )  # fmt: skip
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss/task" in e]
    assert len(logged) == 3
    for e in logged:
        expected = e["loss/task"] + 0.3 * e["loss/mmd"] + 2.0 * e["loss/coral"] + 0.5 * e["loss/im"]
        assert e["loss"] == pytest.approx(expected, rel=1e-4)


def test_the_discriminator_has_its_own_learning_rate_and_weight_decay_split(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, discriminator_learning_rate=3e-2, weight_decay=0.05, max_steps=1,
        lr_scheduler_type="constant",
    )  # fmt: skip
    trainer.train()
    groups = [g for g in trainer.optimizer.param_groups if g.get("name") == "domain_discriminator"]
    discriminator = {id(p) for p in trainer.domain_discriminator.parameters()}
    assert {id(p) for g in groups for p in g["params"]} == discriminator
    assert all(g["lr"] == 3e-2 for g in groups)
    for group in groups:
        assert group["weight_decay"] == (0.05 if all(p.dim() > 1 for p in group["params"]) else 0.0)
        assert all(p.dim() > 1 for p in group["params"]) or all(p.dim() == 1 for p in group["params"])
    assert {g["weight_decay"] for g in groups} == {0.05, 0.0}
    others = [g for g in trainer.optimizer.param_groups if g.get("name") != "domain_discriminator"]
    assert all(g["lr"] == 1e-3 for g in others) and not discriminator & {id(p) for g in others for p in g["params"]}


def test_max_grad_norm_clips_the_model_but_not_the_discriminator(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, optim="sgd", learning_rate=0.1, max_grad_norm=1e-8, max_steps=1,
        lr_scheduler_type="constant", dann_schedule="constant",
    )  # fmt: skip
    model_before = snapshot(trainer.model)
    discriminator_before = snapshot(trainer.domain_discriminator)
    trainer.train()
    model_step = torch.cat([(p - model_before[n]).flatten() for n, p in trainer.model.named_parameters()]).norm()
    discriminator_step = torch.cat(
        [(p - discriminator_before[n]).flatten() for n, p in trainer.domain_discriminator.named_parameters()]
    ).norm()
    assert model_step <= 0.1 * 1e-8 * 1.01  # SGD: lr × the clipped norm
    assert discriminator_step > 1e-3  # lr × the unclipped gradient of the discriminator
