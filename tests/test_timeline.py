"""Training along the child's timeline: exposure in every folder, chronological order, age checkpoints, the same
run under one and two processes and after a kill."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import datasets
import PIL.Image
import pytest
import torch
from safetensors.torch import load_file
from test_recipes import ENV, REPO, SFT, TINY
from transformers import AutoModelForImageTextToText

from babyvlm.chat import IMAGES_FEATURE, MESSAGES_FEATURE
from babyvlm.testing.babyllava import build_tiny_babyllava
from babyvlm.testing.launch import cpu_launch, kill_once_written
from babyvlm.training import sft
from babyvlm.training.exposure import Curriculum, age_folder_name, age_thresholds

WORDS = ["ball", "red ball", "look at the dog", "more milk please"]


def video_row(index: int) -> dict:
    """One utterance of a recording of child A, B or C, ages 6 to 17 months, 1 to 3 frames."""
    child = "ABC"[index % 3]
    said = WORDS[index % len(WORDS)]
    frames = 1 + index % 3
    return {
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}] * frames},
            {"role": "assistant", "content": [{"type": "text", "text": said}]},
        ],
        "images": [PIL.Image.new("RGB", (32, 32), (index * 9 % 255, 40, 90))] * frames,
        "recording": f"{child}_{index % 5}",
        "child": child,
        "age_months": 6 + (index * 7) % 12 + (0.5 if index % 4 == 0 else 0.0),
        "start_ms": 1000 * index,
        "end_ms": 1000 * index + 500 + 100 * (index % 7),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    rows = [video_row(index) for index in range(24)]
    features = datasets.Features(
        {
            "messages": MESSAGES_FEATURE,
            "images": IMAGES_FEATURE,
            "recording": datasets.Value("string"),
            "child": datasets.Value("string"),
            "age_months": datasets.Value("float32"),
            "start_ms": datasets.Value("int64"),
            "end_ms": datasets.Value("int64"),
        }
    )
    datasets.Dataset.from_list(rows, features=features).to_parquet(root / "video" / "train.parquet")
    build_tiny_babyllava(root / "tiny-vlm")
    return root, rows


def arguments(corpus_root: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--config",
        str(TINY / "stage2_pretrain.yaml"),
        "--model_name_or_path",
        str(corpus_root / "tiny-vlm"),
        "--datasets",
        str(corpus_root / "video"),
        "--output_dir",
        str(output),
        "--vlm_packing",
        "false",
        "--learning_rate",
        "1e-3",
        "--logging_steps",
        "1",
        *extra,
    ]


def run(command, timeout=420):
    result = subprocess.run(command, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def train_in_process(arguments: list[str]) -> None:
    """`recipes/sft.py` with these arguments, run in this process (the same `main`): exit status 0."""
    assert sft.main(arguments) == 0


def independent_count(rows: list[dict]) -> dict:
    return {
        "utterances": len(rows),
        "words": sum(len(row["messages"][1]["content"][0]["text"].split()) for row in rows),
        "images": sum(len(row["images"]) for row in rows),
        "frames": sum(len(row["images"]) for row in rows),
        "video_hours": sum(row["end_ms"] - row["start_ms"] for row in rows) / 3.6e6,
    }


def chronological(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: (row["age_months"], row["child"], rows.index(row)))


def test_age_checkpoint_folders_are_named_by_age():
    assert [age_folder_name(age) for age in (9, 12, 10.5, 32)] == ["age-09mo", "age-12mo", "age-10.5mo", "age-32mo"]
    assert age_thresholds(None, 3, 6, 17.5) == [9, 12, 15]
    assert age_thresholds([18, 9], None, 6, 17) == [9, 18]


def test_a_curriculum_on_a_corpus_without_ages_is_one_line_naming_it():
    with pytest.raises(ValueError, match="dataset x.*age_months"):
        Curriculum.parse("chronological").check_source(datasets.Dataset.from_dict({"text": ["a"]}), "dataset x")
    with pytest.raises(ValueError, match="curriculum must be"):
        Curriculum.parse("by-age")


def test_a_full_epoch_counts_the_whole_corpus_in_every_folder(corpus, tmp_path, one_thread):
    root, rows = corpus
    output = tmp_path / "shuffled"
    train_in_process(arguments(root, output, "--per_device_train_batch_size", "4"))
    document = json.loads((output / "exposure.json").read_text())
    expected = independent_count(rows)
    assert document["format"] == "babyvlm-exposure/1" and document["age_months_reached"] is None
    for name, value in expected.items():
        assert document[name] == pytest.approx(value), name
    assert document["epochs"] == 1 and document["steps"] == 6 and len(document["stages"]) == 1
    stage = document["stages"][0]
    assert stage["curriculum"] == "shuffled" and stage["corpora"][0]["fingerprint"]
    assert document["age_months_range"] == [min(r["age_months"] for r in rows), max(r["age_months"] for r in rows)]
    assert "## Exposure" in (output / "README.md").read_text()
    checkpoint = json.loads((tmp_path / "shuffled-checkpoints" / "checkpoint-6" / "exposure.json").read_text())
    assert checkpoint["words"] == expected["words"]


def test_chronological_age_checkpoints_count_what_was_fed_and_load(corpus, tmp_path, caplog, one_thread):
    root, rows = corpus
    output = tmp_path / "chrono"
    extra = ["--per_device_train_batch_size", "4", "--curriculum", "chronological", "--save_at_age_months", "9", "12"]
    with caplog.at_level(logging.INFO, logger="babyvlm"):
        train_in_process(arguments(root, output, *extra))
    ordered = chronological(rows)
    for age in (9, 12):
        folder = output / "age_checkpoints" / age_folder_name(age)
        document = json.loads((folder / "exposure.json").read_text())
        # the first step whose records reach the age: whole batches of 4 records
        fed = next(4 * step for step in range(1, 7) if ordered[4 * step - 1]["age_months"] >= age)
        assert document["age_months_reached"] == age
        assert document["words"] == independent_count(ordered[:fed])["words"], age
        assert document["steps"] == fed // 4
        AutoModelForImageTextToText.from_pretrained(folder)
        assert {"config.json", "model.safetensors", "README.md", "tokenizer_config.json"} <= {
            path.name for path in folder.iterdir()
        }
    assert "age checkpoints written: age-09mo, age-12mo" in caplog.text


@pytest.mark.slow
def test_a_chronological_run_is_the_same_under_two_processes_and_after_a_kill(corpus, tmp_path, one_thread):
    root, _ = corpus
    common = ["--curriculum", "chronological", "--save_every_age_months", "3", "--max_steps", "12"]
    common += ["--save_strategy", "steps", "--save_steps", "3", "--save_total_limit", "10"]
    # the one-process run and the resumption run in this process, on one thread as the launched processes do
    one = tmp_path / "one"
    train_in_process(arguments(root, one, *common, "--per_device_train_batch_size", "2"))
    two = tmp_path / "two"
    run([*cpu_launch(2), SFT, *arguments(root, two, *common, "--per_device_train_batch_size", "1")])

    killed = tmp_path / "killed"
    killed_run = arguments(root, killed, *common, "--per_device_train_batch_size", "2")
    marker = tmp_path / "killed-checkpoints" / "checkpoint-3" / "exposure_tally.json"
    kill_once_written([sys.executable, SFT, *killed_run], marker, env=ENV, cwd=REPO)
    assert not (killed / "model.safetensors").exists(), "killed too late: the run had already finished"
    train_in_process(killed_run)

    def folders(output):
        return [output, *sorted((output / "age_checkpoints").iterdir())]

    names = [folder.name for folder in folders(one)]
    assert names[1:] == ["age-09mo", "age-12mo", "age-15mo"]
    for other in (two, killed):
        assert [folder.name for folder in folders(other)][1:] == names[1:]
        for mine, theirs in zip(folders(one), folders(other), strict=True):
            exposure = json.loads((mine / "exposure.json").read_text())
            assert json.loads((theirs / "exposure.json").read_text()) == exposure, theirs
            expected, got = load_file(mine / "model.safetensors"), load_file(theirs / "model.safetensors")
            for name in expected:
                torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-5, msg=f"{theirs}: {name}")
