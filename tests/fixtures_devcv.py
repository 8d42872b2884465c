"""Writers of tiny synthetic DevCV releases in the three released layouts (builder and audit tests).

Items follow the released prompt shapes of dataset_builders/devcv/README.md ("The released toolbox").
Images are small seeded-noise PNGs; in
Left/Right the gold option is a byte copy of the query and the distractors are mirrored copies,
in Spatial Details the query is a crop of the gold frame (as in the SAYCam release).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from PIL import Image, ImageOps

ALL_TASKS = tuple(TASKS)
VDR_OPEN_WORDS = "'top', 'bottom', 'left', 'right', 'top right', 'top left', 'bottom right', or 'bottom left'"


def noise_image(seed: int, size: tuple[int, int] = (24, 16)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def release_name(task: str) -> str:
    """The folder / file key the release uses for a canonical task (``vdr_binary`` -> ``vdr-binary``)."""
    return TASKS[task].source_names[0]


def _turns(*pairs: str) -> list[dict]:
    return [{"from": "human" if index % 2 == 0 else "gpt", "value": value} for index, value in enumerate(pairs)]


def _content(task: str, index: int, seed: int) -> tuple[dict, list[Image.Image]]:
    """One released item (without ``id`` and ``image``) and its images in placeholder order."""
    letter = "ABCD"[index % 4]
    if task == "count":
        return {"conversations": _turns("<image> How many cups do you see?", str(index + 2))}, [noise_image(seed)]
    if task == "subitize":
        return {"conversations": _turns("<image> How many of cup do you see?", str(index % 3 + 1))}, [noise_image(seed)]
    if task == "picture_vocabulary":
        prompt = (
            "<image><image><image><image>\n Touch the image of 'ball' (A) the first image (B) the second image "
            "(C) the third image (D) the fourth image."
        )
        return {"conversations": _turns(prompt, letter)}, [noise_image(seed + k) for k in range(4)]
    if task == "localize":
        prompt = (
            "<image> Point at the cup. Is it in the (A) top left or (B) top right or (C) bottom left or "
            "(D) bottom right of the image?"
        )
        return {"bb": [1.0, 2.5, 10.0, 6.0], "conversations": _turns(prompt, letter)}, [noise_image(seed)]
    if task == "leftright":
        query, gold = noise_image(seed), index % 3
        options = [query if k == gold else ImageOps.mirror(query) for k in range(3)]
        prompt = (
            "<image> Which of the following is the same as this? Answer with a number. "
            "(A) <image> (B) <image> (C) <image>"
        )
        return {"conversations": _turns(prompt, "ABC"[gold])}, [query, *options]
    if task == "spatialdetails":
        frames, gold = [noise_image(seed + k, (48, 32)) for k in range(3)], index % 3
        prompt = (
            "<image> Which of the following contains exactly this object? (A) <image> (B) <image> (C) <image>. "
            "Pay attention to details and give only a letter A-C."
        )
        return {"conversations": _turns(prompt, "ABC"[gold])}, [frames[gold].crop((20, 8, 36, 20)), *frames]
    if task in ("vdr_binary", "vdr_open"):
        question = (
            "does the cup leave the frame through the left side of the frame or the right side of the frame? "
            "respond ONLY with 'left' or 'right'."
            if task == "vdr_binary"
            else f"which part of the frame does the cup leave from? respond ONLY with one of: {VDR_OPEN_WORDS}."
        )
        answer = ("left", "right")[index % 2] if task == "vdr_binary" else ("top left", "bottom")[index % 2]
        item = {"conversations": _turns("<image><image><image> " + question, answer), "gif": f"images/clip_{index}.gif"}
        return item, [noise_image(seed + k) for k in range(3)]
    if task == "memory":
        rounds = _turns(
            "Touch the new image. (A) <image>",
            "A",
            "Let's try more. Touch the new image. (A) <image> (B) <image>",
            "B",
            "Let's try more. Touch the new image. (A) <image> (B) <image>",
            "A",
        )
        item = {"labels": [["cup"], ["cup", "dog"], ["ball", "dog"]], "conversations": rounds}
        return item, [noise_image(seed + k) for k in range(5)]
    if task in ("compare_real", "compare_synthetic"):
        prompt = (
            "Which image has more cups? (A) <image> (B) <image>"
            if task == "compare_real"
            else "Which image has more cups? Answer (A) <image> (B) <image>"
        )
        item = {"conversations": _turns(prompt, "AB"[index % 2])}
        if task == "compare_real":
            item = {"notes": "first should have 2 second should have 1", **item}
        return item, [noise_image(seed), noise_image(seed + 1)]
    if task == "looking_while_listening":
        return {"phrases": ["a red ball", "a blue cup"]}, [noise_image(seed), noise_image(seed + 1)]
    raise KeyError(task)


def write_items(data_root: Path, image_dir: str, task: str, split: str, n: int) -> list[dict]:
    """Write ``n`` items' images under ``data_root/image_dir``; returns the released items (paths relative to
    ``data_root``)."""
    items = []
    for index in range(n):
        seed = zlib.crc32(f"{task}/{split}/{index}".encode())  # distinct, reproducible images per item
        content, images = _content(task, index, seed)
        paths = []
        for position, image in enumerate(images):
            relative = f"{image_dir}/{task}_{split}_{index:02d}_{position}.png"
            (data_root / relative).parent.mkdir(parents=True, exist_ok=True)
            image.save(data_root / relative)
            paths.append(relative)
        items.append({"id": f"{task}_{split}_{index}", **content, "image": paths})
    return items


def write_json(path: Path, items: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items, indent=2))


def write_split_layout(
    root: Path, tasks=ALL_TASKS, splits=("train", "val", "test"), n: int = 2
) -> dict[tuple[str, str], list[dict]]:
    """``<root>/<split>/<task>/data.json`` (the SAYCam release layout); returns the items per (task, split folder)."""
    written = {}
    for split in splits:
        for task in tasks:
            folder = root / split / release_name(task)
            written[task, split] = items = write_items(folder, "images", task, split, n)
            write_json(folder / "data.json", items)
    return written


def write_task_layout(root: Path, tasks=ALL_TASKS, n: int = 2) -> dict[str, list[dict]]:
    """``<root>/<task>/data.json`` (the Ego4D release layout, one split)."""
    written = {}
    for task in tasks:
        folder = root / release_name(task)
        written[task] = items = write_items(folder, "images", task, "test", n)
        write_json(folder / "data.json", items)
    return written


def write_flat_layout(
    root: Path, image_root: Path, tasks=ALL_TASKS, split: str = "test", n: int = 2
) -> dict[str, list[dict]]:
    """``<root>/<task>_<split>.json`` with image paths relative to ``image_root``."""
    written = {}
    for task in tasks:
        written[task] = items = write_items(image_root, f"{task}_images", task, split, n)
        write_json(root / f"{release_name(task)}_{split}.json", items)
    return written
