"""API models: a real OpenAI-compatible server (``transformers serve``) on loopback answers DevCV items
exactly as the same checkpoint run locally; errors are clear and leave no results behind."""

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from babyvlm.evaluate_metrics.answering import Conversation, NotApplicableError
from babyvlm.evaluate_metrics.api import APIChatModel, APIModelError, api_messages
from babyvlm.evaluate_metrics.predictions import PREDICTIONS_FILE
from babyvlm.evaluate_metrics.runner import evaluate_devcv, main
from PIL import Image

from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

pytest.importorskip("openai")
ITEMS = {"picture_vocabulary": 4, "count": 4, "memory": 1, "looking_while_listening": 2}
RUN = {"max_new_tokens": 3, "max_new_tokens_per_round": 3, "progress": False, "batch_size": 4}
REQUESTS = ITEMS["picture_vocabulary"] + ITEMS["count"] + 15 * ITEMS["memory"]  # a request per Memory round


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def devcv_dir(tmp_path_factory):
    rows = {task: synthetic_items(task, count) for task, count in ITEMS.items()}
    return write_devcv_folder(tmp_path_factory.mktemp("devcv"), rows)


@pytest.fixture(scope="module")
def served(llava_dir, tmp_path_factory):
    """``transformers serve`` of the tiny checkpoint on a free loopback port; yields its base URL."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]
    command += ["serve", str(llava_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log.open("w") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start:\n{log.read_text()}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(timeout=30)


def outputs(output_dir) -> dict:
    entries = [json.loads(line) for line in (output_dir / PREDICTIONS_FILE).read_text().splitlines()]
    return {(entry["task"], entry["id"]): entry["output"] for entry in entries}


@pytest.mark.slow
def test_served_checkpoint_answers_like_the_local_run(tmp_path, served, llava_dir, devcv_dir):
    local = evaluate_devcv(llava_dir, devcv_dir, tmp_path / "local", **RUN)
    api_output = tmp_path / "api"
    model = f"openai:{llava_dir}"
    api = evaluate_devcv(model, devcv_dir, api_output, use_system_prompt=False, api={"base_url": served}, **RUN)

    local_outputs = outputs(tmp_path / "local")
    api_outputs = outputs(api_output)
    assert set(api_outputs) == {key for key in local_outputs if key[0] != "looking_while_listening"}
    assert api_outputs == {key: local_outputs[key] for key in api_outputs}
    for key in ("baby_pv", "baby_count", "baby_memory"):
        assert api["tasks"][key]["metrics"] == local["tasks"][key]["metrics"]
    # No log-probabilities of given text from a chat endpoint: LWL is not applicable, never 0.
    assert set(api["not_applicable"]) == {"baby_winoground"}
    assert "baby_winoground" not in json.loads((api_output / "results.json").read_text())["results"]
    report = (api_output / "results.md").read_text()
    assert "Not applicable" in report and "Looking" in report
    assert api["api_usage"]["requests"] == REQUESTS
    assert api["api_usage"]["prompt_tokens"] > 0

    # A rerun (here: the log lost, as if interrupted before writing it) answers from the cache, paying nothing.
    (api_output / PREDICTIONS_FILE).unlink()
    again = evaluate_devcv(model, devcv_dir, api_output, use_system_prompt=False, api={"base_url": served}, **RUN)
    assert again["api_usage"]["requests"] == 0
    assert again["api_usage"]["cached_answers"] == REQUESTS
    assert outputs(api_output) == api_outputs


def test_image_blocks_become_data_urls_in_placeholder_order():
    red, blue = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    content = [{"type": "text", "text": "(A) "}, {"type": "image", "text": None}]
    content += [{"type": "text", "text": " (B) "}, {"type": "image", "text": None}]
    (message,) = api_messages(Conversation([{"role": "user", "content": content}], [red, blue]))
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["text", "image_url", "text", "image_url"]
    import base64
    import io

    decoded = [
        Image.open(io.BytesIO(base64.b64decode(part["image_url"]["url"].split(",", 1)[1])))
        for part in message["content"]
        if part["type"] == "image_url"
    ]
    assert [image.getpixel((0, 0)) for image in decoded] == [(255, 0, 0), (0, 0, 255)]
    with pytest.raises(ValueError, match="more images than image blocks"):
        api_messages(Conversation([{"role": "user", "content": content}], [red, blue, red]))


class ScriptedEndpoint(BaseHTTPRequestHandler):
    """Answers /chat/completions from the server's ``script``: a list of (status, delay) per request."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, delay = self.server.script.pop(0) if self.server.script else (200, 0)
        self.server.received += 1
        time.sleep(delay)
        if status == 200:
            body = {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": " B "}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
            }
            if "prompt_logprobs" in request and self.server.prompt_logprobs:
                body["prompt_logprobs"] = prompt_logprobs(request)
        else:
            body = {"error": {"message": f"scripted {status}", "type": "error"}}
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def log_message(self, *args):
        pass


def rendered(request) -> str:
    """A stand-in chat template (one token per character): what vLLM would tokenize for the request."""
    text = ""
    for message in request["messages"]:
        parts = message["content"] if isinstance(message["content"], list) else [{"type": "text", "text": ""}]
        body = "".join(part["text"] if part["type"] == "text" else "*" for part in parts)
        text += f"{message['role']}:{body}" + ("$" if message["role"] == "assistant" else "|")
    return text + ("assistant:" if request.get("add_generation_prompt", True) else "")


def token_log_prob(character: str) -> dict:
    return {"logprob": -(ord(character) % 7) / 10, "rank": 1 if ord(character) % 2 else 2, "decoded_token": character}


def prompt_logprobs(request) -> list:
    """vLLM's answer with ``prompt_logprobs=0``: nothing for the first token, then the prompt token's entry."""
    return [None] + [{str(ord(character)): token_log_prob(character)} for character in rendered(request)[1:]]


@pytest.fixture
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedEndpoint)
    server.script, server.received, server.prompt_logprobs = [], 0, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def api_model(server, tmp_path, **settings) -> APIChatModel:
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return APIChatModel("m", base_url=base_url, cache_dir=tmp_path / "cache", **settings)


QUESTION = Conversation([{"role": "user", "content": [{"type": "text", "text": "which?"}]}])


def test_rate_limits_and_server_errors_are_retried_with_backoff(scripted, tmp_path):
    scripted.script = [(429, 0), (503, 0)]
    model = api_model(scripted, tmp_path, max_retries=3, price_per_million_tokens=(2.0, 10.0))
    assert model.generate([QUESTION]) == ["B"]
    assert scripted.received == 3
    usage = model.usage()
    assert (usage["requests"], usage["prompt_tokens"], usage["completion_tokens"]) == (1, 10, 2)
    assert usage["cost_usd"] == pytest.approx((10 * 2.0 + 2 * 10.0) / 1e6)
    # The same request again is answered from the disk cache, without a request.
    assert api_model(scripted, tmp_path).generate([QUESTION]) == ["B"]
    assert scripted.received == 3


def test_refused_key_is_a_clear_error(scripted, tmp_path):
    scripted.script = [(401, 0)]
    with pytest.raises(APIModelError, match="refused the API key"):
        api_model(scripted, tmp_path, max_retries=0).generate([QUESTION])
    assert not (tmp_path / "cache").exists()


def test_timeout_is_a_clear_error(scripted, tmp_path):
    scripted.script = [(200, 2)]
    with pytest.raises(APIModelError, match=r"did not answer within 0.3 s"):
        api_model(scripted, tmp_path, max_retries=0, timeout=0.3).generate([QUESTION])
    assert not (tmp_path / "cache").exists()


def test_unreachable_endpoint_fails_the_cli_and_writes_no_results(tmp_path, devcv_dir, capsys):
    output = tmp_path / "out"
    argv = ["--model", "openai:m", "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--max-retries", "0"]
    argv += ["--data", str(devcv_dir), "--output", str(output), "--tasks", "count", "--no-progress"]
    assert main(argv) == 1
    assert "cannot reach http://127.0.0.1" in capsys.readouterr().err
    assert not (output / "results.json").exists() and not (output / "summary.json").exists()
    assert not (output / PREDICTIONS_FILE).exists() or not (output / PREDICTIONS_FILE).read_text()


def test_lwl_phrases_are_scored_from_prompt_log_probabilities_where_the_endpoint_gives_them(scripted, tmp_path):
    scripted.prompt_logprobs = True
    model = api_model(scripted, tmp_path)
    scores = model.score_continuations([QUESTION, QUESTION], [" a red ball", " cup"])
    for (loss, greedy), phrase in zip(scores, [" a red ball", " cup"]):
        scored = [token_log_prob(character) for character in phrase + "$"]  # the phrase and the turn's end
        assert loss == pytest.approx(-sum(token["logprob"] for token in scored) / len(scored))
        assert greedy == all(token["rank"] == 1 for token in scored)


def test_lwl_is_not_applicable_where_the_endpoint_gives_no_prompt_log_probabilities(scripted, tmp_path):
    with pytest.raises(NotApplicableError, match="no log-probabilities of given text"):
        api_model(scripted, tmp_path).score_continuations([QUESTION], [" cup"])
    scripted.script = [(400, 0)]
    with pytest.raises(NotApplicableError, match="refused prompt log-probabilities"):
        api_model(scripted, tmp_path / "other", max_retries=0).score_continuations([QUESTION], [" cup"])
