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


ACCELERATE_CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "accelerate_configs"
EXPECTED_SETUPS = {
    "single_gpu.yaml": "NO",
    "multi_gpu.yaml": "MULTI_GPU",
    "multi_cpu.yaml": "MULTI_CPU",
    "fsdp.yaml": "FSDP",
    "deepspeed_zero2.yaml": "DEEPSPEED",
}


def test_the_accelerate_configs_load_and_every_setting_is_one_accelerate_launch_knows():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    assert sorted(p.name for p in ACCELERATE_CONFIGS.glob("*.yaml")) == sorted(EXPECTED_SETUPS)
    known = {action.dest for action in launch_command_parser()._actions}
    for name, distributed_type in EXPECTED_SETUPS.items():
        config = load_config_from_file(str(ACCELERATE_CONFIGS / name))  # unknown top-level keys raise here
        assert config.distributed_type == distributed_type, name
        # nested settings become `accelerate launch` arguments (fsdp keys with their fsdp_ prefix)
        nested = list(config.fsdp_config) + list(config.deepspeed_config) + list(config.mpirun_config)
        assert all(key in known for key in nested), (name, [key for key in nested if key not in known])
    assert load_config_from_file(str(ACCELERATE_CONFIGS / "deepspeed_zero2.yaml")).deepspeed_config["zero_stage"] == 2
