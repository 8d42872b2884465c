"""The original DevCV prompt wording, per task and release variant (see dataset_builders/devcv/README.md).

Prompts are built as released strings, with ``<image>`` where each image goes, and match the
released SAYCam and Ego4D items character for character. The Ego4D release differs in three tasks:
Picture Vocabulary puts its images inline, Left/Right drops "Answer with a number", and Spatial
Details asks for "a letter" instead of "only a letter".
"""

from __future__ import annotations

from babyvlm.evaluate_metrics.devcv.tasks import LETTERS, VDR_OPEN_OPTIONS

from babyvlm.chat import IMAGE_PLACEHOLDER

from ...annotations import EXIT_DIRECTIONS

VARIANTS = ("saycam", "ego4d")
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
"""Localization options in prompt order: (A) top left ... (D) bottom right."""
ORDINALS = ("first", "second", "third", "fourth")
assert set(VDR_OPEN_OPTIONS) == set(EXIT_DIRECTIONS)


def check_variant(variant: str) -> str:
    """Return ``variant`` when it is a known release variant, else raise ``ValueError`` listing them."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown prompt variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


def _images(count: int) -> str:
    return IMAGE_PLACEHOLDER * count


def count(plural: str) -> str:
    return f"{IMAGE_PLACEHOLDER} How many {plural} do you see?"


def subitize(name: str) -> str:
    return f"{IMAGE_PLACEHOLDER} How many of {name} do you see?"


def picture_vocabulary(word: str, variant: str) -> str:
    if check_variant(variant) == "ego4d":
        options = " ".join(f"({letter}){IMAGE_PLACEHOLDER}" for letter in LETTERS)
        return f"Touch the image of '{word}' {options}"
    options = " ".join(f"({letter}) the {ordinal} image" for letter, ordinal in zip(LETTERS, ORDINALS))
    return f"{_images(4)}\n Touch the image of '{word}' {options}."


def localize(name: str) -> str:
    options = " or ".join(f"({letter}) {quadrant}" for letter, quadrant in zip(LETTERS, QUADRANTS))
    return f"{IMAGE_PLACEHOLDER} Point at the {name}. Is it in the {options} of the image?"


def _lettered_images(count: int) -> str:
    return " ".join(f"({letter}) {IMAGE_PLACEHOLDER}" for letter in LETTERS[:count])


def leftright(variant: str) -> str:
    instruction = "" if check_variant(variant) == "ego4d" else " Answer with a number."
    return f"{IMAGE_PLACEHOLDER} Which of the following is the same as this?{instruction} {_lettered_images(3)}"


def spatialdetails(variant: str) -> str:
    letter = "a letter" if check_variant(variant) == "ego4d" else "only a letter"
    return (
        f"{IMAGE_PLACEHOLDER} Which of the following contains exactly this object? {_lettered_images(3)}. "
        f"Pay attention to details and give {letter} A-C."
    )


def vdr_binary(frames: int, name: str, first: str, second: str) -> str:
    return (
        f"{_images(frames)} does the {name} leave the frame through the {first} side of the frame or the "
        f"{second} side of the frame? respond ONLY with '{first}' or '{second}'."
    )


def vdr_open(frames: int, name: str) -> str:
    quoted = [f"'{direction}'" for direction in VDR_OPEN_OPTIONS]
    return (
        f"{_images(frames)} which part of the frame does the {name} leave from? "
        f"respond ONLY with one of: {', '.join(quoted[:-1])}, or {quoted[-1]}."
    )


def memory_round(round_index: int) -> str:
    """Round 0 shows one image; every later round two."""
    if round_index == 0:
        return f"Touch the new image. {_lettered_images(1)}"
    return f"Let's try more. Touch the new image. {_lettered_images(2)}"


def compare_real(plural: str) -> str:
    return f"Which image has more {plural}? {_lettered_images(2)}"


def compare_synthetic(plural: str) -> str:
    return f"Which image has more {plural}? Answer {_lettered_images(2)}"
