"""The example config files in recipes/configs parse with their recipe, and the PEFT file builds an adapter."""

from pathlib import Path

import pytest
from conftest import load_recipe, tiny_bert

CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "configs"


@pytest.mark.parametrize(
    "config, recipe", [(p.name, p.stem) for p in sorted(CONFIGS.glob("*.yaml"))], ids=lambda value: str(value)
)
def test_every_example_config_parses_with_its_recipe(config, recipe):
    *_, training_args = load_recipe(recipe).parse_args([str(CONFIGS / config)])
    assert training_args.output_dir.startswith("outputs/")


def test_the_example_peft_config_file_builds_an_ia3_adapter(tmp_path):
    from hf_transfer import TransferConfig
    from hf_transfer.transfer_strategies import build_peft_config

    args = TransferConfig(
        output_dir=str(tmp_path), transfer_strategy="peft", peft_config_file=str(CONFIGS / "ia3_adapter.json")
    )
    config = build_peft_config(args, tiny_bert(), "classifier")
    assert config.peft_type.value == "IA3" and config.modules_to_save == ["classifier"]
    assert config.task_type == "SEQ_CLS"
