"""Few-shot family: the sentence classifier (pooling, save/load with and without hf_transfer), zero-shot heads from
label embeddings, SetFit pair generation and loss, and the FewShotTrainer (contrastive stage, logistic-regression
head, self-training, gradient accumulation, resume, LoRA, bad inputs)."""

import json
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from conftest import SOURCE_TOPIC, TARGET_TOPIC, make_reviews, tiny_bert, tokenize
from sklearn.linear_model import LogisticRegression
from transformers import AutoModelForSequenceClassification, BertConfig, BertModel

from hf_transfer import (
    FewShotConfig,
    FewShotTrainer,
    SentenceClassifierForSequenceClassification,
    compute_classification_metrics,
    contrastive_pairs,
    zero_shot_classifier,
)
from hf_transfer.features import extract_features
from hf_transfer.few_shot import cosine_similarity_loss, fit_logistic_regression, label_embeddings


@pytest.fixture
def encoder_dir(tmp_path):
    """A tiny pretrained-looking encoder folder (BertModel with its pooler, like all-MiniLM-L6-v2)."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tiny_bert().config.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, max_position_embeddings=32)  # fmt: skip
    path = tmp_path / "encoder"
    BertModel(config).save_pretrained(path)
    return path


def classifier(encoder_dir, **kwargs):
    torch.manual_seed(1)
    return SentenceClassifierForSequenceClassification.from_encoder(str(encoder_dir), num_labels=2, **kwargs)


# ---- the sentence classifier --------------------------------------------------------------------------------


def test_the_embedding_is_the_normalised_masked_mean_of_the_token_states(encoder_dir):
    model = classifier(encoder_dir).eval()
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    states = BertModel.from_pretrained(encoder_dir).eval()(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = torch.stack([states[0].mean(0), states[1, :3].mean(0)])
    expected = torch.nn.functional.normalize(expected, dim=-1)
    torch.testing.assert_close(model.embed(input_ids=ids, attention_mask=mask), expected)
    logits = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(logits, model.classifier(expected))
    assert not any(name.startswith("encoder.pooler") for name in model.state_dict())  # the unused pooler is left out


def test_saved_classifier_reloads_with_and_without_hf_transfer(tmp_path, encoder_dir, tokenizer):
    model = classifier(encoder_dir).eval()
    out = tmp_path / "saved"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"].startswith("modeling_sentence_classifier.")
    assert (out / "modeling_sentence_classifier.py").is_file() and "_name_or_path" not in config["encoder"]
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    reloaded = AutoModelForSequenceClassification.from_pretrained(out).eval()  # registered by hf_transfer
    torch.testing.assert_close(reloaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)
    # Without hf_transfer: the copied modeling file, through trust_remote_code.
    script = (
        "import sys, torch; from transformers import AutoModelForSequenceClassification as A\n"
        f"m = A.from_pretrained({str(out)!r}, trust_remote_code=True).eval()\n"
        "assert 'hf_transfer' not in sys.modules\n"
        "print(m(input_ids=torch.tensor([[2, 5, 6, 7, 3]])).logits.tolist())"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={"HF_HUB_OFFLINE": "1", "PATH": ""}, check=True)  # fmt: skip
    torch.testing.assert_close(torch.tensor(json.loads(result.stdout.strip().splitlines()[-1])),
                               model(input_ids=ids).logits.detach(), rtol=0, atol=1e-6)  # fmt: skip


def test_bad_pooling_is_refused(encoder_dir):
    with pytest.raises(ValueError, match="`pooling` must be one of"):
        classifier(encoder_dir, pooling="max")


# ---- zero-shot -----------------------------------------------------------------------------------------------


def test_zero_shot_head_is_the_scaled_mean_of_normalised_template_embeddings(encoder_dir, tokenizer):
    labels = {"negative": ["bad", "awful"], "positive": "great"}
    templates = ["{}", "sad {}"]
    model = zero_shot_classifier(str(encoder_dir), tokenizer, labels, templates=templates, logit_scale=10.0)
    assert model.config.id2label == {0: "negative", 1: "positive"}

    def unit_embedding(text):
        batch = tokenizer([text], return_tensors="pt")
        return model.embed(**batch)[0].detach()

    def label_vector(descriptions):
        mean = torch.stack([unit_embedding(t.format(d)) for d in descriptions for t in templates]).mean(0)
        return torch.nn.functional.normalize(mean, dim=0)

    expected = torch.stack([label_vector(["bad", "awful"]), label_vector(["great"])])
    torch.testing.assert_close(model.classifier.weight.detach(), 10.0 * expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.classifier.bias.detach(), torch.zeros(2))
    # It predicts the label whose embedding is nearest (cosine) to the input's.
    for text in ["book great story", "awful pan bad", "kettle sad"]:
        similarity = expected @ unit_embedding(text)
        batch = tokenizer([text], return_tensors="pt")
        assert model(**batch).logits.argmax(-1).item() == similarity.argmax().item()
    torch.testing.assert_close(label_embeddings(model, tokenizer, labels, templates), expected, rtol=1e-5, atol=1e-6)


def test_zero_shot_sets_the_head_of_a_loaded_classifier_and_checks_its_size(encoder_dir, tokenizer):
    model = zero_shot_classifier(classifier(encoder_dir), tokenizer, ["bad", "good"])
    assert model.config.label2id == {"bad": 0, "good": 1}
    with pytest.raises(ValueError, match="has 2 outputs for 3 labels"):
        zero_shot_classifier(classifier(encoder_dir), tokenizer, ["bad", "good", "fine"])
    with pytest.raises(ValueError, match="at least two labels"):
        zero_shot_classifier(classifier(encoder_dir), tokenizer, ["bad"])
    with pytest.raises(ValueError, match="exactly one `{}`"):
        zero_shot_classifier(classifier(encoder_dir), tokenizer, ["bad", "good"], templates=["no slot"])
    with pytest.raises(ValueError, match="only apply when `model` is a name"):
        zero_shot_classifier(classifier(encoder_dir), tokenizer, ["bad", "good"], pooling="cls")


# ---- pairs and loss ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy, iterations, positives, negatives",
    [("oversampling", None, 72, 72), ("undersampling", None, 64, 64), ("unique", None, 72, 64), (None, 20, 320, 320)],
)
def test_pair_counts_balance_and_alternation(strategy, iterations, positives, negatives):
    labels = [0] * 8 + [1] * 8  # C = 2, K = 8: 72 positive and 64 negative unordered pairs, self-pairs included
    pairs = contrastive_pairs(labels, strategy or "oversampling", iterations, seed=3)
    same = [pair for pair in pairs if pair[2] == 1.0]
    assert (len(same), len(pairs) - len(same)) == (positives, negatives)
    assert all((labels[i] == labels[j]) == (y == 1.0) and i <= j for i, j, y in pairs)
    assert [y for _, _, y in pairs[:6]] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    if strategy == "unique":
        assert len(set(pairs)) == len(pairs) == 8 * 17 // 2 * 2  # every unordered pair once: N (N + 1) / 2 = 136


def test_pairs_are_determined_by_the_seed():
    labels = [0, 0, 1, 1, 2, 2]
    assert contrastive_pairs(labels, seed=1) == contrastive_pairs(labels, seed=1)
    assert contrastive_pairs(labels, seed=1) != contrastive_pairs(labels, seed=2)
    with pytest.raises(ValueError, match="at least two classes"):
        contrastive_pairs([1, 1, 1])


def test_cosine_similarity_loss_is_the_mse_of_cosines():
    torch.manual_seed(0)
    u, v = torch.randn(5, 4), torch.randn(5, 4)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    cosine = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))
    assert cosine_similarity_loss(u, v, y).item() == pytest.approx(((cosine - y) ** 2).mean().item(), rel=1e-6)


def test_the_logistic_head_reproduces_sklearn_probabilities():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 4))
    for classes in (2, 3):
        labels = np.arange(30) % classes
        weight, bias = fit_logistic_regression(features, labels, classes)
        reference = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels).predict_proba(features)
        logits = features @ weight.T + bias
        probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        np.testing.assert_allclose(probabilities, reference, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match=r"no row of class\(es\) \[2\]"):
        fit_logistic_regression(features, np.arange(30) % 2, 3)


# ---- the trainer ---------------------------------------------------------------------------------------------


@pytest.fixture
def shots(tokenizer):
    """8 labeled rows per class, 24 unlabeled target rows, 16 target test rows."""
    labeled = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 16, seed=0)), tokenizer)
    unlabeled = tokenize(
        datasets.Dataset.from_dict({"text": make_reviews(TARGET_TOPIC, 24, seed=1)["text"]}), tokenizer
    )
    test = tokenize(datasets.Dataset.from_dict(make_reviews(TARGET_TOPIC, 16, seed=2)), tokenizer)
    return labeled, unlabeled, test


def few_shot_config(tmp_path, **kwargs):
    defaults = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, learning_rate=1e-3,
                    logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, seed=0)  # fmt: skip
    return FewShotConfig(**{**defaults, **kwargs})


def trainer_for(tmp_path, shots, tokenizer, model, unlabeled=False, **kwargs):
    labeled, unlabeled_rows, test = shots
    return FewShotTrainer(
        model=model,
        args=few_shot_config(tmp_path, **kwargs),
        train_dataset=labeled,
        unlabeled_dataset=unlabeled_rows if unlabeled else None,
        eval_dataset={"target_test": test},
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
    )


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_contrastive_stage_then_a_logistic_head_on_the_trained_embeddings(tmp_path, shots, tokenizer, encoder_dir):
    trainer = trainer_for(tmp_path, shots, tokenizer, classifier(encoder_dir))
    before = weights(trainer.model)
    trainer.train()
    # 16 rows, 2 classes: 72 positive pairs, oversampled to 144 pairs = 18 batches of 8 (1 epoch).
    assert trainer.state.global_step == 18
    logged = [entry["loss/contrastive"] for entry in trainer.state.log_history if "loss/contrastive" in entry]
    assert len(logged) == 18 and np.mean(logged[-6:]) < np.mean(logged[:6])
    after = weights(trainer.model)
    assert not torch.equal(
        after["encoder.embeddings.word_embeddings.weight"], before["encoder.embeddings.word_embeddings.weight"]
    )
    # The head is the logistic regression of the trained embeddings: the model predicts what sklearn predicts.
    labeled = shots[0]
    features, labels = extract_features(trainer.model, labeled, trainer.data_collator)
    regression = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels)
    test_features, _ = extract_features(trainer.model, shots[2], trainer.data_collator)
    logits = (
        torch.tensor(test_features) @ trainer.model.classifier.weight.detach().T
        + trainer.model.classifier.bias.detach()
    )
    assert logits.argmax(-1).tolist() == regression.predict(test_features).tolist()
    assert trainer.head_report == {"labeled_rows": 16}
    results = trainer.evaluate()
    assert results["eval_target_test_accuracy"] >= 0.0
    trainer.save_model()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "SetFit" in card and "Logistic-regression head" in card and "| contrastive pairs | oversampling |" in card
    assert "| head fitted on: labeled_rows | 16 |" in card


def test_self_training_adds_confident_unlabeled_rows_to_the_head(tmp_path, shots, tokenizer, encoder_dir):
    trainer = trainer_for(tmp_path, shots, tokenizer, classifier(encoder_dir), unlabeled=True,
                          pseudo_label_threshold=0.55)  # fmt: skip
    trainer.train()
    report = trainer.head_report
    assert report["labeled_rows"] == 16 and report["unlabeled_rows"] == 24
    assert 0 < report["pseudo_labeled_rows"] <= 24 and report.get("pseudo_labels_used", True)


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, shots, tokenizer, encoder_dir):
    results = []
    for batch, steps in ((16, 1), (8, 2), (4, 4)):
        model = classifier(encoder_dir, classifier_dropout=0.0)
        model.encoder.config.hidden_dropout_prob = 0.0
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        trainer = trainer_for(tmp_path / f"b{batch}", shots, tokenizer, model, per_device_train_batch_size=batch,
                              gradient_accumulation_steps=steps, max_steps=2, optim="sgd", max_grad_norm=0.0,
                              head="none")  # fmt: skip
        trainer.train()
        results.append(weights(trainer.model))
    for other in results[1:]:
        for key, value in results[0].items():
            torch.testing.assert_close(other[key], value, rtol=1e-4, atol=1e-6, msg=key)


def test_resume_mid_training_is_exact(tmp_path, shots, tokenizer, encoder_dir):
    def run(resume=None):
        trainer = trainer_for(tmp_path, shots, tokenizer, classifier(encoder_dir), max_steps=6, save_strategy="steps",
                              save_steps=3, num_train_epochs=1)  # fmt: skip
        trainer.train(resume_from_checkpoint=resume)
        return weights(trainer.model)

    full = run()
    resumed = run(resume=str(tmp_path / "out" / "checkpoint-3"))
    for key, value in full.items():
        assert torch.equal(resumed[key], value), key


def test_lora_trains_the_adapter_and_writes_the_head_into_the_saved_copy(tmp_path, shots, tokenizer, encoder_dir):
    trainer = trainer_for(tmp_path, shots, tokenizer, classifier(encoder_dir), transfer_strategy="lora",
                          adapter_rank=4, max_steps=3)  # fmt: skip
    before = weights(trainer.model)
    trainer.train()
    after = weights(trainer.model)
    changed = {key for key, value in after.items() if not torch.equal(value, before[key])}
    assert changed and all("lora_" in key or "modules_to_save" in key for key in changed)
    assert any("query.lora_A" in key for key in changed)  # PEFT's BERT targets, found through the encoder's type
    head = trainer.model.base_model.model.classifier.modules_to_save["default"]
    features, labels = extract_features(trainer.model, shots[0], trainer.data_collator)
    expected = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels).predict(features)
    assert (torch.tensor(features) @ head.weight.detach().T + head.bias.detach()).argmax(
        -1
    ).tolist() == expected.tolist()


def test_bad_inputs_are_refused_before_training(tmp_path, shots, tokenizer, encoder_dir):
    with pytest.raises(ValueError, match="fitted when training ends"):
        few_shot_config(tmp_path, eval_strategy="steps", eval_steps=1)
    with pytest.raises(ValueError, match="set `pseudo_label_threshold`"):
        trainer_for(tmp_path, shots, tokenizer, classifier(encoder_dir), unlabeled=True)
    with pytest.raises(ValueError, match=r"pseudo-labels the `unlabeled_dataset`"):
        trainer_for(tmp_path, shots, tokenizer, classifier(encoder_dir), pseudo_label_threshold=0.9)
    with pytest.raises(ValueError, match=r"must be in \(0.5, 1\]"):
        few_shot_config(tmp_path, pseudo_label_threshold=0.3)
    one_class = shots[0].filter(lambda row: row["label"] == 1)
    trainer = trainer_for(tmp_path, (one_class, None, shots[2]), tokenizer, classifier(encoder_dir))
    with pytest.raises(ValueError, match=r"no row of class\(es\) \[0\]"):
        trainer.train()
    trainer = trainer_for(tmp_path, (one_class, None, shots[2]), tokenizer, classifier(encoder_dir), head="none")
    with pytest.raises(ValueError, match="at least two classes"):
        trainer.train()
    three_way = SentenceClassifierForSequenceClassification.from_encoder(str(encoder_dir), num_labels=3)
    trainer = trainer_for(tmp_path, shots, tokenizer, three_way, max_steps=1)
    with pytest.raises(ValueError, match=r"no row of class\(es\) \[2\]"):
        trainer.train()
    assert trainer.state.global_step == 0  # refused before the first step
