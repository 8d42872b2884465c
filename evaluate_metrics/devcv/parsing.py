"""Turn a model's free-text answer into the value a DevCV metric compares (REFERENCE §5).

Each parser returns ``None`` when the text holds no answer of its kind; callers count that item
wrong and report it, they never crash on it.

>>> parse_letter("I think (b) is right")
'B'
>>> parse_number("there are seven cups, not 8")
7
>>> parse_direction("it leaves through the top-left corner")
'top left'
"""

from __future__ import annotations

import re

LETTERS = ("A", "B", "C", "D")

NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
    )
}

# Clockwise from the top, so neighbouring entries are the directions an "adjacent" answer accepts.
DIRECTIONS = ("top", "top right", "right", "bottom right", "bottom", "bottom left", "left", "top left")

# A standalone letter: not part of a longer word ("bad", "Cat" do not count).
_LETTER = re.compile(r"(?<![A-Za-z0-9])([A-Da-d])(?![A-Za-z0-9])")
_NUMBER = re.compile(r"\d+|\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)
# Compound directions come first in the alternation so "top left" is not read as "top".
_DIRECTION = re.compile(r"\b(top|bottom)[\s_-]*(left|right)\b|\b(top|bottom|left|right)\b", re.IGNORECASE)


def parse_letter(text: str) -> str | None:
    """The first standalone option letter A–D, upper-cased, case-insensitive."""
    match = _LETTER.search(text)
    return match.group(1).upper() if match else None


def parse_number(text: str) -> int | None:
    """The first run of digits or number word (zero … twelve), whichever comes first."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    token = match.group(0)
    return int(token) if token.isdigit() else NUMBER_WORDS[token.lower()]


def parse_direction(text: str) -> str | None:
    """The first direction phrase, normalised to one of :data:`DIRECTIONS` (``top-left`` -> ``top left``)."""
    match = _DIRECTION.search(text)
    if match is None:
        return None
    if match.group(3):
        return match.group(3).lower()
    return f"{match.group(1).lower()} {match.group(2).lower()}"


PARSERS = {"letter": parse_letter, "number": parse_number, "direction": parse_direction}


def parse_answer(answer_type: str, text: str) -> str | int | None:
    """Parse ``text`` with the parser of a task's ``answer_type`` (``letter``, ``number``, ``direction``)."""
    try:
        parser = PARSERS[answer_type]
    except KeyError:
        raise ValueError(f"no parser for answer type {answer_type!r}; known: {', '.join(PARSERS)}") from None
    return parser(text)
