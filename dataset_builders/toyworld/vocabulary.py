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


# Openers of the scene utterances, drawn at random: besides naming what is visible, the parent asks what
# toddlers are asked ("how many do you see", "point at them", "touch the new image"). The transcripts then hold the
# words of the DevCV prompts, so the tokenizer trained on them gives those words tokens of their own and the language
# model has seen them before instruction tuning.
INTRO_OPENERS = (
    "look",
    "look at the image",
    "what do you see",
    "how many do you see",
    "point at them",
    "touch the image",
    "let's try more touch the new image",
    "which of the following is the same as this",
    "the first image or the second image or the third image or the fourth image",
)
OUTRO_OPENERS = (
    "now",
    "and now",
    "which image has more",
    "do you see",
    "how many now",
    "is it the same as this",
    "which of the following contains exactly this object",
    "answer with a number",
    "respond only with one word",
)


def scene_utterance(opener: str, groups: list[tuple[int, str, str]]) -> str:
    """``"look, two red balls"``, ``"now, one red ball"``: an opener, then every group on screen."""
    return f"{opener}, {scene_phrase(groups)}"


def exit_utterance(color: str, category: str, direction: str, variant: int = 0) -> str:
    """An object leaving through ``direction``, in one of two wordings (the second as VDR asks it)."""
    if variant:
        return f"the {color} {category} leaves the frame through the {direction} side of the frame"
    return f"bye bye {color} {category}, it went out the {direction}"


def enter_utterance(color: str, category: str, direction: str, variant: int = 0) -> str:
    if variant:
        return f"a {color} {category} comes into the frame from the {direction} side"
    return f"here comes a {color} {category} from the {direction}"


# How a parent labels the one object a child is looking at (joint attention): the bare word, with an article, with
# its colour. A label is one object, so always the singular.
LABELS = ("{category}", "a {category}", "the {color} {category}", "that's a {category}", "look, a {color} {category}")


def object_label(variant: int, color: str, category: str) -> str:
    """``"ball"``, ``"a ball"``, ``"the red ball"``, ``"that's a ball"``, ``"look, a red ball"``."""
    return LABELS[variant].format(color=color, category=category)
