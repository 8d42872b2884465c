"""The DevCV task registry: canonical names, harness keys, released file keys, answers, metrics, chance.

Single source of truth shared by the dataset builders, the item generators, the metrics, the
evaluation runner and the lmms-eval plugin; the metric card (README.md beside this file)
describes each task's rule.
"""

from __future__ import annotations

from dataclasses import dataclass

LETTERS = ("A", "B", "C", "D")
"""Option letters in option order (a DevCV item offers at most four options)."""
DIRECTIONS = ("top", "top right", "right", "bottom right", "bottom", "bottom left", "left", "top left")
"""The eight VDR answers in compass order (clockwise from top): a direction's neighbours here are its adjacent
answers."""
VDR_OPEN_OPTIONS = ("top", "bottom", "left", "right", "top right", "top left", "bottom right", "bottom left")
"""The eight VDR answers in the order the released open-VDR prompt lists them."""


@dataclass(frozen=True)
class DevCVTask:
    name: str
    """Canonical task name (dataset config name)."""
    harness_key: str
    """Key in the leaderboard result file and the lmms-eval task name."""
    display_name: str
    source_names: tuple[str, ...]
    """Names the released files use for this task (file keys / folder names)."""
    answer_type: str
    """How a generated answer is parsed: ``letter``, ``number``, ``direction`` or ``loglikelihood``."""
    metrics: tuple[str, ...]
    primary_metric: str
    chance: float
    """Expected primary metric of a uniform random guesser."""
    in_overall: bool
    """Whether the primary metric enters the overall DevCV score (the 11 leaderboard tasks)."""
    has_train_split: bool = True


TASKS: dict[str, DevCVTask] = {
    task.name: task
    for task in (
        DevCVTask(
            "picture_vocabulary",
            "baby_pv",
            "Picture Vocabulary",
            ("picture_vocabulary", "pv"),
            "letter",
            ("acc",),
            "acc",
            1 / 4,
            True,
        ),
        DevCVTask(
            "looking_while_listening",
            "baby_winoground",
            "Looking While Listening",
            ("looking_while_listening", "winoground", "lwl", "baby_winoground"),
            "loglikelihood",
            ("group_score", "image_score", "text_score"),
            "group_score",
            1 / 6,
            True,
            has_train_split=False,
        ),
        DevCVTask(
            "localize",
            "baby_localize",
            "Localization",
            ("localize", "localization"),
            "letter",
            ("acc",),
            "acc",
            1 / 4,
            True,
        ),
        DevCVTask(
            "leftright",
            "baby_leftright",
            "Left/Right",
            ("leftright", "left_right"),
            "letter",
            ("acc",),
            "acc",
            1 / 3,
            True,
        ),
        DevCVTask(
            "spatialdetails",
            "baby_spatialdetails",
            "Spatial Details",
            ("spatialdetails", "spatial_details"),
            "letter",
            ("acc",),
            "acc",
            1 / 3,
            True,
        ),
        DevCVTask(
            "vdr_binary",
            "baby_vdr_binary",
            "Visual Delayed Response (binary)",
            ("vdr-binary", "vdr_binary", "binary"),
            "direction",
            ("acc_exact", "acc_adjacent"),
            "acc_exact",
            1 / 2,
            True,
        ),
        DevCVTask(
            "vdr_open",
            "baby_vdr_open",
            "Visual Delayed Response (open)",
            ("vdr-open", "vdr_open", "open"),
            "direction",
            ("acc_exact", "acc_adjacent"),
            "acc_exact",
            1 / 8,
            True,
        ),
        DevCVTask(
            "compare_real",
            "baby_compare_real",
            "Who Has More (naturalistic)",
            # compare_count_real: the organisers' folder (leaderboard runner/config.py DATA_MAP).
            ("compare_real", "compare_count_real"),
            "letter",
            ("acc",),
            "acc",
            1 / 2,
            True,
        ),
        DevCVTask(
            "compare_synthetic",
            "baby_compare_synthetic",
            "Who Has More (synthetic)",
            ("compare_synthetic", "compare_count_synthetic"),
            "letter",
            ("acc",),
            "acc",
            1 / 2,
            True,
        ),
        DevCVTask(
            "count", "baby_count", "Object Counting", ("count", "counting"), "number", ("acc",), "acc", 1 / 12, True
        ),
        # Both test rounds of a learned object right by chance: (1/2)^2.
        DevCVTask(
            "memory",
            "baby_memory",
            "Memory",
            ("memory",),
            "letter",
            ("acc_learning", "acc_testing_raw", "acc_testing_adjusted"),
            "acc_testing_adjusted",
            1 / 4,
            True,
        ),
        DevCVTask(
            "subitize",
            "baby_subitize",
            "Subitizing",
            ("subitize", "subitizing"),
            "number",
            ("acc",),
            "acc",
            1 / 4,
            False,
            has_train_split=False,
        ),
    )
}

# Released names that stand for more than one task: the file name, the prompts or ``--task`` tell
# which (see ``recognise.py``). The organisers keep both VDR files in ``visual_delay_response/``
# (leaderboard runner/config.py DATA_MAP), the Ego4D release in ``vdr/`` (samples' MANIFEST.json); the
# NIH-stimulus and BabyView releases name folders ``vdr`` and ``who_has_more`` (dataset_builders/devcv/README.md,
# "The released toolbox").
TASK_FAMILIES: dict[str, tuple[str, ...]] = {
    "vdr": ("vdr_binary", "vdr_open"),
    "visual_delay_response": ("vdr_binary", "vdr_open"),
    "visual_delayed_response": ("vdr_binary", "vdr_open"),
    "who_has_more": ("compare_real", "compare_synthetic"),
    "whohasmore": ("compare_real", "compare_synthetic"),
    "compare": ("compare_real", "compare_synthetic"),
}

_BY_SOURCE_NAME = {
    alias: task for task in TASKS.values() for alias in (task.name, task.harness_key, *task.source_names)
}


def canonical_task(name: str) -> DevCVTask:
    """Resolve a canonical name, harness key or released file key; ``KeyError`` lists the valid names."""
    try:
        return _BY_SOURCE_NAME[name.lower()]
    except KeyError:
        raise KeyError(f"unknown DevCV task {name!r}; known tasks: {', '.join(TASKS)}") from None
