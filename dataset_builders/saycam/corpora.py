"""The records of every corpus for one recording, with the outcome of each utterance.

Rules, in the order they apply to an utterance offered to a chat format:

1. failed ``missing_video`` / ``corrupt_video`` when the recording's video is absent or unreadable;
2. filtered ``low_confidence`` when its ASR confidence is not above ``min_confidence``;
3. video–utterance only: filtered ``too_short`` / ``too_long`` outside the clip length bounds;
4. failed ``beyond_video_end`` (or ``truncated_video`` when decoding broke) when a frame it needs
   is past the decoded end of the video;
5. image–utterance: a pair is dropped when its CLIP score is not above ``min_clip_score``; an
   utterance with no pair left is filtered ``clip_similarity``. Video–utterance: filtered
   ``xclip_similarity`` likewise. Interleaved: filtered ``outside_window`` when no window covers it.

Frame times. Pairs and interleaved candidates: the multiples of ``1/pair_fps`` inside the span
(the span's midpoint when none falls inside). Clips: the centres of ``clip_frames`` equal parts of
the span. Interleaved turn frame: the candidate with the highest CLIP score when a CLIP model is
given, else the candidate closest to the utterance's midpoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import BuildConfig
from .filters import ClipScorer, XClipScorer, decode_jpeg
from .frames import ExtractedFrames
from .records import CHAT_FORMATS, chat_columns, frame_image
from .report import Failure, Tally
from .splits import unit_interval
from .transcripts import Utterance


@dataclass(frozen=True)
class RecordingJob:
    """One recording to build: its video (if any) and its valid utterances, sorted by start."""

    name: str
    child: str
    age_months: float | None
    split: str
    video: Path | None
    utterances: tuple[Utterance, ...]


@dataclass(frozen=True)
class Scorers:
    clip: ClipScorer | None = None
    xclip: XClipScorer | None = None


@dataclass
class RecordingCorpora:
    records: dict[str, list[dict]] = field(default_factory=dict)
    tallies: dict[str, Tally] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def pair_times(utterance: Utterance, fps: float) -> list[int]:
    """Frame times for image–utterance pairs: the ``1/fps`` grid inside the span, else its midpoint."""
    period = 1000 / fps
    first = math.ceil(utterance.start_ms / period)
    times = [round(k * period) for k in range(first, math.floor(utterance.end_ms / period) + 1)]
    return times or [(utterance.start_ms + utterance.end_ms) // 2]


def clip_times(utterance: Utterance, num_frames: int) -> list[int]:
    """``num_frames`` times at the centres of equal parts of the span."""
    step = utterance.duration_ms / num_frames
    return [round(utterance.start_ms + (k + 0.5) * step) for k in range(num_frames)]


def requested_times(job: RecordingJob, config: BuildConfig) -> list[int]:
    """Every frame time the chat formats of ``job`` need (the ``frames`` grid is requested separately).

    Utterances that a rule rejects before looking at frames need none, so no decoded frame is
    converted and encoded for nothing.
    """
    formats = set(config.formats_needed())
    in_length = _length_rule(config)
    times = set()
    for utterance in filter(lambda u: _confident(u, config), job.utterances):
        if formats & {"image_utterance", "interleaved"}:
            times.update(pair_times(utterance, config.pair_fps))
        if "video_utterance" in formats and in_length(utterance) is None:
            times.update(clip_times(utterance, config.clip_frames))
    return sorted(times)


def _confident(utterance: Utterance, config: BuildConfig) -> bool:
    return utterance.confidence is None or utterance.confidence > config.min_confidence


def build_recording_corpora(
    job: RecordingJob, frames: ExtractedFrames | None, video_problem: str | None, config: BuildConfig, scorers: Scorers
) -> RecordingCorpora:
    """Records and outcomes of every configured corpus for one recording.

    ``frames`` holds the decoded frames (the ``frames`` grid and :func:`requested_times`), or is
    ``None`` with ``video_problem`` saying why.
    """
    origin = {"recording": job.name, "child": job.child, "age_months": job.age_months}
    out = RecordingCorpora()
    if "utterances" in config.corpora:
        out.records["utterances"] = [
            {
                "id": u.id,
                **origin,
                "text": u.text,
                "start_ms": u.start_ms,
                "end_ms": u.end_ms,
                "confidence": u.confidence,
            }
            for u in job.utterances
        ]
        out.tallies["utterances"] = Tally(records=len(job.utterances), kept=len(job.utterances))
    if "frames" in config.corpora and frames is not None:
        out.records["frames"] = [
            {
                "id": f"{job.name}_{t}",
                **origin,
                "image": {"bytes": frames.jpegs[t], "path": f"{job.name}_{t}.jpg"},
                "time_ms": t,
            }
            for t in frames.grid
        ]
        out.tallies["frames"] = Tally(records=len(frames.grid), kept=len(frames.grid))

    screen = _Screen(job, frames, video_problem, config)
    formats = config.formats_needed()
    if {"image_utterance", "interleaved"} & set(formats):
        candidates, candidate_tally = screen(lambda u: pair_times(u, config.pair_fps))
        scores = _pair_scores(candidates, scorers.clip)
        if "image_utterance" in formats:
            out.records["image_utterance"], out.tallies["image_utterance"] = _image_utterance(
                origin, candidates, scores, candidate_tally, config
            )
        if "interleaved" in formats:
            out.records["interleaved"], out.tallies["interleaved"] = _interleaved(
                job.name, origin, candidates, scores, candidate_tally, config
            )
    if "video_utterance" in formats:
        clips, clip_tally = screen(lambda u: clip_times(u, config.clip_frames), _length_rule(config))
        out.records["video_utterance"], out.tallies["video_utterance"] = _video_utterance(
            origin, clips, scorers.xclip, clip_tally, config
        )
    if "mix" in config.corpora:
        out.records["mix"], out.tallies["mix"] = _mix(out.records, config)
    for name in set(out.records) - set(config.corpora):
        del out.records[name], out.tallies[name]
    out.failures = list(screen.failures.values())
    return out


Candidates = list[tuple[Utterance, list[tuple[int, bytes]]]]
"""Usable utterances with their ``(time, JPEG)`` frames."""


class _Screen:
    """Rules 1–4 above: which utterances a format can use, and the outcome of the others."""

    def __init__(
        self, job: RecordingJob, frames: ExtractedFrames | None, video_problem: str | None, config: BuildConfig
    ):
        self.job, self.frames, self.video_problem, self.config = job, frames, video_problem, config
        self.failures: dict[tuple[int, str], Failure] = {}

    def __call__(
        self, times_for: Callable[[Utterance], list[int]], rule: Callable[[Utterance], str | None] = lambda u: None
    ):
        usable: Candidates = []
        tally = Tally()
        missing_reason = "truncated_video" if self.frames is not None and self.frames.error else "beyond_video_end"
        for utterance in self.job.utterances:
            if self.video_problem:
                # Reported once for the whole recording, not per utterance.
                tally.failed[self.video_problem] += 1
            elif not _confident(utterance, self.config):
                tally.filtered["low_confidence"] += 1
            elif reason := rule(utterance):
                tally.filtered[reason] += 1
            else:
                times = times_for(utterance)
                if all(t in self.frames.jpegs for t in times):
                    usable.append((utterance, [(t, self.frames.jpegs[t]) for t in times]))
                else:
                    self._fail(
                        tally,
                        utterance,
                        missing_reason,
                        f"needs a frame at {max(times)} ms; video decoded to {self.frames.end_ms} ms",
                    )
        return usable, tally

    def _fail(self, tally: Tally, utterance: Utterance, reason: str, detail: str) -> None:
        tally.failed[reason] += 1
        # One failure entry per utterance and reason, however many formats it failed in.
        self.failures[(utterance.row, reason)] = Failure(
            f"{self.job.name} transcript row {utterance.row}", reason, detail
        )


def _length_rule(config: BuildConfig) -> Callable[[Utterance], str | None]:
    def rule(utterance: Utterance) -> str | None:
        if utterance.duration_ms < config.min_clip_seconds * 1000:
            return "too_short"
        if utterance.duration_ms > config.max_clip_seconds * 1000:
            return "too_long"
        return None

    return rule


def _pair_scores(candidates: Candidates, clip: ClipScorer | None) -> dict[tuple[str, int], float]:
    if clip is None or not candidates:
        return {}
    keys, images, texts = [], [], []
    for utterance, frames in candidates:
        for time, jpeg in frames:
            keys.append((utterance.id, time))
            images.append(decode_jpeg(jpeg))
            texts.append(utterance.text)
    return dict(zip(keys, clip.score(images, texts)))


def _image_utterance(origin, candidates: Candidates, scores, screened: Tally, config: BuildConfig):
    tally = Tally(filtered=screened.filtered.copy(), failed=screened.failed.copy())
    records = []
    for utterance, frames in candidates:
        kept_before = len(records)
        for k, (time, jpeg) in enumerate(frames):
            score = scores.get((utterance.id, time))
            if score is not None and score <= config.min_clip_score:
                tally.details["pairs_below_clip_score"] += 1
                continue
            image = frame_image(utterance.recording, utterance.start_ms, utterance.end_ms, k, jpeg)
            records.append(
                {
                    "id": image["path"].removesuffix(".jpg"),
                    **origin,
                    **chat_columns([([image], utterance.text)]),
                    "start_ms": utterance.start_ms,
                    "end_ms": utterance.end_ms,
                    "frame_ms": time,
                    "confidence": utterance.confidence,
                    "clip_score": score,
                }
            )
        if len(records) > kept_before:
            tally.kept += 1
        else:
            tally.filtered["clip_similarity"] += 1
    tally.records = len(records)
    return records, tally


def _video_utterance(origin, clips: Candidates, xclip: XClipScorer | None, screened: Tally, config: BuildConfig):
    tally = Tally(filtered=screened.filtered.copy(), failed=screened.failed.copy())
    scores = (
        xclip.score([[decode_jpeg(jpeg) for _, jpeg in frames] for _, frames in clips], [u.text for u, _ in clips])
        if xclip is not None and clips
        else [None] * len(clips)
    )
    records = []
    for (utterance, frames), score in zip(clips, scores):
        if score is not None and score <= config.min_xclip_score:
            tally.filtered["xclip_similarity"] += 1
            continue
        images = [
            frame_image(utterance.recording, utterance.start_ms, utterance.end_ms, k, jpeg)
            for k, (_, jpeg) in enumerate(frames)
        ]
        records.append(
            {
                "id": utterance.id,
                **origin,
                **chat_columns([(images, utterance.text)]),
                "start_ms": utterance.start_ms,
                "end_ms": utterance.end_ms,
                "frame_ms": [t for t, _ in frames],
                "confidence": utterance.confidence,
                "xclip_score": score,
            }
        )
        tally.kept += 1
    tally.records = len(records)
    return records, tally


def window_spans(count: int, seed: str, min_turns: int, max_turns: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` index spans of interleaved windows over ``count`` consecutive utterances.

    Windows start every ``stride`` utterances; each takes a size drawn in ``[min_turns, max_turns]``
    (seeded by ``seed``, capped by what is left); no window is shorter than ``min_turns``.
    """
    rng = random.Random(seed)
    spans = []
    for start in range(0, count - min_turns + 1, stride):
        spans.append((start, min(start + rng.randint(min_turns, max_turns), count)))
    return spans


def _interleaved(recording: str, origin, candidates: Candidates, scores, screened: Tally, config: BuildConfig):
    tally = Tally(filtered=screened.filtered.copy(), failed=screened.failed.copy())
    spans = window_spans(len(candidates), recording, config.min_turns, config.max_turns, config.turn_stride)
    covered = set()
    records = []
    for start, end in spans:
        covered.update(range(start, end))
        turns, chosen = [], []
        for utterance, frames in candidates[start:end]:
            k = _turn_frame(utterance, frames, scores)
            time, jpeg = frames[k]
            turns.append(
                ([frame_image(utterance.recording, utterance.start_ms, utterance.end_ms, k, jpeg)], utterance.text)
            )
            chosen.append((utterance, time))
        first, last = chosen[0][0], chosen[-1][0]
        records.append(
            {
                "id": f"{first.id}_turns_{len(chosen)}",
                **origin,
                **chat_columns(turns),
                "start_ms": first.start_ms,
                "end_ms": last.end_ms,
                "turn_start_ms": [u.start_ms for u, _ in chosen],
                "turn_end_ms": [u.end_ms for u, _ in chosen],
                "frame_ms": [t for _, t in chosen],
                "confidence": [u.confidence for u, _ in chosen],
                "clip_score": [scores.get((u.id, t)) for u, t in chosen],
            }
        )
    tally.kept = len(covered)
    if len(candidates) > len(covered):
        tally.filtered["outside_window"] += len(candidates) - len(covered)
    tally.records = len(records)
    return records, tally


def _turn_frame(utterance: Utterance, frames: list[tuple[int, bytes]], scores) -> int:
    if scores:
        return max(range(len(frames)), key=lambda k: scores[(utterance.id, frames[k][0])])
    middle = (utterance.start_ms + utterance.end_ms) / 2
    return min(range(len(frames)), key=lambda k: abs(frames[k][0] - middle))


def copies(record_id: str, weight: float) -> int:
    """How many times a record enters ``mix``: ``floor(weight)``, plus one for a hashed ``frac(weight)`` share."""
    whole = math.floor(weight)
    return whole + (1 if unit_interval(record_id, "mix") < weight - whole else 0)


def _mix(records: dict[str, list[dict]], config: BuildConfig):
    tally = Tally()
    mixed = []
    for name in CHAT_FORMATS:
        for record in records.get(name, []):
            for copy in range(copies(f"{name}/{record['id']}", config.mix_weights[name])):
                mixed.append(
                    {
                        "id": f"{name}/{record['id']}" + (f"/{copy}" if copy else ""),
                        "recording": record["recording"],
                        "child": record["child"],
                        "age_months": record["age_months"],
                        "format": name,
                        "messages": record["messages"],
                        "images": record["images"],
                        "start_ms": record["start_ms"],
                        "end_ms": record["end_ms"],
                    }
                )
                tally.details[f"records_{name}"] += 1
    tally.records = tally.kept = len(mixed)
    return mixed, tally
