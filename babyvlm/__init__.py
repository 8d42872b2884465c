"""BabyVLM-V2, Hugging Face-native.

Importing `babyvlm` registers BabyLLaVA-V2 with the transformers Auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForImageTextToText`, `AutoImageProcessor`, `AutoProcessor`) and marks the classes for remote code,
so `save_pretrained` also writes `auto_map` and the self-contained `modeling/` and `processing/` files:
a process that never imports `babyvlm` can load a checkpoint with `trust_remote_code=True`.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .modeling import BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration, BabyLlavaV2Model
from .processing import BabyLlavaV2ImageProcessor, BabyLlavaV2ImageProcessorPil, BabyLlavaV2Processor

__version__ = "0.1.0"

AutoConfig.register(BabyLlavaV2Config.model_type, BabyLlavaV2Config, exist_ok=True)
AutoModel.register(BabyLlavaV2Config, BabyLlavaV2Model, exist_ok=True)
AutoModelForImageTextToText.register(BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration, exist_ok=True)
AutoImageProcessor.register(
    BabyLlavaV2Config,
    image_processor_classes={"torchvision": BabyLlavaV2ImageProcessor, "pil": BabyLlavaV2ImageProcessorPil},
    exist_ok=True,
)
AutoProcessor.register(BabyLlavaV2Config, BabyLlavaV2Processor, exist_ok=True)

BabyLlavaV2Config.register_for_auto_class()
BabyLlavaV2Model.register_for_auto_class("AutoModel")
BabyLlavaV2ForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
BabyLlavaV2ImageProcessor.register_for_auto_class("AutoImageProcessor")
BabyLlavaV2Processor.register_for_auto_class("AutoProcessor")

__all__ = [
    "BabyLlavaV2Config",
    "BabyLlavaV2ForConditionalGeneration",
    "BabyLlavaV2ImageProcessor",
    "BabyLlavaV2ImageProcessorPil",
    "BabyLlavaV2Model",
    "BabyLlavaV2Processor",
]
