"""``babyvlm convert``: turn the original BabyLLaVA-V2 release into a checkpoint folder for the 🤗 Auto classes.

Examples::

    babyvlm convert --llava-checkpoint wsashawn/babyllava_v2_instruction_ft --output babyllava-v2
    babyvlm convert --llava-checkpoint wsashawn/babyllava_v2_phase2 \\
        --vision-checkpoint wsashawn/babyllava_v2_vision_backbone --output babyllava-v2-phase2
    babyvlm convert --llava-checkpoint babyllava_v2_phase2/ --vision-checkpoint vision_backbone.pth --output out
    babyvlm convert --vision-checkpoint vision_backbone.pth --output babyllava-v2-vision

Each input is a local path or a Hub repo id (`--revision`, `--vision-revision`), fetched through `huggingface_hub`
with the user's cache and token (`babyvlm.checkpoint_sources`). Without `--vision-checkpoint` the vision tower is the
one the LLaVA config names (`mm_vision_tower`) when it can be found, or the trained tower inside a stage-3 checkpoint.
With a LLaVA checkpoint the output holds the model, the processor (tokenizer with `<image>` added, image processor,
chat templates `baby_v1`/`baby_plain`), the remote code and a model card naming the sources and their revisions;
with only a vision `.pth` it holds a standalone `Dinov2Model`, the image processor and a model card. The folder is
written in a temporary sibling and renamed at the end, so a failed conversion leaves nothing that looks complete;
`--push-to-hub REPO_ID` then uploads it. The key mapping is in `babyvlm.modeling.convert_babyllava_v2_original`;
formats and parity are described in `modeling/CONVERSION.md`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from huggingface_hub import ModelCard, ModelCardData
from transformers import AutoTokenizer, GenerationConfig, PreTrainedConfig

from . import __version__
from .checkpoint_sources import (
    RELEASED_VISION_BACKBONE,
    CheckpointSource,
    fetch_llava_files,
    resolve_llava_checkpoint,
    resolve_vision_checkpoint,
    vision_tower_named_by,
)
from .command_line import command_parser, fail
from .hub import HubUploadError, folder_files, upload
from .modeling.convert_babyllava_v2_original import (
    ConversionReport,
    convert_llava_checkpoint,
    convert_vision_checkpoint,
    read_llava_config,
)
from .processing import IMAGE_TOKEN, BabyLlavaV2ImageProcessor, BabyLlavaV2Processor
from .staging import staged_folder

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
    revision: str | None = None,
    vision_revision: str | None = None,
    license: str | None = None,
) -> ConversionReport:
    """Convert the original release into the folder `output` and return the conversion report.

    Args:
        output: folder to write; it must not exist unless `overwrite`.
        llava_checkpoint: LLaVA-format BabyLLaVA-V2 folder or Hub repo id. Without it, `vision_checkpoint` alone is
            converted into a standalone `Dinov2Model`.
        vision_checkpoint: the DINO vision backbone: a `.pth` file, `REPO_ID:FILE`, or a Hub repo id holding one
            `.pth`. Without it, the tower inside a stage-3 checkpoint, or else the one the LLaVA config names.
        num_attention_heads: vision attention heads (not recorded in the weights); defaults to width / 64.
        dtype: dtype of the saved weights; defaults to the source's.
        overwrite: replace an existing `output`.
        revision, vision_revision: branch, tag or commit of the LLaVA and vision Hub repos (default: `main`);
            `vision_revision` also applies to a vision repo named by the LLaVA config.
        license: the model card's license; defaults to the one the source's own card states.
    """
    if llava_checkpoint is None and vision_checkpoint is None:
        raise ValueError("nothing to convert: pass a LLaVA checkpoint folder, a vision checkpoint, or both")
    with staged_folder(output, overwrite) as staging:
        vision = resolve_vision_checkpoint(vision_checkpoint, vision_revision) if vision_checkpoint else None
        if llava_checkpoint is None:
            return _write_vision_model(staging, vision, num_attention_heads, dtype, license)
        llava = resolve_llava_checkpoint(llava_checkpoint, revision)
        llava_config = read_llava_config(llava.path)
        if vision is None and not llava_config.get("tune_vision_tower"):
            # A frozen tower is not saved in the checkpoint: take the one the config names. (A trained tower is
            # saved in it; the converter checks that it is there.)
            vision = resolve_vision_checkpoint(vision_tower_named_by(llava_config, llava), vision_revision)
        return _write_babyllava(staging, fetch_llava_files(llava), vision, num_attention_heads, dtype, license)


def _write_babyllava(
    staging: Path, llava: CheckpointSource, vision: CheckpointSource | None, num_attention_heads, dtype, license
) -> ConversionReport:
    folder = llava.path
    model, report = convert_llava_checkpoint(folder, vision and vision.path, num_attention_heads, dtype)
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
    _model_card(report, llava, vision, license).save(staging / "README.md")
    return report


def _write_vision_model(
    staging: Path, vision: CheckpointSource, num_attention_heads, dtype, license
) -> ConversionReport:
    model, report = convert_vision_checkpoint(vision.path, num_attention_heads, dtype)
    model.save_pretrained(staging)
    _image_processor(model.config.image_size, pad=True).save_pretrained(staging)
    _model_card(report, None, vision, license).save(staging / "README.md")
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


def _model_card(
    report: ConversionReport, llava: CheckpointSource | None, vision: CheckpointSource | None, license: str | None
) -> ModelCard:
    """A Hub-ready card: license, pipeline tag, library, base model (the source repo) and the sources' revisions."""
    main_source = llava or vision
    details = "\n".join(f"- {line}" for line in report.summary().splitlines())
    if llava is None:
        pipeline_tag, title = (
            "image-feature-extraction",
            "BabyLLaVA-V2 vision backbone, converted from the original release",
        )
        usage = (
            "from transformers import AutoModel\n\n"
            "model = AutoModel.from_pretrained(path)  # Dinov2Model\n"
            "features = model(pixel_values).last_hidden_state  # all tokens after the final LayerNorm, as the original"
        )
    else:
        pipeline_tag, title = "image-text-to-text", "BabyLLaVA-V2, converted from the original release"
        usage = (
            "import babyvlm  # registers the Auto classes (or pass trust_remote_code=True)\n"
            "from transformers import AutoModelForImageTextToText, AutoProcessor\n\n"
            "model = AutoModelForImageTextToText.from_pretrained(path)\n"
            "processor = AutoProcessor.from_pretrained(path)"
        )
    source_license = main_source.license_metadata()
    license_metadata = {"license": license} if license else source_license or {"license": "other"}
    data = ModelCardData(
        **license_metadata,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        base_model=main_source.repo_id,
        tags=["babyvlm", "babyllava_v2", "converted"],
    )
    sources = [f"- LLaVA checkpoint: {llava.describe()}"] if llava else []
    if vision is not None:
        sources.append(f"- vision backbone: {vision.describe()}")
    elif llava is not None:
        sources.append("- vision backbone: the trained tower inside the LLaVA checkpoint")
    named = report.llava_config.get("mm_vision_tower")
    if named:
        sources.append(f"- the original config names its vision tower `{named}`")
    license_note = (
        ""
        if license or source_license
        else "\nThe source states no license: check its terms before redistributing this conversion.\n"
    )
    body = (
        f"# {title}\n\n"
        f"Written by `babyvlm convert` (babyvlm {__version__}) from the original BabyLLaVA-V2 release "
        f"(arXiv 2512.10932).\n\n## Sources\n\n" + "\n".join(sources) + f"\n{license_note}\n"
        f"## Usage\n\n```python\n{usage}\n```\n\n## Conversion\n\n{details}\n\n"
        "Parity with the original forward pass (within 1e-5 in float32) is tested by babyvlm's "
        "`tests/test_convert.py`; see `modeling/CONVERSION.md` in babyvlm for the key mapping.\n"
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload a converted folder (card, weights, processor, remote code) as a model repo, in one commit; returns
    its URL (``HubUploadError`` when nothing was uploaded)."""
    return upload(
        repo_id,
        folder_files(folder),
        repo_type="model",
        private=private,
        commit_message=f"BabyLLaVA-V2 converted by babyvlm convert {__version__}",
    )


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "convert",
        __doc__.split("\n\n")[0],
        [
            "babyvlm convert --llava-checkpoint wsashawn/babyllava_v2_instruction_ft --output babyllava-v2",
            "babyvlm convert --llava-checkpoint path/to/phase2 --vision-checkpoint dino.pth --output babyllava-v2 \\",
            "    --push-to-hub someone/babyllava-v2",
        ],
    )
    parser.add_argument(
        "--llava-checkpoint",
        metavar="REPO_ID_OR_DIR",
        help="LLaVA-format BabyLLaVA-V2: a folder (config.json with mm_* fields, weights, tokenizer) or a Hub repo id "
        "(wsashawn/babyllava_v2_phase2, wsashawn/babyllava_v2_instruction_ft)",
    )
    parser.add_argument("--revision", help="branch, tag or commit of the --llava-checkpoint repo (default: main)")
    parser.add_argument(
        "--vision-checkpoint",
        metavar="REPO_ID[:FILE]|FILE",
        help="DINO vision backbone with a 'teacher' state dict: a .pth file, or a Hub repo holding one .pth "
        f"({RELEASED_VISION_BACKBONE}); default: the tower inside a stage-3 checkpoint, else the one its config names",
    )
    parser.add_argument("--vision-revision", help="branch, tag or commit of the --vision-checkpoint repo")
    parser.add_argument("--output", metavar="DIR", required=True, help="folder to write")
    parser.add_argument(
        "--vision-num-heads",
        type=int,
        metavar="N",
        help="attention heads of the ViT (default: width / 64; ViT-L/16: 16)",
    )
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="dtype of the saved weights (default: the source's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--license", help="license of the model card (default: the one the source's card states)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the converted folder to this model repo")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo as private")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; returns 1 (having written nothing) when the conversion fails."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.private and not args.push_to_hub:
        parser.error("--private applies to --push-to-hub")
    try:
        report = convert_original(
            args.output,
            llava_checkpoint=args.llava_checkpoint,
            vision_checkpoint=args.vision_checkpoint,
            num_attention_heads=args.vision_num_heads,
            dtype=DTYPES.get(args.dtype),
            overwrite=args.overwrite,
            revision=args.revision,
            vision_revision=args.vision_revision,
            license=args.license,
        )
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        return fail(parser, error)
    print(report.summary())
    print(f"wrote {args.output}")
    if args.push_to_hub:
        try:
            url = push_to_hub(args.output, args.push_to_hub, private=args.private)
        except HubUploadError as error:
            return fail(parser, f"{error}; {args.output} is complete: upload it with `hf upload`")
        print(f"pushed to {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
