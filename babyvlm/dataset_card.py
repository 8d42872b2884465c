"""A dataset folder's card (README.md) is read by 🤗 datasets for its `configs`; a YAML header that does not parse
would surface as a bare `yaml` error naming no file. :func:`check_card_header` names the card and the line."""

from __future__ import annotations

from pathlib import Path

import yaml


def check_card_header(folder: str | Path) -> None:
    """Raise `ValueError` naming `folder`'s README.md when its `---` YAML header does not parse or is not a mapping;
    a folder without a card, or a card without a header, passes (the caller says what it needs)."""
    card = Path(folder) / "README.md"
    if not card.is_file():
        return
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return
    header = text[3:].split("\n---", 1)[0]
    try:
        metadata = yaml.safe_load(header)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ValueError(f"{card}: the dataset card's YAML header does not parse ({problem}{where})") from None
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"{card}: the dataset card's YAML header is a {type(metadata).__name__}, not a mapping")
