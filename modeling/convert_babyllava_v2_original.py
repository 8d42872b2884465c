"""Read the original BabyLLaVA-V2 release into BabyLLaVA-V2 and Dinov2 models. All key mapping lives here.

The authors released (modeling/CONVERSION.md, "Accepted inputs" and "Key mapping"):

- VLM checkpoints in LLaVA-repo format: a `LlavaLlamaForCausalLM` folder (config with `mm_*` fields, safetensors or
  `.bin` weights, tokenizer files). The Llama LM sits under `model.` and `lm_head`, the connector under
  `model.mm_projector.{0,2}` and, when the tower was trained (stage 3), the tower under
  `model.vision_tower.vision_tower.`;
- the vision backbone as a DINO `.pth` whose `teacher` state dict holds the ViT under `backbone.`: DINOv2/timm style
  (LayerScale `ls1.gamma`/`ls2.gamma`) or DINO-v1 style (no LayerScale; the original runs it as torchvision
  `vit_l_16`).

Every source key is converted, dropped for a stated reason, or reported as unexpected; every model key comes from the
source or is filled as stated in the `ConversionReport`. Anything unaccounted for raises `CheckpointMismatchError`
listing the keys. Files are read with `torch.load(weights_only=True)` or safetensors, never by arbitrary unpickling.

This module only builds models; `babyvlm.convert` adds the tokenizer, processor and model card and writes the folder.
"""

from __future__ import annotations

import json
import math
import pickle
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import Dinov2Config, Dinov2Model, LlamaConfig, PreTrainedConfig, PreTrainedModel
from transformers.initialization import no_init_weights

from .configuration_babyllava_v2 import BabyLlavaV2Config
from .modeling_babyllava_v2 import BabyLlavaV2ForConditionalGeneration

StateDict = dict[str, torch.Tensor]

# ViT source names (after the `backbone.` / tower prefix) -> Dinov2Model names. A fused q/k/v projection first maps
# to `attention.qkv.*` and is split into `q_proj`/`k_proj`/`v_proj` afterwards.
_VISION_RULES = [
    (re.compile(pattern), target)
    for pattern, target in (
        # timm / DINO / DINOv2 names: the `.pth` release, and a timm tower trained in stage 3.
        (r"cls_token", "embeddings.cls_token"),
        (r"pos_embed", "embeddings.position_embeddings"),
        (r"mask_token", "embeddings.mask_token"),
        (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
        (r"blocks\.(\d+)\.norm([12])\.(weight|bias)", r"encoder.layer.\1.norm\2.\3"),
        (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"encoder.layer.\1.attention.qkv.\2"),
        (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layer.\1.attention.o_proj.\2"),
        (r"blocks\.(\d+)\.ls([12])\.gamma", r"encoder.layer.\1.layer_scale\2.lambda1"),
        (r"blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"encoder.layer.\1.mlp.\2.\3"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
        # torchvision `vit_l_16` names: the original's DINO-v1 tower, trained in stage 3.
        (r"class_token", "embeddings.cls_token"),
        (r"encoder\.pos_embedding", "embeddings.position_embeddings"),
        (r"conv_proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
        (r"encoder\.layers\.encoder_layer_(\d+)\.ln_([12])\.(weight|bias)", r"encoder.layer.\1.norm\2.\3"),
        (
            r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_(weight|bias)",
            r"encoder.layer.\1.attention.qkv.\2",
        ),
        (
            r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.(weight|bias)",
            r"encoder.layer.\1.attention.o_proj.\2",
        ),
        (r"encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.(weight|bias)", r"encoder.layer.\1.mlp.fc1.\2"),
        (r"encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.(weight|bias)", r"encoder.layer.\1.mlp.fc2.\2"),
        (r"encoder\.ln\.(weight|bias)", r"layernorm.\1"),
    )
]
# ViT source keys the original never uses: dropped, with the reason recorded in the report.
_VISION_DROPPED = [
    (re.compile(r"heads?\..*"), "classifier head, not part of the backbone"),
    (re.compile(r"register_tokens"), "register tokens: the original's ViT has none"),
]
_FUSED_QKV = re.compile(r"(.*\.attention\.)qkv\.(weight|bias)")
_BLOCK_INDEX = re.compile(r"encoder\.layer\.(\d+)\.")
DINO_BACKBONE_PREFIX = "backbone."
LLAVA_TOWER_PREFIX = "model.vision_tower.vision_tower."
# LLaVA (LlavaLlamaForCausalLM) prefixes -> BabyLLaVA-V2 prefixes, first match wins.
_LLAVA_PREFIXES = (
    ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
    ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
    ("model.", "model.language_model."),
    ("lm_head.", "lm_head."),
)
# LlamaConfig fields read from the LLaVA config.json (the rest of it is LLaVA training bookkeeping).
_LLAMA_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "attention_bias",
    "mlp_bias",
    "tie_word_embeddings",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)
_WEIGHT_LAYOUTS = (
    ("model.safetensors.index.json", "model.safetensors"),
    ("pytorch_model.bin.index.json", "pytorch_model.bin"),
)
# Keys shown per category in an error message; the exception object keeps them all.
_MAX_LISTED_KEYS = 25


class UnsafeCheckpointError(ValueError):
    """A file needs arbitrary unpickling (it references Python objects beyond tensors and plain containers)."""


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes do not match the model built from its config."""

    def __init__(self, source: str, unexpected: list[str], missing: list[str], wrong_shapes: list[str]):
        self.unexpected, self.missing, self.wrong_shapes = unexpected, missing, wrong_shapes
        lines = [f"{source}: the weights do not match the model built from its config"]
        for title, keys in (
            ("unexpected (in the checkpoint, no counterpart in the model)", unexpected),
            ("missing (needed by the model, absent from the checkpoint)", missing),
            ("wrong shape (checkpoint -> model)", wrong_shapes),
        ):
            if keys:
                more = f" ... and {len(keys) - _MAX_LISTED_KEYS} more" if len(keys) > _MAX_LISTED_KEYS else ""
                lines.append(f"  {title}: {', '.join(keys[:_MAX_LISTED_KEYS])}{more}")
        super().__init__("\n".join(lines))


@dataclass
class ConversionReport:
    """What happened to every key: printed by the CLI and recorded in the model card."""

    sources: list[str] = field(default_factory=list)
    """Files read, in order."""
    vision_style: str = ""
    """`"DINOv2/timm (LayerScale)"` or `"DINO-v1 (no LayerScale)"`."""
    converted: dict[str, str] = field(default_factory=dict)
    """Model key -> the source key it was read from."""
    dropped: dict[str, str] = field(default_factory=dict)
    """Source key -> why the original does not use it."""
    filled: dict[str, str] = field(default_factory=dict)
    """Model key -> how it was filled, for the few keys with no source."""
    unexpected: list[str] = field(default_factory=list)
    """Source keys no rule knows (an error once the model is built)."""
    notes: list[str] = field(default_factory=list)
    """Config decisions worth knowing (e.g. special-token ids taken from the tokenizer)."""
    llava_config: dict = field(default_factory=dict)
    """The source LLaVA config.json (empty for a vision-only conversion)."""

    def summary(self) -> str:
        """A few lines for humans: counts, dropped keys grouped by reason, filled keys and notes."""
        lines = [f"read: {', '.join(self.sources)}", f"vision backbone: {self.vision_style}"]
        lines.append(f"converted {len(self.converted)} tensors")
        for reason, count in Counter(self.dropped.values()).items():
            examples = [key for key, why in self.dropped.items() if why == reason][:3]
            lines.append(f"dropped {count} ({reason}): {', '.join(examples)}{' ...' if count > 3 else ''}")
        for how, count in Counter(self.filled.values()).items():
            lines.append(f"filled {count} ({how})")
        return "\n".join(lines + self.notes)


# --- reading files safely -----------------------------------------------------------------------------------------


def load_torch_file(path: str | Path) -> object:
    """`torch.load` restricted to tensors and plain containers (`weights_only=True`).

    Raises `UnsafeCheckpointError` naming the file and the Python object it references when the file would need
    arbitrary unpickling (which can run code), and `ValueError` when it is not such a checkpoint at all.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        culprit = re.search(r"GLOBAL (\S+)", str(error))
        if culprit:
            raise UnsafeCheckpointError(
                f"{path}: refused: loading it needs arbitrary unpickling (it references {culprit.group(1)}), which "
                "can run code. Only tensors and plain containers are read (torch.load(weights_only=True)). If you "
                "trust the file, save just its tensors in a separate step, e.g. "
                "torch.save({'teacher': checkpoint['teacher']}, 'teacher.pth'), or convert it to safetensors."
            ) from error
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
        raise ValueError(
            f"{path}: not a checkpoint of tensors and plain containers ({detail.group(1) if detail else error})"
        ) from error
    except RuntimeError as error:
        raise ValueError(f"{path}: not a readable PyTorch file ({error})") from error


def _tensors_only(state: object, path: Path, what: str) -> StateDict:
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        found = list(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: expected {what} (a dict of tensors), found {found}")
    return state


def read_llava_config(folder: str | Path) -> dict:
    """The `config.json` of a LLaVA-format folder, checked for the features BabyLLaVA-V2 reproduces."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json, so not a LLaVA-format checkpoint folder")
    config = json.loads(path.read_text())
    if "mm_hidden_size" not in config:
        raise ValueError(f"{path}: no mm_* fields (mm_hidden_size), so not a LLaVA (LlavaLlamaForCausalLM) config")
    # LLaVA's own defaults apply to absent fields: a linear projector and flat patch merging.
    projector = config.get("mm_projector_type", "linear")
    if projector != "mlp2x_gelu":
        raise ValueError(f"{path}: mm_projector_type {projector!r} is not supported; BabyLLaVA-V2 uses 'mlp2x_gelu'")
    if config.get("mm_use_im_start_end"):
        raise ValueError(f"{path}: mm_use_im_start_end is not supported; BabyLLaVA-V2 has no image start/end tokens")
    merge = config.get("mm_patch_merge_type", "flat")
    if merge != "flat":
        raise ValueError(f"{path}: mm_patch_merge_type {merge!r} is not supported; BabyLLaVA-V2 uses 'flat'")
    return config


def load_llava_state_dict(folder: str | Path) -> tuple[StateDict, list[Path]]:
    """All tensors of a LLaVA-format folder (single file or shards with an index), and the files read."""
    folder = Path(folder)
    files = _llava_weight_files(folder)
    state: StateDict = {}
    for path in files:
        if path.suffix == ".safetensors":
            try:
                part = load_file(path)
            except SafetensorError as error:
                raise ValueError(f"{path}: not a readable safetensors file ({error})") from error
        else:
            part = _tensors_only(load_torch_file(path), path, "a state dict")
        repeated = sorted(state.keys() & part.keys())
        if repeated:
            raise ValueError(f"{path}: keys already read from another shard: {', '.join(repeated[:_MAX_LISTED_KEYS])}")
        state.update(part)
    return state, files


def _llava_weight_files(folder: Path) -> list[Path]:
    for index_name, single_name in _WEIGHT_LAYOUTS:
        if (folder / index_name).is_file():
            weight_map = json.loads((folder / index_name).read_text())["weight_map"]
            return [folder / name for name in sorted(set(weight_map.values()))]
        if (folder / single_name).is_file():
            return [folder / single_name]
    expected = " or ".join(name for layout in _WEIGHT_LAYOUTS for name in layout)
    raise FileNotFoundError(f"{folder}: no weights found (expected {expected})")


def load_vision_state_dict(path: str | Path) -> StateDict:
    """The `teacher` state dict of a DINO checkpoint, or the checkpoint itself when it is a bare ViT state dict."""
    path = Path(path)
    checkpoint = load_torch_file(path)
    if isinstance(checkpoint, dict) and "teacher" in checkpoint:
        return _tensors_only(checkpoint["teacher"], path, "a 'teacher' state dict")
    return _tensors_only(checkpoint, path, "a 'teacher' state dict or a ViT state dict")


# --- key mapping --------------------------------------------------------------------------------------------------


def map_vision_keys(
    source: StateDict, source_prefix: str, report: ConversionReport, target_prefix: str = ""
) -> StateDict:
    """Rename a ViT state dict (timm/DINO or torchvision names under `source_prefix`) to `Dinov2Model` keys.

    Keys outside `source_prefix` (DINO's projection heads) and keys the original ignores are recorded as dropped,
    keys no rule knows as unexpected (the strict check raises on them later, together with every other problem).
    The fused q/k/v projection is split in three.
    """
    state: StateDict = {}
    for key, tensor in source.items():
        if not key.startswith(source_prefix):
            report.dropped[key] = f"outside `{source_prefix}`: a DINO training head, not part of the ViT"
            continue
        name = key[len(source_prefix) :]
        reason = next((why for pattern, why in _VISION_DROPPED if pattern.fullmatch(name)), None)
        target = next((pattern.sub(repl, name) for pattern, repl in _VISION_RULES if pattern.fullmatch(name)), None)
        if reason:
            report.dropped[key] = reason
        elif target is None:
            report.unexpected.append(key)
        else:
            state[target_prefix + target] = tensor
            report.converted[target_prefix + target] = key
    _split_fused_qkv(state, report)
    has_layerscale = any(key.endswith("layer_scale1.lambda1") for key in state)
    report.vision_style = "DINOv2/timm (LayerScale)" if has_layerscale else "DINO-v1 (no LayerScale)"
    return state


def _split_fused_qkv(state: StateDict, report: ConversionReport) -> None:
    for key in [key for key in state if _FUSED_QKV.fullmatch(key)]:
        prefix, kind = _FUSED_QKV.fullmatch(key).groups()
        fused, source_key = state.pop(key), report.converted.pop(key)
        if fused.shape[0] % 3:
            raise ValueError(
                f"{source_key}: a fused q/k/v projection needs 3 equal parts, got shape {tuple(fused.shape)}"
            )
        for name, part in zip(("q_proj", "k_proj", "v_proj"), fused.chunk(3, dim=0), strict=True):
            state[f"{prefix}{name}.{kind}"] = part.clone()
            report.converted[f"{prefix}{name}.{kind}"] = f"{source_key} [{name[0]}]"


def vision_config_from_weights(
    state: StateDict, num_attention_heads: int | None = None, prefix: str = ""
) -> Dinov2Config:
    """The `Dinov2Config` of a ViT given as `Dinov2Model` keys under `prefix`: every size comes from a tensor shape.

    The head count is not visible in the weights: it defaults to the ViT convention of 64 channels per head (ViT-L:
    16 heads). Both timm and torchvision ViTs use LayerNorm eps 1e-6 and exact GELU.
    """
    weights = {key[len(prefix) :]: tensor for key, tensor in state.items() if key.startswith(prefix)}
    needed = (
        "embeddings.cls_token",
        "embeddings.position_embeddings",
        "embeddings.patch_embeddings.projection.weight",
        "encoder.layer.0.mlp.fc1.weight",
    )
    absent = [prefix + key for key in needed if key not in weights]
    if absent:
        raise CheckpointMismatchError("vision backbone", [], absent, [])
    hidden_size = weights["embeddings.cls_token"].shape[-1]
    _, num_channels, patch_height, patch_width = weights["embeddings.patch_embeddings.projection.weight"].shape
    num_patches = weights["embeddings.position_embeddings"].shape[1] - 1  # the first position is the CLS token's
    grid_side = math.isqrt(num_patches)
    if patch_height != patch_width or grid_side**2 != num_patches:
        raise ValueError(
            f"vision backbone: expected square patches and a square grid of positions, got {patch_height}x"
            f"{patch_width} patches and {num_patches} patch positions"
        )
    mlp_size = weights["encoder.layer.0.mlp.fc1.weight"].shape[0]
    if mlp_size % hidden_size:
        raise ValueError(f"vision backbone: MLP width {mlp_size} is not a multiple of the width {hidden_size}")
    if num_attention_heads is None:
        if hidden_size % 64:
            raise ValueError(f"vision backbone: cannot infer the head count of a {hidden_size}-wide ViT; pass it")
        num_attention_heads = hidden_size // 64
    return Dinov2Config(
        hidden_size=hidden_size,
        num_hidden_layers=1 + max(int(match.group(1)) for key in weights if (match := _BLOCK_INDEX.match(key))),
        num_attention_heads=num_attention_heads,
        mlp_ratio=mlp_size // hidden_size,
        image_size=grid_side * patch_height,
        patch_size=patch_height,
        num_channels=num_channels,
        qkv_bias="encoder.layer.0.attention.q_proj.bias" in weights,
        layerscale_value=1e-5 if "encoder.layer.0.layer_scale1.lambda1" in weights else 1.0,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
        use_mask_token="embeddings.mask_token" in weights,
    )


def _fill_identity_layerscale(state: StateDict, config: Dinov2Config, prefix: str, report: ConversionReport) -> None:
    """A ViT without LayerScale equals one with LayerScale 1.0 (an exact identity): fill Dinov2's scales with ones."""
    if any(key.endswith("layer_scale1.lambda1") for key in state):
        return
    dtype = state[f"{prefix}embeddings.cls_token"].dtype
    for index in range(config.num_hidden_layers):
        for scale in ("layer_scale1", "layer_scale2"):
            key = f"{prefix}encoder.layer.{index}.{scale}.lambda1"
            state[key] = torch.ones(config.hidden_size, dtype=dtype)
            report.filled[key] = "LayerScale 1.0: the source ViT has none"


def map_llava_keys(source: StateDict, report: ConversionReport) -> StateDict:
    """Rename the LM and connector keys of a `LlavaLlamaForCausalLM` state dict (tower keys excluded)."""
    state: StateDict = {}
    for key, tensor in source.items():
        target = next((new + key[len(old) :] for old, new in _LLAVA_PREFIXES if key.startswith(old)), None)
        if target is None:
            report.unexpected.append(key)
        else:
            state[target] = tensor
            report.converted[target] = key
    return state


def _append_image_token_rows(state: StateDict, report: ConversionReport) -> int:
    """Give `<image>` a row of zeros in the embeddings and the LM head; returns its id (the old vocabulary size).

    The embedding row is never read (image features replace it) and generation suppresses the token, so the zeros
    change no output over the original vocabulary.
    """
    embed_key = "model.language_model.embed_tokens.weight"
    if embed_key not in state:
        raise CheckpointMismatchError("LLaVA checkpoint", [], ["model.embed_tokens.weight"], [])
    image_token_id = state[embed_key].shape[0]
    for key in (embed_key, "lm_head.weight"):
        if key in state:
            state[key] = torch.cat([state[key], state[key].new_zeros(1, state[key].shape[1])])
            report.filled[f"{key}[{image_token_id}]"] = "zeros: the row of the added <image> token"
    return image_token_id


def babyllava_config_from_llava(
    llava_config: dict, vision_config: Dinov2Config, image_token_id: int
) -> BabyLlavaV2Config:
    """A `BabyLlavaV2Config` reproducing the original: its Llama, the given tower, all post-norm tokens incl. CLS."""
    if llava_config["mm_hidden_size"] != vision_config.hidden_size:
        raise ValueError(
            f"LLaVA config mm_hidden_size {llava_config['mm_hidden_size']} differs from the vision backbone's width "
            f"{vision_config.hidden_size}: wrong vision checkpoint?"
        )
    # Absent fields keep LlamaConfig's defaults, as they did when the original loaded this config.
    text = {name: llava_config[name] for name in _LLAMA_FIELDS if llava_config.get(name) is not None}
    text["vocab_size"] = image_token_id + 1
    return BabyLlavaV2Config(
        vision_config=vision_config,
        text_config=LlamaConfig(**text),
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_feature_use_final_norm=True,
    )


# --- building models ----------------------------------------------------------------------------------------------


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _build_strictly(
    model_class: type[PreTrainedModel],
    config: PreTrainedConfig,
    state: StateDict,
    report: ConversionReport,
    source: str,
    dtype: torch.dtype,
) -> PreTrainedModel:
    """Instantiate without random init and load `state`, which must cover every key with the right shapes."""
    with no_init_weights(), _default_dtype(dtype):
        model = model_class(config)
    expected = {key: tensor.shape for key, tensor in model.state_dict().items()}
    unexpected = sorted(report.unexpected + [report.converted[key] for key in state if key not in expected])
    missing = sorted(key for key in expected if key not in state)
    wrong_shapes = [
        f"{report.converted.get(key, key)} {tuple(tensor.shape)} -> {key} {tuple(expected[key])}"
        for key, tensor in state.items()
        if key in expected and tensor.shape != expected[key]
    ]
    if unexpected or missing or wrong_shapes:
        raise CheckpointMismatchError(source, unexpected, missing, wrong_shapes)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _dino_prefix(source: StateDict) -> str:
    return DINO_BACKBONE_PREFIX if any(key.startswith(DINO_BACKBONE_PREFIX) for key in source) else ""


def convert_vision_checkpoint(
    path: str | Path, num_attention_heads: int | None = None, dtype: torch.dtype | None = None
) -> tuple[Dinov2Model, ConversionReport]:
    """Convert the original vision backbone `.pth` into a standalone `Dinov2Model`.

    Its `last_hidden_state` is what the original feeds its connector (all tokens, after the final LayerNorm), and
    its config can serve as `BabyLlavaV2Config(vision_config=...)`.

    Args:
        path: the DINO checkpoint (`{"teacher": {"backbone.*": ...}}`) or a bare ViT state dict.
        num_attention_heads: attention heads (not recorded in the weights); defaults to width / 64 (ViT-L: 16).
        dtype: dtype of the model; defaults to the checkpoint's.
    """
    report = ConversionReport(sources=[Path(path).name])
    source = load_vision_state_dict(path)
    state = map_vision_keys(source, _dino_prefix(source), report)
    config = vision_config_from_weights(state, num_attention_heads)
    _fill_identity_layerscale(state, config, "", report)
    dtype = dtype or state["embeddings.cls_token"].dtype
    return _build_strictly(Dinov2Model, config, state, report, str(path), dtype), report


def convert_llava_checkpoint(
    folder: str | Path,
    vision_checkpoint: str | Path | None = None,
    num_attention_heads: int | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[BabyLlavaV2ForConditionalGeneration, ConversionReport]:
    """Convert a LLaVA-format BabyLLaVA-V2 folder (and its vision `.pth`) into `BabyLlavaV2ForConditionalGeneration`.

    The `<image>` token gets id = the original vocabulary size (6000 for the release) and zero rows in the embeddings
    and LM head; the original vocabulary keeps its ids and weights.

    Args:
        folder: the LLaVA-format checkpoint folder.
        vision_checkpoint: the vision backbone `.pth`. Needed unless the folder holds a trained tower (stage 3, keys
            `model.vision_tower.vision_tower.*`), and refused when it does: two towers would be ambiguous.
        num_attention_heads: vision attention heads (not recorded in the weights); defaults to width / 64.
        dtype: dtype of the model; defaults to the dtype of the LM's embeddings.
    """
    folder = Path(folder)
    llava_config = read_llava_config(folder)
    source, files = load_llava_state_dict(folder)
    report = ConversionReport(sources=[path.name for path in files], llava_config=llava_config)
    tower = {key: source.pop(key) for key in [key for key in source if key.startswith(LLAVA_TOWER_PREFIX)]}
    if tower and vision_checkpoint is not None:
        raise ValueError(
            f"{folder}: the checkpoint holds its own trained vision tower ({LLAVA_TOWER_PREFIX}*); "
            f"omit the vision checkpoint {vision_checkpoint}"
        )
    if vision_checkpoint is not None:
        tower = load_vision_state_dict(vision_checkpoint)
        report.sources.append(Path(vision_checkpoint).name)
    elif not tower:
        raise ValueError(
            f"{folder}: no vision tower weights in the checkpoint; pass the vision backbone .pth "
            f"(the original config names it: mm_vision_tower={llava_config.get('mm_vision_tower')!r})"
        )
    tower_prefix = LLAVA_TOWER_PREFIX if vision_checkpoint is None else _dino_prefix(tower)
    state = map_vision_keys(tower, tower_prefix, report, target_prefix="model.vision_tower.")
    vision_config = vision_config_from_weights(state, num_attention_heads, prefix="model.vision_tower.")
    _fill_identity_layerscale(state, vision_config, "model.vision_tower.", report)
    state.update(map_llava_keys(source, report))
    image_token_id = _append_image_token_rows(state, report)
    config = babyllava_config_from_llava(llava_config, vision_config, image_token_id)
    dtype = dtype or state["model.language_model.embed_tokens.weight"].dtype
    return _build_strictly(BabyLlavaV2ForConditionalGeneration, config, state, report, str(folder), dtype), report


__all__ = [
    "CheckpointMismatchError",
    "ConversionReport",
    "UnsafeCheckpointError",
    "babyllava_config_from_llava",
    "convert_llava_checkpoint",
    "convert_vision_checkpoint",
    "load_llava_state_dict",
    "load_torch_file",
    "load_vision_state_dict",
    "map_llava_keys",
    "map_vision_keys",
    "read_llava_config",
    "vision_config_from_weights",
]
