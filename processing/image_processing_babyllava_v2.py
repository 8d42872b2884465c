"""BabyLLaVA-V2 image processors: pad to a square with the mean colour, resize to 224 bilinear, ImageNet-normalise.

Two backends, as in transformers: `BabyLlavaV2ImageProcessor` (torchvision, batched, the fast path and the
default) and `BabyLlavaV2ImageProcessorPil` (PIL/NumPy reference). Both accept PIL images of any mode, NumPy
arrays and torch tensors, and bring them to 8-bit RGB first (16-bit and float images are rescaled, not clipped;
transparency is composited on white; 2-channel grey+alpha is supported).
"""

from collections.abc import Iterator
from itertools import count

import numpy as np
import PIL.Image
import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.models.llava.image_processing_llava import LlavaImageProcessor
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

_HIGH_BIT_DEPTH_PIL_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map integer images of any bit depth and float images in [0, 1] (or [0, 255]) to uint8."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        peak = 1.0 if array.size == 0 or float(np.nanmax(array)) <= 1.0 else 255.0
        return np.clip(np.nan_to_num(array) * (255.0 / peak), 0, 255).round().astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    # Integers: 16-bit data is the common case; smaller values are treated as already 8-bit.
    peak = 65535 if array.size and array.max() > 255 else 255
    return np.clip(array.astype(np.float64) * (255.0 / peak), 0, 255).round().astype(np.uint8)


def _grey_alpha_to_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W, 2) grey + alpha, uint8 -> (H, W, 3) on a white background."""
    grey, alpha = array[..., 0].astype(np.float32), array[..., 1].astype(np.float32) / 255.0
    composited = grey * alpha + 255.0 * (1.0 - alpha)
    return np.repeat(composited.round().astype(np.uint8)[..., None], 3, axis=-1)


def to_rgb_compatible(image):
    """Bring an image to a form both transformers backends turn into RGB correctly.

    PIL images in high-bit-depth modes (I;16, I, F) become 8-bit `L` images; NumPy arrays and torch tensors
    become uint8, and 2-channel grey+alpha becomes RGB. Other inputs pass through unchanged (RGB, L, LA, P,
    RGBA, CMYK, 1 are handled by the backends' own RGB conversion).
    """
    if isinstance(image, PIL.Image.Image):
        if image.mode in _HIGH_BIT_DEPTH_PIL_MODES:
            return PIL.Image.fromarray(_scale_to_uint8(np.asarray(image)), mode="L")
        return image
    is_tensor = isinstance(image, torch.Tensor)
    if not is_tensor and not isinstance(image, np.ndarray):
        raise TypeError(f"expected a PIL image, a NumPy array or a torch tensor, got {type(image).__name__}")
    array = image.detach().cpu().numpy() if is_tensor else image
    channels_first = array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[-1] not in (1, 2, 3, 4)
    if channels_first:
        array = np.moveaxis(array, 0, -1)
    array = _scale_to_uint8(array)
    if array.ndim == 3 and array.shape[-1] == 2:
        array = _grey_alpha_to_rgb(array)
    if channels_first:
        array = np.moveaxis(array, -1, 0)
    if array.ndim == 2:  # a bare (H, W) grey image: give it a channel axis so it is not read as a batch
        array = array[..., None]
    array = np.ascontiguousarray(array)
    return torch.from_numpy(array) if is_tensor else array


class _BabyLlavaV2ImageDefaults:
    """Preprocessing of the original BabyLLaVA-V2 (`image_aspect_ratio="pad"`), shared by both backends."""

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 224, "width": 224}
    default_to_square = True
    do_pad = True  # pad to square with int(mean * 255) = (123, 116, 103), centred
    do_resize = True
    do_center_crop = False
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def preprocess(self, images, *args, **kwargs):
        return super().preprocess(_map_images(to_rgb_compatible, images, count()), *args, **kwargs)


def _map_images(function, images, numbers: Iterator[int]):
    """Apply `function` to every image of a possibly nested list of images, checked first (numbered in order)."""
    if isinstance(images, (list, tuple)):
        return [_map_images(function, image, numbers) for image in images]
    check_image(images, next(numbers))
    return function(images)


def check_image(image, number: int = 0) -> None:
    """Refuse images without pixels (a 10x0 or 0x0 PIL image, a (0, 10, 3) array) and float images with NaN or
    infinite values: each would otherwise be answered as if it were a real picture, or fail in an opaque reshape."""
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"image {number} is {image.width}x{image.height} pixels (width x height): it is empty")
        return
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        return  # to_rgb_compatible names the unsupported type
    what = f"image {number} ({type(image).__name__} of shape {tuple(image.shape)})"
    if min(image.shape, default=0) == 0:
        raise ValueError(f"{what} has no pixels")
    if image.ndim == 3 and not ({image.shape[0], image.shape[-1]} & {1, 2, 3, 4}):
        raise ValueError(f"{what} has no channel axis of 1 to 4 values, first or last (5 channels are not an image)")
    floating = image.is_floating_point() if isinstance(image, torch.Tensor) else np.issubdtype(image.dtype, np.floating)
    if floating and not bool((torch.isfinite(image) if isinstance(image, torch.Tensor) else np.isfinite(image)).all()):
        raise ValueError(f"{what} holds NaN or infinite values")


class BabyLlavaV2ImageProcessor(_BabyLlavaV2ImageDefaults, LlavaImageProcessor):
    """Torchvision backend (batched; runs on GPU tensors too)."""


class BabyLlavaV2ImageProcessorPil(_BabyLlavaV2ImageDefaults, LlavaImageProcessorPil):
    """PIL/NumPy reference backend."""


__all__ = ["BabyLlavaV2ImageProcessor", "BabyLlavaV2ImageProcessorPil", "check_image", "to_rgb_compatible"]
