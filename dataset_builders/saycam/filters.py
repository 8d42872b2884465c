"""Similarity filters with local checkpoints: CLIP for image–text, X-CLIP for video–text.

Scores are cosine similarities of the projected, L2-normalised embeddings (the usual "CLIP
score" scale, without the logit temperature), which is the scale of the paper's thresholds
(image–text > 0.2, video–text > 0.1). Models are only ever read from local folders.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoProcessor, CLIPModel, XCLIPModel


def decode_jpeg(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def check_local_checkpoint(model_dir: str | Path, kind: str) -> Path:
    """``model_dir`` as a path; ``FileNotFoundError`` unless it is a local checkpoint folder."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{kind} checkpoint folder {path} has no config.json (only local checkpoints are used)")
    return path


def _cosine(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).tolist()


class ClipScorer:
    """Image–text similarity with any transformers ``CLIPModel`` folder (model + processor files)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 32):
        path = check_local_checkpoint(model_dir, "CLIP")
        self.model = CLIPModel.from_pretrained(path).to(device).eval()
        self.processor = AutoProcessor.from_pretrained(path)
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.device, self.batch_size = device, batch_size

    @torch.inference_mode()
    def score(self, images: list[Image.Image], texts: list[str]) -> list[float]:
        """Similarity of ``images[i]`` with ``texts[i]`` for every i."""
        scores = []
        for begin in range(0, len(images), self.batch_size):
            inputs = self.processor(
                text=texts[begin : begin + self.batch_size],
                images=images[begin : begin + self.batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            outputs = self.model(**inputs)
            scores.extend(_cosine(outputs.image_embeds, outputs.text_embeds))
        return scores


class XClipScorer:
    """Video–text similarity with any transformers ``XCLIPModel`` folder (model + processor files)."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 8):
        path = check_local_checkpoint(model_dir, "X-CLIP")
        self.model = XCLIPModel.from_pretrained(path).to(device).eval()
        self.processor = AutoProcessor.from_pretrained(path)
        self.max_length = self.model.config.text_config.max_position_embeddings
        self.num_frames = self.model.config.vision_config.num_frames
        self.device, self.batch_size = device, batch_size

    @torch.inference_mode()
    def score(self, clips: list[list[Image.Image]], texts: list[str]) -> list[float]:
        """Similarity of clip ``clips[i]`` (a list of frames) with ``texts[i]`` for every i."""
        scores = []
        for begin in range(0, len(clips), self.batch_size):
            videos = [self._resample(clip) for clip in clips[begin : begin + self.batch_size]]
            inputs = self.processor(
                text=texts[begin : begin + self.batch_size],
                videos=videos,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            outputs = self.model(**inputs)
            # X-CLIP conditions every text on every video: keep the matching (video i, text i) pairs.
            matched_text = outputs.text_embeds.diagonal(dim1=0, dim2=1).T
            scores.extend(_cosine(outputs.video_embeds, matched_text))
        return scores

    def _resample(self, clip: list[Image.Image]) -> list[Image.Image]:
        """The model's fixed number of frames, taken uniformly from the clip."""
        return [clip[int(k * len(clip) / self.num_frames)] for k in range(self.num_frames)]
