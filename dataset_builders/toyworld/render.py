"""Draw toy-world frames: flat backgrounds and one clean, recognisable shape per category."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from .vocabulary import COLORS
from .world import Episode, object_box

Box = tuple[float, float, float, float]


def _darker(color: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(channel * 0.55) for channel in color)


def _ball(draw: ImageDraw.ImageDraw, box: Box, color) -> None:
    x, y, s, _ = box
    draw.ellipse([x, y, x + s, y + s], fill=color, outline=_darker(color), width=max(1, round(s / 14)))


def _block(draw: ImageDraw.ImageDraw, box: Box, color) -> None:
    x, y, s, _ = box
    inset = 0.06 * s
    draw.rectangle(
        [x + inset, y + inset, x + s - inset, y + s - inset],
        fill=color,
        outline=_darker(color),
        width=max(1, round(s / 12)),
    )


def _car(draw: ImageDraw.ImageDraw, box: Box, color) -> None:
    x, y, s, _ = box
    draw.rectangle([x + 0.22 * s, y + 0.15 * s, x + 0.72 * s, y + 0.42 * s], fill=color)
    draw.rectangle([x, y + 0.4 * s, x + s, y + 0.75 * s], fill=color)
    for left in (0.1, 0.62):
        draw.ellipse([x + left * s, y + 0.62 * s, x + (left + 0.28) * s, y + 0.9 * s], fill=(25, 25, 25))


def _star(draw: ImageDraw.ImageDraw, box: Box, color) -> None:
    x, y, s, _ = box
    cx, cy, outer, inner = x + s / 2, y + s / 2, s / 2, s / 5
    points = [
        (cx + radius * math.sin(math.pi * k / 5), cy - radius * math.cos(math.pi * k / 5))
        for k, radius in zip(range(10), [outer, inner] * 5)
    ]
    draw.polygon(points, fill=color, outline=_darker(color))


def _cup(draw: ImageDraw.ImageDraw, box: Box, color) -> None:
    x, y, s, _ = box
    draw.ellipse([x + 0.6 * s, y + 0.3 * s, x + 0.95 * s, y + 0.7 * s], outline=color, width=max(2, round(s / 9)))
    draw.polygon(
        [
            (x + 0.08 * s, y + 0.15 * s),
            (x + 0.75 * s, y + 0.15 * s),
            (x + 0.65 * s, y + 0.92 * s),
            (x + 0.18 * s, y + 0.92 * s),
        ],
        fill=color,
        outline=_darker(color),
    )


SHAPES = {"ball": _ball, "block": _block, "car": _car, "star": _star, "cup": _cup}


def render_frame(episode: Episode, frame: int, width: int, height: int) -> Image.Image:
    """The RGB image of episode frame ``frame`` (relative to the episode start)."""
    image = Image.new("RGB", (width, height), episode.background)
    draw = ImageDraw.Draw(image)
    for obj in episode.objects:
        box = object_box(obj, episode.motion, frame, width, height)
        if box is not None:
            SHAPES[obj.category](draw, box, COLORS[obj.color])
    return image
