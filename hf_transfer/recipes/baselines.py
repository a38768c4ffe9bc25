"""Baselines of the same study: the facts of a recipe run that decide whether two runs can be compared, and the
source-only run (`--source_only_run`) an adapted run's card compares with, checked before training."""

import json
import os

from ..hub.model_card import describe_source

RUN_SUMMARY_NAME = "hf_transfer_run.json"

# What a source-only run must share with the adapted run it is the baseline of.
SAME_STUDY_FIELDS = (
    "base_model",
    "source_dataset",
    "target_test_dataset",
    "transfer_strategy",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "world_size",
    "learning_rate",
    "seed",
)


def run_facts(args, card_info: dict) -> dict:
    """The facts of a recipe run that decide whether two runs belong to the same study (no local paths).

    `card_info` holds what the recipe passes to `trainer.set_model_card_info`.
    """
    info = card_info
    return {
        "adaptation_loss": list(getattr(args, "adaptation_loss", [])),
        "base_model": describe_source(info.get("base_model")),
        "source_dataset": info.get("source_dataset"),
        "target_dataset": info.get("target_dataset"),
        "target_test_dataset": (info.get("eval_datasets") or {}).get("target_test"),
        "transfer_strategy": args.transfer_strategy,
        "max_steps": args.max_steps,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "world_size": args.world_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "source_only_steps": getattr(args, "source_only_steps", 0),
    }


def _differences(theirs: dict, ours: dict, fields) -> list[str]:
    """`name: <theirs> there, <ours> here` for each of `fields` where two runs' facts differ."""
    return [
        f"{name}: {theirs.get(name)!r} there, {ours[name]!r} here" for name in fields if theirs.get(name) != ours[name]
    ]


def _read_run_summary(run_dir: str, argument: str, advice: str) -> dict:
    path = os.path.join(run_dir, RUN_SUMMARY_NAME)
    if not os.path.isfile(path):
        raise ValueError(f"`{argument}` {run_dir!r} holds no {RUN_SUMMARY_NAME}: pass the output_dir of {advice}")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def use_stage1_run(model_args, evaluation_args, args) -> dict | None:
    """`--stage1_run`: check the run (source-only, finished, `source_only_steps` steps) before anything is loaded,
    point the model at its saved weights and make this run stage 2 (`source_only_steps` → 0, `max_steps` → the
    stage-2 steps). Returns the run's summary (`facts`, `metrics`), or None without `--stage1_run`."""
    run_dir = evaluation_args.stage1_run
    if not run_dir:
        return None
    advice = (
        "a finished source-only run of this recipe: run it first with `--adaptation_loss none --source_only_steps 0 "
        f"--max_steps {args.source_only_steps or '<steps>'} --output_dir <dir>` and the same model, data and seed."
    )
    summary = _read_run_summary(run_dir, "stage1_run", advice)
    facts = summary["facts"]
    if facts["adaptation_loss"] or facts.get("source_only_steps"):
        raise ValueError(f"`stage1_run` {run_dir!r} is not a one-stage source-only run: pass {advice}")
    if not args.source_only_steps:
        raise ValueError(
            "`stage1_run` gives stage 1 of a two-stage run, but `source_only_steps` is 0: set it to the steps that "
            f"run trained ({facts['max_steps']}), with max_steps counting both stages."
        )
    if facts["max_steps"] != args.source_only_steps:
        raise ValueError(
            f"`stage1_run` {run_dir!r} trained {facts['max_steps']} steps, but `source_only_steps` is "
            f"{args.source_only_steps}: set --source_only_steps {facts['max_steps']} (max_steps counts both stages)."
        )
    if model_args.model_name_or_path and describe_source(model_args.model_name_or_path) != facts["base_model"]:
        raise ValueError(
            f"`stage1_run` {run_dir!r} fine-tuned {facts['base_model']}, not {model_args.model_name_or_path!r}: "
            "drop --model_name_or_path (the stage-1 model is loaded from the run)."
        )
    model_args.model_name_or_path = run_dir
    args.max_steps -= args.source_only_steps
    args.source_only_steps = 0
    return summary


def check_stage1_run(summary: dict | None, args, card_info: dict) -> None:
    """The stage-1 run and this one belong to the same study: same data, batch, learning rate and seed."""
    if summary is None:
        return
    fields = [name for name in SAME_STUDY_FIELDS if name not in ("max_steps", "base_model")]
    differ = _differences(summary["facts"], run_facts(args, card_info), fields)
    if differ:
        raise ValueError(
            f"`stage1_run` is not stage 1 of this run ({'; '.join(differ)}): re-run stage 1 with the same settings."
        )


def source_only_baseline(run_dir: str | None, args, card_info: dict) -> dict[str, float] | None:
    """The final metrics of the source-only run in `run_dir` (`--source_only_run`), checked to be the baseline of
    the run described by `args` and `card_info`: no alignment loss, and the same model, data, target test set,
    steps, batch, learning rate and seed. Call it before the trainer exists, so a refusal leaves nothing behind."""
    if not run_dir:
        return None
    advice = (
        "a finished source-only run of this recipe, e.g. run it first with `--adaptation_loss none --output_dir "
        "<dir>` and the same model, data, steps and seed."
    )
    baseline = _read_run_summary(run_dir, "source_only_run", advice)
    if baseline["facts"]["adaptation_loss"]:
        raise ValueError(
            f"`source_only_run` {run_dir!r} was trained with adaptation_loss {baseline['facts']['adaptation_loss']}: "
            "the baseline must be a run with `--adaptation_loss none`."
        )
    differ = _differences(baseline["facts"], run_facts(args, card_info), SAME_STUDY_FIELDS)
    if differ:
        raise ValueError(
            f"`source_only_run` {run_dir!r} is not a baseline of this run ({'; '.join(differ)}). Re-run the "
            "source-only baseline with the same settings, or drop --source_only_run."
        )
    return baseline["metrics"]
