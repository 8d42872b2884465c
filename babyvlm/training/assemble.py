"""Compose stage-0 checkpoints into a BabyLLaVA-V2 checkpoint (the start of stage 1).

`babyvlm train assemble --vision DIR --language-model DIR --output DIR` takes a transformers vision model (the
DINO-trained ViT exported by `recipes/pretrain_vision.py`, a `Dinov2Model` folder) and a causal LM with its
tokenizer (stage 0 of `recipes/sft.py`), adds `<image>` to the tokenizer if it is missing (resizing the
embeddings by one mean-initialised row), joins them with a freshly initialised connector, and saves the model,
the processor (chat templates included) and a model card.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from ..checkpoint_sources import is_repo_id
from ..command_line import command_parser, fail
from ..modeling import BabyLlavaV2Config, BabyLlavaV2ForConditionalGeneration
from ..processing import BabyLlavaV2ImageProcessor, BabyLlavaV2Processor, add_image_token
from ..staging import staged_folder
from .exposure import exposure_card_section, exposure_document, parent_stages, write_exposure
from .model_card import PROJECT_LICENSE, render_model_card


def assemble(
    vision_path: str | Path,
    language_model_path: str | Path,
    output_dir: str | Path | None = None,
    seed: int = 0,
    projector_input_norm: bool = False,
):
    """Build (and optionally save) a BabyLLaVA-V2 model and processor from a vision model and a causal LM (each a
    local folder or a Hub repo id; a part that is neither, or does not load, is named). `projector_input_norm` is
    the config option of that name (a LayerNorm before the connector; off in the original)."""
    check_part("vision model", vision_path)  # both before either is loaded
    check_part("language model", language_model_path)
    vision = load_part("vision model", AutoModel, vision_path)
    language_model = load_part("language model", AutoModelForCausalLM, language_model_path)
    tokenizer = add_image_token(load_part("language model's tokenizer", AutoTokenizer, language_model_path))
    if language_model.get_input_embeddings().num_embeddings < len(tokenizer):
        language_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    config = BabyLlavaV2Config(
        vision_config=vision.config.to_dict(),
        text_config=language_model.config.to_dict(),
        image_token_index=tokenizer.image_token_id,
        projector_input_norm=projector_input_norm,
    )
    torch.manual_seed(seed)  # the connector is the only freshly initialised part
    model = BabyLlavaV2ForConditionalGeneration(config)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    model.model.language_model.load_state_dict(language_model.model.state_dict())
    model.lm_head.load_state_dict(language_model.lm_head.state_dict())

    image_size = config.vision_config.image_size
    processor = BabyLlavaV2Processor.from_model_config(
        config, BabyLlavaV2ImageProcessor(size={"height": image_size, "width": image_size}), tokenizer
    )
    if output_dir is not None:
        card = render_model_card(
            "assembled",
            "Stage-0 vision and language checkpoints joined by a freshly initialised connector; the start of stage 1.",
            [],
            f"vision: {vision_path}; language model: {language_model_path}",
            {
                "connector_seed": seed,
                "projector_input_norm": projector_input_norm,
                "image_seq_length": config.image_seq_length,
                "vocab_size": len(tokenizer),
            },
            license=PROJECT_LICENSE,
        )
        exposure = exposure_document(parent_stages(vision_path, language_model_path))
        with staged_folder(output_dir, overwrite=True) as staging:
            model.save_pretrained(staging)
            processor.save_pretrained(staging)
            write_exposure(staging, exposure)
            (staging / "README.md").write_text(card.rstrip("\n") + "\n\n" + exposure_card_section(exposure))
    return model, processor


def check_part(what: str, path: str | Path) -> None:
    """A part is a model folder or a Hub repo id: anything else is named (transformers would say "Repo id must be in
    the form …" of a missing folder)."""
    if Path(path).is_dir():
        return
    if Path(path).exists():
        raise FileNotFoundError(f"{what} {path}: a file, not a model folder")
    if not is_repo_id(str(path)):
        raise FileNotFoundError(f"{what} {path}: no such folder, and not a Hub repo id (owner/name)")


def load_part(what: str, auto_class, path: str | Path):
    """``auto_class.from_pretrained(path)``; a part that does not load is one error naming it."""
    try:
        return auto_class.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{what} {path} does not load: {' '.join(str(error).split())}") from error


def main(argv: list[str] | None = None) -> int:
    """``babyvlm train assemble``."""
    parser = command_parser(
        "train assemble",
        __doc__.splitlines()[0],
        ["babyvlm train assemble --vision runs/stage0_vision --language-model runs/stage0_lm --output runs/assembled"],
    )
    parser.add_argument(
        "--vision", required=True, help="transformers vision model folder (e.g. the exported DINO teacher)"
    )
    parser.add_argument("--language-model", required=True, help="causal LM folder with its tokenizer (stage-0 output)")
    parser.add_argument("--output", required=True, help="where to write the BabyLLaVA-V2 checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="seed of the connector initialisation")
    parser.add_argument(
        "--projector-input-norm",
        action="store_true",
        help="a LayerNorm between the vision features and the connector (off in the original)",
    )
    args = parser.parse_args(argv)
    try:
        model, processor = assemble(args.vision, args.language_model, args.output, args.seed, args.projector_input_norm)
    except (FileNotFoundError, FileExistsError, OSError, ValueError) as error:
        return fail(parser, error)
    print(
        f"assembled BabyLLaVA-V2 ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{processor.image_seq_length} tokens per image) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
