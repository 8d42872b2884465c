"""Write a toy world to disk in the SAYCam raw layout, with its object annotations.

Output folder::

    videos/{child}/{recording}.mp4     recordings named {child}_{YYYYMMDD}_{HHMM}_{segment}
    transcripts.csv                    recording,start_ms,end_ms,text,confidence
    children.csv                       child,birth_date
    annotations/recordings.jsonl       see babyvlm.dataset_builders.annotations
    annotations/frames.jsonl
    annotations/exits.jsonl
    toyworld.json                      seed, scale and counts
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from babyvlm.staging import staged_folder

from ..annotations import (
    EXITS_FILE,
    FRAMES_FILE,
    RECORDINGS_FILE,
    ExitEvent,
    FrameAnnotation,
    ObjectBox,
    RecordingInfo,
    write_jsonl,
)
from .render import render_frame
from .video import write_mp4
from .world import (
    CHILDREN,
    EXIT_CLIP_LEAD_S,
    SCALES,
    RecordingScript,
    object_box,
    plan_world,
    visible_box,
)


@dataclass(frozen=True)
class ToyWorldSummary:
    output: Path
    recordings: int
    frames: int
    utterances: int
    exits: int


def generate_toyworld(
    output: str | Path, seed: int = 0, scale: str = "small", overwrite: bool = False, name_in_view: bool = False
) -> ToyWorldSummary:
    """Generate the toy world of ``seed`` at ``scale`` (``small`` or ``demo``) into ``output``; ``name_in_view``:
    the parent also labels one object in view (``a ball``) before and after each episode's motion.

    The world is written to a temporary sibling folder and renamed into place when complete, so
    an interrupted run never leaves a folder that looks finished. ``output`` must not exist or be
    empty unless ``overwrite`` is set.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
    output = Path(output)
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} is not empty; pass overwrite=True (--overwrite) to replace it")

    # An empty folder may be replaced without --overwrite (checked above).
    with staged_folder(output, overwrite=True) as staging:
        (staging / "annotations").mkdir()
        summary = _write_world(staging, seed, scale, name_in_view)
    return ToyWorldSummary(output=output, **summary)


def _write_world(root: Path, seed: int, scale_name: str, name_in_view: bool) -> dict[str, int]:
    scale = SCALES[scale_name]
    scripts = plan_world(seed, scale, name_in_view)
    recordings, frames, exits, transcript = [], [], [], []
    for script in scripts:
        video = Path("videos") / script.child / f"{script.name}.mp4"
        (root / video).parent.mkdir(parents=True, exist_ok=True)
        num_frames = write_mp4(root / video, _images(script), scale.fps, scale.width, scale.height)
        recordings.append(
            RecordingInfo(
                script.name,
                script.child,
                script.age_months,
                video.as_posix(),
                scale.width,
                scale.height,
                scale.fps,
                num_frames,
            )
        )
        frames.extend(_frame_annotations(script))
        exits.extend(_exit_events(script))
        transcript.extend(
            (script.name, u.start_ms, u.end_ms, u.text, u.confidence)
            for episode in script.episodes
            for u in episode.utterances
        )

    write_jsonl(root / "annotations" / RECORDINGS_FILE, recordings)
    write_jsonl(root / "annotations" / FRAMES_FILE, frames)
    write_jsonl(root / "annotations" / EXITS_FILE, exits)
    _write_csv(root / "transcripts.csv", ("recording", "start_ms", "end_ms", "text", "confidence"), transcript)
    _write_csv(
        root / "children.csv",
        ("child", "birth_date"),
        [(child, birth.isoformat()) for child, birth in CHILDREN.items()],
    )
    counts = {"recordings": len(recordings), "frames": len(frames), "utterances": len(transcript), "exits": len(exits)}
    manifest = {
        "seed": seed,
        "scale": scale_name,
        "scale_parameters": asdict(scale),
        "name_in_view": name_in_view,
        "counts": counts,
    }
    (root / "toyworld.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return counts


def _images(script: RecordingScript):
    scale = script.scale
    for episode in script.episodes:
        for frame in range(episode.num_frames):
            yield render_frame(episode, frame, scale.width, scale.height)


def _time_ms(frame_index: int, fps: int) -> int:
    return round(frame_index * 1000 / fps)


def _frame_annotations(script: RecordingScript) -> list[FrameAnnotation]:
    scale = script.scale
    annotations = []
    for episode in script.episodes:
        for frame in range(episode.num_frames):
            objects = []
            for obj in episode.objects:
                full = object_box(obj, episode.motion, frame, scale.width, scale.height)
                visible = visible_box(full, scale.width, scale.height) if full else None
                if visible:
                    objects.append(ObjectBox(obj.instance_id, obj.category, obj.color, visible))
            index = episode.start_frame + frame
            annotations.append(FrameAnnotation(script.name, index, _time_ms(index, scale.fps), tuple(objects)))
    return annotations


def _exit_events(script: RecordingScript) -> list[ExitEvent]:
    fps = script.scale.fps
    events = []
    for episode in script.episodes:
        motion = episode.motion
        if motion is None or motion.kind != "exit":
            continue
        mover = next(obj for obj in episode.objects if obj.instance_id == motion.instance_id)
        first = episode.start_frame + motion.start_frame - round(EXIT_CLIP_LEAD_S * fps)
        last = episode.start_frame + motion.end_frame
        events.append(
            ExitEvent(
                script.name,
                mover.instance_id,
                mover.category,
                mover.color,
                motion.direction,
                _time_ms(first, fps),
                _time_ms(last, fps),
            )
        )
    return events


def _write_csv(path: Path, header: tuple[str, ...], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
