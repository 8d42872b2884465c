"""The tiny model of every family loads through the Auto classes and answers with its own processor."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from babyvlm.testing import TINY_FAMILIES, save_tiny_model

MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Which image has more cups? (A) "},
            {"type": "image"},
            {"type": "text", "text": " (B) "},
            {"type": "image"},
        ],
    }
]


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tiny_family_loads_with_the_auto_classes_and_generates(tmp_path, family):
    directory = save_tiny_model(family, tmp_path)
    processor = AutoProcessor.from_pretrained(directory)
    model = AutoModelForImageTextToText.from_pretrained(directory).eval()
    assert model.config.model_type == family
    assert type(processor).__module__.startswith(f"transformers.models.{family}.")
    assert sum(parameter.numel() for parameter in model.parameters()) < 200_000

    prompt = processor.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    images = [Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)) for value in (0, 255)]
    inputs = processor(text=[prompt], images=images, return_tensors="pt")
    # Each image became the family's placeholder tokens (more than one per image).
    image_tokens = (inputs["input_ids"] == model.config.image_token_id).sum().item()
    assert image_tokens >= 2 * 2
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    answer = processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
    assert answer.strip()


def test_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no tiny model of family 'pixtral'"):
        save_tiny_model("pixtral", tmp_path)
