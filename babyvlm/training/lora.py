"""LoRA and QLoRA for any image-text-to-text model: where the adapters go, when quantization is possible, merging."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForImageTextToText, AutoProcessor

from ..staging import staged_folder
from .stages import model_parts


def refuse_quantization_without_cuda(model_args) -> None:
    """QLoRA (`load_in_4bit`/`load_in_8bit`) needs bitsandbytes on a CUDA GPU: say so before loading anything."""
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return
    if not torch.cuda.is_available():
        raise ValueError(
            "load_in_4bit/load_in_8bit (QLoRA) quantizes with bitsandbytes, which needs a CUDA GPU, and this run has "
            "none: train LoRA adapters on the unquantized model instead (use_peft: true, load_in_4bit: false)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ValueError(
            "load_in_4bit/load_in_8bit needs bitsandbytes: pip install 'babyvlm[peft]' bitsandbytes"
        ) from error


def lora_target_modules(model: nn.Module, train_vision: bool) -> str:
    """A PEFT regex (full match on module names) selecting every linear layer of the language model and the
    connector, and of the vision tower when `train_vision`; never the LM head."""
    parts = model_parts(model)
    prefixes = [prefix for part in ("language_model", "connector") for prefix in parts[part]]
    prefixes += list(parts["vision"]) if train_vision else []
    prefixes = [prefix for prefix in prefixes if prefix != "lm_head."]
    leaves = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.startswith(tuple(prefixes))
        }
    )
    if not leaves:
        raise ValueError(f"{type(model).__name__}: no linear layer found under {prefixes} for LoRA")
    return rf"(?:{'|'.join(map(re.escape, prefixes))}).*\.(?:{'|'.join(map(re.escape, leaves))})"


def load_merged(adapter_dir: str | Path, **load_kwargs):
    """The adapter's base model (unquantized) with the LoRA adapter of `adapter_dir` merged into its weights."""
    try:
        from peft import PeftModel
    except ImportError as error:
        raise ValueError(f"{adapter_dir} is a LoRA adapter: install peft (pip install 'babyvlm[peft]')") from error

    base = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = AutoModelForImageTextToText.from_pretrained(base, **load_kwargs)
    return PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()


def merge_adapter(adapter_dir: str | Path, merged_dir: str | Path, card: str, dtype=None) -> Path:
    """Save the adapter's base model with the adapter merged in (loaded unquantized), with its processor and card."""
    adapter_dir, merged_dir = Path(adapter_dir), Path(merged_dir)
    merged = load_merged(adapter_dir, dtype=dtype)
    with staged_folder(merged_dir, overwrite=True) as staging:
        merged.save_pretrained(staging)
        AutoProcessor.from_pretrained(adapter_dir).save_pretrained(staging)
        (staging / "README.md").write_text(card)
    return merged_dir
