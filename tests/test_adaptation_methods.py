"""CDAN / CDAN+E, WDGRL, self-training and target MLM: each loss against a hand-written reference, and in the trainer
(modules that move, checkpoints, export, exact resume, target labels never read)."""

import os

import datasets
import numpy as np
import pytest
import torch
from conftest import domain_adaptation_config, make_images, tiny_bert
from safetensors.torch import load_file
from torch import nn
from transformers import AutoModelForSequenceClassification, BertForMaskedLM, BertForSequenceClassification

from hf_transfer import DomainAdaptationTrainer
from hf_transfer.domain_adaptation import (
    ConditionalDomainDiscriminator,
    MultilinearMap,
    WassersteinCritic,
    conditional_adversarial_loss,
    gradient_penalty,
    masked_lm_head,
    masked_lm_loss,
    select_pseudo_labels,
    self_training_loss,
    train_wasserstein_critic,
    wasserstein_estimate,
)
from hf_transfer.domain_adaptation.trainer import module_file, optimizer_file

NEW_LOSSES = ["cdan", "wdgrl", "self_training", "mlm"]


def relu_critic_reference(critic: WassersteinCritic, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c(x) = v · relu(U x + a) + b and its gradient Uᵀ (v ⊙ 1[U x + a > 0]), written out in NumPy."""
    first, second = critic.layers[0], critic.layers[2]
    u, a = first.weight.detach().double().numpy(), first.bias.detach().double().numpy()
    v, b = second.weight.detach().double().numpy()[0], second.bias.detach().double().numpy()[0]
    pre = x @ u.T + a
    values = np.maximum(pre, 0) @ v + b
    gradients = ((pre > 0) * v) @ u
    return values, gradients


def test_wasserstein_estimate_and_gradient_penalty_match_a_hand_written_reference():
    torch.manual_seed(0)
    critic = WassersteinCritic(3, hidden_size=5).double()
    source, target = torch.randn(6, 3, dtype=torch.double) + 1.0, torch.randn(4, 3, dtype=torch.double)
    alpha = torch.rand(4, 1, dtype=torch.double)
    s, t, al = source.numpy(), target.numpy(), alpha.numpy()

    expected_w = relu_critic_reference(critic, s)[0].mean() - relu_critic_reference(critic, t)[0].mean()
    interpolates = t + al * (s[:4] - t)
    _, gradients = relu_critic_reference(critic, interpolates)
    expected_penalty = ((np.linalg.norm(gradients, axis=1) - 1.0) ** 2).mean()

    assert wasserstein_estimate(critic, source, target).item() == pytest.approx(expected_w, rel=1e-12)
    assert gradient_penalty(critic, source, target, alpha).item() == pytest.approx(expected_penalty, rel=1e-12)


def test_the_critic_steps_raise_the_estimate_and_leave_the_features_alone():
    torch.manual_seed(0)
    critic = WassersteinCritic(4, hidden_size=16)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    source = (torch.randn(32, 4) + 2.0).requires_grad_(True)
    target = torch.randn(32, 4).requires_grad_(True)
    before = wasserstein_estimate(critic, source, target).item()
    estimate, penalty = train_wasserstein_critic(
        critic, optimizer, source, target, steps=50, penalty_weight=10.0, generator=torch.Generator().manual_seed(0)
    )
    assert estimate.item() > before + 1.0  # the critic learned to tell the shifted features apart
    assert source.grad is None and target.grad is None and not estimate.requires_grad and penalty.item() >= 0


def test_the_full_multilinear_map_is_the_flattened_outer_product_and_the_randomized_map_its_formula():
    torch.manual_seed(0)
    f, g = torch.randn(5, 3), torch.softmax(torch.randn(5, 2), dim=1)
    full = MultilinearMap(3, 2)
    assert full.output_dim == 6
    expected = np.stack([np.outer(g[i].numpy(), f[i].numpy()).ravel() for i in range(5)])
    np.testing.assert_allclose(full(f, g).numpy(), expected, rtol=1e-6)

    randomized = MultilinearMap(3, 2, randomized_dim=7)
    rf, rg = randomized.random_features.numpy(), randomized.random_classes.numpy()
    expected = (f.numpy() @ rf) * (g.numpy() @ rg) / np.sqrt(7)
    assert randomized(f, g).shape == (5, 7)
    np.testing.assert_allclose(randomized(f, g).numpy(), expected, rtol=1e-5)
    assert set(dict(randomized.named_buffers())) == {"random_features", "random_classes"}  # saved with the module


@pytest.mark.parametrize("entropy_conditioning", [False, True])
def test_cdan_loss_matches_a_hand_written_reference(entropy_conditioning):
    torch.manual_seed(0)
    discriminator = ConditionalDomainDiscriminator(4, 3, None, hidden_size=8, num_hidden_layers=1, dropout=0.0)
    fs, ft = torch.randn(5, 4), torch.randn(3, 4) + 1
    gs, gt = torch.randn(5, 3) * 3, torch.randn(3, 3)
    loss, accuracy = conditional_adversarial_loss(discriminator, fs, ft, gs, gt, 0.7, entropy_conditioning)

    f = np.concatenate([fs.numpy(), ft.numpy()]).astype(np.float64)
    logits = np.concatenate([gs.numpy(), gt.numpy()]).astype(np.float64)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = np.einsum("nc,nf->ncf", p, f).reshape(8, -1)
    layers = discriminator.discriminator.layers
    w1, b1 = layers[0].weight.detach().double().numpy(), layers[0].bias.detach().double().numpy()
    w2, b2 = layers[3].weight.detach().double().numpy(), layers[3].bias.detach().double().numpy()
    z = (np.maximum(h @ w1.T + b1, 0) @ w2.T + b2)[:, 0]
    d = np.array([0.0] * 5 + [1.0] * 3)
    bce = np.maximum(z, 0) - z * d + np.log1p(np.exp(-np.abs(z)))
    weights = 1 + np.exp((p * np.log(p)).sum(1)) if entropy_conditioning else np.ones(8)
    assert loss.item() == pytest.approx((weights * bce).sum() / weights.sum(), rel=1e-5)
    assert accuracy.item() == pytest.approx(((z > 0) == d).mean())


def test_cdan_pushes_reversed_gradients_into_the_features_only():
    torch.manual_seed(0)
    discriminator = ConditionalDomainDiscriminator(4, 2, None, hidden_size=8, num_hidden_layers=1, dropout=0.0)
    fs, ft = torch.randn(4, 4, requires_grad=True), torch.randn(4, 4, requires_grad=True)
    gs, gt = torch.randn(4, 2, requires_grad=True), torch.randn(4, 2, requires_grad=True)
    conditional_adversarial_loss(discriminator, fs, ft, gs, gt, 0.5)[0].backward()
    reversed_grad = fs.grad.clone()
    fs.grad = None
    conditional_adversarial_loss(discriminator, fs, ft, gs, gt, -1.0)[0].backward()  # λ = −1: the plain gradient
    torch.testing.assert_close(reversed_grad, -0.5 * fs.grad)
    assert gs.grad is None and gt.grad is None  # the predictions condition the map, detached


def test_pseudo_labels_by_threshold_and_by_class_balanced_round_robin():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.95, 0.05], [0.4, 0.6], [0.45, 0.55]])
    selected, labels = select_pseudo_labels(probs, threshold=0.85)
    assert selected.tolist() == [True, False, False, True, False, False] and labels.tolist() == [0, 0, 0, 0, 1, 1]
    # round-robin over the classes, lowest entropy first: row 3 (class 0), row 4 (class 1), row 0 (class 0)
    selected, _ = select_pseudo_labels(probs, threshold=0.0, top_fraction=0.5)
    assert torch.nonzero(selected).flatten().tolist() == [0, 3, 4]
    # ineligible rows never count: with the threshold 0.75 only rows 0, 1, 3 (class 0) qualify
    selected, _ = select_pseudo_labels(probs, threshold=0.75, top_fraction=1.0)
    assert torch.nonzero(selected).flatten().tolist() == [0, 1, 3]
    # a minority class keeps its share: 1 of 3 rows predicted 1, top 2 of 3 rows -> one of each class
    probs = torch.tensor([[0.99, 0.01], [0.98, 0.02], [0.4, 0.6]])
    assert torch.nonzero(select_pseudo_labels(probs, 0.0, 0.6)[0]).flatten().tolist() == [0, 2]


def test_self_training_loss_is_the_cross_entropy_over_the_selected_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    selected, labels = torch.tensor([True, False, True]), torch.tensor([1, 1, 0])
    expected = (np.log1p(np.exp(2.0)) + np.log(2.0)) / 2  # CE of row 0 with label 1, of row 2 with label 0
    assert self_training_loss(logits, selected, labels).item() == pytest.approx(expected, rel=1e-6)
    none = self_training_loss(logits, torch.zeros(3, dtype=torch.bool), labels)
    none.backward()
    assert none.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def tiny_masked_lm_checkpoint(tmp_path, tokenizer):
    """A tiny BertForMaskedLM saved like a pretrained checkpoint (encoder + head), and a classifier loaded from it."""
    classifier = tiny_bert()
    masked_lm = BertForMaskedLM(classifier.config)
    masked_lm.save_pretrained(tmp_path / "mlm-ckpt")
    tokenizer.save_pretrained(tmp_path / "mlm-ckpt")
    model = BertForSequenceClassification.from_pretrained(tmp_path / "mlm-ckpt", num_labels=2)
    return masked_lm, model


def test_the_masked_lm_loss_equals_bert_for_masked_lm_with_the_same_head(tmp_path, tokenizer):
    masked_lm, model = tiny_masked_lm_checkpoint(tmp_path, tokenizer)
    head = masked_lm_head(model)
    assert head.origin.startswith("the pretraining head of")
    for name, param in head.head.named_parameters():
        torch.testing.assert_close(param, masked_lm.cls.get_parameter(name), rtol=0, atol=0)
    assert not any("decoder.weight" in name for name, _ in head.named_parameters())  # tied to the embeddings
    batch = tokenizer(["great book love", "awful pan broken sad"], return_tensors="pt", padding=True)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 1] = batch["input_ids"][:, 1]
    masked = batch["input_ids"].clone()
    masked[:, 1] = tokenizer.mask_token_id
    model.eval(), masked_lm.eval()
    hidden = model(input_ids=masked, attention_mask=batch["attention_mask"], output_hidden_states=True).hidden_states
    ours = masked_lm_loss(head, hidden[-1], labels)
    reference = masked_lm(input_ids=masked, attention_mask=batch["attention_mask"], labels=labels).loss
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def config(tmp_path, **kwargs):
    # the tiny model is never confident: let every row be pseudo-labelled, at full weight from the start
    return domain_adaptation_config(
        tmp_path, **{"self_training_threshold": 0.0, "self_training_ramp_ratio": 0.0, **kwargs}
    )


def make_trainer(tmp_path, text_domains, tokenizer, model=None, target=None, **kwargs):
    source, unlabeled, target_test = text_domains
    return DomainAdaptationTrainer(
        model=model or tiny_bert(),
        args=config(tmp_path, **kwargs),
        train_dataset=source,
        target_dataset=unlabeled if target is None else target,
        eval_dataset={"target_test": target_test},
        processing_class=tokenizer,
    )


def states(trainer) -> dict[str, torch.Tensor]:
    """Every weight of the run: the model's and each loss module's (parameters and buffers)."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    found = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for name, module in trainer.loss_modules.items():
        found.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    return found


def test_the_mlm_head_of_a_checkpoint_without_one_starts_untrained_and_the_card_says_so(tmp_path, tokenizer):
    tiny_bert().save_pretrained(tmp_path / "classifier-ckpt")  # holds no masked-LM head
    model = BertForSequenceClassification.from_pretrained(tmp_path / "classifier-ckpt")
    head = masked_lm_head(model)
    assert head.origin == "new: the checkpoint has no masked-LM head, so it started untrained"
    source = datasets.Dataset.from_dict({"input_ids": [[2, 5, 3]] * 4, "label": [0, 1] * 2})
    trainer = DomainAdaptationTrainer(
        model=model,
        args=config(tmp_path, adaptation_loss=["mlm"]),
        train_dataset=source,
        target_dataset=source.remove_columns("label"),
        processing_class=tokenizer,
    )
    assert ("mlm_head", head.origin) in trainer.describe_training().hyperparameters


def test_mlm_on_an_image_model_is_a_clear_error(tmp_path):
    from conftest import TINY_VISION_CONFIGS
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_config(TINY_VISION_CONFIGS["resnet"])
    images = make_images(8, 0.0, seed=0)
    with pytest.raises(ValueError, match=r"`adaptation_loss` 'mlm' .* is for text models.*Remove 'mlm'"):
        DomainAdaptationTrainer(
            model=model,
            args=config(tmp_path, adaptation_loss=["mlm"]),
            train_dataset=images,
            target_dataset=images.remove_columns("label"),
        )


def test_mlm_without_a_tokenizer_is_a_clear_error(tmp_path, text_domains):
    source, target, _ = text_domains
    with pytest.raises(ValueError, match="needs the model's tokenizer with a mask token: pass `processing_class="):
        DomainAdaptationTrainer(
            model=tiny_bert(), args=config(tmp_path, adaptation_loss=["mlm"]), train_dataset=source,
            target_dataset=target,
        )  # fmt: skip


def test_target_labels_never_reach_a_loss(tmp_path, text_domains, tokenizer):
    """The same run with the target's label column (half of it wrong) and without it ends bitwise identical."""
    _, unlabeled, _ = text_domains
    labels = list(np.random.default_rng(0).integers(0, 2, len(unlabeled)))
    finals = {}
    for name, target in {"none": unlabeled, "labels": unlabeled.add_column("label", labels)}.items():
        trainer = make_trainer(
            tmp_path / name, text_domains, tokenizer, target=target, adaptation_loss=NEW_LOSSES, max_steps=3
        )
        trainer.train()
        finals[name] = states(trainer)
    for key, value in finals["none"].items():
        assert torch.equal(value, finals["labels"][key]), key


def test_the_modules_move_are_in_every_checkpoint_and_not_in_the_exported_model(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(
        tmp_path, text_domains, tokenizer, adaptation_loss=NEW_LOSSES, save_strategy="steps", save_steps=2
    )
    before = states(trainer)
    trainer.train()
    after = states(trainer)
    for module in ("cdan_discriminator", "wasserstein_critic", "mlm_head", "self_training_teacher"):
        assert any(not torch.equal(v, after[k]) for k, v in before.items() if k.startswith(module + ".")), module
    checkpoint = tmp_path / "out" / "checkpoint-2"
    for module in trainer.loss_modules:
        assert (checkpoint / module_file(module)).is_file(), module
    assert (checkpoint / optimizer_file("wasserstein_critic")).is_file()
    assert not (checkpoint / optimizer_file("cdan_discriminator")).exists()  # it trains in the trainer's optimizer

    trainer.save_model()
    out = tmp_path / "out"
    assert not any(module_file(m) in os.listdir(out) for m in trainer.loss_modules)
    assert not any(k.startswith(("cls.", "critic", "discriminator")) for k in load_file(out / "model.safetensors"))
    reloaded, info = AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]
    batch = tokenizer(["great book", "awful pan broken"], return_tensors="pt", padding=True)
    trainer.model.eval(), reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, trainer.model(**batch).logits, rtol=0, atol=0)


def test_resuming_reproduces_the_uninterrupted_run_with_every_new_loss(tmp_path, text_domains, tokenizer):
    """Model, CDAN discriminator and randomized map, critic and its Adam state, EMA teacher, masked-LM head and the
    masks drawn after the checkpoint: all bitwise equal to the uninterrupted run."""
    kwargs = dict(
        adaptation_loss=NEW_LOSSES, cdan_randomized="always", cdan_entropy_conditioning=True, max_steps=4,
        save_strategy="steps", save_steps=2,
    )  # fmt: skip
    full = make_trainer(tmp_path / "full", text_domains, tokenizer, **kwargs)
    full.train()
    resumed = make_trainer(tmp_path / "resumed", text_domains, tokenizer, model=tiny_bert(seed=7), **kwargs)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "out" / "checkpoint-2"))
    expected, actual = states(full), states(resumed)
    assert set(expected) == set(actual)
    for key, value in expected.items():
        assert torch.equal(value, actual[key]), key
    critic_state = lambda t: t.loss_module_optimizers["wasserstein_critic"].state_dict()["state"]  # noqa: E731
    for index, state in critic_state(full).items():
        assert torch.equal(state["exp_avg"], critic_state(resumed)[index]["exp_avg"])
    losses = lambda t: [e["loss/mlm"] for e in t.state.log_history if "loss/mlm" in e]  # noqa: E731
    assert losses(resumed) == losses(full)
    # the randomized map is drawn once, from the seed, and never trained
    torch.manual_seed(0)
    fresh = MultilinearMap(32, 2, randomized_dim=1024)
    assert torch.equal(full.loss_modules["cdan_discriminator"].map.random_features, fresh.random_features)


def test_the_initial_teacher_stays_and_the_ema_teacher_follows_the_model(tmp_path, text_domains, tokenizer):
    initial = tiny_bert().state_dict()
    frozen = make_trainer(tmp_path / "initial", text_domains, tokenizer, adaptation_loss=["self_training"],
                          self_training_teacher="initial")  # fmt: skip
    frozen.train()
    for key, value in frozen.loss_modules["self_training_teacher"].state_dict().items():
        assert torch.equal(value, initial[key]), key

    ema = make_trainer(tmp_path / "ema", text_domains, tokenizer, adaptation_loss=["self_training"], max_steps=1,
                       ema_decay=0.9)  # fmt: skip
    ema.train()
    student = ema.accelerator.unwrap_model(ema.model).state_dict()
    teacher = ema.loss_modules["self_training_teacher"].state_dict()
    for key, value in teacher.items():
        if value.is_floating_point() and "position_ids" not in key:
            torch.testing.assert_close(value, 0.9 * initial[key] + 0.1 * student[key], rtol=1e-6, atol=1e-7)


def test_the_wdgrl_critic_gets_no_gradient_from_the_feature_extractors_term(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(tmp_path, text_domains, tokenizer, adaptation_loss=["wdgrl"], max_steps=1)
    seen = []

    def record(name, inputs):
        value, logs = type(trainer)._compute_adaptation_loss(trainer, name, inputs)
        value.backward(retain_graph=True)
        seen.append([p.grad for p in inputs.module.parameters()])
        return value, logs

    trainer._compute_adaptation_loss = record
    trainer.train()
    assert seen and all(grad is None for grad in seen[0])  # the critic learns only in its own ascent steps
    assert trainer.loss_modules["wasserstein_critic"] not in [m for _, m in trainer._modules_trained_by("optimizer")]


@pytest.mark.parametrize("engine, attribute", [("FSDP", "is_fsdp_enabled")])
@pytest.mark.parametrize("loss", NEW_LOSSES)
def test_every_loss_with_a_module_is_refused_under_fsdp(tmp_path, text_domains, tokenizer, engine, attribute, loss):
    class LaunchedWithEngine(DomainAdaptationTrainer):
        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            setattr(self, attribute, True)

    source, target, _ = text_domains
    with pytest.raises(ValueError, match=rf"'{loss}'.* {engine} does not support"):
        LaunchedWithEngine(
            model=tiny_bert(), args=config(tmp_path, adaptation_loss=[loss]), train_dataset=source,
            target_dataset=target, processing_class=tokenizer,
        )  # fmt: skip


def test_image_models_train_with_cdan_wdgrl_and_self_training(tmp_path):
    from conftest import TINY_VISION_CONFIGS
    from transformers import AutoModelForImageClassification

    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(TINY_VISION_CONFIGS["resnet"])
    source, target = make_images(32, 0.0, seed=0), make_images(32, 2.0, seed=1).remove_columns("label")
    trainer = DomainAdaptationTrainer(
        model=model,
        args=config(tmp_path, adaptation_loss=["cdan", "wdgrl", "self_training"], max_steps=3),
        train_dataset=source,
        target_dataset=target,
    )
    before = states(trainer)
    trainer.train()
    after = states(trainer)
    for module in ("cdan_discriminator", "wasserstein_critic", "self_training_teacher"):
        assert any(not torch.equal(v, after[k]) for k, v in before.items() if k.startswith(module + ".")), module
    assert isinstance(trainer.loss_modules["self_training_teacher"].resnet, nn.Module)
