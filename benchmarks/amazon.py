"""Amazon reviews, the 12 source → target pairs: source-only, DANN, MMD, CORAL and the oracle, with label-free
checkpoint selection, through `recipes/text_cls_dann.py` (MiniLM, the bundled data).

    python benchmarks/amazon.py                                     # every pair and method, seed 42
    python benchmarks/amazon.py --pairs books:kitchen dvd:electronics --methods source_only dann
    python benchmarks/amazon.py --report_only                       # rewrite the tables from the JSON

CPU protocol (every method, every pair): the recipe's defaults, i.e. MiniLM (all-MiniLM-L6-v2), 150 optimizer
steps of 16 labeled source + 16 unlabeled target reviews (source-only: the 16 source reviews), at most 128 tokens,
AdamW 5e-5 with 10 % warm-up, seed 42; an evaluation every 50 steps (steps 50, 100, 150) of the target test set
(all 2000 labeled target reviews), the source validation set (400 held-out source reviews) and the label-free
validators (`hf_transfer.evaluation.selection`, on 1000 unlabeled target reviews).

Oracle (per target domain, an upper bound): trained on target labels with the same recipe and protocol
(`--adaptation_loss none`), by 2-fold cross-validation over the 2000 labeled target reviews (identical texts kept in
one fold): each fold's model trains on one half and is tested on the other, so every review is predicted by a model
that never saw it; its accuracy is pooled over the 2000 reviews, its macro-F1 is the mean of the two folds.

Each run is the recipe's command line, a separate process; its wall time is the whole process. The results go to
`--output` (JSON), one record per run and selection rule, and are appended: a run already there (same pair, method,
seed and protocol) is skipped, so a long benchmark can be split across sessions. Tables: the same name with `.md`.

Selection rules: see `benchmarks/common.py`.
"""

import argparse
import hashlib
import json
import shutil
import statistics
import sys
from pathlib import Path

from common import ROOT, RULES, ResultsFile, evaluations, lookup, pct, run_recipe, selection_records

RECIPE = "recipes/text_cls_dann.py"
DOMAINS = ("books", "dvd", "electronics", "kitchen")
PAIRS = [f"{s}:{t}" for s in DOMAINS for t in DOMAINS if s != t]
# method -> the recipe arguments that make it (everything else is the protocol, the same for all)
METHODS = {
    "source_only": ["--adaptation_loss", "none"],
    "dann": ["--adaptation_loss", "dann"],
    "mmd": ["--adaptation_loss", "mmd"],
    "coral": ["--adaptation_loss", "coral"],
}
NAMES = {"source_only": "source-only", "dann": "DANN", "mmd": "MMD", "coral": "CORAL"}
STANDARD = tuple(METHODS)  # the benchmark proper; `--define` adds methods to METHODS, not to it
# The label-free tuning protocol declared (in the README, now docs/benchmarks.md) before the candidates ran: the
# defaults are chosen on these two pairs (a near and a far one) by the lowest mean DEV at the last checkpoint, among
# methods that ran on both.
DEV_PAIRS = ("books:kitchen", "electronics:books")
TUNING_VALIDATOR = "dev"


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


def recipe_command(source: str, target: str, method_args: list[str], seed: int, output_dir: Path, args, **data):
    command = [sys.executable, RECIPE, "--source_dataset", source, "--target_dataset", target, *method_args]
    command += ["--seed", str(seed), "--output_dir", str(output_dir)]
    command += ["--max_steps", str(args.max_steps), "--eval_strategy", "steps", "--eval_steps", str(args.eval_steps)]
    command += ["--save_strategy", "no", "--report_to", "none"]
    for name, value in data.items():
        command += [f"--{name}", str(value)]
    return command + args.extra


def adaptation_records(source: str, target: str, method: str, seed: int, args) -> list[dict]:
    output_dir = Path(args.output_root) / f"{source}_{target}_{method}_seed{seed}"
    command = recipe_command(
        f"amazon:{source}",
        f"amazon:{target}",
        METHODS[method],
        seed,
        output_dir,
        args,
        label_free_selection="true",
        selection_target_rows=args.selection_target_rows,
    )
    run = run_recipe(command, output_dir)
    base = {
        "source": source,
        "target": target,
        "method": method,
        "seed": seed,
        "steps": args.max_steps,
        "wall_seconds": round(run["wall_seconds"], 1),
        "cpu_seconds": round(run["cpu_seconds"], 1),
        "train_runtime": run["results"]["train_runtime"],
        "command": " ".join(command[1:]),
    }
    history = evaluations(run["log_history"])
    return selection_records({**base, "history": history}, history)


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
            str(train_file),
            f"amazon:{target}",
            METHODS["source_only"],
            seed,
            output_dir,
            args,
            target_test_dataset=test_file,
        )
        run = run_recipe(command, output_dir)
        rows = sum(1 for _ in test_file.open())
        folds.append((evaluations(run["log_history"])[-1], rows))
        commands.append(" ".join(command[1:]))
        wall += run["wall_seconds"]
        cpu += run["cpu_seconds"]
        runtime += run["results"]["train_runtime"]
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


def _accuracy(records: list[dict], pair: str, method: str, rule: str = "last") -> float | None:
    source, target = pair.split(":")
    found = lookup(records, source=source, target=target, method=method, selection_rule=rule)
    return None if found is None else found["target_accuracy"]


def _oracle(records: list[dict], target: str) -> float | None:
    found = lookup(records, source=target, target=target, method="oracle")
    return None if found is None else found["target_accuracy"]


def report(records: list[dict]) -> str:
    """Every table of the results file (`amazon.md`): the summary's tables over every method run, tuning candidates
    included, then the validators and the checkpoint selection within each method."""
    pairs = _pairs(records)
    found = {r["method"] for r in records} - {"oracle"}
    standard = [m for m in STANDARD if m in found]
    methods = standard + sorted(found - set(STANDARD))  # also methods --define'd (now or in earlier runs)
    lines = coverage(records)
    lines += ["", "## Target-test accuracy (%) per pair, last checkpoint", ""] + accuracy_table(records, methods)
    lines += ["", "## Against source-only, last checkpoint (pairs where both ran)", ""]
    lines += against_source_only_table(records, methods)
    lines += across_methods_table(records, pairs, standard, "the four standard methods")
    if methods != standard:
        lines += across_methods_table(records, pairs, methods, "every method run, tuning candidates included")
    lines += tuning_table(records)
    lines += validators_table(records, methods)

    lines += ["", "## Checkpoint selection within each method: mean target-test accuracy (%)", ""]
    lines += ["Over the pairs the method ran on (compare methods only on the same pairs). `oracle` selection reads"]
    lines += ["target labels (reference only); the others do not.", ""]
    lines += ["| method | pairs | " + " | ".join(RULES) + " |", "|---|---|" + "---|" * len(RULES)]
    for method in methods:
        done = [p for p in pairs if _accuracy(records, p, method) is not None]
        cells = [pct(statistics.mean(_accuracy(records, p, method, rule) for p in done)) for rule in RULES]
        lines.append(f"| {NAMES.get(method, method)} | {len(done)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(records: list[dict]) -> str:
    """The summary in `docs/benchmarks.md`: the benchmark proper (source-only, DANN, MMD, CORAL and the oracle) and
    the tuning rule at work on the dev pairs (which ranks the tuning candidates too); every other table stays in
    `amazon.md`."""
    standard = [m for m in STANDARD if any(r["method"] == m for r in records)]
    lines = coverage(records)
    lines += ["", "#### Target-test accuracy (%) per pair, last checkpoint", ""]
    lines += accuracy_table(records, standard)
    lines += ["", "#### Against source-only, last checkpoint", ""] + against_source_only_table(records, standard)
    table = across_methods_table(records, _pairs(records), standard, "the four standard methods")
    table += tuning_table(records)
    lines = [f"#{line}" if line.startswith("## ") else line for line in lines + table]  # under the page's "##"
    return "\n".join(lines) + "\n"


SUMMARY_PAGE = ROOT / "docs" / "benchmarks.md"
SUMMARY_START = "<!-- summary written by `python benchmarks/amazon.py --report_only`: start -->"
SUMMARY_END = "<!-- summary written by `python benchmarks/amazon.py --report_only`: end -->"


def update_summary(records: list[dict], page: Path) -> bool:
    """Rewrite the summary between the page's markers (nothing else); False when the page has no markers."""
    text = page.read_text()
    if SUMMARY_START not in text or SUMMARY_END not in text:
        return False
    before, rest = text.split(SUMMARY_START, 1)
    after = rest.split(SUMMARY_END, 1)[1]
    page.write_text(f"{before}{SUMMARY_START}\n{summary(records)}\n{SUMMARY_END}{after}")
    return True


def _pairs(records: list[dict]) -> list[str]:
    return [p for p in PAIRS if any(f"{r['source']}:{r['target']}" == p for r in records)]


def accuracy_table(records: list[dict], methods: list[str]) -> list[str]:
    lines = ["| pair | " + " | ".join(NAMES.get(m, m) for m in methods) + " | oracle (target labels) |"]
    lines += ["|---|" + "---|" * (len(methods) + 1)]
    for pair in _pairs(records):
        cells = [pct(_accuracy(records, pair, m)) for m in methods]
        oracle = _oracle(records, pair.split(":")[1])
        lines.append(f"| {pair.replace(':', ' → ')} | " + " | ".join(cells) + f" | {pct(oracle)} |")
    return lines


def against_source_only_table(records: list[dict], methods: list[str]) -> list[str]:
    """Per adapted method, over the pairs where it and source-only ran: mean gain in points, pairs improved and the
    gap closed over the pairs whose oracle beats source-only, pooled: Σ(adapted − source-only) / Σ(oracle −
    source-only). Pooled, not a mean of per-pair ratios: one pair whose oracle is a hair above source-only would
    otherwise swamp the mean."""
    from hf_transfer.evaluation.report import TransferReport

    lines = ["| method | pairs | mean gain (points) | better than source-only | gap closed (pooled) |"]
    lines += ["|---|---|---|---|---|"]
    for method in [m for m in methods if m != "source_only"]:
        rows = []
        for pair in _pairs(records):
            value, baseline = _accuracy(records, pair, method), _accuracy(records, pair, "source_only")
            if value is not None and baseline is not None:
                rows.append(TransferReport("accuracy", value, baseline, _oracle(records, pair.split(":")[1])))
        if not rows:
            continue
        gaps = [r for r in rows if r.gap_closed is not None]
        gap = "–"
        if gaps:
            pooled = sum(r.adapted - r.source_only for r in gaps) / sum(r.oracle - r.source_only for r in gaps)
            pairs = "1 pair" if len(gaps) == 1 else f"{len(gaps)} pairs"
            gap = f"{pooled:.2f} (the {pairs} whose oracle beats source-only)"
        lines.append(
            f"| {NAMES.get(method, method)} | {len(rows)} | {100 * statistics.mean(r.gain for r in rows):+.2f} | "
            f"{sum(r.gain > 0 for r in rows)} of {len(rows)} | {gap} |"
        )
    return lines


def coverage(records: list[dict]) -> list[str]:
    """What the committed results hold, and what the full benchmark still lacks."""
    lines = ["## Coverage", ""]
    complete = True
    for method in STANDARD:
        missing = [p.replace(":", " → ") for p in PAIRS if _accuracy(records, p, method) is None]
        lines.append(f"- {NAMES[method]}: {len(PAIRS) - len(missing)} of {len(PAIRS)} pairs")
        lines[-1] += f" (not yet: {', '.join(missing)})" if missing else ""
        complete = complete and not missing
    missing = [t for t in DOMAINS if _oracle(records, t) is None]
    lines.append(f"- oracle: {len(DOMAINS) - len(missing)} of {len(DOMAINS)} target domains")
    lines[-1] += f" (not yet: {', '.join(missing)})" if missing else ""
    return lines + ["", "The benchmark is complete." if complete and not missing else "The benchmark is not complete."]


def tuning_table(records: list[dict]) -> list[str]:
    """The declared label-free tuning rule at work: every method that ran on both dev pairs, ranked by its mean
    `TUNING_VALIDATOR` at the last checkpoint (the rule reads nothing else); its other validators, and then, after the
    fact, its target accuracy and gain over source-only on the same pairs."""
    from hf_transfer.evaluation.selection import VALIDATORS

    runs = {}
    for method in sorted({r["method"] for r in records} - {"oracle"}):
        found = [lookup(records, source=p.split(":")[0], target=p.split(":")[1], method=method, selection_rule="last")
                 for p in DEV_PAIRS]  # fmt: skip
        if all(found):
            runs[method] = found
    if "source_only" not in runs:
        return []
    higher = VALIDATORS[TUNING_VALIDATOR]
    ranked = sorted(runs, key=lambda m: statistics.mean(r["validators"][TUNING_VALIDATOR] for r in runs[m]))
    ranked = ranked[::-1] if higher else ranked
    baseline = statistics.mean(r["target_accuracy"] for r in runs["source_only"])
    pairs = " and ".join(p.replace(":", " → ") for p in DEV_PAIRS)
    lines = ["", f"## Label-free tuning on the dev pairs ({pairs})", ""]
    lines += [f"Methods that ran on both dev pairs, ranked by mean {TUNING_VALIDATOR} at the last checkpoint (the"]
    lines += ["declared rule; no target label read). Target accuracy and gain over source-only: after the fact.", ""]
    names = list(VALIDATORS)
    lines += ["| rank | method | " + " | ".join(f"{n} {'↑' if VALIDATORS[n] else '↓'}" for n in names)]
    lines[-1] += " | target acc. (%) | gain over source-only (points) |"
    lines += ["|---|---|" + "---|" * len(names) + "---|---|"]
    for rank, method in enumerate(ranked, 1):
        found = runs[method]
        cells = [f"{statistics.mean(r['validators'][n] for r in found):.4f}" for n in names]
        accuracy = statistics.mean(r["target_accuracy"] for r in found)
        gain = "–" if method == "source_only" else f"{100 * (accuracy - baseline):+.2f}"
        cells += [pct(accuracy), gain]
        lines.append(f"| {rank} | {NAMES.get(method, method)} | " + " | ".join(cells) + " |")
    return lines


def validators_table(records: list[dict], methods: list[str]) -> list[str]:
    """What label-free tuning sees: each method's validators at its last checkpoint, averaged over the pairs it ran
    on (no target label in this table; compare methods on the same pairs)."""
    from hf_transfer.evaluation.selection import VALIDATORS

    runs = {(r["source"], r["target"], r["method"]): r for r in records if r["selection_rule"] == "last"}
    names = list(VALIDATORS)
    lines = ["", "## Label-free validators at the last checkpoint (what tuning without target labels sees)", ""]
    lines += ["| method | pairs | " + " | ".join(f"{n} {'↑' if VALIDATORS[n] else '↓'}" for n in names) + " |"]
    lines += ["|---|---|" + "---|" * len(names)]
    for method in methods:
        found = [run for (s, t, m), run in sorted(runs.items()) if m == method]
        pairs = ", ".join(f"{r['source']} → {r['target']}" for r in found)
        cells = [f"{statistics.mean(r['validators'][n] for r in found):.4f}" for n in names]
        lines.append(f"| {NAMES.get(method, method)} | {pairs} | " + " | ".join(cells) + " |")
    return lines


def across_methods_table(records: list[dict], pairs: list[str], methods: list[str], which: str) -> list[str]:
    """Label-free model selection as a user would do it per target: among every run of the pair (each method,
    source-only included) and every evaluated checkpoint, the one a validator prefers; its target accuracy next to
    source-only's last checkpoint. The `target labels` row picks with the target test labels (reference only)."""
    from hf_transfer.evaluation.selection import VALIDATORS

    complete = [p for p in pairs if all(_accuracy(records, p, m) is not None for m in methods)]
    if not complete or "source_only" not in methods:
        return []
    lines = ["", f"## Label-free choice across methods and checkpoints: {which}", ""]
    lines += [f"Per pair, among every evaluated checkpoint of {', '.join(NAMES.get(m, m) for m in methods)}, on the"]
    lines += [f"{len(complete)} pairs where all of them ran: {', '.join(p.replace(':', ' → ') for p in complete)}.", ""]
    lines += ["| validator | pairs | mean target acc. (%) | mean gain over source-only (points) | pairs improved |"]
    lines += ["|---|---|---|---|---|"]
    rules = {**{v: (1.0 if higher else -1.0) for v, higher in VALIDATORS.items()}, "target labels": None}
    for validator, sign in rules.items():
        chosen, gains = [], []
        for pair in complete:
            source, target = pair.split(":")
            runs = [lookup(records, source=source, target=target, method=m, selection_rule="last") for m in methods]
            entries = [entry for run in runs for entry in run["history"]]
            if sign is None:
                best = max(entries, key=lambda entry: entry["target_accuracy"])
            else:
                best = max((e for e in entries if e[validator] is not None), key=lambda e: sign * e[validator])
            chosen.append(best["target_accuracy"])
            gains.append(best["target_accuracy"] - _accuracy(records, pair, "source_only"))
        lines.append(
            f"| {validator} | {len(complete)} | {pct(statistics.mean(chosen))} | {100 * statistics.mean(gains):+.2f} | "
            f"{sum(g > 0 for g in gains)} of {len(gains)} |"
        )
    return lines


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `args.extra` holds what goes to the recipe as is. `--define`d methods join `METHODS`."""
    define = argparse.ArgumentParser(add_help=False)
    define.add_argument(
        "--define",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "RECIPE_ARGUMENTS"),
        help="A method of your own, e.g. --define im_0.3 '--adaptation_loss im --adaptation_loss_weights 0.3'; then "
        "list NAME in --methods.",
    )
    METHODS.update({name: arguments.split() for name, arguments in define.parse_known_args(argv)[0].define})

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[define]
    )
    parser.add_argument("--pairs", nargs="+", default=PAIRS, choices=PAIRS, metavar="SOURCE:TARGET")
    parser.add_argument("--methods", nargs="+", default=[*METHODS, "oracle"], choices=[*METHODS, "oracle"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--max_steps", type=int, default=150)
    parser.add_argument("--eval_steps", type=int, default=50)
    parser.add_argument("--selection_target_rows", type=int, default=1000)
    parser.add_argument("--output_root", default="outputs/benchmarks/amazon", help="Relative to the repository root.")
    parser.add_argument("--output", default="benchmarks/results/amazon.json")
    parser.add_argument(
        "--report_only",
        action="store_true",
        help="Only rewrite the tables from --output, and the summary between the markers of docs/benchmarks.md.",
    )
    args, args.extra = parser.parse_known_args(argv)  # anything else goes to the recipe
    return args


def main() -> None:
    args = parse_arguments()
    results = ResultsFile(args.output, protocol_of(args), report)
    if not args.report_only:
        for seed in args.seeds:
            for pair in args.pairs:
                source, target = pair.split(":")
                for method in [m for m in args.methods if m != "oracle"]:
                    if results.done(source=source, target=target, method=method, seed=seed):
                        continue
                    new = adaptation_records(source, target, method, seed, args)
                    results.add(new)
                    print(f"{pair} {method} seed {seed}: last {new[0]['target_accuracy']:.4f}", flush=True)
                if "oracle" in args.methods and not results.done(target=target, method="oracle", seed=seed):
                    new = oracle_records(target, seed, args)
                    results.add(new)
                    print(f"oracle {target} seed {seed}: {new[0]['target_accuracy']:.4f}", flush=True)
                    shutil.rmtree(Path(args.output_root) / f"oracle_{target}_seed{seed}" / "data", ignore_errors=True)
    results.save()
    print(Path(args.output).with_suffix(".md").read_text())
    if args.report_only and update_summary(results.records, SUMMARY_PAGE):
        print(f"{SUMMARY_PAGE.relative_to(ROOT)}: summary rewritten from {args.output}")


if __name__ == "__main__":
    main()
