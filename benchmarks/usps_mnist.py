"""USPS → MNIST with `recipes/image_cls_dann.py`: source-only, DANN, MMD, CORAL, WDGRL, CDAN, CDAN+E,
self-training and the oracle, with label-free checkpoint selection, each run a separate process.

    python benchmarks/usps_mnist.py                                  # ResNet, seeds 42 43 44, every method
    python benchmarks/usps_mnist.py --model_types resnet vit --seeds 42 --methods source_only dann
    python benchmarks/usps_mnist.py --report_only                    # rewrite the tables from the JSON

Protocol: the recipe's defaults (a small ResNet or ViT from scratch, 1500 steps of 32 labeled USPS + 32 unlabeled
MNIST images at 32×32, AdamW 1e-3, every loss weight 1.0) with an evaluation every `--eval_steps` (300: steps 300,
600, ..., 1500) of the target test set (the last 5000 images of the MNIST test split, never trained on), the USPS
test set (2007, labeled source validation) and the label-free validators (on 1000 of the unlabeled MNIST images).
Evaluating does not change training (the same weights with or without it), so the `last` rows equal a run without
evaluations.

Oracle (an upper bound): the same model and protocol trained on the labels of the 5000 MNIST images the other
methods adapt on without labels (`--adaptation_loss none`), tested on the same 5000 MNIST test images.

Results: appended to `--output` (JSON), one record per run and selection rule (see `benchmarks/common.py`), a run
already there (same model, method, seed and protocol) is skipped; tables in the same name with `.md`.
"""

import argparse
import statistics
import sys
from pathlib import Path

from common import RULES, ResultsFile, evaluations, mean_sd, run_recipe, selection_records

RECIPE = "recipes/image_cls_dann.py"
METHODS = {
    "source_only": ["--adaptation_loss", "none"],
    "dann": ["--adaptation_loss", "dann"],
    "mmd": ["--adaptation_loss", "mmd"],
    "coral": ["--adaptation_loss", "coral"],
    "wdgrl": ["--adaptation_loss", "wdgrl"],
    "wdgrl_0.01": ["--adaptation_loss", "wdgrl", "--adaptation_loss_weights", "0.01"],  # the paper's code on digits
    "cdan": ["--adaptation_loss", "cdan"],
    "cdan_e": ["--adaptation_loss", "cdan", "--cdan_entropy_conditioning", "true"],
    "self_training": ["--adaptation_loss", "self_training"],
}
ORACLE = [
    "--adaptation_loss", "none",
    "--source_dataset", "digits:mnist", "--source_train_split", "oracle_train", "--source_test_split", "none",
]  # fmt: skip
NAMES = {
    "source_only": "source-only",
    "dann": "DANN",
    "mmd": "MMD",
    "coral": "CORAL",
    "wdgrl": "WDGRL",
    "wdgrl_0.01": "WDGRL (weight 0.01)",
    "cdan": "CDAN",
    "cdan_e": "CDAN+E",
    "self_training": "self-training",
    "oracle": "oracle",
}


def protocol_of(args) -> dict:
    return {
        "recipe": RECIPE,
        "eval_steps": args.eval_steps,
        "selection_target_rows": args.selection_target_rows,
        "recipe_arguments": args.extra,
    }


def run_records(model_type: str, method: str, seed: int, args) -> list[dict]:
    output_dir = Path(args.output_root) / f"{model_type}_{method}_seed{seed}"
    command = [sys.executable, RECIPE, "--model_type", model_type, "--seed", str(seed), "--output_dir", str(output_dir)]
    command += ["--eval_strategy", "steps", "--eval_steps", str(args.eval_steps), "--report_to", "none"]
    if method == "oracle":
        command += ORACLE
    else:
        command += METHODS[method]
        command += ["--label_free_selection", "true", "--selection_target_rows", str(args.selection_target_rows)]
    command += args.extra
    run = run_recipe(command, output_dir)
    base = {
        "model": model_type,
        "source": "usps",
        "target": "mnist",
        "method": method,
        "seed": seed,
        "steps": run["log_history"][-1]["step"],
        "wall_seconds": round(run["wall_seconds"], 1),
        "cpu_seconds": round(run["cpu_seconds"], 1),
        "train_runtime": run["results"]["train_runtime"],
        "command": " ".join(command[1:]),
    }
    history = evaluations(run["log_history"], source="source_test")
    records = selection_records({**base, "history": history}, history)
    return records[:1] if method == "oracle" else records  # the oracle's is the last checkpoint only


def report(records: list[dict]) -> str:
    from hf_transfer.evaluation.report import TransferReport

    def accuracies(model: str, method: str, rule: str = "last") -> dict[int, float]:
        found = [r for r in records if (r["model"], r["method"], r["selection_rule"]) == (model, method, rule)]
        return {r["seed"]: r["target_accuracy"] for r in found}

    lines = []
    for model in sorted({r["model"] for r in records}):
        methods = [m for m in NAMES if accuracies(model, m)]
        lines += [f"## {model}: target-test accuracy (%) on MNIST, mean ± sd over seeds", ""]
        lines += ["`oracle` selection reads target labels (reference only); the other rules do not.", ""]
        lines += ["| method | seeds | " + " | ".join(RULES) + " | source-test (USPS), last | wall per run |"]
        lines += ["|---|---|" + "---|" * (len(RULES) + 2)]
        for method in methods:
            cells = [mean_sd(list(accuracies(model, method, rule).values())) for rule in RULES]
            group = [r for r in records if (r["model"], r["method"], r["selection_rule"]) == (model, method, "last")]
            source = [r["source_validation_accuracy"] for r in group if r["source_validation_accuracy"] is not None]
            wall = statistics.mean(r["wall_seconds"] for r in group)
            lines.append(
                f"| {NAMES[method]} | {len(group)} | " + " | ".join(cells) + f" | {mean_sd(source)} | {wall:.0f} s |"
            )
        lines += ["", f"## {model}: against source-only (same seed), last checkpoint", ""]
        lines += ["| method | seeds | mean gain (points) | better than source-only | mean gap closed |"]
        lines += ["|---|---|---|---|---|"]
        baseline, oracle = accuracies(model, "source_only"), accuracies(model, "oracle")
        for method in [m for m in methods if m not in ("source_only", "oracle")]:
            reports = [
                TransferReport("accuracy", value, baseline[seed], oracle.get(seed))
                for seed, value in accuracies(model, method).items()
                if seed in baseline
            ]
            if not reports:
                continue
            gaps = [r.gap_closed for r in reports if r.gap_closed is not None]
            lines.append(
                f"| {NAMES[method]} | {len(reports)} | {100 * statistics.mean(r.gain for r in reports):+.2f} | "
                f"{sum(r.gain > 0 for r in reports)} of {len(reports)} | "
                + (f"{statistics.mean(gaps):.2f}" if gaps else "–")
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_types", nargs="+", default=["resnet"], choices=["resnet", "vit"])
    parser.add_argument("--methods", nargs="+", default=[*METHODS, "oracle"], choices=[*METHODS, "oracle"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--eval_steps", type=int, default=300)
    parser.add_argument("--selection_target_rows", type=int, default=1000)
    parser.add_argument("--output_root", default="outputs/benchmarks/usps_mnist", help="Relative to the repository.")
    parser.add_argument("--output", default="benchmarks/results/usps_mnist.json")
    parser.add_argument("--report_only", action="store_true", help="Only rewrite the tables from --output.")
    args, args.extra = parser.parse_known_args()  # anything else goes to the recipe

    results = ResultsFile(args.output, protocol_of(args), report)
    if not args.report_only:
        for model_type in args.model_types:
            for seed in args.seeds:
                for method in args.methods:
                    if results.done(model=model_type, method=method, seed=seed):
                        continue
                    new = run_records(model_type, method, seed, args)
                    results.add(new)
                    print(f"{model_type} {method} seed {seed}: last {new[0]['target_accuracy']:.4f}", flush=True)
    results.save()
    print(Path(args.output).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
