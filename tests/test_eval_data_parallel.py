"""Data-parallel evaluation: two CPU processes under ``accelerate launch`` give the single-process run."""

import json
import re
import subprocess
from types import SimpleNamespace

import pytest
from babyvlm.evaluate_metrics import runner
from babyvlm.evaluate_metrics.predictions import PREDICTIONS_FILE
from babyvlm.evaluate_metrics.runner import evaluate_devcv

from babyvlm.testing import save_tiny_model
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder
from babyvlm.testing.launch import cpu_launch, offline_cpu_env

RUN = {"max_new_tokens": 3, "max_new_tokens_per_round": 3, "batch_size": 2}


def entries(output_dir) -> dict:
    lines = (output_dir / PREDICTIONS_FILE).read_text().splitlines()
    return {(entry["task"], entry["id"]): entry for entry in map(json.loads, lines)}


@pytest.mark.slow
def test_two_processes_give_the_single_process_results_and_resume_per_shard(tmp_path):
    model = save_tiny_model("qwen2_vl", tmp_path / "model")
    rows = {
        "count": synthetic_items("count", 5),
        "picture_vocabulary": synthetic_items("picture_vocabulary", 3),
        "memory": synthetic_items("memory", 2),
        "looking_while_listening": synthetic_items("looking_while_listening", 2),
    }
    data = write_devcv_folder(tmp_path / "data", rows)
    single = tmp_path / "single"
    evaluate_devcv(model, data, single, progress=False, **RUN)

    parallel = tmp_path / "parallel"
    parallel.mkdir()
    # A killed run left one answered item in shard 1's log: it is kept, not answered again.
    kept = {**entries(single)[("count", "count_0003")], "resumed": True}
    (parallel / "predictions.shard-1-of-2.jsonl").write_text(json.dumps(kept) + "\n")
    command = [*cpu_launch(2), "-m", "babyvlm.evaluate_metrics.runner"]
    command += ["--model", str(model), "--data", str(data), "--output", str(parallel), "--no-progress"]
    command += ["--max-new-tokens", str(RUN["max_new_tokens"]), "--batch-size", str(RUN["batch_size"])]
    command += ["--max-new-tokens-per-round", str(RUN["max_new_tokens_per_round"])]
    finished = subprocess.run(command, env=offline_cpu_env(), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert re.search(r"answered \d+ items in [\d.]+ s \([\d.]+ items/s, 2 processes\)", finished.stderr)

    assert not list(parallel.glob("predictions.shard-*")), "the shards are folded into predictions.jsonl"
    gathered, expected = entries(parallel), entries(single)
    assert gathered[("count", "count_0003")].get("resumed")
    assert gathered.keys() == expected.keys()
    for key, entry in expected.items():
        if key[0] == "looking_while_listening":
            assert gathered[key]["output"] == [pytest.approx(row, rel=1e-5) for row in entry["output"]]
        else:
            assert gathered[key]["output"] == entry["output"], key
    assert (parallel / "results.json").read_text() == (single / "results.json").read_text()
    assert "| Object Counting | **acc** |" in finished.stdout  # the table, printed once by rank 0
    assert finished.stdout.count("| Object Counting | **acc** |") == 1


def test_processes_launched_but_not_connected_stop_the_run(monkeypatch):
    # What each process saw before: `accelerate launch --multi_gpu` on CPUs without cpu=True, one process apiece.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(runner, "PartialState", lambda cpu: SimpleNamespace(num_processes=1))
    with pytest.raises(runner.DataParallelLaunchError, match="one of 2 processes .* connected to 1"):
        runner.process_state()
