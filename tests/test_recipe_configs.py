"""The example config files in recipes/configs parse with their recipe, and the PEFT file builds an adapter."""

from pathlib import Path

import pytest
from conftest import load_recipe, tiny_bert

CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "configs"


@pytest.mark.parametrize(
    "config, recipe", [(p.name, p.stem) for p in sorted(CONFIGS.glob("*.yaml"))], ids=lambda value: str(value)
)
def test_every_example_config_parses_with_its_recipe(config, recipe):
    """Every setting of the file reaches the parsed arguments with its value (and a number stays a number)."""
    import yaml

    settings = yaml.safe_load((CONFIGS / config).read_text())
    parsed = load_recipe(recipe).parse_args([str(CONFIGS / config)])
    training_args = parsed[-1]
    assert training_args.output_dir.startswith("outputs/")
    for key, value in settings.items():
        holders = [args for args in parsed if hasattr(args, key)]
        assert holders, f"{config}: {key} reaches no argument dataclass"
        parsed_value = getattr(holders[0], key)
        if hasattr(parsed_value, "value"):  # enums such as eval_strategy
            parsed_value = parsed_value.value
        if key == "source_only_steps" and 0 < value < 1:  # a fraction of max_steps, resolved to steps
            assert parsed_value == round(value * training_args.max_steps), (config, key)
        elif isinstance(value, float) or isinstance(parsed_value, float):
            assert isinstance(parsed_value, float) and parsed_value == pytest.approx(float(value)), (config, key)
        elif value == "none" and parsed_value in ([], None):
            continue  # 'none' means no loss / no split
        else:
            assert parsed_value == value, (config, key, value, parsed_value)


def test_the_example_peft_config_file_builds_an_ia3_adapter(tmp_path):
    from hf_transfer import TransferConfig
    from hf_transfer.strategies import build_peft_config

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


def test_command_line_arguments_override_the_config_file(tmp_path):
    recipe = load_recipe("text_cls_dann")
    config = CONFIGS / "text_cls_dann.yaml"  # max_steps 300, seed 42
    for argv in ([str(config)], ["--config", str(config)], [f"--config={config}"]):
        _, data_args, _, args = recipe.parse_args(argv + ["--max_steps", "7", "--adaptation_loss", "mmd", "coral"])
        assert (args.max_steps, args.adaptation_loss, args.seed) == (7, ["mmd", "coral"], 42)
        assert data_args.target_dataset == "amazon:kitchen" and args.output_dir == "outputs/text_cls_dann"
    *_, args = recipe.parse_args([str(config)])
    assert args.max_steps == 300 and args.learning_rate == 5e-5  # the file over the recipe's defaults
    *_, args = recipe.parse_args([])
    assert args.max_steps == 300 and args.per_device_train_batch_size == 32  # the recipe's defaults alone
    assert args.source_only_steps == 150  # half of max_steps


def test_a_config_file_with_an_unknown_name_or_no_mapping_is_refused(tmp_path):
    recipe = load_recipe("text_cls_dann")
    typo = tmp_path / "typo.yaml"
    typo.write_text("max_step: 10\nseed: 1\n")
    with pytest.raises(
        ValueError, match=r"typo.yaml names argument\(s\) \['max_step'\] that this recipe does not have"
    ):
        recipe.parse_args([str(typo)])
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a mapping of argument names to values"):
        recipe.parse_args(["--config", str(listed)])
    with pytest.raises(ValueError, match="The config file .*missing.yaml' does not exist"):
        recipe.parse_args(["--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(ValueError, match="`--config` needs a file"):
        recipe.parse_args(["--seed", "1", "--config"])
