"""The SAYCam corpus builder, run on the toy world (same raw layout) and on deliberately broken inputs."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from babyvlm.dataset_builders.saycam import cli
from babyvlm.dataset_builders.saycam.build import BuildInputs, EmptyCorpusError, build_saycam
from babyvlm.dataset_builders.saycam.config import BuildConfig
from babyvlm.dataset_builders.saycam.corpora import (
    clip_times,
    copies,
    pair_times,
    window_spans,
)
from babyvlm.dataset_builders.saycam.export import export_llava
from babyvlm.dataset_builders.saycam.frames import VideoOpenError, extract_frames
from babyvlm.dataset_builders.saycam.layout import parse_recording_name
from babyvlm.dataset_builders.saycam.records import CHAT_FORMATS, CORPORA
from babyvlm.dataset_builders.saycam.splits import assign_split, in_shard, parse_splits
from babyvlm.dataset_builders.saycam.transcripts import Utterance, read_transcripts
from babyvlm.dataset_builders.toyworld.generate import generate_toyworld
from babyvlm.dataset_builders.toyworld.video import write_mp4
from datasets import load_dataset
from hub_cards import assert_hub_dataset_card
from PIL import Image

from babyvlm.chat import (
    content_to_text,
    count_image_blocks,
    messages_to_conversations,
)

UTTERANCE_CORPORA = ("utterances", *CHAT_FORMATS)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw") / "world"
    generate_toyworld(root, seed=0, scale="small")
    return root


def _inputs(world: Path, transcripts: Path | None = None) -> BuildInputs:
    return BuildInputs(world / "videos", transcripts or world / "transcripts.csv", world / "children.csv")


@pytest.fixture(scope="module")
def built(world, tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("built") / "corpora"
    return output, build_saycam(_inputs(world), output, progress=False)


def _load(folder: Path, **kwargs):
    # A cache next to the build: tests build many same-named corpus folders.
    return load_dataset(str(folder), cache_dir=str(folder.parent.parent / ".hf_cache"), **kwargs)


def _ids(output: Path, corpus: str) -> list[str]:
    return sorted(
        i for f in output.glob(f"{corpus}/data/*/*.parquet") for i in pq.read_table(f, columns=["id"])["id"].to_pylist()
    )


def _assert_every_row_accounted(report: dict) -> None:
    rows = report["utterances"]["rows"]
    for name in UTTERANCE_CORPORA:
        tally = report["corpora"][name]
        assert tally["kept"] + sum(tally["filtered"].values()) + sum(tally["failed"].values()) == rows, name


# --- the corpora -----------------------------------------------------------------------------


def test_every_corpus_loads_with_load_dataset_and_carries_age(built):
    output, report = built
    assert report["complete"] and report["recordings"]["by_status"] == {"built": 6}
    for name in CORPORA:
        corpus = _load(output / name)
        assert sum(len(split) for split in corpus.values()) == report["corpora"][name]["records"] > 0
        first = corpus["train"][0]
        assert parse_recording_name(first["recording"]).child == first["child"]
        assert 6 <= first["age_months"] <= 32
        card = assert_hub_dataset_card(output / name / "README.md")
        assert card.data.pretty_name.startswith("SAYCam") and card.data.license_name == "databrary-access-agreement"
        assert "num_examples" in card.data.to_yaml()
    assert json.loads((output / "build_report.json").read_text()) == report


def test_chat_records_use_the_shared_schema_and_the_released_layout(built):
    output, _ = built
    for name in (*CHAT_FORMATS, "mix"):
        for record in _load(output / name, split="train"):
            assert count_image_blocks(record["messages"]) == len(record["images"]) > 0
            conversations = messages_to_conversations(record["messages"])
            assert [turn["from"] for turn in conversations] == ["human", "gpt"] * (len(conversations) // 2)
            for human, gpt in zip(conversations[::2], conversations[1::2]):
                assert set(human["value"].split("<image>")) == {""} and "<image>" not in gpt["value"]
    clip = _load(output / "video_utterance", split="train")[0]
    assert len(clip["images"]) == 8 and content_to_text(clip["messages"][0]["content"]) == "<image>" * 8
    window = _load(output / "interleaved", split="train")[0]
    assert 4 <= len(window["images"]) <= 8 and len(window["messages"]) == 2 * len(window["images"])


def test_report_accounts_for_every_utterance(built):
    _, report = built
    _assert_every_row_accounted(report)
    assert report["corpora"]["image_utterance"]["filtered"]["low_confidence"] > 0  # the toy world mumbles sometimes
    assert report["corpora"]["utterances"]["kept"] == report["utterances"]["rows"]


def test_no_recording_is_in_two_splits(built):
    output, _ = built
    for name in CORPORA:
        corpus = _load(output / name)
        by_split = {split: set(corpus[split]["recording"]) for split in corpus}
        assert len(by_split) == 2  # train and validation both non-empty for seed 0
        assert not set.intersection(*by_split.values()), name


def test_split_assignment_is_deterministic_and_proportional():
    names = [
        f"S_2013{month:02d}{day:02d}_1000_{segment:02d}"
        for month in range(1, 13)
        for day in range(1, 29)
        for segment in range(3)
    ]
    fractions = {"train": 0.8, "validation": 0.1, "test": 0.1}
    splits = [assign_split(name, fractions) for name in names]
    assert splits == [assign_split(name, fractions) for name in names]
    assert abs(splits.count("train") / len(names) - 0.8) < 0.04
    shards = [[name for name in names if in_shard(name, shard, 3)] for shard in range(3)]
    assert sorted(name for shard in shards for name in shard) == sorted(names) and all(
        len(shard) > 250 for shard in shards
    )
    with pytest.raises(ValueError, match="sum to 1"):
        parse_splits("train=0.9,validation=0.2")


def test_frame_times_and_windows():
    utterance = Utterance(1, "S_20130101_1000_01", 1500, 3200, "hi", 0.9)
    assert pair_times(utterance, 1.0) == [2000, 3000]
    assert pair_times(Utterance(1, "S_20130101_1000_01", 1100, 1400, "hi", 0.9), 1.0) == [1250]
    assert clip_times(utterance, 4) == [1712, 2138, 2562, 2988]
    spans = window_spans(11, "S_20130101_1000_01", 4, 8, 4)
    assert [start for start, _ in spans] == [0, 4] and all(4 <= end - start <= 8 for start, end in spans)
    assert window_spans(3, "x", 4, 8, 4) == []


def test_mix_weights_scale_each_format(world, built, tmp_path):
    output, report = built
    config = BuildConfig(
        corpora=("mix",), mix_weights={"image_utterance": 0.5, "video_utterance": 0.0, "interleaved": 2.0}
    )
    mixed = build_saycam(_inputs(world), tmp_path / "mix", config, progress=False)["corpora"]["mix"]["details"]
    assert mixed.get("records_video_utterance", 0) == 0
    assert mixed["records_interleaved"] == 2 * report["corpora"]["interleaved"]["records"]
    assert mixed["records_image_utterance"] == sum(
        copies(f"image_utterance/{i}", 0.5) for i in _ids(output, "image_utterance")
    )
    assert 0 < mixed["records_image_utterance"] < report["corpora"]["image_utterance"]["records"]


def test_llava_export_writes_the_original_layout(built, tmp_path):
    output, _ = built
    counts = export_llava(output / "video_utterance", tmp_path / "llava")
    items = json.loads((tmp_path / "llava" / "train.json").read_text())
    assert len(items) == counts["train"]
    stored = {
        r["id"]: r for f in output.glob("video_utterance/data/train/*.parquet") for r in pq.read_table(f).to_pylist()
    }
    for item in items:
        assert set(item) == {"id", "image", "conversations"}
        assert item["conversations"][0] == {"from": "human", "value": "<image>" * 8}
        recording, start, end = item["id"].rsplit("_", 2)
        assert item["image"][3] == f"images/video_utterance/{recording}_{start}_{end}_frame_3.jpg"
        assert (tmp_path / "llava" / item["image"][3]).read_bytes() == stored[item["id"]]["images"][3]["bytes"]


# --- robustness ------------------------------------------------------------------------------


def _broken_raw(world: Path, root: Path) -> Path:
    """The toy world plus a corrupt video, a damaged one, a badly named one and bad transcript rows."""
    shutil.copytree(world, root)
    videos = sorted((root / "videos").rglob("*.mp4"))
    videos[0].write_bytes(b"not a video" * 100)  # corrupt
    damaged = bytearray(videos[1].read_bytes())
    damaged[len(damaged) // 3 : len(damaged) // 3 + 4000] = bytes(4000)  # decodes part-way
    videos[1].write_bytes(bytes(damaged))
    (root / "videos" / "holiday.mp4").write_bytes(videos[2].read_bytes())
    with open(root / "transcripts.csv", "a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(
            [
                ("S_20140101_1000_01", 0, 2000, "a recording nobody filmed", 0.9),  # missing video
                (videos[2].stem, 5000, 4000, "backwards", 0.9),
                (videos[2].stem, "soon", 4000, "no start", 0.9),
                (videos[2].stem, 100, 900, "   ", 0.9),
                (videos[2].stem, 100, 900, "too sure", 1.5),
                ("holiday", 0, 1000, "not a recording name", 0.9),
                (videos[2].stem, 9000, 9900, "past the end", 0.9),
                (videos[2].stem, 9000, 9900, "same span again", 0.9),
                (videos[2].stem, 20000, 21500, "long after the video ends", 0.9),
            ]
        )
    return root


def test_bad_inputs_are_skipped_and_reported(world, tmp_path):
    raw = _broken_raw(world, tmp_path / "raw")
    output = tmp_path / "out"
    report = build_saycam(_inputs(raw), output, progress=False)
    assert report["complete"]
    reasons = {f["reason"] for f in report["failures"]}
    assert reasons >= {
        "corrupt_video",
        "truncated_video",
        "missing_video",
        "bad_recording_name",
        "malformed_timestamps",
        "empty_text",
        "malformed_confidence",
        "duplicate_utterance",
        "beyond_video_end",
    }
    assert report["recordings"]["by_status"] == {
        "built": 4,
        "corrupt_video": 1,
        "truncated_video": 1,
        "missing_video": 1,
        "bad_recording_name": 1,
    }
    _assert_every_row_accounted(report)
    assert report["corpora"]["image_utterance"]["failed"]["malformed_timestamps"] == 2
    # A recording without video still feeds the language corpus.
    assert "S_20140101_1000_01_0_2000" in _ids(output, "utterances")
    assert not any(i.startswith("S_20140101_1000_01") for i in _ids(output, "image_utterance"))


def test_extract_frames_serves_the_frame_on_screen(tmp_path):
    colours = [(40 * k, 255 - 40 * k, 128) for k in range(6)]
    write_mp4(tmp_path / "v.mp4", [Image.new("RGB", (32, 32), c) for c in colours], fps=5, width=32, height=32)
    frames = extract_frames(tmp_path / "v.mp4", [0, 199, 200, 450, 1150, 1300], every_ms=500)
    assert sorted(frames.jpegs) == [0, 199, 200, 450, 500, 1000, 1150] and frames.grid == [0, 500, 1000]
    for time, jpeg in frames.jpegs.items():
        pixel = np.asarray(Image.open(io.BytesIO(jpeg)))[16, 16].astype(int)
        assert np.abs(pixel - colours[time // 200]).max() < 12, time
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(VideoOpenError, match="bad.mp4"):
        extract_frames(tmp_path / "bad.mp4", [0])


def test_transcript_tables_in_every_format_and_custom_columns(world, tmp_path):
    with open(world / "transcripts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    renamed = [
        {"file": r["recording"] + ".mp4", "t0": int(r["start_ms"]), "t1": int(r["end_ms"]), "words": r["text"]}
        for r in rows
    ]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in renamed) + "{broken\n")
    columns = {"recording": "file", "start_ms": "t0", "end_ms": "t1", "text": "words"}
    transcript = read_transcripts(tmp_path / "t.jsonl", columns)
    assert len(transcript.utterances) == len(rows) and not transcript.has_confidence
    assert transcript.utterances[0].recording == rows[0]["recording"]
    assert [f.reason for f in transcript.failures] == ["malformed_row"]
    pq.write_table(pa.Table.from_pylist(renamed), tmp_path / "t.parquet")
    assert read_transcripts(tmp_path / "t.parquet", columns).utterances == transcript.utterances
    with pytest.raises(ValueError, match=r"missing transcript column\(s\): text \(column 'text'\)"):
        read_transcripts(tmp_path / "t.parquet", {"recording": "file", "start_ms": "t0", "end_ms": "t1"})


# --- scale: resume, shards, processes ---------------------------------------------------------


def test_resume_redoes_only_unfinished_recordings_without_duplicates(world, built, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(built[0], output)
    progress = sorted((output / ".progress" / "recordings").glob("*.json"))
    progress[0].unlink()  # as if killed after writing some files of this recording
    for path in output.glob(f"image_utterance/data/*/{progress[1].stem}.parquet"):
        path.unlink()  # finished recordings are trusted, not re-checked
    untouched = {p: p.stat().st_mtime_ns for p in output.glob(f"*/data/*/{progress[2].stem}.parquet")}

    report = build_saycam(_inputs(world), output, progress=False)
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    assert _ids(output, "frames") == _ids(built[0], "frames")
    assert len(set(_ids(output, "mix"))) == len(_ids(output, "mix"))
    assert report["corpora"]["utterances"] == built[1]["corpora"]["utterances"]
    with pytest.raises(ValueError, match="other settings"):
        build_saycam(_inputs(world), output, BuildConfig(min_confidence=0.5), progress=False)


def test_shards_build_disjoint_parts_that_merge_into_the_full_build(world, built, tmp_path):
    output = tmp_path / "sharded"
    first = build_saycam(_inputs(world), output, num_shards=2, shard=0, progress=False)
    assert not first["complete"] and first["pending_recordings"]
    second = build_saycam(_inputs(world), output, num_shards=2, shard=1, progress=False)
    assert second["complete"]
    for name in CORPORA:
        assert _ids(output, name) == _ids(built[0], name), name


def test_two_processes_build_the_same_records(world, built, tmp_path):
    output = tmp_path / "parallel"
    report = build_saycam(_inputs(world), output, num_proc=2, progress=False)
    assert report["corpora"] == built[1]["corpora"]
    for name in ("frames", "video_utterance"):
        for path in sorted(built[0].glob(f"{name}/data/*/*.parquet")):
            assert pq.read_table(output / path.relative_to(built[0])).equals(pq.read_table(path))


# --- similarity filters ------------------------------------------------------------------------


def _clip_tokenizer():
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    characters = list(bytes_to_unicode().values())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for piece in characters + [c + "</w>" for c in characters]:
        vocab.setdefault(piece, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[])


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """Random CLIP and X-CLIP models with tiny configs, saved with offline-built processors."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        VideoMAEImageProcessor,
        XCLIPConfig,
        XCLIPModel,
        XCLIPProcessor,
    )

    root = tmp_path_factory.mktemp("checkpoints")
    tokenizer = _clip_tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
    vision = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    size = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(root / "clip")
    CLIPProcessor(image_processor=CLIPImageProcessor(**size), tokenizer=tokenizer).save_pretrained(root / "clip")
    video = {
        **vision,
        "num_frames": 8,
        "mit_hidden_size": 16,
        "mit_intermediate_size": 32,
        "mit_num_hidden_layers": 1,
        "mit_num_attention_heads": 2,
    }
    XCLIPModel(
        XCLIPConfig(text_config=text, vision_config=video, projection_dim=16, prompt_layers=1, prompt_attention_heads=2)
    ).save_pretrained(root / "xclip")
    XCLIPProcessor(image_processor=VideoMAEImageProcessor(**size), tokenizer=tokenizer).save_pretrained(root / "xclip")
    return root / "clip", root / "xclip"


def _two_recordings(world: Path, folder: Path) -> BuildInputs:
    """Inputs with only two of the videos, to keep model work small; the other recordings miss their video."""
    folder.mkdir()
    for path in sorted((world / "videos").rglob("*.mp4"))[:2]:
        shutil.copy(path, folder)
    return BuildInputs(folder, world / "transcripts.csv", world / "children.csv")


@pytest.mark.slow
def test_clip_scores_are_stored_and_pick_interleaved_frames(world, tiny_checkpoints, tmp_path):
    clip, xclip = tiny_checkpoints
    config = BuildConfig(
        corpora=("image_utterance", "video_utterance", "interleaved"),
        clip_model=str(clip),
        xclip_model=str(xclip),
        min_clip_score=-1.0,
        min_xclip_score=-1.0,
    )
    output = tmp_path / "scored"
    report = build_saycam(_two_recordings(world, tmp_path / "videos"), output, config, progress=False)

    def records(name):
        return [record for split in _load(output / name).values() for record in split]

    scores = {}
    for pair in records("image_utterance"):
        assert -1 <= pair["clip_score"] <= 1
        scores.setdefault((pair["recording"], pair["start_ms"]), []).append(pair["clip_score"])
    assert sum(map(len, scores.values())) == report["corpora"]["image_utterance"]["records"] > 0
    assert all(-1 <= clip["xclip_score"] <= 1 for clip in records("video_utterance"))
    windows = records("interleaved")
    assert windows
    for window in windows:
        for start, score in zip(window["turn_start_ms"], window["clip_score"]):
            assert score == pytest.approx(max(scores[(window["recording"], start)]))


def test_similarity_thresholds_filter_and_are_reported(world, tiny_checkpoints, tmp_path):
    clip, xclip = tiny_checkpoints
    config = BuildConfig(
        corpora=("image_utterance", "video_utterance"),
        clip_model=str(clip),
        xclip_model=str(xclip),
        min_clip_score=1.0,
        min_xclip_score=1.0,
    )
    # Nothing passes: the build fails naming what filtered the records out, after writing its report.
    with pytest.raises(EmptyCorpusError, match=r"no record in image_utterance, video_utterance .*clip_similarity"):
        build_saycam(_two_recordings(world, tmp_path / "videos"), tmp_path / "strict", config, progress=False)
    report = json.loads((tmp_path / "strict" / "build_report.json").read_text())
    image, video = report["corpora"]["image_utterance"], report["corpora"]["video_utterance"]
    assert image["records"] == video["records"] == 0
    rows = report["utterances"]["rows"]
    assert (
        image["filtered"]["clip_similarity"]
        == rows - image["filtered"].get("low_confidence", 0) - image["failed"]["missing_video"]
        > 0
    )
    assert video["filtered"]["xclip_similarity"] > 0 and image["details"]["pairs_below_clip_score"] > 0
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_saycam(_inputs(world), tmp_path / "none", BuildConfig(clip_model=str(tmp_path)), progress=False)


# --- command line ------------------------------------------------------------------------------


def test_cli_builds_and_exports(world, tmp_path, capsys):
    cli.main(
        [
            "--videos",
            str(world / "videos"),
            "--transcripts",
            str(world / "transcripts.csv"),
            "--children",
            str(world / "children.csv"),
            "--corpora",
            "utterances,image_utterance",
            "--output",
            str(tmp_path / "out"),
            "--export-llava",
            str(tmp_path / "llava"),
            "--splits",
            "train=0.5,test=0.5",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert "image_utterance" in printed and "exported image_utterance" in printed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".progress",
        "build_report.json",
        "image_utterance",
        "utterances",
    ]
    assert (tmp_path / "llava" / "image_utterance" / "train.json").is_file()
    argv = ["--videos", str(world / "videos"), "--transcripts", str(world / "transcripts.csv")]
    assert cli.main([*argv, "--output", str(tmp_path / "x"), "--corpora", "utterances,pictures"]) == 1
    assert "unknown corpora ['pictures']" in capsys.readouterr().err
