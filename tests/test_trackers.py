"""Every tracker the recipes document (`report_to: tensorboard|trackio|wandb`) installs through the `tracking` extra
and writes its logs from a tiny SFT run, offline and into folders the run is given."""

import json
import sqlite3
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import datasets
import pytest
import yaml
from packaging.requirements import Requirement
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from babyvlm.testing.babyllava import SAMPLE_UTTERANCES
from babyvlm.testing.launch import offline_cpu_env

REPO = Path(__file__).resolve().parents[1]
TRACKERS = ("tensorboard", "trackio", "wandb")  # as documented in recipes/README.md
PROJECT = "babyvlm-trackers"


def test_tracking_extra_installs_every_documented_tracker():
    extra = {
        Requirement(line).name
        for line in requires("babyvlm")
        if Requirement(line).marker and Requirement(line).marker.evaluate({"extra": "tracking"})
    }
    assert set(TRACKERS) <= extra


@pytest.mark.slow
def test_each_documented_tracker_writes_its_logs_offline(tmp_path):
    data = tmp_path / "utterances"
    datasets.Dataset.from_dict({"text": SAMPLE_UTTERANCES * 10}).to_parquet(data / "train.parquet")
    output = tmp_path / "run"
    # One YAML for the whole tiny run: `report_to` as a list (the command line takes one tracker).
    config = yaml.safe_load((REPO / "recipes" / "babyllava_v2" / "tiny" / "stage0_lm.yaml").read_text())
    config |= {
        "datasets": [{"path": str(data), "split": "train"}],
        "output_dir": str(output),
        "tokenizer_vocab_size": 300,
        "tokenizer_min_frequency": 1,
        "max_length": 64,
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": list(TRACKERS),
        "project": PROJECT,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = offline_cpu_env(
        TRACKIO_DIR=str(tmp_path / "trackio"), WANDB_MODE="offline", WANDB_DIR=str(tmp_path), WANDB_SILENT="true"
    )
    command = [sys.executable, str(REPO / "recipes" / "sft.py"), "--config", str(tmp_path / "config.yaml")]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]

    # tracker logs go beside the model, with the checkpoints (the model folder holds only the model)
    (events,) = (tmp_path / "run-checkpoints" / "runs").glob("*/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("train/loss")] == [1, 2]

    with sqlite3.connect(tmp_path / "trackio" / f"{PROJECT}.db") as database:
        logged = [json.loads(row[0]) for row in database.execute("SELECT metrics FROM metrics ORDER BY step")]
    assert sum("train/loss" in metrics for metrics in logged) == 2

    (wandb_log,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    assert b"train/loss" in wandb_log.read_bytes()
