"""Model cards written by every hf_transfer training run, from the run itself.

The template, `hf_transfer/templates/model_card.md`, ships inside the package and is rendered with
`huggingface_hub.ModelCard`.
"""

import os
import platform
import re
from pathlib import Path

import huggingface_hub
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .transfer_report import TransferReport

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "model_card.md"

METHODS = {
    "dann": (
        "DANN",
        "domain-adversarial training: a domain discriminator behind a gradient reversal layer",
        "Ganin et al., *Domain-Adversarial Training of Neural Networks*, JMLR 2016",
    ),
    "mmd": (
        "MMD (DAN)",
        "multi-kernel maximum mean discrepancy between source and target features",
        "Long et al., *Learning Transferable Features with Deep Adaptation Networks*, ICML 2015",
    ),
    "im": (
        "IM",
        "information maximisation: confident and diverse predictions on the unlabeled target rows",
        "Shi & Sha, *Information-Theoretical Learning of Discriminative Clusters for Unsupervised Domain "
        "Adaptation*, ICML 2012; Liang et al., *Do We Really Need to Access the Source Data?* (SHOT), ICML 2020",
    ),
    "mcc": (
        "MCC",
        "minimum class confusion: less confusion between classes in the predictions on the unlabeled target rows",
        "Jin et al., *Minimum Class Confusion for Versatile Domain Adaptation*, ECCV 2020",
    ),
    "coral": (
        "CORAL",
        "matching the covariances of source and target features",
        "Sun & Saenko, *Deep CORAL: Correlation Alignment for Deep Domain Adaptation*, ECCV Workshops 2016",
    ),
}


def describe_source(name: str | None) -> str:
    """A Hub id as is; a local path as 'local files (<name>)', never an absolute path."""
    if not name:
        return "not recorded"
    if os.path.isabs(name) or os.path.exists(name):
        return f"local files ({Path(os.path.normpath(name)).name})"
    return name


def is_hub_id(name: str) -> bool:
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and not os.path.exists(name)


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(device)}"
    return (
        f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )


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
) -> str:
    """Render the card of a finished run into `output_dir/README.md` (default: `trainer.args.output_dir`).

    Args:
        base_model, source_dataset, target_dataset: Hub ids or descriptions; local paths are reduced to their
            file name. `source_dataset` is the labeled training data, `target_dataset` the unlabeled target data.
        results: `eval_<set>_<metric>` values; default: the evaluations in the trainer's log history.
        eval_datasets: a description (or Hub id) of each evaluation set, by set name (`{"target_test": ...}`).
        checkpoint_step, training_seconds: set for the card of an intermediate checkpoint: its step and the
            training time so far; results are the evaluations so far.
        source_only_results, oracle_results: `eval_<set>_<metric>` of the baselines measured in the same study
            (same evaluation sets): a source-only run (same model, data, steps and seed, no alignment loss) and an
            oracle trained on target labels. The card then compares, reports the gap closed and flags negative
            transfer (see `hf_transfer.TransferReport`).
        diagnostics: `TransferDiagnostics.after`'s results (proxy A-distance before/after, the plot's file name,
            next to the card); shown in a final card.
        language, license, tags, datasets, pipeline_tag: Hub metadata added to what the run states (tags and
            datasets are added to the card's own).
    """
    args = trainer.args
    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base_model = describe_source(base_model or getattr(base.config, "_name_or_path", None))
    model_name = model_name or Path(args.output_dir).name
    base_model_on_hub = base_model != "not recorded" and not base_model.startswith("local files")
    losses = list(getattr(args, "adaptation_loss", []))
    is_image = getattr(base, "main_input_name", "input_ids") == "pixel_values"
    task = "image-classification" if is_image else "text-classification"

    if results is None:
        results = {}
        for entry in trainer.state.log_history:
            results.update({k: v for k, v in entry.items() if k.startswith("eval_")})
    results_table = []
    eval_results = []
    for key, value in sorted(results.items()):
        metric = next((m for m in ("accuracy", "macro_f1") if key.endswith(m)), None)
        if metric is None or not key.startswith("eval_"):
            continue
        split = key[len("eval_") : -len(metric)].strip("_") or "eval"
        data = describe_source((eval_datasets or {}).get(split))
        results_table.append({"set": split, "data": data, "metric": metric, "value": f"{value:.4f}"})
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

    peft_config = getattr(model, "peft_config", None)
    repo_id = getattr(trainer, "hub_model_id", None) or args.hub_model_id or model_name  # what users load
    auto_class = "AutoModelForImageClassification" if is_image else "AutoModelForSequenceClassification"
    if peft_config:
        config = next(iter(peft_config.values()))
        strategy = (
            f"{config.peft_type.value} adapter ({_describe_peft_config(config)}); the classification head trained"
        )
        if is_image:
            usage = (
                f"from peft import PeftModel\nfrom transformers import {auto_class}\n\n"
                f'base = {auto_class}.from_pretrained("{base_model}", num_labels={base.config.num_labels}, '
                "ignore_mismatched_sizes=True)\n"
                f'model = PeftModel.from_pretrained(base, "{repo_id}")'
            )
        else:
            usage = (
                "from peft import AutoPeftModelForSequenceClassification\n\n"
                f'model = AutoPeftModelForSequenceClassification.from_pretrained("{repo_id}")'
            )
        if (Path(output_dir or args.output_dir) / "merged" / "config.json").is_file():
            usage += (
                "\n\n# or the adapter merged into the base weights (saved with --merge_adapter), without PEFT:\n"
                f"from transformers import {auto_class}\n\n"
                f'merged = {auto_class}.from_pretrained("{repo_id}", subfolder="merged")'
            )
    else:
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
        usage = f'from transformers import {auto_class}\n\nmodel = {auto_class}.from_pretrained("{repo_id}")'

    adapting = hasattr(args, "adaptation_loss")  # a DomainAdaptationConfig (source-only included)
    hyperparameters = []
    if adapting:
        hyperparameters += [
            ("adaptation_loss", losses or "none (source-only)"),
            ("adaptation_loss_weights", args.adaptation_loss_weights),
        ]
    hyperparameters += [
        ("max_steps", trainer.state.max_steps),
        ("per_device_train_batch_size", args.per_device_train_batch_size),
        ("gradient_accumulation_steps", args.gradient_accumulation_steps),
        ("world_size (processes)", args.world_size),
        ("learning_rate", args.learning_rate),
        (
            "lr_scheduler_type",
            args.lr_scheduler_type.value if hasattr(args.lr_scheduler_type, "value") else args.lr_scheduler_type,
        ),
        ("warmup_steps", f"{args.warmup_steps} × max_steps" if 0 < args.warmup_steps < 1 else args.warmup_steps),
        ("weight_decay", args.weight_decay),
        ("seed", args.seed),
    ]
    if adapting and losses:
        hyperparameters.insert(4, ("target_batch_fraction", args.target_batch_fraction))
    if "dann" in losses:
        hyperparameters += [
            ("dann_schedule", f"{args.dann_schedule} (gamma={args.dann_gamma}, max={args.dann_max_coefficient})"),
            (
                "discriminator",
                f"{args.discriminator_num_layers} × {args.discriminator_hidden_size}, "
                f"dropout {args.discriminator_dropout}",
            ),
        ]
    if "mmd" in losses:
        hyperparameters.append(("mmd", f"{args.mmd_estimator}, kernel multipliers {args.mmd_kernel_multipliers}"))
    if losses:
        hyperparameters.append(("alignment_features", args.alignment_features))

    runtime = next((e["train_runtime"] for e in reversed(trainer.state.log_history) if "train_runtime" in e), None)
    if checkpoint_step is not None:
        progress = f"Checkpoint at step {checkpoint_step} of {trainer.state.max_steps}"
        if training_seconds is not None:
            progress += f" ({training_seconds:.0f} s of training in the process that wrote it)"
        training_time = progress
    else:
        training_time = f"{runtime:.0f} s of training" if runtime is not None else "Training time not recorded"
    results_heading = (
        f"Measured during training, last evaluation at or before step {checkpoint_step}:"
        if checkpoint_step is not None
        else "Measured at the end of this run:"
    )

    comparison = []
    if checkpoint_step is None and (source_only_results or oracle_results):
        for report in TransferReport.from_results(results, source_only_results, oracle_results):
            comparison.append(
                {
                    "metric": report.metric,
                    "source_only": _format(report.source_only),
                    "adapted": _format(report.adapted),
                    "oracle": _format(report.oracle),
                    "gain": "not measured" if report.gain is None else f"{100 * report.gain:+.2f} points",
                    "gap_closed": "not measured" if report.gap_closed is None else f"{100 * report.gap_closed:.0f} %",
                    "negative": report.negative_transfer,
                }
            )

    card_data = ModelCardData(
        language=language,
        license=license,
        library_name="peft" if peft_config else "transformers",
        base_model=base_model if base_model_on_hub else None,
        tags=sorted(
            set(["hf_transfer", "domain-adaptation" if adapting else "transfer-learning"] + losses + as_list(tags))
        ),
        datasets=sorted(set([d for d in (source_dataset, target_dataset) if d and is_hub_id(d)] + as_list(datasets)))
        or None,
        pipeline_tag=pipeline_tag or task,
        model_name=model_name,
        eval_results=eval_results or None,
    )
    methods = [dict(zip(("name", "description", "citation"), METHODS[name])) for name in losses]
    if losses:
        purpose = "adapt to the target domain" if {"im", "mcc"} & set(losses) else "align source and target features"
        method_sentence = "using " + " + ".join(METHODS[n][0] for n in losses) + f" to {purpose}."
    elif adapting:
        method_sentence = "as a source-only baseline (no alignment loss)."
    else:
        method_sentence = "by supervised fine-tuning on the labeled data below."
    pretrained = base_model != "not recorded"
    if pretrained:
        origin = "a fine-tuned version of " + (
            f"[{base_model}](https://huggingface.co/{base_model})" if base_model_on_hub else base_model
        )
    else:
        origin = (
            f"a {base.config.model_type} classifier trained from scratch (random initialisation, no pretrained weights)"
        )
    import transformers

    versions = [
        ("hf_transfer", _package_version()),
        ("transformers", transformers.__version__),
        ("torch", torch.__version__),
        ("huggingface_hub", huggingface_hub.__version__),
    ]
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_name=model_name,
        origin=origin,
        task_description=task.replace("-", " "),
        method_sentence=method_sentence,
        source_dataset=describe_source(source_dataset),
        target_dataset=describe_source(target_dataset) if target_dataset else None,
        source_label="Source domain (labeled)" if adapting else "Training data (labeled)",
        strategy=strategy,
        results_table=results_table,
        methods=methods,
        hyperparameters=hyperparameters,
        comparison=comparison,
        diagnostics=diagnostics if checkpoint_step is None else None,
        negative_transfer=[row for row in comparison if row["negative"]],
        training_time=training_time,
        results_heading=results_heading,
        hardware=_hardware(args.device),
        usage=usage,
        adapting=adapting,
        versions=versions,
    )
    path = Path(output_dir or args.output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return str(path)


def _format(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4f}"


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _describe_peft_config(config) -> str:
    """The fields of a PEFT config that say what was trained, with long module lists summarised."""
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
    parts.append(f"modules_to_save={config.modules_to_save}")
    return ", ".join(parts)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hf-transfer-learning")
    except PackageNotFoundError:
        return "source checkout"
