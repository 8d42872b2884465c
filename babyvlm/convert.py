"""``babyvlm-convert``: turn the original BabyLLaVA-V2 release into a checkpoint folder for the 🤗 Auto classes.

Examples::

    babyvlm-convert --llava-checkpoint babyllava_v2_phase2 --vision-checkpoint vision_backbone.pth \
        --output babyllava-v2-phase2
    babyvlm-convert --vision-checkpoint vision_backbone.pth --output babyllava-v2-vision

With a LLaVA-format folder the output holds the model, the processor (tokenizer with `<image>` added, image
processor, chat templates `baby_v1`/`baby_plain`) and a model card; with only a vision `.pth` it holds a standalone
`Dinov2Model`, the image processor and a model card. The folder is written in a temporary sibling and renamed at
the end, so a failed conversion leaves nothing that looks complete. The key mapping is in
`babyvlm.modeling.convert_babyllava_v2_original`; formats and parity are described in `modeling/CONVERSION.md`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig, PreTrainedConfig

from . import __version__
from .modeling.convert_babyllava_v2_original import (
    ConversionReport,
    convert_llava_checkpoint,
    convert_vision_checkpoint,
)
from .processing import IMAGE_TOKEN, BabyLlavaV2ImageProcessor, BabyLlavaV2Processor

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# `image_aspect_ratio` of the LLaVA config -> whether images are padded to a square before resizing.
_PAD_FOR_ASPECT_RATIO = {"pad": True, "square": False, None: False}


def convert_original(
    output: str | Path,
    llava_checkpoint: str | Path | None = None,
    vision_checkpoint: str | Path | None = None,
    num_attention_heads: int | None = None,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert the original release into the folder `output` and return the conversion report.

    Args:
        output: folder to write; it must not exist unless `overwrite`.
        llava_checkpoint: LLaVA-format BabyLLaVA-V2 folder. Without it, `vision_checkpoint` alone is converted into
            a standalone `Dinov2Model`.
        vision_checkpoint: the DINO vision backbone `.pth` (not needed for a phase-3 folder, which holds its tower).
        num_attention_heads: vision attention heads (not recorded in the weights); defaults to width / 64.
        dtype: dtype of the saved weights; defaults to the source's.
        overwrite: replace an existing `output`.
    """
    if llava_checkpoint is None and vision_checkpoint is None:
        raise ValueError("nothing to convert: pass a LLaVA checkpoint folder, a vision checkpoint, or both")
    with _staged_output(Path(output), overwrite) as staging:
        if llava_checkpoint is None:
            return _write_vision_model(staging, vision_checkpoint, num_attention_heads, dtype)
        return _write_babyllava(staging, llava_checkpoint, vision_checkpoint, num_attention_heads, dtype)


def _write_babyllava(staging: Path, folder, vision_checkpoint, num_attention_heads, dtype) -> ConversionReport:
    model, report = convert_llava_checkpoint(folder, vision_checkpoint, num_attention_heads, dtype)
    config = model.config
    tokenizer = _tokenizer_with_image_token(Path(folder), report.llava_config, config.image_token_id)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        # The tokenizer the LM was trained with is the authority on its special tokens.
        token_id = getattr(tokenizer, name)
        if token_id is not None and getattr(config.text_config, name) != token_id:
            report.notes.append(
                f"text_config.{name}: {getattr(config.text_config, name)} -> {token_id} (from the tokenizer)"
            )
            setattr(config.text_config, name, token_id)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=[config.image_token_id],  # its LM-head row is zeros, not trained: never generate it
    )
    report.notes.append(f"<image> is token {config.image_token_id}; generation suppresses it")
    aspect_ratio = report.llava_config.get("image_aspect_ratio")
    if aspect_ratio not in _PAD_FOR_ASPECT_RATIO:
        raise ValueError(
            f"{folder}/config.json: image_aspect_ratio {aspect_ratio!r} is not supported (use 'pad' or 'square')"
        )
    pad = _PAD_FOR_ASPECT_RATIO[aspect_ratio]
    report.notes.append(
        f"image_aspect_ratio {aspect_ratio!r}: images are {'padded to a square, then ' if pad else ''}resized"
    )
    image_processor = _image_processor(config.vision_config.image_size, pad=pad)
    processor = BabyLlavaV2Processor.from_model_config(config, image_processor, tokenizer)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    (staging / "README.md").write_text(_model_card(report, vision_only=False))
    return report


def _write_vision_model(staging: Path, vision_checkpoint, num_attention_heads, dtype) -> ConversionReport:
    model, report = convert_vision_checkpoint(vision_checkpoint, num_attention_heads, dtype)
    model.save_pretrained(staging)
    _image_processor(model.config.image_size, pad=True).save_pretrained(staging)
    (staging / "README.md").write_text(_model_card(report, vision_only=True))
    return report


def _tokenizer_with_image_token(folder: Path, llava_config: dict, image_token_id: int):
    """The original tokenizer with `<image>` registered as the processor expects, checked to get `image_token_id`."""
    max_length = llava_config.get("tokenizer_model_max_length")
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder,
            # The folder's config.json is a `llava_llama` config, unknown to transformers: a blank config makes the
            # tokenizer files alone decide the tokenizer class (and spares a misleading model-type warning).
            config=PreTrainedConfig(),
            extra_special_tokens={"image_token": IMAGE_TOKEN},
            **({"model_max_length": max_length} if max_length else {}),
        )
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder}: cannot load the tokenizer files ({error})") from error
    if tokenizer.image_token_id != image_token_id:
        raise ValueError(
            f"{folder}: the tokenizer has {len(tokenizer) - 1} tokens but the embeddings have {image_token_id} rows; "
            f"<image> got id {tokenizer.image_token_id} instead of {image_token_id}"
        )
    return tokenizer


def _image_processor(image_size: int, pad: bool) -> BabyLlavaV2ImageProcessor:
    return BabyLlavaV2ImageProcessor(size={"height": image_size, "width": image_size}, do_pad=pad)


def _model_card(report: ConversionReport, vision_only: bool) -> str:
    details = "\n".join(f"- {line}" for line in report.summary().splitlines())
    if vision_only:
        header = "library_name: transformers\npipeline_tag: image-feature-extraction"
        title = "BabyLLaVA-V2 vision backbone, converted from the original release"
        usage = (
            "from transformers import AutoModel\n\n"
            "model = AutoModel.from_pretrained(path)  # Dinov2Model\n"
            "features = model(pixel_values).last_hidden_state  # all tokens after the final LayerNorm, as the original"
        )
    else:
        header = "library_name: transformers\npipeline_tag: image-text-to-text"
        title = "BabyLLaVA-V2, converted from the original release"
        usage = (
            "import babyvlm  # registers the Auto classes (or pass trust_remote_code=True)\n"
            "from transformers import AutoModelForImageTextToText, AutoProcessor\n\n"
            "model = AutoModelForImageTextToText.from_pretrained(path)\n"
            "processor = AutoProcessor.from_pretrained(path)"
        )
    source = report.llava_config.get("mm_vision_tower")
    return (
        f"---\n{header}\ntags:\n- babyvlm\n- babyllava_v2\n- converted\n---\n\n# {title}\n\n"
        f"Written by `babyvlm-convert` (babyvlm {__version__}) from the original BabyLLaVA-V2 release "
        f"(arXiv 2512.10932){f'; the original config names its vision tower `{source}`' if source else ''}.\n\n"
        f"## Usage\n\n```python\n{usage}\n```\n\n## Conversion\n\n{details}\n\n"
        "Parity with the original forward pass (within 1e-5 in float32) is tested by babyvlm's "
        "`tests/test_convert.py`; see `modeling/CONVERSION.md` in babyvlm for the key mapping.\n"
    )


@contextmanager
def _staged_output(output: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary sibling of `output`, renamed to it only when the block succeeds (removed otherwise)."""
    if output.exists() and not (overwrite and output.is_dir()):
        raise FileExistsError(
            f"{output} exists; pass --overwrite to replace it" if output.is_dir() else f"{output} is a file"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if output.exists():
        previous = staging.with_name(f"{staging.name}.replaced")  # unique, as the staging folder is
        output.rename(previous)
        staging.rename(output)
        shutil.rmtree(previous)
    else:
        staging.rename(output)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="babyvlm-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--llava-checkpoint",
        metavar="DIR",
        help="LLaVA-format BabyLLaVA-V2 folder (config.json with mm_* fields, weights, tokenizer)",
    )
    parser.add_argument(
        "--vision-checkpoint", metavar="FILE.pth", help="DINO vision backbone with a 'teacher' state dict"
    )
    parser.add_argument("--output", metavar="DIR", required=True, help="folder to write")
    parser.add_argument(
        "--vision-num-heads",
        type=int,
        metavar="N",
        help="attention heads of the ViT (default: width / 64; ViT-L/16: 16)",
    )
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="dtype of the saved weights (default: the source's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; returns 1 (having written nothing) when the conversion fails."""
    args = _parser().parse_args(argv)
    try:
        report = convert_original(
            args.output,
            llava_checkpoint=args.llava_checkpoint,
            vision_checkpoint=args.vision_checkpoint,
            num_attention_heads=args.vision_num_heads,
            dtype=DTYPES.get(args.dtype),
            overwrite=args.overwrite,
        )
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
