"""Hub-ready model cards (huggingface_hub's `ModelCard`) for every saved checkpoint and final model of a stage."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "adam_beta2",
    "max_grad_norm",
    "bf16",
    "seed",
    "max_length",
    "gradient_checkpointing",
)
PROJECT_LICENSE = "apache-2.0"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_CACHE_FOLDER = re.compile(r"(?:models|datasets)--([\w.-]+)--([\w.-]+)")


def hub_repo_id(reference: str | os.PathLike | None) -> str | None:
    """The Hub repo id behind `reference`: itself when it is one (and no folder here), or the repo of a Hub cache
    snapshot folder; None for any other local path (a card never names a local path as its base)."""
    if reference is None:
        return None
    text = str(reference)
    if match := _HUB_CACHE_FOLDER.search(text):
        return f"{match.group(1)}/{match.group(2)}"
    if _REPO_ID.match(text) and not Path(text).exists():
        return text
    return None


def parent_license(parent: str | os.PathLike | None) -> str | None:
    """The `license` of the parent checkpoint's own card, when it is a folder with one."""
    card = Path(parent) / "README.md" if parent is not None else None
    if card is None or not card.is_file():
        return None
    return ModelCard.load(card).data.to_dict().get("license")


def render_model_card(
    stage: str,
    description: str,
    datasets: list,
    parent: str | None,
    hyperparameters: dict,
    *,
    license: str | None = None,
    library_name: str = "transformers",
    pipeline_tag: str = "image-text-to-text",
    title: str = "BabyLLaVA-V2",
) -> str:
    """The card's text: Hub metadata (license, pipeline tag, library, base model and datasets as repo ids, the
    stage as a tag) and a body naming every dataset spec, the parent checkpoint and the hyperparameters.

    `license` defaults to the parent card's, then to the project's when there is no parent (trained from scratch),
    else `other` (set it to the base model's licence)."""
    specs = [json.dumps(spec) if isinstance(spec, dict) else spec for spec in datasets]
    paths = [spec["path"] if isinstance(spec, dict) else spec.split(":")[0].split("@")[0] for spec in datasets]
    base_model = hub_repo_id(parent)
    license = license or parent_license(parent) or (PROJECT_LICENSE if parent is None else "other")
    data = ModelCardData(
        license=license,
        license_name="base-model-license" if license == "other" else None,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        datasets=sorted({repo for repo in map(hub_repo_id, paths) if repo}) or None,
        tags=["babyvlm", f"stage-{stage}", *(["lora"] if library_name == "peft" else [])],
    )
    lines = [f"# {title} — stage `{stage}`", "", description, ""]
    lines += [f"- Parent checkpoint: `{parent}`" if parent else "- Trained from scratch (no parent checkpoint)"]
    lines += ["- Data:", *(f"  - `{spec}`" for spec in specs), ""]
    lines += ["## Hyperparameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in hyperparameters.items()]
    lines += ["", "Trained with the `babyvlm` recipes (`recipes/README.md`)."]
    card = ModelCard.from_template(
        data, template_str="---\n{{ card_data }}\n---\n\n{{ body }}\n", body="\n".join(lines)
    )
    return str(card)


def training_hyperparameters(training_args, extra: dict | None = None) -> dict:
    values = {name: getattr(training_args, name) for name in HYPERPARAMETERS if hasattr(training_args, name)}
    values = {name: getattr(value, "value", value) for name, value in values.items()}  # enums print as their value
    values.update(extra or {})
    values["world_size"] = int(os.environ.get("WORLD_SIZE", 1))
    return values
