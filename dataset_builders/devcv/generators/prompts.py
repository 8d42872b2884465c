"""The original DevCV prompt wording, per task and release variant, as the generators fill it in.

The wording itself lives in the DevCV task table (``babyvlm.evaluate_metrics.devcv.tasks``, each task's
``prompts``): the released strings, with ``<image>`` where each image goes, matching the released SAYCam and
Ego4D items character for character. These functions fill in a task's template.
"""

from __future__ import annotations

from babyvlm.evaluate_metrics.devcv.tasks import TASKS, VDR_OPEN_OPTIONS

from babyvlm.chat import IMAGE_PLACEHOLDER

from ...annotations import EXIT_DIRECTIONS

assert set(VDR_OPEN_OPTIONS) == set(EXIT_DIRECTIONS)


def _fill(task: str, variant: str = "saycam", **fields: str) -> str:
    return TASKS[task].prompts.template(variant).format(**fields)


def count(plural: str) -> str:
    return _fill("count", plural=plural)


def subitize(name: str) -> str:
    return _fill("subitize", name=name)


def picture_vocabulary(word: str, variant: str) -> str:
    return _fill("picture_vocabulary", variant, word=word)


def localize(name: str) -> str:
    return _fill("localize", name=name)


def leftright(variant: str) -> str:
    return _fill("leftright", variant)


def spatialdetails(variant: str) -> str:
    return _fill("spatialdetails", variant)


def vdr_binary(frames: int, name: str, first: str, second: str) -> str:
    return _fill("vdr_binary", images=IMAGE_PLACEHOLDER * frames, name=name, first=first, second=second)


def vdr_open(frames: int, name: str) -> str:
    return _fill("vdr_open", images=IMAGE_PLACEHOLDER * frames, name=name)


def memory_round(round_index: int) -> str:
    """Round 0 shows one image; every later round two."""
    return TASKS["memory"].prompts.template(first_round=round_index == 0)


def compare_real(plural: str) -> str:
    return _fill("compare_real", plural=plural)


def compare_synthetic(plural: str) -> str:
    return _fill("compare_synthetic", plural=plural)
