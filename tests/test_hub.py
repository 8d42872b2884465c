"""DevCV and SAYCam datasets and DevCV results on the Hub: built offline from a populated Hub cache, pushed through a
recording stand-in for `HfApi` (one commit, gated as asked, refused where the licence forbids), and loaded with
`load_dataset` from exactly the files a push would upload."""

import doctest
import json

import pytest
from babyvlm.dataset_builders import licences
from babyvlm.dataset_builders.devcv.cli import main as build_main
from babyvlm.dataset_builders.hub import push_dataset, saycam_publication
from babyvlm.dataset_builders.saycam.cards import write_card
from babyvlm.dataset_builders.saycam.config import BuildConfig
from babyvlm.dataset_builders.saycam.records import SPECS
from babyvlm.dataset_builders.saycam.storage import write_records
from babyvlm.evaluate_metrics.hub_results import results_card
from babyvlm.evaluate_metrics.runner import main as eval_main
from datasets import load_dataset
from fixtures_devcv import write_split_layout, write_task_layout
from hub_cards import assert_hub_dataset_card
from hub_fakes import RecordingHub, cache_repo, commit_hash, http_error, write_commit
from huggingface_hub import DatasetCard, EvalResult, ModelCard, ModelCardData, constants
from huggingface_hub.errors import OfflineModeIsEnabled

from babyvlm import hub
from babyvlm.hub import HubUploadError, is_transient, upload
from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

EGO4D_REPO = "someone/devcv_toolbox_ego4d"
TASKS = ("count", "leftright")


def build(*argv) -> int:
    return build_main([*map(str, argv), "--quiet", "--no-audit"])


@pytest.fixture
def recording_hub(monkeypatch):
    """Every `HfApi()` babyvlm makes is this recorder."""
    fake = RecordingHub()
    monkeypatch.setattr(hub, "HfApi", lambda: fake)
    return fake


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """A tiny Ego4D-layout release (also cached as a Hub dataset repo) and a SAYCam-layout one."""
    root = tmp_path_factory.mktemp("releases")
    write_task_layout(root / "ego4d", tasks=TASKS, n=2)
    write_split_layout(root / "saycam", tasks=TASKS, splits=("train", "test"), n=2)
    cache = root / "hub-cache"
    cache_repo(cache, EGO4D_REPO, root / "ego4d", commit_hash("ego4d"), refs=("main", "v1.0"), repo_type="dataset")
    return root


@pytest.fixture
def offline_cache(releases, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(releases / "hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def fingerprint(folder) -> str:
    return json.loads((folder / "build_report.json").read_text())["fingerprint"]


def test_licence_table_doctests():
    assert doctest.testmod(licences).failed == 0


def test_a_hub_dataset_repo_builds_offline_exactly_like_the_local_folder(releases, offline_cache, tmp_path, capsys):
    assert build(releases / "ego4d", "--output", tmp_path / "local") == 0
    assert build(f"{EGO4D_REPO}@v1.0", "--output", tmp_path / "hub") == 0
    assert f"{EGO4D_REPO} at revision `v1.0` (commit `{commit_hash('ego4d')}`)" in capsys.readouterr().err
    assert fingerprint(tmp_path / "hub") == fingerprint(tmp_path / "local")
    card = (tmp_path / "hub" / "README.md").read_text()
    assert f"- downloaded from the Hub: {EGO4D_REPO} at revision `v1.0` (commit `{commit_hash('ego4d')}`)" in card
    test = load_dataset(str(tmp_path / "hub"), "count", split="test")
    assert set(test["source"]) == {"ego4d"}  # named by the repo, as a local folder is by its name

    assert build(f"{EGO4D_REPO}@v9", "--output", tmp_path / "missing") == 1
    error = capsys.readouterr().err
    assert f"{EGO4D_REPO}@v9: not in the local Hub cache" in error and "Traceback" not in error
    assert not (tmp_path / "missing").exists()


def test_public_push_of_saycam_items_is_refused_in_one_line(releases, recording_hub, tmp_path, capsys):
    output = tmp_path / "devcv"
    assert build(releases / "saycam", "--output", output, "--push-to-hub", "me/devcv") == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        "error: not uploaded to me/devcv: items derived from SAYCam (source saycam) may only go to a private or gated "
        f"repository (Databrary access agreement): pass --private or --gated; {output} is complete"
    ]
    assert recording_hub.calls == [] and (output / "README.md").is_file()


def test_gated_push_is_one_commit_whose_files_load_by_task(releases, recording_hub, tmp_path):
    output = tmp_path / "devcv"
    assert build(releases / "saycam", "--output", output, "--push-to-hub", "me/devcv", "--gated") == 0
    # Gated before any file lands, then one commit.
    assert recording_hub.names() == ["repo_exists", "create_repo", "update_repo_settings", "create_commit"]
    assert recording_hub.calls[1][1] == {
        "repo_id": "me/devcv",
        "repo_type": "dataset",
        "private": False,
        "exist_ok": True,
    }
    assert recording_hub.calls[2][1]["gated"] == "manual"
    (commit,) = recording_hub.commits
    assert commit["message"].startswith("DevCV Toolbox built by babyvlm")
    uploaded = write_commit(commit["files"], tmp_path / "clone")
    assert {"README.md", "build_report.json"} <= set(commit["files"])
    for task in TASKS:
        for split in ("train", "test"):
            assert (
                load_dataset(str(uploaded), task, split=split)["id"]
                == load_dataset(str(output), task, split=split)["id"]
            )
    card = assert_hub_dataset_card(uploaded / "README.md")
    assert (card.data.license, card.data.license_name) == ("other", "databrary-access-agreement")
    assert card.data.task_categories == ["visual-question-answering"] and card.data.size_categories == ["n<1K"]
    assert "Databrary access agreement" in card.data.extra_gated_prompt
    assert 'load_dataset("me/devcv", "picture_vocabulary", split="test")' in card.text
    assert "I hold an approved SAYCam data-use agreement (databrary-access-agreement)" in card.data.extra_gated_fields
    # The local card is untouched: gating is a property of the upload.
    assert "extra_gated_prompt" not in DatasetCard.load(output / "README.md").data.to_dict()


def test_a_source_whose_licence_the_card_does_not_state_is_not_uploaded(releases, recording_hub, tmp_path, capsys):
    output = tmp_path / "nih"
    argv = [releases / "ego4d", "--output", output, "--source-name", "nih", "--push-to-hub", "me/nih", "--private"]
    assert build(*argv) == 1
    assert "the card states no licence for source nih: its images are not uploaded" in capsys.readouterr().err
    assert recording_hub.calls == []


def test_a_folder_of_image_paths_is_not_uploaded(releases, recording_hub, tmp_path, capsys):
    argv = [releases / "ego4d", "--output", tmp_path / "paths", "--image-paths", "--push-to-hub", "me/paths"]
    assert build(*argv) == 1
    assert "holds local image paths, not images (--image-paths): build without it" in capsys.readouterr().err
    assert recording_hub.calls == []


def test_transient_errors_are_retried_with_backoff(tmp_path):
    fake, waits = RecordingHub(), []
    fake.fail["create_commit"] = [http_error(503), ConnectionError("reset")]
    url = upload("me/x", {"a.txt": b"a"}, repo_type="dataset", commit_message="m", api=fake, sleep=waits.append)
    assert url.endswith("/commit/1") and waits == [2.0, 4.0] and fake.files["me/x"] == {"a.txt": b"a"}
    assert not is_transient(OfflineModeIsEnabled("HF_HUB_OFFLINE is set")) and not is_transient(http_error(401))


@pytest.mark.parametrize("existing", [False, True], ids=["new-repo", "existing-repo"])
def test_a_failed_upload_leaves_the_remote_as_it_was_and_says_so(existing):
    fake = RecordingHub(existing={"me/x": {"old.txt": b"old"}} if existing else {})
    fake.fail["create_commit"] = [http_error(403)]  # not transient: no retry
    with pytest.raises(HubUploadError) as raised:
        upload("me/x", {"a.txt": b"a"}, repo_type="dataset", commit_message="m", gated=True, api=fake, sleep=None)
    assert fake.names().count("create_commit") == 1 and fake.commits == []
    if existing:
        assert fake.files["me/x"] == {"old.txt": b"old"} and fake.gated["me/x"] is False  # gating put back
        assert str(raised.value).endswith("nothing was uploaded: the repository is as it was")
    else:
        assert "me/x" not in fake.files
        assert str(raised.value).endswith("nothing was uploaded and the repository it had created was deleted again")


def write_saycam_corpus(output, name: str, rows: int) -> None:
    spec = SPECS[name]
    records = [{column: None for column in spec.features} | {"id": f"{name}-{i}"} for i in range(rows)]
    write_records(output / name / "data" / "train" / "S_20130101_0000_00.parquet", records, spec.features)
    tally = {"records": rows, "records_by_split": {"train": rows}, "kept": rows, "filtered": {}, "failed": {}}
    tally["records_by_child"] = {"S": {"train": rows}}
    write_card(output / name, spec, {"corpora": {name: tally}, "complete": True}, BuildConfig())


def test_saycam_corpora_go_to_one_gated_repo_with_a_config_each(tmp_path):
    output = tmp_path / "saycam"
    write_saycam_corpus(output, "utterances", 3)
    write_saycam_corpus(output, "image_utterance", 2)
    (output / "build_report.json").write_text("{}")
    publication = saycam_publication(output, "me/saycam", gated=True)
    fake = RecordingHub()
    with pytest.raises(ValueError, match="only go to a private or gated repository"):
        push_dataset("me/saycam", publication, api=fake)
    push_dataset("me/saycam", publication, gated=True, api=fake)
    uploaded = write_commit(fake.commits[0]["files"], tmp_path / "clone")
    assert len(load_dataset(str(uploaded), "utterances", split="train")) == 3
    assert load_dataset(str(uploaded), "image_utterance", split="train")["id"] == [
        "image_utterance-0",
        "image_utterance-1",
    ]
    card = assert_hub_dataset_card(uploaded / "README.md")
    assert card.data.task_categories == ["image-text-to-text", "text-generation"]
    assert 'load_dataset("me/saycam", "image_utterance", split="train")' in card.text
    assert card.data.license_name == "databrary-access-agreement" and card.data.extra_gated_fields
    assert (uploaded / "utterances" / "README.md").is_file() and (uploaded / "build_report.json").is_file()


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    """A tiny model and a tiny DevCV folder (Object Counting, VDR open) to evaluate."""
    root = tmp_path_factory.mktemp("eval")
    rows = {"count": synthetic_items("count", 3), "vdr_open": synthetic_items("vdr_open", 2)}
    return save_tiny_llava(root / "model"), write_devcv_folder(root / "devcv", rows)


OTHER_RESULT = EvalResult(
    task_type="visual-question-answering",
    dataset_type="someone/other-benchmark",
    dataset_name="Other",
    metric_type="acc",
    metric_value=0.5,
)


def test_eval_push_writes_the_model_index_and_the_report_in_one_commit(eval_run, recording_hub, tmp_path, capsys):
    model, data = eval_run
    stale = EvalResult(
        task_type="visual-question-answering",
        dataset_type="me/devcv",
        dataset_name="DevCV",
        dataset_config="count",
        dataset_split="test",
        metric_type="acc",
        metric_value=0.99,
    )
    existing = ModelCard(
        f"---\n{ModelCardData(model_name='tiny', eval_results=[OTHER_RESULT, stale]).to_yaml()}\n---\n"
    )
    recording_hub.files["me/tiny"] = {"README.md": str(existing).encode(), "model.safetensors": b"weights"}
    output = tmp_path / "run"
    argv = ["--model", model, "--data", data, "--output", output, "--max-new-tokens", "3", "--no-progress"]
    eval_main([*map(str, argv), "--push-to-hub", "me/tiny", "--hub-dataset", "me/devcv"])
    assert "pushed the results to https://huggingface.co/me/tiny/commit/1" in capsys.readouterr().out
    assert recording_hub.names() == ["hf_hub_download", "repo_exists", "repo_info", "create_repo", "create_commit"]
    (commit,) = recording_hub.commits
    folder = "devcv/me--devcv/test"
    assert {f"{folder}/{name}" for name in ("summary.json", "results.json", "devcv_results.json", "results.md")} <= set(
        commit["files"]
    )
    summary = json.loads((output / "summary.json").read_text())
    card = ModelCard(commit["files"]["README.md"].decode())
    results = {(r.dataset_type, r.dataset_config, r.metric_type): r for r in card.data.eval_results}
    assert len(results) == len(card.data.eval_results)
    assert results["someone/other-benchmark", None, "acc"].metric_value == 0.5  # another dataset's result is kept
    expected = {
        ("me/devcv", task["task"], metric): value
        for task in summary["tasks"].values()
        for metric, value in task["metrics"].items()
    }
    expected["me/devcv", "all", "overall"] = summary["overall"]
    ours = {key: result.metric_value for key, result in results.items() if key[0] == "me/devcv"}
    assert ours == expected  # the stale count result is replaced; official metrics only
    count = results["me/devcv", "count", "acc"]
    count_summary = next(task for task in summary["tasks"].values() if task["task"] == "count")
    interval = f"95% CI {count_summary['ci_low']:.3f}-{count_summary['ci_high']:.3f}"
    assert (count.dataset_split, count.metric_name, count.task_name) == (
        "test",
        f"acc (n=3, {interval})",
        "Object Counting",
    )
    assert count.source_url == f"https://huggingface.co/me/tiny/blob/main/{folder}/summary.json"
    assert "## DevCV results: `me/devcv`, split `test`" in card.text

    # A second push of the same dataset and split replaces its section and results; intervals when the run has them.
    count_summary.update(ci_low=0.1, ci_high=0.6)
    again = results_card(
        str(card), summary, repo_id="me/tiny", dataset_id="me/devcv", dataset_name="DevCV", split="test"
    )
    assert again.text.count("## DevCV results: `me/devcv`") == 1
    assert len(again.data.eval_results) == len(card.data.eval_results)
    named = {(r.dataset_config, r.metric_type): r.metric_name for r in again.data.eval_results}
    assert named["count", "acc"] == "acc (n=3, 95% CI 0.100-0.600)"


def test_eval_push_needs_an_existing_model_repo_and_a_whole_run(eval_run, recording_hub, tmp_path, capsys):
    model, data = eval_run
    argv = ["--model", model, "--data", data, "--output", tmp_path / "run", "--max-new-tokens", "3", "--no-progress"]
    with pytest.raises(SystemExit):
        eval_main([*map(str, argv), "--push-to-hub", "me/tiny", "--limit", "1"])
    assert "--push-to-hub publishes whole runs only: drop --limit" in capsys.readouterr().err
    assert eval_main([*map(str, argv), "--push-to-hub", "me/missing"]) == 1
    assert "no model repo me/missing on the Hub (or no access to it): nothing was uploaded" in capsys.readouterr().err
    assert "create_commit" not in recording_hub.names() and (tmp_path / "run" / "summary.json").is_file()


def test_private_upload_to_an_existing_public_repo_is_refused():
    fake = RecordingHub(existing={"me/x": {}})
    with pytest.raises(HubUploadError, match="me/x exists and is public: make it private first; nothing was uploaded"):
        upload("me/x", {"a.txt": b"a"}, repo_type="dataset", commit_message="m", private=True, api=fake)
    assert fake.names() == ["repo_exists", "repo_info"]
