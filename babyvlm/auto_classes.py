"""BabyLLaVA-V2 in the transformers Auto classes, registered once transformers and the model's code are imported.

`import babyvlm` must let `AutoModelForImageTextToText.from_pretrained` load a BabyLLaVA-V2 checkpoint, yet importing
the model's code imports torch and transformers (seconds), which `babyvlm --help` and the verbs' dispatcher never
need. So `import babyvlm` only arms :func:`register_when_imported`: registration runs as soon as transformers is
imported (before any Auto class can be asked for a checkpoint) or, if transformers is already imported, at once.
The model's own packages (`babyvlm.modeling`, `babyvlm.processing`) import transformers themselves; registration
waits until neither is half-imported, then imports both.

Registration also marks the classes for remote code, so `save_pretrained` writes `auto_map` and the self-contained
`modeling/` and `processing/` files: a process that never imports babyvlm loads the checkpoint with
`trust_remote_code=True`.
"""

from __future__ import annotations

import importlib.abc
import sys

TRANSFORMERS = "transformers"
MODEL_PACKAGES = ("babyvlm.modeling", "babyvlm.processing")
_registered = [False]


def register() -> None:
    """Register BabyLLaVA-V2 with `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText`, `AutoImageProcessor`
    and `AutoProcessor`, and mark its classes for remote code (once)."""
    if _registered[0]:
        return
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from .modeling import BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration, BabyLlavaV2Model
    from .processing import BabyLlavaV2ImageProcessor, BabyLlavaV2ImageProcessorPil, BabyLlavaV2Processor

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
    _registered[0] = True


def _half_imported(name: str, done: str | None = None) -> bool:
    """Whether the module ``name`` (or one inside it) is being imported right now, but for ``done``, the module
    whose code has just run (its import ends once its loader returns)."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for key, module in list(sys.modules.items())
        if (key == name or key.startswith(f"{name}.")) and key != done
    )


def _register_if_ready(done: str | None = None) -> None:
    if _registered[0] or TRANSFORMERS not in sys.modules:
        return
    if any(_half_imported(name, done) for name in (TRANSFORMERS, *MODEL_PACKAGES)):
        return  # the import under way ends with one of the watched modules, which calls again
    _unwatch()
    register()


class _ThenRegister(importlib.abc.Loader):
    """A watched module's own loader, followed by :func:`_register_if_ready`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self.loader  # the wrapper's work is done
        replaced = sys.modules.get(module.__name__)  # transformers puts a lazy module in its own place
        if replaced is not None and replaced is not module:
            replaced.__loader__ = self.loader
        _register_if_ready(done=module.__name__)

    def __getattr__(self, name):  # resource readers, is_package, …: the module's own loader's
        return getattr(self.loader, name)


class _Watcher(importlib.abc.MetaPathFinder):
    """Finds transformers and the model's packages as usual, their loaders followed by registration."""

    def find_spec(self, name, path=None, target=None):
        if name not in (TRANSFORMERS, *MODEL_PACKAGES):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ThenRegister(spec.loader)
                return spec
        return None


_watcher = _Watcher()


def _unwatch() -> None:
    if _watcher in sys.meta_path:
        sys.meta_path.remove(_watcher)


def register_when_imported() -> None:
    """Register now if transformers is imported, else as soon as it (or the model's code) is."""
    if TRANSFORMERS in sys.modules and not _half_imported(TRANSFORMERS):
        _register_if_ready()
    elif _watcher not in sys.meta_path:
        sys.meta_path.insert(0, _watcher)
