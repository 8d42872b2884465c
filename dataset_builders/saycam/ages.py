"""Children's birth dates and the age in months of every recording."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .layout import CHILDREN
from .tables import DEFAULT_ENCODING, MalformedRow, iter_rows

DAYS_PER_MONTH = 30.4375


def read_children(path: str | Path, encoding: str = DEFAULT_ENCODING) -> dict[str, date]:
    """Read a ``child,birth_date`` table (ISO dates); ``ValueError`` names the row and field of bad input."""
    births = {}
    for row_number, row in enumerate(iter_rows(path, encoding), start=1):
        where = f"{path} row {row_number}"
        if isinstance(row, MalformedRow):
            raise ValueError(f"{where}: {row}")
        child, birth = row.get("child"), row.get("birth_date")
        if child not in CHILDREN:
            raise ValueError(f"{where}: field 'child' must be one of {list(CHILDREN)}, got {child!r}")
        if isinstance(birth, date):
            births[child] = birth
            continue
        try:
            births[child] = date.fromisoformat(str(birth))
        except ValueError:
            raise ValueError(f"{where}: field 'birth_date' must be an ISO date YYYY-MM-DD, got {birth!r}") from None
    return births


def age_in_months(birth: date, day: date) -> float:
    """Age on ``day`` in (average-length) months, to two decimals."""
    return round((day - birth).days / DAYS_PER_MONTH, 2)
