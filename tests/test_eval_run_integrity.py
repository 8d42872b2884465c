"""An evaluation folder has one writer and one run: a second evaluation into it is refused naming the holder, and
a resumed run is tied to the content it read (weights, dataset shards), not to their paths."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from babyvlm.evaluate_metrics import runner
from babyvlm.evaluate_metrics.predictions import PREDICTIONS_FILE, RunMismatchError
from babyvlm.evaluate_metrics.runner import evaluate_devcv
from safetensors.torch import load_file, save_file
from test_locking import HOLDER

from babyvlm import digests, locking
from babyvlm.digests import file_digests
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder

RUN = {"tasks": ["count"], "limit": 2, "device": "cpu", "progress": False, "max_new_tokens": 2}


@pytest.fixture
def model_dir(tiny_model_dir, tmp_path):
    """A copy of the tiny model, free to be changed in place."""
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


@pytest.fixture
def data_dir(tmp_path):
    return write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 3)})


def test_a_second_evaluation_into_a_locked_folder_is_refused_naming_the_holder(model_dir, data_dir, tmp_path, capsys):
    output = tmp_path / "eval"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(output), locking.__file__], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        status = runner.main(
            ["--model", str(model_dir), "--data", str(data_dir), "--output", str(output), "--no-progress"]
        )
    finally:
        holder.kill()
        holder.wait()
    assert status == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"babyvlm eval: error: {output} is being written by pid {holder.pid} on ")
    assert not output.exists()


def test_weights_replaced_in_place_refuse_the_resume_until_restart(model_dir, data_dir, tmp_path):
    output = tmp_path / "eval"
    evaluate_devcv(model_dir, data_dir, output, **RUN)
    weights = load_file(model_dir / "model.safetensors")
    save_file({name: tensor + 0.01 for name, tensor in weights.items()}, model_dir / "model.safetensors")
    with pytest.raises(RunMismatchError, match=r"different content: model/model\.safetensors\); pass --restart"):
        evaluate_devcv(model_dir, data_dir, output, **RUN)
    evaluate_devcv(model_dir, data_dir, output, restart=True, **RUN)
    assert len((output / PREDICTIONS_FILE).read_text().splitlines()) == 2  # the new run's answers only


def test_a_dataset_rebuilt_in_the_same_folder_refuses_the_resume_naming_the_shard(model_dir, data_dir, tmp_path):
    output = tmp_path / "eval"
    evaluate_devcv(model_dir, data_dir, output, **RUN)
    write_devcv_folder(data_dir, {"count": synthetic_items("count", 3, seed=1)})
    with pytest.raises(RunMismatchError, match=r"different content: data/count/test-00000-of-00001\.parquet\)"):
        evaluate_devcv(model_dir, data_dir, output, **RUN)
    content = json.loads((output / "run.json").read_text())["content"]
    assert set(content) >= {"model/model.safetensors", "model/config.json", "data/count/test-00000-of-00001.parquet"}


def test_a_run_is_tied_to_content_so_the_same_model_and_data_moved_elsewhere_resume_it(model_dir, data_dir, tmp_path):
    output = tmp_path / "eval"
    evaluate_devcv(model_dir, data_dir, output, **RUN)
    answers = (output / PREDICTIONS_FILE).read_text()
    moved_model, moved_data = shutil.move(model_dir, tmp_path / "moved-model"), shutil.move(data_dir, tmp_path / "d2")
    evaluate_devcv(moved_model, moved_data, output, **{**RUN, "limit": 3})
    lines = (output / PREDICTIONS_FILE).read_text().splitlines()
    assert len(lines) == 3 and "\n".join(lines[:2]) + "\n" == answers  # the two finished items kept, one added
    assert json.loads((output / "run.json").read_text())["model"] == str(moved_model)
    with pytest.raises(RunMismatchError, match=r"different max_new_tokens"):
        evaluate_devcv(moved_model, moved_data, output, **{**RUN, "max_new_tokens": 3})


def test_digests_are_cached_by_file_identity_and_a_rewrite_is_rehashed(tmp_path, monkeypatch):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"first")
    cache = tmp_path / "cache.json"
    first = file_digests({"w": path}, cache)
    hashed = []
    real = digests.hashlib.file_digest
    monkeypatch.setattr(digests.hashlib, "file_digest", lambda *args: hashed.append(1) or real(*args))
    assert file_digests({"w": path}, cache) == first and not hashed  # unchanged: not read again
    stat = path.stat()
    path.write_bytes(b"other")  # same size, and the modification time set back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert file_digests({"w": path}, cache) != first and hashed
