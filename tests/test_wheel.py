"""The built wheel (a non-editable install) carries everything cards and data need: template, metrics, data."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    import datasets
    import hf_transfer
    from transformers import BertConfig, BertForSequenceClassification
    from hf_transfer import TransferConfig, TransferTrainer, load_amazon_reviews, load_digits, load_metric

    assert hf_transfer.__file__.startswith(sys.argv[1]), hf_transfer.__file__  # imported from the wheel
    assert len(load_amazon_reviews("books", "validation")) == 400 and len(load_digits("usps", "test")) == 2007
    assert load_metric("macro_f1").compute(predictions=[0, 1], references=[0, 1])["macro_f1"] == 1.0
    config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    rows = datasets.Dataset.from_dict({"input_ids": [[2, 5, 3]] * 4, "label": [0, 1, 0, 1]})
    args = TransferConfig(output_dir=sys.argv[2], max_steps=1, per_device_train_batch_size=4, report_to="none")
    trainer = TransferTrainer(model=BertForSequenceClassification(config), args=args, train_dataset=rows)
    trainer.train()
    trainer.create_model_card()
    print(open(sys.argv[2] + "/README.md").read())
    """
)


def test_a_wheel_install_renders_model_cards_and_serves_the_bundled_data(tmp_path):
    wheels, site, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # build from a copy of the tracked files: no stale build/ folder, no untracked files can reach the wheel
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("hf_transfer_learning-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(site), str(tmp_path / "run")],
        cwd=tmp_path,  # not the checkout: nothing can come from the source tree
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    card = result.stdout
    assert "library_name: transformers" in card and "trained with\n[hf_transfer]" in card
    assert "full fine-tuning (all parameters trained)" in card and "## Framework versions" in card
