"""Layer groups, frozen layers, feature extraction and layer-wise learning rates on BERT, ViT and ResNet."""

import pytest
import torch
from conftest import TINY_VISION_CONFIGS as CONFIGS
from conftest import tiny_bert
from transformers import AutoModelForImageClassification

from hf_transfer.transfer_strategies import (
    find_blocks,
    freeze_backbone,
    freeze_lowest_layers,
    layer_groups,
    layerwise_learning_rates,
)


def models():
    torch.manual_seed(0)
    return {
        "bert": tiny_bert(),
        "vit": AutoModelForImageClassification.from_config(CONFIGS["vit"]),
        "resnet": AutoModelForImageClassification.from_config(CONFIGS["resnet"]),
    }


BLOCKS = {"bert": "bert.encoder.layer", "vit": "vit.layers", "resnet": "resnet.encoder.stages"}


@pytest.mark.parametrize("architecture", ["bert", "vit", "resnet"])
def test_layer_groups_partition_the_parameters_from_input_to_output(architecture):
    model = models()[architecture]
    assert find_blocks(model)[0] == BLOCKS[architecture]
    groups = layer_groups(model, "classifier")
    assert [g.name for g in groups] == ["embeddings", "block_0", "block_1", "head"]
    names = [n for g in groups for n in g.parameter_names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())  # every parameter exactly once
    assert all(n.startswith("classifier.") for n in groups[-1].parameter_names)
    assert all(n.startswith(f"{BLOCKS[architecture]}.0.") for n in groups[1].parameter_names)


def test_pooler_and_final_norm_join_the_last_block():
    bert_groups = layer_groups(models()["bert"], "classifier")
    assert "bert.pooler.dense.weight" in bert_groups[2].parameter_names
    vit_groups = layer_groups(models()["vit"], "classifier")
    assert "vit.layernorm.weight" in vit_groups[2].parameter_names


@pytest.mark.parametrize("architecture", ["bert", "vit", "resnet"])
def test_freeze_lowest_layers_freezes_embeddings_and_exactly_the_lowest_blocks(architecture):
    model = models()[architecture]
    groups = {g.name: g.parameter_names for g in layer_groups(model, "classifier")}
    frozen = freeze_lowest_layers(model, "classifier", 1)
    assert sorted(frozen) == sorted(groups["embeddings"] + groups["block_0"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(groups["block_1"] + groups["head"])
    with pytest.raises(ValueError, match="`num_frozen_layers`=3 but .* has 2 blocks"):
        freeze_lowest_layers(model, "classifier", 3)


@pytest.mark.parametrize("architecture", ["bert", "vit", "resnet"])
def test_feature_extraction_trains_only_the_head(architecture):
    model = models()[architecture]
    freeze_backbone(model, "classifier")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("classifier.") for n in trainable)


def test_layerwise_learning_rates_decay_from_the_head_down():
    model = models()["bert"]
    rates = layerwise_learning_rates(model, "classifier", 1e-3, 0.5)
    assert rates["classifier.weight"] == 1e-3
    assert rates["bert.pooler.dense.weight"] == rates["bert.encoder.layer.1.output.dense.weight"] == 5e-4
    assert rates["bert.encoder.layer.0.output.dense.weight"] == 2.5e-4
    assert rates["bert.embeddings.word_embeddings.weight"] == 1.25e-4
    assert set(rates) == {n for n, _ in model.named_parameters()}
    with pytest.raises(ValueError, match="`layerwise_lr_decay` must be in"):
        layerwise_learning_rates(model, "classifier", 1e-3, 1.5)
