"""Supervised training of every BabyLLaVA-V2 text stage with TRL's SFTTrainer.

    accelerate launch recipes/sft.py --config recipes/babyllava_v2/<stage>.yaml [--any_field value ...]

Stages (recipes/README.md, "The stages, full size"), chosen by `stage:` in the YAML:
- `lm`        phase 0: a Llama LM from scratch on the utterance corpus (packed text). Trains the tokenizer on the
              corpus first when `tokenizer_name_or_path` is not given.
- `align`     phase 1: the connector only, `baby_plain`, on image-utterance pairs. Starts from
              `model_name_or_path`, or assembles one from `vision_model_path` + `language_model_path`.
- `pretrain`  phase 2: LM + connector (ViT frozen), `baby_v1`, on the mixture of the three pretraining formats.
- `instruct`  phase 3: everything, `baby_v1`, on DevCV train splits (ViT at `vision_learning_rate`).

Every run resumes from the last checkpoint in `output_dir`, writes a model card next to each checkpoint and
the final model, and honours TRL/transformers options (`report_to`, `push_to_hub`, bf16, gradient checkpointing…).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from babyvlm.modeling import BabyLlavaV2ForConditionalGeneration
from babyvlm.processing import add_image_token, train_tokenizer
from transformers import AutoProcessor, AutoTokenizer, LlamaConfig, LlamaForCausalLM, set_seed
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTConfig, SFTTrainer, TrlParser

import babyvlm  # noqa: F401  (registers the Auto classes)
from babyvlm.training.assemble import assemble
from babyvlm.training.collator import BabyLlavaV2Collator
from babyvlm.training.data import load_mixture
from babyvlm.training.model_card import ModelCardCallback, render_model_card, training_hyperparameters
from babyvlm.training.stages import apply_stage_freezing, get_stage
from babyvlm.training.trainer import BabyLlavaV2SFTTrainer, enable_generation_cache

logger = logging.getLogger("babyvlm.sft")


@dataclass
class BabyLlavaV2Arguments:
    stage: str = field(metadata={"help": "lm | align | pretrain | instruct"})
    datasets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "dataset folders as `path[:config][@split][*weight]` (YAML: mappings with path/name/split/weight)"
        },
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "BabyLLaVA-V2 checkpoint to start from"})
    vision_model_path: str | None = field(default=None, metadata={"help": "align: vision model to assemble"})
    language_model_path: str | None = field(
        default=None, metadata={"help": "align: phase-0 LM (+ tokenizer) to assemble"}
    )
    chat_template: str | None = field(
        default=None, metadata={"help": "override the stage's template (baby_v1 / baby_plain)"}
    )
    vlm_packing: bool = field(default=False, metadata={"help": "padding-free packing of multi-image samples"})
    pack_row_length: str = field(
        default="longest",
        metadata={
            "help": "packed rows: `longest` (the batch's longest sample; best with SDPA), a number of tokens, "
            "or `single` (one row per batch, for flash-attention varlen)"
        },
    )
    truncation: str = field(default="cut_before_image", metadata={"help": "cut_before_image | error"})
    vision_learning_rate: float | None = field(default=None, metadata={"help": "instruct: learning rate of the ViT"})
    # phase 0 (lm) only
    text_column: str = field(default="text", metadata={"help": "lm: column holding the utterances"})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "lm: existing tokenizer (else trained)"})
    tokenizer_vocab_size: int = 6000
    tokenizer_min_frequency: int = 3
    lm_hidden_size: int = 2048
    lm_intermediate_size: int = 5632
    lm_num_hidden_layers: int = 22
    lm_num_attention_heads: int = 32
    lm_num_key_value_heads: int = 4
    lm_max_position_embeddings: int = 8192


def parse_row_length(value: str) -> int | str | None:
    if value in ("longest", "single"):
        return None if value == "single" else value
    if not value.isdigit():
        raise ValueError(f"pack_row_length must be `longest`, `single` or a number of tokens, got {value!r}")
    return int(value)


def build_language_model(args: BabyLlavaV2Arguments, train_dataset, training_args: SFTConfig):
    """Phase 0: the tokenizer (given or trained on the corpus) and a from-scratch Llama with the TinyLlama shape."""
    if args.tokenizer_name_or_path:
        tokenizer = add_image_token(AutoTokenizer.from_pretrained(args.tokenizer_name_or_path))
    else:
        tokenizer = train_tokenizer(
            train_dataset["text"],
            vocab_size=args.tokenizer_vocab_size,
            min_frequency=args.tokenizer_min_frequency,
            model_max_length=args.lm_max_position_embeddings,
        )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.lm_hidden_size,
        intermediate_size=args.lm_intermediate_size,
        num_hidden_layers=args.lm_num_hidden_layers,
        num_attention_heads=args.lm_num_attention_heads,
        num_key_value_heads=args.lm_num_key_value_heads,
        max_position_embeddings=args.lm_max_position_embeddings,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config), tokenizer


def build_vlm(args: BabyLlavaV2Arguments, training_args: SFTConfig):
    if args.model_name_or_path:
        model = BabyLlavaV2ForConditionalGeneration.from_pretrained(args.model_name_or_path)
        return model, AutoProcessor.from_pretrained(args.model_name_or_path), args.model_name_or_path
    if args.stage == "align" and args.vision_model_path and args.language_model_path:
        model, processor = assemble(args.vision_model_path, args.language_model_path, seed=training_args.seed)
        return model, processor, f"{args.vision_model_path} + {args.language_model_path}"
    raise ValueError(
        f"stage {args.stage!r} needs `model_name_or_path`"
        + (" (or `vision_model_path` and `language_model_path` to assemble one)" if args.stage == "align" else "")
    )


def main(args: BabyLlavaV2Arguments, training_args: SFTConfig) -> Path:
    stage = get_stage(args.stage)
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    last_checkpoint = get_last_checkpoint(output_dir) if output_dir.is_dir() else None

    if stage.name == "lm":
        train_dataset = load_mixture(args.datasets, seed=training_args.seed, keep_columns=(args.text_column,))
        if args.text_column != "text":
            train_dataset = train_dataset.rename_column(args.text_column, "text")
        if last_checkpoint and not args.tokenizer_name_or_path:
            args.tokenizer_name_or_path = last_checkpoint  # resume with the tokenizer trained by the first run
        model, processing_class = build_language_model(args, train_dataset, training_args)
        parent, trainable = None, {"language_model": sum(p.numel() for p in model.parameters())}
        trainer_class, extra_kwargs = SFTTrainer, {}
        training_args.dataset_text_field = "text"
    else:
        train_dataset = load_mixture(args.datasets, seed=training_args.seed)
        model, processing_class, parent = build_vlm(args, training_args)
        trainable = apply_stage_freezing(model, stage)
        template = args.chat_template or stage.chat_template
        collator = BabyLlavaV2Collator(
            processing_class,
            chat_template=template,
            max_length=training_args.max_length,
            packing=args.vlm_packing,
            row_length=parse_row_length(args.pack_row_length),
            truncation=args.truncation,
            pad_to_multiple_of=training_args.pad_to_multiple_of,
        )
        # TRL would re-tokenize with its own VLM collator, which cannot pack images nor mask them: we collate.
        training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
        training_args.remove_unused_columns = False
        trainer_class = BabyLlavaV2SFTTrainer
        extra_kwargs = {"data_collator": collator, "vision_learning_rate": args.vision_learning_rate}
    logger.info("stage %s: trainable parameters %s", stage.name, trainable)

    card = render_model_card(
        stage.name,
        stage.description,
        args.datasets,
        parent,
        training_hyperparameters(
            training_args,
            {
                "trainable_parameters": trainable,
                "vlm_packing": args.vlm_packing,
                "vision_learning_rate": args.vision_learning_rate,
            },
        ),
    )
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processing_class,
        callbacks=[ModelCardCallback(card)],
        **extra_kwargs,
    )
    if last_checkpoint:
        logger.info("resuming from %s", last_checkpoint)
    trainer.train(resume_from_checkpoint=last_checkpoint)
    enable_generation_cache(trainer.model)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        processing_class.save_pretrained(output_dir)
        (output_dir / "README.md").write_text(card)
    return output_dir


if __name__ == "__main__":
    parser = TrlParser((BabyLlavaV2Arguments, SFTConfig))
    script_args, sft_config = parser.parse_args_and_config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main(script_args, sft_config)
