"""`babyvlm push-ages`: a run's age checkpoints as branches of one Hub model repo, the final model on `main`, offline
against a recording stand-in for `HfApi`; the branches are the `ORG/NAME@age-09mo` revisions a trajectory reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from babyvlm.evaluate_metrics.trajectory import resolve_checkpoints
from hub_fakes import RecordingHub, cache_repo, commit_hash, http_error, write_commit
from huggingface_hub import constants
from transformers import AutoModelForImageTextToText

from babyvlm import hub
from babyvlm.testing.babyllava import build_tiny_babyllava
from babyvlm.training.age_branches import main
from babyvlm.training.exposure import EXPOSURE_FILE, age_folder_name, exposure_document, write_exposure

REPO_ID = "me/timeline"
AGES = (9.0, 10.5, 12.0)
BRANCHES = ("age-09mo", "age-10.5mo", "age-12mo")


def stage(age: float) -> dict:
    """One stage of exposure.json, as a chronological run leaves it when its stream passed ``age``."""
    return {
        "stage": "pretrain",
        "curriculum": "chronological",
        "epochs": age / 12,
        "steps": int(age),
        "records": int(age * 10),
        "video_hours": age / 100,
        "frames": int(age * 20),
        "utterances": int(age * 10),
        "words": int(age * 30),
        "images": int(age * 20),
        "age_months_range": [6.0, age],
        "corpora": [],
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A final folder with three age checkpoints, each a complete model folder with its own weights."""
    output = tmp_path_factory.mktemp("run") / "stage2"
    build_tiny_babyllava(output, seed=0)
    write_exposure(output, exposure_document([stage(13.0)]))
    (output / "README.md").write_text("---\nlicense: other\n---\n# the final model\n")
    for index, age in enumerate(AGES):
        folder = output / "age_checkpoints" / age_folder_name(age)
        build_tiny_babyllava(folder, seed=index + 1)
        write_exposure(folder, exposure_document([stage(age)], age_months_reached=age))
        (folder / "README.md").write_text(f"---\nlicense: other\n---\n# at {age:g} months\n")
    return output


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def fake(monkeypatch) -> RecordingHub:
    recording = RecordingHub()
    monkeypatch.setattr(hub, "HfApi", lambda: recording)
    return recording


def push(run: Path, *extra: str) -> int:
    return main([str(run), "--repo", REPO_ID, *extra])


def test_each_age_checkpoint_goes_to_its_branch_and_the_final_model_to_main(run, fake, tmp_path, capsys):
    assert push(run, "--private") == 0
    assert [kwargs["branch"] for name, kwargs in fake.calls if name == "create_branch"] == list(BRANCHES)
    commits = [kwargs["revision"] for name, kwargs in fake.calls if name == "create_commit"]
    assert commits == [*BRANCHES, "main"]
    assert {kwargs["private"] for name, kwargs in fake.calls if name == "create_repo"} == {True}
    for branch in BRANCHES:
        assert fake.tree(REPO_ID, branch) == files_of(run / "age_checkpoints" / branch), branch
    main_files = {name: data for name, data in files_of(run).items() if not name.startswith("age_checkpoints/")}
    remote_main = fake.tree(REPO_ID, "main")
    assert remote_main.keys() == main_files.keys()
    assert all(remote_main[name] == data for name, data in main_files.items() if name != "README.md")
    card = remote_main["README.md"].decode()
    assert card.startswith(main_files["README.md"].decode().rstrip("\n")) and "## Age checkpoints" in card
    assert all(f"| `{branch}` | {age:g} |" in card for branch, age in zip(BRANCHES, AGES, strict=True))
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == [f"{REPO_ID}@{revision}" for revision in (*BRANCHES, "main")]

    # A branch is a loadable checkpoint: the weights of its age, not the final model's.
    clone = write_commit(fake.tree(REPO_ID, "age-10.5mo"), tmp_path / "clone")
    model = AutoModelForImageTextToText.from_pretrained(clone)
    local = AutoModelForImageTextToText.from_pretrained(run / "age_checkpoints" / "age-10.5mo")
    final = AutoModelForImageTextToText.from_pretrained(run)
    ours, theirs, last = (m.state_dict() for m in (model, local, final))
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)
    assert not all(torch.equal(ours[name], last[name]) for name in last)
    assert json.loads((clone / EXPOSURE_FILE).read_text())["age_months_reached"] == 10.5


def test_every_revision_holds_exactly_its_folder_when_the_repo_held_other_files(run, monkeypatch):
    fake = RecordingHub(existing={REPO_ID: {"model-00002-of-00002.safetensors": b"old", "README.md": b"old"}})
    monkeypatch.setattr(hub, "HfApi", lambda: fake)
    assert push(run) == 0
    for branch in BRANCHES:
        assert fake.tree(REPO_ID, branch) == files_of(run / "age_checkpoints" / branch)
    assert "model-00002-of-00002.safetensors" not in fake.tree(REPO_ID, "main")
    assert all(commit["deleted"] == ["model-00002-of-00002.safetensors"] for commit in fake.commits)
    # Pushed again: the branches exist, nothing is created twice, and every revision is the same.
    before = {revision: dict(fake.tree(REPO_ID, revision)) for revision in (*BRANCHES, "main")}
    assert push(run) == 0
    assert [name for name, _ in fake.calls].count("create_branch") == len(BRANCHES)
    assert {revision: fake.tree(REPO_ID, revision) for revision in before} == before


def test_the_branches_are_the_revisions_a_trajectory_reads_in_age_order(run, fake, tmp_path, monkeypatch):
    assert push(run) == 0
    cache = tmp_path / "hub-cache"
    for revision in (*BRANCHES, "main"):
        files = write_commit(fake.tree(REPO_ID, revision), tmp_path / "clones" / revision)
        cache_repo(cache, REPO_ID, files, commit_hash(revision), refs=(revision,))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    checkpoints = resolve_checkpoints([f"{REPO_ID}@{branch}" for branch in BRANCHES] + [REPO_ID])
    assert [c.name for c in checkpoints] == [f"me--timeline@{b}" for b in BRANCHES] + ["me--timeline@main"]
    assert [c.experience("months", i) for i, c in enumerate(checkpoints[:-1])] == list(AGES)
    hours = [c.experience("hours", i) for i, c in enumerate(checkpoints)]
    assert hours == sorted(hours) and hours[-1] == pytest.approx(0.13)


def test_a_failure_part_way_says_which_revisions_landed_and_removes_the_branch_it_created(run, fake, capsys):
    fake.fail["create_commit"] = [None, http_error(403)]
    assert push(run) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("babyvlm push-ages: error: age-10.5mo: ")
    assert error.rstrip().endswith("revisions pushed before it: age-09mo")
    assert "nothing was uploaded: the repository is as it was" in error
    assert list(fake.branches[REPO_ID]) == ["age-09mo"]


def _break(run: Path, tmp_path: Path, how: str) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    ages = broken / "age_checkpoints"
    if how == "no-ages":
        shutil.rmtree(ages)
    elif how == "no-exposure":
        (ages / "age-12mo" / EXPOSURE_FILE).unlink()
    elif how == "wrong-age":
        write_exposure(ages / "age-12mo", exposure_document([stage(11.0)], age_months_reached=11.0))
    elif how == "not-a-model":
        (broken / "config.json").unlink()
    return broken


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("no-ages", "no age checkpoints in age_checkpoints/ (train with save_at_age_months or save_every_age_months)"),
        ("no-exposure", "age-12mo: no exposure.json; not a complete age checkpoint"),
        ("wrong-age", "age-12mo: exposure.json says the stream passed 11.0 months, which is not the folder's age"),
        ("not-a-model", "broken: not a model folder (no config.json or adapter_config.json)"),
    ],
)
def test_an_incomplete_run_is_one_line_naming_the_folder_and_nothing_is_pushed(
    run, fake, tmp_path, capsys, how, message
):
    assert push(_break(run, tmp_path, how)) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert fake.calls == []


def test_a_branch_that_cannot_be_removed_again_is_named_as_left_behind(run, monkeypatch, capsys):
    fake = RecordingHub(existing={REPO_ID: {"README.md": b"old"}})
    monkeypatch.setattr(hub, "HfApi", lambda: fake)
    fake.fail["create_commit"] = [http_error(403)]
    fake.fail["delete_branch"] = [RuntimeError("the Hub is read-only")]
    assert push(run) == 1
    error = capsys.readouterr().err
    assert "but branch 'age-09mo' (a copy of main) remains (the Hub is read-only): remove it on the Hub" in error
    assert error.rstrip().endswith("revisions pushed before it: none")
