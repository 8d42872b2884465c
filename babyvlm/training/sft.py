"""Supervised training of every text stage with TRL's SFTTrainer: BabyLLaVA-V2's stages, and instruction tuning
of any image-text-to-text model, fully or with LoRA/QLoRA.

    accelerate launch recipes/sft.py --config recipes/<family>/<recipe>.yaml [--any_field value ...]
    babyvlm train sft --config recipes/<family>/<recipe>.yaml [--any_field value ...]   (one process)

Both parse the same way (`parse_args`: the YAML, then command-line overrides; the options keep TRL's and
transformers' names, `--max_steps`, with `--max-steps` accepted too) and run the same function, `train`, which a
program can call with the three argument objects itself.

Stages (recipes/README.md, "The stages, full size"), chosen by `stage:` in the YAML:
- `lm`        stage 0: a Llama LM from scratch on the utterance corpus (packed text). Trains the tokenizer on the
              corpus first when `tokenizer_name_or_path` is not given.
- `align`     stage 1: the connector only, `baby_plain`, on image-utterance pairs. Starts from
              `model_name_or_path`, or assembles one from `vision_model_path` + `language_model_path`.
- `pretrain`  stage 2: LM + connector (ViT frozen), `baby_v1`, on the mixture of the three pretraining formats.
- `instruct`  stage 3: everything, on DevCV train splits (ViT at `vision_learning_rate`). Any
              `AutoModelForImageTextToText` checkpoint with its own processor and chat template (BabyLLaVA-V2 renders
              `baby_v1`); `use_peft: true` trains LoRA adapters instead (`load_in_4bit: true`: QLoRA, CUDA only).

Model loading follows TRL's `ModelConfig` (`model_name_or_path`, `dtype`, `attn_implementation`, `use_peft`,
`lora_*`, `load_in_4bit`). The final folder (`output_dir`) holds the model (or adapter), its processor and a
Hub-ready card, nothing else: checkpoints go to `checkpoints_dir` (default `<output_dir>-checkpoints`), from which a
rerun resumes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    set_seed,
)
from trl import ModelConfig, SFTConfig, TrlParser, get_peft_config, get_quantization_config

import babyvlm  # noqa: F401  (registers the Auto classes)
from babyvlm.command_line import DefaultsHelpFormatter, command_parser, fail
from babyvlm.locking import locks_outputs
from babyvlm.processing import add_image_token, train_tokenizer
from babyvlm.training.assemble import assemble
from babyvlm.training.collator import VisionChatCollator
from babyvlm.training.data import load_stream
from babyvlm.training.exposure import COLUMNS as EXPOSURE_COLUMNS
from babyvlm.training.exposure import Curriculum, ExposureTally, parent_stages, stage_entry
from babyvlm.training.lora import lora_target_modules, merge_adapter, refuse_quantization_without_cuda
from babyvlm.training.model_card import render_model_card, training_hyperparameters
from babyvlm.training.safeguards import (
    FiniteSFTTrainer,
    last_complete_checkpoint,
    leaves_no_empty_checkpoints_folder,
    save_final_model,
    training_folders,
)
from babyvlm.training.stages import apply_stage_freezing, get_stage, trained_parts, vision_parameter_test
from babyvlm.training.timeline import ExposureCallback, ExposureCollator, ExposureCountingMixin, TimelineArguments
from babyvlm.training.trainer import BabyVLMSFTTrainer, enable_generation_cache

logger = logging.getLogger("babyvlm.sft")
LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"
NOT_IN_A_MODEL_REPOSITORY = ("training_args.bin",)


class ExposureSFTTrainer(ExposureCountingMixin, BabyVLMSFTTrainer):
    """The chat stages' trainer, counting the records it trains on (:mod:`babyvlm.training.timeline`)."""

    def __init__(self, *args, **kwargs):
        self.exposure_tally = ExposureTally()
        super().__init__(*args, **kwargs)


@dataclass
class RecipeArguments(TimelineArguments):
    stage: str = field(metadata={"help": "lm | align | pretrain | instruct"})
    datasets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "dataset folders as `path[:config][@split][*weight]` (YAML: mappings with path/name/split/weight)"
        },
    )
    vision_model_path: str | None = field(default=None, metadata={"help": "align: vision model to assemble"})
    language_model_path: str | None = field(
        default=None, metadata={"help": "align: stage-0 LM (+ tokenizer) to assemble"}
    )
    projector_input_norm: bool = field(
        default=False,
        metadata={"help": "align: assemble with a LayerNorm before the connector (off in the original)"},
    )
    chat_template: str | None = field(
        default=None,
        metadata={"help": "template name or Jinja string (default: the stage's for BabyLLaVA-V2, else the model's)"},
    )
    train_vision: bool | None = field(
        default=None,
        metadata={
            "help": "train the vision tower (default: as the stage says for full training; no for LoRA, where "
            "`true` also puts adapters in the vision tower)"
        },
    )
    train_language_model: bool | None = field(
        default=None,
        metadata={
            "help": "full training: train the language model (default: as the stage says; `true` in `align` is a "
            "deviation of the original, whose stage 1 trains the connector alone)"
        },
    )
    processor_kwargs: dict | str | None = field(
        default=None,
        metadata={
            "help": "options for AutoProcessor.from_pretrained, a mapping or JSON (e.g. Qwen2-VL's max_pixels): "
            "saved with the processor, so evaluation sees the images the way training did"
        },
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
    max_unlearnable_fraction: float = field(
        default=0.1,
        metadata={"help": "fail when more than this share of an epoch's samples has no assistant token left"},
    )
    strict_images: bool = field(
        default=False, metadata={"help": "fail on an image file that cannot be read (default: skip the sample, warn)"}
    )
    vision_learning_rate: float | None = field(default=None, metadata={"help": "instruct: learning rate of the ViT"})
    checkpoints_dir: str | None = field(
        default=None, metadata={"help": "where checkpoints (and resumption) live; default `<output_dir>-checkpoints`"}
    )
    merge_adapter: bool = field(
        default=False, metadata={"help": "LoRA: also save the base model with the adapter merged in"}
    )
    merged_output_dir: str | None = field(
        default=None, metadata={"help": "LoRA: where the merged model goes (default `<output_dir>-merged`)"}
    )
    model_license: str | None = field(
        default=None,
        metadata={"help": "the card's `license` (default: the parent card's; set it to your base model's licence)"},
    )
    # stage 0 (lm) only
    text_column: str = field(default="text", metadata={"help": "lm: column holding the utterances"})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "lm: existing tokenizer (else trained)"})
    tokenizer_vocab_size: int = 6000
    tokenizer_min_frequency: int = 3
    tokenizer_extra_texts: list[str] = field(
        default_factory=list,
        metadata={
            "help": "lm: strings the trained BPE also learns, once per utterance (e.g. the chat template's role "
            "markers `USER:` `ASSISTANT:`); not in the original, which learns from the transcripts only"
        },
    )
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


def build_language_model(args: RecipeArguments, model_args: ModelConfig, train_dataset):
    """Stage 0: the tokenizer (given or trained on the corpus) and a from-scratch Llama with the TinyLlama shape,
    in `model_args.dtype` with `model_args.attn_implementation`."""
    if args.tokenizer_name_or_path:
        tokenizer = add_image_token(AutoTokenizer.from_pretrained(args.tokenizer_name_or_path))
    else:
        tokenizer = train_tokenizer(
            train_dataset["text"],
            vocab_size=args.tokenizer_vocab_size,
            min_frequency=args.tokenizer_min_frequency,
            model_max_length=args.lm_max_position_embeddings,
            extra_texts=args.tokenizer_extra_texts,
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
    model = LlamaForCausalLM._from_config(config, attn_implementation=model_args.attn_implementation)
    return model.to(from_scratch_dtype(model_args)), tokenizer


def model_dtype(model_args: ModelConfig):
    return model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)


def from_scratch_dtype(model_args: ModelConfig) -> torch.dtype:
    """A freshly built model has no stored dtype for `auto` to follow: float32 unless one is named."""
    dtype = model_dtype(model_args)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def load_kwargs(model_args: ModelConfig) -> dict:
    """`from_pretrained` arguments from TRL's `ModelConfig`: dtype, attention kernel, revision, quantization."""
    refuse_quantization_without_cuda(model_args)
    quantization = get_quantization_config(model_args)
    kwargs = {
        "dtype": model_dtype(model_args),
        "attn_implementation": model_args.attn_implementation,
        "revision": model_args.model_revision,
    }
    if quantization is not None:
        kwargs.update(quantization_config=quantization, device_map={"": torch.cuda.current_device()})
    return kwargs


def build_vlm(args: RecipeArguments, model_args: ModelConfig, training_args: SFTConfig):
    """The model to train, its processor and the parent checkpoint: any image-text-to-text checkpoint, or (stage 1)
    one assembled from stage-0 parts."""
    if model_args.model_name_or_path:
        path = model_args.model_name_or_path
        model = AutoModelForImageTextToText.from_pretrained(path, **load_kwargs(model_args))
        options = json.loads(args.processor_kwargs) if isinstance(args.processor_kwargs, str) else args.processor_kwargs
        processor = AutoProcessor.from_pretrained(path, revision=model_args.model_revision, **(options or {}))
        return model, processor, path
    if args.stage == "align" and args.vision_model_path and args.language_model_path:
        model, processor = assemble(
            args.vision_model_path,
            args.language_model_path,
            seed=training_args.seed,
            projector_input_norm=args.projector_input_norm,
        )
        if model_args.attn_implementation:
            model.set_attn_implementation(model_args.attn_implementation)
        model = model.to(from_scratch_dtype(model_args))
        return model, processor, f"{args.vision_model_path} + {args.language_model_path}"
    raise ValueError(
        f"stage {args.stage!r} needs `model_name_or_path`"
        + (" (or `vision_model_path` and `language_model_path` to assemble one)" if args.stage == "align" else "")
    )


def stage_template(processor, stage, requested: str | None) -> str | None:
    """The requested template, else the stage's where the processor has it by name (BabyLLaVA-V2), else the
    processor's default (every other family trains on its own template)."""
    if requested:
        return requested
    named = processor.chat_template if isinstance(processor.chat_template, dict) else {}
    return stage.chat_template if stage.chat_template in named else None


def clean_model_folder(output_dir: Path) -> None:
    """Leave what a model repository holds: no pickled training arguments beside the weights."""
    for name in NOT_IN_A_MODEL_REPOSITORY:
        (output_dir / name).unlink(missing_ok=True)


@locks_outputs(training_folders)
@leaves_no_empty_checkpoints_folder
def train(args: RecipeArguments, training_args: SFTConfig, model_args: ModelConfig | None = None) -> Path:
    """Train the stage `args.stage` and return the model folder (`training_args.output_dir`)."""
    model_args = model_args or ModelConfig()
    stage = get_stage(args.stage)
    set_seed(training_args.seed)
    output_dir, checkpoints_dir = training_folders(args, training_args)
    training_args.output_dir = str(checkpoints_dir)
    last_checkpoint = last_complete_checkpoint(checkpoints_dir)
    peft_config = None
    library_name = "transformers"
    description = stage.description

    curriculum = Curriculum.parse(args.curriculum, args.curriculum_window_months)
    if curriculum.ordered:
        if stage.name == "lm":
            raise ValueError("curriculum: stage lm packs its text, so records have no order; use it from stage align")
        training_args.train_sampling_strategy = "sequential"  # the records are in curriculum order already
    keep = (args.text_column,) if stage.name == "lm" else ("messages", "images")
    train_dataset, corpora = load_stream(args.datasets, training_args.seed, keep, curriculum)
    ages = [age for age in train_dataset[EXPOSURE_COLUMNS["age_months"]] if age is not None]
    corpus_tally = None
    if stage.name == "lm":
        corpus_tally = ExposureTally()  # packed text: the corpus once per epoch
        corpus_tally.add_records(train_dataset.select_columns(list(EXPOSURE_COLUMNS.values())).to_list())
        train_dataset = train_dataset.remove_columns(list(EXPOSURE_COLUMNS.values()))
        if args.text_column != "text":
            train_dataset = train_dataset.rename_column(args.text_column, "text")
        if last_checkpoint and not args.tokenizer_name_or_path:
            args.tokenizer_name_or_path = last_checkpoint  # resume with the tokenizer trained by the first run
        model, processing_class = build_language_model(args, model_args, train_dataset)
        parent, trainable = None, {"language_model": sum(p.numel() for p in model.parameters())}
        trainer_class, extra_kwargs = FiniteSFTTrainer, {}
        training_args.dataset_text_field = "text"
    else:
        model, processing_class, parent = build_vlm(args, model_args, training_args)
        if model_args.use_peft:
            train_vision = bool(args.train_vision)
            peft_config = get_peft_config(model_args)
            if model_args.lora_target_modules is None:
                peft_config.target_modules = lora_target_modules(model, train_vision)
            trainable = {"lora_target_modules": str(peft_config.target_modules), "train_vision": train_vision}
            library_name = "peft"
            trained = (
                "the vision tower, the connector and the language model"
                if train_vision
                else "the connector and the language model"
            )
            description = (
                f"instruction tuning with LoRA adapters on {trained} "
                f"(r {model_args.lora_r}, alpha {model_args.lora_alpha})"
            )
        else:
            trains = trained_parts(stage, vision=args.train_vision, language_model=args.train_language_model)
            trainable = apply_stage_freezing(model, stage, trains)
        collator = VisionChatCollator(
            processing_class,
            chat_template=stage_template(processing_class, stage, args.chat_template),
            max_length=training_args.max_length,
            packing=args.vlm_packing,
            row_length=parse_row_length(args.pack_row_length),
            truncation=args.truncation,
            pad_to_multiple_of=training_args.pad_to_multiple_of,
            model_type=model.config.model_type,
            strict_images=args.strict_images,
            with_report=True,
        )
        collator = ExposureCollator(collator)
        # TRL would re-tokenize with its own VLM collator, which cannot pack images nor mask them: we collate.
        training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
        training_args.remove_unused_columns = False
        trainer_class = ExposureSFTTrainer
        extra_kwargs = {
            "data_collator": collator,
            "vision_learning_rate": args.vision_learning_rate,
            "is_vision_parameter": vision_parameter_test(model),
            "max_unlearnable_fraction": args.max_unlearnable_fraction,
            "peft_config": peft_config,
        }
    logger.info("stage %s: trainable parameters %s", stage.name, trainable)

    card_for = partial(
        render_model_card,
        stage.name,
        description,
        args.datasets,
        parent,
        training_hyperparameters(
            training_args,
            {
                "trainable_parameters": trainable,
                "vlm_packing": args.vlm_packing,
                "vision_learning_rate": args.vision_learning_rate,
                "dtype": model_args.dtype,
                "attn_implementation": model_args.attn_implementation,
                **({"lora_r": model_args.lora_r, "lora_alpha": model_args.lora_alpha} if peft_config else {}),
                **({"load_in_4bit": True} if model_args.load_in_4bit else {}),
            },
        ),
        license=args.model_license,
        pipeline_tag="text-generation" if stage.name == "lm" else "image-text-to-text",
        title=type(model).__name__.removesuffix("ForConditionalGeneration"),
    )
    card = card_for(library_name=library_name)
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processing_class,
        **extra_kwargs,
    )

    def write_extras(folder: Path) -> None:
        clean_model_folder(folder)
        processing_class.save_pretrained(folder)

    lineage = (
        parent_stages(model_args.model_name_or_path)
        if model_args.model_name_or_path
        else parent_stages(args.vision_model_path, args.language_model_path)
    )
    exposure = ExposureCallback(
        trainer,
        card,
        lambda tally, epochs, steps: stage_entry(stage.name, curriculum, tally, epochs, steps, corpora),
        lineage,
        write_extras,
        output_dir,
        corpus_tally=corpus_tally,
        ages=(min(ages), max(ages)) if ages else None,
        save_at=args.save_at_age_months,
        every=args.save_every_age_months,
    )
    if (args.save_at_age_months or args.save_every_age_months) and not (curriculum.ordered and ages):
        raise ValueError("save_at_age_months/save_every_age_months need a chronological or child curriculum")
    trainer.add_callback(exposure)
    if last_checkpoint:
        logger.info("resuming from %s", last_checkpoint)
    exposure.resume(last_checkpoint)
    trainer.train(resume_from_checkpoint=last_checkpoint)
    enable_generation_cache(trainer.model)
    document = exposure.document(trainer.state)

    def write_final_extras(folder: Path) -> None:
        write_extras(folder)
        exposure.write_final_files(folder, document)

    save_final_model(trainer, output_dir, write_final_extras)
    if exposure.written and trainer.is_world_process_zero():
        logger.info("age checkpoints written: %s", ", ".join(exposure.written))
    if trainer.is_world_process_zero():
        if peft_config is not None and args.merge_adapter:
            merged = Path(args.merged_output_dir or f"{output_dir}-merged")
            merge_adapter(output_dir, merged, card_for(library_name="transformers"), dtype=model_dtype(model_args))
    return output_dir


def argument_parser() -> TrlParser:
    """The recipe's options: `--config` (a YAML of them), then any of them on the command line."""
    return command_parser(
        "train sft",
        "Supervised training of a stage with TRL's SFTTrainer: BabyLLaVA-V2's stages 0 (lm) to 3, or instruction "
        "tuning of any image-text-to-text model, fully or with LoRA/QLoRA. Options keep TRL's and transformers' "
        "names (`--max_steps`; `--max-steps` works too); `--config` reads them from a recipe YAML, the command "
        "line overrides it.",
        [
            "babyvlm train sft --config recipes/babyllava_v2/tiny/stage3_instruct.yaml \\",
            "    --model_name_or_path runs/stage2 --datasets devcv:count@train --output_dir runs/stage3",
            "accelerate launch recipes/sft.py --config recipes/babyllava_v2/stage3_instruct.yaml",
        ],
        parser_class=TrlParser,
        dataclass_types=(RecipeArguments, SFTConfig, ModelConfig),
        formatter_class=DefaultsHelpFormatter,
    )


def parse_args(argv: list[str] | None = None) -> tuple[RecipeArguments, SFTConfig, ModelConfig]:
    """The YAML (`--config`), then command-line overrides: the arguments `train` takes."""
    return argument_parser().parse_args_and_config(argv)


def configure_logging() -> None:
    """The recipe's progress lines (`babyvlm.*` loggers at INFO) on stderr, unless logging is configured already."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def main(argv: list[str] | None = None) -> int:
    """`babyvlm train sft` and `recipes/sft.py`: parse, train, exit 0; a failure is one line and exit 1."""
    parser = argument_parser()
    script_args, sft_config, model_config = parser.parse_args_and_config(argv)
    configure_logging()
    try:
        train(script_args, sft_config, model_config)
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as error:
        return fail(parser, error)
    return 0
