"""`main()` of text_cls_finetune.py, image_cls_finetune.py and image_cls_dann.py end to end, on tiny models."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import TINY_VISION_CONFIGS, load_recipe
from PIL import Image
from safetensors.torch import load_file
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    ConvNextImageProcessorPil,
    ViTImageProcessorPil,
    set_seed,
)

from hf_transfer import load_digits

QUICK_TEXT = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_length", "32"]
QUICK_TEXT += ["--max_train_samples", "32", "--max_eval_samples", "16", "--use_cpu", "true"]
QUICK_IMAGES = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16"]
QUICK_IMAGES += ["--max_train_samples", "32", "--max_eval_samples", "16", "--use_cpu", "true", "--logging_steps", "1"]


def test_text_finetune_with_lora_saves_adapter_and_merged_model(tmp_path, tiny_model_dir, tokenizer, capsys):
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK_TEXT]
    argv += ["--transfer_strategy", "lora", "--lora_r", "4", "--merge_adapter", "true"]
    metrics = load_recipe("text_cls_finetune").main(argv)
    assert {"eval_validation_accuracy", "eval_test_accuracy", "eval_test_macro_f1"} <= set(metrics)
    assert f"validation accuracy (amazon:books, lora): {metrics['eval_validation_accuracy']:.4f}" in (
        capsys.readouterr().out
    )
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "all_results.json"} <= set(os.listdir(out))
    card = (out / "README.md").read_text()
    assert "supervised fine-tuning" in card and "LORA adapter (r=4" in card and "transfer-learning" in card
    assert "Target domain" not in card and "Amazon reviews, kitchen" in card and str(tmp_path) not in card

    from peft import PeftModel

    adapter = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2), out
    ).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged").eval()
    batch = tokenizer(["great book", "awful pan broken"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, adapter(**batch).logits, atol=1e-5, rtol=1e-4)


def test_text_finetune_freeze_layers_trains_only_the_unfrozen_layers(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK_TEXT]
    argv += ["--transfer_strategy", "freeze_layers", "--num_frozen_layers", "1", "--learning_rate", "1e-2"]
    metrics = load_recipe("text_cls_finetune").main(argv + ["--linear_probe", "true"])
    assert {"probe_validation_accuracy", "probe_test_accuracy", "probe_test_macro_f1"} <= set(metrics)
    assert json.loads((out / "all_results.json").read_text())["probe_test_accuracy"] == metrics["probe_test_accuracy"]
    before = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForSequenceClassification.from_pretrained(out).state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and not any(n.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for n in changed)
    assert any(n.startswith("bert.encoder.layer.1.") for n in changed)
    assert "lowest 1 blocks frozen" in (out / "README.md").read_text()


def test_merge_adapter_without_an_adapter_is_a_clear_error(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="`merge_adapter` merges a PEFT adapter"):
        load_recipe("text_cls_finetune").main(
            ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path), "--merge_adapter", "true"]
        )


@pytest.mark.parametrize("model_type", ["resnet", "vit"])
def test_image_dann_recipe_on_bundled_digits_from_scratch(tmp_path, model_type, capsys):
    out = tmp_path / "run"
    argv = ["--model_type", model_type, "--image_size", "16", "--output_dir", str(out), *QUICK_IMAGES]
    argv += ["--max_target_samples", "32", "--adaptation_loss", "dann", "mmd"]
    metrics = load_recipe("image_cls_dann").main(argv)
    assert {"eval_source_test_accuracy", "eval_target_test_accuracy", "train_runtime"} <= set(metrics)
    assert (
        f"target-test accuracy (digits:usps -> digits:mnist, {model_type}, adaptation_loss=['dann', 'mmd']): "
        f"{metrics['eval_target_test_accuracy']:.4f}" in capsys.readouterr().out
    )
    logged = json.loads((out / "trainer_state.json").read_text())["log_history"][0]
    assert {"loss/task", "loss/dann", "loss/mmd"} <= set(logged)  # both alignment losses ran on image features
    card = (out / "README.md").read_text()
    assert f"a {model_type} classifier trained from scratch" in card and "USPS (Hull 1994" in card
    assert "MNIST (LeCun et al. 1998, bundled), split unlabeled" in card
    # the saved model and processor classify a grayscale 28×28 MNIST digit as they are
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    processor = AutoImageProcessor.from_pretrained(out)
    image = load_digits("mnist", "test")[0]["image"]
    assert image.mode == "L"
    with torch.no_grad():
        logits = model(**processor(image.convert("RGB"), return_tensors="pt")).logits
    assert logits.shape == (1, 10)
    assert model.config.id2label[0] == "0"


def pretrained_vision_dir(tmp_path, model_type):
    """A 'Hub checkpoint' made offline: a tiny classifier with an ImageNet-sized head and its image processor."""
    torch.manual_seed(0)
    config = TINY_VISION_CONFIGS[model_type].__class__(
        **{**TINY_VISION_CONFIGS[model_type].to_dict(), "num_labels": 1000}
    )
    model = AutoModelForImageClassification.from_config(config)
    path = tmp_path / f"pretrained-{model_type}"
    model.save_pretrained(path)
    if model_type == "resnet":
        processor = ConvNextImageProcessorPil(size={"shortest_edge": 16}, crop_pct=1.0)
    else:
        processor = ViTImageProcessorPil(size={"height": 16, "width": 16})
    processor.save_pretrained(path)
    return path, model


@pytest.mark.parametrize("model_type", ["resnet", "vit"])
def test_image_finetune_from_a_pretrained_checkpoint_with_lora_and_merged_export(tmp_path, model_type):
    path, pretrained = pretrained_vision_dir(tmp_path, model_type)
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(path), "--output_dir", str(out), *QUICK_IMAGES]
    argv += ["--transfer_strategy", "lora", "--lora_r", "2", "--merge_adapter", "true"]
    metrics = load_recipe("image_cls_finetune").main(argv)
    assert {"eval_validation_accuracy", "eval_test_accuracy"} <= set(metrics)
    merged = AutoModelForImageClassification.from_pretrained(out / "merged").eval()
    assert merged.config.num_labels == 10  # the 1000-class head was replaced
    # the backbone weights LoRA did not touch are the pretrained ones (parameters: BatchNorm running statistics
    # are buffers and update in training mode, as in any PyTorch training)
    pretrained_weights = dict(pretrained.named_parameters())
    merged_weights = dict(merged.named_parameters())
    untouched = [k for k in merged_weights if "embeddings" in k or "embedder" in k]
    assert untouched and all(torch.equal(merged_weights[k], pretrained_weights[k]) for k in untouched)
    from peft import PeftModel

    base = AutoModelForImageClassification.from_pretrained(path, num_labels=10, ignore_mismatched_sizes=True)
    adapter = PeftModel.from_pretrained(base, out).eval()
    pixels = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            merged(pixel_values=pixels).logits, adapter(pixel_values=pixels).logits, atol=1e-5, rtol=1e-4
        )
    card = (out / "README.md").read_text()
    assert "LORA adapter" in card and "PeftModel.from_pretrained" in card


def test_image_recipe_converts_any_image_mode_and_size(tmp_path):
    """An image folder of RGBA and grayscale images of different sizes, as a user's own data."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                size = (12 + i, 20 - i)
                mode = "RGBA" if i % 2 else "L"
                pixels = rng.integers(0, 255, size=(size[1], size[0], 4 if mode == "RGBA" else 1), dtype=np.uint8)
                Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode=mode).save(folder / f"{i}.png")
    out = tmp_path / "run"
    metrics = load_recipe("image_cls_finetune").main(
        [
            "--dataset",
            str(tmp_path / "data"),
            "--test_dataset",
            "none",
            "--image_size",
            "16",
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--use_cpu",
            "true",
            "--linear_probe",
            "true",
        ]
    )
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "cat", "1": "dog"}
    # both accuracies recomputed here from the saved model and processor on the images as files: the recipe
    # evaluated (and the probe read) every validation image, converted and resized as they are here
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from transformers import AutoImageProcessor

    model = AutoModelForImageClassification.from_pretrained(out).eval()
    processor = AutoImageProcessor.from_pretrained(out)

    def encode(model, split):
        files = sorted((tmp_path / "data" / split).glob("*/*.png"))
        pixels = processor([Image.open(f).convert("RGB") for f in files], return_tensors="pt")["pixel_values"]
        labels = np.array([model.config.label2id[f.parent.name] for f in files])
        with torch.no_grad():
            outputs = model(pixel_values=pixels, output_hidden_states=True)
        return outputs.logits.argmax(-1).numpy(), model.resnet.pooler(outputs.hidden_states[-1]).flatten(1), labels

    predictions, _, labels = encode(model, "test")
    assert metrics["eval_validation_accuracy"] == pytest.approx(float((predictions == labels).mean()))
    # the probe reads the model as training starts: the from-scratch ResNet the recipe built from the seed
    set_seed(42)
    initial = AutoModelForImageClassification.from_config(model.config).eval()
    _, features, labels = encode(initial, "test")
    _, train_features, train_labels = encode(initial, "train")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(train_features, train_labels)
    assert metrics["probe_validation_accuracy"] == pytest.approx(probe.score(features, labels))


def test_every_checkpoint_gets_its_own_model_card(tmp_path):
    out = tmp_path / "run"
    argv = ["--model_type", "resnet", "--image_size", "16", "--output_dir", str(out), *QUICK_IMAGES]
    argv += ["--max_target_samples", "32", "--save_strategy", "steps", "--save_steps", "1"]
    load_recipe("image_cls_dann").main(argv)
    for step in (1, 2):
        card = (out / f"checkpoint-{step}" / "README.md").read_text()
        assert f"Checkpoint at step {step} of 2" in card and "s of training in the process that wrote it" in card
        assert "USPS (Hull 1994, bundled), split train" in card and "DANN" in card
        assert str(tmp_path) not in card
    final = (out / "README.md").read_text()
    assert "Measured at the end of this run" in final and "Checkpoint at step" not in final


@pytest.mark.parametrize("recipe", ["image_cls_dann", "image_cls_finetune"])
def test_the_image_recipes_resume_exactly(tmp_path, recipe):
    """4 steps straight, against a run that starts from a model of another seed and resumes from the straight run's
    step-2 checkpoint: the same weights bit for bit (set_transform'ed images, BatchNorm statistics and the
    discriminator included)."""
    data = ["--dataset", "digits:usps"] if recipe == "image_cls_finetune" else []
    # every training row (no seeded subset) and a fixed data seed: only the model's seed differs between the runs
    common = [*data, "--max_steps", "4", "--per_device_train_batch_size", "8", "--use_cpu", "true"]
    common += ["--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "no", "--image_size", "16"]
    common += ["--data_seed", "42", "--max_eval_samples", "16"]
    load_recipe(recipe).main(["--output_dir", str(tmp_path / "full"), *common])
    load_recipe(recipe).main(
        ["--output_dir", str(tmp_path / "resumed"), *common, "--seed", "7", "--resume_from_checkpoint",
         str(tmp_path / "full" / "checkpoint-2")]
    )  # fmt: skip
    assert any("running_mean" in key for key in load_file(tmp_path / "full" / "model.safetensors"))
    files = ["model.safetensors"] + (["checkpoint-4/domain_discriminator.safetensors"] if "dann" in recipe else [])
    for name in files:
        expected, actual = load_file(tmp_path / "full" / name), load_file(tmp_path / "resumed" / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), f"{name}: {key}"


def test_the_image_recipe_trains_in_two_stages_with_the_guard(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--image_size", "16", "--output_dir", str(out), *QUICK_IMAGES, "--max_target_samples", "32"]
    load_recipe("image_cls_dann").main([*argv, "--source_only_steps", "1", "--max_steps", "2"])
    summary = json.loads((out / "hf_transfer_run.json").read_text())
    assert summary["stage1"]["step"] == 1 and "eval_target_test_accuracy" in summary["stage1"]["results"]
    assert summary["negative_transfer_guard"]["source_rows"] > 0  # the USPS test split is the guard's source rows
    assert (out / "stage1" / "model.safetensors").is_file() and (out / "stage1" / "preprocessor_config.json").is_file()
    assert "target-test accuracy: stage 1 (source-only)" in capsys.readouterr().out
