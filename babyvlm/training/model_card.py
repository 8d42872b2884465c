"""Model cards written next to every saved checkpoint of a training stage."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import TrainerCallback

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


def render_model_card(stage: str, description: str, datasets: list, parent: str | None, hyperparameters: dict) -> str:
    front_matter = {"library_name": "transformers", "tags": ["babyvlm", "babyllava-v2", f"stage-{stage}"]}
    if parent:
        front_matter["base_model"] = parent
    lines = ["---", *(f"{key}: {json.dumps(value)}" for key, value in front_matter.items()), "---", ""]
    lines += [f"# BabyLLaVA-V2 — stage `{stage}`", "", description, ""]
    lines += [f"- Parent checkpoint: `{parent}`" if parent else "- Trained from scratch (no parent checkpoint)"]
    lines += ["- Data:", *(f"  - `{json.dumps(spec) if isinstance(spec, dict) else spec}`" for spec in datasets), ""]
    lines += ["## Hyperparameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in hyperparameters.items()]
    lines += ["", "Trained with the `babyvlm` recipes (`recipes/README.md`)."]
    return "\n".join(lines) + "\n"


class ModelCardCallback(TrainerCallback):
    """Writes README.md into every checkpoint folder as it is saved."""

    def __init__(self, card: str):
        self.card = card

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                (checkpoint / "README.md").write_text(self.card)


def training_hyperparameters(training_args, extra: dict | None = None) -> dict:
    values = {name: getattr(training_args, name) for name in HYPERPARAMETERS if hasattr(training_args, name)}
    values = {name: getattr(value, "value", value) for name, value in values.items()}  # enums print as their value
    values.update(extra or {})
    values["world_size"] = int(os.environ.get("WORLD_SIZE", 1))
    return values
