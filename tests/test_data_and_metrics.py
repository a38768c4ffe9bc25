import hashlib

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_transfer import AMAZON_DOMAINS, compute_classification_metrics, load_amazon_reviews, load_metric
from hf_transfer.data import load_domain_dataset


@pytest.mark.parametrize("domain", AMAZON_DOMAINS)
def test_bundled_amazon_splits(domain):
    train, validation, test = (load_amazon_reviews(domain, s) for s in ("train", "validation", "test"))
    assert (len(train), len(validation), len(test)) == (1600, 400, 2000)
    assert sum(validation["label"]) == 200 and sum(train["label"]) == 800
    assert not set(train["text"]) & set(validation["text"])  # duplicates never straddle the split
    assert train.features["label"].names == ["negative", "positive"]
    unlabeled = load_amazon_reviews(domain, "unlabeled")
    assert unlabeled.column_names == ["text"] and len(unlabeled) > 1500
    assert not set(unlabeled["text"]) & set(test["text"])


def test_bad_domain_or_split_names_the_choices():
    with pytest.raises(ValueError, match=r"`domain` must be one of \['books'"):
        load_amazon_reviews("music")
    with pytest.raises(ValueError, match="`split` must be one of"):
        load_amazon_reviews("books", "dev")
    with pytest.raises(ValueError, match="source_dataset"):
        load_domain_dataset("amazon:music", "train", "source_dataset")
    with pytest.raises(FileNotFoundError, match="`target_dataset`='./nowhere.jsonl' is neither an existing local file"):
        load_domain_dataset("./nowhere.jsonl", "train", "target_dataset")


def test_metrics_are_offline_and_correct(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 2.0]])
    labels = np.array([0, 1, 0, 0, 1])  # predictions 0, 1, 1, 0, 1
    metrics = compute_classification_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert metrics["accuracy"] == pytest.approx(4 / 5)
    f1_negative = 2 * 2 / (2 + 3)  # tp=2, predicted 2, actual 3
    f1_positive = 2 * 2 / (3 + 2)
    assert metrics["macro_f1"] == pytest.approx((f1_negative + f1_positive) / 2)
    assert load_metric("accuracy").compute(predictions=[1, 1], references=[1, 0]) == {"accuracy": 0.5}
    with pytest.raises(ValueError, match="hf_transfer ships"):
        load_metric("bleu")


def test_bundled_digits_splits():
    from hf_transfer import load_digits

    usps_train, usps_test = load_digits("usps", "train"), load_digits("usps", "test")
    assert (len(usps_train), len(usps_test)) == (7291, 2007)
    assert usps_train[0]["image"].size == (16, 16) and usps_train[0]["image"].mode == "L"
    assert np.bincount(usps_test["label"], minlength=10).tolist() == [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]
    unlabeled, test = load_digits("mnist", "unlabeled"), load_digits("mnist", "test")
    assert unlabeled.column_names == ["image"] and len(unlabeled) == 5000
    assert len(test) == 5000 and test[0]["image"].size == (28, 28)
    assert test.features["label"].names == [str(d) for d in range(10)]
    # the two MNIST halves are disjoint: no image of the unlabeled half is in the test half
    digest = lambda image: hashlib.sha256(np.asarray(image).tobytes()).hexdigest()  # noqa: E731
    unlabeled_images, test_images = {digest(i) for i in unlabeled["image"]}, {digest(i) for i in test["image"]}
    assert len(unlabeled_images) > 4900 and len(test_images) > 4900 and not unlabeled_images & test_images
    # the oracle's training split: the unlabeled images with their labels
    oracle = load_digits("mnist", "oracle_train")
    assert len(oracle) == 5000 and oracle.column_names == ["image", "label"]
    assert np.array_equal(np.asarray(oracle[7]["image"]), np.asarray(unlabeled[7]["image"]))
    with pytest.raises(ValueError, match=r"`split` for 'mnist' must be one of \['unlabeled', 'test', 'oracle_train'\]"):
        load_digits("mnist", "train")


def test_several_sources_combine_in_proportion_or_equally_with_their_labels_encoded(tmp_path):
    """`load_sources`: the bundled books reviews (a ClassLabel) and a local file with string labels become one
    dataset with the first source's label ids; 'equal' draws the smaller source up to the larger one's rows."""
    import json

    from hf_transfer.recipes.preprocessing import load_sources

    rows = [{"text": f"review {i}", "label": "positive" if i % 3 else "negative"} for i in range(30)]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    specs = ["amazon:books", str(path)]
    mixed = load_sources(specs, "train", 90, 0, "label", "proportional")
    assert len(mixed) == 120 and mixed.features["label"].names == ["negative", "positive"]
    assert mixed["label"][90:] == [1 if i % 3 else 0 for i in range(30)]  # the file's rows, labels as ids
    equal = load_sources(specs, "train", 90, 0, "label", "equal")
    assert len(equal) == 180 and sorted(set(equal["text"][90:])) == sorted({r["text"] for r in rows})
    assert equal["text"][:90] == mixed["text"][:90]  # the larger source once, as it is
    with pytest.raises(ValueError, match="names a dataset twice"):
        load_sources(["amazon:books", "amazon:books"], "train", 10, 0, "label", "proportional")


def test_the_metrics_of_the_official_classification_examples_load_offline():
    """`run_classification.py` uses `f1` (multilabel) and `mse` (regression): both ship offline, equal to sklearn."""
    from sklearn.metrics import f1_score, mean_squared_error

    from hf_transfer import load_metric

    predictions, references = [[1, 0, 1], [0, 1, 1], [1, 1, 0]], [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    for average in ("micro", "macro", "samples"):
        ours = load_metric("f1", "multilabel").compute(predictions=predictions, references=references, average=average)
        assert ours["f1"] == pytest.approx(f1_score(references, predictions, average=average))
    assert load_metric("f1").compute(predictions=[0, 1, 1], references=[0, 1, 0])["f1"] == pytest.approx(2 / 3)
    ours = load_metric("mse").compute(predictions=[1.0, 2.0, 3.5], references=[1.5, 2.0, 2.0])
    assert ours["mse"] == pytest.approx(mean_squared_error([1.5, 2.0, 2.0], [1.0, 2.0, 3.5]))
    with pytest.raises(ValueError, match="other `evaluate` metrics need the Hub"):
        load_metric("bleu")


def test_row_limits_draw_a_seeded_class_stratified_sample_of_the_sorted_bundled_splits():
    """The bundled Amazon splits are stored sorted by label (the first 800 books training reviews are one class):
    `--max_train_samples 64` must still give both classes, in their shares, the same for the same seed."""
    from collections import Counter

    from hf_transfer.recipes.preprocessing import load_split

    stored = load_domain_dataset("amazon:books", "train", "dataset")
    assert len(set(stored.select(range(64))["label"])) == 1  # why a first-rows cut would be one class
    sample = load_split("amazon:books", "train", "dataset", 64, seed=0)
    assert Counter(sample["label"]) == {0: 32, 1: 32}
    assert sample["unique_id"] == load_split("amazon:books", "train", "dataset", 64, seed=0)["unique_id"]
    assert sample["unique_id"] != load_split("amazon:books", "train", "dataset", 64, seed=1)["unique_id"]
    assert sample["label"] != sorted(sample["label"])  # in a random order, not class after class
