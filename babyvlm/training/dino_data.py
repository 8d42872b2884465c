"""Data for DINOv2-style pretraining: multi-crop augmentation, iBOT block masks and a resumable image stream.

Every random choice of a sample (which image, its crops, its masks) is a function of ``(seed, position)`` where
``position`` counts images since the start of training. A run resumed at step ``s`` therefore reads exactly the
crops an uninterrupted run would have read, whatever the number of data-loader workers. Each sample also carries
its row's exposure figures (:mod:`.exposure`), which the recipe counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import InterpolationMode, v2

from .data import DatasetSpec, load_spec
from .exposure import COLUMNS as EXPOSURE_COLUMNS
from .exposure import Curriculum, with_exposure_columns

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EXPOSURE_RECORD = "exposure_record"


@dataclass
class MultiCropConfig:
    """Crops and masks of one image (defaults: DINOv2's ``ssl_default_config``)."""

    global_crops_number: int = field(default=2, metadata={"help": "Global crops per image (seen by the teacher)."})
    global_crops_size: int = field(default=224, metadata={"help": "Side of a global crop, in pixels."})
    global_crops_scale: list[float] = field(
        default_factory=lambda: [0.32, 1.0], metadata={"help": "Area range of a global crop."}
    )
    local_crops_number: int = field(default=8, metadata={"help": "Local crops per image (student only)."})
    local_crops_size: int = field(default=96, metadata={"help": "Side of a local crop, in pixels."})
    local_crops_scale: list[float] = field(
        default_factory=lambda: [0.05, 0.32], metadata={"help": "Area range of a local crop."}
    )
    mask_probability: float = field(default=0.5, metadata={"help": "Chance that a global crop gets iBOT masks."})
    mask_ratio_min: float = field(default=0.1, metadata={"help": "Smallest share of patches masked in a masked crop."})
    mask_ratio_max: float = field(default=0.5, metadata={"help": "Largest share of patches masked in a masked crop."})

    def __post_init__(self):
        if self.global_crops_number < 2:
            raise ValueError(
                "global_crops_number must be >= 2 (the DINO loss pairs different views), "
                f"got {self.global_crops_number}"
            )
        if self.local_crops_number < 0:
            raise ValueError(f"local_crops_number must be >= 0, got {self.local_crops_number}")
        for name in ("global_crops_scale", "local_crops_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high <= 1:
                raise ValueError(f"{name} must be two numbers 0 < min <= max <= 1, got {getattr(self, name)}")
        if not 0 <= self.mask_probability <= 1:
            raise ValueError(f"mask_probability must be in [0, 1], got {self.mask_probability}")
        if not 0 <= self.mask_ratio_min <= self.mask_ratio_max < 1:
            raise ValueError(
                f"need 0 <= mask_ratio_min <= mask_ratio_max < 1, got {self.mask_ratio_min}, {self.mask_ratio_max}"
            )

    def check_patch_size(self, patch_size: int) -> None:
        """Crops must tile into whole patches, or the ViT would silently drop their edges."""
        for name in ("global_crops_size", "local_crops_size"):
            if getattr(self, name) % patch_size:
                raise ValueError(f"{name}={getattr(self, name)} is not a multiple of the ViT patch size {patch_size}")


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(()).item()


def block_mask(grid: int, num_masked: int, min_block: int = 4, max_aspect: float = 1 / 0.3) -> torch.Tensor:
    """iBOT/BEiT block-wise mask of about ``num_masked`` of ``grid x grid`` patches, flattened row-major.

    Rectangles of at least ``min_block`` patches with aspect ratios in ``[1/max_aspect, max_aspect]`` are added until
    the target is reached or ten tries in a row add nothing. Uses the global torch generator.
    """
    mask = torch.zeros(grid, grid, dtype=torch.bool)
    log_aspect = math.log(max_aspect)
    while (remaining := num_masked - int(mask.sum())) > 0:
        for _ in range(10):
            area = _uniform(min_block, remaining)
            aspect = math.exp(_uniform(-log_aspect, log_aspect))
            height, width = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if not (0 < height < grid and 0 < width < grid):
                continue
            top, left = torch.randint(grid - height + 1, ()).item(), torch.randint(grid - width + 1, ()).item()
            block = mask[top : top + height, left : left + width]
            added = int((~block).sum())
            if 0 < added <= remaining:
                block.fill_(True)
                break
        else:  # ten tries without a block that fits what remains: stop short of the target
            break
    return mask.flatten()


class MultiCropAugmentation:
    """DINOv2's augmentation: global and local random-resized crops, flips, colour jitter, grayscale, blur,
    solarisation (second global crop), ImageNet normalisation; plus iBOT block masks of the global crops.

    Calling it with an image and a seed returns ``{"global_crops": (G, 3, S, S), "local_crops": (L, 3, s, s),
    "masks": (G, patches)}``; the same seed gives the same tensors.
    """

    def __init__(self, config: MultiCropConfig, patch_size: int):
        config.check_patch_size(patch_size)
        self.config, self.grid = config, config.global_crops_size // patch_size

        def blur(p: float) -> v2.Transform:
            return v2.RandomApply([v2.GaussianBlur(kernel_size=9, sigma=(0.1, 2.0))], p=p)

        def crops(size: int, scale: list[float], *extra: v2.Transform) -> v2.Compose:
            return v2.Compose(
                [
                    v2.RandomResizedCrop(
                        size, scale=tuple(scale), interpolation=InterpolationMode.BICUBIC, antialias=True
                    ),
                    v2.RandomHorizontalFlip(p=0.5),
                    v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8),
                    v2.RandomGrayscale(p=0.2),
                    *extra,
                    v2.ToDtype(torch.float32, scale=True),
                    v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
                ]
            )

        # As in DINOv2 the first global crop is always blurred, the other ones rarely but sometimes solarised.
        size, scale = config.global_crops_size, config.global_crops_scale
        first_global = crops(size, scale, blur(1.0))
        other_global = crops(size, scale, blur(0.1), v2.RandomSolarize(threshold=128, p=0.2))
        self.global_transforms = [first_global] + [other_global] * (config.global_crops_number - 1)
        self.local_transform = crops(config.local_crops_size, config.local_crops_scale, blur(0.5))
        self.to_tensor = v2.ToImage()

    def __call__(self, image: Image.Image, seed: int) -> dict[str, torch.Tensor]:
        pixels = self.to_tensor(image.convert("RGB"))
        config = self.config
        with torch.random.fork_rng(devices=[]):  # leave the caller's generator (and the model's dropout) untouched
            torch.manual_seed(seed)
            global_crops = torch.stack([transform(pixels) for transform in self.global_transforms])
            local_crops = [self.local_transform(pixels) for _ in range(config.local_crops_number)]
            masks = torch.stack([self._mask() for _ in range(config.global_crops_number)])
        size = config.local_crops_size
        local = torch.stack(local_crops) if local_crops else torch.empty(0, 3, size, size)
        return {"global_crops": global_crops, "local_crops": local, "masks": masks}

    def _mask(self) -> torch.Tensor:
        config, patches = self.config, self.grid * self.grid
        if torch.rand(()).item() >= config.mask_probability:
            return torch.zeros(patches, dtype=torch.bool)
        return block_mask(self.grid, int(patches * _uniform(config.mask_ratio_min, config.mask_ratio_max)))


def load_image_dataset(
    name: str,
    config: str | None,
    split: str,
    image_column: str,
    curriculum: Curriculum | None = None,
    seed: int = 0,
) -> tuple[datasets.Dataset, dict]:
    """Load ``split`` of a ``load_dataset``-able folder or Hub id (:func:`~babyvlm.training.data.load_spec`), keep
    ``image_column`` as decoded images and the ``exposure_*`` columns (:mod:`.exposure`), and put the rows in
    ``curriculum`` order. Returns the images and the corpus read (``path``, ``name``, ``split``, ``fingerprint``).

    A column of paths or ``{"bytes", "path"}`` dicts is cast to ``datasets.Image``; an image folder (no dataset
    card) has the column ``image``.
    """
    curriculum = curriculum or Curriculum()
    images = load_spec(DatasetSpec(name, config, split))
    source = f"dataset {name!r} (split {split!r})"
    if image_column not in images.column_names:
        raise ValueError(f"{source} has no column {image_column!r}; columns: {images.column_names}")
    if len(images) == 0:
        raise ValueError(f"{source} is empty")
    curriculum.check_source(images, source)
    corpus = {"path": name, "name": config, "split": split, "fingerprint": images._fingerprint}
    images = with_exposure_columns(images, image_column).select_columns([image_column, *EXPOSURE_COLUMNS.values()])
    if not isinstance(images.features[image_column], datasets.Image):
        images = images.cast_column(image_column, datasets.Image())
    return curriculum.order(images, seed), corpus


class MultiCropDataset(Dataset):
    """Position ``i`` of an endless stream over ``images`` → the crops of one image, and its exposure record.

    Shuffled (the default), pass ``e`` visits the images in the order of ``randperm(len(images))`` seeded by
    ``(seed, e)``; otherwise every pass reads them in their order (a curriculum's). The crops of position ``i`` are
    seeded by ``(seed, i)``. A sample's ``exposure_record`` holds the row's ``exposure_*`` columns.
    """

    def __init__(
        self,
        images: datasets.Dataset,
        image_column: str,
        augmentation: MultiCropAugmentation,
        seed: int,
        shuffle: bool = True,
    ):
        self.images, self.image_column, self.augmentation, self.seed = images, image_column, augmentation, seed
        self.shuffle = shuffle
        self._order_epoch, self._order = -1, None

    def _seed(self, *keys: int) -> int:
        return int(np.random.SeedSequence([self.seed, *keys]).generate_state(1)[0])

    def _row(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.images))
        if not self.shuffle:
            return offset
        if epoch != self._order_epoch:
            generator = torch.Generator().manual_seed(self._seed(0, epoch))
            self._order_epoch, self._order = epoch, torch.randperm(len(self.images), generator=generator)
        return int(self._order[offset])

    def __getitem__(self, position: int) -> dict:
        row = self._row(position)
        try:
            record = self.images[row]
        except Exception as error:  # a corrupt file must name itself, not surface as a bare PIL error in a worker
            message = f"row {row} of the image dataset: cannot decode column {self.image_column!r}: {error}"
            raise ValueError(message) from error
        sample = self.augmentation(record.pop(self.image_column), seed=self._seed(1, position))
        sample[EXPOSURE_RECORD] = record
        return sample


class StreamBatchSampler(Sampler[list[int]]):
    """Endless batches of stream positions for one process, starting at ``start_step``.

    Step ``s`` of process ``r`` reads positions ``s * B * P + r * B`` to ``... + B - 1`` (``B`` the per-process
    batch, ``P`` the processes): processes never overlap and a restart at step ``s`` continues the same stream.
    """

    def __init__(self, batch_size: int, start_step: int = 0, num_processes: int = 1, process_index: int = 0):
        self.batch_size, self.start_step = batch_size, start_step
        self.num_processes, self.process_index = num_processes, process_index

    def __iter__(self):
        step = self.start_step
        while True:
            first = (step * self.num_processes + self.process_index) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1


def collate_crops(samples: list[dict]) -> dict:
    """Stack per-image crops into crop-major batches, ``(crops, batch, ...)`` for each key; the samples' exposure
    records become the list ``exposure_records``."""
    batch = {
        key: torch.stack([sample[key] for sample in samples], dim=1) for key in samples[0] if key != EXPOSURE_RECORD
    }
    if EXPOSURE_RECORD in samples[0]:
        batch["exposure_records"] = [sample[EXPOSURE_RECORD] for sample in samples]
    return batch


__all__ = [
    "MultiCropAugmentation",
    "MultiCropConfig",
    "MultiCropDataset",
    "StreamBatchSampler",
    "block_mask",
    "collate_crops",
    "load_image_dataset",
]
