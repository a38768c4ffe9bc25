"""Two processes on the CPU (torchrun + gloo): batches, discriminator sync and identical final weights."""

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from conftest import NEGATIVE, POSITIVE, SOURCE_TOPIC, SPECIAL, TARGET_TOPIC, make_reviews, tokenize
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
    """MMD, CORAL and IM are gathered over processes (with gradients), DANN and the task loss are per-row means:
    2 processes × 8 rows give the losses and the SGD step of 1 process × 16 rows on the same rows."""
    from distributed_worker import global_batch_step

    run_two_processes(tmp_path, "global_batch")
    two = torch.load(tmp_path / "out" / "two_processes.pt")
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    source = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 64, seed=0)), tokenizer)
    target = tokenize(datasets.Dataset.from_dict({"text": make_reviews(TARGET_TOPIC, 32, seed=1)["text"]}), tokenizer)
    one_losses, one_weights = global_batch_step(
        str(tmp_path / "one"), tokenizer, source, target, per_device_train_batch_size=16
    )

    assert (
        set(two["losses"]) == set(one_losses) == {"loss", "loss/task", "loss/dann", "loss/mmd", "loss/coral", "loss/im"}
    )
    for name, value in one_losses.items():
        assert two["losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert set(two["weights"]) == set(one_weights)
    for name, weight in one_weights.items():
        torch.testing.assert_close(two["weights"][name], weight, rtol=1e-4, atol=1e-6, msg=name)
