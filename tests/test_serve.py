"""`babyvlm serve` puts the project's own model behind an OpenAI-compatible endpoint, and `babyvlm eval --model
openai:NAME` against it gives the answers of a local run."""

import json
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

import uvicorn  # noqa: E402
from babyvlm.evaluate_metrics.inference import ChatModel  # noqa: E402
from babyvlm.evaluate_metrics.runner import evaluate_devcv  # noqa: E402
from babyvlm.evaluate_metrics.serve import create_app  # noqa: E402

from babyvlm.testing.devcv import synthetic_items, write_devcv_folder  # noqa: E402

LIMITS = {"max_new_tokens": 3, "max_new_tokens_per_round": 3}


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    """A tiny BabyLLaVA-V2 checkpoint served on a free local port; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chat = ChatModel.from_pretrained(tiny_model_dir, max_new_tokens=3)
    server = uvicorn.Server(uvicorn.Config(create_app(chat, "babyllava-tiny"), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def _outputs(folder) -> dict:
    entries = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    return {(entry["task"], entry["id"]): entry["output"] for entry in entries}


def test_eval_against_the_served_babyllava_v2_answers_as_the_local_run(tmp_path, tiny_model_dir, served):
    rows = {"count": synthetic_items("count", 3), "memory": synthetic_items("memory", 1)}
    data = write_devcv_folder(tmp_path / "devcv", rows)
    local = tmp_path / "local"
    evaluate_devcv(tiny_model_dir, data, local, progress=False, **LIMITS)
    remote = tmp_path / "remote"
    api = {"base_url": served}
    summary = evaluate_devcv(
        "openai:babyllava-tiny", data, remote, use_system_prompt=False, api=api, progress=False, **LIMITS
    )
    assert _outputs(remote) == _outputs(local)
    assert summary["api_usage"]["requests"] == 3 + 15  # one per single-turn item, one per Memory round


def test_serving_a_model_folder_that_does_not_exist_is_one_line_before_any_server_starts(tmp_path, capsys):
    from babyvlm.evaluate_metrics import serve

    missing = tmp_path / "nope"
    assert serve.main([str(missing)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"babyvlm serve: error: model folder {missing} does not exist")
