"""DevCV explorer on a large folder: time to show the first page and item, lazily vs loading the split.

Writes a Picture Vocabulary split of ``--items`` items (four 64×64 PNGs each, 100-row groups as the
builder writes them), then, side by side and interleaved, times

- the explorer: open the folder, list the first page, render its first item (``Explorer``), and
  jump to an item far down the split;
- what a script reading the split with 🤗 datasets does first (``load_task_split``, which the
  evaluation runner uses: parquet converted into a fresh Arrow cache) and decoding that item's images.

The last line is the ratio of the two times to the first item shown.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from babyvlm.dataset_builders.devcv.schema import DEVCV_FEATURES
from babyvlm.dataset_builders.devcv.shards import ParquetShardWriter
from PIL import Image

from babyvlm.testing.devcv import synthetic_items

TASK, SPLIT = "picture_vocabulary", "test"


def png(rng: random.Random) -> bytes:
    pixels = np.frombuffer(rng.randbytes(64 * 64 * 3), dtype=np.uint8).reshape(64, 64, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_folder(folder: Path, items: int) -> None:
    """A DevCV folder with one large split, every image distinct (as in the release: nothing deduplicates)."""
    rng = random.Random(0)
    template = synthetic_items(TASK, 1, SPLIT)[0]
    writer = ParquetShardWriter(folder / TASK, SPLIT, DEVCV_FEATURES)
    for index in range(items):
        images = [{"bytes": png(rng), "path": None} for _ in range(4)]
        writer.write(template | {"id": f"{TASK}_{index:06d}", "images": images})
    writer.close()
    configs = [{"config_name": TASK, "data_files": [{"split": SPLIT, "path": f"{TASK}/{SPLIT}-*.parquet"}]}]
    (folder / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}, sort_keys=False) + "---\n")


def explorer_seconds(folder: Path, far: int) -> tuple[float, float]:
    from babyvlm.commands.explore.filters import Selection
    from babyvlm.commands.explore.session import Explorer

    start = time.perf_counter()
    explorer = Explorer(folder)
    listing = explorer.listing(TASK, SPLIT, Selection())
    explorer.item(TASK, SPLIT, listing.positions[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    explorer.item(TASK, SPLIT, far)
    return first, time.perf_counter() - start


def datasets_seconds(folder: Path, cache: Path) -> float:
    import datasets
    from babyvlm.evaluate_metrics.data import load_task_split

    datasets.config.HF_DATASETS_CACHE = cache  # cold: a user's first look at the folder
    start = time.perf_counter()
    dataset = load_task_split(folder, TASK, SPLIT)
    [image.load() for image in dataset[0]["images"]]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "devcv"
        start = time.perf_counter()
        write_folder(folder, args.items)
        size = sum(file.stat().st_size for file in folder.rglob("*.parquet")) / 2**20
        print(f"folder: {args.items} items, {size:.0f} MiB of parquet, written in {time.perf_counter() - start:.1f} s")
        explorer_seconds(folder, 0), datasets_seconds(folder, Path(tmp) / "cache-warm-up")  # imports, page cache
        lazy, jump, eager = [], [], []
        for repeat in range(args.repeats):
            first, far = explorer_seconds(folder, args.items - 1)
            lazy.append(first)
            jump.append(far)
            eager.append(datasets_seconds(folder, Path(tmp) / f"cache-{repeat}"))
            print(f"run {repeat + 1}: explorer {first:.3f} s (last item {far:.3f} s), datasets {eager[-1]:.3f} s")
    lazy_s, jump_s, eager_s = (statistics.median(times) for times in (lazy, jump, eager))
    print(f"median: explorer first item {lazy_s:.3f} s, item {args.items - 1} {jump_s:.3f} s; datasets {eager_s:.3f} s")
    print(f"first item shown, explorer vs loading the split with datasets: {eager_s / lazy_s:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
