"""A dataset read for evaluation or training is read whole: a numbered shard set missing a member is an error naming
the files, and a parquet changed under the same folder is read anew (not from the datasets cache)."""

import doctest

import datasets
import pytest
import yaml
from babyvlm.evaluate_metrics.data import load_task_split

from babyvlm import shards
from babyvlm.shards import IncompleteShardsError
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder
from babyvlm.training.data import load_mixture


def test_module_examples():
    assert doctest.testmod(shards).failed == 0


def write_shards(folder, texts, count=2):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rows = {"text": texts[index::count]}
        datasets.Dataset.from_dict(rows).to_parquet(folder / f"train-{index:05d}-of-{count:05d}.parquet")
    return folder


def test_evaluation_refuses_a_task_missing_a_shard(tmp_path):
    folder = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 2)})
    shard = folder / "count" / "test-00000-of-00001.parquet"
    shard.rename(shard.with_name("test-00001-of-00002.parquet"))  # one of two shards left
    with pytest.raises(IncompleteShardsError, match=r"task 'count', split 'test': 1 of the 2 shards of .*missing "):
        load_task_split(folder, "count", "test")


def test_training_refuses_a_folder_missing_a_shard(tmp_path):
    folder = write_shards(tmp_path / "corpus" / "data", [f"u{index}" for index in range(6)], count=3)
    (folder / "train-00001-of-00003.parquet").unlink()
    with pytest.raises(IncompleteShardsError, match=r"\(train-00001-of-00003\.parquet\)"):
        load_mixture([str(tmp_path / "corpus")], keep_columns=("text",))


def test_training_refuses_fewer_rows_than_the_card_declares(tmp_path):
    folder = tmp_path / "corpus"
    write_shards(folder / "data", ["a", "b", "c", "d"], count=1)
    card = {
        "dataset_info": {
            "features": [{"name": "text", "dtype": "string"}],
            "splits": [{"name": "train", "num_examples": 5}],
        }
    }
    (folder / "README.md").write_text("---\n" + yaml.safe_dump(card) + "---\n")
    with pytest.raises(IncompleteShardsError, match="4 rows, but the dataset card declares 5"):
        load_mixture([str(folder)], keep_columns=("text",))


def test_training_sees_a_parquet_changed_under_the_same_folder(tmp_path):
    """With a README `configs` block, 🤗 datasets alone would return the cached old rows."""
    folder = tmp_path / "corpus"
    configs = {"configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "*.parquet"}]}]}
    (folder).mkdir()
    (folder / "README.md").write_text("---\n" + yaml.safe_dump(configs) + "---\n")
    write_shards(folder, ["old"], count=1)
    assert load_mixture([str(folder)], keep_columns=("text",))["text"] == ["old"]
    write_shards(folder, ["new", "rows"], count=1)
    assert load_mixture([str(folder)], keep_columns=("text",))["text"] == ["new", "rows"]
