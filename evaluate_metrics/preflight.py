"""Checks `babyvlm eval` runs before any model is loaded: an evaluation whose weights will be refused should say
so in one line at once, not after minutes of loading. (An output folder it cannot write is refused by the folder's
lock, `babyvlm.locking.check_output_location`, before this.)

- A model that is no local folder is read as a Hub id; offline (``HF_HUB_OFFLINE``) it must be in the local
  Hub cache, else the folder does not exist and the Hub cannot be asked.
- A local model folder without safetensors weights must hold pickle weights (`pytorch_model*.bin`, what
  `from_pretrained` reads then) that load with `torch.load(weights_only=True)`, as transformers loads them: a
  pickle that references other Python objects is refused there with a traceback, here with its file and the
  objects named.
- The folder's JSON files parse, and its safetensors files have a header that fits them (a truncated or random
  file is named, not a traceback from the deserialiser).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from .api import MODEL_PREFIX

SAFETENSORS = "*.safetensors"
PICKLE_WEIGHTS = "pytorch_model*.bin"


class PreflightError(ValueError):
    """The run cannot work: the message names the folder and the reason."""


def check_model_path(model: str | Path) -> None:
    """Raise :class:`PreflightError` when `model`'s weights would be refused, or when, offline, a `model` that is no
    local folder is no Hub id in the cache either (an API model, ``openai:<name>``, is not checked here)."""
    if Path(model).is_dir():
        check_model_weights(Path(model))
    elif not str(model).startswith(MODEL_PREFIX):
        check_offline_hub_id(str(model))


def check_offline_hub_id(model: str) -> None:
    """Offline, a model that is no local folder must be a Hub id in the local cache."""
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        return
    try:
        cached = try_to_load_from_cache(model, "config.json")
    except ValueError:  # not even a valid Hub id
        cached = None
    if not isinstance(cached, str):
        raise PreflightError(
            f"model folder {model} does not exist, and as a Hub id it is not in the local cache "
            "(HF_HUB_OFFLINE is set: downloading it would need a connection to the Hub)"
        )


def check_model_files(model_dir: Path) -> None:
    """The folder's JSON files (configs, tokenizer) parse to objects, and its safetensors files have a readable
    header that fits the file (a truncated or random file is named here, not deep in the loading)."""
    for path in sorted(model_dir.glob("*.json")):
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise PreflightError(f"model folder {model_dir}: {path.name} is not valid JSON ({error})") from error
        if not isinstance(content, dict):
            kind = type(content).__name__
            raise PreflightError(f"model folder {model_dir}: {path.name} holds a {kind}, not a JSON object")
        if not isinstance(content.get("model_type", ""), str):
            raise PreflightError(
                f"model folder {model_dir}: {path.name}: model_type is {content['model_type']!r}, not a name"
            )
    for path in sorted(model_dir.glob(SAFETENSORS)):
        try:
            with safe_open(path, "pt") as weights:
                list(weights.keys())
        except Exception as error:  # safetensors raises its own SafetensorError (not an OSError) for a bad header
            raise PreflightError(
                f"model folder {model_dir}: {path.name} is not a readable safetensors file ({error})"
            ) from error


def check_model_weights(model_dir: Path) -> None:
    check_model_files(model_dir)
    if any(model_dir.glob(SAFETENSORS)):
        return
    # (A folder with no weights at all is reported by the model loading, with what transformers looked for.)
    for path in sorted(model_dir.glob(PICKLE_WEIGHTS)):
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (ValueError, RuntimeError, OSError) as error:
            raise PreflightError(
                f"model folder {model_dir}: {path.name} is not a readable PyTorch checkpoint ({error})"
            ) from error
        if unsafe:
            raise PreflightError(
                f"model folder {model_dir}: {path.name} is refused: loading it would unpickle arbitrary Python objects "
                f"({', '.join(unsafe)}); if you trust it, re-save its tensors as safetensors"
            )


__all__ = [
    "PreflightError",
    "check_model_files",
    "check_model_path",
    "check_model_weights",
    "check_offline_hub_id",
]
