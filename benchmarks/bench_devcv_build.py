"""DevCV builder throughput: image checking/encoding in worker processes vs in the main process.

Builds the same synthetic SAYCam-sized release (Left/Right items: 4 JPEG frames of 640x480 each)
with ``num_proc=1`` and ``num_proc=N`` side by side, checks both give the same shard fingerprint,
and prints the speed-up on the last line.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from babyvlm.dataset_builders.devcv.builder import build_devcv
from PIL import Image

ITEMS = 150
FRAME_SIZE = (640, 480)
PROMPT = "<image> Which of the following is the same as this? Answer with a number. (A) <image> (B) <image> (C) <image>"


def write_release(root: Path) -> None:
    folder = root / "saycam" / "test" / "leftright"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    items = []
    for index in range(ITEMS):
        # Smooth gradients plus noise compress like camera frames, unlike pure noise.
        base = np.linspace(0, 255, FRAME_SIZE[0])[None, :, None] + rng.normal(0, 20, (FRAME_SIZE[1], FRAME_SIZE[0], 3))
        frame = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        buffer = io.BytesIO()
        frame.save(buffer, "JPEG", quality=90)
        paths = [f"images/lr_{index:04d}_{k}.jpg" for k in range(4)]
        for path in paths:
            (folder / path).write_bytes(buffer.getvalue())
        items.append(
            {
                "id": f"lr_{index}",
                "conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": "A"}],
                "image": paths,
            }
        )
    (folder / "data.json").write_text(json.dumps(items))


def timed_build(source: Path, output: Path, num_proc: int) -> tuple[float, str]:
    start = time.perf_counter()
    report = build_devcv([source], output, num_proc=num_proc, audit=False, progress=False)
    return ITEMS / (time.perf_counter() - start), report.fingerprint


def main() -> None:
    num_proc = min(4, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_release(tmp / "release")
        source = tmp / "release" / "saycam"
        timed_build(source, tmp / "warmup", 1)  # page cache and imports warm for both runs
        serial, serial_fingerprint = timed_build(source, tmp / "serial", 1)
        parallel, parallel_fingerprint = timed_build(source, tmp / "parallel", num_proc)
    print(f"items: {ITEMS} x 4 JPEG frames {FRAME_SIZE[0]}x{FRAME_SIZE[1]}; cpus: {os.cpu_count()}")
    print(f"num_proc=1: {serial:.1f} items/s; num_proc={num_proc}: {parallel:.1f} items/s")
    print(f"same shard fingerprint: {serial_fingerprint == parallel_fingerprint}")
    target = 0.6 * num_proc
    print(f"num_proc={num_proc} vs 1 build items/s: {parallel / serial:.2f}x (target >= {target:.1f}x)")


if __name__ == "__main__":
    main()
