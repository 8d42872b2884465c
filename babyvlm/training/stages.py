"""The BabyLLaVA-V2 training stages: the one registry of their names (see recipes/README.md, "The stages, full size").

Each stage has one name, used as ``stage:`` in the recipe YAMLs, by the demo and in the docs (``pretrain``), and a
number (2). Its :attr:`Stage.label` (``stage2_pretrain``) names its YAML (``recipes/babyllava_v2/stage2_pretrain.yaml``)
and the demo's output folder. The original release calls the stages phases (``babyllava_v2_phase2``); prose here
says "stage 2 (``pretrain``)".
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    trains: tuple[str, ...]
    """Which of `vision`, `connector`, `language_model` receive gradients (the LM head goes with the LM)."""
    chat_template: str | None
    number: int
    script: str = "sft.py"
    """The recipe that trains it (``recipes/<script>``)."""

    @property
    def label(self) -> str:
        """``stage<number>_<name>``: the stage's YAML file stem and the demo's output folder."""
        return f"stage{self.number}_{self.name}"


STAGES = {
    stage.name: stage
    for stage in (
        Stage(
            "lm",
            "stage 0 (lm): Llama language model from scratch on the transcript utterances (packed text)",
            ("language_model",),
            None,
            number=0,
        ),
        Stage(
            "vision",
            "stage 0 (vision): DINOv2-style self-supervised ViT on the video frames",
            ("vision",),
            None,
            number=0,
            script="pretrain_vision.py",
        ),
        Stage(
            "align", "stage 1 (align): connector alignment on image-utterance pairs", ("connector",), "baby_plain", 1
        ),
        Stage(
            "pretrain",
            "stage 2 (pretrain): joint pretraining on the image/video/interleaved mixture, ViT frozen",
            ("connector", "language_model"),
            "baby_v1",
            2,
        ),
        Stage(
            "instruct",
            "stage 3 (instruct): instruction tuning on DevCV train splits, everything trained",
            ("vision", "connector", "language_model"),
            "baby_v1",
            3,
        ),
    )
}

# Where each part lives in transformers' vision-language models (`model.model.<attribute>`); the LM head goes with
# the language model, and a vision tower's own merger (Qwen2-VL) with the vision part.
_PART_ATTRIBUTES = {
    "vision": ("vision_tower", "visual", "vision_model"),
    "connector": ("multi_modal_projector", "connector", "mm_projector"),
    "language_model": ("language_model",),
}


def model_parts(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Parameter-name prefixes of the vision tower, the connector and the language model of `model`.

    Works for every `AutoModelForImageTextToText` family that follows transformers' layout (`model.vision_tower` or
    `model.visual`, `model.multi_modal_projector`, `model.language_model`, `lm_head`); raises naming the model class
    otherwise.
    """
    inner = getattr(model, "model", None)
    prefixes = {}
    for part, attributes in _PART_ATTRIBUTES.items():
        found = [name for name in attributes if inner is not None and getattr(inner, name, None) is not None]
        prefixes[part] = tuple(f"model.{name}." for name in found)
    prefixes["language_model"] += tuple(
        f"{name}." for name in ("lm_head",) if isinstance(getattr(model, name, None), nn.Module)
    )
    missing = [part for part in ("vision", "language_model") if not prefixes[part]]
    if missing:
        raise ValueError(
            f"{type(model).__name__}: cannot find its {' and '.join(missing)} (expected `model.<"
            + "|".join(a for part in missing for a in _PART_ATTRIBUTES[part])
            + ">`): is it an image-text-to-text model?"
        )
    return prefixes


def get_stage(name: str, script: str = "sft.py") -> Stage:
    """The stage ``name`` of the recipe ``script``; ``ValueError`` names the valid stages, or the script to use."""
    try:
        stage = STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}") from None
    if stage.script != script:
        raise ValueError(f"stage {name!r} is trained by recipes/{stage.script}, not recipes/{script}")
    return stage


def trained_parts(stage: Stage, vision: bool | None = None, language_model: bool | None = None) -> tuple[str, ...]:
    """The parts `stage` trains, with the vision tower and the language model switched on or off where `vision` /
    `language_model` say so (None: as the stage says).

    >>> trained_parts(STAGES["align"], language_model=True)
    ('connector', 'language_model')
    >>> trained_parts(STAGES["instruct"], vision=False)
    ('connector', 'language_model')
    """
    wanted = {"vision": vision, "language_model": language_model}
    return tuple(
        part
        for part in ("vision", "connector", "language_model")
        if (part in stage.trains if wanted.get(part) is None else wanted[part])
    )


def apply_stage_freezing(model: nn.Module, stage: Stage, trains: tuple[str, ...] | None = None) -> dict[str, int]:
    """Set `requires_grad` by part (`trains`, default: the stage's); returns the trainable parameter counts."""
    parts = model_parts(model)
    trainable_prefixes = tuple(prefix for part in (trains or stage.trains) for prefix in parts[part])
    counts = dict.fromkeys(parts, 0)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(trainable_prefixes)
        if parameter.requires_grad:
            part = next(part for part, prefixes in parts.items() if name.startswith(prefixes))
            counts[part] += parameter.numel()
    if not any(counts.values()):
        raise ValueError(f"stage {stage.name!r} leaves no trainable parameter in {type(model).__name__}")
    return counts


def vision_parameter_test(model: nn.Module):
    """A predicate on parameter names: True for the vision tower's (the same name seen through a PEFT wrapper)."""
    prefixes = model_parts(model)["vision"]
    return lambda name: any(prefix in name for prefix in prefixes)
