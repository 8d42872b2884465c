"""The plugin's DevCV tasks with stock lmms-eval 0.7.3 models (tiny random checkpoints): images the way each
model expects them, Memory answered round by round (multi-round, or replayed through `generate_until`), and a model
that cannot run a task (no `generate_until_multi_round`, no working `loglikelihood`) or a response that cannot be
scored failing lmms-eval's run instead of its exit status 0."""

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


def memory_doc(task_folder) -> dict:
    return json.loads((task_folder / "data" / "baby_memory.jsonl").read_text().splitlines()[0])


def assert_dialogue_scored(task_folder, output, results: dict, key: str) -> None:
    """The dialogue got one answer per round (not a string split into characters), scored as babyvlm scores it."""
    (dialogue,) = samples(output, key)
    # lmms-eval logs the model's per-round answers as the repr of a tuple (multi-round) or as the JSON-encoded list
    # the replay variant hands back.
    response = dialogue["filtered_resps"]
    answers = ast.literal_eval(response[0] if isinstance(response, list) else response)
    doc = memory_doc(task_folder)
    assert len(answers) == len(doc["answer"]) == 15 and all(isinstance(answer, str) for answer in answers)
    expected = score_item("memory", list(answers), doc["answer"], doc["option_keys"]).scores
    assert {metric: results[key][f"{metric},none"] for metric in expected} == expected


# lmms-eval's Qwen2.5-VL scales every image to at least 256 patches of 28 pixels by default.
QWEN2_5_PIXELS = ",min_pixels=784,max_pixels=3136"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "family", "model_args", "tasks", "extra"),
    [
        # Qwen2-VL strips <image> from the text and puts the images first; its rounds carry the dialogue so far.
        pytest.param("qwen2_vl", "qwen2_vl", "", "baby_pv,baby_count,baby_memory", (), id="qwen2_vl"),
        # lmms-eval resolves qwen2_5_vl to its chat model (image blocks), whose multi-round method is the simple
        # model's and fails on chat requests: the chat model answers Memory through the replay variant ...
        pytest.param(
            "qwen2_5_vl", "qwen2_5_vl", QWEN2_5_PIXELS, "baby_pv,baby_count,baby_memory_replay", (), id="qwen2_5_vl"
        ),
        # ... and the simple model round by round.
        pytest.param(
            "qwen2_5_vl", "qwen2_5_vl", QWEN2_5_PIXELS, "baby_memory", ("--force_simple",), id="qwen2_5_vl-simple"
        ),
        # lmms-eval resolves llava_hf to its chat model, which reads doc_to_messages (images as blocks, no literal
        # <image> in the text, which the processor would refuse beside them); it loads Llava and LLaVA-OneVision
        # checkpoints alike. It has no multi-round method, so it answers Memory through the replay variant.
        pytest.param("llava_hf", "llava", "", "baby_pv,baby_count,baby_memory_replay", (), id="llava_hf-llava"),
        pytest.param(
            "llava_hf", "llava_onevision", "", "baby_pv,baby_count,baby_memory_replay", (), id="llava_hf-onevision"
        ),
    ],
)
def test_a_stock_model_answers_the_generation_tasks_and_memory(
    task_folder, tmp_path, model, family, model_args, tasks, extra
):
    checkpoint = save_tiny_model(family, tmp_path / family)
    output = tmp_path / "out"
    results = run_lmms_eval(task_folder, output, model, f"pretrained={checkpoint}{model_args}", tasks, *extra)
    keys = tasks.split(",")
    assert set(results) >= set(keys)
    if "baby_pv" in keys:
        assert len(samples(output, "baby_pv")) == ITEMS["picture_vocabulary"]
    assert_dialogue_scored(task_folder, output, results, keys[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "family", "task", "extra", "reason"),
    [
        # Stock llava_hf raises NotImplementedError for multi-round generation.
        ("llava_hf", "llava", "baby_memory", (), "NotImplementedError in generate_until_multi_round"),
        # Stock qwen2_vl raises NotImplementedError for log-likelihoods.
        ("qwen2_vl", "qwen2_vl", "baby_winoground", (), "NotImplementedError in loglikelihood"),
        # Stock llava_hf's log-likelihood calls the processor with images its prompt has no placeholder for.
        ("llava_hf", "llava", "baby_winoground", ("--force_simple",), "ValueError in loglikelihood"),
        # lmms-eval's chat models cannot take log-likelihood tasks.
        ("llava_hf", "llava", "baby_winoground", (), "AssertionError in construct_requests"),
        # The chat Qwen2.5-VL inherits the simple model's multi-round method, which cannot read chat requests.
        ("qwen2_5_vl", "qwen2_5_vl", "baby_memory", (), "AttributeError in generate_until_multi_round"),
        ("qwen2_5_vl", "qwen2_5_vl", "baby_winoground", ("--force_simple",), "NotImplementedError in loglikelihood"),
    ],
)
def test_a_model_that_cannot_run_a_task_fails_the_run(task_folder, tmp_path, model, family, task, extra, reason):
    # lmms-eval 0.7.3 would log the error and exit 0 with no results (which the leaderboard's collation reads as 0).
    checkpoint = save_tiny_model(family, tmp_path / family)
    with pytest.raises(SystemExit) as exit_info:
        run_lmms_eval(task_folder, tmp_path / "out", model, f"pretrained={checkpoint}", task, *extra)
    message = str(exit_info.value.code)
    assert message.startswith("lmms-eval run with DevCV tasks failed") and reason in message
    assert ("replay variant" if task == "baby_memory" else "devcv_generation") in message
    assert not list((tmp_path / "out").rglob("*_results.json"))


def test_stateless_models_get_the_dialogue_so_far_as_a_transcript(task_folder):
    doc = memory_doc(task_folder)
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


def test_the_replay_variant_hands_back_every_answer_after_the_last_round(task_folder):
    doc = memory_doc(task_folder)
    answers = [f"({letter})" for letter in "AB" * 7 + "A"]
    replay = {"dialogue": "replay"}
    assert dialogue_turn(doc, replay) == dialogue_turn(doc, {"dialogue": "transcript"})
    images, text, done, outputs, _ = dialogue_turn(doc, replay, previous_output=answers[:14], round_idx=14)
    assert not done and len(images) == len(doc["image"]) and text.count("Answer: ") == 14
    # lmms-eval's agentic loop takes the last output as the doc's response.
    assert dialogue_turn(doc, replay, previous_output=answers, round_idx=15) == (
        None,
        None,
        True,
        [json.dumps(answers)],
        None,
    )
    assert dialogue_turn(doc, {"dialogue": "transcript"}, previous_output=answers, round_idx=15)[3] == answers


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
