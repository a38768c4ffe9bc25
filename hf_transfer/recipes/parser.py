"""The recipes' command line: the recipe's defaults, then a YAML/JSON config file, then command-line overrides.

    accelerate launch recipes/text_cls_dann.py recipes/configs/text_cls_dann.yaml --max_steps 50 --seed 1
    accelerate launch recipes/text_cls_dann.py --config recipes/configs/text_cls_dann.yaml --max_steps 50

The file holds a mapping of argument names (those of `--help`) to values; every name in it must be one the recipe
knows. As with TRL's `TrlParser`, what the command line gives wins over the file, and the file over the defaults.
"""

import sys

from transformers import HfArgumentParser

from ..config_files import read_yaml_or_json

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def parse_recipe_args(dataclass_types: tuple, defaults: dict, argv: list[str] | None = None) -> tuple:
    """One instance of each of `dataclass_types`, from `defaults` < config file < command line (`argv`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_file, argv = split_config_file(argv)
    parser = HfArgumentParser(dataclass_types)
    values = dict(defaults)
    if config_file is not None:
        values.update(read_config_file(config_file, {action.dest for action in parser._actions}))
    if values.get("bf16") and _asks_for_fp16(values, argv):
        values["bf16"] = False  # the recipe's bf16 default gives way to an explicit fp16
    parser.set_defaults(**values)
    return parser.parse_args_into_dataclasses(args=argv)


def split_config_file(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the config file, the other arguments): the file is `--config <file>` (or `--config=<file>`), or a first
    argument ending in .yaml / .yml / .json."""
    for index, argument in enumerate(argv):
        if argument == "--config":
            if index + 1 == len(argv):
                raise ValueError("`--config` needs a file: --config <file.yaml|file.json>.")
            return argv[index + 1], argv[:index] + argv[index + 2 :]
        if argument.startswith("--config="):
            return argument.split("=", 1)[1], argv[:index] + argv[index + 1 :]
    if argv and not argv[0].startswith("-") and argv[0].endswith(CONFIG_SUFFIXES):
        return argv[0], argv[1:]
    return None, argv


def read_config_file(path: str, known: set[str]) -> dict:
    """The mapping in a YAML/JSON config file, checked to name only arguments in `known`."""
    values = read_yaml_or_json(path, "The config file")
    if not isinstance(values, dict):
        raise ValueError(f"The config file {path} must hold a mapping of argument names to values.")
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"The config file {path} names argument(s) {unknown} that this recipe does not have: fix the names "
            "(`--help` lists them) or remove them."
        )
    return values


def _asks_for_fp16(values: dict, argv: list[str]) -> bool:
    """Whether the config file or the command line turns `fp16` on."""
    truthy = ("true", "1", "yes", "y", "t")
    for index, argument in enumerate(argv):
        if argument == "--fp16":
            following = argv[index + 1] if index + 1 < len(argv) else ""
            return following.startswith("--") or not following or following.lower() in truthy
        if argument.startswith("--fp16="):
            return argument.split("=", 1)[1].lower() in truthy
    return bool(values.get("fp16"))
