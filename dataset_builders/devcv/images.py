"""Check that item images exist and decode, and turn them into ``Image()`` feature values.

Decoding every image at build time is what catches truncated or corrupt files before a training
run or an evaluation trips on them. With ``num_proc > 1`` items are checked in worker processes;
results come back in input order, so the output stays deterministic.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

from PIL import Image, ImageFile

from .report import MISSING_IMAGE, UNREADABLE_IMAGE, ItemSkipped

ImageValue = dict  # {"bytes": bytes | None, "path": str}: what datasets' Image() feature stores


@contextlib.contextmanager
def _truncated_images_refused() -> Iterator[None]:
    """Decode strictly whatever the process-wide Pillow setting is.

    Importing lmms-eval sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` for the whole process, after which Pillow
    pads a truncated file with grey instead of raising. Images are decoded one at a time per process (workers are
    processes, not threads), so the setting can be switched off for the decode and put back.
    """
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def load_image(file: Path, released_path: str, embed: bool) -> ImageValue:
    """Read and fully decode one image; embed its original bytes or reference it by absolute path.

    Embedded images keep their released bytes untouched (no re-encoding) and their released
    relative path as the name. Raises :class:`~.report.ItemSkipped` for a missing or undecodable file.
    """
    if not file.is_file():
        raise ItemSkipped(MISSING_IMAGE, f"image file {released_path!r} not found ({file})")
    try:
        data = file.read_bytes()
        with _truncated_images_refused(), Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ItemSkipped(UNREADABLE_IMAGE, f"image file {released_path!r} cannot be decoded: {error}") from None
    return {"bytes": data, "path": released_path} if embed else {"bytes": None, "path": str(file)}


def _load_item_images(job: tuple[list[Path], list[str], bool]) -> list[ImageValue] | ItemSkipped:
    """All images of one item, or one :class:`~.report.ItemSkipped` naming every bad image of it."""
    files, released_paths, embed = job
    values, failures = [], []
    for file, released in zip(files, released_paths):
        try:
            values.append(load_image(file, released, embed))
        except ItemSkipped as skipped:
            failures.append(skipped)
    if failures:
        return ItemSkipped(failures[0].reason, "; ".join(failure.detail for failure in failures))
    return values


class ImageLoader:
    """Loads the images of many items, in ``num_proc`` worker processes when asked.

    Use as a context manager so the workers are shut down; ``load`` yields, per item and in input
    order, either its image values or the :class:`~.report.ItemSkipped` that rejects it.
    """

    def __init__(self, *, embed: bool = True, num_proc: int = 1):
        if num_proc < 1:
            raise ValueError(f"num_proc must be >= 1, got {num_proc}")
        self.embed = embed
        self.num_proc = num_proc
        self._pool = None

    def __enter__(self) -> Self:
        if self.num_proc > 1:
            # fork: workers inherit the already-imported package (importing babyvlm afresh pulls
            # in torch and transformers, seconds per worker); they only run PIL.
            self._pool = multiprocessing.get_context("fork").Pool(self.num_proc)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def load(self, items: Iterable[tuple[list[Path], list[str]]]) -> Iterator[list[ImageValue] | ItemSkipped]:
        """``items``: (image files, released paths) per item."""
        jobs = ((files, released, self.embed) for files, released in items)
        if self._pool is None:
            return map(_load_item_images, jobs)
        return self._pool.imap(_load_item_images, jobs, chunksize=4)
