"""Reading the YAML / JSON files users give as arguments (a recipe's `--config`, a `peft_config_file`)."""

import os

import yaml


def read_yaml_or_json(path: str, argument: str) -> object:
    """The content of a YAML or JSON file (JSON is YAML); `argument` names it in the errors."""
    if not os.path.isfile(path):
        raise ValueError(f"{argument} {path!r} does not exist: pass the path of a YAML or JSON file.")
    with open(path, encoding="utf-8") as handle:
        try:
            return yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ValueError(f"{argument} {path!r} is not valid YAML/JSON: {error}") from error
