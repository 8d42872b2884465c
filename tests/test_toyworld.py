"""The synthetic toy world: raw SAYCam layout, determinism, annotations that match pixels and words."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import av
import numpy as np
import pytest
from babyvlm.dataset_builders.annotations import (
    EXIT_DIRECTIONS,
    AnnotationError,
    ExitEvent,
    FrameAnnotation,
    load_annotations,
    read_jsonl,
)
from babyvlm.dataset_builders.saycam.layout import parse_recording_name
from babyvlm.dataset_builders.toyworld import cli
from babyvlm.dataset_builders.toyworld.generate import generate_toyworld
from babyvlm.dataset_builders.toyworld.vocabulary import COLORS, INTRO_OPENERS, LABELS, NUMBER_WORDS, OUTRO_OPENERS
from babyvlm.dataset_builders.toyworld.world import (
    DIRECTION_VECTORS,
    SCALES,
    plan_world,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toyworld") / "world"
    generate_toyworld(root, seed=0, scale="small")
    return root


@pytest.fixture(scope="module")
def annotations(world):
    return load_annotations(world / "annotations")


def _transcript(root: Path) -> list[dict]:
    with open(root / "transcripts.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_raw_layout_matches_the_saycam_conventions(world, annotations):
    videos = sorted(world.glob("videos/*/*.mp4"))
    assert len(videos) == len(annotations.recordings) == 6
    for video in videos:
        name = parse_recording_name(video.stem)
        assert video.parent.name == name.child
        info = annotations.recordings[video.stem]
        assert 6 <= info.age_months <= 32
        frames = _decode(video)
        assert len(frames) == info.num_frames
        assert frames[0].shape == (info.height, info.width, 3)

    rows = _transcript(world)
    assert set(rows[0]) == {"recording", "start_ms", "end_ms", "text", "confidence"}
    assert {row["recording"] for row in rows} == set(annotations.recordings)
    assert all(0 <= float(row["confidence"]) <= 1 and int(row["start_ms"]) < int(row["end_ms"]) for row in rows)
    with open(world / "children.csv", newline="") as handle:
        assert {row["child"] for row in csv.DictReader(handle)} == {"S", "A", "Y"}
    assert json.loads((world / "toyworld.json").read_text())["counts"]["recordings"] == 6


def test_same_seed_gives_identical_bytes_and_another_seed_another_world(world, tmp_path):
    generate_toyworld(tmp_path / "again", seed=0, scale="small")
    assert _digest(tmp_path / "again") == _digest(world)
    generate_toyworld(tmp_path / "other", seed=1, scale="small")
    assert _transcript(tmp_path / "other") != _transcript(world)


def test_transcripts_name_exactly_what_is_on_screen(world, annotations):
    frames = {(f.recording, f.time_ms): f for f in annotations.frames}
    fps = SCALES["small"].fps
    checked = 0
    for row in _transcript(world):
        text = row["text"]
        opener, _, scene = text.partition(", ")
        if opener not in INTRO_OPENERS + OUTRO_OPENERS or scene == "no more toys":
            continue
        # Named groups "two red balls and one blue car" must equal the visible objects mid-utterance.
        said = Counter()
        for group in scene.split(" and "):
            number, color, noun = group.split()
            said[(color, noun.removesuffix("s"))] += NUMBER_WORDS.index(number) + 1
        middle = (int(row["start_ms"]) + int(row["end_ms"])) // 2
        frame = frames[(row["recording"], middle // (1000 // fps) * (1000 // fps))]
        assert Counter((o.color, o.category) for o in frame.objects) == said, text
        checked += 1
    assert checked >= 12


def test_every_object_is_drawn_where_and_in_the_colour_annotated(world, annotations):
    for name, info in annotations.recordings.items():
        pixels = _decode(world / info.video)
        for frame in annotations.frames_of(name):
            if frame.frame_index % 25:  # the first frame of each episode: everything at rest
                continue
            for obj in frame.objects:
                x, y, w, h = obj.box
                centre = pixels[frame.frame_index][int(y + h / 2), int(x + w / 2)].astype(int)
                assert np.abs(centre - COLORS[obj.color]).max() < 40, (name, frame.frame_index, obj)


def test_exit_clips_show_the_object_leaving_in_the_annotated_direction(annotations):
    assert annotations.exits
    for event in annotations.exits:
        boxes = [
            next((o.box for o in f.objects if o.instance_id == event.instance_id), None)
            for f in annotations.frames_of(event.recording)
            if event.start_ms <= f.time_ms <= event.end_ms
        ]
        assert boxes[0] is not None and boxes[-1] is None, event
        visible = [b for b in boxes if b is not None]
        first, last = visible[0], visible[-1]
        dx, dy = DIRECTION_VECTORS[event.direction]
        # The visible box's centre moves towards the exit side on each axis the direction names, and
        # not at all on the other (clipping at the edge only shifts it towards the exit side).
        moved = (
            (last[0] + last[2] / 2) - (first[0] + first[2] / 2),
            (last[1] + last[3] / 2) - (first[1] + first[3] / 2),
        )
        assert tuple(int(np.sign(round(step, 3))) for step in moved) == (dx, dy), event


def test_demo_scale_covers_every_count_and_direction():
    scripts = plan_world(0, SCALES["demo"])
    counts, directions = Counter(), Counter()
    for script in scripts:
        for episode in script.episodes:
            counts[Counter((o.color, o.category) for o in episode.objects).most_common(1)[0][1]] += 1
            if episode.motion:
                directions[episode.motion.direction] += 1
    assert set(counts) == set(range(1, 13))
    assert set(directions) == set(EXIT_DIRECTIONS)
    assert len({s.name for s in scripts}) == len(scripts) == 18


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"recording": "r", "frame_index": 0, "time_ms": 0, "objects": '
            '[{"instance_id": "a", "category": "ball", "color": "red", "box": [0, 0, 5]}]}',
            "objects[0]: field 'box'",
        ),
        ('{"recording": "r", "frame_index": -1, "time_ms": 0, "objects": []}', "'frame_index' must be >= 0"),
        ('{"recording": "r", "time_ms": 0, "objects": []}', "missing field 'frame_index'"),
        ("not json", "invalid JSON"),
    ],
)
def test_invalid_frame_annotations_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "frames.jsonl"
    path.write_text('{"recording": "r", "frame_index": 0, "time_ms": 0, "objects": []}\n' + line + "\n")
    with pytest.raises(AnnotationError, match=rf"frames\.jsonl:2: .*{re.escape(message)}"):
        read_jsonl(path, FrameAnnotation)


def test_exit_direction_must_be_a_vdr_direction(tmp_path):
    path = tmp_path / "exits.jsonl"
    event = {
        "recording": "r",
        "instance_id": "a",
        "category": "ball",
        "color": "red",
        "direction": "up",
        "start_ms": 0,
        "end_ms": 10,
    }
    path.write_text(json.dumps(event) + "\n")
    with pytest.raises(AnnotationError, match="exits.jsonl:1: field 'direction' must be one of"):
        read_jsonl(path, ExitEvent)


def test_annotations_that_disagree_across_files_are_rejected(world, tmp_path):
    folder = tmp_path / "annotations"
    folder.mkdir()
    for name in ("recordings.jsonl", "frames.jsonl"):
        (folder / name).write_bytes((world / "annotations" / name).read_bytes())
    recording = json.loads((world / "annotations" / "recordings.jsonl").read_text().splitlines()[0])["recording"]
    event = {
        "recording": recording,
        "instance_id": "ghost",
        "category": "ball",
        "color": "red",
        "direction": "top",
        "start_ms": 0,
        "end_ms": 10,
    }
    (folder / "exits.jsonl").write_text(json.dumps(event) + "\n")
    with pytest.raises(AnnotationError, match="instance 'ghost' .* exits but is never visible"):
        load_annotations(folder)


def test_cli_generates_and_refuses_to_clobber(tmp_path, capsys):
    cli.main(["--output", str(tmp_path / "w"), "--seed", "2"])
    assert "6 recordings" in capsys.readouterr().out
    assert cli.main(["--output", str(tmp_path / "w")]) == 1
    assert "not empty" in capsys.readouterr().err
    assert not list(tmp_path.glob(".w.tmp-*"))


def test_parents_who_name_in_view_label_a_visible_object_in_the_same_scenes(tmp_path):
    plain, named = plan_world(0, SCALES["small"]), plan_world(0, SCALES["small"], name_in_view=True)
    assert [[e.objects for e in s.episodes] for s in plain] == [[e.objects for e in s.episodes] for s in named]
    label_forms = [re.compile("^" + form.format(color="(\\w+)", category="(\\w+)") + "$") for form in LABELS]
    assert not any(form.match(u.text) for s in plain for e in s.episodes for u in e.utterances for form in label_forms)

    root = tmp_path / "named"
    generate_toyworld(root, seed=0, scale="small", name_in_view=True)
    assert json.loads((root / "toyworld.json").read_text())["name_in_view"] is True
    frames = {(f.recording, f.time_ms): f for f in load_annotations(root / "annotations").frames}
    fps = SCALES["small"].fps
    labels = 0
    for row in _transcript(root):
        if not any(form.match(row["text"]) for form in label_forms):
            continue
        # "a ball", "the red ball": the named object (and its colour, when said) is on screen mid-label.
        words = row["text"].removeprefix("look, ").removeprefix("that's ").split()
        category, color = words[-1], words[-2] if len(words) > 1 and words[-2] in COLORS else None
        middle = (int(row["start_ms"]) + int(row["end_ms"])) // 2
        visible = frames[(row["recording"], middle // (1000 // fps) * (1000 // fps))].objects
        assert any(o.category == category and color in (None, o.color) for o in visible), row
        labels += 1
    episodes = sum(len(s.episodes) for s in named)
    assert episodes <= labels <= 2 * episodes  # one before the motion, one after unless nothing is left
    by_recording = {}
    for row in _transcript(root):
        by_recording.setdefault(row["recording"], []).append((int(row["start_ms"]), int(row["end_ms"])))
    for spans in by_recording.values():  # labels take part of a span: utterances still never overlap
        assert all(start < end <= after for (start, end), (after, _) in zip(spans, spans[1:]))
