"""The lmms-eval plugin, run by the released lmms-eval CLI (`--include_path`), scores like `babyvlm eval`."""

import json
import sys

import numpy as np
import pytest

lmms_eval = pytest.importorskip("lmms_eval")

from babyvlm.evaluate_metrics.data import MissingTaskError  # noqa: E402
from babyvlm.evaluate_metrics.lmms_eval_plugin import MODEL_ID, manifests  # noqa: E402
from babyvlm.evaluate_metrics.lmms_eval_plugin.model import BabyVLM  # noqa: E402
from babyvlm.evaluate_metrics.lmms_eval_plugin.task_folder import write_task_folder  # noqa: E402
from babyvlm.evaluate_metrics.runner import evaluate_devcv  # noqa: E402

from babyvlm.testing.devcv import (  # noqa: E402
    assert_lmms_eval_scores_equal,
    save_tiny_llava,
    synthetic_items,
    write_devcv_folder,
)

ITEMS = {"picture_vocabulary": 3, "count": 3, "memory": 1, "looking_while_listening": 2}
HARNESS_KEYS = ["baby_pv", "baby_count", "baby_memory", "baby_winoground"]
MAX_NEW_TOKENS = 3
CONTEXT = 4096


@pytest.fixture(scope="module")
def rows():
    return {task: synthetic_items(task, n) for task, n in ITEMS.items()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, rows):
    root = tmp_path_factory.mktemp("lmms")
    model = save_tiny_llava(root / "model")
    # A context limit, as released tokenizers name one (longer than any prompt here: nothing is cut).
    tokenizer_config = model / "tokenizer_config.json"
    tokenizer_config.write_text(json.dumps(json.loads(tokenizer_config.read_text()) | {"model_max_length": CONTEXT}))
    data = write_devcv_folder(root / "devcv", rows)
    write_task_folder(data, root / "tasks", max_new_tokens=MAX_NEW_TOKENS, max_new_tokens_per_round=MAX_NEW_TOKENS)
    return root, model, data


@pytest.fixture(scope="module")
def lmms_output(setup):
    """The released lmms-eval CLI on the generated task folder, with the model registered as its entry point would."""
    from lmms_eval.__main__ import cli_evaluate
    from lmms_eval.models import MODEL_REGISTRY_V2

    root, model, _ = setup
    for manifest in manifests():
        MODEL_REGISTRY_V2.register_manifest(manifest, overwrite=True)
    argv = [
        "lmms-eval",
        "--model",
        MODEL_ID,
        "--model_args",
        f"pretrained={model},max_new_tokens={MAX_NEW_TOKENS}",
        "--batch_size",
        "2",
        "--include_path",
        str(root / "tasks"),
        "--tasks",
        "devcv",
        "--output_path",
        str(root / "lmms-out"),
        "--log_samples",
        "--verbosity",
        "WARNING",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        cli_evaluate()
    return root / "lmms-out"


@pytest.fixture(scope="module")
def runner_output(setup):
    root, model, data = setup
    output = root / "runner-out"
    limits = {"max_new_tokens": MAX_NEW_TOKENS, "max_new_tokens_per_round": MAX_NEW_TOKENS}
    evaluate_devcv(model, data, output, batch_size=3, progress=False, **limits)
    return output


@pytest.mark.slow
def test_lmms_eval_scores_equal_the_runners(lmms_output, runner_output):
    assert_lmms_eval_scores_equal(lmms_output, runner_output, HARNESS_KEYS)


@pytest.mark.slow
def test_lmms_eval_answers_equal_the_runners(lmms_output, runner_output, rows):
    entries = {}
    for line in (runner_output / "predictions.jsonl").read_text().splitlines():
        entry = json.loads(line)
        entries[entry["task"], entry["id"]] = entry["output"]
    # lmms-eval numbers docs in dataset order.
    runner_outputs = {task: [entries[task, row["id"]] for row in task_rows] for task, task_rows in rows.items()}
    samples = {
        key: [json.loads(line) for line in next(lmms_output.rglob(f"*_samples_{key}.jsonl")).read_text().splitlines()]
        for key in HARNESS_KEYS
    }
    by_doc = {key: sorted(rows, key=lambda row: row["doc_id"]) for key, rows in samples.items()}
    assert [row["filtered_resps"] for row in by_doc["baby_pv"]] == runner_outputs["picture_vocabulary"]
    assert [row["filtered_resps"] for row in by_doc["baby_count"]] == runner_outputs["count"]
    assert [row["filtered_resps"] for row in by_doc["baby_memory"]] == runner_outputs["memory"]
    # One lmms-eval doc per (LWL item, image), holding that image's row of the loss matrix. Losses
    # of differently shaped batches agree to float32 rounding, not bit for bit.
    lwl_rows = [row["group_score"]["losses"] for row in by_doc["baby_winoground"]]
    lwl_matrices = [lwl_rows[2 * k : 2 * k + 2] for k in range(ITEMS["looking_while_listening"])]
    np.testing.assert_allclose(lwl_matrices, runner_outputs["looking_while_listening"], rtol=1e-5)


@pytest.mark.slow
def test_lmms_eval_results_file_records_what_the_model_args_resolved_to(lmms_output, setup):
    _, model, _ = setup
    (results_file,) = lmms_output.rglob("*_results.json")
    config = json.loads(results_file.read_text())["config"]
    assert config["model_args"] == f"pretrained={model},max_new_tokens={MAX_NEW_TOKENS}"  # as given
    resolved = config["resolved_model_args"]
    # The official defaults on a CPU: float32, prompts cut at the tokenizer's model_max_length.
    assert resolved["dtype"] == "float32" and resolved["truncation"] == "model_max_length"
    assert resolved["context_limit"] == CONTEXT
    assert resolved["max_new_tokens"] == MAX_NEW_TOKENS and resolved["batch_size"] == 2
    # lmms-eval's stop strings cut single-turn answers; Memory's rounds are stripped only.
    assert resolved["stop_strings"] == {"baby_count": ["\n\n"], "baby_memory": [], "baby_pv": ["\n\n"]}
    assert config["truncated_prompts"] == 0


def test_results_of_another_models_run_are_left_as_lmms_eval_wrote_them(setup, tmp_path):
    from lmms_eval.loggers.evaluation_tracker import EvaluationTracker

    _, model, _ = setup
    loaded = BabyVLM(str(model), max_new_tokens=MAX_NEW_TOKENS)  # a babyvlm model, alive in this process
    tracker = EvaluationTracker(output_path=str(tmp_path))
    tracker.general_config_tracker.log_experiment_args("other", "pretrained=other", None, None, False)
    config = {"model": "other", "model_backend": "lmms_eval.models.simple.other.Other (simple)"}
    tracker.save_results_aggregated({"results": {}, "config": dict(config)}, None, "now")
    (written,) = tmp_path.rglob("*_results.json")
    assert json.loads(written.read_text())["config"] == config
    assert "resolved_model_args" in loaded.resolved_settings()


def test_manifest_resolves_to_the_wrapper():
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    registry = ModelRegistryV2()
    for manifest in manifests():
        registry.register_manifest(manifest)
    assert registry.get_model_class(MODEL_ID) is BabyVLM
    assert registry.get_model_class("babyllava_v2") is BabyVLM


def test_task_folder(setup, tmp_path):
    from lmms_eval.utils import load_yaml_config

    root, _, data = setup
    assert sorted(path.name for path in (root / "tasks").glob("*.yaml")) == sorted(
        [f"{key}.yaml" for key in HARNESS_KEYS]
        + ["baby_memory_replay.yaml", "devcv.yaml", "devcv_generation.yaml", "devcv_replay.yaml"]
    )
    replay = load_yaml_config(str(root / "tasks" / "devcv_replay.yaml"))
    assert replay["task"] == ["baby_pv", "baby_count", "baby_memory_replay"]
    memory = load_yaml_config(str(root / "tasks" / "baby_memory.yaml"))
    assert memory["output_type"] == "generate_until_multi_round" and callable(memory["doc_to_text"])
    assert memory["dataset_kwargs"]["data_files"] == {
        "test": str(root.resolve() / "tasks" / "data" / "baby_memory.jsonl")
    }
    (doc,) = [json.loads(line) for line in (root / "tasks" / "data" / "baby_memory.jsonl").read_text().splitlines()]
    # The organisers' layout: released turns, one image path per placeholder in order.
    assert [turn["from"] for turn in doc["conversations"]] == ["human", "gpt"] * 15
    assert sum(turn["value"].count("<image>") for turn in doc["conversations"]) == len(doc["image"]) == 29

    assert write_task_folder(data, tmp_path / "one", tasks=["pv"]) == ["baby_pv"]
    with pytest.raises(MissingTaskError, match="has no task 'localize'"):
        write_task_folder(data, tmp_path / "bad", tasks=["localize"])
    with pytest.raises(MissingTaskError, match="has no split 'train'"):
        write_task_folder(data, tmp_path / "bad", split="train")
    assert not (tmp_path / "bad").exists()
