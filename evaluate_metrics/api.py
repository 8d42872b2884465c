"""Models behind an OpenAI-compatible chat endpoint (OpenAI, Gemini's OpenAI endpoint, vLLM, TGI,
``transformers serve``), answering DevCV items through the same interface as a local checkpoint
(:class:`~.answering.AnsweringModel`).

``babyvlm eval --model openai:<name> --base-url URL`` picks this class. Each conversation becomes one
``/chat/completions`` request: its messages with every image block replaced, in placeholder order,
by the image as a PNG data URL; greedy decoding (``temperature=0``). Requests run ``concurrency`` at a
time, no faster than ``requests_per_minute``; the client retries connection errors, 408/409/429 and
5xx answers with exponential backoff (honouring ``Retry-After``).

Every answer is stored on disk under the SHA-256 of its request (endpoint, model, messages,
generation settings) before it is used, so a rerun or an interrupted run pays only for requests it
never got an answer to. :meth:`APIChatModel.usage` counts requests, cache hits and tokens, and the
cost when prices are given.

Looking While Listening scores given phrases by their log-likelihood. Chat endpoints return
log-probabilities of generated tokens only; where the endpoint returns the prompt's too (vLLM's
``prompt_logprobs``), the phrase is scored from them as the local runner scores it; elsewhere the
task raises :class:`~.answering.NotApplicableError` and the run reports it as not applicable.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .answering import Conversation, NotApplicableError
from .harness import cut_at_stop_strings
from .report import write_text_atomic

MODEL_PREFIX = "openai:"


class APIModelError(RuntimeError):
    """The endpoint could not answer (unreachable, refused the key, timed out, rejected the request)."""


def image_data_url(image: Image.Image) -> str:
    """The image as a lossless PNG data URL (what the endpoint decodes is what a local run sees)."""
    buffer = io.BytesIO()
    (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def api_messages(conversation: Conversation) -> list[dict]:
    """OpenAI chat messages: text blocks as text parts, the n-th image block as ``image_url`` of the n-th image."""
    images = iter(conversation.images)
    messages = []
    for message in conversation.messages:
        content = message["content"]
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
            continue
        parts = []
        for block in content:
            if block["type"] == "image":
                image = next(images, None)
                if image is None:
                    raise ValueError(f"{len(conversation.images)} images for more image blocks in {conversation}")
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
            else:
                parts.append({"type": "text", "text": block["text"]})
        messages.append({"role": message["role"], "content": parts})
    if next(images, None) is not None:
        raise ValueError(f"more images than image blocks ({len(conversation.images)} images)")
    return messages


@dataclass
class Usage:
    """What a run asked of the endpoint: requests sent, answers reused from the cache, tokens."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, usage: dict | None, cached: bool) -> None:
        with self._lock:
            if cached:
                self.cached += 1
                return
            self.requests += 1
            self.prompt_tokens += (usage or {}).get("prompt_tokens") or 0
            self.completion_tokens += (usage or {}).get("completion_tokens") or 0


class ResponseCache:
    """Answers on disk, one JSON file per request under ``<sha256[:2]>/<sha256>.json``, written atomically."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        return json.loads(path.read_text()) if path.is_file() else None

    def put(self, key: str, response: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(response) + "\n")


class RateLimiter:
    """Spaces request starts at least ``60 / requests_per_minute`` seconds apart, across threads."""

    def __init__(self, requests_per_minute: float | None):
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.next_start = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        time.sleep(max(0.0, start - now))


class APIChatModel:
    """A model behind an OpenAI-compatible endpoint: the API kind of :class:`~.answering.AnsweringModel`."""

    kind = "an API model (openai:<name>)"
    # The endpoint loads and runs the model: the runner's loading options have nothing to act on.
    unsupported_options = {
        "max_batch_tokens": "an endpoint's prompt sizes are not known before it answers; "
        "batch_size and concurrency bound what is in flight",
        "device": "the endpoint runs the model where it is served",
        "dtype": "the endpoint runs the model at the precision it was served with",
        "model_kwargs": "the endpoint loads the model (from_pretrained keywords do not reach it)",
    }
    uses_api_system_prompts = True  # the authors' `create_api_system_prompt` variant

    def __init__(
        self,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_dir: str | Path,
        max_new_tokens: int = 16,
        max_new_tokens_per_round: int | None = None,
        concurrency: int = 4,
        requests_per_minute: float | None = None,
        max_retries: int = 5,
        timeout: float = 120.0,
        price_per_million_tokens: tuple[float, float] | None = None,
    ):
        import openai  # optional dependency: the `api` extra

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.name = model_name
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.max_new_tokens = max_new_tokens
        self.max_new_tokens_per_round = max_new_tokens_per_round or max_new_tokens
        self.concurrency = concurrency
        self.timeout = timeout
        self.price_per_million_tokens = price_per_million_tokens
        # Local servers take any key; hosted ones answer 401, reported as a refused key.
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            max_retries=max_retries,
            timeout=timeout,
        )
        self.cache = ResponseCache(cache_dir)
        self.rate_limiter = RateLimiter(requests_per_minute)
        self.usage_counts = Usage()

    @classmethod
    def from_model_string(cls, model: str, **kwargs) -> APIChatModel:
        """``openai:<name>`` -> the endpoint's model ``<name>``."""
        if not model.startswith(MODEL_PREFIX) or len(model) == len(MODEL_PREFIX):
            raise ValueError(f"an API model is named {MODEL_PREFIX}<model name>, got {model!r}")
        return cls(model[len(MODEL_PREFIX) :], **kwargs)

    def describe(self) -> dict[str, str | None]:
        # The endpoint's precision and context handling are the server's own.
        return {
            "model": f"{MODEL_PREFIX}{self.name} @ {self.base_url}",
            "dtype": None,
            "truncation": None,
            "context_limit": None,
        }

    def prompt(self, messages: list[dict]) -> str:
        """The messages as sent (image blocks shown as placeholders): what the endpoint's template renders."""
        return json.dumps(messages)

    def estimate_tokens(self, conversation: Conversation) -> int:
        """Not known before the endpoint answers (the runner refuses ``max_batch_tokens`` first)."""
        raise NotApplicableError(f"max_batch_tokens: {self.unsupported_options['max_batch_tokens']}")

    def _request(self, conversation: Conversation, max_new_tokens: int) -> dict:
        return {
            "model": self.name,
            "messages": api_messages(conversation),
            "max_tokens": max_new_tokens,
            "temperature": 0,
        }

    def _response(self, request: dict) -> dict:
        """The endpoint's answer to ``request`` (a JSON object), from the disk cache when it was asked before."""
        import openai

        key = hashlib.sha256(json.dumps([self.base_url, request], sort_keys=True).encode()).hexdigest()
        response = self.cache.get(key)
        if response is not None:
            self.usage_counts.add(None, cached=True)
            return response
        self.rate_limiter.wait()
        fields = {name: value for name, value in request.items() if name != "extra_body"}
        try:
            response = self.client.chat.completions.create(**fields, extra_body=request.get("extra_body"))
        except openai.AuthenticationError as error:
            raise APIModelError(
                f"{self.base_url} refused the API key (HTTP 401; set OPENAI_API_KEY or --api-key): {error}"
            ) from error
        except openai.APITimeoutError as error:
            raise APIModelError(
                f"{self.base_url} did not answer within {self.timeout:g} s (after {self.client.max_retries} "
                "retries); raise --api-timeout or lower --concurrency"
            ) from error
        except openai.APIConnectionError as error:
            raise APIModelError(f"cannot reach {self.base_url} ({error.__cause__ or error})") from error
        except openai.APIStatusError as error:
            raise APIModelError(
                f"{self.base_url} answered HTTP {error.status_code} for model {self.name!r}: {error.message}"
            ) from error
        response = response.model_dump(mode="json")
        if not response.get("choices"):
            raise APIModelError(f"{self.base_url} answered without choices: {response}")
        self.cache.put(key, response)
        self.usage_counts.add(response.get("usage"), cached=False)
        return response

    def _complete(self, request: dict) -> str:
        return self._response(request)["choices"][0]["message"].get("content") or ""

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int | None = None, stop_strings: Sequence[str] = ()
    ) -> list[str]:
        """Greedy answers to the last user turn of each conversation, ``concurrency`` at a time, cut before the
        first of ``stop_strings`` and stripped here, as :meth:`~.inference.ChatModel.generate` does (the
        endpoint's own ``stop`` handling varies between servers)."""
        requests = [self._request(c, max_new_tokens or self.max_new_tokens) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(requests)))) as pool:
            return [cut_at_stop_strings(text, stop_strings) for text in pool.map(self._complete, requests)]

    def stream(self, conversation: Conversation, max_new_tokens: int | None = None) -> Iterator[str]:
        """The answer once the endpoint has given it whole (requests are cached whole, so none is streamed)."""
        yield from self.generate([conversation], max_new_tokens)

    def start_dialogues(self) -> APIDialogues:
        return APIDialogues(self)

    def _prompt_log_probs(self, messages: list[dict], answered: bool) -> list[dict]:
        """vLLM's ``prompt_logprobs`` of the rendered messages: per prompt token (after the first) a
        ``{token_id: {"logprob", "rank", ...}}`` holding that token. ``answered``: the last message is the
        assistant's whole turn (rendered with its end), else the generation prompt follows the messages."""
        request = {
            "model": self.name,
            "messages": messages,
            "max_tokens": 1,
            "temperature": 0,
            "extra_body": {"prompt_logprobs": 0, "add_generation_prompt": not answered},
        }
        try:
            log_probs = self._response(request).get("prompt_logprobs")
        except APIModelError as error:
            if isinstance(error.__cause__, openai_request_errors()):
                raise NotApplicableError(f"{self.base_url} refused prompt log-probabilities ({error})") from error
            raise
        if not isinstance(log_probs, list) or not log_probs:
            raise NotApplicableError(
                f"{self.base_url} ({self.name}) gives no log-probabilities of given text (vLLM's prompt_logprobs); "
                "a chat endpoint's logprobs cover generated tokens only, so Looking While Listening cannot be scored"
            )
        return log_probs

    def _score(self, pair: tuple[Conversation, str]) -> tuple[float, bool]:
        conversation, continuation = pair
        messages = api_messages(conversation)
        prompt = self._prompt_log_probs(messages, answered=False)
        answer = {"role": "assistant", "content": [{"type": "text", "text": continuation}]}
        full = self._prompt_log_probs(messages + [answer], answered=True)
        prompt_tokens, full_tokens = _prompt_tokens(prompt), _prompt_tokens(full)
        prompt_ids = [token_id for token_id, _ in prompt_tokens]
        if len(full_tokens) <= len(prompt_tokens) or [token_id for token_id, _ in full_tokens[: len(prompt_ids)]] != (
            prompt_ids
        ):
            raise APIModelError(
                f"{self.base_url}: the answered prompt for {continuation!r} does not extend the generation prompt "
                "token for token, so the continuation's log-likelihood cannot be separated"
            )
        scored = [log_prob for _, log_prob in full_tokens[len(prompt_tokens) :]]
        loss = -sum(token["logprob"] for token in scored) / len(scored)
        return loss, all(token.get("rank") == 1 for token in scored)

    def score_continuations(
        self, conversations: Sequence[Conversation], continuations: Sequence[str]
    ) -> list[tuple[float, bool]]:
        """Mean token loss of each continuation as the assistant's turn (its text and end, as the local
        runner scores it) and whether greedy decoding would produce it, from the endpoint's prompt
        log-probabilities (vLLM's ``prompt_logprobs``); :class:`~.answering.NotApplicableError` where the
        endpoint has none."""
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(conversations)))) as pool:
            return list(pool.map(self._score, zip(conversations, continuations)))

    def usage(self) -> dict:
        """Requests sent, answers reused from the cache, tokens and (with prices) the cost in USD."""
        counts = self.usage_counts
        summary = {
            "endpoint": self.base_url,
            "model": self.name,
            "requests": counts.requests,
            "cached_answers": counts.cached,
            "prompt_tokens": counts.prompt_tokens,
            "completion_tokens": counts.completion_tokens,
        }
        if self.price_per_million_tokens:
            input_price, output_price = self.price_per_million_tokens
            summary["cost_usd"] = (counts.prompt_tokens * input_price + counts.completion_tokens * output_price) / 1e6
        return summary


def openai_request_errors() -> tuple[type, ...]:
    """The answers of an endpoint that does not know a request's extra fields."""
    import openai

    return (openai.BadRequestError, openai.UnprocessableEntityError, openai.NotFoundError)


def _prompt_tokens(log_probs: list) -> list[tuple[str | None, dict | None]]:
    """(token id, its log-probability entry) per position of a ``prompt_logprobs`` answer requested with 0 top
    tokens: one entry per position (none for the first token, which nothing predicts)."""
    tokens = []
    for entry in log_probs:
        if entry is None:
            tokens.append((None, None))
            continue
        if len(entry) != 1:
            raise APIModelError(f"expected the prompt token alone at each prompt_logprobs position, got {entry}")
        ((token_id, log_prob),) = entry.items()
        tokens.append((token_id, log_prob))
    return tokens


class APIDialogues:
    """Dialogue rounds for an endpoint: each round sends the whole history (the endpoint keeps no state)."""

    def __init__(self, chat: APIChatModel):
        self.chat = chat

    def generate(self, keys: Sequence, conversations: Sequence[Conversation]) -> list[str]:
        return self.chat.generate(conversations, self.chat.max_new_tokens_per_round)
