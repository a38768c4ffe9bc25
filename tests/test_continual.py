"""Continual learning: the metrics of the accuracy matrix, the replay memory and batches, EWC's Fisher and penalty and
LwF's targets against hand-written references, the scenarios' masks, adapters that leave the others untouched,
the schedule restarting per experience, exact resume mid-sequence, bad inputs and the card."""

import json
from collections import Counter

import datasets
import pytest
import torch
from conftest import SOURCE_TOPIC, TARGET_TOPIC, make_reviews, tiny_bert, tokenize
from transformers import DataCollatorWithPadding

from hf_transfer import ContinualConfig, ContinualTrainer
from hf_transfer.continual import ContinualBatchSampler, continual_metrics, ewc_penalty, replay_memory
from hf_transfer.continual.experiences import ExperiencePlan
from hf_transfer.continual.losses import MASKED_LOGIT

# ---- the metrics ---------------------------------------------------------------------------------------------------


def test_metrics_of_a_fixed_matrix_equal_the_hand_computed_values():
    matrix = [[0.9, 0.2, 0.1], [0.6, 0.8, 0.3], [0.5, 0.7, 0.85]]
    initial = [0.1, 0.15, 0.2]
    metrics = continual_metrics(matrix, initial)
    assert metrics["average_accuracy"] == pytest.approx((0.5 + 0.7 + 0.85) / 3)
    assert metrics["backward_transfer"] == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert metrics["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)
    assert metrics["forward_transfer"] == pytest.approx(((0.2 - 0.15) + (0.3 - 0.2)) / 2)
    # forgetting takes the best earlier accuracy, not the diagonal: here it is positive while BWT is too
    late_peak = continual_metrics([[0.5, 0.1, 0.1], [0.9, 0.9, 0.2], [0.6, 0.9, 0.8]])
    assert late_peak["forgetting"] == pytest.approx(((0.9 - 0.6) + 0.0) / 2)
    assert late_peak["backward_transfer"] == pytest.approx(((0.6 - 0.5) + 0.0) / 2)
    # an experience scoring higher before it was learned (an untrained adapter) is not forgetting
    assert continual_metrics([[0.9, 0.7, 0.5], [0.9, 0.6, 0.5], [0.9, 0.6, 0.8]])["forgetting"] == 0.0
    joint = continual_metrics([[0.8, 0.9]])
    assert joint == {"average_accuracy": pytest.approx(0.85), "backward_transfer": None, "forgetting": None,
                     "forward_transfer": None}  # fmt: skip


# ---- the replay memory and the batches ----------------------------------------------------------------------------


def test_reservoir_memory_is_a_seeded_uniform_sample_of_every_row_seen():
    labels = [[0, 1] * 50, [0, 1] * 50, [0, 1] * 50]
    memory = replay_memory(labels, 30, "reservoir", seed=3)
    assert memory == replay_memory(labels, 30, "reservoir", seed=3)
    assert memory != replay_memory(labels, 30, "reservoir", seed=4)
    assert len(memory) == len(set(memory)) == 30
    assert all(0 <= e < 3 and 0 <= r < 100 for e, r in memory)
    assert replay_memory(labels[:2], 30, "reservoir", seed=3) != memory  # the third experience entered it
    # uniform over the stream: over many seeds each experience holds about a third of the slots
    counts = Counter(e for seed in range(200) for e, _ in replay_memory(labels, 30, "reservoir", seed))
    assert all(abs(counts[e] / (200 * 30) - 1 / 3) < 0.03 for e in range(3))
    # fewer rows than slots: every row is kept
    assert sorted(replay_memory([[0, 1, 0]], 10, "reservoir", 0)) == [(0, 0), (0, 1), (0, 2)]


def test_class_balanced_memory_gives_each_class_seen_an_equal_share():
    labels = [[0, 1] * 20, [2, 3] * 20, [4, 5] * 20]
    after_two = replay_memory(labels[:2], 10, "class_balanced", seed=0)
    classes = Counter(labels[e][r] for e, r in after_two)
    assert classes == {0: 3, 1: 3, 2: 2, 3: 2}  # 10 slots over 4 classes: the first two get one more
    after_three = replay_memory(labels, 12, "class_balanced", seed=0)
    assert Counter(labels[e][r] for e, r in after_three) == {c: 2 for c in range(6)}
    # the rows of an old class are a subset of what it held before (rows are dropped, never re-drawn)
    before = set(replay_memory(labels[:1], 12, "class_balanced", seed=0))
    assert {p for p in after_three if p[0] == 0} <= before


def test_batches_mix_the_memory_at_the_replay_fraction_from_the_second_experience_on():
    plan = ExperiencePlan(("a", "b"), (3, 4))
    segments = [list(range(0, 20)), list(range(20, 50))]
    memory = [1, 3, 5, 7]
    sampler = ContinualBatchSampler(plan, segments, batch_rows=8, replay_rows=2, batches_per_step=2, seed=0,
                                    memory_of=lambda index: memory)  # fmt: skip
    batches = list(sampler)
    assert len(batches) == len(sampler) == (3 + 4) * 2
    assert all(len(b) == 8 and set(b) <= set(segments[0]) for b in batches[:6])  # experience a: no memory yet
    for batch in batches[6:]:
        assert set(batch[:6]) <= set(segments[1]) and set(batch[6:]) <= set(memory)
    assert batches == list(sampler)  # the same batches every time (resume)
    # one process × 16 rows and two processes × 8 rows see the same rows per step
    wide = ContinualBatchSampler(plan, segments, 16, 4, 1, 0, memory_of=lambda index: memory)
    pairs = [batches[2 * i] + batches[2 * i + 1] for i in range(7)]
    for wide_batch, pair in zip(wide, pairs):
        assert sorted(wide_batch) == sorted(pair)


# ---- the trainer ---------------------------------------------------------------------------------------------------


def _experiences(tokenizer, rows: int = 32):
    a = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, rows, seed=0)), tokenizer)
    b = tokenize(datasets.Dataset.from_dict(make_reviews(TARGET_TOPIC, rows, seed=1)), tokenizer)
    c = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC + TARGET_TOPIC, rows, seed=2)), tokenizer)
    return {"a": a, "b": b, "c": c}


def _class_split(tokenizer):
    """Three experiences of two classes each (6 classes): the labels of `make_reviews` moved up by 2 per experience."""
    sets = _experiences(tokenizer)
    shift = {name: 2 * i for i, name in enumerate(sets)}
    return {name: data.map(lambda row, k=shift[name]: {"label": row["label"] + k}) for name, data in sets.items()}


def _trainer(tmp_path, tokenizer, sets=None, num_labels=2, **kwargs):
    sets = sets or _experiences(tokenizer)
    settings = {"output_dir": str(tmp_path / "out"), "steps_per_experience": 3, "per_device_train_batch_size": 8,
                "learning_rate": 1e-3, "report_to": "none", "use_cpu": True, "save_strategy": "no"}  # fmt: skip
    settings.update(kwargs)
    return ContinualTrainer(
        model=tiny_bert(num_labels=num_labels, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
        args=ContinualConfig(**settings), train_dataset=sets, eval_dataset=sets, processing_class=tokenizer,
    )  # fmt: skip


def _weights(trainer) -> dict:
    return {n: p.detach().clone() for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}


def test_naive_run_fills_the_accuracy_matrix_and_writes_results_plot_and_card(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, logging_steps=1)
    result = trainer.train()
    trainer.save_model()
    report = trainer.continual_report()
    assert len(report["accuracy_matrix"]) == 3 and all(len(row) == 3 for row in report["accuracy_matrix"])
    assert len(report["initial_accuracy"]) == 3
    assert result.metrics["average_accuracy"] == pytest.approx(sum(report["accuracy_matrix"][-1]) / 3)
    out = tmp_path / "out"
    saved = json.loads((out / "continual_results.json").read_text())
    assert saved["accuracy_matrix"] == report["accuracy_matrix"]
    assert (out / "accuracy_matrix.png").read_bytes()[:4] == b"\x89PNG"
    card = (out / "README.md").read_text()
    assert "## Accuracy matrix" in card and "| after a |" in card and "accuracy_matrix.png" in card
    assert "Sequential fine-tuning" in card and "continual-learning" in card
    # every step logged its loss, the boundary steps too
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == list(range(1, 10))


def test_the_schedule_restarts_and_the_optimizer_state_is_cleared_with_each_experience(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, steps_per_experience=2, lr_scheduler_type="linear")
    rates, sizes = [], []
    trainer.add_callback(_RecordRates(rates))
    original = trainer._end_experience

    def end(index):
        original(index)
        sizes.append(len(getattr(trainer.optimizer, "optimizer", trainer.optimizer).state))

    trainer._end_experience = end
    trainer.train()
    assert rates[:2] == pytest.approx([1e-3, 5e-4])  # linear decay over 2 steps
    assert rates[2:4] == pytest.approx(rates[:2]) and rates[4:] == pytest.approx(rates[:2])
    assert sizes == [0, 0, len([p for p in trainer.model.parameters() if p.requires_grad])]  # Adam restarts


class _RecordRates:
    def __init__(self, rates):
        self.rates = rates

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.rates.append(optimizer.param_groups[0]["lr"])


def test_ewc_fisher_and_penalty_equal_hand_written_references(tmp_path, tokenizer):
    sets = _experiences(tokenizer)
    trainer = _trainer(tmp_path, tokenizer, sets, continual_method=["ewc"], ewc_fisher_batches=3, ewc_lambda=50.0)
    anchors = []
    original = trainer._end_experience

    def end(index):
        weights = _weights(trainer)
        original(index)
        if index == 0:
            anchors.append((weights, trainer._ewc_anchors[0]))

    trainer._end_experience = end
    trainer.train()
    weights, (fisher, anchor) = anchors[0]
    assert len(trainer._ewc_anchors) == 2  # one per finished experience (separate mode)
    # by hand: the same 3 batches of 8 rows of experience a, eval mode, squared gradient of each batch's mean loss
    model = tiny_bert(num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.load_state_dict(weights)
    model.eval()
    order = torch.randperm(32, generator=torch.Generator().manual_seed(42 * 1_000_003 + 7919)).tolist()
    collator = DataCollatorWithPadding(tokenizer)
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for start in (0, 8, 16):
        rows = [{k: sets["a"][i][k] for k in ("input_ids", "token_type_ids", "attention_mask", "label")}
                for i in order[start : start + 8]]  # fmt: skip
        batch = collator(rows)
        labels = batch.pop("labels")
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
        model.zero_grad()
        loss.backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad**2
    for name in expected:
        torch.testing.assert_close(fisher[name], expected[name] / 3, rtol=1e-4, atol=1e-10, msg=name)
        torch.testing.assert_close(anchor[name], weights[name])
    # the penalty: λ Σ F (θ − θ*)²
    params = {n: w + 0.01 for n, w in weights.items()}
    by_hand = 50.0 * sum(((expected[n] / 3) * 0.01**2).sum() for n in expected)
    assert float(ewc_penalty(params, [(fisher, anchor)], 50.0)) == pytest.approx(float(by_hand), rel=1e-4)


def test_online_ewc_keeps_one_decayed_penalty(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, continual_method=["ewc"], ewc_mode="online", ewc_decay=0.5,
                       ewc_fisher_batches=2, logging_steps=1)  # fmt: skip
    fishers = []
    original = trainer._fisher
    trainer._fisher = lambda *a: fishers.append(original(*a)) or fishers[-1]
    trainer.train()
    assert len(trainer._ewc_anchors) == 1
    fisher, anchor = trainer._ewc_anchors[0]
    for name in fisher:
        torch.testing.assert_close(fisher[name], 0.5 * fishers[0][name] + fishers[1][name])
    assert any("loss/ewc" in h for h in trainer.state.log_history)


def test_lwf_targets_come_from_the_frozen_model_of_the_end_of_the_previous_experience(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, continual_method=["lwf"], lwf_alpha=2.0, lwf_temperature=3.0,
                       logging_steps=1)  # fmt: skip
    checks = []
    original = trainer._end_experience

    def end(index):
        weights = _weights(trainer)
        original(index)
        if index < 2:
            previous = trainer._previous_model
            frozen = not any(p.requires_grad for p in previous.parameters()) and not previous.training
            same = all(torch.equal(p, weights[n]) for n, p in previous.named_parameters())
            checks.append((frozen, same))

    trainer._end_experience = end
    trainer.train()
    assert checks == [(True, True), (True, True)]
    # the loss: α T² KL(softmax(previous / T) ‖ softmax(current / T)), the mean over rows
    current, previous = torch.randn(4, 2), torch.randn(4, 2)
    p = torch.softmax(previous / 3, -1)
    by_hand = 2.0 * 9 * (p * (p.log() - torch.log_softmax(current / 3, -1))).sum(-1).mean()
    from hf_transfer.continual import lwf_loss

    assert float(lwf_loss(current, previous, torch.tensor([True, True]), 2.0, 3.0)) == pytest.approx(float(by_hand))
    logged = [h["loss/lwf"] for h in trainer.state.log_history if "loss/lwf" in h]
    assert logged and all(value >= 0 for value in logged)


def test_replay_batches_hold_memory_rows_of_earlier_experiences(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, continual_method=["replay"], memory_size=10, replay_fraction=0.25)
    seen = []
    original = trainer.compute_loss

    def compute_loss(model, inputs, *args, **kwargs):
        if model.training:
            seen.append((trainer.state.global_step, inputs["experience_ids"].tolist()))
        return original(model, inputs, *args, **kwargs)

    trainer.compute_loss = compute_loss
    trainer.train()
    for step, experiences in seen:
        current = step // 3
        assert experiences[: 8 - (2 if current else 0)] == [current] * (8 - (2 if current else 0))
        if current:
            assert all(e < current for e in experiences[6:])  # 2 of 8 rows (0.25) from the memory
    assert trainer._memory_rows(2) == [trainer._rows.offsets[e] + r for e, r in
                                       replay_memory(trainer._labels[:2], 10, "reservoir", 42)]  # fmt: skip


def test_each_experience_adapter_trains_and_leaves_the_others_bitwise_unchanged(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, continual_method=["adapters"], transfer_strategy="lora", adapter_rank=2)
    snapshots = [_weights(trainer)]
    original = trainer._end_experience

    def end(index):
        snapshots.append(_weights(trainer))
        original(index)

    trainer._end_experience = end
    trainer.train()
    for index in range(3):
        before, after = snapshots[index], snapshots[index + 1]
        changed = {n for n in before if not torch.equal(before[n], after[n])}
        assert changed and all(".experience_%d." % index in n for n in changed), (index, sorted(changed)[:4])
    base = [n for n in snapshots[0] if "experience_" not in n]
    assert all(torch.equal(snapshots[0][n], snapshots[-1][n]) for n in base)  # the frozen base never moves
    model = trainer.accelerator.unwrap_model(trainer.model)
    assert sorted(model.peft_config) == ["experience_0", "experience_1", "experience_2"]
    assert trainer.continual_report()["metrics"]["forgetting"] == 0.0 and model.active_adapter == "experience_2"
    # saved and loaded as the card says: each adapter from its subfolder gives the trained adapter's logits
    trainer.save_model()
    card = (tmp_path / "out" / "README.md").read_text()
    assert 'model.load_adapter("out", subfolder="experience_1", adapter_name="experience_1")' in card
    from peft import PeftModel

    base = tiny_bert(num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    loaded = PeftModel.from_pretrained(
        base, str(tmp_path / "out"), subfolder="experience_0", adapter_name="experience_0"
    )
    for name in ("experience_1", "experience_2"):
        loaded.load_adapter(str(tmp_path / "out"), subfolder=name, adapter_name=name)
    batch = DataCollatorWithPadding(tokenizer)([{"input_ids": [2, 6, 7, 3]}, {"input_ids": [2, 12, 3]}])
    model.eval()
    for name in ("experience_0", "experience_1", "experience_2"):
        model.set_adapter(name)
        loaded.set_adapter(name)
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(**batch).logits, model(**batch).logits)


def test_task_scenario_classifies_among_the_experience_classes_only(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, _class_split(tokenizer), num_labels=6, scenario="task")
    experiences = torch.tensor([0, 2])
    allowed = trainer._allowed_classes(experiences, seen=1)
    assert allowed.tolist() == [[True, True, False, False, False, False], [False, False, False, False, True, True]]
    trainer.train()
    predictions = trainer.predict(trainer.eval_dataset["b"]).predictions
    assert (predictions[:, [0, 1, 4, 5]] == MASKED_LOGIT).all()


def test_class_scenario_grows_the_head_with_the_classes_seen(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, _class_split(tokenizer), num_labels=6, scenario="class")
    assert trainer._allowed_classes(torch.tensor([0]), seen=2).tolist() == [[True] * 4 + [False] * 2]
    masks = []
    original = trainer.compute_loss

    def compute_loss(model, inputs, *args, **kwargs):
        loss, outputs = original(model, inputs, return_outputs=True)
        masks.append((model.training, trainer.state.global_step, (outputs.logits == MASKED_LOGIT).sum(-1).tolist()))
        return (loss, outputs) if kwargs.get("return_outputs") or args else loss

    trainer.compute_loss = compute_loss
    trainer.train()
    training = [(step, set(m)) for is_training, step, m in masks if is_training]
    assert all(m == {6 - 2 * (1 + step // 3)} for step, m in training)  # 4, 2, then 0 classes masked
    evaluated = {step: {n for t, s, m in masks if not t and s == step for n in m} for step in (0, 3, 6, 9)}
    assert evaluated == {0: {4}, 3: {4}, 6: {2}, 9: {0}}  # before training and after a: 2 classes seen, then 4, 6


def test_joint_training_trains_every_experience_at_once_for_the_same_steps(tmp_path, tokenizer):
    trainer = _trainer(tmp_path, tokenizer, continual_method=["joint"])
    result = trainer.train()
    assert trainer.state.global_step == 9
    report = trainer.continual_report()
    assert report["row_names"] == ["after all (joint)"] and len(report["accuracy_matrix"]) == 1
    assert result.metrics["average_accuracy"] == pytest.approx(sum(report["accuracy_matrix"][0]) / 3)


@pytest.mark.parametrize("methods", [["ewc", "replay", "lwf"], ["adapters"]])
def test_a_run_killed_in_the_third_experience_resumes_exactly(tmp_path, tokenizer, methods):
    extra = {"transfer_strategy": "lora", "adapter_rank": 2} if methods == ["adapters"] else {"memory_size": 8}
    full = _trainer(tmp_path / "full", tokenizer, continual_method=methods, **extra)
    full.train()
    first = _trainer(tmp_path / "cut", tokenizer, continual_method=methods, save_strategy="steps", save_steps=7,
                     **extra)  # fmt: skip
    first.add_callback(_StopAt(7))
    first.train()
    resumed = _trainer(tmp_path / "cut", tokenizer, continual_method=methods, save_strategy="no", **extra)
    resumed.train(resume_from_checkpoint=str(tmp_path / "cut" / "out" / "checkpoint-7"))
    assert resumed.continual_report()["accuracy_matrix"] == full.continual_report()["accuracy_matrix"]
    full_weights, resumed_weights = _weights(full), _weights(resumed)
    for name, weight in full_weights.items():
        torch.testing.assert_close(resumed_weights[name], weight, rtol=0, atol=0, msg=name)


class _StopAt:
    def __init__(self, step):
        self.step = step

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


def test_resuming_from_another_runs_checkpoint_says_what_differs(tmp_path, tokenizer):
    first = _trainer(tmp_path, tokenizer, save_strategy="steps", save_steps=3)
    first.train()
    other = _trainer(tmp_path, tokenizer, continual_method=["ewc"])
    with pytest.raises(ValueError, match="continual_method: \\['naive'\\] there, \\['ewc'\\] here"):
        other.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-3"))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"continual_method": ["naive", "ewc"]}, "'naive' stands alone"),
        ({"continual_method": ["ewcc"]}, "must name methods"),
        ({"ewc_lambda": 5.0}, "only apply to `continual_method` 'ewc'"),
        ({"continual_method": ["replay"], "replay_fraction": 1.0}, "replay_fraction"),
        ({"continual_method": ["ewc"], "ewc_decay": 0.5}, "online"),
        ({"max_steps": 10}, "steps_per_experience"),
        ({"continual_method": ["adapters"], "transfer_strategy": "feature_extraction"}, "adapter"),
        ({"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps"}, "last model"),
    ],
)
def test_bad_settings_are_refused_naming_the_argument(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        ContinualConfig(output_dir=str(tmp_path), report_to="none", **settings)


def test_bad_experiences_are_refused_before_training(tmp_path, tokenizer):
    sets = _experiences(tokenizer)
    with pytest.raises(ValueError, match="same names"):
        ContinualTrainer(model=tiny_bert(), args=ContinualConfig(output_dir=str(tmp_path), report_to="none"),
                         train_dataset=sets, eval_dataset={"a": sets["a"]})  # fmt: skip
    with pytest.raises(TypeError, match="dict"):
        ContinualTrainer(model=tiny_bert(), args=ContinualConfig(output_dir=str(tmp_path), report_to="none"),
                         train_dataset=sets["a"], eval_dataset=sets)  # fmt: skip
    unlabeled = {**sets, "b": sets["b"].map(lambda row: {"label": -100})}
    with pytest.raises(ValueError, match=r"train_dataset\['b'\]` row 0"):
        ContinualTrainer(model=tiny_bert(), args=ContinualConfig(output_dir=str(tmp_path), report_to="none"),
                         train_dataset=unlabeled, eval_dataset=sets)  # fmt: skip
    with pytest.raises(ValueError, match="outside the model's 2 classes"):
        _trainer(tmp_path, tokenizer, _class_split(tokenizer), num_labels=2)
    with pytest.raises(ValueError, match="adapter"):
        ContinualTrainer(model=tiny_bert(), args=ContinualConfig(output_dir=str(tmp_path), report_to="none",
                         continual_method=["adapters"]), train_dataset=sets, eval_dataset=sets)  # fmt: skip
    with pytest.raises(ValueError, match="restart with each experience"):
        _trainer(tmp_path, tokenizer, lr_scheduler_type="reduce_lr_on_plateau", eval_strategy="steps")


def test_experiences_that_were_not_learned_are_warned_about_reported_and_carded(tmp_path, tokenizer, caplog):
    trainer = _trainer(tmp_path, tokenizer, learning_rate=1e-12)  # the weights cannot move: nothing is learned
    with caplog.at_level("WARNING", logger="hf_transfer.continual.trainer"):
        trainer.train()
    trainer.save_model()
    assert trainer.continual_report()["not_learned"] == ["a", "b", "c"]
    warned = [r.getMessage() for r in caplog.records if "was not learned" in r.getMessage()]
    assert len(warned) == 3 and "Experience 'a' was not learned" in warned[0] and "learning_rate" in warned[0]
    assert "**Not learned:** a, b, c." in (tmp_path / "out" / "README.md").read_text()
    # the rule itself: above both the majority class and the untrained model by more than the margin is learned
    trainer._matrix, trainer._initial = [[0.9, 0.5, 0.5], [0.9, 0.51, 0.5], [0.9, 0.5, 0.56]], [0.5, 0.5, 0.55]
    trainer._majority = [0.5, 0.5, 0.5]
    assert trainer.not_learned() == ["b", "c"]
