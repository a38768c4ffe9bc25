"""Two stages in one run: `source_only_steps` optimizer steps on the labeled source rows alone (stage 1), then the
adaptation losses from the stage-1 weights (stage 2) with a fresh optimizer state and learning-rate schedule.

Stage 1 is the source-only baseline of the same run: at its last step the model is evaluated (metrics
`stage1_<set>_<metric>`) and saved, with its results, to `<output_dir>/stage1` (a `from_pretrained` folder). That
folder is what a resumed stage 2, the transfer report of the card and the negative-transfer guard read.
"""

import json
import os
import shutil

import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback, get_scheduler

STAGE1_FOLDER = "stage1"
STAGE1_RESULTS = "stage1_results.json"
ADAPTED_FOLDER = "adapted"
GUARD_FILE = "negative_transfer_guard.json"


def two_stage_scheduler(args, optimizer, num_training_steps: int) -> LambdaLR:
    """`args.lr_scheduler_type` twice: over the `source_only_steps` steps of stage 1, then restarted (warm-up
    included, `warmup_steps` a fraction of each stage when < 1) over the remaining steps of stage 2."""
    stage1 = args.source_only_steps
    stage2 = num_training_steps - stage1
    if stage2 < 1:
        raise ValueError(
            f"`source_only_steps`={stage1} leaves no adaptation step in a run of {num_training_steps} steps: "
            "raise `max_steps` above `source_only_steps`."
        )
    lambdas = [schedule_function(args, stage1), schedule_function(args, stage2)]

    def factor(step: int) -> float:
        return lambdas[0](step) if step < stage1 else lambdas[1](step - stage1)

    return LambdaLR(optimizer, factor)


def schedule_function(args, steps: int):
    """The learning-rate factor of `args.lr_scheduler_type` over `steps` steps, as a function of the step."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = get_scheduler(
        args.lr_scheduler_type,
        optimizer=probe,
        num_warmup_steps=args.get_warmup_steps(steps),
        num_training_steps=steps,
        scheduler_specific_kwargs=args.lr_scheduler_kwargs,
    )
    if not isinstance(scheduler, LambdaLR):
        raise ValueError(
            f"`lr_scheduler_type`={args.lr_scheduler_type!r} cannot restart for stage 2 of `source_only_steps`: use "
            "'linear', 'cosine', 'constant', 'constant_with_warmup', 'polynomial' or 'cosine_with_restarts'."
        )
    return scheduler.lr_lambdas[0]


def reset_optimizer_state(optimizer) -> None:
    """Forget the optimizer's moments (AdamW's running averages): stage 2 starts as a fresh optimizer would."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the torch one
    inner.state.clear()


def save_stage1(folder: str, model, processing_class, results: dict, step: int) -> None:
    """The stage-1 model (`save_pretrained`), its processor and results, written beside and renamed into place, so a
    folder that exists is complete."""
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    if processing_class is not None:
        processing_class.save_pretrained(partial)
    with open(os.path.join(partial, STAGE1_RESULTS), "w", encoding="utf-8") as handle:
        json.dump({"step": step, "results": results}, handle, indent=2)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def read_stage1_results(folder: str) -> dict:
    """`{"step": ..., "results": {eval_<set>_<metric>: value}}` of a stage-1 folder (checked to be there)."""
    path = os.path.join(folder, STAGE1_RESULTS)
    if not os.path.isfile(path):
        raise ValueError(
            f"{folder} holds no {STAGE1_RESULTS}: the stage-1 model of this run is missing. Resume in the "
            "`output_dir` the run was started in (its `stage1` folder is written at the end of stage 1), or "
            "restart from a checkpoint of stage 1."
        )
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def as_eval_results(metrics: dict, prefix: str = "stage1") -> dict:
    """`stage1_<set>_<metric>` → `eval_<set>_<metric>` (the keys of a run's results), runtime entries dropped."""
    results = {}
    for key, value in metrics.items():
        if key.startswith(prefix + "_") and not key.endswith(("_runtime", "_per_second")):
            results["eval_" + key[len(prefix) + 1 :]] = value
    return results


class TwoStageCallback(TrainerCallback):
    """Calls `end_of_stage_one()` after optimizer step `steps`, and `resumed_in_stage_two()` when training starts
    (from a checkpoint) at or past it."""

    def __init__(self, steps: int, end_of_stage_one, resumed_in_stage_two):
        self.steps = steps
        self.end_of_stage_one = end_of_stage_one
        self.resumed_in_stage_two = resumed_in_stage_two

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:
            self.resumed_in_stage_two()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.steps:
            # evaluating the stage-1 model resets the Trainer's flags for this step (its own log, evaluation and
            # save at this step would be skipped): keep them
            flags = (control.should_log, control.should_evaluate, control.should_save)
            self.end_of_stage_one()
            control.should_log, control.should_evaluate, control.should_save = flags
