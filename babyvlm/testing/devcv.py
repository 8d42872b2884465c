"""Tiny synthetic models and DevCV dataset folders for the evaluation tests and benchmarks.

Everything is built in-process from a seed (random weights, a tokenizer trained on a few
sentences, random images), so nothing is downloaded.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import yaml
from datasets import Dataset, Features, Value
from PIL import Image

from babyvlm.chat import IMAGES_FEATURE, MESSAGES_FEATURE
from babyvlm.dataset_builders.devcv.schema import DEVCV_FEATURES
from babyvlm.evaluate_metrics.devcv.tasks import DIRECTIONS, canonical_task

from .models import IMAGE_SIZE, save_tiny_model


def save_tiny_llava(directory: str | Path, seed: int = 0, sliding_window: int | None = None) -> Path:
    """Save a tiny random Llava-1.5 model and its processor (see :func:`babyvlm.testing.save_tiny_model`).

    With ``sliding_window``, the language model is a Mistral with that attention window, whose cache
    the dialogue key/value reuse does not support (the tests' other kind of model).
    """
    return save_tiny_model("llava", directory, seed, sliding_window=sliding_window)


def _image(rng: random.Random) -> Image.Image:
    pixels = np.array([rng.randrange(256) for _ in range(IMAGE_SIZE * IMAGE_SIZE * 3)], dtype=np.uint8)
    return Image.fromarray(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE, 3))


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


_IMAGE_BLOCK = {"type": "image", "text": None}


def _row(
    task_name: str, item_id: str, split: str, messages: list[dict], images: list, answer: list[str], **columns
) -> dict:
    task = canonical_task(task_name)
    row = {
        "id": item_id,
        "original_id": item_id,
        "task": task.name,
        "harness_key": task.harness_key,
        "source": "synthetic",
        "source_task": task.source_names[0],
        "split": split,
        "messages": messages,
        "images": images,
        "answer": answer,
        "choices": [],
        "labels": [],
        "bbox": [],
        "notes": "",
        "gif": "",
        "image_paths": [],
        "extra": "{}",
        "provenance": "{}",
    }
    row.update(columns)
    return row


def _single_turn(task_name, item_id, split, content, images, answer) -> dict:
    messages = [{"role": "user", "content": content}, {"role": "assistant", "content": [_text(answer)]}]
    return _row(task_name, item_id, split, messages, images, [answer])


def _memory_item(item_id: str, split: str, rng: random.Random) -> dict:
    """15 rounds: 5 learning rounds (each adds a new object), then each learned object tested twice."""
    objects = [f"object {k}" for k in range(15)]
    crops = {name: _image(rng) for name in objects}
    learned, fresh = objects[:5], iter(objects[5:])
    pairs = [[learned[0]]] + [[learned[k - 1], learned[k]] for k in range(1, 5)]
    news = list(learned)
    for old in rng.sample(learned * 2, 10):
        pairs.append([old, next(fresh)])
        news.append(pairs[-1][1])
    messages, images, answers, labels = [], [], [], []
    for round_index, (pair, new) in enumerate(zip(pairs, news)):
        rng.shuffle(pair)
        prefix = "Touch the new image." if round_index == 0 else "Let's try more. Touch the new image."
        # Blocks as the released text splits at its placeholders (text_to_content): no two text blocks in a row.
        content = []
        for letter, name in zip("AB", pair):
            content += [_text(f"{'' if content else prefix} ({letter}) "), _IMAGE_BLOCK]
            images.append(crops[name])
        answers.append("AB"[pair.index(new)])
        labels.append(pair)
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": [_text(answers[-1])]}]
    return _row("memory", item_id, split, messages, images, answers, labels=labels)


PV_PROMPT = (
    "\n Touch the image of 'dog' (A) the first image (B) the second image (C) the third image (D) the fourth image."
)
COUNT_PROMPT = " How many cups do you see?"
VDR_OPEN_PROMPT = (
    " which part of the frame does the ball leave from? respond ONLY with one of: 'top', 'bottom', 'left', 'right',"
    " 'top right', 'top left', 'bottom right', or 'bottom left'."
)


def _picture_vocabulary_item(item_id: str, split: str, rng: random.Random) -> dict:
    content = [_IMAGE_BLOCK] * 4 + [_text(PV_PROMPT)]
    return _single_turn(
        "picture_vocabulary", item_id, split, content, [_image(rng) for _ in range(4)], rng.choice("ABCD")
    )


def _count_item(item_id: str, split: str, rng: random.Random) -> dict:
    content = [_IMAGE_BLOCK, _text(COUNT_PROMPT)]
    return _single_turn("count", item_id, split, content, [_image(rng)], str(rng.randint(1, 12)))


def _vdr_open_item(item_id: str, split: str, rng: random.Random) -> dict:
    frames = rng.randint(5, 9)
    content = [_IMAGE_BLOCK] * frames + [_text(VDR_OPEN_PROMPT)]
    return _single_turn(
        "vdr_open", item_id, split, content, [_image(rng) for _ in range(frames)], rng.choice(DIRECTIONS)
    )


def _lwl_item(item_id: str, split: str, rng: random.Random) -> dict:
    images = [_image(rng), _image(rng)]
    return _row("looking_while_listening", item_id, split, [], images, [], choices=["a red ball", "a blue car"])


_ITEM_MAKERS = {
    "picture_vocabulary": _picture_vocabulary_item,
    "count": _count_item,
    "vdr_open": _vdr_open_item,
    "memory": _memory_item,
    "looking_while_listening": _lwl_item,
}


def synthetic_items(task_name: str, count: int, split: str = "test", seed: int = 0) -> list[dict]:
    """``count`` random DevCV rows of a task (picture_vocabulary, count, vdr_open, memory or
    looking_while_listening) in the DevCV schema, with PIL images."""
    task = canonical_task(task_name)
    if task.name not in _ITEM_MAKERS:
        raise ValueError(f"no synthetic items for task {task.name!r}; available: {', '.join(_ITEM_MAKERS)}")
    rng = random.Random(f"{task.name}-{seed}")
    return [_ITEM_MAKERS[task.name](f"{task.name}_{index:04d}", split, rng) for index in range(count)]


def write_devcv_folder(directory: str | Path, rows_by_task: dict[str, list[dict]], split: str = "test") -> Path:
    """Write rows as a DevCV dataset folder: ``<task>/<split>-00000-of-00001.parquet`` per task plus a
    README.md whose YAML ``configs`` block lets ``datasets.load_dataset(directory, task)`` find them."""
    directory = Path(directory)
    configs = []
    for task_name, rows in rows_by_task.items():
        (directory / task_name).mkdir(parents=True, exist_ok=True)
        Dataset.from_list(rows, features=DEVCV_FEATURES).to_parquet(
            directory / task_name / f"{split}-00000-of-00001.parquet"
        )
        configs.append(
            {"config_name": task_name, "data_files": [{"split": split, "path": f"{task_name}/{split}-*.parquet"}]}
        )
    (directory / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}, sort_keys=False) + "---\n")
    return directory


def write_pairs_corpus(
    directory: str | Path, count: int, recordings: int = 2, split: str = "validation", seed: int = 0
) -> Path:
    """Write ``count`` random image-utterance pairs from ``recordings`` recordings as a corpus folder of the layout
    ``babyvlm data saycam`` gives ``image_utterance`` (one ``default`` config), for the matching probe."""
    directory, rng = Path(directory), random.Random(f"pairs-{seed}")
    words = ["ball", "dog", "cup", "shoe", "look", "the", "red", "big"]
    rows = [
        {
            "id": f"pair_{index:04d}",
            "recording": f"rec{index % recordings}",
            "messages": [
                {"role": "user", "content": [_IMAGE_BLOCK]},
                {"role": "assistant", "content": [_text(" ".join(rng.choices(words, k=3)))]},
            ],
            "images": [_image(rng)],
        }
        for index in range(count)
    ]
    features = Features(
        {"id": Value("string"), "recording": Value("string"), "messages": MESSAGES_FEATURE, "images": IMAGES_FEATURE}
    )
    (directory / "data" / split).mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows, features=features).to_parquet(directory / "data" / split / "00000.parquet")
    configs = [{"config_name": "default", "data_files": [{"split": split, "path": f"data/{split}/*.parquet"}]}]
    (directory / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}, sort_keys=False) + "---\n")
    return directory


def assert_lmms_eval_scores_equal(lmms_output: Path, runner_output: Path, harness_keys: list[str]) -> None:
    """The metrics of an lmms-eval run (its ``*_results.json``) equal a ``babyvlm eval`` run's ``results.json``."""
    import json

    import pytest

    (results_file,) = Path(lmms_output).rglob("*_results.json")
    lmms_results = json.loads(results_file.read_text())["results"]
    runner_results = json.loads((Path(runner_output) / "results.json").read_text())["results"]
    assert set(runner_results) == set(harness_keys)
    for task, metrics in runner_results.items():
        for metric, value in metrics.items():
            assert lmms_results[task][f"{metric},none"] == pytest.approx(value, abs=1e-12), (task, metric)
