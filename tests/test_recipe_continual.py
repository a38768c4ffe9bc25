"""`recipes/text_cls_continual.py` (the bundled Amazon domains in sequence, a tiny model) and
`recipes/image_cls_continual.py` (split MNIST from scratch) end to end: the accuracy matrix, its metrics, the
results file, the heatmap and the card; the final accuracies recomputed from the saved model."""

import json

import pytest
from conftest import load_recipe, saved_text_model_accuracy

TEXT_QUICK = ["--steps_per_experience", "2", "--per_device_train_batch_size", "4", "--max_length", "32",
              "--max_train_samples", "32", "--max_eval_samples", "16", "--logging_steps", "1",
              "--use_cpu", "true"]  # fmt: skip
IMAGE_QUICK = ["--steps_per_experience", "2", "--per_device_train_batch_size", "8", "--max_train_samples", "100",
               "--max_eval_samples", "100", "--image_size", "8", "--use_cpu", "true"]  # fmt: skip


def test_text_recipe_learns_the_four_amazon_domains_in_order(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "run"
    metrics = load_recipe("text_cls_continual").main(
        ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), "--continual_method", "replay", "ewc",
         "--memory_size", "8", "--ewc_fisher_batches", "2", *TEXT_QUICK]
    )  # fmt: skip
    results = json.loads((out / "continual_results.json").read_text())
    assert results["experiences"] == ["books", "dvd", "electronics", "kitchen"]
    assert len(results["accuracy_matrix"]) == 4 and results["continual_method"] == ["replay", "ewc"]
    assert metrics["average_accuracy"] == pytest.approx(sum(results["accuracy_matrix"][-1]) / 4)
    for index, domain in enumerate(results["experiences"]):  # the final row is the saved model's accuracy
        recomputed = saved_text_model_accuracy(out, f"amazon:{domain}", "test", rows=16, seed=42, max_length=32)
        assert results["accuracy_matrix"][-1][index] == pytest.approx(recomputed)
        assert metrics[f"eval_{domain}_accuracy"] == pytest.approx(recomputed)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 8
    card = (out / "README.md").read_text()
    assert "## Accuracy matrix" in card and "| after kitchen |" in card and "| memory_size | 8 |" in card
    assert "in order: books: Amazon reviews, books" in card
    summary = json.loads((out / "hf_transfer_run.json").read_text())
    assert summary["continual"]["accuracy_matrix"] == results["accuracy_matrix"]
    assert (out / "accuracy_matrix.png").exists()
    assert "replay, ewc (domain-incremental): average accuracy" in capsys.readouterr().out


def test_text_recipe_refuses_a_domain_twice_and_a_setting_its_method_does_not_use(tmp_path, tiny_model_dir):
    recipe = load_recipe("text_cls_continual")
    base = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "run"), *TEXT_QUICK]
    with pytest.raises(ValueError, match="same experience twice"):
        recipe.main([*base, "--experiences", "amazon:books", "amazon:books"])
    with pytest.raises(ValueError, match="only apply to `continual_method` 'replay'"):
        recipe.main([*base, "--memory_size", "50"])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("scenario", ["class", pytest.param("task", marks=pytest.mark.slow)])
def test_image_recipe_splits_the_digits_into_five_experiences(tmp_path, scenario):
    out = tmp_path / "run"
    metrics = load_recipe("image_cls_continual").main(["--output_dir", str(out), "--scenario", scenario, *IMAGE_QUICK])
    results = json.loads((out / "continual_results.json").read_text())
    assert results["experiences"] == ["0-1", "2-3", "4-5", "6-7", "8-9"] and results["scenario"] == scenario
    matrix = results["accuracy_matrix"]
    if scenario == "class":  # the classes of later experiences are masked: nothing right on them before
        assert all(matrix[i][j] == 0.0 for i in range(5) for j in range(i + 1, 5))
    else:  # among its own two classes, chance is about a half before training on them
        assert all(matrix[i][j] > 0.0 for i in range(5) for j in range(5))
    assert metrics["average_accuracy"] == pytest.approx(sum(matrix[-1]) / 5)
    assert f"{scenario}-incremental scenario" in (out / "README.md").read_text()
