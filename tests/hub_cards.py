"""Check a written README.md the way the Hub reads it: through huggingface_hub's card classes."""

import re
from pathlib import Path

from huggingface_hub import DatasetCard


def assert_hub_dataset_card(path: Path) -> DatasetCard:
    """The card parses as a `DatasetCard`; a `license: other` names its licence (`license_name`, as the Hub asks)."""
    card = DatasetCard.load(path)
    assert card.data.license, path
    if card.data.license == "other":
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]*", card.data.license_name or ""), card.data.license_name
    assert card.data.pretty_name and card.data.configs, path
    assert DatasetCard(str(card)).data.to_dict() == card.data.to_dict()  # round-trips
    return card
