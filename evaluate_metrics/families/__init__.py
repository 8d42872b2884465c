"""One adapter per model family, chosen from the config's ``model_type`` (see ``base.FamilyAdapter``).

Families whose processor and chat template follow the generic API need no adapter of their own:
BabyLLaVA-V2, Llava(-1.5), LLaVA-OneVision, Idefics3/SmolVLM, Gemma 3 and InternVL run on the
generic one (the quirks they do have, such as a chat template that renders its own ``<bos>`` or an
assistant turn that does not extend the generation prompt, are handled generically by the chat
model). An unknown family gets the generic adapter, with multimodal rotary positions recognised
from its config.
"""

from __future__ import annotations

from . import qwen_vl
from .base import FamilyAdapter, uses_multimodal_rotary_positions

_ADAPTERS: dict[str, FamilyAdapter] = dict.fromkeys(qwen_vl.MODEL_TYPES, qwen_vl.QWEN_VL)


def adapter_for(config) -> FamilyAdapter:
    """The adapter of a model config's family (the generic one for families without quirks)."""
    if config.model_type in _ADAPTERS:
        return _ADAPTERS[config.model_type]
    return FamilyAdapter(config.model_type, own_positions=uses_multimodal_rotary_positions(config))


__all__ = ["FamilyAdapter", "adapter_for"]
