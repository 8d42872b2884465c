"""BabyLLaVA-V2 model classes (registered with the transformers Auto classes by `import babyvlm`)."""

from .configuration_babyllava_v2 import BabyLlavaV2Config
from .modeling_babyllava_v2 import (
    BabyLlavaV2ForConditionalGeneration,
    BabyLlavaV2Model,
    BabyLlavaV2PreTrainedModel,
)

__all__ = [
    "BabyLlavaV2Config",
    "BabyLlavaV2ForConditionalGeneration",
    "BabyLlavaV2Model",
    "BabyLlavaV2PreTrainedModel",
]
