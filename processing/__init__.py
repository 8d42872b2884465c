"""BabyLLaVA-V2 processing: tokenizer training, image and video processing, the processor and chat templates."""

from .chat_templates import BABY_PLAIN, BABY_V1, CHAT_TEMPLATES
from .image_processing_babyllava_v2 import BabyLlavaV2ImageProcessor, BabyLlavaV2ImageProcessorPil, to_rgb_compatible
from .processing_babyllava_v2 import BabyLlavaV2Processor
from .tokenization_babyllava_v2 import IMAGE_TOKEN, add_image_token, train_tokenizer
from .video_processing_babyllava_v2 import sample_video_frames

__all__ = [
    "BABY_PLAIN",
    "BABY_V1",
    "CHAT_TEMPLATES",
    "IMAGE_TOKEN",
    "add_image_token",
    "BabyLlavaV2ImageProcessor",
    "BabyLlavaV2ImageProcessorPil",
    "BabyLlavaV2Processor",
    "sample_video_frames",
    "to_rgb_compatible",
    "train_tokenizer",
]
