"""Both model kinds (a local checkpoint, an OpenAI-compatible endpoint) implement the one declared interface, and a
runner option that a kind cannot honour is refused with one line before anything is loaded."""

import hashlib
import json

import pytest
from babyvlm.evaluate_metrics.answering import AnsweringModel, Conversation, Dialogues, UnsupportedOptionError
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.runner import evaluate_devcv, main

from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

openai = pytest.importorskip("openai")
from babyvlm.evaluate_metrics.api import APIChatModel, api_messages  # noqa: E402  (needs the `api` extra)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> ChatModel:
    return ChatModel.from_pretrained(save_tiny_llava(tmp_path_factory.mktemp("tiny-llava")), max_new_tokens=3)


@pytest.fixture
def endpoint(tmp_path) -> APIChatModel:
    return APIChatModel("served-model", base_url="http://127.0.0.1:9/v1", cache_dir=tmp_path / "cache", max_retries=0)


def test_a_local_checkpoint_and_an_endpoint_implement_the_answering_interface(local, endpoint):
    for model in (local, endpoint):
        assert isinstance(model, AnsweringModel)
        assert isinstance(model.start_dialogues(), Dialogues)
        assert set(model.describe()) == {"model", "dtype", "truncation", "context_limit"}
    assert local.describe()["dtype"] == "float32" and local.usage() is None
    assert endpoint.describe() == {
        "model": "openai:served-model @ http://127.0.0.1:9/v1",
        "dtype": None,
        "truncation": None,
        "context_limit": None,
    }
    assert endpoint.usage()["requests"] == 0
    assert (local.uses_api_system_prompts, endpoint.uses_api_system_prompts) == (False, True)


def test_an_endpoint_streams_its_answer_whole(endpoint):
    conversation = Conversation([{"role": "user", "content": [{"type": "text", "text": "how many cups?"}]}])
    request = {"model": endpoint.name, "messages": api_messages(conversation), "max_tokens": 16, "temperature": 0}
    key = hashlib.sha256(json.dumps([endpoint.base_url, request], sort_keys=True).encode()).hexdigest()
    endpoint.cache.put(key, {"choices": [{"message": {"content": " three cups "}}]})  # answered before: no request
    assert list(endpoint.stream(conversation)) == endpoint.generate([conversation]) == ["three cups"]


def test_a_local_model_streams_the_answer_it_generates(local):
    row = synthetic_items("count", 1)[0]
    conversation = Conversation(row["messages"][:1], row["images"])
    streamed = list(local.stream(conversation))
    assert streamed and streamed[-1] == local.generate([conversation])[0]


@pytest.mark.parametrize(
    ("argv", "refusal"),
    [
        (["--model", "openai:served", "--max-batch-tokens", "4000"], "max_batch_tokens does not apply to an API model"),
        (["--model", "openai:served", "--device", "cpu"], "device does not apply to an API model"),
        (["--model", "openai:served", "--dtype", "bf16"], "dtype does not apply to an API model"),
        (["--model", "openai:served", "--attn-implementation", "sdpa"], "attn_implementation does not apply to an API"),
        (["--model", "{model}", "--base-url", "http://127.0.0.1:9/v1"], "base_url does not apply to a local model"),
        (["--model", "{model}", "--concurrency", "2"], "concurrency does not apply to a local model"),
    ],
)
def test_an_option_a_model_kind_cannot_apply_is_refused_in_one_line(tmp_path, capsys, argv, refusal):
    """Refused before the model or the data is read: the model folder does not even exist."""
    argv = [arg.format(model=tmp_path / "no-model") for arg in argv]
    assert main([*argv, "--data", str(tmp_path / "no-data"), "--output", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert refusal in error and error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_a_loaded_model_refuses_loading_options_and_other_limits(tmp_path, local):
    data = write_devcv_folder(tmp_path / "data", {"count": synthetic_items("count", 2)})
    for options in ({"device": "cpu"}, {"attn_implementation": "eager"}, {"max_new_tokens": 7}):
        with pytest.raises(UnsupportedOptionError, match=f"{next(iter(options))} applies when the runner loads"):
            evaluate_devcv(local, data, tmp_path / "out", progress=False, **options)
    summary = evaluate_devcv(local, data, tmp_path / "out", max_new_tokens=3, progress=False)  # its own limit
    assert summary["tasks"]["baby_count"]["n"] == 2
