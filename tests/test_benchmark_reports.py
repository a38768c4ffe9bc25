"""The benchmark scripts' bookkeeping: reading evaluations from a Trainer log, the records per selection rule, the
appended results file and the Amazon report's arithmetic (gain, label-free choice across methods, coverage)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import amazon  # noqa: E402
import common  # noqa: E402

from hf_transfer.evaluation.selection import VALIDATORS  # noqa: E402


def entry(step, accuracy, **validators):
    """One evaluation of a run's history; validators not given take their worst value here."""
    values = {name: 0.0 if higher_is_better else 9.0 for name, higher_is_better in VALIDATORS.items()}
    values.update(validators)
    return {
        "step": step,
        "target_accuracy": accuracy,
        "target_macro_f1": accuracy - 0.01,
        "source_validation_accuracy": values["source_accuracy"],
        **values,
    }


def run(source, target, method, history):
    base = {"source": source, "target": target, "method": method, "seed": 42, "history": history}
    return [{**r, "protocol": "p"} for r in common.selection_records(base, history)]


def test_evaluations_reads_each_step_once_with_its_validators():
    log = [
        {"loss": 0.7, "step": 10},
        {"eval_source_validation_accuracy": 0.8, "eval_selection_im": 0.2, "eval_selection_dev": 0.3, "step": 50},
        {"eval_target_test_accuracy": 0.85, "eval_target_test_macro_f1": 0.84, "step": 50},
        {"eval_target_test_accuracy": 0.9, "eval_target_test_macro_f1": 0.89, "step": 100},
        {"eval_target_test_accuracy": 0.1, "step": 100},  # a second evaluation of the same step (after training)
    ]
    history = common.evaluations(log)
    assert [h["step"] for h in history] == [50, 100]
    assert history[0]["target_accuracy"] == 0.85 and history[0]["source_validation_accuracy"] == 0.8
    assert history[0]["im"] == 0.2 and history[0]["dev"] == 0.3 and history[0]["snd"] is None
    assert history[1]["target_accuracy"] == 0.9  # the in-training evaluation, not the later one


def test_selection_records_pick_the_checkpoint_each_rule_prefers():
    history = [entry(50, 0.70, im=0.9, dev=0.2), entry(100, 0.90, im=0.1, dev=0.4), entry(150, 0.80, im=0.5, dev=0.1)]
    records = {r["selection_rule"]: r for r in run("books", "kitchen", "dann", history)}
    assert set(records) == set(common.RULES)
    assert records["last"]["selected_step"] == 150 and records["last"]["target_accuracy"] == 0.80
    assert records["oracle"]["selected_step"] == 100
    assert records["im"]["selected_step"] == 50  # higher is better
    assert records["dev"]["selected_step"] == 150  # lower is better


def test_results_file_appends_skips_and_keeps_protocols_apart(tmp_path):
    path = tmp_path / "results.json"
    first = common.ResultsFile(path, {"max_steps": 150}, lambda records: f"{len(records)} records\n")
    first.add([{"source": "books", "target": "kitchen", "method": "dann", "seed": 42, "selection_rule": "last"}])
    assert first.done(source="books", method="dann") and not first.done(source="dvd")
    assert path.with_suffix(".md").read_text() == "1 records\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]  # no partial file left

    again = common.ResultsFile(path, {"max_steps": 150}, lambda records: "")
    assert again.done(source="books", method="dann")  # read back: a rerun skips it
    assert again.records[0]["code"]  # every record says which code measured it

    other = common.ResultsFile(path, {"max_steps": 300}, lambda records: "")
    assert not other.done(source="books", method="dann")  # another protocol does not count
    other.save()
    data = json.loads(path.read_text())
    assert len(data["protocols"]) == 2 and len(data["records"]) == 1  # saving another protocol keeps the old runs


@pytest.fixture
def records():
    rows = []
    # books -> kitchen: DANN's step 100 beats source-only's last checkpoint; MMD collapses early but looks aligned
    rows += run("books", "kitchen", "source_only", [entry(50, 0.86, im=0.2), entry(100, 0.88, im=0.3)])
    rows += run("books", "kitchen", "dann", [entry(50, 0.85, im=0.25), entry(100, 0.91, im=0.4)])
    rows += run("books", "kitchen", "mmd", [entry(50, 0.60, im=0.05, proxy_a_distance=0.1), entry(100, 0.87)])
    rows += run("books", "kitchen", "coral", [entry(50, 0.84), entry(100, 0.87, im=0.35)])
    # electronics -> books: only source-only and DANN so far
    rows += run("electronics", "books", "source_only", [entry(50, 0.80), entry(100, 0.84)])
    rows += run("electronics", "books", "dann", [entry(50, 0.82), entry(100, 0.60)])
    rows.append({"source": "kitchen", "target": "kitchen", "method": "oracle", "seed": 42, "selection_rule": "last",
                 "target_accuracy": 0.93, "protocol": "p"})  # fmt: skip
    return rows


def test_amazon_report_gain_gap_closed_and_coverage(records):
    text = amazon.report(records)
    assert "| books → kitchen | 88.0 | 91.0 | 87.0 | 87.0 | 93.0 |" in text
    # DANN: +3 on books -> kitchen, -24 on electronics -> books; gap closed (0.91-0.88)/(0.93-0.88) = 0.6
    assert "| DANN | 2 | -10.50 | 1 of 2 | 0.60 (the 1 pair whose oracle beats source-only) |" in text
    assert "- source-only: 2 of 12 pairs (not yet: books → dvd," in text
    assert "- oracle: 1 of 4 target domains (not yet: books, dvd, electronics)" in text
    assert "The benchmark is not complete." in text


def test_amazon_gap_closed_is_pooled_over_the_pairs_with_an_oracle(records):
    records.append({"source": "books", "target": "books", "method": "oracle", "seed": 42, "selection_rule": "last",
                    "target_accuracy": 0.94, "protocol": "p"})  # fmt: skip
    # DANN: (0.91 - 0.88) / (0.93 - 0.88) = 0.6 on books -> kitchen, (0.60 - 0.84) / (0.94 - 0.84) = -2.4 on
    # electronics -> books; pooled (0.03 - 0.24) / (0.05 + 0.10) = -1.4, not the mean of the ratios (-0.9)
    expected = "| DANN | 2 | -10.50 | 1 of 2 | -1.40 (the 2 pairs whose oracle beats source-only) |"
    assert expected in amazon.report(records)


def test_amazon_gap_closed_leaves_out_a_pair_whose_oracle_does_not_beat_source_only(records):
    records.append({"source": "books", "target": "books", "method": "oracle", "seed": 42, "selection_rule": "last",
                    "target_accuracy": 0.83, "protocol": "p"})  # fmt: skip
    # electronics -> books: the oracle (0.83) is below source-only (0.84), there is no gap to close there
    assert "| DANN | 2 | -10.50 | 1 of 2 | 0.60 (the 1 pair whose oracle beats source-only) |" in amazon.report(records)


def test_amazon_report_label_free_choice_across_methods(records):
    text = amazon.report(records)
    table = text.split("## Label-free choice across methods and checkpoints: the four standard methods")[1]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert "on the\n1 pairs where all of them ran: books → kitchen." in table  # electronics -> books lacks MMD
    assert rows["im"] == "| im | 1 | 91.0 | +3.00 | 1 of 1 |"  # DANN's step 100 has the highest IM
    assert rows["proxy_a_distance"] == "| proxy_a_distance | 1 | 60.0 | -28.00 | 0 of 1 |"  # the collapsed MMD
    assert rows["target labels"] == "| target labels | 1 | 91.0 | +3.00 | 1 of 1 |"
    assert "tuning candidates included" not in text  # no --define'd method in these records


def test_amazon_report_with_a_method_defined_on_the_command_line(records, monkeypatch):
    """A `--define`d method joins the tables of the results file, but not the coverage or the standard summary."""
    monkeypatch.setattr(amazon, "METHODS", dict(amazon.METHODS))  # parse_arguments adds to it
    args = amazon.parse_arguments(["--define", "mcc", "--adaptation_loss mcc", "--methods", "mcc"])
    assert args.methods == ["mcc"] and amazon.METHODS["mcc"] == ["--adaptation_loss", "mcc"]
    rows = records + run("books", "kitchen", "mcc", [entry(50, 0.90), entry(100, 0.92)])
    text = amazon.report(rows)
    assert "| mcc | 1 | +4.00 | 1 of 1 |" in text  # 92 against source-only's 88
    assert "\n- mcc" not in text and "- oracle: 1 of 4" in text  # coverage: the benchmark's methods only
    standard = text.split("the four standard methods")[1].split("##")[0]
    assert "mcc" not in standard
    assert "mcc" in text.split("tuning candidates included")[1].split("##")[0]
    assert "mcc" not in amazon.summary(rows)


def test_amazon_tuning_table_ranks_the_methods_of_both_dev_pairs_by_the_declared_validator():
    rows = []
    for pair, offset in (("books:kitchen", 0.0), ("electronics:books", -0.05)):
        source, target = pair.split(":")
        rows += run(source, target, "source_only", [entry(100, 0.88 + offset, dev=0.3)])
        rows += run(source, target, "mcc", [entry(100, 0.86 + offset, dev=0.1)])  # lowest DEV, lower accuracy
        rows += run(source, target, "dann", [entry(100, 0.90 + offset, dev=0.5)])
    rows += run("books", "kitchen", "im", [entry(100, 0.95, dev=0.0)])  # one dev pair only: not ranked
    table = amazon.report(rows).split("## Label-free tuning on the dev pairs")[1].split("\n## ")[0]
    ranked = [line.split(" | ")[1] for line in table.splitlines() if line.startswith("| ") and "rank" not in line]
    assert ranked == ["mcc", "source-only", "DANN"]  # by mean DEV, the rule's order, whatever the accuracy
    assert "| 1 | mcc |" in table and table.splitlines()[-1].endswith("| 87.5 | +2.00 |")  # DANN, after the fact
    assert "| 83.5 | -2.00 |" in table and "| 85.5 | – |" in table
    assert "## Label-free tuning on the dev pairs" in amazon.summary(rows).replace("####", "##")


def test_amazon_report_is_complete_when_every_run_is_in():
    rows = []
    for pair in amazon.PAIRS:
        source, target = pair.split(":")
        for method in amazon.METHODS:
            rows += run(source, target, method, [entry(50, 0.8), entry(100, 0.85)])
    for domain in amazon.DOMAINS:
        rows.append({"source": domain, "target": domain, "method": "oracle", "seed": 42, "selection_rule": "last",
                     "target_accuracy": 0.9, "protocol": "p"})  # fmt: skip
    text = amazon.report(rows)
    assert "The benchmark is complete." in text and "not yet" not in text
    assert "| DANN | 12 | +0.00 | 0 of 12 | 0.00 (the 12 pairs whose oracle beats source-only) |" in text


def test_usps_mnist_report_per_seed_gain_and_gap_closed():
    import usps_mnist

    rows = []
    for seed, (source_only, dann, oracle) in {42: (0.70, 0.90, 0.98), 43: (0.80, 0.78, 0.98)}.items():
        for method, accuracy in (("source_only", source_only), ("dann", dann)):
            found = run("usps", "mnist", method, [entry(300, accuracy - 0.05), entry(600, accuracy)])
            rows += [{**r, "model": "resnet", "seed": seed, "wall_seconds": 60.0} for r in found]
        found = run("mnist", "mnist", "oracle", [entry(600, oracle)])[:1]
        rows += [{**r, "model": "resnet", "seed": seed, "wall_seconds": 60.0} for r in found]
    text = usps_mnist.report(rows)
    # DANN vs source-only of the same seed: +20 and -2 points; gap closed 20/28 and -2/18
    assert "| DANN | 2 | +9.00 | 1 of 2 | 0.30 |" in text
    assert "| source-only | 2 | 75.0 ± 7.1 | 75.0 ± 7.1 |" in text  # last and oracle-selected: the last step


def test_amazon_summary_in_a_page_is_rewritten_between_its_markers(records, tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Title\n\nbefore\n{amazon.SUMMARY_START}\nold numbers\n{amazon.SUMMARY_END}\nafter\n")
    assert amazon.update_summary(records, page)
    text = page.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{amazon.SUMMARY_END}\nafter\n")
    assert "old numbers" not in text and "### Coverage" in text
    assert "| books → kitchen | 88.0 | 91.0 | 87.0 | 87.0 | 93.0 |" in text
    assert "### Label-free choice across methods and checkpoints: the four standard methods" in text
    assert amazon.update_summary(records, page) and page.read_text() == text  # rewriting twice changes nothing

    page.write_text("no markers\n")
    assert not amazon.update_summary(records, page) and page.read_text() == "no markers\n"


def test_the_benchmarks_page_shows_the_committed_amazon_results():
    """docs/benchmarks.md's Amazon summary is the one the committed results give (regenerate it with
    `python benchmarks/amazon.py --report_only` after adding results)."""
    args = amazon.parse_arguments([])
    results = common.ResultsFile(ROOT / "benchmarks/results/amazon.json", amazon.protocol_of(args), amazon.report)
    assert len(results.records) > 0
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    shown = page.split(amazon.SUMMARY_START)[1].split(amazon.SUMMARY_END)[0]
    assert shown == f"\n{amazon.summary(results.records)}\n", "run `python benchmarks/amazon.py --report_only`"


def test_oracle_folds_split_the_target_reviews_in_two_with_identical_texts_together(tmp_path):
    from hf_transfer import load_amazon_reviews

    reviews = load_amazon_reviews("kitchen", "test")
    names = reviews.features["label"].names
    (train0, test0), (train1, test1) = amazon.oracle_folds("kitchen", 42, tmp_path)
    assert (train0, test0) == (test1, train1)
    halves = [[json.loads(line) for line in path.open()] for path in (train0, train1)]
    assert sum(map(len, halves)) == len(reviews) and abs(len(halves[0]) - len(halves[1])) < 0.05 * len(reviews)
    texts = [{row["text"] for row in half} for half in halves]
    assert not texts[0] & texts[1]  # a text (and every copy of it) is in one fold only
    rows = sorted((row["text"], row["label"]) for half in halves for row in half)
    assert rows == sorted(zip(reviews["text"], [names[label] for label in reviews["label"]]))  # nothing lost
    assert amazon.oracle_folds("kitchen", 42, tmp_path / "again") != amazon.oracle_folds("kitchen", 43, tmp_path / "b")
    again = [p.read_text() for p, _ in amazon.oracle_folds("kitchen", 42, tmp_path / "again")]
    assert again == [train0.read_text(), train1.read_text()]  # the same seed, the same folds


def test_oracle_accuracy_is_pooled_over_the_rows_and_macro_f1_averaged_over_the_folds(tmp_path, monkeypatch):
    """Two folds of 3 and 1 test rows with accuracies 1/3 and 1: pooled 2/4 = 0.5 (not the mean 0.667)."""
    folds = iter([(1 / 3, 0.2), (1.0, 0.6)])

    def fake_run(command, output_dir):
        accuracy, f1 = next(folds)
        log = [{"eval_target_test_accuracy": accuracy, "eval_target_test_macro_f1": f1, "step": 150}]
        return {"log_history": log, "wall_seconds": 1.0, "cpu_seconds": 2.0, "results": {"train_runtime": 0.5}}

    def fake_folds(target, seed, folder):
        folder.mkdir(parents=True)
        (folder / "a.jsonl").write_text('{"text": "x", "label": "positive"}\n' * 3)
        (folder / "b.jsonl").write_text('{"text": "y", "label": "negative"}\n')
        return [(folder / "b.jsonl", folder / "a.jsonl"), (folder / "a.jsonl", folder / "b.jsonl")]

    monkeypatch.setattr(amazon, "run_recipe", fake_run)
    monkeypatch.setattr(amazon, "oracle_folds", fake_folds)
    args = type("Args", (), {"output_root": str(tmp_path), "max_steps": 150, "eval_steps": 50, "extra": []})()
    (record,) = amazon.oracle_records("kitchen", 42, args)
    assert record["target_accuracy"] == pytest.approx(0.5)
    assert record["target_macro_f1"] == pytest.approx(0.4)
    assert [fold["rows"] for fold in record["folds"]] == [3, 1]
    assert record["wall_seconds"] == 2.0 and record["cpu_seconds"] == 4.0


# ---- the two-stage benchmark -------------------------------------------------------------------------------------

import amazon_two_stage  # noqa: E402


def evidence(atc, dev):
    return {"atc_target_accuracy": atc, "atc_threshold": -0.3, "source_accuracy": 0.85, "target_diversity": 0.9,
            "target_class_shares": [0.5, 0.5], "dev": dev}  # fmt: skip


def two_stage_records(pair, seed, stage1, source_only, adapted, kept, atc=(0.6, 0.8), dev=0.2, agreement=0.95):
    source, target = pair.split(":")
    base = {"source": source, "target": target, "seed": seed}
    guard = {"reference": evidence(atc[0], 0.1), "adapted": evidence(atc[1], dev), "agreement": agreement}
    final = adapted if kept else stage1
    return [
        {**base, "method": "stage1", "target_accuracy": stage1},
        {**base, "method": "source_only", "target_accuracy": source_only, "guard": None, "guard_choice": None,
         "before_guard_target_accuracy": source_only},
        {**base, "method": "dann_0.1_st", "target_accuracy": final, "before_guard_target_accuracy": adapted,
         "guard": guard, "guard_choice": "adapted" if kept else "stage1"},
    ]  # fmt: skip


def test_the_two_stage_summary_and_goals_are_computed_from_the_records():
    records = two_stage_records("books:kitchen", 42, 0.90, 0.91, 0.93, kept=True)
    records += two_stage_records("books:kitchen", 43, 0.89, 0.90, 0.88, kept=False)
    records += two_stage_records("dvd:books", 42, 0.80, 0.82, 0.815, kept=True)
    summary = amazon_two_stage.summary_records(records)
    assert [(r["source"], r["seed"], r["source_only"], r["recipe_default"], r["guard_choice"]) for r in summary] == [
        ("books", 42, 91.0, 93.0, "adapted"), ("books", 43, 90.0, 89.0, "stage1"), ("dvd", 42, 82.0, 81.5, "adapted"),
    ]  # fmt: skip
    assert summary[1]["recipe_default_before_guard"] == 88.0 and summary[1]["stage1"] == 89.0
    table = "\n".join(amazon_two_stage.final_table(records))
    # books → kitchen: mean of (93 − 91) and (89 − 90) = +0.50; dvd → books: −0.50; mean over the 3 runs: +0.17
    assert "| books → kitchen | 42, 43 | 90.50 | 89.50 | 90.50 | 91.00 | 1 of 2 | +0.50 |" in table
    assert "- rule 1: mean gain over source-only +0.17 points" in table
    assert "pairs better than source-only 1 of 2" in table and "worst pair -0.50 points" in table


def test_guard_rule_two_is_applied_to_the_stored_evidence_of_each_run():
    # rule 1 kept both adapted models; rule 2 reverts the one that changed 12 % of the target predictions
    records = two_stage_records("electronics:dvd", 43, 0.82, 0.83, 0.80, kept=True, agreement=0.88)
    records += two_stage_records("dvd:books", 43, 0.87, 0.87, 0.88, kept=True, agreement=0.95)
    summary = amazon_two_stage.summary_records(records)
    assert [(r["guard_choice"], r["guard_choice_rule2"], r["recipe_default_rule2"]) for r in summary] == [
        ("adapted", "adapted", 88.0), ("adapted", "stage1", 82.0),
    ]  # fmt: skip
    table = "\n".join(amazon_two_stage.final_table(records))
    # rule 1: (88 − 87) and (80 − 83): mean −1.00; rule 2: (88 − 87) and (82 − 83): mean 0.00
    assert "- rule 1: mean gain over source-only -1.00 points" in table
    assert "- rule 2: mean gain over source-only +0.00 points" in table
    # per seed: rule 1 lost 2 points against the better model (stage 1, 82) on one run; rule 2 on none
    assert "| 43 | 2 | 85.00 | 84.50 | 84.00 | 84.00 | 2 | 1 | 85.00 | 1 | 0 |" in table
    assert "| all | 2 | 85.00 | 84.50 | 84.00 | 84.00 | 2 | 1 | 85.00 | 1 | 0 |" in table


def test_the_declared_rule_ranks_by_the_atc_estimate_then_dev():
    records = []
    for pair in amazon_two_stage.DEV_PAIRS:
        for method, atc, dev in (("dann_0.1", 0.70, 0.1), ("dann_0.1_st", 0.80, 0.3), ("cdan_e_0.1_st", 0.8005, 0.2)):
            rows = two_stage_records(pair, 42, 0.8, 0.8, 0.8, kept=True, atc=(0.6, atc), dev=dev)
            records += [{**r, "method": method} if r["method"] == "dann_0.1_st" else r for r in rows]
    lines = [line for line in amazon_two_stage.tuning_table(records) if line.startswith("| 1 |")]
    assert lines[0].startswith("| 1 | cdan_e_0.1_st |")  # 80.05 and 80.00 tie within 0.1 point: the lower DEV wins


# ---- the distillation benchmark ----------------------------------------------------------------------------------

import distillation  # noqa: E402


def test_distillation_commands_reuse_the_teacher_and_leave_out_the_unlabeled_rows_where_declared(tmp_path):
    args = distillation.parse_arguments(["--output_root", str(tmp_path)])
    default = distillation.command_of("books:kitchen", 42, "kd_unlabeled", args)
    hard = distillation.command_of("books:kitchen", 42, "hard", args)
    assert "--teacher_model_name_or_path" not in default and "--alpha" not in default
    assert hard[hard.index("--teacher_model_name_or_path") + 1].endswith("books_kitchen_seed42/kd_unlabeled/teacher")
    assert hard[hard.index("--alpha") + 1] == "1"
    # the last --target_dataset wins: none, with the kitchen test set kept
    assert hard[len(hard) - 1 - hard[::-1].index("--target_dataset") + 1] == "none"
    assert hard[hard.index("--target_test_dataset") + 1] == "amazon:kitchen"
    assert default[default.index("--bf16") + 1] == "true"
    assert "--bf16" not in distillation.command_of("usps:mnist", 42, "kd", args)  # images: fp32


def test_distillation_tables_and_goals_are_computed_from_the_records():
    base = {"setting": "books:kitchen", "seed": 42}
    records = [
        {**base, "model": "teacher", "variant": "teacher", "source_accuracy": 0.86, "target_accuracy": 0.90,
         "parameters": 22_000_000, "train_runtime": 100.0},
        {**base, "model": "student", "variant": "kd_unlabeled", "source_accuracy": 0.85, "target_accuracy": 0.882,
         "parameters": 17_000_000, "train_runtime": 200.0},
        {**base, "model": "student", "variant": "hard", "source_accuracy": 0.84, "target_accuracy": 0.86,
         "parameters": 17_000_000, "train_runtime": 150.0},
        {**base, "model": "student", "variant": "kd", "source_accuracy": 0.85, "target_accuracy": 0.875,
         "parameters": 17_000_000, "train_runtime": 180.0},
        {**base, "model": "throughput", "variant": "throughput", "teacher_examples_per_second": 100.0,
         "student_examples_per_second": 190.0, "speedup": 1.9},
    ]  # fmt: skip
    table = "\n".join(distillation.setting_tables(records))
    assert "| teacher | 86.00 | 90.00 | – | 22,000,000 | 100 | 100 |" in table
    assert "| kd_unlabeled | 85.00 | 88.20 | 98.0 | 17,000,000 | 190 | 200 |" in table
    assert "keeps 98.0 % of the teacher's target accuracy" in table and "at 1.90× its inference throughput" in table
    assert "+1.50 points of target accuracy (goal: at least +1.0)" in table


def test_few_shot_report_means_goals_and_time_ratio():
    import few_shot

    def record(target, method, accuracy, k=8, seed=0, train=None):
        return {"target": target, "k": k, "seed": seed, "method": method, "accuracy": accuracy, "train_seconds": train}

    records = [record(t, "zero_shot", a, k=None) for t, a in zip(few_shot.TARGETS, (0.7, 0.65, 0.61, 0.59))]
    records += [record("books", "contrastive", 0.70, seed=s, train=20.0) for s in (0, 1)]
    records += [record("books", "setfit", a, seed=s, train=25.0) for s, a in ((0, 0.66), (1, 0.70))]
    records += [record("books", "fomaml_fine_tune", 0.80, k=16), record("books", "source_fine_tune", 0.78, k=16)]
    records += [record("books", "maml_fine_tune", 0.77, k=16)]
    records += [record("kitchen", "source_fine_tune", 0.95, k=16)]  # no meta run there: not in the comparison
    lines = few_shot.summary_tables(records)
    assert "| contrastive | 70.00 ± 0.00 | – | – | – | 70.00 ± 0.00 | 20 | – |" in lines
    assert "| setfit | 68.00 ± 2.83 | – | – | – | 68.00 ± 2.83 | 25 | – |" in lines
    goals = "\n".join(few_shot.goal_lines(records))
    first_order = "(first-order MAML) then K-shot against source-trained then K-shot: +2.00 points over the 1 draws"
    assert first_order + " both have, 1 targets of 4" in goals
    assert "(second-order MAML) then K-shot against source-trained then K-shot: -1.00 points over the 1" in goals
    assert (
        "our contrastive 70.00 % against setfit 68.00 % over the 2 draws both have, 1 targets of 4, in 0.80×" in goals
    )
    assert "zero-shot: lowest target 59.00 %" in goals
    assert "per target: books +2.00;" in goals  # FOMAML − source at K = 16, per target
    assert "per target: books +2.00 in 20.0 s against 25.0 s;" in goals  # contrastive − setfit at K = 8


def test_few_shot_trains_an_initialisation_again_when_its_weights_are_gone(tmp_path, monkeypatch):
    import few_shot
    from common import ResultsFile

    trained = []

    def fake_init_record(target, init, args):
        trained.append((target, init))
        return {"target": target, "k": 0, "seed": 42, "method": f"{init}_init", "accuracy": 0.87,
                "wall_seconds": 500.0, "cpu_seconds": 900.0}  # fmt: skip

    monkeypatch.setattr(few_shot, "init_record", fake_init_record)
    monkeypatch.setattr("common.code_version", lambda: "test")
    args = few_shot.parse_arguments(["--output_root", str(tmp_path / "runs")])
    results = ResultsFile(tmp_path / "few_shot.json", few_shot.protocol_of(), few_shot.report)
    results.add([{"target": "books", "k": 0, "seed": 42, "method": "source_init", "accuracy": 0.86,
                  "wall_seconds": 300.0, "cpu_seconds": 500.0}])  # fmt: skip
    few_shot.ensure_init("books", "fine_tune", args, results)  # from the pretrained model: nothing to train
    few_shot.ensure_init("books", "source_fine_tune", args, results)  # recorded, but its weights are gone
    assert trained == [("books", "source")]
    assert [r["method"] for r in results.records] == ["source_init", "source_init_again"]
    (tmp_path / "runs" / "books" / "source_init").mkdir(parents=True)
    (tmp_path / "runs" / "books" / "source_init" / "model.safetensors").write_bytes(b"")
    few_shot.ensure_init("books", "source_fine_tune", args, results)  # its weights are there
    assert trained == [("books", "source")]
    lines = few_shot.summary_tables(results.records)
    assert "| source_init | 86.00 | – | – | – | 86.00 | 300 | 500 |" in lines
    assert "| source_init_again | 87.00 | – | – | – | 87.00 | 500 | 900 |" in lines


def test_continual_report_means_the_metrics_picks_lambda_on_dev_and_judges_the_goal():
    import continual

    def record(method, seed, accuracy, forgetting, split="test", setting="digits_class"):
        return {"setting": setting, "split": split, "method": method, "seed": seed, "average_accuracy": accuracy,
                "forgetting": forgetting, "backward_transfer": -forgetting, "forward_transfer": None,
                "wall_seconds": 100.0, "cpu_seconds": 180.0}  # fmt: skip

    grid = continual.EWC_GRID["digits_class"]
    records = [record(f"ewc_{value:g}", 42, 0.2 + 0.01 * i, 0.5, split="dev") for i, value in enumerate(grid)]
    records[1]["average_accuracy"] = 0.9  # λ = 1e4 wins on dev
    assert continual.chosen_lambda(records, "digits_class") == 1e4
    assert continual.chosen_lambda(records[:2], "digits_class") is None  # the grid is not done
    records[3]["average_accuracy"] = 0.9 + 1e-15  # a tie in all but the last float bits goes to the smaller λ
    assert continual.chosen_lambda(records, "digits_class") == 1e4
    records[3]["average_accuracy"] = 0.5
    records += [record("naive", s, a, f) for s, a, f in ((42, 0.20, 0.90), (43, 0.22, 0.94))]
    records += [record("replay_500", s, a, f) for s, a, f in ((42, 0.80, 0.20), (43, 0.84, 0.24))]
    records += [record("lwf", s, 0.25, 0.10) for s in (42, 43)]  # forgets least, above naive's accuracy
    lines = continual.summary_tables(records)
    assert "| naive | 2 | 21.00 ± 1.41 | 92.00 ± 2.83 | -92.00 ± 2.83 | – | 100 | 180 |" in lines
    goal = "\n".join(continual.goal_lines([r for r in records if r["split"] == "test"], "digits_class"))
    assert "lwf forgets 10.00 points against naive's 92.00 (at most a third: 30.67)" in goal and "**met**" in goal
    records += [record("naive", 44, 2.5, 0.9)]  # naive's mean accuracy (an impossible 97.67) now above every method's
    goal = "\n".join(continual.goal_lines([r for r in records if r["split"] == "test"], "digits_class"))
    assert "no method reaches naive's average accuracy" in goal and "**not met**" in goal


def test_transferability_report_taus_hits_and_multi_source_goal():
    import transferability as bench

    assert bench.kendall_tau([3, 2, 1], [0.9, 0.8, 0.7]) == 1.0
    assert bench.kendall_tau([1, 2, 3], [0.9, 0.8, 0.7]) == -1.0
    assert bench.kendall_tau([2, 3, 1], [0.9, 0.8, 0.7]) == pytest.approx(1 / 3)
    truth = bench.source_only_truth("kitchen")  # the committed source-only accuracies
    assert set(truth) == {"books", "dvd", "electronics"} and all(0.5 < v < 1 for v in truth.values())
    best = max(truth, key=truth.get)
    rows = [{"candidate": s, **{e: (1.0 if s == best else 0.5) for e in bench.ESTIMATORS}} for s in truth]
    record = {"stage": "sources", "target": "kitchen", "ranking": {"rows": rows}, "truth": truth, "wall_seconds": 40.0}
    lines = "\n".join(bench.source_lines([record]))
    assert f"| kitchen | {best} ({100 * truth[best]:.2f}) | +0.67 ✓" in lines and "1 of 1" in lines
    assert "picks the best single source for 1 of 1 targets" in lines and "**not met**" in lines
    multi = [
        {"stage": "multi_source", "target": "kitchen", "seed": 42, "method": "source_only", "target_accuracy": 0.99}
    ]
    text = "\n".join(bench.multi_source_lines(multi))
    assert "| kitchen | source_only | 42 | 99.00 |" in text and "**met**" in text
