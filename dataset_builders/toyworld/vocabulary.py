"""What the toy world contains and how its parents talk about it.

Few categories with clean, distinct shapes, saturated colours far apart in RGB, and transcripts
that name exactly what is visible ("look, two red balls"), so that a tiny model can learn the
word-to-object mapping the DevCV tasks probe. Every category has a regular plural (+"s").
"""

from __future__ import annotations

CATEGORIES = ("ball", "block", "car", "star", "cup")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "blue": (31, 90, 220),
    "green": (36, 160, 60),
    "yellow": (245, 200, 20),
    "purple": (140, 60, 180),
}

NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
MAX_COUNT = len(NUMBER_WORDS)


def plural(category: str) -> str:
    return category + "s"


def group_phrase(count: int, color: str, category: str) -> str:
    """``"two red balls"`` / ``"one blue car"``."""
    return f"{NUMBER_WORDS[count - 1]} {color} {category if count == 1 else plural(category)}"


def scene_phrase(groups: list[tuple[int, str, str]]) -> str:
    """Name every group of ``(count, color, category)`` on screen; ``"no more toys"`` when empty."""
    phrases = [group_phrase(*group) for group in groups if group[0] > 0]
    return " and ".join(phrases) if phrases else "no more toys"


def intro_utterance(groups: list[tuple[int, str, str]]) -> str:
    return f"look, {scene_phrase(groups)}"


def exit_utterance(color: str, category: str, direction: str) -> str:
    return f"bye bye {color} {category}, it went out the {direction}"


def enter_utterance(color: str, category: str, direction: str) -> str:
    return f"here comes a {color} {category} from the {direction}"


def outro_utterance(groups: list[tuple[int, str, str]]) -> str:
    return f"now {scene_phrase(groups)}"
