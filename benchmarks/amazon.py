"""Amazon reviews, the 12 source → target pairs: source-only, DANN, MMD, CORAL and the oracle, with label-free
checkpoint selection, through `recipes/text_cls_dann.py` (MiniLM, the bundled data).

    python benchmarks/amazon.py                                     # every pair and method, seed 42
    python benchmarks/amazon.py --pairs books:kitchen dvd:electronics --methods source_only dann
    python benchmarks/amazon.py --report_only                       # rewrite the tables from the JSON

CPU protocol (every method, every pair): the recipe's defaults, i.e. MiniLM (all-MiniLM-L6-v2), 150 optimizer
steps of 16 labeled source + 16 unlabeled target reviews (source-only: the 16 source reviews), at most 128 tokens,
AdamW 5e-5 with 10 % warm-up, seed 42; an evaluation every 50 steps (steps 50, 100, 150) of the target test set
(all 2000 labeled target reviews), the source validation set (400 held-out source reviews) and the label-free
validators (`hf_transfer.model_selection`, on 1000 unlabeled target reviews).

Oracle (per target domain, an upper bound): trained on target labels with the same recipe and protocol
(`--adaptation_loss none`), by 2-fold cross-validation over the 2000 labeled target reviews (identical texts kept in
one fold): each fold's model trains on one half and is tested on the other, so every review is predicted by a model
that never saw it; its accuracy is pooled over the 2000 reviews, its macro-F1 is the mean of the two folds.

Each run is the recipe's command line, a separate process; its wall time is the whole process. The results go to
`--output` (JSON), one record per run and selection rule, and are appended: a run already there (same pair, method,
seed and protocol) is skipped, so a long benchmark can be split across sessions. Tables: the same name with `.md`.

Selection rules (which checkpoint of a run is reported): `last` (the end of training, what the recipe saves),
`oracle` (the best target accuracy: uses target labels, for reference only) and one per label-free validator
(`source_accuracy`, `target_entropy`, `im`, `snd`, `dev`, `proxy_a_distance`).
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hf_transfer.model_selection import VALIDATORS, best_step  # noqa: E402

RECIPE = "recipes/text_cls_dann.py"
DOMAINS = ("books", "dvd", "electronics", "kitchen")
PAIRS = [f"{s}:{t}" for s in DOMAINS for t in DOMAINS if s != t]
METHODS = ("source_only", "dann", "mmd", "coral", "oracle")
LOSS = {"source_only": "none", "dann": "dann", "mmd": "mmd", "coral": "coral"}
RULES = ("last", "oracle", *VALIDATORS)


def protocol_of(args) -> dict:
    return {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_steps": args.max_steps,
        "eval_steps": args.eval_steps,
        "per_device_train_batch_size": 32,
        "max_length": 128,
        "learning_rate": 5e-5,
        "selection_target_rows": args.selection_target_rows,
        "recipe_arguments": args.extra,
    }


def recipe_command(source: str, target: str, loss: str, seed: int, output_dir: Path, args, **data) -> list[str]:
    command = [sys.executable, RECIPE, "--source_dataset", source, "--target_dataset", target]
    command += ["--adaptation_loss", loss, "--seed", str(seed), "--output_dir", str(output_dir)]
    command += ["--max_steps", str(args.max_steps), "--eval_strategy", "steps", "--eval_steps", str(args.eval_steps)]
    command += ["--save_strategy", "no", "--report_to", "none"]
    for name, value in data.items():
        command += [f"--{name}", str(value)]
    return command + args.extra


def run(command: list[str], output_dir: Path) -> tuple[dict, float]:
    """Run one recipe process; its trainer state (the log) and wall seconds. The model files are removed after.

    The state also gets `cpu_seconds` (user + system time of the process): unlike wall time, it hardly changes
    when something else runs on the machine at the same time."""
    start, cpu_start = time.perf_counter(), _children_cpu_seconds()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    state = json.loads((output_dir / "trainer_state.json").read_text())
    state["cpu_seconds"] = _children_cpu_seconds() - cpu_start
    state["all_results"] = json.loads((output_dir / "all_results.json").read_text())
    for weights in output_dir.glob("*.safetensors"):
        weights.unlink()  # ~90 MB each; the benchmark keeps the logs, results and card
    return state, wall


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def evaluations(state: dict) -> list[dict]:
    """One entry per evaluation during training: step, target/source metrics and the validators."""
    by_step: dict[int, dict] = {}
    for entry in state["log_history"]:
        step = entry.get("step")
        keys = [k for k in entry if k.startswith("eval_")]
        if step is None or not keys:
            continue
        current = by_step.setdefault(step, {"step": step})
        for key in keys:
            current.setdefault(key[len("eval_") :], entry[key])  # the first (in-training) evaluation of a step
    history = []
    for step in sorted(by_step):
        entry = by_step[step]
        record = {
            "step": step,
            "target_accuracy": entry.get("target_test_accuracy"),
            "target_macro_f1": entry.get("target_test_macro_f1"),
            "source_validation_accuracy": entry.get("source_validation_accuracy"),
        }
        record.update({name: entry.get(f"selection_{name}") for name in VALIDATORS})
        history.append(record)
    return history


def adaptation_records(source: str, target: str, method: str, seed: int, args) -> list[dict]:
    output_dir = Path(args.output_root) / f"{source}_{target}_{method}_seed{seed}"
    command = recipe_command(
        f"amazon:{source}",
        f"amazon:{target}",
        LOSS[method],
        seed,
        output_dir,
        args,
        label_free_selection="true",
        selection_target_rows=args.selection_target_rows,
    )
    state, wall = run(command, output_dir)
    history = evaluations(state)
    complete = [h for h in history if all(h[name] is not None for name in VALIDATORS)]
    chosen = {"last": history[-1], "oracle": max(history, key=lambda h: (h["target_accuracy"], h["step"]))}
    chosen.update({name: best_step(complete, name) for name in VALIDATORS})
    base = {
        "source": source,
        "target": target,
        "method": method,
        "seed": seed,
        "steps": args.max_steps,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(state["cpu_seconds"], 1),
        "train_runtime": state["all_results"]["train_runtime"],
        "command": " ".join(command[1:]),
        "history": history,
    }
    return [
        {
            **base,
            "selection_rule": rule,
            "selected_step": entry["step"],
            "target_accuracy": entry["target_accuracy"],
            "target_macro_f1": entry["target_macro_f1"],
            "source_validation_accuracy": entry["source_validation_accuracy"],
            "validators": {name: entry[name] for name in VALIDATORS},
        }
        for rule, entry in chosen.items()
    ]


def oracle_folds(target: str, seed: int, folder: Path) -> list[tuple[Path, Path]]:
    """Two halves of the labeled target reviews as JSON-lines files, identical texts in the same half."""
    from hf_transfer import load_amazon_reviews

    reviews = load_amazon_reviews(target, "test")
    names = reviews.features["label"].names
    texts = sorted(set(reviews["text"]), key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())
    fold_of = {text: i % 2 for i, text in enumerate(texts)}
    folder.mkdir(parents=True, exist_ok=True)
    halves = [[], []]
    for text, label in zip(reviews["text"], reviews["label"]):
        halves[fold_of[text]].append({"text": text, "label": names[label]})
    files = []
    for i, rows in enumerate(halves):
        path = folder / f"{target}_fold{i}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        files.append(path)
    return [(files[0], files[1]), (files[1], files[0])]


def oracle_records(target: str, seed: int, args) -> list[dict]:
    folder = Path(args.output_root) / f"oracle_{target}_seed{seed}"
    folds, commands, wall, cpu, runtime = [], [], 0.0, 0.0, 0.0
    for i, (train_file, test_file) in enumerate(oracle_folds(target, seed, folder / "data")):
        output_dir = folder / f"fold{i}"
        command = recipe_command(
            str(train_file.relative_to(ROOT) if train_file.is_relative_to(ROOT) else train_file),
            f"amazon:{target}",
            "none",
            seed,
            output_dir,
            args,
            target_test_dataset=test_file.relative_to(ROOT) if test_file.is_relative_to(ROOT) else test_file,
        )
        state, seconds = run(command, output_dir)
        rows = sum(1 for _ in test_file.open())
        folds.append((evaluations(state)[-1], rows))
        commands.append(" ".join(command[1:]))
        wall += seconds
        cpu += state["cpu_seconds"]
        runtime += state["all_results"]["train_runtime"]
    total = sum(rows for _, rows in folds)
    return [
        {
            "source": target,
            "target": target,
            "method": "oracle",
            "seed": seed,
            "steps": args.max_steps,
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "train_runtime": round(runtime, 2),
            "command": " && ".join(commands),
            "selection_rule": "last",
            "selected_step": args.max_steps,
            "target_accuracy": sum(h["target_accuracy"] * rows for h, rows in folds) / total,
            "target_macro_f1": statistics.mean(h["target_macro_f1"] for h, _ in folds),
            "folds": [{"rows": rows, **h} for h, rows in folds],
        }
    ]


# ---- report ---------------------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _lookup(records: list[dict], **match) -> dict | None:
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    return found[0] if found else None


def report(records: list[dict]) -> str:
    pairs = [p for p in PAIRS if any(r["source"] + ":" + r["target"] == p for r in records)]
    lines = ["## Target-test accuracy (%) per pair, last checkpoint", ""]
    lines += ["| pair | source-only | DANN | MMD | CORAL | oracle (target) |", "|---|---|---|---|---|---|"]
    for pair in pairs:
        source, target = pair.split(":")
        cells = [
            _pct(
                (_lookup(records, source=source, target=target, method=m, selection_rule="last") or {}).get(
                    "target_accuracy"
                )
            )
            for m in ("source_only", "dann", "mmd", "coral")
        ]
        oracle = _lookup(records, source=target, target=target, method="oracle")
        lines.append(
            f"| {source} → {target} | " + " | ".join(cells) + f" | {_pct((oracle or {}).get('target_accuracy'))} |"
        )

    lines += ["", "## Checkpoint selection: mean target-test accuracy (%) over the pairs run", ""]
    lines += ["| method | pairs | " + " | ".join(RULES) + " |", "|---|---|" + "---|" * len(RULES)]
    for method in ("source_only", "dann", "mmd", "coral"):
        done = [p for p in pairs if _lookup(records, source=p.split(":")[0], target=p.split(":")[1], method=method)]
        if not done:
            continue
        cells = []
        for rule in RULES:
            values = [
                _lookup(records, source=p.split(":")[0], target=p.split(":")[1], method=method, selection_rule=rule)[
                    "target_accuracy"
                ]
                for p in done
            ]
            cells.append(_pct(statistics.mean(values)))
        lines.append(f"| {method} | {len(done)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=PAIRS, choices=PAIRS, metavar="SOURCE:TARGET")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--max_steps", type=int, default=150)
    parser.add_argument("--eval_steps", type=int, default=50)
    parser.add_argument("--selection_target_rows", type=int, default=1000)
    parser.add_argument("--output_root", default="outputs/benchmarks/amazon")
    parser.add_argument("--output", default="benchmarks/results/amazon.json")
    parser.add_argument("--report_only", action="store_true", help="Only rewrite the tables from --output.")
    args, args.extra = parser.parse_known_args()  # anything else goes to the recipe

    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {"protocols": {}, "records": []}
    protocol = protocol_of(args)
    protocol_id = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:12]
    results["protocols"][protocol_id] = protocol

    def save():
        output.parent.mkdir(parents=True, exist_ok=True)
        results["machine"] = f"{os.cpu_count()} CPU cores"
        output.write_text(json.dumps(results, indent=1) + "\n")
        current = [r for r in results["records"] if r["protocol"] == protocol_id]
        output.with_suffix(".md").write_text(report(current))

    def done(**match) -> bool:
        return _lookup(results["records"], protocol=protocol_id, **match) is not None

    if not args.report_only:
        for seed in args.seeds:
            for pair in args.pairs:
                source, target = pair.split(":")
                for method in [m for m in args.methods if m != "oracle"]:
                    if done(source=source, target=target, method=method, seed=seed):
                        continue
                    new = adaptation_records(source, target, method, seed, args)
                    results["records"] += [{**r, "protocol": protocol_id} for r in new]
                    save()
                    print(f"{pair} {method} seed {seed}: last {new[0]['target_accuracy']:.4f}", flush=True)
                if "oracle" in args.methods and not done(target=target, method="oracle", seed=seed):
                    new = oracle_records(target, seed, args)
                    results["records"] += [{**r, "protocol": protocol_id} for r in new]
                    save()
                    print(f"oracle {target} seed {seed}: {new[0]['target_accuracy']:.4f}", flush=True)
                    shutil.rmtree(Path(args.output_root) / f"oracle_{target}_seed{seed}" / "data", ignore_errors=True)
    save()
    print(output.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
