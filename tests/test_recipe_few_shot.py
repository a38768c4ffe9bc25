"""`recipes/text_cls_few_shot.py` end to end on the bundled kitchen reviews with a tiny model: each method, the K
shots drawn per class, the saved model reloaded with the reported accuracy, the card, and arguments a method would
ignore refused."""

import json

import pytest
from conftest import load_recipe, saved_text_model_accuracy

QUICK = ["--per_device_train_batch_size", "8", "--max_length", "32", "--max_eval_samples", "24",
         "--logging_steps", "1", "--use_cpu", "true"]  # fmt: skip


def run(tmp_path, tiny_model_dir, *args):
    out = tmp_path / "run"
    metrics = load_recipe("text_cls_few_shot").main(
        ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK, *args]
    )
    return out, metrics


def test_contrastive_default_trains_on_pairs_of_the_k_shots_and_saves_a_reloadable_classifier(tmp_path, tiny_model_dir):
    out, metrics = run(tmp_path, tiny_model_dir, "--k_shot", "4")
    # 2 classes, K = 4: 20 positive and 16 negative unordered pairs, oversampled to 40 = 5 batches of 8
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    recomputed = saved_text_model_accuracy(out, "amazon:kitchen", "test", rows=24, seed=42, max_length=32)
    assert metrics["eval_test_accuracy"] == pytest.approx(recomputed)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "hf_transfer_sentence_classifier" and config["pooling"] == "mean"
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    card = (out / "README.md").read_text()
    assert "4 rows per class of Amazon reviews, kitchen" in card and "trust_remote_code=True" in card
    assert "contrastive few-shot training (SetFit) then a logistic-regression head" in card
    assert "| head fitted on: labeled_rows | 8 |" in card and str(tmp_path) not in card


def test_zero_shot_uses_no_labeled_row_and_says_so(tmp_path, tiny_model_dir):
    out, metrics = run(tmp_path, tiny_model_dir, "--method", "zero_shot", "--templates",
                       "This review is {}.", "--label_descriptions", "negative=bad", "positive=great")  # fmt: skip
    assert 0.0 <= metrics["eval_test_accuracy"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["hf_transfer_zero_shot"]["labels"] == {"negative": ["bad"], "positive": ["great"]}
    card = (out / "README.md").read_text()
    assert "without a training step" in card and "none (zero-shot: no labeled row)" in card
    assert "| training steps | 0 |" in card and "| templates | ['This review is {}.'] |" in card


def test_head_only_and_fine_tune_baselines(tmp_path, tiny_model_dir):
    out, metrics = run(tmp_path, tiny_model_dir, "--method", "head_only", "--k_shot", "4")
    assert "eval_test_accuracy" in metrics
    assert "| head fitted on: labeled_rows | 8 |" in (out / "README.md").read_text()
    out, metrics = run(tmp_path, tiny_model_dir, "--method", "fine_tune", "--max_steps", "2", "--k_shot", "4")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and config["id2label"] == {"0": "negative", "1": "positive"}
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert metrics["eval_test_accuracy"] == pytest.approx(
        saved_text_model_accuracy(out, "amazon:kitchen", "test", rows=24, seed=42, max_length=32)
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "zero_shot", "--max_steps", "5"], "--max_steps is not used by --method zero_shot"),
        (["--templates", "A {} review."], "--templates is not used by --method contrastive"),
        (["--method", "fine_tune", "--num_iterations", "5"], "--num_iterations is not used by --method fine_tune"),
        (["--method", "head_only", "--learning_rate", "1e-3"], "--learning_rate is not used by --method head_only"),
        (["--method", "zero_shot", "--label_descriptions", "neutral=meh"], "must be 'label=description' with a label"),
        (["--k_shot", "5000"], "fewer than K = 5000"),
    ],
)
def test_arguments_a_method_would_ignore_are_refused_before_anything_loads(tmp_path, tiny_model_dir, args, message):
    with pytest.raises(ValueError, match=message):
        run(tmp_path, tiny_model_dir, *args)
    assert not (tmp_path / "run" / "config.json").exists()
