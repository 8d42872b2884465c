"""The --transcribe path: audio loading at 16 kHz and a tiny random Whisper through the ASR pipeline.

Checks shapes and plumbing, not recognition accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile
import torch
from babyvlm.dataset_builders.saycam import cli
from babyvlm.dataset_builders.saycam.transcribe import (
    SAMPLING_RATE,
    WhisperTranscriber,
    load_audio,
    transcribe_recordings,
)
from babyvlm.dataset_builders.saycam.transcripts import read_transcripts
from babyvlm.dataset_builders.toyworld.generate import generate_toyworld


@pytest.fixture(scope="module")
def whisper(tmp_path_factory) -> Path:
    """A random two-layer Whisper with a byte-level tokenizer, built offline and saved like a real checkpoint."""
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    specials = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|en|>",
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ] + [f"<|{k * 0.02:.2f}|>" for k in range(1501)]
    vocab = {piece: index for index, piece in enumerate([*bytes_to_unicode().values(), *specials])}
    tokenizer = WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = tokenizer.convert_tokens_to_ids
    special_ids = {
        "decoder_start_token_id": ids("<|startoftranscript|>"),
        "eos_token_id": ids("<|endoftext|>"),
        "pad_token_id": ids("<|endoftext|>"),
        "bos_token_id": ids("<|endoftext|>"),
    }
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,
        max_target_positions=64,
        **special_ids,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        **special_ids,
        no_timestamps_token_id=ids("<|notimestamps|>"),
        max_initial_timestamp_index=50,
        is_multilingual=False,
        num_beams=1,
        max_length=16,
        begin_suppress_tokens=[],
        suppress_tokens=[],
    )
    folder = tmp_path_factory.mktemp("whisper")
    model.save_pretrained(folder)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def transcriber(whisper) -> WhisperTranscriber:
    return WhisperTranscriber(whisper)


def _tone(seconds: float, rate: int) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def _video_with_audio(path: Path, seconds: float, rate: int = 44_100) -> None:
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=5)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout="stereo")
        for k in range(int(seconds * 5)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * k % 256, np.uint8), format="rgb24")
            frame.pts = k
            container.mux(video.encode(frame))
        samples = np.stack([_tone(seconds, rate)] * 2)
        for begin in range(0, samples.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, begin : begin + 1024]), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = rate, begin
            container.mux(audio.encode(chunk))
        container.mux(video.encode())
        container.mux(audio.encode())


@pytest.mark.slow
def test_audio_files_and_video_tracks_load_as_16khz_mono(tmp_path):
    soundfile.write(tmp_path / "tone.wav", _tone(1.5, 22_050), 22_050)
    audio = load_audio(tmp_path / "tone.wav")
    assert audio.dtype == np.float32 and audio.shape == (int(1.5 * SAMPLING_RATE),)

    _video_with_audio(tmp_path / "clip.mp4", 2.0)
    audio = load_audio(tmp_path / "clip.mp4")
    assert audio.ndim == 1 and abs(len(audio) - 2 * SAMPLING_RATE) < 0.1 * SAMPLING_RATE
    assert 0.1 < np.abs(audio).max() < 0.5  # the tone survives down-mixing and resampling


@pytest.mark.slow
def test_transcription_rows_are_timed_within_the_audio_with_confidences(transcriber):
    audio = _tone(3.0, SAMPLING_RATE)
    rows = transcriber.transcribe(audio)
    assert rows and all(set(row) == {"start_ms", "end_ms", "text", "confidence"} for row in rows)
    assert all(0 <= row["start_ms"] <= row["end_ms"] <= 3000 for row in rows)
    assert all(0 < row["confidence"] <= 1 for row in rows)
    assert transcriber.transcribe(audio) == rows  # greedy decoding: deterministic


def test_transcribed_table_feeds_the_builder(transcriber, tmp_path):
    world = tmp_path / "world"
    generate_toyworld(world, scale="small")  # its videos have no audio track
    soundfile.write(tmp_path / "S_20130101_1000_01.wav", _tone(2.0, 16_000), 16_000)
    media = {
        "S_20130101_1000_01": tmp_path / "S_20130101_1000_01.wav",
        "A_20130218_1500_01": next(world.rglob("A_*.mp4")),
    }
    failures = transcribe_recordings(media, transcriber, tmp_path / "transcripts.parquet", progress=False)
    assert [(f.item, f.reason) for f in failures] == [(str(media["A_20130218_1500_01"]), "no_audio")]
    table = pq.read_table(tmp_path / "transcripts.parquet")
    assert table.column_names == ["recording", "start_ms", "end_ms", "text", "confidence"]
    assert set(table["recording"].to_pylist()) == {"S_20130101_1000_01"}
    transcript = read_transcripts(tmp_path / "transcripts.parquet")
    assert transcript.has_confidence and transcript.rows == table.num_rows


@pytest.mark.slow
def test_cli_transcribes_then_builds(whisper, tmp_path, capsys):
    media = tmp_path / "media"
    media.mkdir()
    soundfile.write(media / "Y_20130601_0900_01.wav", _tone(2.0, 16_000), 16_000)
    _video_with_audio(media / "S_20130601_0900_01.mp4", 2.0)
    cli.main(
        [
            "--videos",
            str(media),
            "--transcribe",
            str(whisper),
            "--transcripts",
            str(tmp_path / "t.parquet"),
            "--corpora",
            "utterances,frames",
            "--output",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    assert (tmp_path / "t.parquet").is_file()
    report = (tmp_path / "out" / "build_report.json").read_text()
    assert '"complete": true' in report
    assert "frames" in capsys.readouterr().out
