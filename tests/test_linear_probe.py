import pytest
import torch
from conftest import TINY_VISION_CONFIGS, tiny_bert
from conftest import make_images as images
from transformers import AutoModelForImageClassification, DataCollatorWithPadding

from hf_transfer.evaluation.linear_probe import linear_probe
from hf_transfer.features import extract_features


def test_extracted_features_are_the_heads_input(text_domains, tokenizer):
    model = tiny_bert()
    source, _, _ = text_domains
    features, labels = extract_features(model, source, DataCollatorWithPadding(tokenizer), batch_size=16)
    assert features.shape == (64, 32) and labels.tolist() == source["label"]
    batch = DataCollatorWithPadding(tokenizer)(
        [{k: source[i][k] for k in ("input_ids", "attention_mask")} for i in range(3)]
    )
    model.eval()
    with torch.no_grad():
        pooled = model.bert(**batch).pooler_output  # BERT's head reads the (dropout-ed) pooled output
    torch.testing.assert_close(torch.from_numpy(features[:3]), pooled, rtol=1e-5, atol=1e-5)


def test_linear_probe_separates_classes_the_features_separate():
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(TINY_VISION_CONFIGS["resnet"])
    results = linear_probe(model, images(90, 0.0, 0), {"test": images(30, 0.0, 1)}, batch_size=32)
    assert set(results) == {"test_accuracy", "test_macro_f1"}
    assert results["test_accuracy"] > 0.9  # the class shifts every pixel, which random conv features keep


def test_mean_pooling_features_average_the_unpadded_tokens(text_domains, tokenizer):
    model = tiny_bert()
    source, _, _ = text_domains
    collator = DataCollatorWithPadding(tokenizer)
    features, _ = extract_features(model, source, collator, batch_size=16, features="mean_pooling")
    row = {k: torch.tensor([source[5][k]]) for k in ("input_ids", "attention_mask")}  # alone: no padding
    model.eval()
    with torch.no_grad():
        expected = model.bert(**row).last_hidden_state.mean(dim=1)[0]
    torch.testing.assert_close(torch.from_numpy(features[5]), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="`features` must be"):
        extract_features(model, source, collator, features="pooler")
