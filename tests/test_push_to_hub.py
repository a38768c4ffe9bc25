"""`--push_to_hub`, intercepted at huggingface_hub's commit boundary: no network, the exact files of every commit.

`HfApi.create_commit` (and the hf_xet pipelined upload, which replaces it when hf_xet is installed) receive the list
of `CommitOperationAdd`s that would be uploaded: the fakes below record each file's bytes instead. `create_repo`
and the server-side README metadata check are replaced by local equivalents; background pushes run at once.
"""

import json
import os
import sys
from concurrent.futures import Future
from pathlib import Path

import huggingface_hub._upload_pipeline
import pytest
import torch
from conftest import load_recipe
from huggingface_hub import CommitInfo, HfApi, ModelCard, RepoUrl
from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification, AutoTokenizer

TOKEN = "hf_pushTestTokenNeverWritten0123456789"
TEXT = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_length", "32", "--max_train_samples", "32"]
TEXT += ["--max_eval_samples", "16", "--use_cpu", "true", "--logging_steps", "1"]
ONE_STAGE = ["--source_only_steps", "0"]  # the checkpoint tests: no stage-1 folder appearing mid-run
PUSH = ["--push_to_hub", "true", "--hub_model_id", "someone/tiny-run", "--hub_token", TOKEN]

MODEL_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "training_args.bin"}
RUN_FILES = {"README.md", "all_results.json", "hf_transfer_run.json", "trainer_state.json"}
CHECKPOINT_FILES = MODEL_FILES | {"README.md", "trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"}
CHECKPOINT_FILES |= {"domain_discriminator.safetensors", "self_training_teacher.safetensors"}  # the default losses
CHECKPOINT_FILES |= {"hf_transfer_checkpoint.json"}  # what a run resuming from it must share


class FakeHub:
    """Records what each commit would upload; stands in for the Hub's side of the calls the Trainer makes."""

    def __init__(self):
        self.repos, self.commits = [], []

    def commit(self, repo_id, operations, commit_message, token):
        files = {}
        for operation in operations:
            source = operation.path_or_fileobj
            files[operation.path_in_repo] = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
        self.commits.append({"repo_id": repo_id, "message": commit_message, "files": files, "token": token})
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/{'0' * 40}",
            commit_message=commit_message,
            commit_description="",
            oid="0" * 40,
        )


@pytest.fixture
def hub(monkeypatch):
    fake = FakeHub()

    def create_repo(self, repo_id, token=None, private=None, **kwargs):
        fake.repos.append({"repo_id": repo_id, "private": private, "token": token})
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, commit_message, token=None, **kwargs):
        return fake.commit(repo_id, operations, commit_message, token)

    def pipelined_upload(api, *, repo_id, add_operations, delete_operations, commit_message, token=None, **kwargs):
        assert not delete_operations
        return fake.commit(repo_id, add_operations, commit_message, token)

    def validate_yaml(self, content, **kwargs):  # the Hub checks README metadata server-side; check it here
        assert ModelCard(content).data.to_dict()

    def run_now(self, fn, *args, **kwargs):  # checkpoint pushes run in the background; run them at once
        future = Future()
        future.set_result(fn(*args, **kwargs))
        return future

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(HfApi, "_validate_yaml", validate_yaml)
    monkeypatch.setattr(HfApi, "run_as_future", run_now)
    monkeypatch.setattr(huggingface_hub._upload_pipeline, "pipelined_upload", pipelined_upload)
    return fake


def assert_nothing_local_or_secret(commits, *local_dirs):
    for commit in commits:
        assert commit["token"] == TOKEN  # the token authenticates the upload ...
        for name, data in commit["files"].items():
            assert TOKEN.encode() not in data, f"{name} holds the Hub token"  # ... and is never uploaded
            for local in map(str, local_dirs):
                assert local.encode() not in data, f"{name} holds the local path {local}"


def download(commit, folder: Path) -> Path:
    """The repository as `from_pretrained` would see it after the commit."""
    for name, data in commit["files"].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def test_push_at_the_end_uploads_model_tokenizer_card_and_results(hub, tmp_path, tiny_model_dir, tokenizer):
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *TEXT, *PUSH]
    load_recipe("text_cls_dann").main(argv + ["--hub_private_repo", "true"])

    assert hub.repos == [{"repo_id": "someone/tiny-run", "private": True, "token": TOKEN}]
    [commit] = hub.commits  # hub_strategy "every_save" (default) with save_strategy "no": one push, at the end
    assert commit["message"] == "End of training" and commit["repo_id"] == "someone/tiny-run"
    # the recipe's two stages: the kept model at the top, the other in its subfolder, the guard's report
    stage1 = {f"stage1/{name}" for name in ("config.json", "model.safetensors", "tokenizer.json",
                                            "tokenizer_config.json", "stage1_results.json")}  # fmt: skip
    guard = json.loads(commit["files"]["negative_transfer_guard.json"].decode())
    adapted = set() if guard["keeps_adapted"] else {f"adapted/{name}" for name in MODEL_FILES}
    assert set(commit["files"]) == MODEL_FILES | RUN_FILES | stage1 | adapted | {"negative_transfer_guard.json"}
    assert_nothing_local_or_secret(hub.commits, tmp_path, os.getcwd(), Path.home(), sys.prefix)

    card = ModelCard(commit["files"]["README.md"].decode())
    assert {"hf_transfer", "domain-adaptation", "dann"} <= set(card.data.tags)
    assert card.data.eval_results and card.data.model_name == "tiny-run"
    assert 'AutoModelForSequenceClassification.from_pretrained("someone/tiny-run")' in card.text
    assert "Measured at the end of this run" in card.text

    pushed = download(commit, tmp_path / "pushed")
    texts = ["great book", "awful pan broken"]
    batch = AutoTokenizer.from_pretrained(pushed)(texts, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], tokenizer(texts, padding=True, return_tensors="pt")["input_ids"])
    with torch.no_grad():
        local = AutoModelForSequenceClassification.from_pretrained(out).eval()(**batch).logits
        reloaded = AutoModelForSequenceClassification.from_pretrained(pushed).eval()(**batch).logits
    assert torch.equal(reloaded, local)


@pytest.mark.parametrize(
    "strategy, checkpoint_folder",
    [("every_save", None), ("checkpoint", "last-checkpoint"), ("all_checkpoints", "checkpoint-{step}")],
)
def test_checkpoints_are_pushed_per_hub_strategy(hub, tmp_path, tiny_model_dir, strategy, checkpoint_folder):
    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *TEXT, *ONE_STAGE, *PUSH]
    load_recipe("text_cls_dann").main(
        argv + ["--save_strategy", "steps", "--save_steps", "1"] + ["--hub_strategy", strategy]
    )

    expected = []
    for step in (1, 2):
        expected.append((f"Training in progress, step {step}", MODEL_FILES | {"README.md"}))
        if checkpoint_folder:
            folder = checkpoint_folder.format(step=step)
            expected.append(
                (f"Training in progress, step {step}, checkpoint", {f"{folder}/{f}" for f in CHECKPOINT_FILES})
            )
    expected.append(("End of training", MODEL_FILES | RUN_FILES))
    assert [(c["message"], set(c["files"])) for c in hub.commits] == expected
    assert_nothing_local_or_secret(hub.commits, tmp_path, os.getcwd(), Path.home(), sys.prefix)
    # the repository's card says which step its weights are from, until the final card replaces it
    for step, commit in zip((1, 2), [c for c in hub.commits if c["message"].endswith(("step 1", "step 2"))]):
        assert f"Checkpoint at step {step} of 2" in commit["files"]["README.md"].decode()
    assert "Checkpoint at step" not in hub.commits[-1]["files"]["README.md"].decode()


def test_push_of_a_lora_adapter_uploads_adapter_head_and_merged_copy(hub, tmp_path, tiny_model_dir, tokenizer):
    from peft import PeftModel

    out = tmp_path / "run"
    argv = ["--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out), *TEXT, *PUSH]
    argv += ["--transfer_strategy", "lora", "--lora_r", "4", "--merge_adapter", "true"]
    load_recipe("text_cls_finetune").main(argv)

    [commit] = hub.commits
    adapter_files = {"adapter_config.json", "adapter_model.safetensors"}
    processor_files = {"tokenizer.json", "tokenizer_config.json"}
    merged_files = {f"merged/{f}" for f in {"config.json", "model.safetensors"} | processor_files}
    assert set(commit["files"]) == adapter_files | processor_files | RUN_FILES | merged_files | {"training_args.bin"}
    assert_nothing_local_or_secret(hub.commits, tmp_path, os.getcwd(), Path.home(), sys.prefix)
    card = ModelCard(commit["files"]["README.md"].decode())
    assert card.data.library_name == "peft"
    assert 'AutoPeftModelForSequenceClassification.from_pretrained("someone/tiny-run")' in card.text
    assert 'from_pretrained("someone/tiny-run", subfolder="merged")' in card.text

    pushed = download(commit, tmp_path / "pushed")
    batch = tokenizer(["great book", "awful pan broken"], padding=True, return_tensors="pt")

    def adapter_model(folder):
        base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2)
        return PeftModel.from_pretrained(base, folder).eval()

    with torch.no_grad():
        local = adapter_model(out)(**batch).logits
        assert torch.equal(adapter_model(pushed)(**batch).logits, local)
        merged = AutoModelForSequenceClassification.from_pretrained(pushed / "merged").eval()
        torch.testing.assert_close(merged(**batch).logits, local, atol=1e-5, rtol=1e-4)


def test_push_of_an_image_model_uploads_its_image_processor(hub, tmp_path):
    out = tmp_path / "run"
    argv = ["--model_type", "resnet", "--image_size", "16", "--output_dir", str(out), *PUSH, "--use_cpu", "true"]
    argv += ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_train_samples", "32"]
    argv += ["--max_eval_samples", "16", "--max_target_samples", "32"]
    load_recipe("image_cls_dann").main(argv)

    [commit] = hub.commits
    image_files = {"config.json", "model.safetensors", "preprocessor_config.json", "training_args.bin"}
    assert set(commit["files"]) == image_files | RUN_FILES
    assert_nothing_local_or_secret(hub.commits, tmp_path, os.getcwd(), Path.home(), sys.prefix)
    pushed = download(commit, tmp_path / "pushed")
    pixels = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        local = AutoModelForImageClassification.from_pretrained(out).eval()(pixel_values=pixels).logits
        reloaded = AutoModelForImageClassification.from_pretrained(pushed).eval()(pixel_values=pixels).logits
    assert torch.equal(reloaded, local)
