"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: multimodal rotary positions (time, height, width per image token).

The model computes them from the token ids, ``image_grid_thw`` and the attention mask (left padding
included), so the runner never passes position ids. A dialogue round that reuses the cache gives the
model the whole sequence (cached slots, masked where stale, then the new tokens) with every image's
grid, from which transformers' generation derives the positions of the new tokens, and the vision
features of the new images only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .base import FamilyAdapter

MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")
# Token types of `mm_token_type_ids`, as the processor numbers them.
TEXT, IMAGE, VIDEO = 0, 1, 2


@dataclass(frozen=True)
class QwenVLAdapter(FamilyAdapter):
    own_positions: bool = True

    # Pixels arrive as the patches of all images in a row (`image_grid_thw` says how many belong to each).
    _ROUND_INPUTS = frozenset({"input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"})
    _PER_IMAGE_INPUT = "image_grid_thw"

    @property
    def reuses_dialogue_cache(self) -> bool:
        return True

    def dialogue_round_inputs(
        self, model, inputs: dict, input_ids: torch.Tensor, attention_mask: torch.Tensor, new_images: Sequence[int]
    ) -> dict:
        config = model.config
        token_types = torch.full_like(input_ids, TEXT)
        token_types[input_ids == config.image_token_id] = IMAGE
        token_types[input_ids == config.video_token_id] = VIDEO
        round_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "mm_token_type_ids": token_types}
        if "image_grid_thw" in inputs:
            grids = inputs["image_grid_thw"]
            # Every image's grid, cached ones included: the positions are counted over the whole sequence.
            round_inputs["image_grid_thw"] = grids
            if new_images:
                ends = grids.prod(-1).cumsum(0).tolist()
                starts = [0, *ends[:-1]]
                pixels = torch.cat([inputs["pixel_values"][starts[i] : ends[i]] for i in new_images])
                # Pre-computed features: `generate` would run the vision tower on every grid it is given.
                features = model.get_image_features(pixels, grids[list(new_images)], return_dict=True)
                round_inputs["mm_encoder_outputs"] = {"image": features}
        # Generation reuses the position offsets of the model's last call for rounds without new images; they may
        # belong to other rows. Without them it derives every position from the sequence given.
        model.model.rope_deltas = None
        return round_inputs


QWEN_VL = QwenVLAdapter("qwen_vl")
