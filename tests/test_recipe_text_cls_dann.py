import json
import os

import pytest
import yaml
from conftest import load_recipe as load_any_recipe
from conftest import saved_text_model_accuracy


def load_recipe():
    return load_any_recipe("text_cls_dann")


QUICK = [
    "--max_steps",
    "2",
    "--per_device_train_batch_size",
    "8",
    "--max_length",
    "32",
    "--max_train_samples",
    "32",
    "--max_eval_samples",
    "16",
    "--logging_steps",
    "1",
    "--use_cpu",
    "true",
]


def test_main_end_to_end_on_bundled_data(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    metrics = load_recipe().main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK])
    recomputed = saved_text_model_accuracy(out, "amazon:kitchen", "test", rows=16, seed=42, max_length=32)
    assert metrics["eval_target_test_accuracy"] == pytest.approx(recomputed)
    assert {"eval_source_validation_accuracy", "eval_target_test_macro_f1", "train_runtime"} <= set(metrics)
    assert (
        f"target-test accuracy (amazon:books -> amazon:kitchen, adaptation_loss=['dann', 'self_training']): "
        f"{metrics['eval_target_test_accuracy']:.4f}" in capsys.readouterr().out
    )
    assert {"model.safetensors", "config.json", "all_results.json", "README.md", "tokenizer_config.json"} <= set(
        os.listdir(out)
    )
    assert (
        json.loads((out / "all_results.json").read_text())["eval_target_test_accuracy"]
        == metrics["eval_target_test_accuracy"]
    )
    card = (out / "README.md").read_text()
    assert "DANN" in card and "Ganin et al." in card and "Amazon reviews, books" in card
    assert "Self-training" in card and "| dann_max_coefficient | 0.1 |" in card
    assert "| self_training_teacher | initial |" in card
    assert (
        "in two stages: 1 step on the source alone, then 1 step from those weights using DANN + Self-training" in card
    )
    assert "| target_test | Amazon reviews, kitchen (Blitzer et al. 2007, bundled), split test | accuracy |" in card
    assert f"{metrics['eval_target_test_accuracy']:.4f}" in card
    assert str(tmp_path) not in card  # no absolute local path in the card
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}


def test_main_source_only_with_lora_from_a_yaml_file_and_local_files(tmp_path, tiny_model_dir):
    rows = [
        {"review": f"great book {i}" if i % 2 else f"awful book {i}", "stars": "pos" if i % 2 else "neg"}
        for i in range(24)
    ]
    source_file, target_file = tmp_path / "source.jsonl", tmp_path / "target.jsonl"
    source_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    target_file.write_text(
        "".join(json.dumps({**r, "review": r["review"].replace("book", "pan")}) + "\n" for r in rows)
    )
    out = tmp_path / "run"
    config = {
        "model_name_or_path": str(tiny_model_dir),
        "output_dir": str(out),
        "transfer_strategy": "lora",
        "peft_target_modules": ["query", "value"],
        "adaptation_loss": [],
        "source_dataset": str(source_file),
        "target_dataset": str(target_file),
        "text_column": "review",
        "label_column": "stars",
        "max_steps": 2,
        "per_device_train_batch_size": 8,
        "max_length": 16,
        "use_cpu": True,
    }
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config))
    metrics = load_recipe().main([str(config_file)])
    assert "eval_source_validation_accuracy" not in metrics  # a single local file has no validation split
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "all_results.json"} <= set(os.listdir(out))
    card = (out / "README.md").read_text()
    assert "source-only baseline" in card and "LORA" in card
    assert "local files (source.jsonl)" in card and str(tmp_path) not in card


def test_main_reports_a_missing_column_by_name(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match=r"`source_dataset` has no column\(s\) \['review'\].*--text_column"):
        load_recipe().main(
            [
                "--model_name_or_path",
                str(tiny_model_dir),
                "--output_dir",
                str(tmp_path / "x"),
                "--text_column",
                "review",
                *QUICK,
            ]
        )


def test_several_sources_train_together_and_the_card_lists_each(tmp_path, tiny_model_dir, capsys):
    """`--source_dataset amazon:books amazon:dvd amazon:electronics` → kitchen: the three sources train together,
    the held-out source split is every source's, the card and the report name all three."""
    out = tmp_path / "run"
    sources = ["amazon:books", "amazon:dvd", "amazon:electronics"]
    arguments = ["--source_dataset", *sources, "--adaptation_loss", "dann", "--source_only_steps", "0"]
    load_recipe().main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK, *arguments])
    assert "(amazon:books + amazon:dvd + amazon:electronics -> amazon:kitchen" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert "Amazon reviews, books (Blitzer et al. 2007, bundled), split train; Amazon reviews, dvd" in card
    assert "Amazon reviews, electronics (Blitzer et al. 2007, bundled), split validation" in card
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    with pytest.raises(ValueError, match="`target_dataset` 'amazon:kitchen' is also a source"):
        load_recipe().main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "no"),
                            *QUICK, "--source_dataset", "amazon:books", "amazon:kitchen"])  # fmt: skip
