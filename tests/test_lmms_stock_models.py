"""The plugin's DevCV tasks with stock lmms-eval 0.7.3 models (tiny random checkpoints): images the way each
model expects them, Memory answered round by round, LWL through `loglikelihood`, unscorable responses fatal."""

import ast
import json
import sys

import pytest

lmms_eval = pytest.importorskip("lmms_eval")
pytest.importorskip("qwen_vl_utils")
pytest.importorskip("decord")  # imported by lmms-eval's qwen2_vl

from babyvlm.evaluate_metrics.devcv.items import score_item  # noqa: E402
from babyvlm.evaluate_metrics.lmms_eval_plugin.hooks import dialogue_turn  # noqa: E402
from babyvlm.evaluate_metrics.lmms_eval_plugin.task_folder import write_task_folder  # noqa: E402

from babyvlm.testing.devcv import synthetic_items, write_devcv_folder  # noqa: E402
from babyvlm.testing.models import save_tiny_model  # noqa: E402

ITEMS = {"picture_vocabulary": 2, "count": 2, "memory": 1, "looking_while_listening": 1}


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("stock")
    data = write_devcv_folder(root / "devcv", {task: synthetic_items(task, n) for task, n in ITEMS.items()})
    write_task_folder(data, root / "tasks", max_new_tokens=3, max_new_tokens_per_round=3)
    return root / "tasks"


def run_lmms_eval(task_folder, output, model: str, model_args: str, tasks: str, *extra: str) -> dict:
    from lmms_eval.__main__ import cli_evaluate

    argv = ["lmms-eval", "--model", model, "--model_args", f"{model_args},device_map=cpu", "--device", "cpu"]
    argv += ["--include_path", str(task_folder), "--tasks", tasks, "--batch_size", "1", "--output_path", str(output)]
    argv += ["--log_samples", "--verbosity", "WARNING", *extra]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", argv)
        cli_evaluate()
    results = list(output.rglob("*_results.json"))
    assert results, f"lmms-eval wrote no results for {model} on {tasks}"
    return json.loads(results[0].read_text())["results"]


def samples(output, key: str) -> list[dict]:
    lines = next(output.rglob(f"*_samples_{key}.jsonl")).read_text().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda sample: sample["doc_id"])


@pytest.mark.slow
def test_qwen2_vl_answers_generation_tasks_and_memory(task_folder, tmp_path):
    model = save_tiny_model("qwen2_vl", tmp_path / "qwen2-vl")
    output = tmp_path / "out"
    results = run_lmms_eval(task_folder, output, "qwen2_vl", f"pretrained={model}", "baby_pv,baby_count,baby_memory")
    assert set(results) >= {"baby_pv", "baby_count", "baby_memory"}
    (dialogue,) = samples(output, "baby_memory")
    # lmms-eval logs the model's tuple of per-round answers as its repr.
    response = dialogue["filtered_resps"]
    answers = ast.literal_eval(response[0] if isinstance(response, list) else response)
    assert len(answers) == 15  # one answer per round, not a string split into characters
    doc = [json.loads(line) for line in (task_folder / "data" / "baby_memory.jsonl").read_text().splitlines()][0]
    expected = score_item("memory", list(answers), doc["answer"], doc["option_keys"]).scores
    assert {metric: results["baby_memory"][f"{metric},none"] for metric in expected} == expected


@pytest.mark.slow
def test_llava_hf_chat_answers_from_image_blocks(task_folder, tmp_path):
    # lmms-eval resolves llava_hf to its chat model, which reads doc_to_messages (images as blocks, no literal
    # <image> in the text). Its log-likelihood path calls the processor with <image> and no images, which
    # transformers 5 refuses: stock llava_hf cannot score LWL with the pinned versions (see the plugin README).
    model = save_tiny_model("llava", tmp_path / "llava")
    output = tmp_path / "chat"
    results = run_lmms_eval(task_folder, output, "llava_hf", f"pretrained={model}", "baby_pv,baby_count")
    # A literal <image> left in the text beside the image blocks would make the processor refuse the prompt.
    assert set(results) >= {"baby_pv", "baby_count"}
    assert len(samples(output, "baby_pv")) == ITEMS["picture_vocabulary"]


def test_stateless_models_get_the_dialogue_so_far_as_a_transcript(task_folder):
    doc = [json.loads(line) for line in (task_folder / "data" / "baby_memory.jsonl").read_text().splitlines()][0]
    transcript = {"dialogue": "transcript"}
    assert dialogue_turn(doc, transcript) == "Touch the new image. (A) <image 1>"
    images, text, done, previous, _ = dialogue_turn(doc, transcript, previous_output=["A", "B"], round_idx=2)
    assert not done and previous == ["A", "B"] and len(images) == 5
    assert text.splitlines() == [
        "Touch the new image. (A) <image 1>",
        "Answer: A",
        "Let's try more. Touch the new image. (A) <image 2> (B) <image 3>",
        "Answer: B",
        "Let's try more. Touch the new image. (A) <image 4> (B) <image 5>",
    ]
    images, text, *_ = dialogue_turn(doc, {"dialogue": "turns"}, previous_output=["A", "B"], round_idx=2)
    assert len(images) == 2 and text == "Let's try more. Touch the new image. (A) <image> (B) <image>"


@pytest.mark.slow
def test_an_unscorable_dialogue_response_ends_the_run_with_an_error(task_folder, tmp_path):
    from lmms_eval.api.model import lmms
    from lmms_eval.models import MODEL_REGISTRY_V2
    from lmms_eval.models.registry_v2 import ModelManifest

    class OneStringPerDialogue(lmms):
        """Answers a whole dialogue with one string, as a model without multi-round support might."""

        def __init__(self, **kwargs):
            super().__init__()

        def generate_until_multi_round(self, requests):
            return ["AB" * 7 + "A" for _ in requests]

        generate_until = loglikelihood = None

    sys.modules[__name__].OneStringPerDialogue = OneStringPerDialogue
    MODEL_REGISTRY_V2.register_manifest(
        ModelManifest(model_id="one_string", simple_class_path=f"{__name__}.OneStringPerDialogue"), overwrite=True
    )
    with pytest.raises(SystemExit) as exit_info:
        run_lmms_eval(task_folder, tmp_path / "out", "one_string", "pretrained=none", "baby_memory")
    assert exit_info.value.code != 0
    assert "a dialogue's response must be one answer per round" in str(exit_info.value.code)
