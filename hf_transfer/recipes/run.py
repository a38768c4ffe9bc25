"""A recipe run once its model and data are ready: train with the family's trainer, evaluate, save, write the run
summary and the card, push when asked. `train_fine_tuning`, `train_domain_adaptation` and `train_distillation` are
what the recipes of each family share; `finish_run` is the end of every run."""

import json
import logging
import os
import time

import datasets
import transformers

from ..cpu_threads import use_all_cpu_cores_in_a_single_cpu_process
from ..distillation import DistillationTrainer
from ..domain_adaptation import DomainAdaptationTrainer
from ..evaluation.report import TransferReport
from ..fine_tuning import FineTuningTrainer
from ..metrics import compute_classification_metrics
from .arguments import EvaluationArguments, FineTuningArguments
from .baselines import RUN_SUMMARY_NAME, check_stage1_run, run_facts, source_only_baseline

logger = logging.getLogger(__name__)


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    datasets.utils.logging.set_verbosity_warning()
    use_all_cpu_cores_in_a_single_cpu_process()


def train_fine_tuning(
    training_args,
    fine_tuning_args: FineTuningArguments,
    *,
    model,
    processing_class,
    data_collator,
    train_dataset,
    eval_datasets: dict,
    card_info: dict,
    report: str,
) -> dict[str, float]:
    """The fine-tuning recipes after their data is prepared: the linear probe (if asked), training, the end."""
    probe_metrics = run_linear_probe(fine_tuning_args, model, train_dataset, eval_datasets, data_collator)
    trainer = FineTuningTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_datasets or None,
        processing_class=processing_class,
        data_collator=data_collator,
        compute_metrics=compute_classification_metrics,
    )
    trainer.set_model_card_info(**card_info)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    return finish_run(
        trainer, train_result, report=report, extra_metrics=probe_metrics, merge_adapter=fine_tuning_args.merge_adapter
    )


def train_domain_adaptation(
    training_args,
    evaluation_args: EvaluationArguments,
    *,
    model,
    processing_class,
    data_collator,
    source,
    target,
    source_validation,
    eval_datasets: dict,
    card_info: dict,
    report: str,
    stage1: dict | None = None,
) -> dict[str, float]:
    """The domain-adaptation recipes after their data is prepared: the baselines checked (before anything is
    written), label-free selection and diagnostics set up, training, the negative-transfer guard and the
    diagnostics after it, the end. `stage1`: the `--stage1_run` summary (`use_stage1_run`)."""
    source_only_results = source_only_baseline(evaluation_args.source_only_run, training_args, card_info)
    check_stage1_run(stage1, training_args, card_info)
    guard = _guard_wanted(evaluation_args, training_args, stage1, source_validation)
    selection = selection_callback(evaluation_args, training_args, source_validation, target, data_collator)
    diagnostics = transfer_diagnostics(evaluation_args, training_args, source_validation, target, data_collator, model)
    trainer = DomainAdaptationTrainer(
        model=model,
        args=training_args,
        train_dataset=source,
        target_dataset=target,
        eval_dataset=eval_datasets,
        processing_class=processing_class,
        data_collator=data_collator,
        compute_metrics=compute_classification_metrics,
        callbacks=[selection] if selection else None,
    )
    trainer.set_model_card_info(**card_info)
    trainer.set_baselines(source_only_results=source_only_results)
    if stage1 is not None:
        trainer.set_stage1_model(evaluation_args.stage1_run, results=stage1["metrics"])
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if guard:
        trainer.guard_negative_transfer(source_validation, max_target_rows=evaluation_args.guard_target_rows)
    if diagnostics is not None:
        trainer.set_transfer_diagnostics(diagnostics.after(trainer.model, training_args.output_dir))
    metrics = finish_run(trainer, train_result, report=report)
    if trainer.stage1 is not None and trainer.is_world_process_zero():
        print(side_by_side(trainer, metrics))
    return metrics


def train_distillation(
    training_args,
    *,
    student,
    teacher,
    teacher_name: str,
    processing_class,
    data_collator,
    train_dataset,
    unlabeled_dataset,
    eval_datasets: dict,
    card_info: dict,
    report: str,
) -> dict[str, float]:
    """The distillation recipes once teacher, student and data are ready: training, the teacher evaluated on the
    same sets (for the card and the side-by-side print), the end."""
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        train_dataset=train_dataset,
        unlabeled_dataset=unlabeled_dataset,
        eval_dataset=eval_datasets or None,
        processing_class=processing_class,
        data_collator=data_collator,
        compute_metrics=compute_classification_metrics,
    )
    trainer.set_model_card_info(**card_info)
    trainer.set_teacher_name(teacher_name)
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    teacher_results = trainer.evaluate_teacher() if eval_datasets else {}
    metrics = finish_run(trainer, train_result, report=report)
    if trainer.is_world_process_zero() and teacher_results:
        pairs = [
            f"{key.removeprefix('eval_')}: teacher {value:.4f} | student {metrics.get(key, float('nan')):.4f}"
            for key, value in teacher_results.items()
            if key.endswith("_accuracy")
        ]
        print("; ".join(pairs))
    return metrics


def _guard_wanted(evaluation_args: EvaluationArguments, training_args, stage1, source_validation) -> bool:
    """Whether the run ends with the negative-transfer guard: a two-stage run that adapts, the guard not turned off,
    and held-out source rows (required, checked here before training, when the guard was asked for explicitly)."""
    two_stages = bool(training_args.source_only_steps or stage1)
    setting = evaluation_args.negative_transfer_guard
    if setting is False or not (two_stages and training_args.adaptation_loss):
        return False
    if source_validation is None and setting is None:
        logger.warning(
            "No held-out source rows, so the negative-transfer guard does not run: the adapted model is kept "
            "whatever it does. Give the source data a held-out split to have it."
        )
        return False
    if source_validation is None:
        raise ValueError(
            "`negative_transfer_guard` compares the models on held-out labeled source rows, and this run has none: "
            "give the source data a held-out split (--source_validation_split in the text recipe, "
            "--source_test_split in the image recipe), or drop --negative_transfer_guard true."
        )
    return True


def side_by_side(trainer, metrics: dict[str, float]) -> str:
    """The stage-1 (source-only) model's target-test accuracy next to the adapted one's and the one kept."""
    stage1 = trainer.stage1["results"].get("eval_target_test_accuracy")
    report = getattr(trainer, "_guard_report", None)
    if report is None:
        adapted, kept = metrics.get("eval_target_test_accuracy"), "the adapted model (no guard)"
    elif report["keeps_adapted"]:
        adapted, kept = metrics.get("eval_target_test_accuracy"), "the adapted model"
    else:
        adapted, kept = (report["adapted_results"] or {}).get("eval_target_test_accuracy"), "the stage-1 model"

    def value(x):
        return "not measured" if x is None else f"{x:.4f}"

    return (
        f"target-test accuracy: stage 1 (source-only) {value(stage1)} | adapted {value(adapted)} | the guard kept "
        f"{kept} ({value(metrics.get('eval_target_test_accuracy'))})"
    )


def selection_callback(evaluation_args: EvaluationArguments, training_args, source_validation, target, collator):
    """The `LabelFreeModelSelection` callback asked for (None when off), checked against the run's settings."""
    if not evaluation_args.label_free_selection:
        return None
    if training_args.eval_strategy == "no":
        raise ValueError(
            "`label_free_selection` scores the model at each evaluation, but `eval_strategy` is 'no': add "
            "--eval_strategy steps --eval_steps <N>."
        )
    from ..evaluation.selection import LabelFreeModelSelection

    settings = _source_and_target_settings("label_free_selection", training_args, source_validation, collator)
    return LabelFreeModelSelection(
        source_validation, target, max_target_rows=evaluation_args.selection_target_rows, **settings
    )


def transfer_diagnostics(
    evaluation_args: EvaluationArguments, training_args, source_validation, target, collator, model
):
    """`TransferDiagnostics` with the model's features before training recorded (None when off, or on processes
    other than the main one, which writes the output)."""
    if not evaluation_args.transfer_diagnostics or training_args.process_index != 0:
        return None
    from ..evaluation.diagnostics import TransferDiagnostics

    settings = _source_and_target_settings("transfer_diagnostics", training_args, source_validation, collator)
    diagnostics = TransferDiagnostics(source_validation, target, max_rows=evaluation_args.diagnostics_rows, **settings)
    diagnostics.before(model.to(training_args.device))
    return diagnostics


def _source_and_target_settings(flag: str, training_args, source_validation, collator) -> dict:
    """What label-free selection and the diagnostics share: held-out labeled source rows (checked to be there),
    how to batch them, which features to compare, the head's name and the seed."""
    if source_validation is None:
        raise ValueError(
            f"`{flag}` compares held-out labeled source rows with target rows: give the source data a held-out "
            "split (--source_validation_split in the text recipes, --source_test_split in the image recipe)."
        )
    return dict(
        data_collator=collator,
        batch_size=training_args.per_device_eval_batch_size,
        features=getattr(training_args, "alignment_features", "head_input"),
        classifier_module=training_args.classifier_module,
        seed=training_args.seed,
    )


def run_linear_probe(args: FineTuningArguments, model, train_dataset, eval_datasets: dict, data_collator) -> dict:
    """`probe_<set>_<metric>` and `probe_runtime` of a linear probe on the model's frozen features ({} if off)."""
    if not args.linear_probe or not eval_datasets:
        return {}
    from ..evaluation.linear_probe import linear_probe

    start = time.perf_counter()
    probe = linear_probe(
        model, train_dataset, eval_datasets, data_collator=data_collator, features=args.linear_probe_features
    )
    metrics = {f"probe_{name}": value for name, value in probe.items()}
    metrics["probe_runtime"] = round(time.perf_counter() - start, 2)
    logger.info("linear probe on the pretrained features: %s", metrics)
    return metrics


def finish_run(
    trainer, train_result, *, report: str, extra_metrics: dict | None = None, merge_adapter: bool = False
) -> dict[str, float]:
    """End a recipe run (`train_result` is None when no step was trained): evaluate every eval set, save metrics,
    state, the run summary (`hf_transfer_run.json`), the merged export (`merge_adapter`), the model card and the
    model; push it all when `--push_to_hub`.

    `report` is formatted with the final metrics (e.g. `"accuracy: {eval_target_test_accuracy:.4f}"`) and printed.
    `extra_metrics` (e.g. the linear probe's) are added to `all_results.json`. What the card says of the model and
    data comes from `trainer.set_model_card_info`, called before training.
    """
    metrics = dict(train_result.metrics) if train_result is not None else {}  # None: nothing was trained
    if trainer.eval_dataset:  # each eval set under its own prefix: eval_target_test_accuracy, ...
        metrics.update(trainer.evaluate())
    metrics.update(extra_metrics or {})
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)
    trainer.save_state()
    if merge_adapter:
        trainer.save_merged_model(os.path.join(trainer.args.output_dir, "merged"))
    if trainer.is_world_process_zero():
        write_run_summary(trainer, metrics)
    if trainer.args.push_to_hub:
        # saves the model, writes the card and uploads output_dir (not its checkpoint-* folders)
        trainer.push_to_hub(commit_message="End of training", results=metrics)
    else:
        trainer.save_model()
        trainer.create_model_card(
            model_name=os.path.basename(os.path.normpath(trainer.args.output_dir)), results=metrics
        )
    if trainer.is_world_process_zero():
        print(report.format(**metrics))
    return metrics


def write_run_summary(trainer, metrics: dict[str, float]) -> None:
    """`hf_transfer_run.json`: the run's facts, final metrics, transfer report and diagnostics (no local paths)."""
    facts = run_facts(trainer.args, getattr(trainer, "_model_card_info", {}))
    summary = {"facts": facts, "metrics": {k: v for k, v in metrics.items() if k.startswith("eval_")}}
    baselines = getattr(trainer, "_baselines", {})
    if any(baselines.values()):
        summary["transfer_report"] = [r.to_dict() for r in TransferReport.from_results(metrics, **baselines)]
    if getattr(trainer, "_diagnostics", None):
        summary["transfer_diagnostics"] = trainer._diagnostics
    if getattr(trainer, "stage1", None):
        summary["stage1"] = {"step": trainer.stage1["step"], "results": trainer.stage1["results"]}
    if getattr(trainer, "_guard_report", None):
        summary["negative_transfer_guard"] = trainer._guard_report
    if getattr(trainer, "_teacher_report", None):
        summary["teacher"] = trainer._teacher_report
    if getattr(trainer, "_continual_report", None):
        summary["continual"] = trainer._continual_report
    with open(os.path.join(trainer.args.output_dir, RUN_SUMMARY_NAME), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
