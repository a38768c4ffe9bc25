"""What the benchmark scripts share: a recipe run as its own process, the evaluations it logged, the checkpoint
each selection rule picks, and a JSON results file that runs are appended to (a run already there is skipped, so a
long benchmark can be split across sessions).

Selection rules (which checkpoint of a run is reported): `last` (the end of training, what the recipe saves),
`oracle` (the best target-test accuracy: uses target labels, for reference only) and one per label-free validator
of `hf_transfer.evaluation.selection` (`source_accuracy`, `target_entropy`, `im`, `snd`, `dev`, `proxy_a_distance`).
"""

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hf_transfer.evaluation.selection import VALIDATORS, best_step  # noqa: E402

RULES = ("last", "oracle", *VALIDATORS)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_recipe(command: list[str], output_dir: Path, keep_weights: bool = False) -> dict:
    """Run one recipe process (from the repository root); its trainer state (`log_history`), final results, wall
    seconds and CPU seconds (user + system time of the process: unlike wall time, it hardly changes when something
    else runs on the machine). The model weights (in `output_dir` and its subfolders) are deleted afterwards (~90 MB
    each for MiniLM) unless `keep_weights`; the logs, results and card stay in `output_dir`, the process's output in
    `<output_dir>.log`."""
    output_dir = ROOT / output_dir
    log = output_dir.with_name(output_dir.name + ".log")  # the process's output, beside its output dir
    log.parent.mkdir(parents=True, exist_ok=True)
    start, cpu_start = time.perf_counter(), _children_cpu_seconds()
    with log.open("w") as stream:
        finished = subprocess.run(command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise RuntimeError(f"{' '.join(command)} failed (exit {finished.returncode}); end of {log}:\n{tail}")
    state = json.loads((output_dir / "trainer_state.json").read_text())
    for weights in [] if keep_weights else output_dir.rglob("*.safetensors"):
        weights.unlink()
    return {
        "log_history": state["log_history"],
        "results": json.loads((output_dir / "all_results.json").read_text()),
        "wall_seconds": wall,
        "cpu_seconds": _children_cpu_seconds() - cpu_start,
    }


def evaluations(log_history: list[dict], target: str = "target_test", source: str = "source_validation") -> list[dict]:
    """One entry per evaluation during training: its step, the target-test and source metrics and the validators
    (evaluation sets are named as in the recipes: `eval_<set>_<metric>`, validators `eval_selection_<name>`)."""
    by_step: dict[int, dict] = {}
    for entry in log_history:
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
            "target_accuracy": entry.get(f"{target}_accuracy"),
            "target_macro_f1": entry.get(f"{target}_macro_f1"),
            "source_validation_accuracy": entry.get(f"{source}_accuracy"),
        }
        record.update({name: entry.get(f"selection_{name}") for name in VALIDATORS})
        history.append(record)
    return history


def selection_records(base: dict, history: list[dict]) -> list[dict]:
    """One record per selection rule: `base` plus the checkpoint the rule picks and its metrics."""
    complete = [h for h in history if all(h[name] is not None for name in VALIDATORS)]
    chosen = {"last": history[-1], "oracle": max(history, key=lambda h: (h["target_accuracy"], h["step"]))}
    if complete:
        chosen.update({name: best_step(complete, name) for name in VALIDATORS})
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


class ResultsFile:
    """Records appended to a JSON file, each tagged with the id of the protocol (the settings every run of a
    benchmark shares) it was measured under; `report(records)` renders the Markdown tables (same name, `.md`) from
    the records of the current protocol."""

    def __init__(self, path: str | Path, protocol: dict, report: Callable[[list[dict]], str]):
        self.path = Path(path)
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"protocols": {}, "records": []}
        self.protocol_id = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:12]
        self.data["protocols"][self.protocol_id] = protocol
        self.report = report

    @property
    def records(self) -> list[dict]:
        return [r for r in self.data["records"] if r["protocol"] == self.protocol_id]

    def done(self, **match) -> bool:
        return lookup(self.records, **match) is not None

    def add(self, records: list[dict]) -> None:
        commit = code_version()
        self.data["records"] += [{**r, "protocol": self.protocol_id, "code": commit} for r in records]
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data["machine"] = f"{os.cpu_count()} CPU cores"
        # Written beside and renamed into place: a results file read (or committed) while a run appends to it is
        # always a whole one, the old or the new.
        for path, text in (
            (self.path, json.dumps(self.data, indent=1) + "\n"),
            (self.path.with_suffix(".md"), self.report(self.records)),
        ):
            partial = path.with_name(path.name + ".partial")
            partial.write_text(text)
            os.replace(partial, path)


def code_version() -> str:
    """The git commit the runs used (`+dirty` when tracked files had uncommitted changes), or "unknown"."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    except OSError:
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def lookup(records: list[dict], **match) -> dict | None:
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    return found[0] if found else None


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def mean_sd(values: list[float], digits: int = 1) -> str:
    """Mean (± sample standard deviation when there are several values), in percent, with `digits` decimals."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{100 * values[0]:.{digits}f}"
    return f"{100 * statistics.mean(values):.{digits}f} ± {100 * statistics.stdev(values):.{digits}f}"


def write_between_markers(script: str, lines: list[str]) -> bool:
    """Put `lines` between the markers of `python benchmarks/<script>.py --report_only` in docs/benchmarks.md
    (nothing else changes); False when the page has no such markers."""
    page = ROOT / "docs" / "benchmarks.md"
    start = f"<!-- written by `python benchmarks/{script}.py --report_only`: start -->"
    end = f"<!-- written by `python benchmarks/{script}.py --report_only`: end -->"
    text = page.read_text()
    if start not in text or end not in text:
        return False
    before, rest = text.split(start, 1)
    page.write_text(f"{before}{start}\n" + "\n".join(lines) + f"\n{end}{rest.split(end, 1)[1]}")
    return True
