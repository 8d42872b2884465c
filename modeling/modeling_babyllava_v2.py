"""BabyLLaVA-V2 in transformers' Llava structure (same module names, so weights are Llava-compatible).

What differs from Llava:
- feature selection can apply the ViT's final LayerNorm (`vision_feature_use_final_norm`), which the original
  BabyLLaVA-V2 does: it feeds all 197 post-norm tokens of the last layer to the connector;
- an optional LayerNorm before the connector (`projector_input_norm`, off by default, so the weights stay Llava's);
- a mismatch between `<image>` tokens and image features raises one `ValueError` with both counts;
- labels at `<image>` positions are always ignored by the loss, whatever the collator did.
"""

import torch
from torch import nn
from transformers import AutoModel
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava.modeling_llava import (
    LlavaCausalLMOutputWithPast,
    LlavaForConditionalGeneration,
    LlavaModel,
    LlavaMultiModalProjector,
    LlavaPreTrainedModel,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults

from .configuration_babyllava_v2 import BabyLlavaV2Config

IGNORE_INDEX = -100
"""Label value the loss skips (transformers' default ``ignore_index``); the training collator imports it from here."""


class BabyLlavaV2PreTrainedModel(LlavaPreTrainedModel):
    config: BabyLlavaV2Config
    config_class = BabyLlavaV2Config
    _no_split_modules = ["Dinov2Layer", "LlamaDecoderLayer"]


class BabyLlavaV2MultiModalProjector(LlavaMultiModalProjector):
    """Llava's two-layer connector, with a LayerNorm on its input when `config.projector_input_norm` is set."""

    def __init__(self, config: BabyLlavaV2Config):
        super().__init__(config)
        self.input_norm = nn.LayerNorm(config.vision_config.hidden_size) if config.projector_input_norm else None

    def forward(self, image_features):
        if self.input_norm is not None:
            image_features = self.input_norm(image_features)
        return super().forward(image_features)


class BabyLlavaV2Model(BabyLlavaV2PreTrainedModel, LlavaModel):
    """Vision tower + connector + language model, without the LM head."""

    def __init__(self, config: BabyLlavaV2Config):
        BabyLlavaV2PreTrainedModel.__init__(self, config)  # LlavaModel's modules, in its order, with our connector
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = BabyLlavaV2MultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    @merge_with_config_defaults
    @can_return_tuple
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        """Encode `pixel_values` (num_images, 3, H, W) into projected features.

        Returns the vision tower's output with `pooler_output` set to a list holding one
        `(image_seq_length, text_hidden_size)` tensor per image, as Llava does; a tuple with `return_dict=False`
        (argument or config). `output_hidden_states` (argument, else the config) returns every vision layer.
        """
        # `last_hidden_state` is already post-norm, so one hidden state is only needed for another layer or pre-norm;
        # an integer `output_hidden_states` captures just that layer (transformers' `select_hidden_states`).
        needs_layer = not (self.config.vision_feature_use_final_norm and vision_feature_layer == -1)
        requested = kwargs.get("output_hidden_states")
        if requested is None:
            requested = self.config.output_hidden_states
        kwargs["output_hidden_states"] = requested or (vision_feature_layer if needs_layer else False)
        vision_outputs = self.vision_tower(pixel_values.to(self.vision_tower.dtype), return_dict=True, **kwargs)
        if needs_layer:
            selected = vision_outputs.hidden_states[vision_feature_layer]
            if self.config.vision_feature_use_final_norm:
                selected = self.vision_tower.layernorm(selected)
        else:
            selected = vision_outputs.last_hidden_state
        if vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        vision_outputs.pooler_output = list(self.multi_modal_projector(selected))
        return vision_outputs

    def get_placeholder_mask(self, input_ids, inputs_embeds, image_features):
        if input_ids is None:
            image_token_embedding = self.get_input_embeddings()(
                torch.tensor(self.config.image_token_id, dtype=torch.long, device=inputs_embeds.device)
            )
            special_image_mask = (inputs_embeds == image_token_embedding).all(-1)
        else:
            special_image_mask = input_ids == self.config.image_token_id
        n_image_tokens = int(special_image_mask.sum())
        n_image_features = image_features.shape[0]
        if n_image_tokens != n_image_features:
            raise ValueError(
                f"Image features and image tokens do not match: the text has {n_image_tokens} `<image>` tokens but "
                f"the images give {n_image_features} features ({self.config.image_seq_length} per image). Expand each "
                f"`<image>` placeholder with BabyLlavaV2Processor and pass exactly one image per placeholder."
            )
        return special_image_mask.unsqueeze(-1).to(inputs_embeds.device)


class BabyLlavaV2ForConditionalGeneration(BabyLlavaV2PreTrainedModel, LlavaForConditionalGeneration, GenerationMixin):
    """BabyLLaVA-V2 with a language-modelling head; `generate()` works as for Llava."""

    def __init__(self, config: BabyLlavaV2Config):
        BabyLlavaV2PreTrainedModel.__init__(self, config)
        self.model = BabyLlavaV2Model(config)
        self.lm_head = torch.nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        image_sizes: torch.Tensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | LlavaCausalLMOutputWithPast:
        if labels is not None and input_ids is not None:
            # Image positions carry features, not text: they must never be predicted.
            labels = labels.masked_fill(input_ids == self.config.image_token_id, IGNORE_INDEX)
        return super().forward(
            input_ids=input_ids,
            pixel_values=pixel_values,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            labels=labels,
            logits_to_keep=logits_to_keep,
            image_sizes=image_sizes,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )


__all__ = ["BabyLlavaV2PreTrainedModel", "BabyLlavaV2Model", "BabyLlavaV2ForConditionalGeneration"]
