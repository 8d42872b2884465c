"""The four BabyLLaVA-V2 training phases (REFERENCE §4): what each trains, freezes and renders."""

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


STAGES = {
    stage.name: stage
    for stage in (
        Stage(
            "lm",
            "phase 0: Llama language model from scratch on the transcript utterances (packed text)",
            ("language_model",),
            None,
        ),
        Stage("align", "phase 1: connector alignment on image-utterance pairs", ("connector",), "baby_plain"),
        Stage(
            "pretrain",
            "phase 2: joint pretraining on the image/video/interleaved mixture, ViT frozen",
            ("connector", "language_model"),
            "baby_v1",
        ),
        Stage(
            "instruct",
            "phase 3: instruction tuning on DevCV train splits, everything trained",
            ("vision", "connector", "language_model"),
            "baby_v1",
        ),
    )
}

_MODULE_PREFIXES = {
    "vision": ("model.vision_tower.",),
    "connector": ("model.multi_modal_projector.",),
    "language_model": ("model.language_model.", "lm_head."),
}


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}") from None


def apply_stage_freezing(model: nn.Module, stage: Stage) -> dict[str, int]:
    """Set `requires_grad` for a BabyLLaVA-V2 model according to `stage`; returns trainable parameter counts."""
    trainable_prefixes = tuple(prefix for part in stage.trains for prefix in _MODULE_PREFIXES[part])
    counts = dict.fromkeys(_MODULE_PREFIXES, 0)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(trainable_prefixes)
        if parameter.requires_grad:
            part = next(part for part, prefixes in _MODULE_PREFIXES.items() if name.startswith(prefixes))
            counts[part] += parameter.numel()
    if not any(counts.values()):
        raise ValueError(f"stage {stage.name!r} leaves no trainable parameter: is this a BabyLLaVA-V2 model?")
    return counts


def is_vision_parameter(name: str) -> bool:
    return name.startswith(_MODULE_PREFIXES["vision"])
