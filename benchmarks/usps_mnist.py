"""USPS → MNIST with `recipes/image_cls_dann.py`: source-only, DANN, MMD and CORAL, each a separate process.

    python benchmarks/usps_mnist.py                                  # ResNet, seed 42, the recipe's defaults
    python benchmarks/usps_mnist.py --model_types resnet vit --seeds 42 43 44

Every run is the recipe's command line as a user would type it (`python recipes/image_cls_dann.py ...`); the wall
time is that of the whole process (data loading, training, evaluation, saving). The results (target-test and
source-test accuracy, wall time, the command) go to `--output` as JSON, and a Markdown table to the same name
with `.md`. Protocol: the model trains on the 7291 USPS training images (labeled) and the first 5000 images of
the MNIST test split (unlabeled); target-test accuracy is measured on the last 5000 MNIST test images, which the
run never sees in training.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "image_cls_dann.py"


def run_one(model_type: str, loss: str, seed: int, output_root: Path, extra: list[str]) -> dict:
    output_dir = output_root / f"{model_type}_{loss}_seed{seed}"
    command = [
        sys.executable,
        str(RECIPE.relative_to(ROOT)),
        "--model_type",
        model_type,
        "--adaptation_loss",
        loss,
        "--seed",
        str(seed),
        "--output_dir",
        str(output_dir),
        *extra,
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    results = json.loads((output_dir / "all_results.json").read_text())
    return {
        "model_type": model_type,
        "adaptation_loss": loss,
        "seed": seed,
        "target_test_accuracy": results["eval_target_test_accuracy"],
        "source_test_accuracy": results["eval_source_test_accuracy"],
        "train_runtime_s": results["train_runtime"],
        "wall_s": round(wall, 1),
        "command": " ".join(command[1:]),
    }


def table(runs: list[dict]) -> str:
    lines = [
        "| model | method | target-test acc. (MNIST) | source-test acc. (USPS) | seeds | CPU wall time per run |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["model_type"], r["adaptation_loss"]) for r in runs}, key=lambda k: (k[0], _ORDER.index(k[1])))
    for model_type, loss in keys:
        group = [r for r in runs if (r["model_type"], r["adaptation_loss"]) == (model_type, loss)]
        lines.append(
            f"| {model_type} | {_NAMES[loss]} | {_mean_sd([r['target_test_accuracy'] for r in group])} | "
            f"{_mean_sd([r['source_test_accuracy'] for r in group])} | {len(group)} | "
            f"{statistics.mean(r['wall_s'] for r in group):.0f} s |"
        )
    return "\n".join(lines) + "\n"


_ORDER = ["none", "dann", "mmd", "coral"]
_NAMES = {"none": "source-only", "dann": "DANN", "mmd": "MMD", "coral": "CORAL"}


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_types", nargs="+", default=["resnet"], choices=["resnet", "vit"])
    parser.add_argument("--losses", nargs="+", default=_ORDER, choices=_ORDER)
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--output_root", default="outputs/benchmarks/usps_mnist")
    parser.add_argument("--output", default="benchmarks/results/usps_mnist.json")
    args, extra = parser.parse_known_args()  # anything else goes to the recipe

    runs = []
    for model_type in args.model_types:
        for seed in args.seeds:
            for loss in args.losses:
                runs.append(run_one(model_type, loss, seed, Path(args.output_root), extra))
                print(json.dumps(runs[-1]), flush=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "USPS -> MNIST, recipes/image_cls_dann.py",
        "machine": f"{os.cpu_count()} CPU cores",
        "recipe_arguments": extra,
        "runs": runs,
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(table(runs))
    print(table(runs))


if __name__ == "__main__":
    main()
