"""Columns of every SAYCam corpus, documented once, and the chat-record builder.

The chat corpora share the DevCV chat schema (:mod:`babyvlm.chat`): a user turn
made of image blocks only, and an assistant turn with the utterance. Every image keeps, as its
``path``, the original-release frame file name ``{recording}_{startMs}_{endMs}_frame_{k}.jpg``,
which is what the LLaVA JSON export writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Features, Image, List, Value

from babyvlm.chat import IMAGES_FEATURE, MESSAGES_FEATURE

CHAT_FORMATS = ("image_utterance", "video_utterance", "interleaved")
CORPORA = ("utterances", "frames", *CHAT_FORMATS, "mix")

_ORIGIN = (
    ("id", Value("string"), "unique record id, built from the recording and the time span"),
    ("recording", Value("string"), "recording name `{child}_{YYYYMMDD}_{HHMM}_{segment}`"),
    ("child", Value("string"), "child S, A or Y"),
    ("age_months", Value("float64"), "the child's age on the recording day, in months (null without a children table)"),
)
_CHAT = (
    ("messages", MESSAGES_FEATURE, "chat turns: user = image blocks, assistant = utterance"),
    ("images", IMAGES_FEATURE, "JPEG frames, the n-th image block is images[n]"),
)
_SPAN = (
    ("start_ms", Value("int64"), "utterance (or first turn) start in the recording, ms"),
    ("end_ms", Value("int64"), "utterance (or last turn) end, ms"),
)


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    title: str
    description: str
    columns: tuple[tuple[str, object, str], ...]
    """``(column, datasets feature, documentation)``."""
    task_category: str
    """The Hub task category of the card (what the corpus trains)."""

    @property
    def features(self) -> Features:
        return Features({name: feature for name, feature, _ in self.columns})


SPECS = {
    spec.name: spec
    for spec in (
        CorpusSpec(
            "utterances",
            "utterances (stage-0 language corpus)",
            "Every valid transcript utterance, for training the tokenizer and the language model.",
            (
                *_ORIGIN,
                ("text", Value("string"), "the utterance"),
                *_SPAN,
                ("confidence", Value("float64"), "ASR confidence (null when the transcripts have none)"),
            ),
            "text-generation",
        ),
        CorpusSpec(
            "frames",
            "frames (stage-0 vision self-supervision)",
            "Frames sampled at a fixed rate over whole recordings, for DINO-style training of the vision encoder.",
            (
                *_ORIGIN,
                ("image", Image(), "the frame (JPEG)"),
                ("time_ms", Value("int64"), "frame time in the recording, ms"),
            ),
            "image-feature-extraction",
        ),
        CorpusSpec(
            "image_utterance",
            "image–utterance pairs (stages 1–2)",
            "Each frame sampled inside an utterance's time span, paired with the utterance.",
            (
                *_ORIGIN,
                *_CHAT,
                *_SPAN,
                ("frame_ms", Value("int64"), "time of the frame, ms"),
                ("confidence", Value("float64"), "ASR confidence"),
                ("clip_score", Value("float64"), "CLIP image–text cosine similarity (null without a CLIP model)"),
            ),
            "image-text-to-text",
        ),
        CorpusSpec(
            "video_utterance",
            "video–utterance clips (stage 2)",
            "Clips cut at utterance boundaries, as uniformly sampled frames, paired with the utterance.",
            (
                *_ORIGIN,
                *_CHAT,
                *_SPAN,
                ("frame_ms", List(Value("int64")), "time of each frame, ms"),
                ("confidence", Value("float64"), "ASR confidence"),
                ("xclip_score", Value("float64"), "X-CLIP video–text cosine similarity (null without an X-CLIP model)"),
            ),
            "video-text-to-text",
        ),
        CorpusSpec(
            "interleaved",
            "interleaved multi-turn windows (stage 2)",
            "Windows of consecutive utterances of one recording; "
            "each turn is one frame of the utterance and the utterance.",
            (
                *_ORIGIN,
                *_CHAT,
                *_SPAN,
                ("turn_start_ms", List(Value("int64")), "start of each turn's utterance, ms"),
                ("turn_end_ms", List(Value("int64")), "end of each turn's utterance, ms"),
                ("frame_ms", List(Value("int64")), "time of each turn's frame, ms"),
                ("confidence", List(Value("float64")), "ASR confidence of each turn"),
                ("clip_score", List(Value("float64")), "CLIP score of each turn's frame (null without a CLIP model)"),
            ),
            "image-text-to-text",
        ),
        CorpusSpec(
            "mix",
            "stage-2 mixture",
            "The image–utterance, video–utterance and interleaved records, each format weighted.",
            (*_ORIGIN, ("format", Value("string"), "image_utterance, video_utterance or interleaved"), *_CHAT, *_SPAN),
            "image-text-to-text",
        ),
    )
}


def frame_image(recording: str, start_ms: int, end_ms: int, k: int, jpeg: bytes) -> dict:
    """An image cell named like the original release's frame files."""
    return {"bytes": jpeg, "path": f"{recording}_{start_ms}_{end_ms}_frame_{k}.jpg"}


def chat_columns(turns: list[tuple[list[dict], str]]) -> dict:
    """``messages`` and ``images`` for turns of ``(images shown, utterance said)``."""
    messages, images = [], []
    for turn_images, text in turns:
        messages.append({"role": "user", "content": [{"type": "image", "text": None} for _ in turn_images]})
        # Built directly, not with text_to_content: an utterance is never split at "<image>".
        messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        images.extend(turn_images)
    return {"messages": messages, "images": images}
