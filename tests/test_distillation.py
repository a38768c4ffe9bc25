"""Knowledge distillation: the losses against hand-written references, students built from teachers, and the
trainer (frozen teacher, soft-only unlabeled rows, projection, gradient accumulation, resume, export, card)."""

import math
import re

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SOURCE_TOPIC, TARGET_TOPIC, TINY_VISION_CONFIGS, make_reviews, tiny_bert, tokenize
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    ResNetConfig,
    ResNetForImageClassification,
    ViTForImageClassification,
)

from hf_transfer import DistillationConfig, DistillationTrainer, build_student, compute_classification_metrics
from hf_transfer.distillation import (
    attention_loss,
    default_layer_map,
    distillation_loss,
    evenly_spaced,
    hidden_state_loss,
    soft_label_loss,
)

# ---- the losses ----------------------------------------------------------------------------------------------


def test_the_loss_equals_hintons_formula_written_out():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 3), torch.randn(6, 3)
    labels = torch.tensor([0, 2, 1, -100, -100, 1])  # two rows without a label
    alpha, temperature = 0.3, 2.5
    loss, hard, soft = distillation_loss(student, teacher, labels, alpha, temperature)
    p_teacher = torch.softmax(teacher / temperature, -1)
    log_p_student = torch.log_softmax(student / temperature, -1)
    kl = (p_teacher * (torch.log(p_teacher) - log_p_student)).sum(-1).mean()  # over all 6 rows
    labeled = [0, 1, 2, 5]
    ce = -torch.log_softmax(student, -1)[labeled, labels[labeled]].mean()  # over the 4 labeled rows only
    assert soft.item() == pytest.approx(temperature**2 * kl.item(), rel=1e-5)
    assert hard.item() == pytest.approx(ce.item(), rel=1e-5)
    assert loss.item() == pytest.approx(alpha * ce.item() + (1 - alpha) * temperature**2 * kl.item(), rel=1e-5)


def test_rows_without_labels_get_the_soft_term_only():
    torch.manual_seed(1)
    student = torch.randn(4, 2, requires_grad=True)
    teacher = torch.randn(4, 2)
    labels = torch.tensor([1, 0, -100, -100])
    loss, _, _ = distillation_loss(student, teacher, labels, alpha=1.0, temperature=2.0)
    loss.backward()
    assert torch.all(student.grad[2:] == 0) and torch.any(student.grad[:2] != 0)  # no CE on the unlabeled rows
    _, hard, _ = distillation_loss(student, teacher, torch.full((4,), -100), alpha=0.5, temperature=2.0)
    assert hard.item() == 0.0


def test_the_soft_term_is_zero_for_equal_logits_and_scales_with_t_squared():
    logits = torch.randn(5, 4)
    assert soft_label_loss(logits, logits, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    # with logits scaled by T, the tempered softmaxes are those of T = 1: the loss is T² times the T = 1 loss
    assert soft_label_loss(4 * a, 4 * b, 4.0).item() == pytest.approx(16 * soft_label_loss(a, b, 1.0).item(), rel=1e-5)


def test_hidden_state_and_attention_losses_average_over_real_tokens_only():
    student, teacher = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    real = [(0, 0), (0, 1), (1, 0)]
    mse = np.mean([((student[r, t] - teacher[r, t]) ** 2).mean().item() for r, t in real])
    assert hidden_state_loss(student, teacher, mask, "mse").item() == pytest.approx(mse, rel=1e-5)
    cosine = np.mean([1 - F.cosine_similarity(student[r, t], teacher[r, t], dim=0).item() for r, t in real])
    assert hidden_state_loss(student, teacher, mask, "cosine").item() == pytest.approx(cosine, rel=1e-5)
    maps_s, maps_t = torch.rand(2, 2, 3, 3), torch.rand(2, 2, 3, 3)
    expected = np.mean([((maps_s[r, :, t] - maps_t[r, :, t]) ** 2).mean().item() for r, t in real])
    assert attention_loss(maps_s, maps_t, mask).item() == pytest.approx(expected, rel=1e-5)


def test_layer_maps_and_kept_layers_are_spread_evenly():
    assert default_layer_map(3, 6) == [2, 4, 6] and default_layer_map(2, 2) == [1, 2]
    assert default_layer_map(6, 12) == [2, 4, 6, 8, 10, 12]
    assert evenly_spaced(6, 12) == [0, 2, 4, 7, 9, 11]  # DistilBERT's layers of BERT-base
    assert evenly_spaced(3, 6) == [0, 3, 5] and evenly_spaced(1, 4) == [0]


def test_the_config_names_the_argument_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match="`alpha` must be in"):
        DistillationConfig(output_dir=str(tmp_path), alpha=1.5)
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        DistillationConfig(output_dir=str(tmp_path), temperature=0)
    with pytest.raises(ValueError, match="weighs a loss that is off"):
        DistillationConfig(output_dir=str(tmp_path), hidden_state_loss_weight=2.0)
    with pytest.raises(ValueError, match="`layer_map` pairs"):
        DistillationConfig(output_dir=str(tmp_path), layer_map=[1, 2])


# ---- students built from teachers ---------------------------------------------------------------------------


def test_a_bert_student_copies_the_kept_layers_and_everything_else(tmp_path):
    teacher = _bert(layers=4, seed=3)
    student = build_student(teacher, num_layers=2)
    assert student.config.num_hidden_layers == 2 and student.config.hf_transfer_student["layers"] == [0, 3]
    t, s = teacher.state_dict(), student.state_dict()
    for name, value in s.items():
        source = name.replace("encoder.layer.1.", "encoder.layer.3.")  # layer 0 stays layer 0
        assert torch.equal(value, t[source]), name
    assert not any(name.startswith("bert.encoder.layer.2") for name in s)
    student.save_pretrained(tmp_path / "student")
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    ids = torch.tensor([[2, 5, 6, 3]])
    # the reloaded copy may use another attention kernel (sdpa) than the one built from the config: equal to 1e-6
    torch.testing.assert_close(reloaded(input_ids=ids).logits, student.eval()(input_ids=ids).logits, rtol=0, atol=1e-6)
    assert build_student(teacher, layers=[1, 2]).config.hf_transfer_student["layers"] == [1, 2]


def test_a_vit_student_and_a_resnet_student_are_built_from_their_teachers():
    torch.manual_seed(0)
    vit = ViTForImageClassification(TINY_VISION_CONFIGS["vit"].__class__(**{**TINY_VISION_CONFIGS["vit"].to_dict(),
                                                                            "num_hidden_layers": 3}))  # fmt: skip
    vit_student = build_student(vit, num_layers=2)  # layers 0 and 2
    kept, teacher_layers = vit_student.vit.layers[1], vit.vit.layers[2]
    for name, p in kept.named_parameters():
        assert torch.equal(p, dict(teacher_layers.named_parameters())[name]), name
    assert torch.equal(vit_student.classifier.weight, vit.classifier.weight)
    resnet = ResNetForImageClassification(
        ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[3, 2], num_labels=3, layer_type="basic")
    )
    resnet_student = build_student(resnet, num_layers=2)
    assert resnet_student.config.depths == [2, 2] and resnet_student.config.hf_transfer_student["layers"] == [
        [0, 2],
        [0, 1],
    ]
    stages_t, stages_s = resnet.resnet.encoder.stages, resnet_student.resnet.encoder.stages
    for name, p in stages_s[0].layers[1].named_parameters():
        assert torch.equal(p, dict(stages_t[0].layers[2].named_parameters())[name]), name
    pixels = torch.randn(2, 3, 16, 16)
    assert resnet_student.eval()(pixel_values=pixels).logits.shape == (2, 3)
    with pytest.raises(ValueError, match="keep block 0"):
        build_student(resnet, layers=[[1, 2], [0]])


def test_build_student_refuses_what_it_cannot_build():
    teacher = _bert(layers=2)
    with pytest.raises(ValueError, match="exactly one of"):
        build_student(teacher)
    with pytest.raises(ValueError, match="from 1 to 2"):
        build_student(teacher, num_layers=3)
    with pytest.raises(ValueError, match="increasing layer indices"):
        build_student(teacher, layers=[1, 0])


# ---- the trainer ----------------------------------------------------------------------------------------------


def _bert(layers=2, seed=0, hidden=32, heads=2, num_labels=2, dropout=0.1, **overrides):
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tiny_bert().config.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=37, max_position_embeddings=32, num_labels=num_labels,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, **overrides,
    )  # fmt: skip
    return BertForSequenceClassification(config)


@pytest.fixture
def data(tokenizer):
    labeled = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 48, seed=0)), tokenizer)
    unlabeled = tokenize(datasets.Dataset.from_dict(make_reviews(TARGET_TOPIC, 32, seed=1)), tokenizer)
    test = tokenize(datasets.Dataset.from_dict(make_reviews(TARGET_TOPIC, 16, seed=2)), tokenizer)
    return labeled, unlabeled, test


def config(tmp_path, **kwargs):
    defaults = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=4, learning_rate=1e-3,
                    logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, seed=0)  # fmt: skip
    return DistillationConfig(**{**defaults, **kwargs})


def trainer_for(tmp_path, data, tokenizer, student=None, teacher=None, unlabeled=True, **kwargs):
    labeled, unlabeled_rows, test = data
    return DistillationTrainer(
        model=student if student is not None else _bert(layers=1, seed=1),
        teacher_model=teacher if teacher is not None else _bert(layers=2, seed=2),
        args=config(tmp_path, **kwargs),
        train_dataset=labeled,
        unlabeled_dataset=unlabeled_rows if unlabeled else None,
        eval_dataset={"target_test": test},
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
    )


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_teacher_stays_frozen_and_the_student_learns(tmp_path, data, tokenizer):
    teacher = _bert(layers=2, seed=2)
    before_teacher = weights(teacher)
    trainer = trainer_for(tmp_path, data, tokenizer, teacher=teacher)
    before_student = weights(trainer.model)
    trainer.train()
    assert all(torch.equal(v, before_teacher[k]) for k, v in weights(trainer.teacher).items())
    assert all(p.grad is None and not p.requires_grad for p in trainer.teacher.parameters())
    assert not trainer.teacher.training
    assert any(not torch.equal(v, before_student[k]) for k, v in weights(trainer.model).items())
    logged = [entry for entry in trainer.state.log_history if "loss/soft" in entry]
    assert len(logged) == 4 and all(entry["loss/hard"] > 0 for entry in logged)


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, data, tokenizer):
    results = []
    for batch, steps in ((16, 1), (8, 2), (4, 4)):
        trainer = trainer_for(
            tmp_path / f"b{batch}",
            data,
            tokenizer,
            student=_bert(layers=1, seed=1, dropout=0.0),
            teacher=_bert(layers=2, seed=2, dropout=0.0),
            per_device_train_batch_size=batch,
            gradient_accumulation_steps=steps,
            max_steps=2,
            hidden_state_loss="mse",
            optim="sgd",
            max_grad_norm=0.0,
        )  # fmt: skip  (SGD: a mis-scaled loss would show)
        trainer.train()
        results.append(weights(trainer.model))
    for other in results[1:]:
        for key, value in results[0].items():
            torch.testing.assert_close(other[key], value, rtol=1e-4, atol=1e-6, msg=key)


def test_a_narrower_student_learns_through_a_projection_that_resumes_exactly(tmp_path, data, tokenizer):
    def run(out, resume=None, max_steps=4):
        trainer = trainer_for(out, data, tokenizer, student=_bert(layers=1, seed=1, hidden=16),
                              hidden_state_loss="cosine", attention_loss_weight=0.0, max_steps=max_steps,
                              save_strategy="steps", save_steps=2)  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    full = run(tmp_path / "full")
    assert full.layer_map == [2] and full.projection.maps[0].weight.shape == (32, 16)
    assert any("loss/hidden_states" in entry for entry in full.state.log_history)
    resumed = run(tmp_path / "full", resume=str(tmp_path / "full" / "out" / "checkpoint-2"))
    for key, value in weights(full.model).items():
        assert torch.equal(weights(resumed.model)[key], value), key
    for key, value in full.projection.state_dict().items():
        assert torch.equal(resumed.projection.state_dict()[key], value), key
    assert (tmp_path / "full" / "out" / "checkpoint-2" / "hidden_state_projection.safetensors").is_file()


def test_the_exported_student_has_no_teacher_and_reloads_with_identical_logits(tmp_path, data, tokenizer):
    trainer = trainer_for(tmp_path, data, tokenizer)
    trainer.train()
    results = trainer.evaluate_teacher()
    assert set(results) == {"eval_target_test_accuracy", "eval_target_test_macro_f1"}
    trainer.evaluate()
    trainer.save_model()
    out = tmp_path / "out"
    saved = load_file(str(out / "model.safetensors"))
    assert len(saved) == len(trainer.model.state_dict()) and not any("teacher" in k for k in saved)
    reloaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    torch.testing.assert_close(reloaded(input_ids=ids).logits, trainer.model.eval()(input_ids=ids).logits, rtol=0,
                               atol=1e-6)  # fmt: skip
    card = (out / "README.md").read_text()
    assert "## Teacher" in card and "Knowledge distillation" in card and "| alpha | 0.5 |" in card
    assert f"{results['eval_target_test_accuracy']:.4f}" in card


def test_a_student_built_from_its_teacher_distils_with_attention_maps(tmp_path, data, tokenizer):
    teacher = _bert(layers=2, seed=2, attn_implementation="eager")
    student = build_student(teacher, num_layers=1)
    trainer = trainer_for(tmp_path, data, tokenizer, student=student, teacher=teacher, hidden_state_loss="mse",
                          attention_loss_weight=1.0)  # fmt: skip
    assert not trainer.projection.has_parameters  # same width: identity
    trainer.train()
    values = [entry["loss/attention"] for entry in trainer.state.log_history if "loss/attention" in entry]
    assert len(values) == 4 and all(math.isfinite(v) and v > 0 for v in values)
    assert trainer._teacher_description()["student_layers"] == [0]


@pytest.mark.parametrize("case, match", [
    ("labels", "The teacher has 3 labels and the student 2"),
    ("vocabulary", "vocabulary has"),
    ("unlabeled_rows_in_train", "row 0 .* has the label -100"),
    ("alpha_one_with_unlabeled", "which `alpha`=1 turns off"),
    ("fraction_without_unlabeled", "no `unlabeled_dataset` was given"),
    ("no_teacher", "needs `teacher_model=`"),
])  # fmt: skip
def test_bad_inputs_are_refused_before_the_first_step(tmp_path, data, tokenizer, case, match):
    labeled, unlabeled, test = data
    kwargs, teacher, train = {}, _bert(layers=2, seed=2), labeled
    if case == "labels":
        teacher = _bert(num_labels=3)
    elif case == "vocabulary":
        teacher = BertForSequenceClassification(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1,
                                                           num_attention_heads=2, intermediate_size=37))  # fmt: skip
    elif case == "unlabeled_rows_in_train":
        train = labeled.map(lambda row, i: {"label": -100 if i in (0, 5) else row["label"]}, with_indices=True)
    elif case == "alpha_one_with_unlabeled":
        kwargs["alpha"] = 1.0
    elif case == "fraction_without_unlabeled":
        kwargs["unlabeled_batch_fraction"] = 0.25
    with pytest.raises(ValueError, match=match):
        trainer = DistillationTrainer(
            model=_bert(layers=1), teacher_model=teacher if case != "no_teacher" else None,
            args=config(tmp_path, **kwargs), train_dataset=train,
            unlabeled_dataset=None if case == "fraction_without_unlabeled" else unlabeled,
            processing_class=tokenizer,
        )  # fmt: skip
        trainer.train()


def test_a_teacher_given_as_a_path_is_loaded_and_its_label_names_checked(tmp_path, data, tokenizer):
    teacher = _bert(layers=2, seed=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    teacher.save_pretrained(tmp_path / "teacher")
    student = _bert(layers=1, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    trainer = trainer_for(tmp_path, data, tokenizer, student=student, teacher=str(tmp_path / "teacher"))
    assert torch.equal(trainer.teacher.classifier.weight, teacher.classifier.weight)
    swapped = _bert(layers=1, id2label={0: "positive", 1: "negative"}, label2id={"positive": 0, "negative": 1})
    with pytest.raises(ValueError, match="labels .* differ"):
        trainer_for(tmp_path, data, tokenizer, student=swapped, teacher=str(tmp_path / "teacher"))


def test_cached_teacher_logits_are_computed_once_and_train_like_the_teacher_run_each_step(tmp_path, data, tokenizer):
    def run(out, cache):
        teacher = _bert(layers=2, seed=2, dropout=0.0)
        calls = []
        teacher.register_forward_hook(lambda *_: calls.append(1))
        trainer = trainer_for(out, data, tokenizer, student=_bert(layers=1, seed=1, dropout=0.0), teacher=teacher,
                              cache_teacher_logits=cache, max_steps=6)  # fmt: skip
        trainer.train()
        return trainer, len(calls)

    online, online_calls = run(tmp_path / "online", cache=False)
    cached, cached_calls = run(tmp_path / "cached", cache=True)
    labeled, unlabeled, _ = data
    assert online_calls == 6 and cached_calls == math.ceil(len(labeled) / 8) + math.ceil(len(unlabeled) / 8)
    files = list((tmp_path / "cached" / "out" / "teacher_logits").glob("*.pt"))
    assert len(files) == 1 and torch.load(files[0]).shape == (len(labeled) + len(unlabeled), 2)
    for key, value in weights(online.model).items():  # the same training up to rounding (other padding)
        torch.testing.assert_close(weights(cached.model)[key], value, rtol=1e-4, atol=1e-5, msg=key)
    _, again = run(tmp_path / "cached", cache=True)  # a restarted run reads the saved logits back
    assert again == 0
    with pytest.raises(ValueError, match="needs its layers at every step"):
        config(tmp_path, cache_teacher_logits=True, hidden_state_loss="mse")


def test_a_teacher_path_that_does_not_exist_is_named_in_the_error(tmp_path, data, tokenizer):
    with pytest.raises(OSError, match="`teacher_model`=.*could not be loaded as a AutoModelForSequenceClassification"):
        trainer_for(tmp_path, data, tokenizer, teacher=str(tmp_path / "no-such-teacher"))


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra", "deberta-v2"])
def test_students_of_other_bert_family_encoders_keep_the_teachers_weights(tmp_path, family):
    from transformers import AutoConfig

    config = AutoConfig.for_model(family, vocab_size=40, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                                  intermediate_size=20, max_position_embeddings=40, num_labels=2)  # fmt: skip
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_config(config).eval()
    student = build_student(teacher, layers=[1, 3]).eval()
    assert student.config.num_hidden_layers == 2 and type(student) is type(teacher)
    teacher_weights = teacher.state_dict()
    for name, value in student.state_dict().items():
        source = re.sub(r"layer\.(\d)\.", lambda m: f"layer.{[1, 3][int(m.group(1))]}.", name)
        assert torch.equal(value, teacher_weights[source]), name
    student.save_pretrained(tmp_path / family)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / family).eval()
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    torch.testing.assert_close(reloaded(input_ids=ids).logits, student(input_ids=ids).logits, rtol=0, atol=1e-6)
