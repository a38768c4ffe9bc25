"""Training that goes wrong stops with a clear message and leaves the last good checkpoint usable."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import load_recipe, tiny_bert
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from hf_transfer import (
    DomainAdaptationConfig,
    DomainAdaptationTrainer,
    NonFiniteLossError,
    TransferConfig,
    TransferTrainer,
)


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
    trainer._compute_adaptation_loss = lambda name, inputs: (
        0.0 * inputs.source.sum() + (torch.inf if name == "coral" else 0.0),
        {},
    )
    with pytest.raises(NonFiniteLossError, match=r"The coral loss is inf at step 1") as error:
        trainer.train()
    assert "`adaptation_loss_weights`[1] = 1.0" in str(error.value)


def test_plain_fine_tuning_is_guarded_too(tmp_path, text_domains, tokenizer):
    source, _, _ = text_domains
    args = TransferConfig(**settings(tmp_path, learning_rate=1e8, max_grad_norm=0.0))
    trainer = TransferTrainer(model=tiny_bert(), args=args, train_dataset=source, processing_class=tokenizer)
    with pytest.raises(NonFiniteLossError, match=r"gradients at step \d+ are not finite .*loss nan"):
        trainer.train()


RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "text_cls_dann.py"


def recipe_command(tiny_model_dir, output_dir, *extra):
    arguments = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(output_dir)]
    arguments += ["--adaptation_loss", "dann", "mmd", "--max_steps", "30", "--save_strategy", "steps"]
    arguments += ["--save_steps", "5", "--per_device_train_batch_size", "8", "--max_length", "32"]
    arguments += ["--max_train_samples", "64", "--max_eval_samples", "16", "--logging_steps", "1"]
    arguments += ["--use_cpu", "true", "--report_to", "none"]
    return [sys.executable, str(RECIPE), *arguments, *extra]


RECIPE_ENV = {**os.environ, "HF_TRANSFER_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_weights(tmp_path, tiny_model_dir):
    """The recipe is killed (SIGKILL, no clean-up) after its step-10 checkpoint, resumed with
    `--resume_from_checkpoint last`, and ends bitwise equal to an uninterrupted run: model, discriminator, λ (across
    the boundary of the recipe's two stages, at step 15)."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(recipe_command(tiny_model_dir, full), env=RECIPE_ENV, check=True, capture_output=True)

    process = subprocess.Popen(
        recipe_command(tiny_model_dir, killed), env=RECIPE_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not (killed / "checkpoint-10" / "trainer_state.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its step-10 checkpoint"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (killed / "all_results.json").exists() and not (killed / "checkpoint-30").exists()  # cut off mid-run
    # what a kill during a save leaves: a checkpoint folder without its trainer state; "last" must skip it
    (killed / "checkpoint-1000").mkdir()
    (killed / "checkpoint-1000" / "config.json").write_text("{}")

    resumed = subprocess.run(
        recipe_command(tiny_model_dir, killed, "--resume_from_checkpoint", "last"),
        env=RECIPE_ENV,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Skipping" in resumed.stderr and "checkpoint-1000" in resumed.stderr

    compared = ["model.safetensors", "checkpoint-30/model.safetensors"]
    compared.append("checkpoint-30/domain_discriminator.safetensors")
    for name in compared:
        expected, actual = load_file(full / name), load_file(killed / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{name}: {key}"

    def lambdas(run):
        state = json.loads((run / "trainer_state.json").read_text())
        return [(e["step"], e["dann/lambda"]) for e in state["log_history"] if "dann/lambda" in e]

    # the recipe's two stages: 15 source-only steps (the kill was in stage 1), then 15 adapting (λ logged)
    assert lambdas(killed) == lambdas(full) and [step for step, _ in lambdas(full)] == list(range(16, 31))
    full_results = json.loads((full / "all_results.json").read_text())
    resumed_results = json.loads((killed / "all_results.json").read_text())
    assert resumed_results["eval_target_test_accuracy"] == full_results["eval_target_test_accuracy"]


def test_resuming_from_a_checkpoint_cut_off_while_saving_is_refused_with_the_complete_ones(tmp_path, tiny_model_dir):
    output_dir = tmp_path / "run"
    (output_dir / "checkpoint-5").mkdir(parents=True)
    (output_dir / "checkpoint-5" / "trainer_state.json").write_text('{"global_step": 5')  # cut off mid-write
    arguments = recipe_command(tiny_model_dir, output_dir)[2:]  # without python and the recipe's path
    with pytest.raises(ValueError, match=r"checkpoint-5'.* no readable trainer_state.json.*none in that folder"):
        load_recipe("text_cls_dann").main(arguments + ["--resume_from_checkpoint", str(output_dir / "checkpoint-5")])
    with pytest.raises(ValueError, match=r"`resume_from_checkpoint`='last', but `output_dir` .* no complete"):
        load_recipe("text_cls_dann").main(arguments + ["--resume_from_checkpoint", "last"])
