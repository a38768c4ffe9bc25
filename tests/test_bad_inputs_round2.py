"""Bad or unusual inputs, round 2 (docs/troubleshooting.md): each is checked before the first training step with the
argument / file / row / column named and the fix said, or handled as documented; nothing trains silently wrong and
nothing fails after training."""

import csv
import json
import logging

import datasets
import pytest
from conftest import POSITIVE, SOURCE_TOPIC, load_recipe, make_reviews, tiny_bert, tokenize
from transformers import HfArgumentParser

from hf_transfer import FineTuningConfig, FineTuningTrainer
from hf_transfer.recipes.preprocessing import encode_labels

FINISHED_RUN_FILES = {"model.safetensors", "adapter_model.safetensors", "all_results.json", "README.md"}


def _rows(n=32, seed=0, names=("negative", "positive")):
    reviews = make_reviews(SOURCE_TOPIC, n, seed)
    return [{"text": t, "label": names[y] if names else y} for t, y in zip(reviews["text"], reviews["label"])]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def _finetune(tiny_model_dir, out, dataset, *extra):
    arguments = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), "--dataset", dataset,
                 "--test_dataset", "none", "--max_steps", "2", "--per_device_train_batch_size", "8",
                 "--max_length", "16", "--use_cpu", "true", "--report_to", "none", *extra]  # fmt: skip
    return load_recipe("text_cls_finetune").main(arguments)


def _nothing_finished(out) -> bool:
    return not out.exists() or not (FINISHED_RUN_FILES & {p.name for p in out.iterdir()})


def test_a_csv_file_with_string_labels_trains_like_the_same_rows_as_jsonl(tmp_path, tiny_model_dir):
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(_rows())
    metrics = _finetune(tiny_model_dir, tmp_path / "run", str(path))  # a single file: no validation split
    assert "train_loss" in metrics and (tmp_path / "run" / "model.safetensors").exists()
    encoded = encode_labels(datasets.load_dataset("csv", data_files=str(path), split="train"), "dataset", "label",
                            ["negative", "positive"])  # fmt: skip
    assert isinstance(encoded.features["label"], datasets.ClassLabel) and set(encoded["label"]) == {0, 1}


def test_integer_labels_beside_named_classes_are_read_as_class_ids_and_said(caplog):
    rows = datasets.Dataset.from_list(_rows(names=None))  # labels 0 / 1
    with caplog.at_level(logging.INFO):
        encoded = encode_labels(rows, "target_test_dataset", "label", ["negative", "positive"])
    assert encoded["label"] == rows["label"]
    assert "integer labels are read as class ids (0 = 'negative', 1 = 'positive')" in caplog.text
    with pytest.raises(ValueError, match=r"labels \['2'\] \(first at row 3\).*integer class ids 0\.\.1"):
        encode_labels(rows.map(lambda r, i: {"label": 2 if i == 3 else r["label"]}, with_indices=True), "a", "label",
                      ["negative", "positive"])  # fmt: skip
    floats = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0.0, 1.0]})
    with pytest.raises(ValueError, match="float or boolean labels: convert them"):
        encode_labels(floats, "dataset", "label", ["negative", "positive"])


def test_a_single_class_is_refused_before_training_by_the_recipe_and_the_trainer(tmp_path, tiny_model_dir, tokenizer):
    path = _jsonl(tmp_path / "positive.jsonl", [r for r in _rows() if r["label"] == "positive"])
    with pytest.raises(ValueError, match=r"`dataset` has one class only \(\['positive'\]\).*at least two classes"):
        _finetune(tiny_model_dir, tmp_path / "run", path)
    assert _nothing_finished(tmp_path / "run")
    one_class = tokenize(datasets.Dataset.from_dict({"text": ["good great"] * 8, "label": [1] * 8}), tokenizer)
    trainer = FineTuningTrainer(model=tiny_bert(), args=FineTuningConfig(output_dir=str(tmp_path / "t"), max_steps=1,
                                report_to="none", use_cpu=True), train_dataset=one_class)  # fmt: skip
    with pytest.raises(ValueError, match=r"`train_dataset` has rows of one class only \(label 1\)"):
        trainer.train()


def test_the_domain_adaptation_recipe_refuses_one_class_naming_the_source_not_num_labels(tmp_path, tiny_model_dir):
    source = _jsonl(tmp_path / "positive.jsonl", [r for r in _rows() if r["label"] == "positive"])
    target = _jsonl(tmp_path / "target.jsonl", [{"text": r["text"]} for r in _rows(16, seed=1)])
    arguments = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "run"),
                 "--source_dataset", source, "--target_dataset", target, "--target_test_dataset", "none",
                 "--source_validation_split", "none", "--max_steps", "2", "--use_cpu", "true",
                 "--report_to", "none"]  # fmt: skip
    with pytest.raises(ValueError, match=r"`source_dataset` has one class only \(\['positive'\]\)") as error:
        load_recipe("text_cls_dann").main(arguments)
    assert "num_labels" not in str(error.value)
    assert _nothing_finished(tmp_path / "run")


def test_a_model_with_more_classes_than_the_data_says_so(tmp_path, tokenizer, caplog):
    data = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 16, 0)), tokenizer)
    trainer = FineTuningTrainer(model=tiny_bert(num_labels=5), args=FineTuningConfig(output_dir=str(tmp_path),
                                max_steps=1, report_to="none", use_cpu=True), train_dataset=data)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert "The model has 5 classes but `train_dataset` has rows of 2 ([0, 1])" in caplog.text


def test_a_checkpoint_with_a_2_class_head_fine_tunes_on_3_classes(tmp_path, tokenizer):
    tiny_bert(num_labels=2).save_pretrained(tmp_path / "two")
    tokenizer.save_pretrained(tmp_path / "two")
    names = ("bad", "fine", "good")
    rows = [{"text": r["text"], "label": names[i % 3]} for i, r in enumerate(_rows(48))]
    _finetune(tmp_path / "two", tmp_path / "run", _jsonl(tmp_path / "three.jsonl", rows))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["id2label"] == {"0": "bad", "1": "fine", "2": "good"}


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"learning_rate": 0.0}, r"`learning_rate`=0.0 would leave every weight as it is"),
        ({"max_steps": -1, "num_train_epochs": 0}, r"`num_train_epochs`=0 with `max_steps`=-1 trains no step"),
        ({"per_device_eval_batch_size": 0}, r"`per_device_eval_batch_size` must be >= 1"),
        ({"gradient_accumulation_steps": 0}, r"`gradient_accumulation_steps` must be >= 1"),
        ({"label_smoothing_factor": 1.5}, r"`label_smoothing_factor` must be in \[0, 1\)"),
        ({"seed": -3}, r"`seed` must be >= 0"),
        ({"logging_steps": 0}, r"`logging_steps` must be > 0"),
        ({"learning_rate": "fast"}, r"`learning_rate`='fast' is not a number \(float expected\)"),
    ],
)
def test_trainer_numbers_out_of_range_are_refused_naming_the_argument(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        FineTuningConfig(output_dir=str(tmp_path), report_to="none", **settings)


def test_numbers_read_as_strings_from_yaml_become_numbers(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"output_dir: {tmp_path}\nlearning_rate: 5e-5\nmax_steps: 1e1\nreport_to: none\n")
    (config,) = HfArgumentParser(FineTuningConfig).parse_yaml_file(str(path))  # PyYAML reads 5e-5 as a string
    assert config.learning_rate == 5e-5 and config.max_steps == 10 and isinstance(config.max_steps, int)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max_length", "0"], r"`max_length`=0 keeps no token"),
        (["--max_train_samples", "0"], r"A row limit of 0 for `dataset`"),
        (["--max_eval_samples", "0", "--test_dataset", "amazon:kitchen"], r"A row limit of 0 for `test_dataset`"),
        (["--per_device_eval_batch_size", "0"], r"`per_device_eval_batch_size` must be >= 1"),
        (["--learning_rate", "0"], r"`learning_rate`=0.0 would leave every weight"),
    ],
)
def test_recipe_arguments_that_keep_nothing_are_refused_before_anything_is_written(tmp_path, tiny_model_dir, extra,
                                                                                     message):  # fmt: skip
    path = _jsonl(tmp_path / "reviews.jsonl", _rows())
    with pytest.raises(ValueError, match=message):
        _finetune(tiny_model_dir, tmp_path / "run", path, *extra)
    assert _nothing_finished(tmp_path / "run")


def test_rows_longer_than_the_model_and_ids_outside_its_vocabulary_are_refused_before_step_one(tmp_path, tokenizer):
    long_rows = datasets.Dataset.from_dict({"text": [" ".join(POSITIVE * 8)] * 8, "label": [0, 1] * 4})
    long_rows = tokenize(long_rows, tokenizer, max_length=64)  # tiny_bert has 32 positions
    args = FineTuningConfig(output_dir=str(tmp_path), max_steps=1, report_to="none", use_cpu=True)
    trainer = FineTuningTrainer(model=tiny_bert(), args=args, train_dataset=long_rows)
    with pytest.raises(
        ValueError, match=r"rows of 50 tokens, more than the model's 32 positions.*`--max_length` at most 32"
    ):
        trainer.train()
    foreign = datasets.Dataset.from_dict({"input_ids": [[2, 999, 3]] * 8, "label": [0, 1] * 4})
    trainer = FineTuningTrainer(model=tiny_bert(), args=args, train_dataset=foreign)
    with pytest.raises(ValueError, match=r"token id 999, but the model's vocabulary has 29 tokens"):
        trainer.train()


def test_missing_or_non_text_values_name_the_row_and_column(tmp_path, tiny_model_dir):
    rows = _rows()
    rows[5]["text"] = None
    with pytest.raises(ValueError, match=r"`dataset` row 5 has no text in column 'text'"):
        _finetune(tiny_model_dir, tmp_path / "run", _jsonl(tmp_path / "gap.jsonl", rows))
    numbers = [{"text": i, "label": r["label"]} for i, r in enumerate(_rows())]
    with pytest.raises(ValueError, match=r"column 'text' holds int64 values, not text"):
        _finetune(tiny_model_dir, tmp_path / "run", _jsonl(tmp_path / "numbers.jsonl", numbers))
    unlabeled = _rows()
    unlabeled[7]["label"] = None
    with pytest.raises(ValueError, match=r"`dataset` row 7 has no value in its label column 'label'"):
        _finetune(tiny_model_dir, tmp_path / "run", _jsonl(tmp_path / "nolabel.jsonl", unlabeled))
    assert _nothing_finished(tmp_path / "run")


def test_a_single_file_without_any_evaluation_set_finishes_its_run(tmp_path, tiny_model_dir):
    metrics = _finetune(tiny_model_dir, tmp_path / "run", _jsonl(tmp_path / "reviews.jsonl", _rows()))
    assert not any(key.startswith("eval_") for key in metrics)
    assert {"model.safetensors", "README.md", "all_results.json"} <= {p.name for p in (tmp_path / "run").iterdir()}


def test_an_eval_dataset_list_is_refused_at_construction(tmp_path, tokenizer):
    data = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 8, 0)), tokenizer)
    with pytest.raises(TypeError, match=r"`eval_dataset` is a list: give one dataset, or a dict"):
        FineTuningTrainer(model=tiny_bert(), args=FineTuningConfig(output_dir=str(tmp_path), report_to="none"),
                          train_dataset=data, eval_dataset=[data, data])  # fmt: skip


def test_label_free_selection_without_evaluations_or_source_labels_is_refused_before_training(tmp_path, text_domains,
                                                                                             tokenizer):  # fmt: skip
    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, LabelFreeModelSelection

    source, target, target_test = text_domains
    with pytest.raises(ValueError, match=r"`source_validation` has no `label` / `labels` column"):
        LabelFreeModelSelection(source.remove_columns("label"), target)
    callback = LabelFreeModelSelection(source.select(range(8)), target, data_collator=None, max_target_rows=8)
    args = DomainAdaptationConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=8,
                                  use_cpu=True, report_to="none", eval_strategy="no")  # fmt: skip
    trainer = DomainAdaptationTrainer(model=tiny_bert(), args=args, train_dataset=source, target_dataset=target,
                                      processing_class=tokenizer, callbacks=[callback])  # fmt: skip
    with pytest.raises(ValueError, match=r"`eval_strategy` is 'no': it would never run"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_domain_adaptation_says_how_the_batch_splits_and_what_the_loss_holds(tmp_path, text_domains, tokenizer, caplog):
    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer

    source, target, _ = text_domains
    args = DomainAdaptationConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8,
                                  adaptation_loss=["dann", "mmd"], use_cpu=True, report_to="none")  # fmt: skip
    trainer = DomainAdaptationTrainer(model=tiny_bert(), args=args, train_dataset=source, target_dataset=target,
                                      processing_class=tokenizer)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        trainer.get_train_dataloader()
    assert "per_device_train_batch_size=8 holds 4 labeled source rows and 4 unlabeled target rows" in caplog.text
    assert "the task loss plus 1.0 x dann, 1.0 x mmd" in caplog.text


def test_a_lora_card_lists_each_saved_module_once_and_only_modules_the_model_has(tmp_path, tokenizer):
    data = tokenize(datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 16, 0)), tokenizer)
    args = FineTuningConfig(output_dir=str(tmp_path), max_steps=1, transfer_strategy="lora", adapter_rank=2,
                            use_cpu=True, report_to="none")  # fmt: skip
    trainer = FineTuningTrainer(model=tiny_bert(), args=args, train_dataset=data, processing_class=tokenizer)
    trainer.train()
    trainer.save_model()
    card = (tmp_path / "README.md").read_text()
    assert "modules_to_save=['classifier']" in card and "'score'" not in card


def test_a_card_without_set_model_card_info_describes_the_data_it_trained_on(tmp_path, tokenizer):
    path = _jsonl(tmp_path / "my_reviews.jsonl", _rows(16))
    data = tokenize(datasets.load_dataset("json", data_files=path, split="train").class_encode_column("label"),
                    tokenizer)  # fmt: skip
    args = FineTuningConfig(output_dir=str(tmp_path / "run"), max_steps=1, use_cpu=True, report_to="none")
    trainer = FineTuningTrainer(model=tiny_bert(), args=args, train_dataset=data, eval_dataset={"held_out": data},
                                processing_class=tokenizer)  # fmt: skip
    trainer.train()
    trainer.save_model()
    card = (tmp_path / "run" / "README.md").read_text()
    assert "**Training data (labeled):** json (16 rows, columns text, label, input_ids" in card
    assert "not recorded" not in card.split("## How to use")[0] and str(tmp_path) not in card


def test_peft_settings_that_match_nothing_list_what_exists(tmp_path):
    with pytest.raises(ValueError, match=r"\['qkv_proj'\] match no module .* named \['classifier', 'dense', 'key', "
                                         r"'query', 'value'\]"):  # fmt: skip
        FineTuningTrainer(model=tiny_bert(), args=FineTuningConfig(output_dir=str(tmp_path), transfer_strategy="lora",
                          peft_target_modules=["qkv_proj", "query"], report_to="none"))  # fmt: skip
    path = tmp_path / "adapter.json"
    path.write_text(json.dumps({"peft_type": "LORAX", "r": 4}))
    with pytest.raises(ValueError, match=r"`peft_type` 'LORAX', which PEFT .* does not have: choose one of \[.*'LORA'"):
        FineTuningTrainer(model=tiny_bert(), args=FineTuningConfig(output_dir=str(tmp_path), transfer_strategy="peft",
                          peft_config_file=str(path), report_to="none"))  # fmt: skip


def test_resuming_from_a_checkpoint_of_another_kind_of_run_says_what_differs_before_loading(tmp_path, text_domains,
                                                                                           tokenizer):  # fmt: skip
    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer

    source, target, _ = text_domains
    args = FineTuningConfig(output_dir=str(tmp_path), max_steps=1, save_strategy="steps", save_steps=1,
                            use_cpu=True, report_to="none")  # fmt: skip
    FineTuningTrainer(model=tiny_bert(), args=args, train_dataset=source, processing_class=tokenizer).train()
    checkpoint = str(tmp_path / "checkpoint-1")
    adaptation = DomainAdaptationTrainer(
        model=tiny_bert(), args=DomainAdaptationConfig(output_dir=str(tmp_path / "da"), max_steps=2, use_cpu=True,
                                                       report_to="none"),
        train_dataset=source, target_dataset=target, processing_class=tokenizer,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"another kind of run \(trainer: 'FineTuningTrainer' there, "
                                         r"'DomainAdaptationTrainer' here\)"):  # fmt: skip
        adaptation.train(resume_from_checkpoint=checkpoint)
    three = FineTuningTrainer(model=tiny_bert(num_labels=3), args=args, train_dataset=source)
    with pytest.raises(ValueError, match=r"num_labels: 2 there, 3 here"):
        three.train(resume_from_checkpoint=checkpoint)
    assert adaptation.state.global_step == 0 and three.state.global_step == 0


def test_a_dataset_that_was_never_tokenized_is_refused_before_step_one(tmp_path):
    raw = datasets.Dataset.from_dict(make_reviews(SOURCE_TOPIC, 8, 0))
    args = FineTuningConfig(output_dir=str(tmp_path), max_steps=1, use_cpu=True, report_to="none")
    message = r"`train_dataset` has the columns \['text', 'label'\] but none of the model's inputs \['input_ids', "
    with pytest.raises(ValueError, match=message + r"'inputs_embeds'\]: it is not prepared"):
        FineTuningTrainer(model=tiny_bert(), args=args, train_dataset=raw).train()


def test_a_corrupt_image_in_an_evaluation_split_is_named_before_training(tmp_path):
    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for i in range(4):
                pixels = np.full((8, 8, 3), 60 if label == "a" else 200, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (tmp_path / "images" / "test" / "b" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")  # truncated
    arguments = ["--dataset", str(tmp_path / "images"), "--validation_split", "test", "--test_dataset", "none",
                 "--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--image_size", "8", "--use_cpu", "true",
                 "--report_to", "none"]  # fmt: skip
    with pytest.raises(ValueError, match=r"`dataset` row \d+ \(3\.png\) is not a readable image"):
        load_recipe("image_cls_finetune").main(arguments)
    assert _nothing_finished(tmp_path / "run")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n',
         r"could not be read as JSON: .*row 1.* one JSON object per line"),
        ("nested.json", '{"data": {"text": ["a", "b"], "label": ["x", "y"]}}',
         r"holds one JSON object with the keys \['data'\] instead of rows"),
        ("ragged.csv", "text,label\na,x\nb,y,z\n", r"could not be read as CSV: .*Expected 2 fields in line 3"),
        ("table.xlsx", "x", r"has an unsupported extension '\.xlsx'"),
    ],
)  # fmt: skip
def test_malformed_or_unsupported_data_files_name_the_file_and_the_shape_expected(tmp_path, name, content, message):
    from hf_transfer import load_domain_dataset

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_domain_dataset(str(path), "train", "dataset")


def test_image_folders_with_one_class_no_class_folders_or_no_split_folder_say_how_to_lay_them_out(tmp_path):
    import numpy as np
    from PIL import Image

    from hf_transfer import load_domain_dataset

    def image(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(path)

    image(tmp_path / "one" / "train" / "cat" / "0.png")
    image(tmp_path / "flat" / "train" / "0.png")
    with pytest.raises(ValueError, match=r"split folder train/, has one class folder \(cat/\)"):
        load_domain_dataset(str(tmp_path / "one"), "train", "dataset")
    with pytest.raises(ValueError, match=r"holds its images directly: put each class's images in a subfolder"):
        load_domain_dataset(str(tmp_path / "flat"), "train", "dataset")
    with pytest.raises(ValueError, match=r"has no split 'test' \(its subfolders: \['train'\]\)"):
        load_domain_dataset(str(tmp_path / "one"), "test", "dataset")
