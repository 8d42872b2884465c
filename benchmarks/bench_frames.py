"""Frame extraction speed of the SAYCam builder, measured side by side with plain PyAV decoding.

1. Every frame of a 640×480, 30 fps video (SAYCam's format): the builder's ``extract_frames``
   (decode + RGB + JPEG, what the corpora store) against PyAV alone (decode + RGB). Target: the
   builder keeps at least 0.8× the plain decoding rate.
2. The builder's usual case, 1 fps: video frames consumed per second.
3. A full build (all corpora, no models) of several recordings with ``--num-proc 2`` against 1.

Run: ``python benchmarks/bench_frames.py [--seconds 20] [--recordings 4]``. The headline is the last line.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from babyvlm.dataset_builders.saycam.build import BuildInputs, build_saycam
from babyvlm.dataset_builders.saycam.frames import extract_frames
from babyvlm.dataset_builders.toyworld.video import write_mp4
from PIL import Image

WIDTH, HEIGHT, FPS = 640, 480, 30


def synthetic_video(path: Path, seconds: float) -> int:
    """A moving gradient with drifting blocks: cheap to make, not trivially compressible."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    blocks = rng.integers(0, 255, size=(HEIGHT // 16, WIDTH // 16, 3), dtype=np.uint8)

    def frames():
        for k in range(int(seconds * FPS)):
            base = np.stack([(x + 3 * k) % 256, (y + 2 * k) % 256, (x + y + k) % 256], axis=-1).astype(np.uint8)
            texture = np.roll(blocks, k // 4, axis=1).repeat(16, axis=0).repeat(16, axis=1)
            yield Image.fromarray(base // 2 + texture // 2)

    return write_mp4(path, frames(), FPS, WIDTH, HEIGHT)


def best_of(repeats: int, run) -> float:
    """Shortest wall time of ``repeats`` runs (the machine is shared: the minimum is the least disturbed)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def pyav_decode_all(path: Path) -> None:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the test video")
    parser.add_argument("--recordings", type=int, default=4, help="recordings in the --num-proc comparison")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        video = scratch / "video.mp4"
        frames = synthetic_video(video, args.seconds)
        print(f"video: {WIDTH}x{HEIGHT} @ {FPS} fps, {args.seconds:g} s ({frames} frames)")

        every_frame_ms = 1000 / FPS
        plain = frames / best_of(args.repeats, lambda: pyav_decode_all(video))
        builder = frames / best_of(args.repeats, lambda: extract_frames(video, every_ms=every_frame_ms))
        sparse = frames / best_of(args.repeats, lambda: extract_frames(video, every_ms=1000))
        print(f"PyAV alone, decode every frame to RGB:        {plain:8.1f} frames/s")
        print(f"builder, every frame to JPEG:                 {builder:8.1f} frames/s")
        print(
            f"builder, 1 fps to JPEG (video frames read/s): {sparse:8.1f} frames/s ({sparse / plain:.1f}x PyAV alone)"
        )

        raw = scratch / "raw"
        (raw / "videos").mkdir(parents=True)
        names = [f"S_201301{day:02d}_1000_01" for day in range(1, args.recordings + 1)]
        with open(raw / "transcripts.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["recording", "start_ms", "end_ms", "text", "confidence"])
            for name in names:
                shutil.copy(video, raw / "videos" / f"{name}.mp4")
                writer.writerows(
                    (name, start, start + 1800, "look at that", 0.9)
                    for start in range(0, int(args.seconds * 1000) - 2000, 2000)
                )
        inputs = BuildInputs(raw / "videos", raw / "transcripts.csv")
        serial = best_of(1, lambda: build_saycam(inputs, scratch / "one", num_proc=1, overwrite=True, progress=False))
        parallel = best_of(1, lambda: build_saycam(inputs, scratch / "two", num_proc=2, overwrite=True, progress=False))
        print(f"full build of {args.recordings} recordings: --num-proc 1 {serial:.1f} s, --num-proc 2 {parallel:.1f} s")
        print(f"--num-proc 2 vs 1 speed-up: {serial / parallel:.2f}x (2 CPU cores)")
        print(f"builder vs PyAV-alone frames/s, every frame: {builder / plain:.2f}x (target >= 0.8x)")


if __name__ == "__main__":
    main()
