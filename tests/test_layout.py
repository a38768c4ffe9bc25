"""The layout users and contributors rely on: the public names, one place per loss, short functions, a README of a
page whose links into docs/ resolve."""

import ast
import dataclasses
import re
from pathlib import Path

import pytest
from conftest import tiny_bert

import hf_transfer
from hf_transfer import ADAPTATION_LOSSES, BaseConfig, DomainAdaptationConfig, DomainAdaptationTrainer

ROOT = Path(__file__).resolve().parents[1]

# `hf_transfer.__all__` before the package was reshaped into one folder per family (commit 459db52)
PUBLIC_NAMES_BEFORE = {
    "NonFiniteLossError", "AMAZON_DOMAINS", "VALIDATORS", "DomainAdaptationConfig", "DomainAdaptationMixin",
    "DomainAdaptationTrainer", "DomainDiscriminator", "DomainMixingBatchSampler", "LabelFreeModelSelection",
    "ProgressiveUnfreezingCallback", "TransferConfig", "TransferLearningMixin", "TransferReport", "TransferTrainer",
    "compute_classification_metrics", "coral_loss", "dann_coefficient", "embed_and_predict", "domain_adversarial_loss",
    "extract_features", "gradient_reversal", "information_maximization_loss", "minimum_class_confusion_loss",
    "label_free_validators", "layer_groups", "linear_probe", "load_amazon_reviews", "load_digits",
    "load_domain_dataset", "load_metric", "mmd_loss",
}  # fmt: skip
# fields of DomainAdaptationConfig that belong to no single loss
GENERAL_ADAPTATION_FIELDS = {
    "adaptation_loss",
    "adaptation_loss_weights",
    "target_batch_fraction",
    "alignment_features",
    "source_only_steps",
}


def test_every_public_name_of_before_is_still_importable_from_the_top():
    assert PUBLIC_NAMES_BEFORE <= set(hf_transfer.__all__)
    assert all(hasattr(hf_transfer, name) for name in hf_transfer.__all__)
    assert hf_transfer.TransferTrainer is hf_transfer.FineTuningTrainer
    assert hf_transfer.TransferConfig is hf_transfer.FineTuningConfig
    assert hf_transfer.TransferLearningMixin is hf_transfer.FineTuningMixin


def test_every_loss_field_belongs_to_one_loss_entry_and_every_entry_field_exists():
    own = {f.name for f in dataclasses.fields(DomainAdaptationConfig)} - {
        f.name for f in dataclasses.fields(BaseConfig)
    }
    claimed = [name for spec in ADAPTATION_LOSSES.values() for name in spec.config_fields]
    assert len(claimed) == len(set(claimed))  # each field is one loss's
    assert set(claimed) <= own
    assert own - set(claimed) == GENERAL_ADAPTATION_FIELDS  # no field that no entry (and so no card) knows of


def test_the_card_lists_every_loss_with_its_paper_and_its_fields(tmp_path, text_domains, tokenizer):
    source, target, _ = text_domains
    losses = list(ADAPTATION_LOSSES)
    args = DomainAdaptationConfig(output_dir=str(tmp_path), adaptation_loss=losses, use_cpu=True, report_to="none")
    description = DomainAdaptationTrainer(
        model=tiny_bert(), args=args, train_dataset=source, target_dataset=target, processing_class=tokenizer
    ).describe_training()
    assert [method.name for method in description.methods] == [ADAPTATION_LOSSES[n].method.name for n in losses]
    assert all(method.citation for method in description.methods)
    rows = dict(description.hyperparameters)
    assert rows["mcc_temperature"] == 2.5 and rows["mmd_estimator"] == "unbiased" and rows["dann_gamma"] == 10.0
    assert {name for spec in ADAPTATION_LOSSES.values() for name in spec.config_fields} <= set(rows)
    assert set(losses) <= set(description.tags)


def test_the_config_help_and_the_methods_page_name_every_loss():
    help_text = DomainAdaptationConfig.__dataclass_fields__["adaptation_loss"].metadata["help"]
    methods_page = (ROOT / "docs" / "methods.md").read_text()
    for name in ADAPTATION_LOSSES:
        assert f"'{name}'" in help_text and f"| `{name}` |" in methods_page, name


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("folder", ["hf_transfer", "recipes"])
def test_no_function_is_longer_than_80_lines(folder):
    long = [
        f"{path.relative_to(ROOT)}:{name} ({lines} lines)"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name, lines in _functions(path)
        if lines > 80
    ]
    assert not long


def test_the_readme_is_a_page_and_every_docs_link_resolves():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    linked = set()
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+\.(?:md|png))(?:#[^)]*)?\)", page.read_text()):
            resolved = (page.parent / target).resolve()
            assert resolved.is_file(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
            linked.add(resolved)
    assert {p.resolve() for p in (ROOT / "docs").glob("*.md")} <= linked  # every page is reachable
