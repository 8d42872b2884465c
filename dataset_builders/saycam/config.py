"""Every setting that shapes the corpora, in one frozen object that workers receive and runs compare."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from .layout import CHILDREN
from .records import CHAT_FORMATS, CORPORA
from .splits import DEFAULT_SPLITS, HELD_OUT_SPLIT


@dataclass(frozen=True)
class BuildConfig:
    corpora: tuple[str, ...] = CORPORA
    frames_fps: float = 1.0
    """Sampling rate of the ``frames`` corpus."""
    pair_fps: float = 1.0
    """Rate of the frames taken inside an utterance (image–utterance pairs, interleaved turn candidates)."""
    min_confidence: float = 0.3
    """Utterances need ASR confidence above this to enter any chat corpus."""
    clip_model: str | None = None
    min_clip_score: float = 0.2
    xclip_model: str | None = None
    min_xclip_score: float = 0.1
    clip_frames: int = 8
    """Frames per video–utterance clip, sampled uniformly."""
    min_clip_seconds: float = 1.0
    max_clip_seconds: float = 10.0
    min_turns: int = 4
    max_turns: int = 8
    turn_stride: int = 4
    """Utterances between the starts of consecutive interleaved windows."""
    mix_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CHAT_FORMATS, 1.0))
    """Copies of each format's records in ``mix``: 0.5 keeps a deterministic half, 2 repeats every record."""
    splits: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    """Fractions of the recordings per split (of the other children's, when a child is held out)."""
    hold_out_child: str | None = None
    """Leave-one-child-out: every recording of this child goes to the ``held_out`` split, and only those."""
    jpeg_quality: int = 90

    def __post_init__(self):
        unknown = sorted(set(self.corpora) - set(CORPORA))
        if unknown or not self.corpora:
            raise ValueError(f"unknown corpora {unknown or '(none given)'}; choose from {', '.join(CORPORA)}")
        if set(self.mix_weights) != set(CHAT_FORMATS) or any(w < 0 for w in self.mix_weights.values()):
            raise ValueError(
                f"mix weights must give a non-negative weight to each of {list(CHAT_FORMATS)}, got {self.mix_weights}"
            )
        if not 1 <= self.min_turns <= self.max_turns or self.turn_stride < 1:
            raise ValueError(
                f"need 1 <= min_turns ({self.min_turns}) <= max_turns ({self.max_turns}) and turn_stride >= 1"
            )
        if self.hold_out_child is not None and self.hold_out_child not in CHILDREN:
            raise ValueError(
                f"unknown child {self.hold_out_child!r} to hold out; the children are {', '.join(CHILDREN)}"
            )
        if self.hold_out_child is not None and HELD_OUT_SPLIT in self.splits:
            raise ValueError(
                f"split {HELD_OUT_SPLIT!r} holds the held-out child's recordings; name the other splits otherwise"
            )
        if self.frames_fps <= 0 or self.pair_fps <= 0 or self.clip_frames < 1:
            raise ValueError("frames_fps and pair_fps must be positive and clip_frames at least 1")

    def formats_needed(self) -> tuple[str, ...]:
        """Chat formats to compute: those requested, plus those ``mix`` draws from."""
        mixed = {name for name, weight in self.mix_weights.items() if weight > 0} if "mix" in self.corpora else set()
        return tuple(name for name in CHAT_FORMATS if name in self.corpora or name in mixed)

    def to_dict(self) -> dict:
        """JSON-ready settings (as written to the build report)."""
        return {**asdict(self), "corpora": list(self.corpora)}

    def fingerprint(self) -> str:
        """Changes whenever a setting would change a record, so a resumed build cannot mix settings."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
