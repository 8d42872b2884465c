"""What the evaluation runner needs to know about a model family beyond the generic transformers API."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FamilyAdapter:
    """A family's quirks, read by :class:`~babyvlm.evaluate_metrics.inference.ChatModel`.

    The generic behaviour suits most image-text-to-text models: images go to the processor as one
    list per prompt (the processor expands each placeholder into the family's image tokens), batches
    are left-padded, and positions are counted from the attention mask so that a row's result does
    not depend on the padding. A family changes only what it does differently.
    """

    name: str
    # The model derives its positions itself (multimodal rotary positions computed from the token
    # ids, the image grids and the attention mask): giving it 1-D position ids would override them.
    own_positions: bool = False

    def position_ids(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Position ids for a left-padded forward pass, or None to let the model count its own."""
        if self.own_positions:
            return None
        # Left padding shifts a row's tokens; counting positions from the mask undoes that.
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    @property
    def reuses_dialogue_cache(self) -> bool:
        """Whether dialogue rounds may reuse earlier rounds' keys and values (their positions come from the mask)."""
        return not self.own_positions


def uses_multimodal_rotary_positions(config) -> bool:
    """Whether a config's language model numbers tokens with multimodal rotary positions (``mrope_section``)."""
    text_config = config.get_text_config()
    rope = getattr(text_config, "rope_parameters", None) or getattr(text_config, "rope_scaling", None) or {}
    return "mrope_section" in rope
