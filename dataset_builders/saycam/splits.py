"""Deterministic, content-free assignment of recordings to splits and to shards.

Both hash only the recording name, so every machine of a cluster array job — and every re-run —
agrees without coordination, and a recording (with all its frames and utterances) lives in
exactly one split: no frame of a validation recording is ever seen in training.
"""

from __future__ import annotations

import hashlib
import re

DEFAULT_SPLITS = {"train": 0.9, "validation": 0.1}
HELD_OUT_SPLIT = "held_out"
"""With a held-out child (leave-one-child-out): the split holding every recording of that child, and only those."""


def unit_interval(key: str, salt: str) -> float:
    """A uniform number in [0, 1) determined by ``key`` and ``salt`` only."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(recording: str, fractions: dict[str, float]) -> str:
    """The split of ``recording``: its hash falls into one of the cumulative ``fractions`` intervals."""
    position = unit_interval(recording, "split")
    cumulative = 0.0
    for split, fraction in fractions.items():
        cumulative += fraction
        if position < cumulative:
            return split
    return split  # floating-point rounding of the last boundary


def split_of_recording(recording: str, child: str, fractions: dict[str, float], hold_out_child: str | None) -> str:
    """The split of ``recording`` of ``child``: :data:`HELD_OUT_SPLIT` for the held-out child's, else by its hash."""
    return HELD_OUT_SPLIT if child == hold_out_child else assign_split(recording, fractions)


def in_shard(recording: str, shard: int, num_shards: int) -> bool:
    """Whether ``recording`` belongs to shard ``shard`` of ``num_shards`` (disjoint, covering)."""
    return int(unit_interval(recording, "shard") * num_shards) == shard


def parse_splits(spec: str) -> dict[str, float]:
    """``"train=0.9,validation=0.1"`` -> fractions.

    ``ValueError`` unless names are words and fractions are positive and sum to 1."""
    fractions = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z][\w]*", name) or name in fractions:
            raise ValueError(f"bad split name {name!r} in {spec!r}")
        try:
            fractions[name] = float(value)
        except ValueError:
            raise ValueError(f"split {name!r} needs a fraction, got {value!r}") from None
        if not fractions[name] > 0:
            raise ValueError(f"split {name!r} needs a positive fraction, got {value!r}")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {sum(fractions.values())} in {spec!r}")
    return fractions
