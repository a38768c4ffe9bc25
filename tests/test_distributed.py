"""Two processes on the CPU (torchrun + gloo): batches, discriminator sync and identical final weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from conftest import (
    NEGATIVE,
    POSITIVE,
    SOURCE_TOPIC,
    SPECIAL,
    TARGET_TOPIC,
    make_reviews,
    saved_text_model_accuracy,
    tokenize,
)
from transformers import BertTokenizer

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"


def run_two_processes(tmp_path, mode: str) -> subprocess.CompletedProcess:
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(SPECIAL + POSITIVE + NEGATIVE + SOURCE_TOPIC + TARGET_TOPIC) + "\n")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER)]
    result = subprocess.run(
        [*command, str(tmp_path / "out"), str(vocab_file), mode], env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert "rank 0: OK" in result.stdout and "rank 1: OK" in result.stdout
    return result


@pytest.mark.parametrize("mode", ["dann_mmd", "progressive_unfreezing"])
def test_two_process_training_keeps_model_and_discriminator_identical_across_ranks(tmp_path, mode):
    run_two_processes(tmp_path, mode)


def test_two_processes_compute_the_losses_and_gradients_of_the_global_batch(tmp_path):
    """MMD, CORAL, IM, MCC, CDAN(+E) and self-training are gathered over processes (with gradients), WDGRL's critic
    steps on the gathered batch, DANN, WDGRL's W and the task loss are per-row means: 2 processes × 8 rows give the
    losses and the SGD step (critic and discriminators included) of 1 process × 16 rows on the same rows."""
    from distributed_worker import NEW_LOSSES, OLD_LOSSES, global_batch_step

    run_two_processes(tmp_path, "global_batch")
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    source = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 64, seed=0)), tokenizer)
    target = tokenize(datasets.Dataset.from_dict({"text": make_reviews(TARGET_TOPIC, 32, seed=1)["text"]}), tokenizer)
    for name, losses in (("old", OLD_LOSSES), ("new", NEW_LOSSES)):
        two = torch.load(tmp_path / "out" / f"two_processes_{name}.pt")
        one_losses, one_weights = global_batch_step(str(tmp_path / name), tokenizer, source, target, 16, losses=losses)
        assert set(two["losses"]) == set(one_losses) == {"loss", "loss/task", *(f"loss/{n}" for n in losses)}
        for key, value in one_losses.items():
            assert two["losses"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        assert set(two["weights"]) == set(one_weights)
        for key, weight in one_weights.items():
            torch.testing.assert_close(two["weights"][key], weight, rtol=1e-4, atol=1e-6, msg=key)


def test_two_processes_learn_continually_as_one_process_with_the_global_batch(tmp_path):
    """EWC + replay + LwF on 2 processes × 4 rows give the accuracy matrix, the losses and the weights of 1 process
    × 8 rows: the same new and memory rows per step, the Fisher of the same global batches, the same LwF targets."""
    from distributed_worker import continual_run

    run_two_processes(tmp_path, "continual")
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    two = torch.load(tmp_path / "out" / "two_processes_continual.pt")
    matrix, losses, weights = continual_run(str(tmp_path / "one"), tokenizer, 8)
    assert two["matrix"] == matrix and len(matrix) == 3
    assert len(two["losses"]) == len(losses) == 6 and {"loss/ewc", "loss/lwf"} <= set(losses[-1])
    for theirs, ours in zip(two["losses"], losses):
        assert set(theirs) == set(ours)
        for key, value in ours.items():
            assert theirs[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for key, weight in weights.items():
        torch.testing.assert_close(two["weights"][key], weight, rtol=1e-4, atol=1e-6, msg=key)


def test_two_processes_distil_as_one_process_with_the_global_batch(tmp_path):
    """Distillation on 2 processes × (4 labeled + 4 unlabeled) rows takes the SGD step of 1 process × (8 + 8): the
    per-process means average to the global batch's, and the projection's gradients are averaged too."""
    from distributed_worker import distillation_step

    run_two_processes(tmp_path, "distillation")
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    labeled = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 64, seed=0)), tokenizer)
    unlabeled = tokenize(
        datasets.Dataset.from_dict({"text": make_reviews(TARGET_TOPIC, 32, seed=1)["text"]}), tokenizer
    )
    two = torch.load(tmp_path / "out" / "two_processes_distillation.pt")
    one_losses, one_weights = distillation_step(str(tmp_path / "one"), tokenizer, labeled, unlabeled, 16)
    assert set(two["losses"]) == set(one_losses) == {"loss", "loss/hard", "loss/soft", "loss/hidden_states"}
    for key, value in one_losses.items():
        assert two["losses"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert any(key.startswith("projection.") for key in one_weights)
    for key, weight in one_weights.items():
        torch.testing.assert_close(two["weights"][key], weight, rtol=1e-4, atol=1e-6, msg=key)


def test_two_processes_train_few_shot_as_one_process_with_the_global_batch_of_pairs(tmp_path):
    """The contrastive stage on 2 processes × 8 pairs takes the SGD step of 1 process × 16 pairs (the pairs are the
    same: the batch order depends on the seed only), and both fit the same logistic-regression head."""
    from distributed_worker import few_shot_step

    run_two_processes(tmp_path, "few_shot")
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    labeled = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 64, seed=0)), tokenizer)
    two = torch.load(tmp_path / "out" / "two_processes_few_shot.pt")
    one_losses, one_weights = few_shot_step(str(tmp_path / "one"), tokenizer, labeled, 16)
    assert set(two["losses"]) == set(one_losses) == {"loss", "loss/contrastive"}
    for key, value in one_losses.items():
        assert two["losses"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for key, weight in one_weights.items():
        torch.testing.assert_close(two["weights"][key], weight, rtol=1e-4, atol=1e-5, msg=key)


def test_two_processes_split_the_tasks_of_a_meta_batch_and_take_the_one_process_step(tmp_path):
    """Second-order MAML, 3 tasks per meta-batch split 2 + 1 between the processes, dropout on: the losses and the
    weights after 2 steps equal those of 1 process holding all the tasks."""
    from distributed_worker import meta_learning_rows, meta_learning_step

    run_two_processes(tmp_path, "meta_learning")
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    two = torch.load(tmp_path / "out" / "two_processes_meta_learning.pt")
    one_losses, one_weights = meta_learning_step(str(tmp_path / "one"), tokenizer, meta_learning_rows(tokenizer))
    assert len(one_losses) == 2 and set(one_losses[0]) == {"loss", "loss/query"}
    for one, two_entry in zip(one_losses, two["losses"]):
        for key, value in one.items():
            assert two_entry[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    for key, weight in one_weights.items():
        torch.testing.assert_close(two["weights"][key], weight, rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.parametrize("engine, attribute", [("FSDP", "is_fsdp_enabled"), ("DeepSpeed", "is_deepspeed_enabled")])
def test_dann_is_refused_at_start_up_under_fsdp_and_deepspeed(tmp_path, text_domains, tokenizer, engine, attribute):
    """FSDP and DeepSpeed need GPUs, so the Trainer's own flag is set as launching with their config would."""
    from conftest import tiny_bert

    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer

    class LaunchedWithEngine(DomainAdaptationTrainer):
        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            setattr(self, attribute, True)

    source, target, _ = text_domains

    def build(losses):
        args = DomainAdaptationConfig(output_dir=str(tmp_path), adaptation_loss=losses, use_cpu=True, report_to="none")
        return LaunchedWithEngine(
            model=tiny_bert(), args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
        )

    with pytest.raises(ValueError, match=rf"'dann'.* {engine} does not support\. .*mmd, coral, im or mcc"):
        build(["dann", "mmd"])
    assert build(["mmd", "coral"]).domain_discriminator is None  # losses without parameters of their own are fine


def test_the_recipe_trains_on_two_processes_and_saves_once(tmp_path, tiny_model_dir):
    """`torchrun --nproc_per_node 2 recipes/text_cls_dann.py` on the CPU (gloo): the launch users run on 2 GPUs, with
    the recipe's two stages (2 source-only steps, then 2 adapting) and the guard (decided once, on rank 0)."""
    import json

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "text_cls_dann.py"
    out = tmp_path / "run"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(recipe)]
    command += ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), "--adaptation_loss", "dann"]
    command += ["mmd", "--max_steps", "4", "--per_device_train_batch_size", "8", "--max_length", "32"]
    command += ["--max_train_samples", "64", "--max_eval_samples", "16", "--logging_steps", "1", "--use_cpu", "true"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"

    assert result.stdout.count("target-test accuracy (amazon:books -> amazon:kitchen") == 1  # printed by rank 0
    assert result.stdout.count("target-test accuracy: stage 1 (source-only)") == 1
    assert {"model.safetensors", "config.json", "all_results.json", "README.md", "hf_transfer_run.json"} <= set(
        os.listdir(out)
    )
    assert {"stage1", "negative_transfer_guard.json"} <= set(os.listdir(out))
    assert not list(out.glob("*rank*")) and not list(out.glob("checkpoint-*"))
    state = json.loads((out / "trainer_state.json").read_text())
    logged = [entry for entry in state["log_history"] if "loss/mmd" in entry]
    assert [e["step"] for e in logged] == [3, 4] and all("loss/dann" in entry for entry in logged)
    assert "world_size (processes) | 2 |" in (out / "README.md").read_text()
    results = json.loads((out / "all_results.json").read_text())
    recomputed = saved_text_model_accuracy(out, "amazon:kitchen", "test", rows=16, seed=42, max_length=32)
    assert results["eval_target_test_accuracy"] == pytest.approx(recomputed)  # evaluated on all rows, once each


def test_the_image_recipe_adapts_on_two_processes_with_selection_and_diagnostics(tmp_path):
    """`torchrun --nproc_per_node 2 recipes/image_cls_dann.py`: set_transform'ed digits, a ResNet with BatchNorm,
    the label-free selection callback on both ranks (it evaluates collectively) and the diagnostics on rank 0."""
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "image_cls_dann.py"
    out = tmp_path / "run"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(recipe)]
    command += ["--output_dir", str(out), "--adaptation_loss", "dann", "mmd", "--max_steps", "4"]
    command += ["--per_device_train_batch_size", "8", "--max_train_samples", "64", "--max_eval_samples", "32"]
    command += ["--image_size", "16", "--eval_strategy", "steps", "--eval_steps", "2", "--label_free_selection", "true"]
    command += ["--selection_target_rows", "32", "--transfer_diagnostics", "true", "--diagnostics_rows", "32"]
    command += ["--logging_steps", "1", "--use_cpu", "true"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert {"model.safetensors", "README.md", "transfer_diagnostics.json", "transfer_diagnostics.png"} <= set(
        os.listdir(out)
    )
    state = json.loads((out / "trainer_state.json").read_text())
    selections = [e for e in state["log_history"] if "eval_selection_dev" in e]
    assert [e["step"] for e in selections] == [2, 4]  # once per evaluation, not once per rank
    assert all(len([k for k in e if k.startswith("eval_selection_")]) == 6 for e in selections)
    assert len([e for e in state["log_history"] if "loss/mmd" in e]) == 4
    from safetensors.torch import load_file

    weights = load_file(out / "model.safetensors")
    assert any("running_mean" in key for key in weights) and all(torch.isfinite(v).all() for v in weights.values())
