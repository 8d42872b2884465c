"""The one chat schema every babyvlm dataset uses (DevCV items and SAYCam corpora alike).

A record holds ``messages`` in the transformers chat format with structured content and a parallel
``images`` list. Each ``{"type": "image"}`` block stands exactly where the released data had an
``<image>`` placeholder, and the n-th image block (counted across all turns) is ``images[n]``.
Text blocks keep every character of the original text, so joining a turn's blocks — an image block
renders as ``<image>`` — gives back the released string byte for byte.

The schema lives at the package root because both sides use it: the dataset builders write records
in it and the evaluation (runner, protocol, lmms-eval plugin) reads them; neither imports the other.
"""

from __future__ import annotations

from datasets import Features, Image, List, Value

IMAGE_PLACEHOLDER = "<image>"

# Released LLaVA-style speaker names -> chat roles.
ROLE_FROM_SPEAKER = {"human": "user", "gpt": "assistant", "system": "system"}
SPEAKER_FROM_ROLE = {role: speaker for speaker, role in ROLE_FROM_SPEAKER.items()}

MESSAGES_FEATURE = List(
    {
        "role": Value("string"),
        "content": List({"type": Value("string"), "text": Value("string")}),
    }
)
IMAGES_FEATURE = List(Image())


def text_to_content(text: str) -> list[dict]:
    """Split a released turn at its ``<image>`` placeholders into structured content blocks."""
    blocks: list[dict] = []
    for index, piece in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if index:
            blocks.append({"type": "image", "text": None})
        if piece:
            blocks.append({"type": "text", "text": piece})
    return blocks


def content_to_text(content: str | list[dict]) -> str:
    """Inverse of :func:`text_to_content`; plain-string content is returned unchanged."""
    if isinstance(content, str):
        return content
    return "".join(IMAGE_PLACEHOLDER if block["type"] == "image" else block["text"] for block in content)


def count_image_blocks(messages: list[dict]) -> int:
    return sum(
        1
        for message in messages
        if not isinstance(message["content"], str)
        for block in message["content"]
        if block["type"] == "image"
    )


def conversations_to_messages(conversations: list[dict]) -> list[dict]:
    """Released ``[{"from": "human", "value": ...}]`` turns -> chat messages.

    Raises ``ValueError`` naming the turn for an unknown speaker or a non-string value.
    """
    messages = []
    for turn_index, turn in enumerate(conversations):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise ValueError(f"turn {turn_index}: expected an object with 'from' and 'value', got {turn!r}")
        speaker, value = turn["from"], turn["value"]
        if speaker not in ROLE_FROM_SPEAKER:
            raise ValueError(
                f"turn {turn_index}: unknown speaker {speaker!r} (expected one of {sorted(ROLE_FROM_SPEAKER)})"
            )
        if not isinstance(value, str):
            raise ValueError(f"turn {turn_index}: 'value' must be a string, got {type(value).__name__}")
        messages.append({"role": ROLE_FROM_SPEAKER[speaker], "content": text_to_content(value)})
    return messages


def messages_to_conversations(messages: list[dict]) -> list[dict]:
    """Chat messages -> released ``conversations`` turns (exact inverse of :func:`conversations_to_messages`)."""
    return [{"from": SPEAKER_FROM_ROLE[m["role"]], "value": content_to_text(m["content"])} for m in messages]


CHAT_FEATURES = Features({"messages": MESSAGES_FEATURE, "images": IMAGES_FEATURE})

__all__ = [
    "CHAT_FEATURES",
    "IMAGES_FEATURE",
    "IMAGE_PLACEHOLDER",
    "MESSAGES_FEATURE",
    "ROLE_FROM_SPEAKER",
    "SPEAKER_FROM_ROLE",
    "content_to_text",
    "conversations_to_messages",
    "count_image_blocks",
    "messages_to_conversations",
    "text_to_content",
]
