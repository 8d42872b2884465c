"""Small randomly initialised BabyLLaVA-V2 models for tests and benchmarks.

Same architecture and code path as the full-size model, with every dimension shrunk so that it runs in
seconds on a CPU.
"""

from __future__ import annotations

import os

import torch

from ..modeling import BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration
from ..processing import BabyLlavaV2ImageProcessor, BabyLlavaV2Processor, train_tokenizer

# Child-directed utterances in the style of the SAYCam transcripts, enough to train a small tokenizer.
SAMPLE_UTTERANCES = [
    "look, two red balls!",
    "where is the blue cup?",
    "the dog is going out of the door.",
    "can you touch the new one?",
    "one, two, three cars.",
    "which picture has more apples?",
    "that's a big green truck.",
    "the cat is on the left side.",
    "do you see the yellow duck?",
    "a b c d, point at the bottom right.",
    "good job! you found the bear.",
    "mommy has four spoons and you have five.",
]


def tiny_config(vocab_size: int, image_token_id: int, image_size: int = 32, **overrides) -> BabyLlavaV2Config:
    """A BabyLLaVA-V2 config with 2-layer towers of width 32-64 (17 tokens per image at the defaults)."""
    vision = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": 8,
    }
    text = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
    }
    vision.update(overrides.pop("vision_config", {}))
    text.update(overrides.pop("text_config", {}))
    return BabyLlavaV2Config(vision_config=vision, text_config=text, image_token_index=image_token_id, **overrides)


def build_tiny_babyllava(
    output_dir: str | os.PathLike | None = None,
    utterances: list[str] | None = None,
    vocab_size: int = 400,
    seed: int = 0,
    **config_overrides,
) -> tuple[BabyLlavaV2ForConditionalGeneration, BabyLlavaV2Processor]:
    """Train a tokenizer on `utterances`, build a random tiny model and its processor, optionally save both.

    Deterministic for a given `seed`.
    """
    tokenizer = train_tokenizer(utterances or SAMPLE_UTTERANCES * 4, vocab_size=vocab_size, min_frequency=1)
    config = tiny_config(len(tokenizer), tokenizer.image_token_id, **config_overrides)
    torch.manual_seed(seed)
    model = BabyLlavaV2ForConditionalGeneration(config).eval()
    image_size = config.vision_config.image_size
    image_processor = BabyLlavaV2ImageProcessor(size={"height": image_size, "width": image_size})
    processor = BabyLlavaV2Processor.from_model_config(config, image_processor, tokenizer)
    if output_dir is not None:
        model.save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
    return model, processor
