"""`babyvlm convert` with Hub repo ids, offline, on huggingface_hub's real cache look-ups; `--push-to-hub`.

The tiny original-layout checkpoints of `test_convert.py` are laid out in a temporary Hub cache exactly as
`snapshot_download` leaves them (`models--owner--name/{refs/<ref>, blobs/<sha256>, snapshots/<commit>/<file> -> blob}`)
and `HF_HUB_OFFLINE` is set, so every repo id, revision and file goes through `hf_hub_download`/`snapshot_download`.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from hub_fakes import RecordingHub, cache_repo, commit_hash
from huggingface_hub import ModelCard, constants
from safetensors.torch import load_file
from test_convert import (
    VISION_HEADS,
    dino_teacher,
    llava_config,
    llava_weights,
    original_tokenizer,
    timm_vit,
    torchvision_tower,
    write_llava_folder,
)

from babyvlm import hub
from babyvlm.convert import main

PHASE2, VISION, PHASE3 = "wsashawn/babyllava_v2_phase2", "wsashawn/babyllava_v2_vision_backbone", "someone/phase3"
SOURCE_CARD = "---\nlicense: apache-2.0\n---\n# the authors' card\n"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The same tiny release as local folders and as cached Hub repos (stage 2 + vision backbone, stage 3)."""
    root = tmp_path_factory.mktemp("release")
    vision = root / "vision"
    vision.mkdir()
    torch.save(dino_teacher(timm_vit(layerscale=True, seed=0)), vision / "vision_backbone.pth")
    (vision / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# the vision backbone\n")
    phase2 = root / "phase2"
    phase2.mkdir()
    vocab_size = original_tokenizer(phase2)
    weights = llava_weights(vocab_size, seed=1)
    write_llava_folder(phase2, weights, llava_config(vocab_size))
    (phase2 / "README.md").write_text(SOURCE_CARD)
    # A trainer checkpoint in a subfolder, as the authors' repos hold: never fetched.
    (phase2 / "checkpoint-2000").mkdir()
    (phase2 / "checkpoint-2000" / "latest").write_text("global_step2000")
    phase3 = root / "phase3"
    phase3.mkdir()
    original_tokenizer(phase3)
    tower = {f"model.vision_tower.vision_tower.{k}": v for k, v in torchvision_tower(seed=2).state_dict().items()}
    write_llava_folder(phase3, {**weights, **tower}, llava_config(vocab_size, tune_vision_tower=True))

    cache = root / "hub-cache"
    cache_repo(cache, PHASE2, phase2, commit_hash("phase2"), refs=("main", "v1.0"))
    cache_repo(cache, VISION, vision, commit_hash("vision"))
    cache_repo(cache, PHASE3, phase3, commit_hash("phase3"))
    return {"root": root, "cache": cache, "phase2": phase2, "phase3": phase3, "pth": vision / "vision_backbone.pth"}


@pytest.fixture
def offline_cache(release, monkeypatch):
    """The user's Hub cache is the one above, and the Hub cannot be reached."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(release["cache"]))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return release["cache"]


def convert(*argv) -> int:
    return main([*map(str, argv), "--vision-num-heads", str(VISION_HEADS)])


def assert_same_conversion(ours: Path, reference: Path) -> None:
    """Same weights, config, generation config and processor files; only the model cards differ."""
    ours_weights, reference_weights = load_file(ours / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours_weights.keys() == reference_weights.keys()
    assert all(torch.equal(ours_weights[key], reference_weights[key]) for key in ours_weights)
    files = sorted(str(path.relative_to(reference)) for path in reference.rglob("*") if path.is_file())
    assert sorted(str(path.relative_to(ours)) for path in ours.rglob("*") if path.is_file()) == files
    for name in files:
        if name not in ("model.safetensors", "README.md"):
            assert (ours / name).read_bytes() == (reference / name).read_bytes(), name


def test_hub_repo_ids_convert_exactly_like_local_folders(release, offline_cache, tmp_path, capsys):
    local = tmp_path / "local"
    assert (
        convert("--llava-checkpoint", release["phase2"], "--vision-checkpoint", release["pth"], "--output", local) == 0
    )
    hub = tmp_path / "hub"
    argv = ["--llava-checkpoint", PHASE2, "--revision", "v1.0", "--vision-checkpoint", VISION, "--output", hub]
    assert convert(*argv) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hub", "local"]  # no staging folder left
    assert_same_conversion(hub, local)

    card = ModelCard.load(hub / "README.md")
    assert card.data.license == "apache-2.0"  # from the source repo's own card
    assert card.data.pipeline_tag == "image-text-to-text" and card.data.library_name == "transformers"
    assert card.data.base_model == PHASE2
    assert (
        f"[{PHASE2}](https://huggingface.co/{PHASE2}) at revision `v1.0` (commit `{commit_hash('phase2')}`)"
        in card.text
    )
    assert (
        f"[{VISION}](https://huggingface.co/{VISION}) at revision `main` (commit `{commit_hash('vision')}`)"
        in card.text
    )
    assert "vision_backbone.pth" in card.text and "DINOv2/timm (LayerScale)" in card.text
    local_card = ModelCard.load(local / "README.md")
    assert local_card.data.base_model is None and "local `phase2`" in local_card.text
    vision_only = tmp_path / "vision"
    assert (
        convert("--vision-checkpoint", VISION, "--vision-revision", commit_hash("vision"), "--output", vision_only) == 0
    )
    card = ModelCard.load(vision_only / "README.md")
    assert (card.data.license, card.data.base_model) == ("cc-by-4.0", VISION)
    # Only the top level of the repo was fetched: the trainer checkpoint in a subfolder was never needed.
    assert not (offline_cache / f"models--{PHASE2.replace('/', '--')}" / "snapshots" / "checkpoint-2000").exists()


def test_phase3_repo_at_a_commit_uses_its_own_tower(release, offline_cache, tmp_path):
    local, hub = tmp_path / "local", tmp_path / "hub"
    assert convert("--llava-checkpoint", release["phase3"], "--output", local) == 0
    assert convert("--llava-checkpoint", PHASE3, "--revision", commit_hash("phase3"), "--output", hub) == 0
    assert_same_conversion(hub, local)
    card = ModelCard.load(hub / "README.md")
    assert card.data.license == "other" and "states no license" in card.text
    assert "the trained tower inside the LLaVA checkpoint" in card.text


def test_vision_tower_named_by_the_config_as_a_hub_repo_is_fetched(release, offline_cache, tmp_path):
    folder = tmp_path / "llava"
    shutil.copytree(release["phase2"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "mm_vision_tower": VISION}))
    assert convert("--llava-checkpoint", folder, "--output", tmp_path / "out") == 0
    assert f"vision backbone: [{VISION}]" in (tmp_path / "out" / "README.md").read_text()


def test_vision_repo_with_several_pth_files_needs_a_file_name(release, offline_cache, tmp_path, capsys):
    files = tmp_path / "files"
    files.mkdir()
    shutil.copyfile(release["pth"], files / "teacher.pth")
    shutil.copyfile(release["pth"], files / "student.pth")
    cache_repo(offline_cache, "someone/two-backbones", files, commit_hash("two"))
    output = tmp_path / "out"
    assert convert("--vision-checkpoint", "someone/two-backbones", "--output", output) == 1
    assert (
        "expected one .pth vision backbone, found student.pth, teacher.pth; pass REPO_ID:FILE"
        in capsys.readouterr().err
    )
    assert convert("--vision-checkpoint", "someone/two-backbones:teacher.pth", "--output", output) == 0
    card = ModelCard.load(output / "README.md")
    assert card.data.pipeline_tag == "image-feature-extraction" and card.data.base_model == "someone/two-backbones"
    assert "file `teacher.pth`" in card.text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--llava-checkpoint", "wsashawn/not_released", "--vision-checkpoint", VISION],
            "wsashawn/not_released@main: not in the local Hub cache",
        ),
        (
            ["--llava-checkpoint", PHASE2, "--revision", "v9.9", "--vision-checkpoint", VISION],
            f"{PHASE2}@v9.9: not in the local Hub cache",
        ),
        (
            ["--llava-checkpoint", PHASE2, "--vision-checkpoint", f"{VISION}:missing.pth"],
            f"{VISION}@main: not in the local Hub cache",
        ),
        (
            ["--llava-checkpoint", PHASE2],
            "mm_vision_tower='/original/machine/vision_backbone.pth', which does not exist here (a path on the "
            f"authors’ machines); pass --vision-checkpoint (the released backbone is {VISION})",
        ),
        (["--llava-checkpoint", "no/such/folder"], "'no/such/folder': no such folder, and not a Hub repo id"),
        (
            ["--llava-checkpoint", "phase2-folder", "--revision", "main", "--vision-checkpoint", VISION],
            "is a local path; a revision ('main') only applies to a Hub repo id",
        ),
    ],
    ids=["repo-not-cached", "unknown-revision", "file-not-in-repo", "authors-path", "not-a-repo-id", "local-revision"],
)
def test_missing_sources_are_one_clear_error_and_nothing_is_written(
    release, offline_cache, tmp_path, monkeypatch, capsys, argv, message
):
    shutil.copytree(release["phase2"], tmp_path / "phase2-folder")
    monkeypatch.chdir(tmp_path)
    assert convert(*argv, "--output", tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert error.startswith("babyvlm convert: error: ") and message in error and "Traceback" not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["phase2-folder"]


def test_push_to_hub_uploads_the_converted_folder_as_a_model_repo_in_one_commit(
    release, offline_cache, tmp_path, monkeypatch
):
    fake = RecordingHub()
    monkeypatch.setattr(hub, "HfApi", lambda: fake)
    output = tmp_path / "babyllava-v2"
    argv = ["--llava-checkpoint", PHASE2, "--vision-checkpoint", VISION, "--output", output]
    assert convert(*argv, "--push-to-hub", "me/babyllava-v2", "--private") == 0

    assert fake.names() == ["repo_exists", "create_repo", "create_commit"]
    assert fake.calls[1][1] == {"repo_id": "me/babyllava-v2", "repo_type": "model", "private": True, "exist_ok": True}
    (commit,) = fake.commits
    files = {path.relative_to(output).as_posix() for path in output.rglob("*") if path.is_file()}
    assert set(commit["files"]) == files
    assert {"README.md", "model.safetensors", "config.json", "processor_config.json", "tokenizer.json"} <= files
    remote_code = json.loads((output / "config.json").read_text())["auto_map"]
    assert {module.split(".")[0] + ".py" for module in remote_code.values()} <= files
    assert all(commit["files"][name] == (output / name).read_bytes() for name in files)


def test_private_without_push_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        main(["--vision-checkpoint", "x.pth", "--output", str(tmp_path / "out"), "--private"])
