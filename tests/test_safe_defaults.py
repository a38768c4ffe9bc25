"""Safe defaults: no custom code from a model folder unless asked, safetensors weights only, no Hub token anywhere a
run writes (files, checkpoints, logs)."""

import json
import logging

import pytest
import torch
from conftest import load_recipe, tiny_bert
from test_recipe_text_cls_dann import QUICK

TOKEN = "hf_SeCrEtToKeN1234567890abcdefghij"


@pytest.mark.parametrize("recipe", ["text_cls_dann", "text_cls_finetune", "image_cls_dann", "image_cls_finetune"])
def test_trust_remote_code_is_off_unless_asked(recipe):
    model_args, *_ = load_recipe(recipe).parse_args(["--output_dir", "x"])
    assert model_args.trust_remote_code is False
    model_args, *_ = load_recipe(recipe).parse_args(["--output_dir", "x", "--trust_remote_code", "true"])
    assert model_args.trust_remote_code is True


def test_a_model_folder_with_custom_code_is_not_executed_by_default(tmp_path, tiny_model_dir):
    marker = tmp_path / "custom_code_ran"
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_custom.CustomModel"}
    (tiny_model_dir / "config.json").write_text(json.dumps(config))
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    code += "from transformers import BertForSequenceClassification\n\n\n"
    code += "class CustomModel(BertForSequenceClassification):\n    pass\n"
    (tiny_model_dir / "modeling_custom.py").write_text(code)
    arguments = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "run"), *QUICK]
    load_recipe("text_cls_dann").main(arguments)  # the library's own BERT class, the folder's code never imported
    assert not marker.exists()
    load_recipe("text_cls_dann").main([*arguments, "--trust_remote_code", "true"])  # asked for: it runs
    assert marker.read_text() == "ran"


def test_pickled_weights_are_refused_with_the_way_out(tmp_path, tokenizer):
    folder = tmp_path / "pickled"
    model = tiny_bert()
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(OSError, match=r"has no safetensors weights .*safetensors only.*use_safetensors=False"):
        load_recipe("text_cls_dann").main(
            ["--model_name_or_path", str(folder), "--output_dir", str(tmp_path / "r"), *QUICK]
        )


def test_no_hub_token_in_any_file_or_log_of_a_run(tmp_path, tiny_model_dir, capfd, caplog):
    out = tmp_path / "run"
    caplog.set_level(logging.DEBUG)
    load_recipe("text_cls_dann").main(
        ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *QUICK]
        + ["--hub_token", TOKEN, "--save_strategy", "steps", "--save_steps", "1", "--logging_steps", "1"]
    )
    written = [p for p in out.rglob("*") if p.is_file()]
    assert {"training_args.bin", "trainer_state.json", "README.md", "hf_transfer_run.json"} <= {p.name for p in written}
    assert any("checkpoint-2" in str(p) for p in written)
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    printed = capfd.readouterr()
    assert TOKEN not in printed.out + printed.err + caplog.text
    assert not [p for p in written if p.suffix in (".bin", ".pt", ".pth") and "model" in p.name]  # weights: safetensors
    assert (out / "model.safetensors").exists() and (out / "checkpoint-2" / "model.safetensors").exists()
