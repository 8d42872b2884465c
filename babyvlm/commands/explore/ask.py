"""Ask a loaded checkpoint about the shown item, with an editable prompt, the answer streamed.

The prompt is the item's first user turn as text, each image written as ``<image>``; the n-th
placeholder takes the item's n-th image. Inputs are built as the evaluation builds them
(:class:`~babyvlm.evaluate_metrics.inference.ChatModel`: the processor's chat template, then the
processor), and decoding is greedy, so an unedited prompt gets the evaluated answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from babyvlm.chat import IMAGE_PLACEHOLDER, content_to_text, count_image_blocks, text_to_content
from babyvlm.evaluate_metrics.answering import AnsweringModel, Conversation
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.protocol import MAX_NEW_TOKENS

from .dataset import ExploreError, MissingImage


def default_prompt(row: dict) -> str:
    """The item's prompt as editable text: the user turns before the first gold answer (LWL: its two images)."""
    if not row["messages"]:
        return IMAGE_PLACEHOLDER * len(row["images"])
    turns = []
    for message in row["messages"]:
        if message["role"] == "assistant":
            break
        turns.append(content_to_text(message["content"]))
    return "\n".join(turns)


def prompt_conversation(prompt: str, images: list) -> Conversation:
    """A one-turn conversation of the edited prompt, its placeholders filled with the item's images in order."""
    messages = [{"role": "user", "content": text_to_content(prompt)}]
    wanted = count_image_blocks(messages)
    if wanted > len(images):
        raise ExploreError(
            f"the prompt has {wanted} {IMAGE_PLACEHOLDER} placeholders but the item has {len(images)} images"
        )
    missing = [index + 1 for index, image in enumerate(images[:wanted]) if isinstance(image, MissingImage)]
    if missing:
        raise ExploreError(f"image {', '.join(map(str, missing))} of the item is missing; remove its placeholder")
    return Conversation(messages, list(images[:wanted]))


class Asker:
    """A checkpoint loaded for questions from the page."""

    def __init__(self, model_dir: str | Path, *, device: str = "cpu", dtype: torch.dtype = torch.float32):
        self.model_dir = Path(model_dir)
        self.chat: AnsweringModel = ChatModel.from_pretrained(
            self.model_dir, max_new_tokens=MAX_NEW_TOKENS, device=device, dtype=dtype
        )

    def stream(self, prompt: str, images: list, max_new_tokens: int | None = None) -> Iterator[str]:
        """The answer so far, growing as tokens are generated (greedy)."""
        yield from self.chat.stream(prompt_conversation(prompt, images), max_new_tokens)
