"""Which checkpoint a run resumes from: `resume_from_checkpoint` may be a folder or `"last"`, and a checkpoint cut
off while being saved (a killed job) is never resumed from."""

import json
import os

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

logger = logging.get_logger(__name__)
TRAINER_STATE_FILE = "trainer_state.json"  # the Trainer writes it last into a checkpoint


def checkpoints(folder: str) -> list[str]:
    """The `checkpoint-<step>` folders in `folder`, newest (highest step) first."""
    if not os.path.isdir(folder):
        return []
    steps = []
    for name in os.listdir(folder):
        prefix, _, step = name.rpartition("-")
        if prefix == PREFIX_CHECKPOINT_DIR and step.isdigit() and os.path.isdir(os.path.join(folder, name)):
            steps.append(int(step))
    return [os.path.join(folder, f"{PREFIX_CHECKPOINT_DIR}-{step}") for step in sorted(steps, reverse=True)]


def is_complete_checkpoint(folder: str) -> bool:
    try:
        with open(os.path.join(folder, TRAINER_STATE_FILE)) as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(output_dir: str) -> str:
    """The newest checkpoint in `output_dir` that was completely written; incomplete newer ones are skipped."""
    for folder in checkpoints(output_dir):
        if is_complete_checkpoint(folder):
            return folder
        logger.warning(
            f"Skipping {folder}: it has no readable {TRAINER_STATE_FILE}, so it was cut off while being saved."
        )
    raise ValueError(
        f"`resume_from_checkpoint`='last', but `output_dir` ({output_dir}) holds no complete checkpoint. Start "
        "without `resume_from_checkpoint`, or give the checkpoint folder to resume from."
    )


def resolve_resume_checkpoint(resume_from_checkpoint, output_dir: str):
    """What `Trainer.train` resumes from: `"last"` (or `True`, `"true"`) is the newest *complete* checkpoint in
    `output_dir`; a named folder must exist and be complete (else the complete ones are listed); anything else
    (`None`, `False`) is passed on as given."""
    if resume_from_checkpoint is True or (
        isinstance(resume_from_checkpoint, str) and resume_from_checkpoint.lower() in ("last", "true")
    ):
        return last_complete_checkpoint(output_dir)
    if not isinstance(resume_from_checkpoint, str | os.PathLike):
        return resume_from_checkpoint
    folder = os.fspath(resume_from_checkpoint)
    if not os.path.isdir(folder):
        raise ValueError(
            f"`resume_from_checkpoint`={folder!r} is not a folder. Give a checkpoint folder "
            f"(<output_dir>/{PREFIX_CHECKPOINT_DIR}-<step>) or 'last' for the newest one in `output_dir`."
        )
    if not is_complete_checkpoint(folder):
        complete = [c for c in checkpoints(os.path.dirname(os.path.abspath(folder))) if is_complete_checkpoint(c)]
        raise ValueError(
            f"`resume_from_checkpoint`={folder!r} has no readable {TRAINER_STATE_FILE}: it was cut off while being "
            f"saved (the job was killed?). Resume from a complete checkpoint: {complete or 'none in that folder'}, "
            "or 'last'."
        )
    return folder


FACTS_FILE = "hf_transfer_checkpoint.json"  # what a checkpoint must share with the run resuming from it


def write_checkpoint_facts(folder: str, facts: dict) -> None:
    with open(os.path.join(folder, FACTS_FILE), "w", encoding="utf-8") as handle:
        json.dump(facts, handle, indent=2)


def check_checkpoint_facts(folder: str, facts: dict) -> None:
    """Refuse, before anything is loaded, a checkpoint written by another kind of run (trainer family, model class,
    number of classes, strategy, adapters), saying what differs; a checkpoint without the file (written by another
    library) is compared by its `config.json` model class and classes."""
    path = os.path.join(folder, FACTS_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            theirs = json.load(handle)
    else:
        theirs = _facts_from_config(folder)
    differ = [f"{key}: {theirs[key]!r} there, {value!r} here" for key, value in facts.items()
              if key in theirs and theirs[key] != value]  # fmt: skip
    if differ:
        raise ValueError(
            f"`resume_from_checkpoint`={folder!r} was written by another kind of run ({'; '.join(differ)}). Resume "
            "from a checkpoint of this run (same trainer, model and strategy), or start without "
            "`resume_from_checkpoint`."
        )


def _facts_from_config(folder: str) -> dict:
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    facts = {"num_labels": len(config["id2label"])} if isinstance(config.get("id2label"), dict) else {}
    if config.get("architectures"):
        facts["model_class"] = config["architectures"][0]
    return facts
