"""Transcripts from audio with a local Whisper checkpoint, for recordings that have none.

Audio is loaded as mono float32 and resampled to 16 kHz with librosa (audio files directly; the
audio track of a video is decoded with PyAV first). Speech recognition runs through the
transformers ASR pipeline with timestamps; each timestamped chunk becomes one utterance.

Confidence: the pipeline returns none, so each utterance is re-scored with the same model — the
geometric-mean probability of its tokens (and end-of-text) given its own audio span, teacher
forced. 1.0 means the model would emit exactly this text; garbage scores low, which is what the
builder's ``confidence > 0.3`` filter needs.
"""

from __future__ import annotations

from pathlib import Path

import av
import librosa
import numpy as np
import pyarrow as pa
import torch
from tqdm.auto import tqdm
from transformers import pipeline

from .filters import check_local_checkpoint
from .layout import AUDIO_EXTENSIONS
from .report import Failure
from .storage import write_table

SAMPLING_RATE = 16_000
TRANSCRIPT_SCHEMA = pa.schema(
    [
        ("recording", pa.string()),
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
        ("text", pa.string()),
        ("confidence", pa.float64()),
    ]
)


def load_audio(path: str | Path) -> np.ndarray:
    """Mono float32 samples at 16 kHz; ``ValueError`` when the file has no audio."""
    path = Path(path)
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        audio, _ = librosa.load(path, sr=SAMPLING_RATE, mono=True)
        return audio
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = container.streams.audio[0]
        # Only down-mixed and converted to float here; the rate change is librosa's.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        pieces = [
            out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
        ]
        pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if not pieces:
        raise ValueError(f"{path} has an empty audio stream")
    return librosa.resample(np.concatenate(pieces), orig_sr=stream.rate, target_sr=SAMPLING_RATE)


class WhisperTranscriber:
    """Timestamped utterances with confidences from a local Whisper checkpoint folder."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 8):
        path = check_local_checkpoint(model_dir, "Whisper")
        self.asr = pipeline("automatic-speech-recognition", model=str(path), device=device)
        self.model, self.tokenizer, self.feature_extractor = (
            self.asr.model,
            self.asr.tokenizer,
            self.asr.feature_extractor,
        )
        self.batch_size = batch_size

    def transcribe(self, audio: np.ndarray) -> list[dict]:
        """Rows ``{start_ms, end_ms, text, confidence}`` for 16 kHz mono ``audio``."""
        duration = len(audio) / SAMPLING_RATE
        result = self.asr({"raw": audio, "sampling_rate": SAMPLING_RATE}, return_timestamps=True)
        rows, previous_end = [], 0.0
        for chunk in result.get("chunks") or [{"timestamp": (0.0, duration), "text": result["text"]}]:
            start, end = chunk["timestamp"]
            # Whisper leaves a timestamp out when speech runs over the audio's edge.
            start = previous_end if start is None else start
            end = duration if end is None else min(end, duration)
            previous_end = end
            rows.append({"start_ms": round(start * 1000), "end_ms": round(end * 1000), "text": chunk["text"].strip()})
        for begin in range(0, len(rows), self.batch_size):
            batch = rows[begin : begin + self.batch_size]
            for row, confidence in zip(batch, self._confidences(audio, batch)):
                row["confidence"] = confidence
        return rows

    @torch.inference_mode()
    def _confidences(self, audio: np.ndarray, rows: list[dict]) -> list[float]:
        spans = [
            audio[
                row["start_ms"] * SAMPLING_RATE // 1000 : max(row["end_ms"], row["start_ms"] + 1)
                * SAMPLING_RATE
                // 1000
            ]
            for row in rows
        ]
        features = self.feature_extractor(spans, sampling_rate=SAMPLING_RATE, return_tensors="pt").input_features
        prefix = len(self.tokenizer.prefix_tokens)
        tokens = [self.tokenizer(row["text"]).input_ids for row in rows]  # prefix + text + end-of-text
        width = max(map(len, tokens))
        ids = torch.tensor([t + [self.tokenizer.eos_token_id] * (width - len(t)) for t in tokens])
        mask = torch.tensor([[prefix <= k < len(t) for k in range(1, width)] for t in tokens])
        logits = (
            self.model(
                input_features=features.to(self.model.device, self.model.dtype),
                decoder_input_ids=ids[:, :-1].to(self.model.device),
            )
            .logits.float()
            .cpu()
        )
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        mean = (log_probs * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        return [round(value, 4) for value in mean.exp().tolist()]


def transcribe_recordings(
    media: dict[str, Path], transcriber: WhisperTranscriber, output: str | Path, progress: bool = True
) -> list[Failure]:
    """Transcribe every recording in ``media`` (name -> audio or video file) into the transcript table ``output``
    (parquet).

    Files without usable audio are skipped and returned as failures.
    """
    rows, failures = [], []
    for name, path in tqdm(sorted(media.items()), desc="transcribing", unit="rec", disable=not progress):
        try:
            audio = load_audio(path)
        except (ValueError, av.FFmpegError, OSError) as error:
            failures.append(Failure(str(path), "no_audio", str(error)))
            continue
        rows.extend({"recording": name, **row} for row in transcriber.transcribe(audio))
    write_table(output, pa.Table.from_pylist(rows, schema=TRANSCRIPT_SCHEMA))
    return failures
