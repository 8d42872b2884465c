"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL: multimodal rotary positions (time, height, width per image token).

The model computes them from the token ids, ``image_grid_thw`` and the attention mask (left padding
included), so the runner never passes position ids; its inputs carry image grids, so dialogue rounds
re-encode the whole history instead of reusing the cache.
"""

from .base import FamilyAdapter

QWEN_VL = FamilyAdapter("qwen_vl", own_positions=True)
MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")
