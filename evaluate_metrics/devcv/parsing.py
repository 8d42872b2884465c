"""Turn a model's free-text answer into the value a DevCV metric compares (the metric card, README.md).

The official parsers are the authors' scoring helpers (``ShawnKing98/BabyLLaVA-V2``, ``utils.py``),
applied to the gold answer and the prediction alike; the leaderboard scores with them. Each is
re-implemented here from its definition and cited next to its rule. The ``*_lenient`` parsers are
this project's deliberate extras: they feed separately named metrics, never the primary ones.

Each parser returns ``None`` when the text holds no answer of its kind; callers count that answer
wrong and report it, they never crash on it.

>>> parse_letter("I think (b) is right")
'B'
>>> parse_number("there are seven cups, not 8"), parse_number("twelve cups"), parse_number_lenient("twelve cups")
(7, None, 12)
>>> normalize_direction(" Top Left\\n"), normalize_direction("Left."), parse_direction_lenient("the top-left corner")
('top left', None, 'top left')
"""

from __future__ import annotations

import re

from .tasks import DIRECTIONS

_NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)
# utils.py `SPELL_TO_NUM`: the official number words stop at ten.
NUMBER_WORDS = {word: value for value, word in enumerate(_NUMBER_WORDS[:11])}
# Extra (``acc_lenient``): counts of up to twelve objects may also be answered in words.
NUMBER_WORDS_LENIENT = {word: value for value, word in enumerate(_NUMBER_WORDS)}

# utils.py `extract_letter`: the first A-D between word boundaries, upper-cased ("bed", "a2" hold none).
_LETTER = re.compile(r"\b([A-Da-d])\b")
# utils.py `extract_number`: the lower-cased text is cut into digit runs and ASCII letter runs.
_NUMBER_TOKEN = re.compile(r"\d+|[a-zA-Z]+")
# Extra: compound directions come first in the alternation so "top left" is not read as "top".
_DIRECTION = re.compile(r"\b(top|bottom)[\s_-]*(left|right)\b|\b(top|bottom|left|right)\b", re.IGNORECASE)


def parse_letter(text: str) -> str | None:
    """The first standalone option letter A–D, upper-cased (``utils.py`` ``extract_letter``)."""
    match = _LETTER.search(text)
    return match.group(1).upper() if match else None


def _first_number(text: str, words: dict[str, int]) -> int | None:
    # utils.py `extract_number`: the first token that is a digit run or a number word decides;
    # other tokens ("cups", "twenty") are skipped.
    for token in _NUMBER_TOKEN.findall(text.lower()):
        if token.isdigit():
            return int(token)
        if token in words:
            return words[token]
    return None


def parse_number(text: str) -> int | None:
    """The first digit run or number word ``zero`` … ``ten`` (``utils.py`` ``extract_number``)."""
    return _first_number(text, NUMBER_WORDS)


def parse_number_lenient(text: str) -> int | None:
    """Extra: :func:`parse_number` that also reads ``eleven`` and ``twelve``."""
    return _first_number(text, NUMBER_WORDS_LENIENT)


def normalize_direction(text: str) -> str | None:
    """The whole answer as VDR compares it, or ``None`` when that is not one of the 8 direction words.

    No parsing (``utils.py`` ``calc_vdr_task_accuracy`` compares whole strings, lower-cased): only the
    surrounding whitespace goes, which lmms-eval strips from generated answers
    (``ConfigurableTask.process_results``) and the harness from gold answers. ``"Left."`` and
    ``"top-left"`` are not directions.
    """
    answer = text.strip().lower()
    return answer if answer in DIRECTIONS else None


def parse_direction_lenient(text: str) -> str | None:
    """Extra: the first direction phrase anywhere in the text, normalised (``top-left`` -> ``top left``)."""
    match = _DIRECTION.search(text)
    if match is None:
        return None
    if match.group(3):
        return match.group(3).lower()
    return f"{match.group(1).lower()} {match.group(2).lower()}"


PARSERS = {"letter": parse_letter, "number": parse_number, "direction": normalize_direction}
LENIENT_PARSERS = {"number": parse_number_lenient, "direction": parse_direction_lenient}


def parse_answer(answer_type: str, text: str) -> str | int | None:
    """Parse ``text`` with the official parser of a task's ``answer_type`` (``letter``, ``number``, ``direction``)."""
    try:
        parser = PARSERS[answer_type]
    except KeyError:
        raise ValueError(f"no parser for answer type {answer_type!r}; known: {', '.join(PARSERS)}") from None
    return parser(text)
