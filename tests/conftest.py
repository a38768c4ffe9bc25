"""Offline fixtures: tiny models built from configs, a tokenizer built from a word list, data made here."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tests never touch the network; set before transformers is imported

import importlib.util  # noqa: E402
import random  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    ResNetConfig,
    ViTConfig,
)

POSITIVE = ["great", "good", "excellent", "love", "fine", "happy"]
NEGATIVE = ["bad", "poor", "awful", "hate", "broken", "sad"]
SOURCE_TOPIC = ["book", "story", "author", "chapter", "novel", "plot"]
TARGET_TOPIC = ["knife", "pan", "blender", "kettle", "oven", "spoon"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    vocab_file = tmp_path_factory.mktemp("tokenizer") / "vocab.txt"
    vocab_file.write_text("\n".join(SPECIAL + POSITIVE + NEGATIVE + SOURCE_TOPIC + TARGET_TOPIC) + "\n")
    return BertTokenizer(vocab=str(vocab_file), do_lower_case=True)


def make_reviews(topic: list[str], n: int, seed: int) -> dict[str, list]:
    """Sentences of topic words with sentiment words; label 1 when positive words are in the majority."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        sentiment = POSITIVE if label else NEGATIVE
        words = rng.choices(topic, k=4) + rng.choices(sentiment, k=3)
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return {"text": texts, "label": labels}


def tokenize(dataset: datasets.Dataset, tokenizer, max_length: int = 16) -> datasets.Dataset:
    return dataset.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length), batched=True)


@pytest.fixture
def text_domains(tokenizer):
    """(source train, target unlabeled, target test) tokenized datasets, with a vocabulary shift between domains."""
    source = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 64, seed=0)), tokenizer)
    target_all = make_reviews(TARGET_TOPIC, 48, seed=1)
    target = tokenize(datasets.Dataset.from_dict({"text": target_all["text"][:32]}), tokenizer)
    target_test = tokenize(datasets.Dataset.from_dict({k: v[32:] for k, v in target_all.items()}), tokenizer)
    return source, target, target_test


def tiny_bert(seed: int = 0, num_labels: int = 2, **config_overrides) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        **config_overrides,
        vocab_size=len(SPECIAL + POSITIVE + NEGATIVE + SOURCE_TOPIC + TARGET_TOPIC),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=32,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config)


@pytest.fixture
def tiny_model_dir(tmp_path, tokenizer):
    """A tiny BERT classifier and its tokenizer saved like a Hub checkpoint, for `--model_name_or_path`."""
    path = tmp_path / "tiny-bert"
    tiny_bert().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# Tiny image classifiers: 2 blocks each, 3 labels, 16×16 RGB input.
TINY_VISION_CONFIGS = {
    "vit": ViTConfig(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=3,
    ),
    "resnet": ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3),
}


def make_images(n, shift, seed):
    """n random 3×16×16 images in 3 classes; the class and `shift` are added to every pixel."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    pixels = rng.normal(size=(n, 3, 16, 16)).astype("float32") + labels[:, None, None, None] + shift
    return datasets.Dataset.from_dict({"pixel_values": pixels, "label": labels}).with_format("torch")


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def load_recipe(name: str):
    """A recipe script (`recipes/<name>.py`) as a module, so tests call its `main(argv)`."""
    spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def saved_text_model_accuracy(out, spec: str, split: str, rows: int, seed: int, max_length: int) -> float:
    """The accuracy of the model a recipe saved in `out`, recomputed here from the rows the recipe evaluated on (its
    `--max_eval_samples` rows of `spec`/`split` drawn with `seed`), with the tokenizer saved beside it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_transfer.recipes.preprocessing import load_split

    data = load_split(spec, split, "target_dataset", rows, seed)
    names = data.features["label"].names
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    batch = tokenizer(list(data["text"]), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        predictions = model(**batch).logits.argmax(-1).tolist()
    labels = [model.config.label2id[names[label]] for label in data["label"]]
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def domain_adaptation_config(tmp_path, **kwargs):
    """A `DomainAdaptationConfig` for a few quick CPU steps of a tiny model, logging every step, saving nothing."""
    from hf_transfer import DomainAdaptationConfig

    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        max_steps=4,
        learning_rate=1e-3,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    return DomainAdaptationConfig(**{**defaults, **kwargs})
