"""babyvlm runs a model as the official harness does by default (lmms-eval's stop strings, the original
precision and context cut), each deviation a named option recorded in the run."""

import json
from types import SimpleNamespace

import pytest
from babyvlm.evaluate_metrics.devcv.tasks import canonical_task
from babyvlm.evaluate_metrics.harness import STOP_STRINGS
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.lmms_eval_plugin.task_folder import task_yaml
from babyvlm.evaluate_metrics.protocol import run_items
from babyvlm.evaluate_metrics.runner import evaluate_devcv

from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

# What a chatty model says: lmms-eval's `until=["\n\n"]` keeps the text before the blank line.
SCRIPTED = {" B\n\nA": "B", "left\n\nright ": "left", " \n\n3": "", "7": "7"}


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("llava"))


def scripted_chat(llava_dir, monkeypatch, texts) -> ChatModel:
    """A tiny model whose decoded answers are ``texts`` (one per row, in turn), whatever it generated."""
    chat = ChatModel.from_pretrained(llava_dir, max_new_tokens=1)
    answers = iter(texts)
    monkeypatch.setattr(chat.processor, "batch_decode", lambda tokens, **_: [next(answers) for _ in range(len(tokens))])
    return chat


def test_single_turn_answers_keep_the_text_before_the_stop_string_then_strip(llava_dir, monkeypatch):
    chat = scripted_chat(llava_dir, monkeypatch, list(SCRIPTED))
    outputs = run_items(chat, canonical_task("count"), synthetic_items("count", len(SCRIPTED)))
    assert outputs == list(SCRIPTED.values())


def test_without_stop_strings_the_whole_answer_is_kept(llava_dir, monkeypatch):
    chat = scripted_chat(llava_dir, monkeypatch, list(SCRIPTED))
    outputs = run_items(chat, canonical_task("count"), synthetic_items("count", len(SCRIPTED)), stop_strings=())
    assert outputs == [text.strip() for text in SCRIPTED]


def test_memory_rounds_apply_no_stop_string_as_the_reference_wrapper(llava_dir, monkeypatch):
    chat = scripted_chat(llava_dir, monkeypatch, ["A\n\nB"] * 15)
    (answers,) = run_items(chat, canonical_task("memory"), synthetic_items("memory", 1))
    assert answers == ["A\n\nB"] * 15


def test_the_run_cuts_by_default_and_records_its_stop_strings(tmp_path, llava_dir, monkeypatch):
    data = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 2)})
    for stop_strings, expected in ((STOP_STRINGS, ["3", "5"]), ((), ["3\n\n4", "5\n\n6"])):
        chat = scripted_chat(llava_dir, monkeypatch, ["3\n\n4", "5\n\n6"])
        output = tmp_path / f"run-{len(stop_strings)}"
        kwargs = {} if stop_strings else {"stop_strings": ()}
        evaluate_devcv(chat, data, output, progress=False, **kwargs)
        entries = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
        assert [entry["output"] for entry in entries] == expected
        assert json.loads((output / "run.json").read_text())["stop_strings"] == list(stop_strings)


def test_plugin_tasks_name_the_harness_stop_strings():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    for name in ("count", "memory"):
        config = yaml.load(task_yaml(canonical_task(name), "docs.jsonl", "test"), Loader=Loader)
        assert config["generation_kwargs"]["until"] == ["\n\n"]


def _request(*args):
    return SimpleNamespace(args=args)


def test_plugin_model_cuts_at_the_requests_until(llava_dir, monkeypatch):
    pytest.importorskip("lmms_eval")
    from babyvlm.evaluate_metrics.lmms_eval_plugin.model import BabyVLM
    from lmms_eval.api.model import lmms

    model = BabyVLM.__new__(BabyVLM)
    lmms.__init__(model)
    model.chat = scripted_chat(llava_dir, monkeypatch, [" B\n\nA", "B\n\nA"])
    model.batch_size, model.use_system_prompt = 1, False
    doc = synthetic_items("count", 1)[0]
    model.task_dict = {"baby_count": {"test": [doc]}}
    requests = [
        _request(
            "How many?", {"until": ["\n\n"], "max_new_tokens": 1}, lambda d: [d["images"][0]], 0, "baby_count", "test"
        ),
        _request("How many?", {"until": [], "max_new_tokens": 1}, lambda d: [d["images"][0]], 0, "baby_count", "test"),
    ]
    assert model.generate_until(requests) == ["B", "B\n\nA"]


def test_written_model_py_cuts_then_strips(monkeypatch):
    pytest.importorskip("lmms_eval")
    from babyvlm.evaluate_metrics.submission.wrapper import DevCVSubmission

    wrapper = DevCVSubmission.__new__(DevCVSubmission)
    wrapper.batch_size_per_gpu = 4
    doc = synthetic_items("count", 1)[0]
    wrapper.task_dict = {"baby_count": {"test": [doc]}}
    outputs = iter([[" \n\nB", " B \n\nA"]])
    monkeypatch.setattr(wrapper, "_generate", lambda conversations, max_new_tokens: next(outputs))
    gen_kwargs = {"until": ["\n\n"], "max_new_tokens": 4}
    visual = lambda d: [d["images"][0]]  # noqa: E731
    requests = [_request("<image> How many?", gen_kwargs, visual, 0, "baby_count", "test") for _ in range(2)]
    assert wrapper.generate_until(requests) == ["", "B"]
