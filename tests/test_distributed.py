"""Two processes on the CPU (torchrun + gloo): batches, discriminator sync and identical final weights."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NEGATIVE, POSITIVE, SOURCE_TOPIC, SPECIAL, TARGET_TOPIC

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"


@pytest.mark.parametrize("mode", ["dann_mmd", "progressive_unfreezing"])
def test_two_process_training_keeps_model_and_discriminator_identical_across_ranks(tmp_path, mode):
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(SPECIAL + POSITIVE + NEGATIVE + SOURCE_TOPIC + TARGET_TOPIC) + "\n")
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(WORKER),
            str(tmp_path / "out"),
            str(vocab_file),
            mode,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert "rank 0: OK" in result.stdout and "rank 1: OK" in result.stdout
