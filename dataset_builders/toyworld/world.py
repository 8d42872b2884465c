"""The toy world's script: who records when, what each episode shows, and where every object is.

A recording is a sequence of episodes. Each episode lays out one group of 1–12 identical objects
(plus, sometimes, a small group of another kind) on a 4×3 grid so that objects never overlap,
holds still, then lets one object leave the frame — or a new one enter — in one of the eight VDR
directions, and holds still again. A parent names what is seen at each step. Everything is drawn
from a ``random.Random`` seeded with the world seed and the recording name, so the same seed gives
the same world on every machine.

With ``name_in_view`` the parent also names one object the child is looking at, as caregivers do in joint
attention: a short label (``ball``, ``a ball``, ``the red ball``) while the scene is still, before the
description, and again once it has settled, of an object still in view.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from ..annotations import EXIT_DIRECTIONS
from ..saycam.ages import DAYS_PER_MONTH, age_in_months
from . import vocabulary

GRID_COLUMNS, GRID_ROWS = 4, 3
assert GRID_COLUMNS * GRID_ROWS == vocabulary.MAX_COUNT

# Offsets of each direction in image coordinates (y grows downwards).
DIRECTION_VECTORS = {
    "top": (0, -1),
    "bottom": (0, 1),
    "left": (-1, 0),
    "right": (1, 0),
    "top left": (-1, -1),
    "top right": (1, -1),
    "bottom left": (-1, 1),
    "bottom right": (1, 1),
}
assert set(DIRECTION_VECTORS) == set(EXIT_DIRECTIONS)

STILL_BEFORE_S = 2.0
MOTION_S = 1.6
EXIT_CLIP_LEAD_S = 1.0
"""An exit clip starts this long before the object moves, so the object is first seen at rest."""
UTTERANCE_GAP_S = 0.3
MUMBLED_SHARE = 0.1
"""Share of utterances whose ASR confidence is low, so the builder's confidence filter has work."""

# Birth dates of the three synthetic children (named like the SAYCam children).
CHILDREN = {"S": date(2012, 9, 1), "A": date(2012, 5, 10), "Y": date(2013, 1, 20)}
AGE_RANGE_MONTHS = (6.0, 32.0)


@dataclass(frozen=True)
class ToyWorldScale:
    """How much toy world to generate."""

    recordings_per_child: int
    episodes_per_recording: int
    episode_seconds: float
    fps: int
    width: int
    height: int


SCALES = {
    # Seconds to build: 6 recordings of 10 s at 160×120.
    "small": ToyWorldScale(
        recordings_per_child=2, episodes_per_recording=2, episode_seconds=5.0, fps=5, width=160, height=120
    ),
    # Enough for the CPU demo to learn counts, colours, positions and exits: 18 recordings of 1 min.
    "demo": ToyWorldScale(
        recordings_per_child=6, episodes_per_recording=10, episode_seconds=6.0, fps=5, width=256, height=192
    ),
}


@dataclass(frozen=True)
class ToyObject:
    instance_id: str
    category: str
    color: str
    center: tuple[float, float]
    """Resting position (pixels)."""
    size: float
    """Side of the object's square bounding box (pixels)."""


@dataclass(frozen=True)
class Motion:
    """One object leaving the frame (``exit``) or coming in (``enter``) through ``direction``."""

    instance_id: str
    kind: str
    direction: str
    start_frame: int
    end_frame: int
    """First frame at rest (enter) or first frame entirely outside the frame (exit)."""


@dataclass(frozen=True)
class Utterance:
    start_ms: int
    end_ms: int
    text: str
    confidence: float


@dataclass(frozen=True)
class Episode:
    start_frame: int
    num_frames: int
    background: tuple[int, int, int]
    objects: tuple[ToyObject, ...]
    motion: Motion | None
    """Frame indices in ``motion`` are relative to ``start_frame``."""
    utterances: tuple[Utterance, ...]


@dataclass(frozen=True)
class RecordingScript:
    name: str
    child: str
    age_months: float
    episodes: tuple[Episode, ...]
    scale: ToyWorldScale

    @property
    def num_frames(self) -> int:
        return sum(episode.num_frames for episode in self.episodes)


def plan_world(seed: int, scale: ToyWorldScale, name_in_view: bool = False) -> list[RecordingScript]:
    """Script every recording of the world: recordings spread evenly over each child's 6–32 months;
    ``name_in_view``: the parent also labels one object in view before and after each episode's motion."""
    scripts = []
    taken: set[str] = set()
    for child, birth in CHILDREN.items():
        rng = random.Random(f"{seed}:{child}")
        low, high = AGE_RANGE_MONTHS
        for index in range(scale.recordings_per_child):
            age = low + (high - low) * (index + rng.random()) / scale.recordings_per_child
            day = birth + timedelta(days=int(age * DAYS_PER_MONTH))
            name = _unique_name(child, day, rng.randrange(8, 18), taken)
            scripts.append(_script_recording(name, child, age_in_months(birth, day), seed, scale, name_in_view))
    return scripts


def _unique_name(child: str, day: date, hour: int, taken: set[str]) -> str:
    segment = 1
    while (name := f"{child}_{day:%Y%m%d}_{hour:02d}00_{segment:02d}") in taken:
        segment += 1
    taken.add(name)
    return name


def _script_recording(
    name: str, child: str, age_months: float, seed: int, scale: ToyWorldScale, name_in_view: bool
) -> RecordingScript:
    rng = random.Random(f"{seed}:{name}")
    # Labels draw from their own generator, so that a world with them shows the same scenes as one without.
    labels = random.Random(f"{seed}:{name}:labels") if name_in_view else None
    frames_per_episode = round(scale.episode_seconds * scale.fps)
    episodes = tuple(
        _script_episode(rng, labels, index, index * frames_per_episode, frames_per_episode, scale)
        for index in range(scale.episodes_per_recording)
    )
    return RecordingScript(name=name, child=child, age_months=age_months, episodes=episodes, scale=scale)


def _script_episode(
    rng: random.Random,
    labels: random.Random | None,
    index: int,
    start_frame: int,
    num_frames: int,
    scale: ToyWorldScale,
) -> Episode:
    main_category, other_category = rng.sample(vocabulary.CATEGORIES, 2)
    main_color, other_color = rng.sample(list(vocabulary.COLORS), 2)
    main_count = rng.randint(1, vocabulary.MAX_COUNT)
    other_count = rng.randint(1, 3) if main_count <= 9 and rng.random() < 0.4 else 0

    cells = rng.sample(range(GRID_COLUMNS * GRID_ROWS), main_count + other_count)
    kinds = [(main_category, main_color)] * main_count + [(other_category, other_color)] * other_count
    objects = [
        _place(rng, f"e{index}-o{k}", category, color, cell, scale)
        for k, ((category, color), cell) in enumerate(zip(kinds, cells))
    ]

    fps = scale.fps
    motion_start = round(STILL_BEFORE_S * fps)
    motion_end = motion_start + round(MOTION_S * fps)
    roll = rng.random()
    motion = None
    if roll < 0.45:
        mover = rng.choice(objects)
        motion = Motion(mover.instance_id, "exit", rng.choice(EXIT_DIRECTIONS), motion_start, motion_end)
    elif roll < 0.8 and len(objects) < vocabulary.MAX_COUNT:
        free = sorted(set(range(GRID_COLUMNS * GRID_ROWS)) - set(cells))
        newcomer = _place(rng, f"e{index}-o{len(objects)}", main_category, main_color, rng.choice(free), scale)
        objects.append(newcomer)
        motion = Motion(newcomer.instance_id, "enter", rng.choice(EXIT_DIRECTIONS), motion_start, motion_end)

    background = tuple(rng.randint(205, 240) for _ in range(3))
    utterances = _script_utterances(rng, objects, motion, start_frame, num_frames, fps)
    if labels is not None:
        utterances = _with_labels(labels, utterances, objects, motion)
    return Episode(start_frame, num_frames, background, tuple(objects), motion, utterances)


def _place(
    rng: random.Random, instance_id: str, category: str, color: str, cell: int, scale: ToyWorldScale
) -> ToyObject:
    cell_w, cell_h = scale.width / GRID_COLUMNS, scale.height / GRID_ROWS
    column, row = cell % GRID_COLUMNS, cell // GRID_COLUMNS
    size = 0.62 * min(cell_w, cell_h) * rng.uniform(0.85, 1.0)
    # Jitter stays small enough that neighbouring objects never touch.
    x = (column + 0.5 + rng.uniform(-0.1, 0.1)) * cell_w
    y = (row + 0.5 + rng.uniform(-0.1, 0.1)) * cell_h
    return ToyObject(instance_id, category, color, (round(x, 1), round(y, 1)), round(size, 1))


def _groups(objects: list[ToyObject], hidden: set[str]) -> list[tuple[int, str, str]]:
    """``(count, color, category)`` of the visible objects, in order of first appearance."""
    counts: dict[tuple[str, str], int] = {}
    for obj in objects:
        if obj.instance_id not in hidden:
            counts[(obj.color, obj.category)] = counts.get((obj.color, obj.category), 0) + 1
    return [(count, color, category) for (color, category), count in counts.items()]


def _script_utterances(rng, objects, motion, start_frame, num_frames, fps) -> tuple[Utterance, ...]:
    frame_ms = 1000 / fps
    start_ms = start_frame * frame_ms
    gap = UTTERANCE_GAP_S * 1000
    still_end = start_ms + (motion.start_frame if motion else round(STILL_BEFORE_S * fps)) * frame_ms
    end_ms = start_ms + num_frames * frame_ms

    newcomer = {motion.instance_id} if motion and motion.kind == "enter" else set()
    leaver = {motion.instance_id} if motion and motion.kind == "exit" else set()
    intro = vocabulary.scene_utterance(rng.choice(vocabulary.INTRO_OPENERS), _groups(objects, newcomer))
    spans = [(start_ms + gap, still_end - gap, intro)]
    if motion:
        mover = next(obj for obj in objects if obj.instance_id == motion.instance_id)
        say = vocabulary.exit_utterance if motion.kind == "exit" else vocabulary.enter_utterance
        said = say(mover.color, mover.category, motion.direction, rng.randrange(2))
        spans.append((still_end, start_ms + motion.end_frame * frame_ms, said))
        settled = start_ms + motion.end_frame * frame_ms
    else:
        settled = still_end
    outro = vocabulary.scene_utterance(rng.choice(vocabulary.OUTRO_OPENERS), _groups(objects, leaver))
    spans.append((settled + gap, end_ms - gap, outro))

    return tuple(Utterance(round(begin), round(end), text, round(_confidence(rng), 3)) for begin, end, text in spans)


def _with_labels(rng, utterances, objects, motion) -> tuple[Utterance, ...]:
    """The episode's utterances with a label of an object in view at the start of the first (the still scene) and
    at the end of the last (the settled scene), each taking part of that utterance's span."""
    first, *middle, last = utterances
    newcomer = {motion.instance_id} if motion and motion.kind == "enter" else set()
    leaver = {motion.instance_id} if motion and motion.kind == "exit" else set()
    gap = UTTERANCE_GAP_S * 1000
    before = _label_then(rng, first, [o for o in objects if o.instance_id not in newcomer], gap, label_first=True)
    after = _label_then(rng, last, [o for o in objects if o.instance_id not in leaver], gap, label_first=False)
    return (*before, *middle, *after)


def _label_then(rng, said: Utterance, in_view, gap: float, label_first: bool) -> list[Utterance]:
    """``said`` and a label of one object of ``in_view`` (the child's focus, drawn at random) before or after it,
    splitting its span; ``said`` alone when nothing is in view."""
    if not in_view:
        return [said]
    looked_at = rng.choice(in_view)
    text = vocabulary.object_label(rng.randrange(len(vocabulary.LABELS)), looked_at.color, looked_at.category)
    split = said.start_ms + (said.end_ms - said.start_ms) * (0.4 if label_first else 0.5)
    label = Utterance(
        round(said.start_ms if label_first else split + gap / 2),
        round(split - gap / 2 if label_first else said.end_ms),
        text,
        round(_confidence(rng), 3),
    )
    rest = Utterance(
        round(split + gap / 2 if label_first else said.start_ms),
        round(said.end_ms if label_first else split - gap / 2),
        said.text,
        said.confidence,
    )
    return [label, rest] if label_first else [rest, label]


def _confidence(rng: random.Random) -> float:
    return rng.uniform(0.05, 0.3) if rng.random() < MUMBLED_SHARE else rng.uniform(0.55, 0.98)


def object_box(
    obj: ToyObject, motion: Motion | None, frame: int, width: int, height: int
) -> tuple[float, float, float, float] | None:
    """The object's full ``[x, y, w, h]`` box at episode frame ``frame``, or ``None`` when it is off screen.

    A moving object travels in a straight line between its resting place and the point where it
    just stops touching the frame in ``motion.direction`` (a corner for diagonal directions).
    """
    x, y = obj.center
    if motion is not None and motion.instance_id == obj.instance_id:
        progress = min(max((frame - motion.start_frame) / (motion.end_frame - motion.start_frame), 0.0), 1.0)
        if motion.kind == "enter":
            progress = 1.0 - progress
        if progress >= 1.0:
            return None
        out_x, out_y = _off_screen(obj, motion.direction, width, height)
        x, y = x + (out_x - x) * progress, y + (out_y - y) * progress
    half = obj.size / 2
    return (x - half, y - half, obj.size, obj.size)


def _off_screen(obj: ToyObject, direction: str, width: int, height: int) -> tuple[float, float]:
    dx, dy = DIRECTION_VECTORS[direction]
    half = obj.size / 2
    x = {-1: -half, 0: obj.center[0], 1: width + half}[dx]
    y = {-1: -half, 0: obj.center[1], 1: height + half}[dy]
    return x, y


def visible_box(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float] | None:
    """Clip a full box to the frame; ``None`` when nothing of it is inside."""
    left, top = max(box[0], 0.0), max(box[1], 0.0)
    right, bottom = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
    clipped = (round(left, 1), round(top, 1), round(right - left, 1), round(bottom - top, 1))
    # Slivers thinner than the 0.1 px annotation precision count as off screen.
    return clipped if clipped[2] > 0 and clipped[3] > 0 else None
