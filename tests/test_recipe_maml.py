"""`recipes/text_cls_maml.py` end to end on the bundled Amazon domains with a tiny model: meta-training on three
domains (one task each), the meta-trained model saved and evaluated, the K-shot meta-test in `k_shot/`."""

import json

import pytest
from conftest import load_recipe, saved_text_model_accuracy

QUICK = ["--max_steps", "2", "--support_shots", "2", "--query_shots", "2", "--tasks_per_meta_batch", "2",
         "--max_length", "32", "--max_eval_samples", "24", "--logging_steps", "1", "--use_cpu", "true",
         "--k_shot", "4", "--meta_test_steps", "2", "--meta_test_batch_size", "4"]  # fmt: skip


@pytest.mark.parametrize("algorithm", ["fomaml", "maml"])
def test_main_meta_trains_on_three_domains_then_fine_tunes_on_k_target_shots(tmp_path, tiny_model_dir, algorithm):
    out = tmp_path / "run"
    metrics = load_recipe("text_cls_maml").main(["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out),
                                                 "--meta_algorithm", algorithm, *QUICK])  # fmt: skip
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert metrics["eval_target_test_accuracy"] == pytest.approx(
        saved_text_model_accuracy(out, "amazon:kitchen", "test", rows=24, seed=42, max_length=32)
    )
    assert metrics["k_shot_eval_target_test_accuracy"] == pytest.approx(
        saved_text_model_accuracy(out / "k_shot", "amazon:kitchen", "test", rows=24, seed=42, max_length=32)
    )
    card = (out / "README.md").read_text()
    assert "one task per dataset: Amazon reviews, books" in card and "dvd" in card and "electronics" in card
    assert f"| meta_algorithm | {algorithm} |" in card and "per_device_train_batch_size" not in card
    k_card = (out / "k_shot" / "README.md").read_text()
    assert "4 rows per class of Amazon reviews, kitchen" in k_card and "| max_steps | 2 |" in k_card


def test_the_target_may_not_be_a_source_and_the_batch_size_is_refused(tmp_path, tiny_model_dir):
    recipe = load_recipe("text_cls_maml")
    base = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "run"), *QUICK]
    with pytest.raises(ValueError, match="is also a source"):
        recipe.main([*base, "--target_dataset", "amazon:dvd"])
    with pytest.raises(ValueError, match="`per_device_train_batch_size` is not used by meta-learning"):
        recipe.main([*base, "--per_device_train_batch_size", "32"])
    assert not (tmp_path / "run" / "config.json").exists()
