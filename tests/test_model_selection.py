"""Label-free validators: hand-computed references and known cases; the callback inside a Trainer."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import load_recipe, tiny_bert
from transformers import DataCollatorWithPadding

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, compute_classification_metrics
from hf_transfer.evaluation.selection import (
    VALIDATORS,
    LabelFreeModelSelection,
    best_step,
    deep_embedded_validation,
    information_maximization,
    prediction_entropy,
    proxy_a_distance,
    soft_neighborhood_density,
)


def test_entropy_and_information_maximization_on_known_predictions():
    uniform = np.zeros((6, 3))
    confident_diverse = np.eye(3)[[0, 1, 2, 0, 1, 2]] * 50.0
    collapsed = np.eye(3)[[0] * 6] * 50.0
    assert prediction_entropy(uniform) == pytest.approx(math.log(3))
    assert prediction_entropy(confident_diverse) == pytest.approx(0.0, abs=1e-9)
    assert information_maximization(confident_diverse) == pytest.approx(math.log(3))
    assert information_maximization(collapsed) == pytest.approx(0.0, abs=1e-9)
    assert information_maximization(uniform) == pytest.approx(0.0, abs=1e-9)


def test_snd_equals_a_hand_written_loop_and_grows_with_the_neighbourhoods():
    logits = np.random.default_rng(0).normal(size=(7, 3)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    unit = probs / np.linalg.norm(probs, axis=1, keepdims=True)
    entropies = []
    for i in range(7):
        sims = np.array([unit[i] @ unit[j] for j in range(7) if j != i]) / 0.05
        weights = np.exp(sims - sims.max()) / np.exp(sims - sims.max()).sum()
        entropies.append(-(weights * np.log(weights)).sum())
    assert soft_neighborhood_density(logits) == pytest.approx(np.mean(entropies), rel=1e-9)
    # each prediction's neighbourhood: 2 identical others in 2 clusters of 3, 1 in 3 clusters of 2
    two_clusters = np.eye(3)[[0, 0, 0, 1, 1, 1]] * 20.0
    three_clusters = np.eye(3)[[0, 0, 1, 1, 2, 2]] * 20.0
    assert soft_neighborhood_density(two_clusters) == pytest.approx(math.log(2), abs=1e-6)
    assert soft_neighborhood_density(three_clusters) == pytest.approx(0.0, abs=1e-6)


def test_dev_is_the_plain_mean_loss_without_shift_and_weights_the_target_like_rows():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(400, 4))
    losses = rng.uniform(0, 1, size=400)
    # target drawn like the source: density ratios ≈ 1, DEV ≈ the mean source loss
    assert deep_embedded_validation(source, losses, rng.normal(size=(400, 4))) == pytest.approx(losses.mean(), abs=0.05)
    # target lies where the source rows with a high loss are: DEV rises above the plain mean
    shifted_losses = (source[:, 0] > 0).astype(float)  # loss 1 on the right half, 0 on the left
    target = rng.normal(size=(400, 4)) + np.array([1.5, 0, 0, 0])
    assert deep_embedded_validation(source, shifted_losses, target) > shifted_losses.mean() + 0.2


def test_proxy_a_distance_is_near_0_for_one_domain_and_near_2_for_separated_ones():
    rng = np.random.default_rng(0)
    same = proxy_a_distance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)))
    apart = proxy_a_distance(rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) + 10.0)
    assert same < 0.3 and apart == pytest.approx(2.0)


def test_best_step_follows_each_validators_direction():
    history = [
        {"step": 10, "snd": 1.0, "dev": 0.5, "source_accuracy": 0.9},
        {"step": 20, "snd": 2.0, "dev": 0.7, "source_accuracy": 0.9},
    ]
    assert best_step(history, "snd")["step"] == 20
    assert best_step(history, "dev")["step"] == 10  # lower is better
    assert best_step(history, "source_accuracy")["step"] == 20  # ties go to the later step
    with pytest.raises(ValueError, match="Unknown validator 'accuracy'"):
        best_step(history, "accuracy")
    assert set(VALIDATORS) == {"source_accuracy", "target_entropy", "im", "snd", "dev", "proxy_a_distance"}


def selection_trainer(tmp_path, text_domains, tokenizer, **kwargs):
    source, target, target_test = text_domains
    callback = LabelFreeModelSelection(
        source.select(range(16)), target_test, data_collator=DataCollatorWithPadding(tokenizer), max_target_rows=12
    )
    args = DomainAdaptationConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=5e-3,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        use_cpu=True,
        report_to="none",
        **kwargs,
    )
    trainer = DomainAdaptationTrainer(
        # BERT's default init (std 0.02) gives this tiny model the same prediction for every row: SND then sits at
        # its ceiling ln(n - 1) at every step and the checkpoints differ only by rounding; std 0.5 makes them differ
        model=tiny_bert(initializer_range=0.5),
        args=args,
        train_dataset=source,
        target_dataset=target,
        eval_dataset={"target_test": target_test},
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
        callbacks=[callback],
    )
    return trainer, callback


def test_the_callback_records_every_evaluation_and_the_trainer_keeps_the_chosen_checkpoint(
    tmp_path, text_domains, tokenizer
):
    trainer, callback = selection_trainer(
        tmp_path, text_domains, tokenizer, metric_for_best_model="selection_snd", load_best_model_at_end=True
    )
    trainer.train()
    assert [entry["step"] for entry in callback.history] == [2, 4]
    assert set(callback.history[0]) == {"step", *VALIDATORS}
    chosen = callback.best_step("snd")["step"]
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{chosen}")
    logged = [e for e in trainer.state.log_history if "eval_selection_snd" in e]
    assert [e["step"] for e in logged] == [2, 4]
    assert [e["eval_selection_snd"] for e in logged] == [h["snd"] for h in callback.history]
    # after training, evaluate() scores the model kept (the chosen checkpoint) and leaves the history as it was
    assert trainer.evaluate()["eval_selection_snd"] == pytest.approx(callback.best_step("snd")["snd"], rel=1e-6)
    assert len(callback.history) == 2


def test_the_callback_never_reads_target_labels(tokenizer, text_domains):
    source, _, target_test = text_domains
    callback = LabelFreeModelSelection(source.select(range(8)), target_test, max_target_rows=None)
    assert "label" not in callback.target.column_names and len(callback.target) == len(target_test)
    model = tiny_bert()
    callback.data_collator = DataCollatorWithPadding(tokenizer)
    before = callback.compute(model)
    shuffled = target_test.map(lambda row, i: {"label": (row["label"] + i) % 2}, with_indices=True)
    after = LabelFreeModelSelection(
        source.select(range(8)), shuffled, data_collator=DataCollatorWithPadding(tokenizer), max_target_rows=None
    ).compute(model)
    assert before == after  # other target labels, the same scores


def test_greater_is_better_must_match_the_validator(tmp_path, text_domains, tokenizer):
    trainer, _ = selection_trainer(
        tmp_path, text_domains, tokenizer, metric_for_best_model="selection_dev", load_best_model_at_end=True
    )
    with pytest.raises(ValueError, match=r"dev is better when lower, so set `greater_is_better=False`"):
        trainer.train()
    trainer, _ = selection_trainer(tmp_path, text_domains, tokenizer, metric_for_best_model="selection_accuracy")
    with pytest.raises(ValueError, match="names no validator"):
        trainer.train()


QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_length", "32", "--max_train_samples", "32"]
QUICK += ["--max_eval_samples", "16", "--use_cpu", "true", "--source_only_steps", "0"]  # one stage: 2 adapting steps


def test_the_recipe_logs_the_validators_and_keeps_the_chosen_checkpoint(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK]
    argv += ["--label_free_selection", "true", "--selection_target_rows", "24", "--eval_strategy", "steps"]
    argv += ["--eval_steps", "1", "--save_strategy", "steps", "--save_steps", "1"]
    argv += ["--metric_for_best_model", "selection_dev", "--greater_is_better", "false"]
    argv += ["--load_best_model_at_end", "true"]
    metrics = load_recipe("text_cls_dann").main(argv)
    state = json.loads((out / "trainer_state.json").read_text())
    logged = {e["step"]: e for e in state["log_history"] if "eval_selection_dev" in e}
    assert sorted(logged) == [1, 2] and {f"eval_selection_{v}" for v in VALIDATORS} <= set(logged[1])
    chosen = min(logged, key=lambda step: (logged[step]["eval_selection_dev"], -step))
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{chosen}")
    # the final evaluation scores the model kept: the chosen checkpoint, reloaded
    assert metrics["eval_selection_dev"] == pytest.approx(logged[chosen]["eval_selection_dev"], rel=1e-6)
    assert metrics["eval_target_test_accuracy"] == logged_accuracy(state, chosen)


def logged_accuracy(state: dict, step: int) -> float:
    return next(
        e["eval_target_test_accuracy"]
        for e in state["log_history"]
        if e.get("step") == step and "eval_target_test_accuracy" in e
    )


def test_the_recipe_refuses_label_free_selection_without_evaluations(tmp_path, tiny_model_dir):
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "run"), *QUICK]
    with pytest.raises(ValueError, match="`label_free_selection` .* `eval_strategy` is 'no': add --eval_strategy"):
        load_recipe("text_cls_dann").main(argv + ["--label_free_selection", "true"])


def test_transfer_diagnostics_write_the_plot_and_the_proxy_a_distance(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK]
    argv += ["--transfer_diagnostics", "true", "--diagnostics_rows", "16"]
    load_recipe("text_cls_dann").main(argv)
    results = json.loads((out / "transfer_diagnostics.json").read_text())
    assert 0.0 <= results["proxy_a_distance_before"] <= 2.0 and 0.0 <= results["proxy_a_distance_after"] <= 2.0
    assert results["source_rows"] == 16 and results["target_rows"] == 16
    from PIL import Image

    with Image.open(out / "transfer_diagnostics.png") as image:
        assert image.format == "PNG" and image.width >= 400 and image.height >= 200
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colors) > 50  # axes, text and the two domains' points, not a blank canvas
    card = (out / "README.md").read_text()
    assert "## Transfer diagnostics" in card and "](transfer_diagnostics.png)" in card
    assert f"**{results['proxy_a_distance_before']:.2f}** before" in card


def test_image_recipe_with_label_free_selection_and_diagnostics(tmp_path):
    out = tmp_path / "run"
    argv = ["--model_type", "resnet", "--image_size", "16", "--output_dir", str(out), "--use_cpu", "true"]
    argv += ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_train_samples", "32"]
    argv += ["--max_eval_samples", "16", "--max_target_samples", "32", "--eval_strategy", "steps", "--eval_steps", "1"]
    argv += ["--label_free_selection", "true", "--selection_target_rows", "16", "--transfer_diagnostics", "true"]
    argv += ["--diagnostics_rows", "16"]
    metrics = load_recipe("image_cls_dann").main(argv)
    assert {f"eval_selection_{v}" for v in VALIDATORS} <= set(metrics)
    assert (out / "transfer_diagnostics.png").exists() and "## Transfer diagnostics" in (out / "README.md").read_text()


def test_evaluating_during_training_leaves_the_training_unchanged(tmp_path, text_domains, tokenizer):
    """Evaluations and the validators draw no random numbers from training: the same weights with or without."""

    def final_weights(name, **kwargs):
        source, target, target_test = text_domains
        args = DomainAdaptationConfig(
            output_dir=str(tmp_path / name),
            max_steps=4,
            per_device_train_batch_size=8,
            learning_rate=5e-3,
            save_strategy="no",
            use_cpu=True,
            report_to="none",
            **kwargs,
        )
        callbacks = []
        if kwargs:
            collator = DataCollatorWithPadding(tokenizer)
            callbacks = [LabelFreeModelSelection(source.select(range(8)), target, collator, max_target_rows=8)]
        trainer = DomainAdaptationTrainer(
            model=tiny_bert(),  # dropout 0.1: every random draw shows in the weights
            args=args,
            train_dataset=source,
            target_dataset=target,
            eval_dataset={"target_test": target_test},
            processing_class=tokenizer,
            callbacks=callbacks,
        )
        trainer.train()
        return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    plain = final_weights("plain")
    evaluated = final_weights("evaluated", eval_strategy="steps", eval_steps=1)
    assert all(torch.equal(plain[name], evaluated[name]) for name in plain)
