"""Model cards written by every hf_transfer training run, from the run itself.

What is common to every run (base model, data, strategy, results, baselines, time, hardware, usage) is read here
from the trainer; what a trainer family adds (its methods with their papers, its hyper-parameters, tags and intended
use) comes from the trainer's `describe_training()` hook as a `TrainingDescription`. The template,
`hf_transfer/hub/templates/model_card.md`, ships inside the package and is rendered with `huggingface_hub.ModelCard`.
"""

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..evaluation.report import TransferReport

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "model_card.md"
METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class Method:
    """A training method as the card lists it: its name, what it does, and the paper it comes from."""

    name: str
    description: str
    citation: str = ""


@dataclass
class TrainingDescription:
    """What a trainer family says of its run in the card (the `describe_training()` hook of every trainer).

    Args:
        summary: ends the sentence "trained with hf_transfer ...", e.g. "using DANN to align source and target
            features."
        methods: the methods used, each with its paper.
        hyperparameters: (name, value) rows of the family's own settings, after the common ones (steps, batch, ...).
        tags: Hub tags besides `hf_transfer`.
        data_label: how the card names the labeled training data ("Training data (labeled)").
        intended_use: the "Intended use and limitations" paragraph.
        unused_settings: names of the common hyper-parameters (steps, batch, ...) the family does not use.
    """

    summary: str
    methods: list[Method]
    hyperparameters: list[tuple[str, object]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    data_label: str = "Training data (labeled)"
    intended_use: str = ""
    unused_settings: tuple[str, ...] = ()  # common hyper-parameters the family does not use (left out of the card)


def describe_source(name: str | None) -> str:
    """A Hub id as is; a local path as 'local files (<name>)', never an absolute path."""
    if not name:
        return "not recorded"
    if os.path.isabs(name) or os.path.exists(name):
        return f"local files ({Path(os.path.normpath(name)).name})"
    return name


def describe_data(dataset) -> str | None:
    """A dataset as a card can name it without `set_model_card_info`: its Hub name or builder (`json`, `csv`, ...),
    its rows and columns (never a local path: a loaded dataset does not keep its file names); `None` without one."""
    if dataset is None:
        return None
    info = getattr(dataset, "info", None)
    parts = []
    name = getattr(info, "dataset_name", None) or getattr(info, "builder_name", None)
    if name:
        parts.append(str(name))
    size = f"{len(dataset)} rows" if hasattr(dataset, "__len__") else "rows of unknown number"
    columns = getattr(dataset, "column_names", None)
    what = f"{size}, columns {', '.join(columns)}" if columns else size
    return (
        f"{'; '.join(parts) or 'a dataset built in memory'} ({what}; described from the data: the run did not "
        "record its name)"
    )


def is_hub_id(name: str) -> bool:
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and not os.path.exists(name)


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def write_model_card(
    trainer,
    model_name: str | None = None,
    base_model: str | None = None,
    source_dataset: str | None = None,
    target_dataset: str | None = None,
    results: dict[str, float] | None = None,
    eval_datasets: dict[str, str] | None = None,
    output_dir: str | None = None,
    checkpoint_step: int | None = None,
    training_seconds: float | None = None,
    source_only_results: dict[str, float] | None = None,
    oracle_results: dict[str, float] | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    tags: str | list[str] | None = None,
    datasets: str | list[str] | None = None,
    pipeline_tag: str | None = None,
    diagnostics: dict | None = None,
    guard: dict | None = None,
    teacher: dict | None = None,
    continual: dict | None = None,
) -> str:
    """Render the card of a run into `output_dir/README.md` (default: `trainer.args.output_dir`); return its path.

    Args:
        base_model, source_dataset, target_dataset: Hub ids or descriptions; local paths are reduced to their
            file name. `source_dataset` is the labeled training data, `target_dataset` the unlabeled target data.
        results: `eval_<set>_<metric>` values; default: the evaluations in the trainer's log history.
        eval_datasets: a description (or Hub id) of each evaluation set, by set name (`{"target_test": ...}`).
        checkpoint_step, training_seconds: for the card of a checkpoint: its step and the training time so far.
        source_only_results, oracle_results: `eval_<set>_<metric>` of the baselines measured in the same study
            (same evaluation sets): a source-only run (same model, data, steps and seed, no alignment loss) and an
            oracle trained on target labels. The card then compares, reports the gap closed and flags negative
            transfer (see `hf_transfer.TransferReport`).
        diagnostics, guard, teacher: shown in a final card: `TransferDiagnostics.after`'s results (proxy
            A-distance, plot), `DomainAdaptationTrainer.guard_negative_transfer`'s report, a distilled student's
            teacher (`DistillationTrainer.evaluate_teacher`: its name, size and results next to the student's).
        continual: shown in a final card: `ContinualTrainer.continual_report()` (the accuracy matrix, its metrics and
            the heatmap `accuracy_matrix.png` in the output folder).
        language, license, tags, datasets, pipeline_tag: Hub metadata added to what the run states.
    """
    args = trainer.args
    base = _base_model_of(trainer.model)
    base_model = describe_source(base_model or getattr(base.config, "_name_or_path", None))
    model_name = model_name or Path(args.output_dir).name
    output_dir = output_dir or args.output_dir
    task = "image-classification" if _is_image_model(base) else "text-classification"
    if results is None:
        results = {k: v for entry in trainer.state.log_history for k, v in entry.items() if k.startswith("eval_")}
    baselines, reports = (source_only_results, oracle_results), (diagnostics, guard, teacher, continual)
    eval_results, results_section = _results_section(results, eval_datasets, task, checkpoint_step, baselines)
    description = trainer.describe_training()
    trained = trainer.state.global_step > 0 or checkpoint_step is not None  # not: zero-shot, a head fitted alone
    peft_config = getattr(trainer.model, "peft_config", None)
    dataset_ids = [d for d in (source_dataset, target_dataset) if d and is_hub_id(d)] + as_list(datasets)
    card_data = _card_data(description, base_model, model_name, task, eval_results, bool(peft_config), dataset_ids)
    card_data.language, card_data.license, card_data.pipeline_tag = language, license, pipeline_tag or task
    card_data.tags = sorted(set(card_data.tags + as_list(tags)))
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_name=model_name,
        **_provenance(trained, base_model, base, args, peft_config),
        task_description=task.replace("-", " "),
        method_sentence=description.summary,
        source_label=description.data_label,
        source_dataset=describe_source(source_dataset),
        target_dataset=describe_source(target_dataset) if target_dataset else None,
        **_final_sections(trainer, checkpoint_step, reports, source_only_results, results),
        methods=description.methods,
        hyperparameters=_hyperparameters(trainer, trained, description),
        training_time=_training_time(trainer, checkpoint_step, training_seconds),
        hardware=_hardware(args.device),
        usage=_usage(trainer, base, base_model, model_name, output_dir),
        intended_use=description.intended_use,
        versions=_versions(),
        **results_section,
    )
    return _save(card, output_dir)


def _save(card: ModelCard, output_dir: str) -> str:
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return str(path)


def _card_data(description, base_model, model_name, task, eval_results, peft: bool, dataset_ids) -> ModelCardData:
    """The card's Hub metadata from the run: library, base model, tags, datasets, pipeline tag, `model-index`."""
    return ModelCardData(
        library_name="peft" if peft else "transformers",
        base_model=base_model if _on_hub(base_model) else None,
        tags=sorted(set(["hf_transfer"] + description.tags)),
        datasets=sorted(set(dataset_ids)) or None,
        pipeline_tag=task,
        model_name=model_name,
        eval_results=eval_results or None,
    )


def common_hyperparameters(trainer, trained: bool = True) -> list[tuple[str, object]]:
    """The settings every run's card lists, before its family's own (without a training step: only those that
    still apply)."""
    args = trainer.args
    if not trained:
        return [("training steps", 0), ("mixed precision", _precision(args)), ("seed", args.seed)]
    scheduler = args.lr_scheduler_type
    return [
        ("max_steps", trainer.state.max_steps),
        ("per_device_train_batch_size", args.per_device_train_batch_size),
        ("gradient_accumulation_steps", args.gradient_accumulation_steps),
        ("world_size (processes)", args.world_size),
        ("learning_rate", args.learning_rate),
        ("lr_scheduler_type", scheduler.value if hasattr(scheduler, "value") else scheduler),
        ("warmup_steps", _warmup(args)),
        ("weight_decay", args.weight_decay),
        ("mixed precision", _precision(args)),
        ("seed", args.seed),
    ]


def _warmup(args):
    """The warm-up; a fraction of the run's steps, or of each experience's in continual learning (its schedule
    restarts with every experience)."""
    if not 0 < args.warmup_steps < 1:
        return args.warmup_steps
    return f"{args.warmup_steps} × " + (
        "the steps of each experience" if hasattr(args, "steps_per_experience") else "max_steps"
    )


def _hyperparameters(trainer, trained: bool, description: TrainingDescription) -> list[tuple[str, object]]:
    common = [row for row in common_hyperparameters(trainer, trained) if row[0] not in description.unused_settings]
    return common + description.hyperparameters


def _precision(args) -> str:
    """How the run computed: the results above were measured the same way (evaluation runs under the same autocast),
    while the saved weights are fp32."""
    if args.bf16 or args.fp16:
        kind = "bf16" if args.bf16 else "fp16"
        return f"{kind} autocast, training and evaluation (weights saved in fp32)"
    return "none (fp32)"


def describe_strategy(args, peft_config, base=None) -> str:
    """The strategy line: the adapter and its config, or which pretrained parameters trained and how."""
    if peft_config:
        config = next(iter(peft_config.values()))
        details = _describe_peft_config(config, base)
        return f"{config.peft_type.value} adapter ({details}); the classification head trained"
    strategy = {
        "full": "full fine-tuning (all parameters trained)",
        "feature_extraction": "feature extraction (backbone frozen, only the classification head trained)",
        "freeze_layers": f"embeddings and the lowest {getattr(args, 'num_frozen_layers', 0)} blocks frozen",
    }[getattr(args, "transfer_strategy", "full")]
    if getattr(args, "layerwise_lr_decay", 1.0) != 1.0:
        strategy += f"; layer-wise learning-rate decay {args.layerwise_lr_decay} (Howard & Ruder, 2018)"
    if getattr(args, "progressive_unfreezing_steps", 0):
        strategy += (
            f"; gradual unfreezing, one more layer group every {args.progressive_unfreezing_steps} steps "
            "(ULMFiT, Howard & Ruder, 2018)"
        )
    return strategy


def _base_model_of(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _is_image_model(base) -> bool:
    return getattr(base, "main_input_name", "input_ids") == "pixel_values"


def _on_hub(base_model: str) -> bool:
    """Whether the recorded base model is a Hub id (not "not recorded", not a description of local files)."""
    return base_model != "not recorded" and not base_model.startswith("local files")


def _results_heading(checkpoint_step: int | None) -> str:
    if checkpoint_step is None:
        return "Measured at the end of this run:"
    return f"Measured during training, last evaluation at or before step {checkpoint_step}:"


def _results_section(results: dict, eval_datasets: dict | None, task: str, checkpoint_step, baselines) -> tuple:
    """(the Hub `EvalResult`s, the template's results values): the results table and its heading, and for a final
    card the comparison with the baselines of the same study (`baselines`: source-only and oracle results)."""
    table, eval_results = _results(results, eval_datasets, task)
    comparison = _comparison(results, *baselines) if checkpoint_step is None else []
    return eval_results, {
        "results_table": table,
        "results_heading": _results_heading(checkpoint_step),
        "comparison": comparison,
        "negative_transfer": [row for row in comparison if row["negative"]],
    }


def _results(results: dict[str, float], eval_datasets: dict | None, task: str) -> tuple[list[dict], list]:
    """The results table of the card and the same values as Hub `EvalResult`s (`model-index`)."""
    table, eval_results = [], []
    for key, value in sorted(results.items()):
        metric = next((m for m in METRICS if key.endswith(m)), None)
        if metric is None or not key.startswith("eval_"):
            continue
        split = key[len("eval_") : -len(metric)].strip("_") or "eval"
        data = describe_source((eval_datasets or {}).get(split))
        table.append({"set": split, "data": data, "metric": metric, "value": f"{value:.4f}"})
        eval_results.append(
            EvalResult(
                task_type=task,
                dataset_type=data if is_hub_id(data) else split,
                dataset_name=data if data != "not recorded" else split,
                metric_type="accuracy" if metric == "accuracy" else "f1",
                metric_name=metric,
                metric_value=float(value),
            )
        )
    return table, eval_results


def _comparison(results: dict, source_only_results: dict | None, oracle_results: dict | None) -> list[dict]:
    """The rows of the baseline comparison, when a baseline of the same study was measured."""
    if not (source_only_results or oracle_results):
        return []
    return [
        {
            "metric": report.metric,
            "source_only": _format(report.source_only),
            "adapted": _format(report.adapted),
            "oracle": _format(report.oracle),
            "gain": "not measured" if report.gain is None else f"{100 * report.gain:+.2f} points",
            "gap_closed": "not measured" if report.gap_closed is None else f"{100 * report.gap_closed:.0f} %",
            "negative": report.negative_transfer,
        }
        for report in TransferReport.from_results(results, source_only_results, oracle_results)
    ]


def _origin(base_model: str, base) -> str:
    if base_model == "not recorded":
        return (
            f"a {base.config.model_type} classifier trained from scratch (random initialisation, no pretrained weights)"
        )
    link = f"[{base_model}](https://huggingface.co/{base_model})" if _on_hub(base_model) else base_model
    return "a fine-tuned version of " + link


def _provenance(trained: bool, base_model: str, base, args, peft_config) -> dict:
    """The card's first sentence and strategy line: a trained model, or one built without a training step."""
    if trained:
        return {"origin": _origin(base_model, base), "made_with": "trained with",
                "strategy": describe_strategy(args, peft_config, base)}  # fmt: skip
    return {"origin": _untrained_origin(base_model), "made_with": "built with", "strategy": "none: no training step"}


def _untrained_origin(base_model: str) -> str:
    link = f"[{base_model}](https://huggingface.co/{base_model})" if _on_hub(base_model) else base_model
    return f"a classifier built on {link} without a training step (its encoder's weights are the pretrained ones)"


def _training_time(trainer, checkpoint_step: int | None, training_seconds: float | None) -> str:
    if checkpoint_step is not None:
        progress = f"Checkpoint at step {checkpoint_step} of {trainer.state.max_steps}"
        if training_seconds is not None:
            progress += f" ({training_seconds:.0f} s of training in the process that wrote it)"
        return progress
    runtime = next((e["train_runtime"] for e in reversed(trainer.state.log_history) if "train_runtime" in e), None)
    return f"{runtime:.0f} s of training" if runtime is not None else "Training time not recorded"


def _usage(trainer, base, base_model: str, model_name: str, output_dir: str) -> str:
    """The loading snippet: transformers, or PEFT for an adapter (and the merged copy when there is one)."""
    repo_id = getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id or model_name  # what users load
    peft = bool(getattr(trainer.model, "peft_config", None))
    merged = (Path(output_dir) / "merged" / "config.json").is_file()
    is_image = _is_image_model(base)
    auto_class = "AutoModelForImageClassification" if is_image else "AutoModelForSequenceClassification"
    own_code = bool(getattr(base.config, "auto_map", None))  # a model class saved with its code (remote code)
    if not peft and own_code:
        return (
            f"from transformers import {auto_class}\n\n# the model's code is saved with it (or `import hf_transfer` "
            f'first, which registers it)\nmodel = {auto_class}.from_pretrained("{repo_id}", trust_remote_code=True)'
        )
    if not peft:
        return f'from transformers import {auto_class}\n\nmodel = {auto_class}.from_pretrained("{repo_id}")'
    adapters = list(trainer.model.peft_config)
    if own_code:
        base_line = (f'base = SentenceClassifierForSequenceClassification.from_encoder("{base_model}", '
                     f"num_labels={base.config.num_labels}, pooling={base.config.pooling!r})")  # fmt: skip
        usage = "from peft import PeftModel\nfrom hf_transfer import SentenceClassifierForSequenceClassification\n\n"
    elif is_image or len(adapters) > 1:
        base_line = _base_line(auto_class, base_model, base, repo_id, output_dir)
        usage = f"from peft import PeftModel\nfrom transformers import {auto_class}\n\n"
    else:
        return (
            "from peft import AutoPeftModelForSequenceClassification\n\n"
            f'model = AutoPeftModelForSequenceClassification.from_pretrained("{repo_id}")'
        ) + _merged_usage(merged, auto_class, repo_id)
    usage += base_line + "\n" + _adapter_lines(repo_id, adapters)
    return usage + _merged_usage(merged, auto_class, repo_id)


def _base_line(auto_class: str, base_model: str, base, repo_id: str, output_dir: str) -> str:
    """How the card's snippet loads the frozen base of an adapter: its Hub id or path, or the untrained base saved
    beside the adapters (`base_model/`) when it was built from a config."""
    if (Path(output_dir) / "base_model" / "config.json").is_file():
        return f'base = {auto_class}.from_pretrained("{repo_id}", subfolder="base_model")  # saved with the adapters'
    return (f'base = {auto_class}.from_pretrained("{base_model}", num_labels={base.config.num_labels}, '
            "ignore_mismatched_sizes=True)")  # fmt: skip


def _adapter_lines(repo_id: str, adapters: list[str]) -> str:
    """One adapter: `PeftModel.from_pretrained`; several (an adapter per experience): each from its subfolder."""
    if len(adapters) == 1:
        return f'model = PeftModel.from_pretrained(base, "{repo_id}")'
    lines = [f'model = PeftModel.from_pretrained(base, "{repo_id}", subfolder="{adapters[0]}", '
             f'adapter_name="{adapters[0]}")']  # fmt: skip
    lines += [f'model.load_adapter("{repo_id}", subfolder="{name}", adapter_name="{name}")' for name in adapters[1:]]
    return "\n".join(lines + [f'model.set_adapter("{adapters[-1]}")  # the adapter of the input\'s experience'])


def _merged_usage(merged: bool, auto_class: str, repo_id: str) -> str:
    if not merged:
        return ""
    return (
        "\n\n# or the adapter merged into the base weights (saved with --merge_adapter), without PEFT:\n"
        f"from transformers import {auto_class}\n\n"
        f'merged = {auto_class}.from_pretrained("{repo_id}", subfolder="merged")'
    )


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(device)}"
    return (
        f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )


def _format(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4f}"


def _describe_peft_config(config, base=None) -> str:
    """The fields of a PEFT config that say what was trained, with long module lists summarised; `modules_to_save`
    once each, and only those the model has (PEFT adds `classifier` and `score` for every sequence classifier)."""
    parts = []
    for name in ("r", "lora_alpha", "alpha", "lora_dropout", "rank_dropout", "use_dora"):
        value = getattr(config, name, None)
        if value not in (None, False):
            parts.append(f"{name}={value}")
    targets = config.target_modules
    if isinstance(targets, (set, list, tuple)) and len(targets) > 8:
        leaves = sorted({str(t).rsplit(".", 1)[-1] for t in targets})
        parts.append(f"target_modules: {len(targets)} modules named {leaves}")
    elif targets:
        parts.append(f"target_modules={sorted(targets) if not isinstance(targets, str) else targets}")
    saved = list(dict.fromkeys(config.modules_to_save or []))
    if base is not None:
        names = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
        saved = [name for name in saved if name.rsplit(".", 1)[-1] in names]
    parts.append(f"modules_to_save={saved}")
    return ", ".join(parts)


def _versions() -> list[tuple[str, str]]:
    import transformers

    return [
        ("hf_transfer", _package_version()),
        ("transformers", transformers.__version__),
        ("torch", torch.__version__),
        ("huggingface_hub", huggingface_hub.__version__),
    ]


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hf-transfer-learning")
    except PackageNotFoundError:
        return "source checkout"


def _guard_section(report: dict) -> dict:
    """The card's rows for the negative-transfer guard: evidence and results of the stage-1 and adapted models."""
    reference, adapted = report["reference"], report["adapted"]
    rows = [
        ("ATC target-accuracy estimate ↑", "atc_target_accuracy", "{:.4f}"),
        ("source-validation accuracy ↑", "source_accuracy", "{:.4f}"),
        ("target prediction diversity ↑ (1: balanced classes)", "target_diversity", "{:.3f}"),
        ("DEV ↓ (evidence only)", "dev", "{:.4f}"),
    ]
    table = [{"name": n, "reference": f.format(reference[k]), "adapted": f.format(adapted[k])} for n, k, f in rows]
    stage1 = report.get("stage1_results") or {}
    adapted_results = report.get("adapted_results")
    for key in sorted(stage1):
        if key.startswith("eval_") and key.endswith(("_accuracy", "_macro_f1")):
            value = None if adapted_results is None else adapted_results.get(key)
            table.append(
                {
                    "name": key.removeprefix("eval_") + " (labels, not used by the guard)",
                    "reference": f"{stage1[key]:.4f}",
                    "adapted": "this model's results above" if adapted_results is None else f"{value:.4f}",
                }
            )
    return {
        "choice": "adapted" if report["keeps_adapted"] else "stage-1 (source-only)",
        "reasons": "; ".join(report["reasons"]),
        "agreement": f"{report['agreement']:.4f}",
        "target_rows": report["target_rows"],
        "source_rows": report["source_rows"],
        "other_folder": report["other_model_folder"],
        "rows": table,
    }


def _teacher_section(report: dict, results: dict) -> dict:
    """The card's rows for a distilled student: the teacher's results next to the student's, and the share kept."""
    rows = []
    for key, value in sorted(report["results"].items()):
        if not key.endswith(METRICS):
            continue
        mine = results.get(key)
        kept = "–" if mine is None or not value else f"{100 * mine / value:.1f} %"
        rows.append({"name": key.removeprefix("eval_"), "teacher": f"{value:.4f}",
                     "student": "not measured" if mine is None else f"{mine:.4f}", "kept": kept})  # fmt: skip
    layers = report.get("student_layers")
    return {
        "name": report["teacher"],
        "teacher_parameters": f"{report['teacher_parameters']:,}",
        "student_parameters": f"{report['student_parameters']:,}",
        "construction": f"built from the teacher, keeping its layers {layers}" if layers else "given to the trainer",
        "rows": rows,
    }


def _continual_section(report: dict) -> dict:
    """The card's accuracy matrix (a Markdown table), the metrics read from it and the heatmap's file name."""
    names = {"average_accuracy": "average accuracy", "forgetting": "forgetting", "backward_transfer":
             "backward transfer", "forward_transfer": "forward transfer"}  # fmt: skip
    metrics = [{"name": label, "value": "–" if report["metrics"].get(key) is None else
                f"{100 * report['metrics'][key]:.2f}"} for key, label in names.items()]  # fmt: skip
    return {"table": report["table"], "metrics": metrics, "plot": "accuracy_matrix.png",
            "scenario": report["scenario"], "not_learned": ", ".join(report.get("not_learned") or [])}  # fmt: skip


def _final_sections(trainer, checkpoint_step, reports: tuple, source_only_results, results) -> dict:
    """What only a final card shows (`reports`: the diagnostics, the guard, the teacher, the continual report), and
    the steps of the run's own stage 1 when its results are the source-only baseline."""
    final = checkpoint_step is None
    diagnostics, guard, teacher, continual = reports
    return {
        "continual": _continual_section(continual) if final and continual else None,
        "diagnostics": diagnostics if final else None,
        "guard": _guard_section(guard) if final and guard else None,
        "teacher": _teacher_section(teacher, results) if final and teacher else None,
        "stage1_steps": _stage1_baseline_steps(trainer, source_only_results),
    }


def _stage1_baseline_steps(trainer, source_only_results: dict | None) -> int | None:
    """The steps of the run's own stage 1 when its results are the card's source-only baseline, else None."""
    stage1 = getattr(trainer, "stage1", None)
    if not stage1 or not source_only_results or stage1["results"] != source_only_results:
        return None
    return stage1["step"] or getattr(trainer.args, "source_only_steps", None) or None
