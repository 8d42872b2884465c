"""DevCV task table, answer parsing and metrics (the metric card: README.md).

Shared by the `evaluate` module (``devcv.py``), the runner and the lmms-eval plugin."""

from .items import ScoredItem, score_item
from .parsing import (
    normalize_direction,
    parse_answer,
    parse_direction_lenient,
    parse_letter,
    parse_number,
    parse_number_lenient,
)
from .scores import chance_normalized, mean_scores, overall_chance_normalized, overall_score

__all__ = [
    "ScoredItem",
    "chance_normalized",
    "mean_scores",
    "overall_chance_normalized",
    "overall_score",
    "normalize_direction",
    "parse_answer",
    "parse_direction_lenient",
    "parse_letter",
    "parse_number",
    "parse_number_lenient",
    "score_item",
]
