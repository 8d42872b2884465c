"""Pixel operations the generators share: object crops, plain canvases, mirroring, PNG encoding.

Derived images are stored as PNG (lossless and deterministic), so what a test reads back is
exactly what the generator drew; whole frames keep the JPEG bytes they were extracted as.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from ...annotations import ObjectBox

CROP_MARGIN = 0.1
"""Context kept around an object crop, as a share of the box side."""

NEUTRAL_BACKDROP = (128, 128, 128)
BACKDROP_TOLERANCE = 30
"""Summed RGB difference from the backdrop colour that still counts as backdrop (compression noise)."""
PLAIN_BACKDROP_SHARE = 0.9
"""A backdrop is plain when this share of the border pixels has its colour."""

Box = tuple[int, int, int, int]
"""Integer pixel box ``(left, top, right, bottom)``, right/bottom exclusive."""


def object_box(obj: ObjectBox, width: int, height: int, margin: float = CROP_MARGIN) -> Box:
    """The pixel box of an object crop: its box grown by ``margin`` of its size, inside the frame."""
    x, y, w, h = obj.box
    pad_x, pad_y = margin * w, margin * h
    return (
        max(0, math.floor(x - pad_x)),
        max(0, math.floor(y - pad_y)),
        min(width, math.ceil(x + w + pad_x)),
        min(height, math.ceil(y + h + pad_y)),
    )


def crop_object(frame: Image.Image, obj: ObjectBox, margin: float = CROP_MARGIN) -> Image.Image:
    return frame.crop(object_box(obj, frame.width, frame.height, margin))


def boxes_overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """Median colour of the outermost pixel ring: the background an object crop sits on."""
    pixels = np.asarray(image.convert("RGB"))
    ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return tuple(int(value) for value in np.median(ring, axis=0))


def on_neutral_backdrop(image: Image.Image) -> Image.Image | None:
    """The image with its plain backdrop (the colour of its border, and everything of that colour
    connected to the border) painted neutral grey; None when the backdrop is not plain.

    A crop cut from a plain scene carries that scene's background colour, which would tell which
    frame it came from without looking at the object.
    """
    pixels = np.asarray(image.convert("RGB")).astype(np.int64)
    ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    backdrop = np.median(ring, axis=0)
    if (np.abs(ring - backdrop).sum(axis=1) <= BACKDROP_TOLERANCE).mean() < PLAIN_BACKDROP_SHARE:
        return None
    regions, _ = ndimage.label(np.abs(pixels - backdrop).sum(axis=2) <= BACKDROP_TOLERANCE)
    touching = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    pixels[np.isin(regions, touching[touching > 0])] = NEUTRAL_BACKDROP
    return Image.fromarray(pixels.astype(np.uint8))


def mirror_asymmetry(image: Image.Image, max_shift: int = 2) -> float:
    """Mean absolute grey-level difference between an image and its mirror image, in [0, 1].

    The mirror image may shift by up to ``max_shift`` pixels first, so a symmetric object that
    merely sits off-centre in its crop (boxes are rounded to whole pixels) still counts as symmetric.
    """
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    mirrored = grey[:, ::-1]
    width = grey.shape[1]
    differences = [
        np.abs(grey[:, shift:] - mirrored[:, : width - shift]).mean()
        if shift >= 0
        else np.abs(grey[:, :shift] - mirrored[:, -shift:]).mean()
        for shift in range(-max_shift, max_shift + 1)
        if abs(shift) < width
    ]
    return float(min(differences) / 255)


def mirror(image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image)


def rescale(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BILINEAR)


def canvas(
    size: tuple[int, int], fill: tuple[int, int, int], pieces: list[tuple[Image.Image, tuple[int, int]]]
) -> Image.Image:
    """A plain ``fill`` canvas with each image pasted at its ``(x, y)``."""
    result = Image.new("RGB", size, fill)
    for piece, position in pieces:
        result.paste(piece, position)
    return result


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Fast, still lossless: the drawn images are flat colours that compress well at any level.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
