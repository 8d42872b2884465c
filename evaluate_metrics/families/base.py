"""What the evaluation runner needs to know about a model family beyond the generic transformers API."""

from __future__ import annotations

from collections.abc import Sequence
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

    # The processor outputs a dialogue round can split per image, and the one that has an entry per image.
    _ROUND_INPUTS = frozenset({"input_ids", "attention_mask", "pixel_values"})
    _PER_IMAGE_INPUT = "pixel_values"

    def position_ids(self, attention_mask: torch.Tensor) -> torch.Tensor | None:
        """Position ids for a left-padded forward pass, or None to let the model count its own."""
        if self.own_positions:
            return None
        # Left padding shifts a row's tokens; counting positions from the mask undoes that.
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    @property
    def reuses_dialogue_cache(self) -> bool:
        """Whether dialogue rounds may reuse earlier rounds' keys and values: positions counted from the mask (which
        hides the cache's padding and stale slots), or a family that builds a cached round's inputs itself."""
        return not self.own_positions

    def splits_images(self, inputs: dict, image_count: int) -> bool:
        """Whether ``inputs`` (the processor's output for prompts holding ``image_count`` images) can be cut into
        the inputs of single images, which a dialogue round that reuses the cache needs."""
        return set(inputs) <= self._ROUND_INPUTS and (
            "pixel_values" not in inputs or len(inputs[self._PER_IMAGE_INPUT]) == image_count
        )

    def dialogue_round_inputs(
        self, model, inputs: dict, input_ids: torch.Tensor, attention_mask: torch.Tensor, new_images: Sequence[int]
    ) -> dict:
        """The inputs of a dialogue round that reuses the cache.

        ``input_ids`` and ``attention_mask`` hold the cached slots followed by each row's new tokens; ``inputs``
        is the processor's output for the whole prompts, whose images ``new_images`` (indices over every row's
        images, in order) have placeholders among the new tokens and go through the vision tower.
        """
        round_inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if new_images:
            round_inputs["pixel_values"] = inputs["pixel_values"][list(new_images)]
        return round_inputs


def uses_multimodal_rotary_positions(config) -> bool:
    """Whether a config's language model numbers tokens with multimodal rotary positions (``mrope_section``)."""
    text_config = config.get_text_config()
    rope = getattr(text_config, "rope_parameters", None) or getattr(text_config, "rope_scaling", None) or {}
    return "mrope_section" in rope
