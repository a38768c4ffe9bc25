"""Model cards: baselines of the same study (gap closed, negative transfer), Trainer's card arguments, no secrets."""

import copy
import io
import json
from pathlib import Path

import pytest
import torch
from conftest import load_recipe, tiny_bert
from huggingface_hub import ModelCard

from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, TransferReport, compute_classification_metrics

QUICK = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_length", "32", "--max_train_samples", "32"]
QUICK += ["--max_eval_samples", "16", "--use_cpu", "true"]


def test_transfer_report_gap_closed_and_negative_transfer():
    report = TransferReport("accuracy", adapted=0.88, source_only=0.80, oracle=0.90)
    assert report.gain == pytest.approx(0.08) and report.gap_closed == pytest.approx(0.8)
    assert report.negative_transfer is False
    worse = TransferReport("accuracy", adapted=0.885, source_only=0.90)
    assert worse.negative_transfer is True and worse.gain == pytest.approx(-0.015) and worse.gap_closed is None
    assert TransferReport("accuracy", adapted=0.9).negative_transfer is None  # nothing to compare with
    assert TransferReport("accuracy", adapted=0.9, source_only=0.9, oracle=0.85).gap_closed is None  # no gap
    reports = TransferReport.from_results(
        {"eval_target_test_accuracy": 0.7, "eval_target_test_macro_f1": 0.6, "eval_source_validation_accuracy": 0.9},
        source_only_results={"eval_target_test_accuracy": 0.75},
    )
    assert [(r.metric, r.source_only, r.negative_transfer) for r in reports] == [
        ("accuracy", 0.75, True),
        ("macro_f1", None, None),
    ]
    assert reports[0].to_dict()["gain"] == pytest.approx(-0.05)


def trainer_for_cards(tmp_path, text_domains, tokenizer, **kwargs):
    source, target, target_test = text_domains
    args = DomainAdaptationConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        per_device_train_batch_size=8,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        **kwargs,
    )
    return DomainAdaptationTrainer(
        model=tiny_bert(),
        args=args,
        train_dataset=source,
        target_dataset=target,
        eval_dataset={"target_test": target_test},
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
    )


def test_the_card_compares_with_the_baselines_and_warns_of_negative_transfer(tmp_path, text_domains, tokenizer):
    trainer = trainer_for_cards(tmp_path, text_domains, tokenizer)
    trainer.train()
    results = {"eval_target_test_accuracy": 0.84, "eval_target_test_macro_f1": 0.83}
    trainer.set_baselines(
        source_only_results={"eval_target_test_accuracy": 0.80, "eval_target_test_macro_f1": 0.85},
        oracle_results={"eval_target_test_accuracy": 0.90, "eval_target_test_macro_f1": 0.90},
    )
    trainer.create_model_card(results=results)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "| accuracy | 0.8000 | 0.8400 | 0.9000 | +4.00 points | 40 % |" in card
    assert "| macro_f1 | 0.8500 | 0.8300 | 0.9000 | -2.00 points | -40 % |" in card
    assert "**Negative transfer.**" in card and "macro_f1 0.8300 vs 0.8500" in card
    assert "accuracy 0.8400 vs" not in card  # accuracy improved: only macro-F1 is flagged

    trainer.set_baselines(source_only_results={"eval_target_test_accuracy": 0.80})
    trainer.create_model_card(results=results)
    card = (tmp_path / "run" / "README.md").read_text()
    assert "| accuracy | 0.8000 | 0.8400 | not measured | +4.00 points | not measured |" in card
    assert "Negative transfer." not in card

    trainer.set_baselines()  # nothing measured: no comparison is claimed
    trainer.create_model_card(results=results)
    assert "source-only |" not in (tmp_path / "run" / "README.md").read_text()


def test_push_to_hub_card_arguments_reach_the_metadata(tmp_path, text_domains, tokenizer):
    trainer = trainer_for_cards(tmp_path, text_domains, tokenizer)
    trainer.train()
    trainer.create_model_card(
        model_name="run",
        language="en",
        license="apache-2.0",
        tags=["sentiment"],
        finetuned_from="google-bert/bert-base-uncased",
        tasks="text-classification",
        dataset_tags="someone/reviews",
    )
    data = ModelCard.load(tmp_path / "run" / "README.md").data
    assert data.language == "en" and data.license == "apache-2.0"
    assert {"sentiment", "hf_transfer", "domain-adaptation", "dann"} <= set(data.tags)
    assert data.datasets == ["someone/reviews"] and data.pipeline_tag == "text-classification"
    # the run's own record of the base model wins over `finetuned_from` (here: none recorded, so it is used)
    assert data.base_model == "google-bert/bert-base-uncased"
    with pytest.raises(ValueError, match="`dataset_args` is not used by hf_transfer cards"):
        trainer.create_model_card(dataset_args="plain_text")
    with pytest.raises(ValueError, match="`tasks` must name one pipeline task"):
        trainer.create_model_card(tasks=["text-classification", "fill-mask"])


def test_pickled_arguments_hold_no_token_or_absolute_path(tmp_path):
    args = DomainAdaptationConfig(output_dir=str(tmp_path / "run"), hub_token="hf_secret123", use_cpu=True)
    buffer = io.BytesIO()
    torch.save(args, buffer)  # what the Trainer writes to training_args.bin
    assert b"hf_secret123" not in buffer.getvalue() and str(tmp_path).encode() not in buffer.getvalue()
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    assert saved.hub_token is None and saved.output_dir == "run" and saved.adaptation_loss == ["dann"]
    for copied in (copy.copy(args), copy.deepcopy(args)):  # copies in memory keep the real values
        assert copied.hub_token == "hf_secret123" and copied.output_dir == str(tmp_path / "run")
    assert args.hub_token == "hf_secret123"


def test_source_only_run_puts_the_baseline_in_the_card(tmp_path, tiny_model_dir):
    recipe = load_recipe("text_cls_dann")
    model = ["--model_name_or_path", str(tiny_model_dir)]
    baseline_dir = tmp_path / "source_only"
    baseline = recipe.main(model + QUICK + ["--output_dir", str(baseline_dir), "--adaptation_loss", "none"])
    summary = json.loads((baseline_dir / "hf_transfer_run.json").read_text())
    assert summary["facts"]["adaptation_loss"] == [] and str(tmp_path) not in json.dumps(summary)

    out = tmp_path / "dann"
    metrics = recipe.main(model + QUICK + ["--output_dir", str(out), "--source_only_run", str(baseline_dir)])
    card = (out / "README.md").read_text()
    gain = 100 * (metrics["eval_target_test_accuracy"] - baseline["eval_target_test_accuracy"])
    row = (
        f"| accuracy | {baseline['eval_target_test_accuracy']:.4f} | {metrics['eval_target_test_accuracy']:.4f} "
        f"| not measured | {gain:+.2f} points | not measured |"
    )
    assert row in card
    assert ("**Negative transfer.**" in card) == (gain < 0)
    [accuracy, _] = json.loads((out / "hf_transfer_run.json").read_text())["transfer_report"]
    assert accuracy["source_only"] == baseline["eval_target_test_accuracy"]
    assert accuracy["negative_transfer"] == (gain < 0) and accuracy["gap_closed"] is None  # no oracle measured


@pytest.mark.parametrize(
    "change, message",
    [
        (["--seed", "7"], r"seed: 42 there, 7 here"),
        (["--max_steps", "3"], r"max_steps: 2 there, 3 here"),
        (["--target_dataset", "amazon:dvd"], r"target_test_dataset: .*kitchen.* there, .*dvd.* here"),
    ],
)
def test_a_source_only_run_from_another_study_is_refused_before_training(tmp_path, tiny_model_dir, change, message):
    recipe = load_recipe("text_cls_dann")
    model = ["--model_name_or_path", str(tiny_model_dir)]
    baseline_dir = tmp_path / "source_only"
    recipe.main(model + QUICK + ["--output_dir", str(baseline_dir), "--adaptation_loss", "none"])
    out = tmp_path / "dann"
    with pytest.raises(ValueError, match=rf"`source_only_run` .* is not a baseline of this run \(.*{message}"):
        recipe.main(model + QUICK + ["--output_dir", str(out), "--source_only_run", str(baseline_dir), *change])
    assert not out.exists()  # refused before anything was written


def test_source_only_run_must_be_a_finished_source_only_run(tmp_path, tiny_model_dir):
    recipe = load_recipe("text_cls_dann")
    model = ["--model_name_or_path", str(tiny_model_dir)]
    with pytest.raises(ValueError, match=r"`source_only_run` .* holds no hf_transfer_run.json.*--adaptation_loss none"):
        recipe.main(model + QUICK + ["--output_dir", str(tmp_path / "a"), "--source_only_run", str(tmp_path)])
    recipe.main(model + QUICK + ["--output_dir", str(tmp_path / "dann")])
    with pytest.raises(ValueError, match=r"was trained with adaptation_loss \['dann', 'self_training'\]"):
        recipe.main(model + QUICK + ["--output_dir", str(tmp_path / "b"), "--source_only_run", str(tmp_path / "dann")])


def test_the_model_cards_page_shows_the_committed_card_of_the_default_run():
    root = Path(__file__).resolve().parents[1]
    committed = (root / "model_cards" / "text_cls_dann_books_to_kitchen.md").read_text()
    page = (root / "docs" / "model_cards.md").read_text()
    shown = page.split("````markdown\n", 1)[1].split("\n````", 1)[0]
    assert shown == committed.rstrip("\n")
    card = ModelCard(committed)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and card.data.eval_results
    assert "**Negative transfer.**" in card.text  # what that run measured: DANN below its source-only baseline


def test_save_model_writes_the_card_in_a_plain_trainer_script(tmp_path, text_domains, tokenizer):
    trainer = trainer_for_cards(tmp_path, text_domains, tokenizer, eval_strategy="no")
    trainer.train()
    trainer.evaluate()
    trainer.save_model()  # no recipe, no create_model_card call: the card comes with the model
    card = ModelCard.load(tmp_path / "run" / "README.md")
    assert card.data.eval_results and "DANN" in card.text and "Measured at the end of this run" in card.text
    trainer.save_model(str(tmp_path / "copy"))
    assert ModelCard.load(tmp_path / "copy" / "README.md").data.model_name == "copy"
