"""Linear probe of frozen vision features: what a checkpoint's vision tower makes linearly readable, against a
randomly initialised tower of the same shape.

Labels come from object annotations (``babyvlm.dataset_builders.annotations``: the toy world's, or any labelled
frames in that format), for the frame's main group (the most numerous objects of one category and colour; frames
where two groups tie, or without objects, are left out):

- ``category`` and ``colour`` of the main group; ``count``, how many of it are visible (1-12);
- ``position``, the image quadrant of the centre of its boxes.

Features are the tower's last hidden states: the first token and the patch grid average-pooled to at most 4x4
(which keeps coarse position), flattened. A standardised linear classifier (ridge, one-vs-rest, its penalty chosen
by leave-one-out on the training folds: a closed-form fit, seconds where a logistic regression takes minutes on a
CPU) is fitted and tested with folds grouped by recording (no recording is both trained and tested on), so every
frame gets one held-out prediction. For each label the result gives both towers' accuracies, the majority-class
rate (chance), n, and the one-sided exact McNemar p-value of the checkpoint's tower beating the random one (a
binomial test on the frames where exactly one of them is right).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from babyvlm.dataset_builders.annotations import FrameAnnotation, load_annotations
from PIL import Image
from sklearn.linear_model import RidgeClassifierCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from babyvlm.training.stages import model_parts

from ..inference import load_model_and_processor
from .scoring import SIGNIFICANCE, binomial_p_value

PROBE = "linear_probe"
LABELS = ("category", "colour", "count", "position")
POOLED_GRID = 4
# The ridge penalty, chosen per fold by leave-one-out on the training frames (closed form, so fast).
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")


def frame_labels(frame: FrameAnnotation, width: int, height: int) -> dict[str, str] | None:
    """The labels of one annotated frame, or None when it has no single main group.

    >>> from babyvlm.dataset_builders.annotations import ObjectBox
    >>> boxes = [ObjectBox(f"o{i}", "ball", "red", (10.0 + 40 * i, 10.0, 20.0, 20.0)) for i in range(2)]
    >>> frame_labels(FrameAnnotation("r", 0, 0, tuple(boxes)), 160, 120)
    {'category': 'ball', 'colour': 'red', 'count': '2', 'position': 'top left'}
    """
    groups = Counter((obj.category, obj.color) for obj in frame.objects)
    ranked = groups.most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    (category, colour), count = ranked[0]
    boxes = [obj.box for obj in frame.objects if (obj.category, obj.color) == (category, colour)]
    x = sum(box[0] + box[2] / 2 for box in boxes) / len(boxes)
    y = sum(box[1] + box[3] / 2 for box in boxes) / len(boxes)
    quadrant = QUADRANTS[2 * (y >= height / 2) + (x >= width / 2)]
    return {"category": category, "colour": colour, "count": str(count), "position": quadrant}


def labelled_frames(frames, annotations: str | Path) -> tuple[list[Image.Image], list[str], dict[str, list[str]]]:
    """Images, recordings and labels of the frames (records with ``image``, ``recording``, ``time_ms``, e.g. the
    SAYCam builder's ``frames`` corpus) that the annotations label: each frame takes the annotation nearest in time
    within half a frame period; frames without one or without a main group are left out."""
    world = load_annotations(annotations)
    by_recording: dict[str, list[FrameAnnotation]] = {}
    for frame in world.frames:
        by_recording.setdefault(frame.recording, []).append(frame)
    images, recordings, labels = [], [], {name: [] for name in LABELS}
    for index in range(len(frames)):
        record = frames[index]
        info = world.recordings.get(record["recording"])
        if info is None:
            continue
        nearest = min(
            by_recording.get(info.recording, []), key=lambda f: abs(f.time_ms - record["time_ms"]), default=None
        )
        if nearest is None or abs(nearest.time_ms - record["time_ms"]) > 500 / info.fps:
            continue
        frame_label = frame_labels(nearest, info.width, info.height)
        if frame_label is None:
            continue
        images.append(record["image"])
        recordings.append(record["recording"])
        for name in LABELS:
            labels[name].append(frame_label[name])
    if not images:
        raise ValueError(f"no frame is labelled by the annotations in {annotations}")
    return images, recordings, labels


def vision_tower(model) -> torch.nn.Module:
    """The vision tower of an image-text-to-text model (``model.model.vision_tower`` or its family's name)."""
    [prefix, *_] = model_parts(model)["vision"]
    return model.get_submodule(prefix.rstrip("."))


def random_like(tower: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A tower of the same class and config with the class's own random initialisation."""
    torch.manual_seed(seed)
    return type(tower)(tower.config).eval()


@torch.inference_mode()
def tower_features(tower: torch.nn.Module, pixel_values: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Flattened features: the first token and the patch grid pooled to at most 4x4 (mean and first token when the
    tokens form no square grid)."""
    features = []
    for start in range(0, len(pixel_values), batch_size):
        batch = pixel_values[start : start + batch_size].to(next(tower.parameters()).dtype)
        hidden = tower(pixel_values=batch, return_dict=True).last_hidden_state.float()
        first, patches = hidden[:, 0], hidden[:, 1:]
        side = math.isqrt(patches.shape[1])
        if side * side == patches.shape[1] and side > 0:
            grid = patches.reshape(len(hidden), side, side, -1).permute(0, 3, 1, 2)
            pooled = torch.nn.functional.adaptive_avg_pool2d(grid, min(side, POOLED_GRID)).flatten(1)
        else:
            pooled = patches.mean(1) if patches.shape[1] else first
        features.append(torch.cat([first, pooled], dim=-1).numpy())
    return np.concatenate(features)


def held_out_predictions(features: np.ndarray, labels: Sequence[str], groups: Sequence[str], folds: int):
    """One prediction per frame from a classifier fitted on the other recordings' frames."""
    labels = np.asarray(labels)
    predictions = np.empty(len(labels), dtype=labels.dtype)
    for train, test in GroupKFold(n_splits=folds).split(features, labels, groups):
        if len(set(labels[train])) == 1:
            predictions[test] = labels[train][0]
            continue
        classifier = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=RIDGE_ALPHAS))
        predictions[test] = classifier.fit(features[train], labels[train]).predict(features[test])
    return predictions


def linear_probe(
    model, frames, annotations: str | Path, *, seed: int = 0, folds: int = 5, limit: int | None = None
) -> dict:
    """Per label: held-out accuracy of a linear probe on ``model``'s vision tower and on a random tower of the same
    shape, chance (majority class), n and the McNemar p-value (see the module docstring)."""
    if not isinstance(model, tuple):
        model = load_model_and_processor(model)
    model, processor = model
    images, recordings, labels = labelled_frames(frames, annotations)
    if limit is not None:
        images, recordings = images[:limit], recordings[:limit]
        labels = {name: values[:limit] for name, values in labels.items()}
    folds = min(folds, len(set(recordings)))
    if folds < 2:
        raise ValueError("the linear probe needs labelled frames of at least two recordings")
    pixels = processor.image_processor([image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]
    trained = vision_tower(model)
    towers = {"checkpoint": trained, "random_init": random_like(trained, seed)}
    features = {name: tower_features(tower, pixels) for name, tower in towers.items()}
    report = {"probe": PROBE, "n": len(images), "recordings": len(set(recordings)), "folds": folds, "labels": {}}
    for name in LABELS:
        gold = np.asarray(labels[name])
        right = {tower: held_out_predictions(features[tower], gold, recordings, folds) == gold for tower in towers}
        wins = int(np.sum(right["checkpoint"] & ~right["random_init"]))
        losses = int(np.sum(~right["checkpoint"] & right["random_init"]))
        chance = Counter(gold.tolist()).most_common(1)[0][1] / len(gold)
        report["labels"][name] = {
            "classes": len(set(gold.tolist())),
            "chance": chance,
            **{f"{tower}_accuracy": float(right[tower].mean()) for tower in towers},
            "checkpoint_only_right": wins,
            "random_init_only_right": losses,
            "p_value_vs_random_init": binomial_p_value(wins, wins + losses, 0.5),
            "p_value_vs_chance": binomial_p_value(int(right["checkpoint"].sum()), len(gold), chance),
        }
        report["labels"][name]["beats_random_init"] = report["labels"][name]["p_value_vs_random_init"] < SIGNIFICANCE
    return report
