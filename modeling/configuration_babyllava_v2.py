"""BabyLLaVA-V2 configuration: a Dinov2-style ViT, a Llama LM and a two-layer MLP connector."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.llava.configuration_llava import LlavaConfig

# ViT-L/16 at 224 with LayerScale, as trained DINO-style on SAYCam frames (README.md, "The model").
VISION_DEFAULTS = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "mlp_ratio": 4,
    "image_size": 224,
    "patch_size": 16,
    "layerscale_value": 1e-5,
    "layer_norm_eps": 1e-6,
}

# TinyLlama-1.1B architecture, trained from scratch on a 6000-word tokenizer plus `<image>`.
TEXT_DEFAULTS = {
    "vocab_size": 6001,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 8192,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": 3,
}

REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_babyllava_v2.BabyLlavaV2Config",
    "AutoModel": "modeling_babyllava_v2.BabyLlavaV2Model",
    "AutoModelForImageTextToText": "modeling_babyllava_v2.BabyLlavaV2ForConditionalGeneration",
}


@strict
class BabyLlavaV2Config(LlavaConfig):
    r"""Configuration of a BabyLLaVA-V2 model.

    It extends [`LlavaConfig`] (same connector and weight layout) with the BabyLLaVA-V2 defaults and one more
    feature-selection switch. With the defaults every image becomes **197 tokens**: CLS + 14×14 patches of the
    **last** ViT layer **after** its final LayerNorm — what the original BabyLLaVA-V2 feeds its connector, which
    is neither Llava's default (pre-norm, CLS dropped) nor `hidden_states[-1]`.

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Vision tower config; defaults to a Dinov2-style ViT-L/16 at 224 px with LayerScale 1e-5.
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Language model config; defaults to a Llama with the TinyLlama-1.1B shape, vocab 6000 + `<image>`,
            8192 positions.
        image_token_index (`int`, *optional*, defaults to 6000):
            Id of the `<image>` placeholder token (also readable as `image_token_id`).
        projector_hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation between the connector's two linear layers.
        vision_feature_layer (`int`, *optional*, defaults to -1):
            Which ViT layer feeds the connector (index into the tower's hidden states; -1 is the last layer).
        vision_feature_select_strategy (`str`, *optional*, defaults to `"full"`):
            `"full"` keeps the CLS token, `"default"` drops it (Llava's naming).
        vision_feature_use_final_norm (`bool`, *optional*, defaults to `True`):
            Apply the tower's final LayerNorm to the selected layer.
        projector_input_norm (`bool`, *optional*, defaults to `False`):
            Put a LayerNorm (its own, trained with the connector) between the selected vision features and the
            connector. An extra of this package, off in the original: a DINO-trained tower's features can be
            nearly the same for every frame, and normalising each token makes their differences what the
            connector sees. On, the connector gains `multi_modal_projector.input_norm.{weight,bias}`.
        image_seq_length (`int`, *optional*):
            Tokens per image. Always derived from the vision settings above; stored for the processor.

    Example:

    ```python
    >>> from babyvlm.modeling import BabyLlavaV2Config
    >>> config = BabyLlavaV2Config()
    >>> config.image_seq_length, config.vision_config.patch_size, config.text_config.vocab_size
    (197, 16, 6001)
    ```"""

    model_type = "babyllava_v2"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="dinov2", init_kwargs=VISION_DEFAULTS),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama", init_kwargs=TEXT_DEFAULTS),
    }

    image_token_index: int = 6000
    image_seq_length: int = 197
    vision_feature_select_strategy: str = "full"
    vision_feature_layer: int = -1
    vision_feature_use_final_norm: bool = True
    projector_input_norm: bool = False

    def __post_init__(self, **kwargs):
        # A partial sub-config dict overrides only the keys it names (e.g. a tiny test model keeps the tokenizer's
        # special-token ids and the untied embeddings).
        if isinstance(self.vision_config, dict):
            self.vision_config = {**VISION_DEFAULTS, **self.vision_config}
        if isinstance(self.text_config, dict):
            self.text_config = {**TEXT_DEFAULTS, **self.text_config}
        super().__post_init__(**kwargs)
        if self.vision_feature_select_strategy not in ("full", "default"):
            raise ValueError(
                f"vision_feature_select_strategy must be 'full' (keep CLS) or 'default' (drop CLS), "
                f"got {self.vision_feature_select_strategy!r}"
            )
        if not isinstance(self.vision_feature_layer, int):
            raise ValueError(f"vision_feature_layer must be a single layer index, got {self.vision_feature_layer!r}")
        patches_per_side = self.vision_config.image_size // self.vision_config.patch_size
        keeps_cls = self.vision_feature_select_strategy == "full"
        self.image_seq_length = patches_per_side**2 + int(keeps_cls)
        # Saving the model writes only its own class into `auto_map`; the base model must load remotely too.
        self.auto_map = {**REMOTE_CODE_AUTO_MAP, **(getattr(self, "auto_map", None) or {})}


__all__ = ["BabyLlavaV2Config"]
