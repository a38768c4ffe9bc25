"""Training that goes wrong stops with a clear message and leaves the last good checkpoint usable."""

import pytest
import torch
from conftest import tiny_bert
from transformers import AutoModelForSequenceClassification

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, NonFiniteLossError, TransferTrainer
from hf_transfer.transfer_config import TransferConfig


def settings(tmp_path, **kwargs):
    return (
        dict(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=8,
            max_steps=6,
            logging_steps=1,
            report_to="none",
            save_strategy="steps",
            save_steps=1,
            use_cpu=True,
            seed=0,
            disable_tqdm=True,
        )
        | kwargs
    )


def test_a_too_large_adversarial_weight_stops_before_the_step_with_the_remedy(tmp_path, text_domains, tokenizer):
    source, target, _ = text_domains
    args = DomainAdaptationConfig(
        **settings(tmp_path, adaptation_loss=["dann"], adaptation_loss_weights=[1e30], dann_schedule="constant")
    )
    model = tiny_bert()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = DomainAdaptationTrainer(
        model=model, args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
    )
    with pytest.raises(NonFiniteLossError, match=r"gradients at step 1 are not finite") as error:
        trainer.train()
    assert "adaptation_loss_weights" in str(error.value) and "1e+30" in str(error.value)
    assert "learning_rate" in str(error.value) and "resume_from_checkpoint" in str(error.value)
    # nothing was applied: the weights are the initial ones, and no checkpoint was written
    assert all(torch.equal(p, before[n]) for n, p in trainer.model.named_parameters())
    assert not list((tmp_path / "out").glob("checkpoint-*"))


def test_a_nan_loss_names_the_loss_and_the_last_checkpoint_stays_loadable(tmp_path, text_domains, tokenizer):
    source, target, target_test = text_domains
    args = DomainAdaptationConfig(**settings(tmp_path, adaptation_loss=["mmd"], learning_rate=1e8, max_grad_norm=0.0))
    trainer = DomainAdaptationTrainer(
        model=tiny_bert(), args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
    )
    with pytest.raises(NonFiniteLossError, match=r"The task loss is nan at step 2") as error:
        trainer.train()
    assert "learning_rate" in str(error.value)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["checkpoint-1"]
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "checkpoint-1")
    assert all(torch.isfinite(p).all() for p in reloaded.parameters())
    # the checkpoint holds the weights after step 1, the last step that was applied
    for name, weight in reloaded.state_dict().items():
        torch.testing.assert_close(weight, trainer.model.state_dict()[name], rtol=0, atol=0)


def test_an_alignment_loss_that_is_not_finite_is_named_with_its_weight(tmp_path, text_domains, tokenizer):
    source, target, _ = text_domains
    args = DomainAdaptationConfig(**settings(tmp_path, adaptation_loss=["dann", "coral"]))
    trainer = DomainAdaptationTrainer(
        model=tiny_bert(), args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
    )
    # a stand-in for a CORAL that overflows: inf from the first step, DANN harmless
    trainer._alignment_loss = lambda name, source, target: 0.0 * source.sum() + (torch.inf if name == "coral" else 0.0)
    with pytest.raises(NonFiniteLossError, match=r"The coral loss is inf at step 1") as error:
        trainer.train()
    assert "`adaptation_loss_weights`[1] = 1.0" in str(error.value)


def test_plain_fine_tuning_is_guarded_too(tmp_path, text_domains, tokenizer):
    source, _, _ = text_domains
    args = TransferConfig(**settings(tmp_path, learning_rate=1e8, max_grad_norm=0.0))
    trainer = TransferTrainer(model=tiny_bert(), args=args, train_dataset=source, processing_class=tokenizer)
    with pytest.raises(NonFiniteLossError, match=r"gradients at step \d+ are not finite .*loss nan"):
        trainer.train()
