"""The bad-input catalogue (docs/troubleshooting.md): each case ends with one clear error that names the argument and
the remedy, before any training step, and leaves no output folder that looks like a finished run."""

import json
import os

import datasets
import huggingface_hub
import pytest
import torch
from conftest import (
    SOURCE_TOPIC,
    TARGET_TOPIC,
    TINY_VISION_CONFIGS,
    load_recipe,
    make_images,
    make_reviews,
    tiny_bert,
)
from transformers import AutoModelForImageClassification, BertConfig, BertModel

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer

FINISHED_RUN_FILES = {"model.safetensors", "adapter_model.safetensors", "all_results.json", "README.md"}


@pytest.fixture
def files(tmp_path):
    """Local JSON-lines data: labeled source and target test, unlabeled target, and bad variants."""

    def write(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return str(path)

    def labeled(topic, n, seed, names=("negative", "positive")):
        reviews = make_reviews(topic, n, seed)
        return [{"text": t, "label": names[label]} for t, label in zip(reviews["text"], reviews["label"])]

    return {
        "source": write("source.jsonl", labeled(SOURCE_TOPIC, 32, 0)),
        "target": write("target.jsonl", [{"text": t} for t in make_reviews(TARGET_TOPIC, 16, 1)["text"]]),
        "test": write("test.jsonl", labeled(TARGET_TOPIC, 16, 2)),
        "empty": write("empty.jsonl", []),
        "test_other_names": write("test_other.jsonl", labeled(TARGET_TOPIC, 16, 2, names=("neg", "pos"))),
        "model_without_tokenizer": _save_model_only(tmp_path / "no_tokenizer"),
        "image_model_without_processor": _save_image_model_only(tmp_path / "no_processor"),
    }


def _save_model_only(path):
    tiny_bert().save_pretrained(path)
    return str(path)


def _save_image_model_only(path):
    AutoModelForImageClassification.from_config(TINY_VISION_CONFIGS["resnet"]).save_pretrained(path)
    return str(path)


def text_arguments(files, tiny_model_dir, run_dir, **overrides):
    values = {
        "model_name_or_path": str(tiny_model_dir),
        "source_dataset": files["source"],
        "target_dataset": files["target"],
        "target_test_dataset": files["test"],
        "source_validation_split": "none",
        "output_dir": str(run_dir),
        "max_steps": "2",
        "per_device_train_batch_size": "8",
        "max_length": "16",
        "use_cpu": "true",
        "report_to": "none",
    }
    values.update(overrides)
    arguments = []
    for name, value in values.items():
        arguments += [f"--{name}", *(value if isinstance(value, list) else [value])]
    return arguments


# (case, recipe, overrides given the data files, expected error, the message: argument ... remedy)
RECIPE_CASES = [
    (
        "empty target dataset",
        "text_cls_dann",
        lambda f: {"target_dataset": f["empty"]},
        ValueError,
        r"`target_dataset`=.*empty\.jsonl' is empty: it needs at least one row",
    ),
    (
        "label names differ between source and evaluation",
        "text_cls_dann",
        lambda f: {"target_test_dataset": f["test_other_names"]},
        ValueError,
        r"`target_test_dataset` has labels \['neg', 'pos'\] \(first at row 0\) that the training data does not "
        r"have .*same label names",
    ),
    (
        "missing text column",
        "text_cls_dann",
        lambda f: {"text_column": "review"},
        ValueError,
        r"`source_dataset` has no column\(s\) \['review'\] .*set --text_column",
    ),
    (
        "missing image column",
        "image_cls_dann",
        None,
        ValueError,
        r"`source_dataset` has no column\(s\) \['img'\] .*set --image_column",
    ),
    (
        "odd batch size for half/half mixing",
        "text_cls_dann",
        lambda f: {"per_device_train_batch_size": "7"},
        ValueError,
        r"`per_device_train_batch_size`=7 .*an even one for half/half mixing",
    ),
    (
        "missing tokenizer",
        "text_cls_dann",
        lambda f: {"model_name_or_path": f["model_without_tokenizer"]},
        ValueError,
        r"`model_name_or_path`=.* has no tokenizer files .*save_pretrained.*--tokenizer_name",
    ),
    (
        "missing image processor",
        "image_cls_dann",
        None,
        ValueError,
        r"`model_name_or_path`=.* has no image_processor config .*--image_processor_name",
    ),
    (
        "local data path that does not exist",
        "text_cls_dann",
        lambda f: {"source_dataset": "./nowhere/src.jsonl"},
        FileNotFoundError,
        r"`source_dataset`='./nowhere/src.jsonl' is neither an existing local file or folder",
    ),
    (
        "local model path that does not exist",
        "text_cls_dann",
        lambda f: {"model_name_or_path": "./nowhere/model"},
        FileNotFoundError,
        r"`model_name_or_path`='./nowhere/model' does not exist: give an existing local folder",
    ),
    (
        "Hub model id while offline",
        "text_cls_dann",
        lambda f: {"model_name_or_path": "some-org/some-model"},
        OSError,
        r"`model_name_or_path`='some-org/some-model' .* Hub is offline here .*hf download some-org/some-model",
    ),
    (
        "Hub dataset id while offline",
        "text_cls_dann",
        lambda f: {"source_dataset": "some-org/some-reviews"},
        ConnectionError,
        r"`source_dataset`='some-org/some-reviews' .* Hub is offline here .*save_to_disk",
    ),
    (
        "fp16 where unsupported (CPU)",
        "text_cls_dann",
        lambda f: {"fp16": "true"},
        ValueError,
        r"`fp16` mixed precision needs a GPU.*Use `bf16` on the CPU",
    ),
    (
        "max_steps=0",
        "text_cls_dann",
        lambda f: {"max_steps": "0"},
        ValueError,
        r"`max_steps`=0 .*Give `max_steps` >= 1, or -1",
    ),
    (
        "unknown adaptation loss name",
        "text_cls_dann",
        lambda f: {"adaptation_loss": "dan"},
        ValueError,
        r"`adaptation_loss` has unknown loss name\(s\) \['dan'\]: choose from",
    ),
    (
        "loss weights of the wrong length",
        "text_cls_dann",
        lambda f: {"adaptation_loss": ["dann", "mmd"], "adaptation_loss_weights": "1.0"},
        ValueError,
        r"`adaptation_loss_weights` has 1 value\(s\) but `adaptation_loss` has 2 .*one weight per loss",
    ),
    (
        "output_dir is a file",
        "text_cls_dann",
        lambda f: {"output_dir": f["source"]},
        ValueError,
        r"`output_dir`=.* is an existing file, not a folder",
    ),
]


@pytest.mark.parametrize("case, recipe, overrides, error, message", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_recipe_bad_input(tmp_path, files, tiny_model_dir, monkeypatch, case, recipe, overrides, error, message):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    output_dir = tmp_path / "run"
    if recipe == "text_cls_dann":
        arguments = text_arguments(files, tiny_model_dir, output_dir, **overrides(files))
    elif case == "missing image column":
        arguments = ["--output_dir", str(output_dir), "--image_column", "img", "--use_cpu", "true", "--max_steps", "2"]
    else:  # missing image processor
        arguments = ["--model_name_or_path", files["image_model_without_processor"], "--output_dir", str(output_dir)]
        arguments += ["--use_cpu", "true", "--max_steps", "2", "--max_train_samples", "16", "--max_eval_samples", "8"]
    with pytest.raises(error, match=message):
        load_recipe(recipe).main(arguments)
    if output_dir.exists():
        assert not FINISHED_RUN_FILES & set(os.listdir(output_dir)), os.listdir(output_dir)


# Cases of the trainer API (your own script): the same rule.


def small_config(tmp_path, **config):
    defaults = dict(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", max_steps=2)
    return DomainAdaptationConfig(**(defaults | dict(per_device_train_batch_size=8) | config))


def trainer_case(tmp_path, text_domains, tokenizer, model=None, source=None, target=None, **config):
    default_source, default_target, _ = text_domains
    args = small_config(tmp_path, **config)
    trainer = DomainAdaptationTrainer(
        model=model or tiny_bert(),
        args=args,
        train_dataset=default_source if source is None else source,
        target_dataset=default_target if target is None else target,
        processing_class=tokenizer,
    )
    trainer.train()


def test_source_labels_outside_the_model_label_space(tmp_path, text_domains, tokenizer):
    source = text_domains[0].map(lambda row: {"label": row["label"] + 1})  # labels 1, 2 for a 2-class model
    with pytest.raises(
        ValueError, match=r"`train_dataset` has label\(s\) \[2\] outside the model's 2 classes .*num_labels"
    ):
        trainer_case(tmp_path, text_domains, tokenizer, source=source)
    assert not FINISHED_RUN_FILES & set(os.listdir(tmp_path / "run"))


def test_empty_target_dataset_in_the_trainer(tmp_path, text_domains, tokenizer):
    with pytest.raises(ValueError, match=r"`target_dataset` is empty: pass at least one unlabeled target-domain row"):
        trainer_case(tmp_path, text_domains, tokenizer, target=text_domains[1].select([]))


def test_a_model_without_a_classification_head(tmp_path, text_domains, tokenizer):
    encoder = BertModel(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(
        ValueError, match=r"classification head of BertModel .*AutoModelForSequenceClassification.*`classifier_module`"
    ):
        trainer_case(tmp_path, text_domains, tokenizer, model=encoder)


class _NoHiddenStates(torch.nn.Module):
    """A classifier whose forward cannot return hidden states (a custom model)."""

    def __init__(self):
        super().__init__()
        self.inner = tiny_bert()
        self.config = self.inner.config

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
        return {"logits": self.inner(input_ids=input_ids, attention_mask=attention_mask).logits}


def test_a_model_that_cannot_return_hidden_states(tmp_path, text_domains, tokenizer):
    with pytest.raises(
        ValueError, match=r"`alignment_features`='mean_pooling' .*_NoHiddenStates cannot return them.*'head_input'"
    ):
        trainer_case(
            tmp_path, text_domains, tokenizer, model=_NoHiddenStates(), alignment_features="mean_pooling",
            classifier_module="inner.classifier",
        )  # fmt: skip


def test_images_of_mixed_sizes_or_modes_in_the_trainer(tmp_path):
    model = AutoModelForImageClassification.from_config(TINY_VISION_CONFIGS["resnet"])
    source = make_images(16, 0.0, seed=0)
    gray = torch.zeros(16, 1, 16, 16)  # 1-channel target images next to 3-channel source images
    target = datasets.Dataset.from_dict({"pixel_values": gray.numpy()}).with_format("torch")
    args = small_config(tmp_path, remove_unused_columns=False)
    trainer = DomainAdaptationTrainer(model=model, args=args, train_dataset=source, target_dataset=target)
    with pytest.raises(
        ValueError,
        match=r"different `pixel_values` shapes \[\(1, 16, 16\), \(3, 16, 16\)\].*convert them to RGB and resize",
    ):
        trainer.train()
