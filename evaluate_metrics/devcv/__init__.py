"""DevCV answer parsing and metrics (REFERENCE §5): shared by the `evaluate` module, the runner and lmms-eval."""

from .items import ScoredItem, score_item
from .parsing import parse_answer, parse_direction, parse_letter, parse_number
from .scores import chance_normalized, mean_scores, overall_chance_normalized, overall_score

__all__ = [
    "ScoredItem",
    "chance_normalized",
    "mean_scores",
    "overall_chance_normalized",
    "overall_score",
    "parse_answer",
    "parse_direction",
    "parse_letter",
    "parse_number",
    "score_item",
]
