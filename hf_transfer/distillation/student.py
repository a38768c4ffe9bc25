"""Students built from their teachers: the same architecture with fewer layers, initialised from the teacher.

DistilBERT (Sanh et al. 2019) initialised its 6-layer student from every other layer of BERT-base; keeping layers
spread evenly over the teacher's depth is what `build_student` does for any transformer encoder (BERT family, ViT,
...: a config with `num_hidden_layers`) and, per stage, for ResNet-style models (a config with `depths`).
"""

import copy
import math
import re

from torch import nn

from ..strategies import find_blocks

STUDENT_RECORD = "hf_transfer_student"  # the config entry that says how a student was built


def evenly_spaced(count: int, total: int) -> list[int]:
    """`count` of the indices 0..total-1, spread evenly, first and last included (halves rounded up): 6 of 12 →
    [0, 2, 4, 7, 9, 11] (DistilBERT's layers), 3 of 6 → [0, 3, 5], 1 → [0]."""
    if count == 1:
        return [0]
    return [math.floor(i * (total - 1) / (count - 1) + 0.5) for i in range(count)]


def build_student(teacher, num_layers: int | list[int] | None = None, layers: list | None = None):
    """A smaller model of the teacher's class, its weights copied from the teacher's.

    Args:
        teacher: a loaded `transformers` model (not PEFT-wrapped), e.g. `BertForSequenceClassification`.
        num_layers: transformer encoders: how many layers the student keeps, spread evenly (`evenly_spaced`).
            ResNet-style models: how many blocks per stage (an int for every stage, or one per stage); the first
            block of each stage, which changes the width and resolution, is always kept.
        layers: instead of `num_layers`, which teacher layers (0-based, increasing) to keep; ResNet-style: one list
            per stage.
    Returns:
        The student, a model of `type(teacher)` built from the teacher's config with fewer layers; every weight
        (embeddings, kept layers, pooler, head) equals the teacher's. Its config records the kept layers under
        `hf_transfer_student` (saved in `config.json`, read by the model card).
    """
    if (num_layers is None) == (layers is None):
        raise ValueError("Give exactly one of `num_layers` (how many layers to keep) and `layers` (which ones).")
    if hasattr(teacher, "peft_config"):
        raise ValueError("`teacher` is PEFT-wrapped: build the student from `teacher.merge_and_unload()`.")
    config = teacher.config
    if getattr(config, "depths", None) and not hasattr(config, "num_hidden_layers"):
        student_config, renames, kept = _staged_student(teacher, num_layers, layers)
    elif getattr(config, "num_hidden_layers", None):
        student_config, renames, kept = _layered_student(teacher, num_layers, layers)
    else:
        raise ValueError(
            f"{type(teacher).__name__}'s config has neither `num_hidden_layers` (transformer encoders) nor "
            "`depths` (ResNet-style stages): build the smaller student yourself and pass it to the trainer."
        )
    setattr(student_config, STUDENT_RECORD, {"teacher": getattr(config, "_name_or_path", "") or None, "layers": kept})
    student = type(teacher)(student_config)
    state = teacher.state_dict()
    student.load_state_dict({_rename(name, renames): value for name, value in state.items()
                             if _rename(name, renames) is not None}, strict=True)  # fmt: skip
    return student.to(next(teacher.parameters()).dtype)


def _layered_student(teacher, num_layers, layers):
    """Transformer encoders: the config with fewer `num_hidden_layers`, the renames of the kept layers."""
    total = teacher.config.num_hidden_layers
    prefix, blocks = find_blocks(teacher)
    if len(blocks) != total:
        raise ValueError(
            f"{type(teacher).__name__} has {total} hidden layers in its config but its longest list of blocks "
            f"({prefix}) has {len(blocks)}: build the smaller student yourself and pass it to the trainer."
        )
    keep = (
        _check_kept(layers, total, "layers") if layers is not None else evenly_spaced(_count(num_layers, total), total)
    )
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    for name in ("layer_types",):  # per-layer settings of some architectures
        if isinstance(getattr(config, name, None), list) and len(getattr(config, name)) == total:
            setattr(config, name, [getattr(config, name)[i] for i in keep])
    return config, {prefix: keep}, keep


def _staged_student(teacher, num_layers, layers):
    """ResNet-style models: the config with fewer `depths`, the renames of the kept blocks of each stage."""
    depths = list(teacher.config.depths)
    stages = _find_stages(teacher, depths)
    if layers is not None:
        if len(layers) != len(depths):
            raise ValueError(f"`layers` must give one list of blocks per stage ({len(depths)} stages), got {layers}.")
        keep = [_check_kept(list(kept), depth, f"layers[{s}]") for s, (kept, depth) in enumerate(zip(layers, depths))]
    else:
        counts = [num_layers] * len(depths) if isinstance(num_layers, int) else list(num_layers)
        if len(counts) != len(depths):
            raise ValueError(f"`num_layers` must be an int or one count per stage ({len(depths)}), got {num_layers}.")
        keep = [evenly_spaced(min(_count(n), d), d) for n, d in zip(counts, depths)]
    for s, kept in enumerate(keep):
        if kept[0] != 0:
            raise ValueError(f"`layers[{s}]` must keep block 0 of its stage (it changes the width), got {kept}.")
    config = copy.deepcopy(teacher.config)
    config.depths = [len(kept) for kept in keep]
    return config, {f"{stages}.{s}.layers": kept for s, kept in enumerate(keep)}, keep


def _find_stages(model: nn.Module, depths: list[int]) -> str:
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == len(depths):
            blocks = [getattr(stage, "layers", None) for stage in module]
            if all(b is not None and len(b) == d for b, d in zip(blocks, depths)):
                return name
    raise ValueError(
        f"{type(model).__name__} has `depths` {depths} in its config but no list of stages with a `layers` list of "
        "those lengths: build the smaller student yourself and pass it to the trainer."
    )


def _count(num_layers, total: int | None = None) -> int:
    """`num_layers`, checked: an integer >= 1, and at most the teacher's `total` layers when given."""
    if (
        isinstance(num_layers, bool)
        or not isinstance(num_layers, int)
        or num_layers < 1
        or num_layers > (total or num_layers)
    ):
        upto = f" to {total} (the teacher's layers)" if total else " or more"
        raise ValueError(f"`num_layers` must be an integer from 1{upto}, got {num_layers}.")
    return num_layers


def _check_kept(kept, total: int, argument: str) -> list[int]:
    if not kept or sorted(set(kept)) != list(kept) or kept[0] < 0 or kept[-1] >= total:
        raise ValueError(f"`{argument}` must list increasing layer indices from 0 to {total - 1}, got {kept}.")
    return list(kept)


def _rename(name: str, renames: dict[str, list[int]]) -> str | None:
    """The student's name of a teacher weight; `None` for a weight of a layer the student does not keep."""
    for prefix, kept in renames.items():
        match = re.match(re.escape(prefix) + r"\.(\d+)\.(.*)", name)
        if match:
            index = int(match.group(1))
            return f"{prefix}.{kept.index(index)}.{match.group(2)}" if index in kept else None
    return name
