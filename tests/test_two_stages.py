"""Two stages in one run (source-only, then adaptation from the stage-1 weights) and the negative-transfer guard:
the stage boundary, exact resume on both sides of it, the guard's rule and ATC on fixed inputs, target labels never
read, the trainer's choice and what it leaves on disk, and the recipe end to end."""

import json
import os

import datasets
import numpy as np
import pytest
import torch
from conftest import SOURCE_TOPIC, domain_adaptation_config, load_recipe, make_reviews, tiny_bert, tokenize
from safetensors.torch import load_file
from transformers import DataCollatorWithPadding

from hf_transfer import DomainAdaptationTrainer, compute_classification_metrics
from hf_transfer.domain_adaptation.stages import TwoStageCallback
from hf_transfer.evaluation.guard import (
    GuardRule,
    ModelEvidence,
    average_thresholded_confidence,
    decide,
    negative_transfer_guard,
    prediction_diversity,
    redecide,
)

LOSSES = ["dann", "self_training"]


def make_trainer(out, text_domains, tokenizer, model=None, source_validation=None, **kwargs):
    source, target, target_test = text_domains
    evaluation = {"target_test": target_test}
    if source_validation is not None:
        evaluation["source_validation"] = source_validation
    defaults = dict(adaptation_loss=LOSSES, max_steps=6, source_only_steps=3, self_training_threshold=0.0)
    return DomainAdaptationTrainer(
        model=model or tiny_bert(),
        args=domain_adaptation_config(out, **{**defaults, **kwargs}),
        train_dataset=source,
        target_dataset=target,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_classification_metrics,
    )


@pytest.fixture
def source_validation(tokenizer):
    return tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 16, seed=5)), tokenizer)


def weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.accelerator.unwrap_model(trainer.model).state_dict().items()}


def logged(trainer, key: str) -> dict[int, float]:
    return {e["step"]: e[key] for e in trainer.state.log_history if key in e}


# ---- the stage boundary ---------------------------------------------------------------------------------------------


def test_stage_one_is_exactly_the_source_only_run_and_is_saved_and_evaluated(tmp_path, text_domains, tokenizer):
    two = make_trainer(tmp_path / "two", text_domains, tokenizer, warmup_steps=0.5)
    two.train()
    alone = make_trainer(
        tmp_path / "alone", text_domains, tokenizer, adaptation_loss=[], max_steps=3, source_only_steps=0,
        warmup_steps=0.5,
    )  # fmt: skip
    alone.train()
    saved = load_file(str(tmp_path / "two" / "out" / "stage1" / "model.safetensors"))
    for key, value in weights(alone).items():
        if key in saved:
            assert torch.equal(saved[key], value), key
    results = json.loads((tmp_path / "two" / "out" / "stage1" / "stage1_results.json").read_text())
    assert results["step"] == 3 and two.stage1["results"] == results["results"]
    assert results["results"]["eval_target_test_accuracy"] == logged(two, "stage1_target_test_accuracy")[3]
    # no adaptation loss before the boundary, every one after it; losses and schedules counted from stage 2
    assert set(logged(two, "loss/dann")) == {4, 5, 6} and set(logged(two, "loss/self_training")) == {4, 5, 6}
    assert set(logged(two, "loss")) == {1, 2, 3, 4, 5, 6}  # the boundary's evaluation does not eat a log
    assert logged(two, "dann/lambda")[4] == 0.0 and logged(two, "self_training/weight_ramp")[4] == 0.0


def test_the_learning_rate_schedule_restarts_with_its_warm_up(tmp_path, text_domains, tokenizer):
    trainer = make_trainer(tmp_path, text_domains, tokenizer, max_steps=8, source_only_steps=4, warmup_steps=0.5)
    trainer.train()
    rates = logged(trainer, "learning_rate")  # the rate used by each step's update
    peak = trainer.args.learning_rate
    stage = [0.0, 0.5 * peak, peak, 0.5 * peak]  # linear: 2 warm-up steps from 0, then down towards 0
    assert [rates[s] for s in range(1, 9)] == pytest.approx(stage + stage)


def test_stage_two_starts_with_a_fresh_optimizer_and_the_teacher_at_the_stage_one_model(
    tmp_path, text_domains, tokenizer, monkeypatch
):
    seen = {}
    trainer = make_trainer(tmp_path, text_domains, tokenizer, self_training_teacher="ema")
    original = trainer._end_stage_one

    def spy():
        original()
        inner = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
        seen["state"] = len(inner.state)
        teacher = trainer.loss_modules["self_training_teacher"].state_dict()
        model = trainer.accelerator.unwrap_model(trainer.model).state_dict()
        seen["teacher_is_model"] = all(torch.equal(teacher[k], model[k]) for k in teacher)

    boundary = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TwoStageCallback))
    monkeypatch.setattr(boundary, "end_of_stage_one", spy)
    trainer.train()
    assert seen == {"state": 0, "teacher_is_model": True}


@pytest.mark.parametrize("resume_at", [2, 4])  # a checkpoint of stage 1, one of stage 2
def test_resuming_on_either_side_of_the_boundary_reproduces_the_uninterrupted_run(
    tmp_path, text_domains, tokenizer, resume_at
):
    kwargs = dict(save_strategy="steps", save_steps=2, self_training_teacher="ema")
    full = make_trainer(tmp_path / "full", text_domains, tokenizer, **kwargs)
    full.train()
    resumed = make_trainer(tmp_path / "resumed", text_domains, tokenizer, model=tiny_bert(seed=9), **kwargs)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "out" / f"checkpoint-{resume_at}"))
    for key, value in weights(full).items():
        assert torch.equal(value, weights(resumed)[key]), key
    for name, module in full.loss_modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, resumed.loss_modules[name].state_dict()[key]), (name, key)
    assert resumed.stage1["results"] == full.stage1["results"]
    assert (tmp_path / "resumed" / "out" / "stage1" / "model.safetensors").is_file()


def test_two_stage_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="`source_only_steps`=4 needs `max_steps`"):
        domain_adaptation_config(tmp_path, source_only_steps=4, max_steps=4)
    with pytest.raises(ValueError, match="`source_only_steps` must be >= 0"):
        domain_adaptation_config(tmp_path, source_only_steps=-1)


def test_a_schedule_that_cannot_restart_is_refused_in_the_config(tmp_path):
    with pytest.raises(ValueError, match="cannot restart for stage 2 of `source_only_steps`"):
        domain_adaptation_config(
            tmp_path, source_only_steps=2, max_steps=4, lr_scheduler_type="reduce_lr_on_plateau",
            eval_strategy="steps", eval_steps=1,
        )  # fmt: skip


# ---- the guard on fixed inputs ----------------------------------------------------------------------------------


def reference_atc(scores, correct, target_scores):
    """Garg et al.'s reference code (find_ATC_threshold + get_ATC_acc), loop for loop."""
    order = np.argsort(scores)
    sorted_scores, sorted_correct = scores[order], correct[order]
    fp, fn = float(np.sum(~correct)), 0.0
    best, threshold = abs(fp - fn), -np.inf
    for i in range(len(scores)):
        if sorted_correct[i]:
            fn += 1
        else:
            fp -= 1
        if abs(fp - fn) < best:
            best, threshold = abs(fp - fn), sorted_scores[i]
    return float(np.mean(target_scores >= threshold)), threshold


def test_atc_matches_the_reference_code_and_a_hand_example():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores, target = rng.normal(size=50), rng.normal(loc=-0.3, size=40)
        correct = rng.random(50) < 1 / (1 + np.exp(-2 * scores))
        assert average_thresholded_confidence(scores, correct, target) == pytest.approx(
            reference_atc(scores, correct, target)
        )
    # 4 source rows, 1 wrong (the least confident): the threshold sits at the 2nd score, 3 of 4 target rows above
    estimate, threshold = average_thresholded_confidence(
        np.array([0.1, 0.5, 0.7, 0.9]), np.array([False, True, True, True]), np.array([0.05, 0.6, 0.8, 0.95])
    )
    assert (estimate, threshold) == (0.75, 0.1)


def test_diversity_is_one_for_balanced_and_zero_for_collapsed_predictions():
    assert prediction_diversity(np.array([[0.9, 0.1], [0.1, 0.9]]))[0] == pytest.approx(1.0)
    diversity, shares = prediction_diversity(np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]))
    assert diversity == pytest.approx(0.0, abs=1e-9) and shares == [1.0, 0.0]


def evidence(atc=0.85, source=0.85, diversity=1.0):
    return ModelEvidence(atc, 0.0, source, diversity, [0.5, 0.5], 0.5)


@pytest.mark.parametrize(
    "adapted, choice, reason",
    [
        (evidence(atc=0.86), "adapted", "ATC estimate +0.0100"),
        (evidence(atc=0.85), "adapted", "ATC estimate +0.0000"),  # not lower: kept
        (evidence(atc=0.84), "reference", "ATC estimate -0.0100, below the required +0.0000"),
        (evidence(atc=0.90, source=0.82), "reference", "source accuracy dropped 0.0300 > 0.02"),
        (evidence(atc=0.95, diversity=0.85), "reference", "target diversity dropped 0.150 > 0.1 (collapse)"),
    ],
)
def test_the_declared_rule_on_fixed_evidence(adapted, choice, reason):
    decision = decide(evidence(), adapted, agreement=0.9)
    assert decision.choice == choice and decision.keeps_adapted == (choice == "adapted")
    assert reason in "; ".join(decision.reasons)
    assert decision.to_dict()["rule"] == {
        "min_atc_gain": 0.0, "max_source_accuracy_drop": 0.02, "max_diversity_drop": 0.1, "min_agreement": 0.9,
        "atc_score": "negative_entropy",
    }  # fmt: skip


@pytest.mark.parametrize("agreement, rule, choice", [
    (0.90, GuardRule(), "adapted"),  # rule 2: at least 90 % of the target predictions unchanged
    (0.899, GuardRule(), "reference"),
    (0.50, GuardRule(min_agreement=0.0), "adapted"),  # rule 1 does not use agreement
])  # fmt: skip
def test_rule_two_reverts_when_the_adapted_model_changes_more_than_a_tenth_of_the_predictions(agreement, rule, choice):
    decision = decide(evidence(), evidence(atc=0.95), agreement=agreement, rule=rule)
    assert decision.choice == choice
    if choice == "reference":
        assert "agreement with the reference 0.8990 < 0.9" in decision.reasons


def test_another_rule_can_be_applied_to_a_stored_decision():
    rule_one = GuardRule(min_agreement=0)
    decision = decide(evidence(), evidence(atc=0.95), agreement=0.86, rule=rule_one, target_rows=1000, source_rows=400)
    stored = json.loads(json.dumps(decision.to_dict()))
    assert stored["keeps_adapted"]
    again = redecide(stored, GuardRule())
    assert again.choice == "reference" and again.target_rows == 1000 and again.agreement == 0.86
    assert redecide(stored, rule_one).to_dict() == stored
    with pytest.raises(ValueError, match="min_agreement"):
        GuardRule(min_agreement=1.5)


def test_the_guard_never_reads_target_labels(text_domains, tokenizer, source_validation):
    _, _, target_test = text_domains  # labeled target rows
    reference, adapted = tiny_bert(seed=1).eval(), tiny_bert(seed=2).eval()
    collator = DataCollatorWithPadding(tokenizer)
    first = negative_transfer_guard(reference, adapted, source_validation, target_test, data_collator=collator)
    shuffled = target_test.map(lambda row, i: {"label": (row["label"] + i) % 2}, with_indices=True)
    assert shuffled["label"] != target_test["label"]
    second = negative_transfer_guard(reference, adapted, source_validation, shuffled, data_collator=collator)
    assert first.to_dict() == second.to_dict()


def test_the_guard_refuses_models_with_different_label_spaces(text_domains, tokenizer, source_validation):
    _, target, _ = text_domains
    with pytest.raises(ValueError, match="different label spaces"):
        negative_transfer_guard(tiny_bert(), tiny_bert(num_labels=3), source_validation, target,
                                data_collator=DataCollatorWithPadding(tokenizer))  # fmt: skip


# ---- the guard in the trainer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [True, False])
def test_the_trainer_installs_the_chosen_model_and_keeps_the_other(tmp_path, text_domains, tokenizer,
                                                                    source_validation, keep):  # fmt: skip
    trainer = make_trainer(tmp_path, text_domains, tokenizer, source_validation=source_validation)
    trainer.train()
    adapted = weights(trainer)
    # a rule that must keep the adapted model, or one that cannot
    rule = (
        GuardRule(min_atc_gain=-1.0, max_source_accuracy_drop=1.0, max_diversity_drop=1.0, min_agreement=0.0)
        if keep
        else GuardRule(min_atc_gain=1.1)
    )
    decision = trainer.guard_negative_transfer(source_validation, rule=rule)
    assert decision.keeps_adapted == keep
    out = tmp_path / "out"
    stage1 = load_file(str(out / "stage1" / "model.safetensors"))
    now = weights(trainer)
    expected = adapted if keep else {k: stage1[k] for k in stage1}
    for key, value in expected.items():
        assert torch.equal(now[key], value), key
    report = json.loads((out / "negative_transfer_guard.json").read_text())
    assert report["keeps_adapted"] == keep and report["other_model_folder"] == ("stage1" if keep else "adapted")
    if not keep:
        saved = load_file(str(out / "adapted" / "model.safetensors"))
        assert all(torch.equal(saved[k], adapted[k]) for k in saved)
        assert set(report["adapted_results"]) >= {"eval_target_test_accuracy", "eval_source_validation_accuracy"}
    trainer.evaluate()
    trainer.save_model()
    card = (out / "README.md").read_text()
    assert "## Negative-transfer guard" in card
    assert f"kept **the {'adapted' if keep else 'stage-1 (source-only)'} model**" in card
    assert "the source-only model is this\nrun's own stage 1 (its first 3 steps" in card  # the card's baseline
    stage1_accuracy = trainer.stage1["results"]["eval_target_test_accuracy"]
    assert f"| accuracy | {stage1_accuracy:.4f} |" in card


def test_the_guard_needs_a_stage_one_model(tmp_path, text_domains, tokenizer, source_validation):
    trainer = make_trainer(tmp_path, text_domains, tokenizer, source_only_steps=0, max_steps=2)
    trainer.train()
    with pytest.raises(ValueError, match="this run has none: train with `source_only_steps` > 0"):
        trainer.guard_negative_transfer(source_validation)


# ---- the recipe ---------------------------------------------------------------------------------------------------

QUICK = ["--per_device_train_batch_size", "8", "--max_length", "32", "--max_train_samples", "32",
         "--max_eval_samples", "16", "--use_cpu", "true", "--guard_target_rows", "16"]  # fmt: skip


def test_the_recipe_runs_both_stages_and_the_guard_and_prints_them_side_by_side(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    recipe = load_recipe("text_cls_dann")
    arguments = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK]
    metrics = recipe.main([*arguments, "--source_only_steps", "2", "--max_steps", "4"])
    summary = json.loads((out / "hf_transfer_run.json").read_text())
    guard = summary["negative_transfer_guard"]
    stage1 = summary["stage1"]["results"]["eval_target_test_accuracy"]
    printed = capsys.readouterr().out
    assert f"target-test accuracy: stage 1 (source-only) {stage1:.4f}" in printed
    assert f"({metrics['eval_target_test_accuracy']:.4f})" in printed
    assert summary["transfer_report"][0]["source_only"] == stage1  # stage 1 is the transfer report's baseline
    assert (out / "stage1" / "model.safetensors").is_file() and (out / "negative_transfer_guard.json").is_file()
    assert (out / guard["other_model_folder"] / "model.safetensors").is_file()

    # stage 1 as its own run, then stage 2 from it
    first, second = tmp_path / "stage1_run", tmp_path / "stage2_run"
    recipe.main([*arguments[:2], "--output_dir", str(first), *QUICK, "--adaptation_loss", "none",
                 "--source_only_steps", "0", "--max_steps", "2"])  # fmt: skip
    metrics = recipe.main(["--output_dir", str(second), *QUICK, "--stage1_run", str(first),
                           "--source_only_steps", "2", "--max_steps", "4"])  # fmt: skip
    summary = json.loads((second / "hf_transfer_run.json").read_text())
    assert summary["facts"]["max_steps"] == 2 and summary["facts"]["base_model"] == "local files (tiny-bert)"
    assert summary["stage1"]["results"] == json.loads((first / "hf_transfer_run.json").read_text())["metrics"]
    assert "negative_transfer_guard" in summary and metrics["eval_target_test_accuracy"] is not None


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--source_only_steps", "3", "--max_steps", "5"], "trained 2 steps, but `source_only_steps` is 3"),
        (["--source_only_steps", "0", "--max_steps", "2"], "`source_only_steps` is 0"),
        (["--source_only_steps", "2", "--max_steps", "4", "--seed", "7"], "seed: 42 there, 7 here"),
    ],
)
def test_a_stage1_run_that_does_not_fit_is_refused_before_training(tmp_path, tiny_model_dir, extra, message):
    recipe = load_recipe("text_cls_dann")
    first = tmp_path / "stage1_run"
    recipe.main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(first), *QUICK,
                 "--adaptation_loss", "none", "--source_only_steps", "0", "--max_steps", "2"])  # fmt: skip
    with pytest.raises(ValueError, match=message):
        recipe.main(["--output_dir", str(tmp_path / "two"), *QUICK, "--stage1_run", str(first), *extra])
    assert not (tmp_path / "two").exists()


def test_the_guard_without_source_validation_is_refused_when_asked_for_and_skipped_by_default(
    tmp_path, tiny_model_dir, caplog
):
    rows = [{"text": f"good {i}" if i % 2 else f"bad {i}", "label": ["negative", "positive"][i % 2]} for i in range(16)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    arguments = ["--model_name_or_path", str(tiny_model_dir), *QUICK, "--source_dataset", str(train),
                 "--source_only_steps", "2", "--max_steps", "4"]  # fmt: skip
    with pytest.raises(ValueError, match="drop --negative_transfer_guard true"):
        load_recipe("text_cls_dann").main(
            [*arguments, "--output_dir", str(tmp_path / "run"), "--negative_transfer_guard", "true"]
        )
    assert not os.path.exists(tmp_path / "run")
    load_recipe("text_cls_dann").main([*arguments, "--output_dir", str(tmp_path / "auto")])
    assert "the negative-transfer guard does not run" in caplog.text
    assert not (tmp_path / "auto" / "negative_transfer_guard.json").exists()
    assert (tmp_path / "auto" / "stage1" / "model.safetensors").is_file()


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_going_back_to_stage_one_restores_its_exact_weights(tmp_path, text_domains, tokenizer, source_validation,
                                                            monkeypatch, strategy):  # fmt: skip
    trainer = make_trainer(tmp_path, text_domains, tokenizer, source_validation=source_validation,
                           transfer_strategy=strategy)  # fmt: skip
    boundary = next(c for c in trainer.callback_handler.callbacks if isinstance(c, TwoStageCallback))
    original, snapshot = boundary.end_of_stage_one, {}

    def end_of_stage_one():
        original()
        snapshot.update(weights(trainer))

    monkeypatch.setattr(boundary, "end_of_stage_one", end_of_stage_one)
    trainer.train()
    assert any(not torch.equal(value, snapshot[key]) for key, value in weights(trainer).items())  # stage 2 moved
    assert not trainer.guard_negative_transfer(source_validation, rule=GuardRule(min_atc_gain=1.1)).keeps_adapted
    for key, value in weights(trainer).items():
        assert torch.equal(value, snapshot[key]), key
