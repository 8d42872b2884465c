"""The BabyLLaVA-V2 training stages: the one registry of their names (see recipes/README.md, "The stages").

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

_MODULE_PREFIXES = {
    "vision": ("model.vision_tower.",),
    "connector": ("model.multi_modal_projector.",),
    "language_model": ("model.language_model.", "lm_head."),
}


def get_stage(name: str, script: str = "sft.py") -> Stage:
    """The stage ``name`` of the recipe ``script``; ``ValueError`` names the valid stages, or the script to use."""
    try:
        stage = STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; choose one of {', '.join(STAGES)}") from None
    if stage.script != script:
        raise ValueError(f"stage {name!r} is trained by recipes/{stage.script}, not recipes/{script}")
    return stage


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
