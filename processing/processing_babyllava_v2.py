"""`BabyLlavaV2Processor`: tokenizer + image processor + chat templates, with multi-image and video support."""

import base64
import binascii
import io
import os
import re
from itertools import count

import PIL.Image
from transformers.image_utils import load_image
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin

from .chat_templates import CHAT_TEMPLATES
from .video_processing_babyllava_v2 import sample_video_frames

VIDEO_PLACEHOLDER = "<video>"


class BabyLlavaV2ProcessorKwargs(ProcessingKwargs, total=False):
    _defaults = {"text_kwargs": {"padding": False}}


class BabyLlavaV2Processor(ProcessorMixin):
    r"""Builds BabyLLaVA-V2 inputs: `input_ids`, `attention_mask` and `pixel_values`.

    Every `<image>` in the text becomes `image_seq_length` image tokens (197 by default: CLS + 14×14 patches),
    images taken in placeholder order across the whole batch. Every `<video>` becomes `num_frames` uniformly
    sampled frames, each one `<image>`. Chat templates: `baby_v1` (default) and `baby_plain`.

    Args:
        image_processor ([`BabyLlavaV2ImageProcessor`]): pads, resizes and normalises images.
        tokenizer ([`PreTrainedTokenizerFast`]): the byte-level BPE tokenizer with an `<image>` special token.
        chat_template (`str` or `dict`, *optional*): defaults to the BabyLLaVA-V2 templates.
        image_seq_length (`int`, *optional*, defaults to 197): tokens per image; build the processor with
            [`BabyLlavaV2Processor.from_model_config`] to take it from the model config.
        num_frames (`int`, *optional*, defaults to 8): frames sampled from each video.
    """

    valid_processor_kwargs = BabyLlavaV2ProcessorKwargs

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template=None,
        image_seq_length: int = 197,
        num_frames: int = 8,
        **kwargs,
    ):
        self.image_seq_length = image_seq_length
        self.num_frames = num_frames
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id in (None, tokenizer.unk_token_id):
            raise ValueError(f"the tokenizer has no {self.image_token!r} token; add it as a special token first")
        super().__init__(image_processor, tokenizer, chat_template=chat_template or dict(CHAT_TEMPLATES), **kwargs)

    @classmethod
    def from_model_config(cls, config, image_processor, tokenizer, **kwargs) -> "BabyLlavaV2Processor":
        """Processor whose image token count comes from a `BabyLlavaV2Config` (its single source of truth)."""
        if tokenizer.convert_tokens_to_ids(getattr(tokenizer, "image_token", "<image>")) != config.image_token_id:
            raise ValueError(
                f"tokenizer's <image> id {tokenizer.convert_tokens_to_ids('<image>')} differs from the config's "
                f"image_token_id {config.image_token_id}"
            )
        return cls(image_processor, tokenizer, image_seq_length=config.image_seq_length, **kwargs)

    def apply_chat_template(self, conversation, *args, **kwargs):
        """The parent's, refusing an empty conversation (which would otherwise fail deep inside the template)."""
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        for index, messages in enumerate(conversation if batched else [conversation]):
            if not messages:
                where = f"conversation {index}" if batched else "the conversation"
                raise ValueError(f"{where} has no messages: pass at least one {{'role': ..., 'content': ...}}")
        return super().apply_chat_template(conversation, *args, **kwargs)

    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs):
        """The parent's checks, and no empty prompt: the model would answer an empty string as if it were a question."""
        super().validate_inputs(images=images, text=text, videos=videos, audio=audio, **kwargs)
        for index, sample in enumerate([text] if isinstance(text, str) else text or []):
            if isinstance(sample, str) and not sample.strip():
                raise ValueError(f"text[{index}] is an empty prompt ({sample!r}); pass the text to answer")

    def prepare_inputs_layout(self, images=None, text=None, videos=None, audio=None, **kwargs):
        """The parent's, with image files opened here first: a path that is missing or not an image is named with its
        position, where the parent would fail with "Incorrect image source" and a base64 decoding error."""
        if images is not None:
            images = _open_image_files(images, count())
        images, text, videos, audio = super().prepare_inputs_layout(images, text, videos, audio, **kwargs)
        if videos is not None:
            if text is None:
                raise ValueError("videos need a text with one <video> placeholder per video")
            text, images = self._videos_to_frames(text, images, videos)
        return images, text, None, audio

    def _videos_to_frames(self, text: list[str], images, videos):
        """Replace each `<video>` by `num_frames` `<image>` placeholders and splice its frames into `images`,
        keeping the placeholder order of the whole batch."""
        flat_images = list(_flatten(images)) if images is not None else []
        flat_videos = list(_flatten(videos))
        placeholder = re.compile(f"{re.escape(self.image_token)}|{re.escape(VIDEO_PLACEHOLDER)}")
        ordered_images, new_text = [], []
        image_iter, video_iter = iter(flat_images), iter(flat_videos)
        for sample in text:
            for match in placeholder.finditer(sample):
                source = image_iter if match.group() == self.image_token else video_iter
                visual = next(source, None)
                if visual is None:
                    raise ValueError(
                        f"more {match.group()} placeholders in the text than {match.group()[1:-1]}s passed"
                    )
                if source is video_iter:
                    ordered_images.extend(sample_video_frames(visual, self.num_frames))
                else:
                    ordered_images.append(visual)
            new_text.append(sample.replace(VIDEO_PLACEHOLDER, self.image_token * self.num_frames))
        if next(image_iter, None) is not None or next(video_iter, None) is not None:
            raise ValueError(
                f"got {len(flat_images)} images and {len(flat_videos)} videos but the text has fewer placeholders"
            )
        return new_text, ordered_images or None

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        return self.image_token * self.image_seq_length

    @property
    def model_input_names(self):
        return ["input_ids", "attention_mask", "pixel_values"]


def _open_image_files(images, numbers):
    """Open every image given as a file path (`str` or `os.PathLike`) of a possibly nested list of images, numbered
    in order as the image processor numbers them; URLs and base64-encoded images are left to the parent."""
    if isinstance(images, (list, tuple)):
        return [_open_image_files(image, numbers) for image in images]
    number = next(numbers)
    if not isinstance(images, (str, os.PathLike)):
        return images
    path = os.fspath(images)
    if isinstance(path, bytes) or path.startswith(("http://", "https://", "data:image/")) or _is_base64_image(path):
        return images
    if not os.path.exists(path):
        raise ValueError(f"image {number} ({path}): no such file")
    if os.path.isdir(path):
        raise ValueError(f"image {number} ({path}) is a folder, not an image file")
    try:
        return load_image(path)
    except (OSError, PIL.UnidentifiedImageError, ValueError) as error:
        raise ValueError(f"image {number} ({path}) cannot be read as an image ({error})") from None


def _is_base64_image(text: str) -> bool:
    """Whether `text` is an image encoded in base64, as `transformers.image_utils.load_image` accepts."""
    try:
        with PIL.Image.open(io.BytesIO(base64.b64decode(text, validate=True))):
            return True
    except (binascii.Error, ValueError, OSError):
        return False


def _flatten(visuals):
    """Images or videos given one per placeholder, flat or nested per sample; a video is a path or a 4-D array."""
    if isinstance(visuals, (list, tuple)):
        for item in visuals:
            yield from _flatten(item)
    else:
        yield visuals


__all__ = ["BabyLlavaV2Processor"]
