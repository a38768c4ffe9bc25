"""`recipes/text_cls_distill.py` end to end on the bundled data with a tiny model: the teacher trained and saved,
the student built from it, the card and the summary naming both, the teacher reused by a restarted run."""

import json
import os

import pytest
from conftest import load_recipe, saved_text_model_accuracy

QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_length", "32", "--max_train_samples", "32",
         "--max_eval_samples", "16", "--logging_steps", "1", "--use_cpu", "true", "--teacher_max_steps", "2",
         "--teacher_batch_size", "8", "--student_num_layers", "1"]  # fmt: skip


def test_main_trains_a_teacher_then_distils_a_student_built_from_it(tmp_path, tiny_model_dir, capsys, caplog):
    out = tmp_path / "run"
    recipe = load_recipe("text_cls_distill")
    metrics = recipe.main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK])
    recomputed = saved_text_model_accuracy(out, "amazon:kitchen", "test", rows=16, seed=42, max_length=32)
    assert metrics["eval_target_test_accuracy"] == pytest.approx(recomputed)
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and config["hf_transfer_student"]["layers"] == [0]
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    teacher = json.loads((out / "teacher" / "config.json").read_text())
    assert teacher["num_hidden_layers"] == 2 and (out / "teacher" / "hf_transfer_teacher.json").is_file()
    summary = json.loads((out / "hf_transfer_run.json").read_text())
    teacher_accuracy = summary["teacher"]["results"]["eval_target_test_accuracy"]
    assert summary["teacher"]["student_layers"] == [0]
    assert summary["teacher"]["student_parameters"] < summary["teacher"]["teacher_parameters"]
    printed = capsys.readouterr().out
    assert f"target_test_accuracy: teacher {teacher_accuracy:.4f} | student {recomputed:.4f}" in printed
    card = (out / "README.md").read_text()
    assert "## Teacher" in card and "keeping its layers [0]" in card and "fine-tuned on Amazon reviews, books" in card
    assert "| alpha | 0.5 |" in card and "| unlabeled_batch_fraction | 0.5 |" in card
    assert str(tmp_path) not in card
    assert not any(name.startswith("teacher") for name in json.loads((out / "config.json").read_text()))
    # started again in the same output_dir: the teacher is reused, not trained again
    before = os.path.getmtime(out / "teacher" / "model.safetensors")
    caplog.set_level("INFO")
    recipe.main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK])
    assert os.path.getmtime(out / "teacher" / "model.safetensors") == before
    assert "Reusing the teacher this run trained before" in caplog.text


def test_main_with_a_given_teacher_and_no_unlabeled_data(tmp_path, tiny_model_dir):
    first = tmp_path / "first"
    recipe = load_recipe("text_cls_distill")
    recipe.main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(first), *QUICK])
    out = tmp_path / "run"
    metrics = recipe.main(["--teacher_model_name_or_path", str(first / "teacher"), "--output_dir", str(out),
                           "--target_dataset", "none", "--target_test_dataset", "amazon:kitchen", *QUICK])  # fmt: skip
    assert "eval_target_test_accuracy" in metrics and not (out / "teacher").exists()
    card = (out / "README.md").read_text()
    assert "unlabeled_batch_fraction" not in card and "local files (teacher)" in card


def test_a_teacher_with_other_labels_is_refused_before_training(tmp_path, tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(
        tiny_model_dir, num_labels=2, id2label={0: "positive", 1: "negative"}, label2id={"positive": 0, "negative": 1}
    )
    teacher.save_pretrained(tmp_path / "teacher")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "teacher" / name).write_text((tiny_model_dir / name).read_text())
    with pytest.raises(ValueError, match=r"predicts the classes \['positive', 'negative'\]"):
        load_recipe("text_cls_distill").main(
            ["--teacher_model_name_or_path", str(tmp_path / "teacher"), "--output_dir", str(tmp_path / "run"), *QUICK]
        )
    assert not (tmp_path / "run").exists()


QUICK_IMAGES = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16",
                "--max_train_samples", "32", "--max_eval_samples", "16", "--max_target_samples", "32", "--use_cpu",
                "true", "--logging_steps", "1", "--teacher_max_steps", "2", "--teacher_batch_size", "8",
                "--image_size", "16"]  # fmt: skip


@pytest.mark.parametrize("model_type, student_layers, kept", [("resnet", None, [[0], [0], [0], [0]]),
                                                              ("vit", "4", [0, 2, 5, 7])])  # fmt: skip
def test_image_recipe_trains_a_deeper_teacher_and_distils_a_student_built_from_it(tmp_path, model_type,
                                                                                   student_layers, kept):  # fmt: skip
    out = tmp_path / "run"
    argv = ["--model_type", model_type, "--output_dir", str(out), *QUICK_IMAGES, "--hidden_state_loss", "mse"]
    metrics = load_recipe("image_cls_distill").main(
        argv + (["--student_num_layers", student_layers] if student_layers else [])
    )
    assert {"eval_source_test_accuracy", "eval_target_test_accuracy"} <= set(metrics)
    teacher = json.loads((out / "teacher" / "config.json").read_text())
    student = json.loads((out / "config.json").read_text())
    if model_type == "resnet":
        assert teacher["depths"] == [2, 2, 2, 2] and student["depths"] == [1, 1, 1, 1]
    else:
        assert teacher["num_hidden_layers"] == 8 and student["num_hidden_layers"] == 4
    assert student["hf_transfer_student"]["layers"] == kept
    summary = json.loads((out / "hf_transfer_run.json").read_text())
    assert set(summary["teacher"]["results"]) >= {"eval_source_test_accuracy", "eval_target_test_accuracy"}
    card = (out / "README.md").read_text()
    assert "## Teacher" in card and "Hidden-state distillation" in card and "from scratch (2x" in card
