"""An OpenAI-compatible chat endpoint for any model the runner loads: ``babyvlm serve MODEL --host --port``.

``transformers serve`` refuses BabyLLaVA-V2 (its remote code and processor are not what it expects), so this is a
small FastAPI app over :class:`~.inference.ChatModel`: ``POST /v1/chat/completions`` (greedy; ``max_tokens``;
``stop`` cuts the answer before the first stop string; the text is not stripped, as OpenAI endpoints answer) and
``GET /v1/models``. Messages are OpenAI chat messages whose content is a string or text and ``image_url`` parts
(data URLs, as ``babyvlm eval --model openai:NAME`` sends them). Requests are answered one at a time, with the
same prompts, chat template and decoding as a local run, so ``babyvlm eval --model openai:NAME --base-url
http://HOST:PORT/v1`` gives the answers a local run gives (tests/test_serve.py).

Needs the ``serving`` extra (fastapi, uvicorn).
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (`Request`) at runtime.
import argparse
import base64
import io
import threading
import time
import uuid
from pathlib import Path

from PIL import Image

from babyvlm.command_line import command_parser, fail

from .harness import AUTO_DTYPE, DTYPES, resolve_dtype
from .inference import ChatModel, Conversation, IncompatibleModelError
from .preflight import check_model_path


class BadRequest(ValueError):
    """A request the endpoint cannot answer: the message says which field is wrong."""


def _image(url: str) -> Image.Image:
    if not url.startswith("data:image/") or ";base64," not in url:
        raise BadRequest("image_url must be a base64 data URL (data:image/...;base64,...)")
    data = base64.b64decode(url.split(";base64,", 1)[1])
    return Image.open(io.BytesIO(data)).convert("RGB")


def conversation_from_messages(messages: list[dict]) -> Conversation:
    """OpenAI chat messages as a :class:`~.inference.Conversation` (text and image blocks, images in order)."""
    if not messages:
        raise BadRequest("messages is empty")
    converted, images = [], []
    for index, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise BadRequest(f"messages[{index}].role must be system, user or assistant, got {role!r}")
        if isinstance(content, str) or content is None:
            blocks = [{"type": "text", "text": content or ""}]
        else:
            blocks = []
            for part in content:
                if part.get("type") == "text":
                    blocks.append({"type": "text", "text": part.get("text", "")})
                elif part.get("type") == "image_url":
                    images.append(_image(part.get("image_url", {}).get("url", "")))
                    blocks.append({"type": "image", "text": None})
                else:
                    raise BadRequest(f"messages[{index}]: unsupported content part {part.get('type')!r}")
        converted.append({"role": role, "content": blocks})
    return Conversation(converted, images)


def completion(chat: ChatModel, name: str, request: dict) -> dict:
    """The chat-completion answer to one request body."""
    conversation = conversation_from_messages(request.get("messages") or [])
    stop = request.get("stop") or ()
    stop = [stop] if isinstance(stop, str) else list(stop)
    max_tokens = request.get("max_tokens") or request.get("max_completion_tokens") or chat.max_new_tokens
    # As decoded, cut at the request's stop strings but not stripped: the client strips, as OpenAI endpoints expect.
    (answer,) = chat.generate([conversation], int(max_tokens), stop_strings=stop, strip=False)
    prompt_tokens = chat.estimate_tokens(conversation)
    completion_tokens = len(chat.processor.tokenizer(answer, add_special_tokens=False).input_ids)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def create_app(chat: ChatModel, name: str):
    """The FastAPI app serving ``chat`` under the model name ``name``."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title=f"babyvlm serve: {name}")
    lock = threading.Lock()  # one generation at a time: the model is not shared between threads

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "babyvlm"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await request.json()
        if body.get("model") not in (None, name):
            return JSONResponse(
                {"error": {"message": f"model {body.get('model')!r} is not served (serving {name!r})"}}, 404
            )
        if body.get("stream"):
            return JSONResponse({"error": {"message": "streaming is not supported"}}, 400)
        try:
            with lock:
                return completion(chat, name, body)
        except BadRequest as error:
            return JSONResponse({"error": {"message": str(error)}}, 400)

    return app


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "serve",
        "Serve a model behind an OpenAI-compatible chat endpoint (for `babyvlm eval --model openai:NAME`).",
        [
            "babyvlm serve babyvlm-demo/model --port 8000",
            "babyvlm eval --model openai:model --base-url http://127.0.0.1:8000/v1 --data devcv --output eval/api",
        ],
    )
    parser.add_argument("model", help="model folder or Hub id (anything babyvlm eval loads, BabyLLaVA-V2 included)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", help="the model name clients ask for (default: the folder's name)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=AUTO_DTYPE, choices=[AUTO_DTYPE, *sorted(DTYPES)])
    parser.add_argument("--max-new-tokens", type=int, default=1024, help="when a request names no max_tokens")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``babyvlm serve MODEL --host HOST --port PORT``."""
    parser = _parser()
    args = parser.parse_args(argv)
    import uvicorn

    try:
        check_model_path(args.model)  # a missing folder or refused weights: one line before minutes of loading
        chat = ChatModel.from_pretrained(
            args.model,
            max_new_tokens=args.max_new_tokens,
            device=args.device,
            dtype=resolve_dtype(args.dtype, args.device),
        )
    except (FileNotFoundError, IncompatibleModelError, ValueError) as error:
        return fail(parser, error)
    name = args.name or Path(args.model).name
    uvicorn.run(create_app(chat, name), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
