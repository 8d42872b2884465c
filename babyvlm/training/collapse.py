"""Watching a DINO-style run for collapse: the teacher's two entropies, judged over logging windows.

Self-distillation fails in two ways (:class:`~babyvlm.training.dino.DinoOutput` carries both monitors):

- **uniform**: every teacher target is close to uniform over the ``K`` prototypes, so it says nothing about the
  image; its mean entropy (``teacher_entropy``) sits within ``margin`` nats of ``log K``;
- **one prototype**: every image gets the same target, so the entropy of the batch-mean target
  (``teacher_marginal_entropy``) falls within ``margin`` nats of 0.

A :class:`CollapseMonitor` is fed the window averages of both (:meth:`CollapseMonitor.update`) and declares a
collapse once one of the two conditions held for ``patience`` windows in a row. Windows that end before
``watch_from_step`` are not judged: a fresh ViT starts near the uniform end and only leaves it after the learning-rate
warm-up. The first declaration is kept (:attr:`CollapseMonitor.declared`); :meth:`CollapseMonitor.record` is what a
saved folder gets as ``collapse.json`` and :func:`collapse_card_section` the card's summary of it.

>>> monitor = CollapseMonitor(num_prototypes=64, margin=0.1, patience=2)
>>> monitor.update(10, teacher_entropy=4.15, teacher_marginal_entropy=4.158) is None  # one window: not yet
True
>>> print(monitor.update(20, teacher_entropy=4.155, teacher_marginal_entropy=4.158).describe())
uniform collapse at step 20: teacher_entropy 4.155 nats, within 0.1 of log K = 4.159 (K = 64 prototypes) for 2 \
logging windows in a row (steps 1-20); teacher_marginal_entropy 4.158 nats
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

COLLAPSE_FORMAT = "babyvlm-collapse/1"
COLLAPSE_FILE = "collapse.json"
KINDS = {
    "uniform": "uniform collapse",
    "one_prototype": "one-prototype collapse",
}


@dataclass(frozen=True)
class CollapseVerdict:
    """A declared collapse: which kind, the step of the window that completed the run of bad windows, that window's
    figures, and the run of bad windows (``windows`` of them over steps ``first_step``-``step``, ``images`` images
    in all, or ``None`` where the caller did not count them)."""

    kind: str
    step: int
    teacher_entropy: float
    teacher_marginal_entropy: float
    log_k: float
    num_prototypes: int
    margin: float
    windows: int
    first_step: int
    images: int | None = None

    def describe(self) -> str:
        """One line naming the step and the figures."""
        if self.kind == "uniform":
            watched = (
                f"teacher_entropy {self.teacher_entropy:.4g} nats, within {self.margin:g} of log K = "
                f"{self.log_k:.4g} (K = {self.num_prototypes} prototypes)"
            )
            other = f"teacher_marginal_entropy {self.teacher_marginal_entropy:.4g} nats"
        else:
            watched = (
                f"teacher_marginal_entropy {self.teacher_marginal_entropy:.4g} nats, within {self.margin:g} of 0 "
                f"(log K = {self.log_k:.4g}, K = {self.num_prototypes} prototypes)"
            )
            other = f"teacher_entropy {self.teacher_entropy:.4g} nats"
        images = f", n = {self.images:,} images" if self.images is not None else ""
        return (
            f"{KINDS[self.kind]} at step {self.step}: {watched} for {self.windows} logging windows in a row "
            f"(steps {self.first_step}-{self.step}{images}); {other}"
        )


@dataclass
class CollapseMonitor:
    """Declares a collapse when the teacher's targets stay uniform, or on one prototype, for ``patience`` windows.

    Args:
        num_prototypes: ``K``, the head's prototypes (``log K`` is the entropy of a uniform target).
        margin: nats; a window is uniform when ``teacher_entropy >= log K - margin`` and one-prototype when
            ``teacher_marginal_entropy <= margin``.
        patience: consecutive bad windows (of one kind) that make a collapse.
        watch_from_step: windows ending at or before this step are not judged.
    """

    num_prototypes: int
    margin: float = 0.1
    patience: int = 10
    watch_from_step: int = 0
    streaks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    streak_starts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    streak_images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    windows_judged: int = 0
    previous_step: int = 0
    last_window: dict | None = None
    declared: CollapseVerdict | None = None

    def __post_init__(self):
        if self.num_prototypes < 2:
            raise ValueError(f"collapse monitor: num_prototypes must be >= 2, got {self.num_prototypes}")
        if not 0 < self.margin < math.log(self.num_prototypes) / 2:
            raise ValueError(
                f"collapse_margin must be in (0, log K / 2 = {math.log(self.num_prototypes) / 2:.4g}) nats, "
                f"got {self.margin}"
            )
        if self.patience < 1:
            raise ValueError(f"collapse_patience must be >= 1 logging window, got {self.patience}")

    @property
    def log_k(self) -> float:
        return math.log(self.num_prototypes)

    def update(
        self, step: int, teacher_entropy: float, teacher_marginal_entropy: float, images: int | None = None
    ) -> CollapseVerdict | None:
        """Judge the window that ends at ``step`` (averages over its ``images`` images, when counted); return the
        verdict the first time a collapse is declared."""
        first_step, self.previous_step = self.previous_step + 1, step
        self.last_window = {
            "step": step,
            "teacher_entropy": teacher_entropy,
            "teacher_marginal_entropy": teacher_marginal_entropy,
            "images": images,
        }
        if step <= self.watch_from_step:
            return None
        self.windows_judged += 1
        bad = {
            "uniform": teacher_entropy >= self.log_k - self.margin,
            "one_prototype": teacher_marginal_entropy <= self.margin,
        }
        for kind, is_bad in bad.items():
            if is_bad and self.streaks[kind] == 0:
                self.streak_starts[kind], self.streak_images[kind] = first_step, 0
            self.streaks[kind] = self.streaks[kind] + 1 if is_bad else 0
            self.streak_images[kind] = self.streak_images[kind] + (images or 0) if is_bad else 0
        if self.declared is not None:
            return None
        kind = next((kind for kind in KINDS if self.streaks[kind] >= self.patience), None)
        if kind is None:
            return None
        self.declared = CollapseVerdict(
            kind,
            step,
            teacher_entropy,
            teacher_marginal_entropy,
            self.log_k,
            self.num_prototypes,
            self.margin,
            self.streaks[kind],
            self.streak_starts[kind],
            self.streak_images[kind] if images is not None else None,
        )
        return self.declared

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so that a resumed run reaches the verdict an uninterrupted one would."""
        state = asdict(self)
        state["declared"] = asdict(self.declared) if self.declared else None
        return state

    @classmethod
    def from_state_dict(cls, state: dict) -> CollapseMonitor:
        declared = state.get("declared")
        return cls(**{**state, "declared": CollapseVerdict(**declared) if declared else None})

    def record(self) -> dict:
        """``collapse.json`` of a saved folder: the rule, what was judged, the verdict (null when none)."""
        return {
            "format": COLLAPSE_FORMAT,
            "num_prototypes": self.num_prototypes,
            "log_k": self.log_k,
            "collapse_margin": self.margin,
            "collapse_patience": self.patience,
            "watch_from_step": self.watch_from_step,
            "windows_judged": self.windows_judged,
            "last_window": self.last_window,
            "collapse": asdict(self.declared) | {"message": self.declared.describe()} if self.declared else None,
        }


def collapse_card_section(record: dict) -> str:
    """The model card's summary of ``collapse.json``."""
    rule = (
        f"collapse is declared when the teacher's per-image entropy stays within {record['collapse_margin']:g} nats "
        f"of log K = {record['log_k']:.4g} (uniform targets), or its marginal entropy within "
        f"{record['collapse_margin']:g} nats of 0 (one prototype), for {record['collapse_patience']} logging windows "
        f"in a row, judged after step {record['watch_from_step']}"
    )
    lines = ["## Collapse monitor", "", f"The run was watched for collapse: {rule}.", ""]
    if record["collapse"]:
        lines.append(f"**Collapse declared**: {record['collapse']['message']}.")
    else:
        lines.append(f"No collapse declared over {record['windows_judged']} judged logging windows.")
    last = record["last_window"]
    if last:
        counted = f", n = {last['images']:,} images" if last.get("images") is not None else ""
        lines += [
            "",
            f"Last logged window (ending at step {last['step']}{counted}): teacher entropy "
            f"{last['teacher_entropy']:.4g} nats, marginal entropy {last['teacher_marginal_entropy']:.4g} nats, "
            f"log K {record['log_k']:.4g}.",
        ]
    return "\n".join(lines) + "\n"


class CollapseError(RuntimeError):
    """A run stopped because its teacher collapsed (``stop_on_collapse``)."""
