"""Linear probe of frozen vision features: what a checkpoint's vision tower makes linearly readable, against a
randomly initialised tower of the same shape.

Any labelled frames will do; ``babyvlm probe linear`` reads them from object annotations
(:func:`babyvlm.dataset_builders.labels.labelled_frames`: the category, colour, count and position of each frame's
main group of objects, in the toy world).

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

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import RidgeClassifierCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from babyvlm.training.stages import model_parts

from ..inference import load_model_and_processor
from .scoring import SIGNIFICANCE, binomial_p_value

PROBE = "linear_probe"
POOLED_GRID = 4
# The ridge penalty, chosen per fold by leave-one-out on the training frames (closed form, so fast).
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


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
    model,
    images: Sequence[Image.Image],
    labels: dict[str, Sequence[str]],
    recordings: Sequence[str],
    *,
    seed: int = 0,
    folds: int = 5,
) -> dict:
    """Per label (``labels``: name -> one class per image): held-out accuracy of a linear probe on ``model``'s
    vision tower (a model folder, or a loaded ``(model, processor)``) and on a random tower of the same shape,
    chance (majority class), n and the McNemar p-value (see the module docstring). Folds never split a recording."""
    if not isinstance(model, tuple):
        model = load_model_and_processor(model)
    model, processor = model
    if not images or any(len(values) != len(images) for values in labels.values()) or len(recordings) != len(images):
        raise ValueError("the linear probe needs one label of each kind and one recording per image")
    folds = min(folds, len(set(recordings)))
    if folds < 2:
        raise ValueError("the linear probe needs labelled frames of at least two recordings")
    pixels = processor.image_processor([image.convert("RGB") for image in images], return_tensors="pt")["pixel_values"]
    trained = vision_tower(model)
    towers = {"checkpoint": trained, "random_init": random_like(trained, seed)}
    features = {name: tower_features(tower, pixels) for name, tower in towers.items()}
    report = {"probe": PROBE, "n": len(images), "recordings": len(set(recordings)), "folds": folds, "labels": {}}
    for name, values in labels.items():
        gold = np.asarray(values)
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
