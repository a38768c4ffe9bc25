"""DomainAdaptationTrainer on image classifiers (ViT, ResNet) built from tiny configs: no model-specific code."""

import pytest
import torch
from conftest import TINY_VISION_CONFIGS as CONFIGS
from conftest import make_images as images
from transformers import AutoModelForImageClassification, default_data_collator

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer


@pytest.mark.parametrize("architecture, feature_dim", [("vit", 32), ("resnet", 16)])
def test_image_classifiers_adapt_without_model_specific_code(tmp_path, architecture, feature_dim):
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(CONFIGS[architecture])
    args = DomainAdaptationConfig(
        output_dir=str(tmp_path),
        adaptation_loss=["dann", "mmd", "coral"],
        max_steps=3,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
    )
    trainer = DomainAdaptationTrainer(
        model=model,
        args=args,
        train_dataset=images(24, 0.0, 0),
        target_dataset=images(24, 2.0, 1).remove_columns("label"),
        data_collator=default_data_collator,
    )
    assert trainer.domain_discriminator.layers[0].in_features == feature_dim
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) == len(before)
    logged = trainer.state.log_history[0]
    assert {"loss/task", "loss/dann", "loss/mmd", "loss/coral"} <= set(logged)
    trainer.save_model()
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)
    batch = torch.randn(2, 3, 16, 16)
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=batch).logits, trainer.model(pixel_values=batch).logits)
