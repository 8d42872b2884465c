"""Vision controls: images replaced by other items' images or by their mean colour."""

import numpy as np
import pytest
from babyvlm.evaluate_metrics.controls import blank_image, shuffled_images
from PIL import Image


def _image(value: int, size=(8, 6)) -> Image.Image:
    return Image.new("RGB", size, (value, 255 - value, value // 2))


def test_shuffled_images_come_from_other_items_and_depend_on_the_seed():
    items = [[_image(10 * item + k) for k in range(item % 3 + 1)] for item in range(12)]
    owner = {image.tobytes(): item for item, images in enumerate(items) for image in images}
    shuffled = shuffled_images(items, seed=0)
    assert [len(images) for images in shuffled] == [len(images) for images in items]
    assert all(owner[image.tobytes()] != item for item, images in enumerate(shuffled) for image in images)
    same = shuffled_images(items, seed=0)
    assert [[i.tobytes() for i in images] for images in same] == [[i.tobytes() for i in images] for images in shuffled]
    other = shuffled_images(items, seed=1)
    assert [[i.tobytes() for i in images] for images in other] != [[i.tobytes() for i in images] for images in shuffled]


def test_shuffling_needs_two_items():
    with pytest.raises(ValueError, match="two items"):
        shuffled_images([[_image(1), _image(2)]], seed=0)


def test_blank_image_is_the_mean_colour_at_the_same_size():
    pixels = np.zeros((6, 8, 3), dtype=np.uint8)
    pixels[:, :4] = (200, 100, 0)
    blank = blank_image(Image.fromarray(pixels))
    assert (blank.size, blank.mode) == ((8, 6), "RGB")
    assert set(blank.getdata()) == {(100, 50, 0)}
    assert blank_image(Image.new("L", (3, 3), 7)).getpixel((1, 1)) == 7
