"""BabyVLM-V2, Hugging Face-native.

Importing `babyvlm` registers BabyLLaVA-V2 with the transformers Auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForImageTextToText`, `AutoImageProcessor`, `AutoProcessor`) and marks the classes for remote code,
so `save_pretrained` also writes `auto_map` and the self-contained `modeling/` and `processing/` files:
a process that never imports `babyvlm` can load a checkpoint with `trust_remote_code=True`.

The registration waits for transformers to be imported (:mod:`babyvlm.auto_classes`), so `import babyvlm` itself,
and the `babyvlm` command's dispatcher and help, import neither torch nor transformers. The model classes below
are imported when first asked for.
"""

import importlib

from . import auto_classes

__version__ = "0.1.0"

_MODEL_CLASSES = {
    "BabyLlavaV2Config": "modeling",
    "BabyLlavaV2ForConditionalGeneration": "modeling",
    "BabyLlavaV2Model": "modeling",
    "BabyLlavaV2ImageProcessor": "processing",
    "BabyLlavaV2ImageProcessorPil": "processing",
    "BabyLlavaV2Processor": "processing",
}
__all__ = sorted(_MODEL_CLASSES)

auto_classes.register_when_imported()


def __getattr__(name: str):
    if name not in _MODEL_CLASSES:
        raise AttributeError(f"module 'babyvlm' has no attribute {name!r}")
    auto_classes.register()
    return getattr(importlib.import_module(f"babyvlm.{_MODEL_CLASSES[name]}"), name)
