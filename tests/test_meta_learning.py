"""Meta-learning: MAML (second order), first-order MAML and Reptile against hand-written references on a tiny linear
classifier, episodes (K per class, determinism), and the MetaLearningTrainer (its update equals the algorithm's
mean meta-gradient, LoRA adapts only what trains, exact resume, bad inputs, card)."""

import datasets
import numpy as np
import pytest
import torch
from conftest import SOURCE_TOPIC, TARGET_TOPIC, make_reviews, tiny_bert, tokenize
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import DataCollatorWithPadding

from hf_transfer import MetaLearningConfig, MetaLearningTrainer
from hf_transfer.meta_learning import EpisodeDataset, maml_gradients, reptile_gradients
from hf_transfer.meta_learning.episodes import collate_episode

# ---- the algorithms against hand-written references -----------------------------------------------------------


class LinearClassifier(nn.Module):
    """logits = x W^T + b; the loss is the cross-entropy (what a transformers classifier returns)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.classifier = nn.Linear(3, 2)

    def forward(self, x, labels):
        logits = self.classifier(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def _loss(weight, bias, batch):
    return nn.functional.cross_entropy(batch["x"] @ weight.T + bias, batch["labels"])


@pytest.fixture
def task():
    generator = torch.Generator().manual_seed(1)
    support = {"x": torch.randn(6, 3, generator=generator), "labels": torch.tensor([0, 1, 0, 1, 0, 1])}
    query = {"x": torch.randn(4, 3, generator=generator), "labels": torch.tensor([1, 0, 1, 0])}
    return support, query


def test_second_order_maml_differentiates_through_two_inner_steps(task):
    support, query = task
    model = LinearClassifier()
    params = dict(model.named_parameters())
    loss, grads = maml_gradients(model, params, support, query, learning_rate=0.5, steps=2, first_order=False)
    # by hand: w2(w0) = two SGD steps on the support loss, kept differentiable; the gradient of the query loss at w2
    w0, b0 = (
        model.classifier.weight.detach().clone().requires_grad_(),
        model.classifier.bias.detach().clone().requires_grad_(),
    )
    w, b = w0, b0
    for _ in range(2):
        gw, gb = torch.autograd.grad(_loss(w, b, support), (w, b), create_graph=True)
        w, b = w - 0.5 * gw, b - 0.5 * gb
    expected_loss = _loss(w, b, query)
    expected = torch.autograd.grad(expected_loss, (w0, b0))
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    # first order treats the inner gradients as constants: the query gradient at w2, which differs here
    _, first = maml_gradients(model, params, support, query, learning_rate=0.5, steps=2, first_order=True)
    w2, b2 = w.detach().requires_grad_(), b.detach().requires_grad_()
    for got, want in zip(first, torch.autograd.grad(_loss(w2, b2, query), (w2, b2))):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(first[0], grads[0], atol=1e-4)


def test_reptile_is_the_initial_minus_the_adapted_weights(task):
    support, query = task
    model = LinearClassifier()
    params = dict(model.named_parameters())
    _, deltas = reptile_gradients(model, params, [support, query], learning_rate=0.3, steps=3)
    w, b = model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone()
    for batch in (support, query, support):  # the steps cycle through the task's batches
        w, b = w.requires_grad_(), b.requires_grad_()
        gw, gb = torch.autograd.grad(_loss(w, b, batch), (w, b))
        w, b = (w - 0.3 * gw).detach(), (b - 0.3 * gb).detach()
    torch.testing.assert_close(deltas[0], model.classifier.weight.detach() - w)
    torch.testing.assert_close(deltas[1], model.classifier.bias.detach() - b)
    assert all(p.grad is None for p in model.parameters())  # the model's own weights untouched


# ---- episodes --------------------------------------------------------------------------------------------------


@pytest.fixture
def domains(tokenizer):
    """Rows of three domains (tasks), 16 of each class per domain, tokenized, with a `domain` column."""
    parts = []
    for seed, (name, topic) in enumerate(
        (("books", SOURCE_TOPIC), ("kitchen", TARGET_TOPIC), ("mixed", SOURCE_TOPIC[:3] + TARGET_TOPIC[:3]))
    ):
        data = make_reviews(topic, 32, seed=seed)
        parts.append(datasets.Dataset.from_dict({**data, "domain": [name] * 32}))
    return tokenize(datasets.concatenate_datasets(parts), tokenizer)


def test_episodes_hold_k_rows_per_class_of_one_task_and_depend_only_on_seed_and_index(domains):
    rows = domains.remove_columns(["domain", "text"])

    def make(seed):
        return EpisodeDataset(rows, domains["domain"], domains["label"], 3, 2, 4, num_meta_batches=5, seed=seed)

    episodes = make(0)
    assert len(episodes) == 5
    meta_batch = episodes[2]
    assert len(meta_batch) == 4
    for task in meta_batch:
        support, query = task["support"], task["query"]
        assert sorted(r["label"] for r in support) == [0, 0, 0, 1, 1, 1] and len(query) == 4
        ids = {tuple(r["input_ids"]) for r in support + query}
        task_rows = {tuple(r["input_ids"]) for r, d in zip(rows, domains["domain"]) if d == task["task"]}
        assert ids <= task_rows  # every row of the task's own domain
    assert [t["support"] for t in make(0)[2]] == [t["support"] for t in meta_batch]
    assert [t["support"] for t in make(1)[2]] != [t["support"] for t in meta_batch]
    with pytest.raises(ValueError, match="No task has 40 rows"):
        EpisodeDataset(rows, domains["domain"], domains["label"], 20, 20, 4, num_meta_batches=5, seed=0)


# ---- the trainer -----------------------------------------------------------------------------------------------


def meta_config(tmp_path, **kwargs):
    defaults = dict(output_dir=str(tmp_path / "out"), max_steps=2, support_shots=2, query_shots=2,
                    tasks_per_meta_batch=3, inner_learning_rate=0.1, learning_rate=1e-3, logging_steps=1,
                    report_to="none", save_strategy="no", use_cpu=True, seed=0)  # fmt: skip
    return MetaLearningConfig(**{**defaults, **kwargs})


def trainer_for(tmp_path, domains, tokenizer, model=None, **kwargs):
    return MetaLearningTrainer(model=model if model is not None else tiny_bert(), args=meta_config(tmp_path, **kwargs),
                               train_dataset=domains.remove_columns("text"), processing_class=tokenizer)  # fmt: skip


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "reptile"])
def test_one_meta_step_applies_the_mean_meta_gradient_of_the_meta_batch(tmp_path, domains, tokenizer, algorithm):
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = tiny_bert(seed=3, **no_dropout)
    reference = tiny_bert(seed=3, **no_dropout)
    trainer = trainer_for(tmp_path, domains, tokenizer, model, meta_algorithm=algorithm, max_steps=1, optim="sgd",
                          learning_rate=1.0, max_grad_norm=0.0, lr_scheduler_type="constant",
                          inner_steps=2)  # fmt: skip
    trainer.train()
    # the same meta-batch, by hand: the mean of the tasks' meta-gradients, one SGD step of learning rate 1
    rows = domains.remove_columns(["text", "domain"])
    episode = EpisodeDataset(rows, domains["domain"], domains["label"], 2, 2, 3, num_meta_batches=1, seed=0)[0]
    tasks = collate_episode(DataCollatorWithPadding(tokenizer))([episode])["tasks"]
    params = {n: p for n, p in reference.named_parameters()}
    reference.train()
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for task in tasks:
        with sdpa_kernel([SDPBackend.MATH]):  # second order through attention: the math kernel
            grads = _task_gradients(reference, params, task, algorithm)
        for name, grad in zip(params, grads):
            if grad is not None:
                total[name] += grad / len(tasks)
    after = dict(trainer.model.named_parameters())
    for name, param in params.items():
        torch.testing.assert_close(after[name].detach(), (param - total[name]).detach(), rtol=1e-4, atol=1e-6,
                                   msg=name)  # fmt: skip
    logged = [e for e in trainer.state.log_history if "loss" in e and "train_runtime" not in e]
    assert len(logged) == 1 and logged[0]["loss"] > 0


def _task_gradients(model, params, task, algorithm):
    if algorithm == "reptile":
        return reptile_gradients(model, params, [task["support"], task["query"]], 0.1, 2)[1]
    return maml_gradients(model, params, task["support"], task["query"], 0.1, 2, algorithm == "fomaml")[1]


def test_lora_adapts_only_the_adapter_and_the_head(tmp_path, domains, tokenizer):
    trainer = trainer_for(tmp_path, domains, tokenizer, transfer_strategy="lora", adapter_rank=2)
    before = weights(trainer.model)
    trainer.train()
    changed = {k for k, v in weights(trainer.model).items() if not torch.equal(v, before[k])}
    assert changed and all("lora_" in k or "modules_to_save" in k for k in changed)


def test_resume_mid_meta_training_is_exact(tmp_path, domains, tokenizer):
    def run(resume=None):
        trainer = trainer_for(
            tmp_path, domains, tokenizer, tiny_bert(seed=1), max_steps=4, save_strategy="steps", save_steps=2
        )  # fmt: skip (dropout on: the masks are seeded per step and task)
        trainer.train(resume_from_checkpoint=resume)
        return weights(trainer.model)

    full = run()
    resumed = run(str(tmp_path / "out" / "checkpoint-2"))
    for key, value in full.items():
        assert torch.equal(resumed[key], value), key


def test_the_card_and_bad_inputs(tmp_path, domains, tokenizer):
    trainer = trainer_for(tmp_path, domains, tokenizer, meta_algorithm="maml")
    trainer.train()
    trainer.save_model()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "MAML" in card and "Finn et al., ICML 2017" in card and "| inner_learning_rate | 0.1 |" in card
    with pytest.raises(ValueError, match="counted in meta-batches"):
        meta_config(tmp_path, max_steps=-1)
    with pytest.raises(ValueError, match="gradient_accumulation_steps` must be 1"):
        meta_config(tmp_path, gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="meta_algorithm"):
        meta_config(tmp_path, meta_algorithm="protonet")
    trainer = trainer_for(tmp_path, domains.rename_column("domain", "source"), tokenizer)
    with pytest.raises(ValueError, match="no task column 'domain'"):
        trainer.train()
    trainer = trainer_for(tmp_path, domains, tokenizer, support_shots=10, query_shots=10)
    with pytest.raises(ValueError, match="No task has 20 rows"):
        trainer.train()
    assert np.isfinite(trainer.state.global_step) and trainer.state.global_step == 0
