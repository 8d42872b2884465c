"""Vision controls: the same items with their images taken away (evaluate_metrics/README.md, "Vision controls").

``babyvlm eval --control shuffled-images`` answers every item with each image replaced by an image of another item
of the same task (seeded; never one of the item's own), ``--control blank-images`` with a mean-colour image of the
same size and mode. A model whose score survives the control answers from the prompt or answer priors, not from
the images. A control run is stored as its own run, marked in its files, and never writes leaderboard results.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

CONTROLS = ("shuffled-images", "blank-images")


def blank_image(image: Image.Image) -> Image.Image:
    """An image of ``image``'s size and mode filled with its mean colour."""
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    mean = np.asarray(image).reshape(image.size[0] * image.size[1], -1).mean(axis=0)
    fill = tuple(int(round(value)) for value in mean)
    return Image.new(image.mode, image.size, fill if len(fill) > 1 else fill[0])


def shuffled_images(images: list[list[Image.Image]], seed: int) -> list[list[Image.Image]]:
    """Each item's images replaced by images drawn from the other items (seeded, never the item's own)."""
    pool = [(item, image) for item, item_images in enumerate(images) for image in item_images]
    if len({owner for owner, _ in pool}) < 2:
        raise ValueError("shuffled-images needs images of at least two items")
    rng = random.Random(seed)

    def other_image(item: int) -> Image.Image:
        while True:  # an item owns a small share of the pool: few redraws
            owner, image = pool[rng.randrange(len(pool))]
            if owner != item:
                return image

    return [[other_image(item) for _ in item_images] for item, item_images in enumerate(images)]


def apply_control(dataset, control: str, seed: int = 0):
    """``dataset`` (one task's items) with the control's images in place of the items' own."""
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; choose one of {', '.join(CONTROLS)}")
    images = dataset["images"]
    if control == "blank-images":
        replaced = [[blank_image(image) for image in item_images] for item_images in images]
    else:
        replaced = shuffled_images(images, seed)
    return dataset.map(lambda _, index: {"images": replaced[index]}, with_indices=True)
