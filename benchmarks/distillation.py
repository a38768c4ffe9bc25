"""Knowledge distillation: a teacher, and the student built from it trained four ways, per setting and seed. The
protocol, declared before the runs, is in `docs/benchmarks.md` ("Knowledge distillation: the declared protocol").

    python benchmarks/distillation.py --settings books:kitchen kitchen:books --seeds 42
    python benchmarks/distillation.py --settings usps:mnist --seeds 42 43 44
    python benchmarks/distillation.py --report_only

Per setting and seed: the recipe default (`kd_unlabeled`) runs first and trains the teacher (kept in
`<output_root>/<setting>_seed<seed>/kd_unlabeled/teacher`); the other variants reuse it
(`--teacher_model_name_or_path`). Then the inference throughput of teacher and student is measured side by side in
this process. Records are appended to `--output` (JSON; what is there is skipped), the tables go to the same name
with `.md` and, with `--report_only`, between the markers of `docs/benchmarks.md`.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import ROOT, ResultsFile, run_recipe

SETTINGS = {  # setting -> (recipe, source dataset, target dataset)
    "books:kitchen": ("recipes/text_cls_distill.py", "amazon:books", "amazon:kitchen"),
    "kitchen:books": ("recipes/text_cls_distill.py", "amazon:kitchen", "amazon:books"),
    "usps:mnist": ("recipes/image_cls_distill.py", "digits:usps", "digits:mnist"),
}
# variant -> its arguments (after the setting's data); `kd_unlabeled` is the recipe default and trains the teacher
VARIANTS = {
    "kd_unlabeled": [],
    "hard": ["--alpha", "1", "--no_unlabeled"],
    "kd": ["--no_unlabeled"],
    "kd_hidden": ["--hidden_state_loss", "mse", "--no_unlabeled"],
}
SOURCE_EVAL = {"recipes/text_cls_distill.py": "source_validation", "recipes/image_cls_distill.py": "source_test"}
DOCS = ROOT / "docs" / "benchmarks.md"
START = "<!-- written by `python benchmarks/distillation.py --report_only`: start -->"
END = "<!-- written by `python benchmarks/distillation.py --report_only`: end -->"


def protocol_of(args) -> dict:
    return {
        "text": "MiniLM teacher: 150 steps x 16 rows, lr 5e-5; student 3 of 6 layers: 300 steps x 32 rows, lr 1e-4",
        "images": "ResNet 2 blocks/stage teacher and 1 block/stage student: 1500 steps, lr 1e-3",
        "alpha": 0.5,
        "temperature": 2.0,
        "precision": args.precision,
        "throughput": "target test rows, eval batch size, same precision, median of 3 interleaved passes",
    }


def run_dir(setting: str, seed: int, variant: str, args) -> Path:
    return Path(args.output_root) / f"{setting.replace(':', '_')}_seed{seed}" / variant


def teacher_dir(setting: str, seed: int, args) -> Path:
    return run_dir(setting, seed, "kd_unlabeled", args) / "teacher"


def command_of(setting: str, seed: int, variant: str, args) -> list[str]:
    recipe, source, target = SETTINGS[setting]
    command = [sys.executable, recipe, "--source_dataset", source, "--target_dataset", target]
    extra = list(VARIANTS[variant])
    if "--no_unlabeled" in extra:
        extra.remove("--no_unlabeled")
        command += ["--target_dataset", "none", "--target_test_dataset", target]
    if variant != "kd_unlabeled":
        command += ["--teacher_model_name_or_path", str(ROOT / teacher_dir(setting, seed, args))]
    command += extra + ["--seed", str(seed), "--output_dir", str(run_dir(setting, seed, variant, args))]
    command += ["--report_to", "none", "--save_strategy", "no"]
    if args.precision == "bf16" and recipe.startswith("recipes/text"):
        command += ["--bf16", "true", "--use_cpu", "true"]
    elif args.precision == "fp32":
        command += ["--bf16", "false"]
    return command


def variant_records(setting: str, seed: int, variant: str, args) -> list[dict]:
    """The student's record (and, for the run that trains it, the teacher's)."""
    command = command_of(setting, seed, variant, args)
    output_dir = run_dir(setting, seed, variant, args)
    run = run_recipe(command, output_dir, keep_weights=variant == "kd_unlabeled")
    if variant == "kd_unlabeled":  # keep the teacher's weights only
        for weights in (ROOT / output_dir).glob("*.safetensors"):
            weights.unlink()
    source_eval = SOURCE_EVAL[SETTINGS[setting][0]]
    summary = json.loads((ROOT / output_dir / "hf_transfer_run.json").read_text())
    base = {"setting": setting, "seed": seed}
    student = {**base, "model": "student", "variant": variant, **_accuracies(run["results"], source_eval)}
    student.update(
        parameters=summary["teacher"]["student_parameters"],
        wall_seconds=round(run["wall_seconds"], 1),
        cpu_seconds=round(run["cpu_seconds"], 1),
        train_runtime=run["results"]["train_runtime"],
        command=" ".join(command[1:]),
    )
    records = [student]
    if variant == "kd_unlabeled":
        state = json.loads((ROOT / output_dir / "teacher" / "trainer_state.json").read_text())
        runtime = next(e["train_runtime"] for e in state["log_history"] if "train_runtime" in e)
        teacher = {**base, "model": "teacher", "variant": "teacher", **_accuracies(summary["teacher"]["results"],
                                                                                    source_eval)}  # fmt: skip
        teacher.update(parameters=summary["teacher"]["teacher_parameters"], train_runtime=runtime)
        records.insert(0, teacher)
    return records


def _accuracies(results: dict, source_eval: str) -> dict:
    return {
        "source_accuracy": results[f"eval_{source_eval}_accuracy"],
        "target_accuracy": results["eval_target_test_accuracy"],
    }


def throughput_record(setting: str, seed: int, args) -> dict:
    """Examples per second of the teacher and of the student built from it, on the target test rows, measured in
    this process one after the other, three times (median), at the protocol's precision and eval batch size."""
    import torch
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    from hf_transfer import build_student

    recipe, _, target = SETTINGS[setting]
    folder = ROOT / teacher_dir(setting, seed, args)
    text = recipe.startswith("recipes/text")
    auto = AutoModelForSequenceClassification if text else AutoModelForImageClassification
    teacher = auto.from_pretrained(folder).eval()
    student = build_student(teacher, num_layers=3 if text else 1).eval()
    batches, batch_size = _target_batches(folder, target, text)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16" and text)
    speeds = {"teacher": [], "student": []}
    with torch.no_grad(), autocast:
        for model in (teacher, student):  # one untimed warm-up pass each
            model(**batches[0])
        for _ in range(3):
            for name, model in (("teacher", teacher), ("student", student)):
                start = time.perf_counter()
                rows = sum(model(**batch).logits.shape[0] for batch in batches)
                speeds[name].append(rows / (time.perf_counter() - start))
    teacher_speed, student_speed = statistics.median(speeds["teacher"]), statistics.median(speeds["student"])
    return {
        "setting": setting, "seed": seed, "model": "throughput", "variant": "throughput",
        "teacher_examples_per_second": round(teacher_speed, 1), "student_examples_per_second": round(student_speed, 1),
        "speedup": round(student_speed / teacher_speed, 3), "rows": sum(len(next(iter(b.values()))) for b in batches),
        "batch_size": batch_size, "threads": torch.get_num_threads(),
    }  # fmt: skip


def _target_batches(teacher_folder: Path, target: str, text: bool):
    """The target test rows as model-input batches (text: tokenized to 128 tokens, batch 64; images: the recipe's
    processor, batch 256)."""
    from hf_transfer import load_domain_dataset

    data = load_domain_dataset(target, "test", "target_dataset")
    if text:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(teacher_folder)
        texts, size = list(data["text"]), 64
        return [tokenizer(texts[i : i + size], truncation=True, max_length=128, padding=True, return_tensors="pt")
                for i in range(0, len(texts), size)], size  # fmt: skip
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(teacher_folder)
    images, size = [image.convert("RGB") for image in data["image"]], 256
    return [processor(images[i : i + size], return_tensors="pt") for i in range(0, len(images), size)], size


# ---- report -----------------------------------------------------------------------------------------------------


def report(records: list[dict]) -> str:
    lines = ["## Knowledge distillation", "", *setting_tables(records)]
    return "\n".join(lines) + "\n"


def setting_tables(records: list[dict]) -> list[str]:
    lines = []
    for setting in SETTINGS:
        rows = [r for r in records if r["setting"] == setting]
        if not rows:
            continue
        seeds = sorted({r["seed"] for r in rows})
        lines += [f"### {setting.replace(':', ' → ')} (seeds {', '.join(map(str, seeds))})", ""]
        lines += ["| model | source accuracy (%) | target accuracy (%) | target kept (%) | parameters | examples/s | "]
        lines[-1] += "training time (s) |"
        lines += ["|---|---|---|---|---|---|---|"]
        speed = [r for r in rows if r["model"] == "throughput"]
        teacher_target = _mean(rows, "teacher", "target_accuracy")
        for variant in ("teacher", *VARIANTS):
            found = [r for r in rows if r["variant"] == variant]
            if not found:
                continue
            source, target = _mean(rows, variant, "source_accuracy"), _mean(rows, variant, "target_accuracy")
            kept = "–" if variant == "teacher" or not teacher_target else f"{100 * target / teacher_target:.1f}"
            key = "teacher_examples_per_second" if variant == "teacher" else "student_examples_per_second"
            eps = f"{statistics.mean(r[key] for r in speed):.0f}" if speed else "–"
            runtime = statistics.mean(r["train_runtime"] for r in found)
            lines.append(f"| {variant} | {100 * source:.2f} | {100 * target:.2f} | {kept} | {found[0]['parameters']:,} "
                         f"| {eps} | {runtime:.0f} |")  # fmt: skip
        lines += [""] + goal_lines(rows, speed) + [""]
    return lines


def _mean(rows: list[dict], variant: str, key: str) -> float | None:
    values = [r[key] for r in rows if r["variant"] == variant]
    return statistics.mean(values) if values else None


def goal_lines(rows: list[dict], speed: list[dict]) -> list[str]:
    teacher = _mean(rows, "teacher", "target_accuracy")
    default, hard, kd = (_mean(rows, v, "target_accuracy") for v in ("kd_unlabeled", "hard", "kd"))
    lines = []
    if teacher and default:
        lines.append(f"- the recipe default keeps {100 * default / teacher:.1f} % of the teacher's target accuracy "
                     "(goal, text: at least 97 %);")  # fmt: skip
    if speed:
        lines.append(f"- at {statistics.mean(r['speedup'] for r in speed):.2f}× its inference throughput (goal, "
                     "text: at least 1.8×);")  # fmt: skip
    if hard and kd:
        gain = 100 * (kd - hard)
        lines.append(f"- soft labels against hard labels alone (same student, data and steps): {gain:+.2f} points "
                     "of target accuracy (goal: at least +1.0).")  # fmt: skip
    return lines


def update_page(records: list[dict]) -> bool:
    text = DOCS.read_text()
    if START not in text or END not in text:
        return False
    before, rest = text.split(START, 1)
    lines = [f"#{line}" if line.startswith("## ") or line.startswith("### ") else line
             for line in setting_tables(records)]  # fmt: skip
    DOCS.write_text(f"{before}{START}\n" + "\n".join(lines) + f"\n{END}{rest.split(END, 1)[1]}")
    return True


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["books:kitchen", "kitchen:books"], choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"],
                        help="bf16: autocast for the text recipes (their CPU default); images: fp32.")  # fmt: skip
    parser.add_argument("--output_root", default="outputs/benchmarks/distillation")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "distillation.json"))
    parser.add_argument("--report_only", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    results = ResultsFile(args.output, protocol_of(args), report)
    if not args.report_only:
        for seed in args.seeds:
            for setting in args.settings:
                variants = ["kd_unlabeled"] + [v for v in args.variants if v != "kd_unlabeled"]
                for variant in variants:
                    if not results.done(setting=setting, seed=seed, variant=variant):
                        results.add(variant_records(setting, seed, variant, args))
                        print(f"{setting} {variant} seed {seed}: done", flush=True)
                if not results.done(setting=setting, seed=seed, variant="throughput"):
                    results.add([throughput_record(setting, seed, args)])
    results.save()
    if args.report_only and update_page(results.records):
        print(f"updated {DOCS.relative_to(ROOT)}")
    print(report(results.records))


if __name__ == "__main__":
    main()
