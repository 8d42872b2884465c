"""Stage 0 vision: DINOv2-style self-supervised pretraining of the BabyLLaVA-V2 ViT on image frames.

    accelerate launch recipes/pretrain_vision.py --config recipes/babyllava_v2/stage0_vision.yaml
    ACCELERATE_USE_CPU=true accelerate launch recipes/pretrain_vision.py \\
        --config recipes/babyllava_v2/tiny/stage0_vision.yaml --dataset_name path/to/frames --output_dir runs/tiny
    babyvlm train vision --config recipes/babyllava_v2/tiny/stage0_vision.yaml ...   (one process)

Any YAML key can be overridden on the command line (``--max_steps 10``; ``--max-steps`` works too). Both commands
parse the same way (``parse_args``) and run the same function, ``train``. The student and the EMA teacher are
transformers ``Dinov2Model``s (by default the BabyLLaVA-V2 vision tower: ViT-L/16 at 224, LayerScale 1e-5).

Two folders side by side, as in ``recipes/sft.py``:
- ``checkpoints_dir`` (default ``<output_dir>-checkpoints``): accelerate's ``ProjectConfiguration`` with automatic
  checkpoint naming writes ``checkpoints/checkpoint_{N}`` there every ``save_steps`` and keeps the newest
  ``save_total_limit``; tracker logs go there too. A checkpoint counts once its ``trainer_state.json`` (the step) is
  written, after every process saved its part; started again, the run removes the ones a crash interrupted and resumes
  from the newest complete one (or from ``resume_from_checkpoint``).
- ``output_dir``: at the end, the teacher backbone, written whole and renamed into place: ``config.json``,
  ``model.safetensors``, ``README.md`` (a Hub-ready card), ``exposure.json`` and ``collapse.json``, a
  ``Dinov2Model`` folder that ``BabyLlavaV2Config(vision_config=...)`` and ``model.vision_tower`` accept as is;
  with ``save_at_age_months`` / ``save_every_age_months``, the same folders under ``age_checkpoints/age-09mo``, … .

Every folder the run writes (checkpoints, age checkpoints, the final one) says what the run has seen
(``exposure.json``, :mod:`babyvlm.training.exposure`, every process counted) and what the collapse monitor judged
(``collapse.json``, :mod:`babyvlm.training.collapse`), both summarised in its card. ``curriculum`` orders the frames
along the child's timeline (:class:`babyvlm.training.timeline.TimelineArguments`).

See ``recipes/README.md`` ("Stage 0, vision").
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from huggingface_hub import create_repo, upload_folder
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import Dinov2Model
from trl import TrlParser

from babyvlm.command_line import DefaultsHelpFormatter, command_parser, fail
from babyvlm.locking import locks_outputs
from babyvlm.modeling import BabyLlavaV2Config
from babyvlm.staging import staged_folder, write_text
from babyvlm.training.collapse import COLLAPSE_FILE, CollapseError, CollapseMonitor, collapse_card_section
from babyvlm.training.dino import DinoConfig, DinoPretrainingModel, cosine_schedule, parameter_groups
from babyvlm.training.dino_data import (
    MultiCropAugmentation,
    MultiCropConfig,
    MultiCropDataset,
    StreamBatchSampler,
    collate_crops,
    load_image_dataset,
)
from babyvlm.training.exposure import COLUMNS as EXPOSURE_COLUMNS
from babyvlm.training.exposure import (
    ExposureTally,
    age_folder_name,
    exposure_card_section,
    exposure_document,
    parent_stages,
    stage_entry,
    write_exposure,
)
from babyvlm.training.model_card import render_model_card
from babyvlm.training.timeline import AGE_CHECKPOINTS, TALLY_FILE, TimelineArguments, total_over_processes

CHECKPOINT_PATTERN = re.compile(r"checkpoint_(\d+)")  # accelerate's automatic checkpoint naming
STATE_FILE = "trainer_state.json"


@dataclass
class PretrainVisionArguments(TimelineArguments):
    """Data, model, optimisation, schedules, bookkeeping and timeline of a stage-0 vision run."""

    dataset_name: str = field(
        metadata={"help": "load_dataset-able folder or Hub id with an image column (the `frames` corpus)."}
    )
    output_dir: str = field(metadata={"help": "The exported teacher (a Dinov2Model folder), written at the end."})
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset config name."})
    dataset_split: str = field(default="train", metadata={"help": "Split to train on."})
    image_column: str = field(default="image", metadata={"help": "Column holding the images."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Dinov2Model checkpoint to start from (random init when unset)."}
    )
    vision_config: dict | str | None = field(
        default=None,
        metadata={
            "help": "Overrides of the BabyLLaVA-V2 vision config for a random init (a mapping, or JSON on the CLI)."
        },
    )
    drop_path_rate: float = field(default=0.3, metadata={"help": "Stochastic depth of the student."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute the student's activations."})
    seed: int = field(default=42, metadata={"help": "Seed of the init, the data order, the crops and the masks."})
    max_steps: int = field(default=125_000, metadata={"help": "Optimisation steps (DINOv2: 100 epochs of 1,250)."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Images per process and step."})
    learning_rate: float = field(
        default=4e-3, metadata={"help": "Peak LR, for a global batch of 1024 under sqrt scaling."}
    )
    learning_rate_scaling: Literal["sqrt_wrt_1024", "none"] = field(
        default="sqrt_wrt_1024",
        metadata={"help": "sqrt_wrt_1024: peak LR = learning_rate * sqrt(global batch / 1024)."},
    )
    min_learning_rate: float = field(default=1e-6, metadata={"help": "LR at the end of the cosine decay."})
    warmup_steps: int = field(default=12_500, metadata={"help": "Linear LR warm-up steps."})
    weight_decay: float = field(default=0.04, metadata={"help": "Weight decay at step 0 (cosine schedule)."})
    weight_decay_end: float = field(default=0.4, metadata={"help": "Weight decay at the last step."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    max_grad_norm: float = field(default=3.0, metadata={"help": "Gradient clipping (0 disables)."})
    layerwise_lr_decay: float = field(default=0.9, metadata={"help": "LR multiplier per ViT block from the top."})
    patch_embed_lr_multiplier: float = field(
        default=0.2, metadata={"help": "Extra LR multiplier of the patch embedding."}
    )
    freeze_last_layer_steps: int = field(
        default=1250, metadata={"help": "Steps during which the head prototypes do not move."}
    )
    teacher_momentum: float = field(default=0.992, metadata={"help": "EMA momentum of the teacher at step 0."})
    teacher_momentum_end: float = field(
        default=1.0, metadata={"help": "EMA momentum at the last step (cosine schedule)."}
    )
    teacher_temperature_start: float = field(default=0.04, metadata={"help": "Teacher temperature at step 0."})
    teacher_temperature: float = field(default=0.07, metadata={"help": "Teacher temperature after the warm-up."})
    teacher_temperature_warmup_steps: int = field(
        default=37_500, metadata={"help": "Linear warm-up of the teacher temperature."}
    )
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast (GPUs)."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Data-loading processes per training process."})
    logging_steps: int = field(default=10, metadata={"help": "Log averaged losses and monitors every N steps."})
    save_steps: int = field(
        default=1250, metadata={"help": "Save a resumable checkpoint every N steps (and at the end)."}
    )
    checkpoints_dir: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoints (and tracker logs), from which a rerun resumes; default `<output_dir>-checkpoints`."
        },
    )
    save_total_limit: int | None = field(
        default=2,
        metadata={
            "help": "Checkpoints kept (None keeps all). accelerate removes the oldest before writing a new one: "
            "keep >= 2 so that a crash while saving still leaves a complete one."
        },
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={"help": "Checkpoint folder to resume from; default: the newest complete one in checkpoints_dir."},
    )
    report_to: str = field(
        default="none", metadata={"help": "none, or comma-separated trackers: tensorboard, trackio, wandb."}
    )
    collapse_margin: float = field(
        default=0.1,
        metadata={
            "help": "Nats: a logging window is collapsed when teacher_entropy is within this of log K (uniform "
            "targets) or teacher_marginal_entropy within this of 0 (one prototype)."
        },
    )
    collapse_patience: int = field(
        default=10, metadata={"help": "Collapsed logging windows in a row (of one kind) that declare a collapse."}
    )
    collapse_watch_from_step: int | None = field(
        default=None,
        metadata={"help": "Windows ending at or before this step are not judged (default: warmup_steps)."},
    )
    stop_on_collapse: bool = field(
        default=False,
        metadata={
            "help": "Fail when a collapse is declared, writing no final model (default: warn in one line and record "
            "it in collapse.json and the card of every folder written after)."
        },
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the exported teacher to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository (default: the output_dir name)."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})

    def __post_init__(self):
        if isinstance(self.vision_config, str):
            self.vision_config = json.loads(self.vision_config)
        for name in ("max_steps", "per_device_train_batch_size", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.model_name_or_path and self.vision_config:
            raise ValueError(
                "give either model_name_or_path (start from a checkpoint) or vision_config (random init), not both"
            )


def argument_parser() -> TrlParser:
    """The recipe's options: ``--config`` (a YAML of them), then any of them on the command line."""
    return command_parser(
        "train vision",
        "Stage 0 vision: DINOv2-style self-supervised pretraining of the BabyLLaVA-V2 ViT on image frames. Options "
        "keep transformers' names (`--max_steps`; `--max-steps` works too); `--config` reads them from a recipe "
        "YAML, the command line overrides it.",
        [
            "babyvlm train vision --config recipes/babyllava_v2/tiny/stage0_vision.yaml \\",
            "    --dataset_name corpora/frames --output_dir runs/stage0_vision",
            "accelerate launch recipes/pretrain_vision.py --config recipes/babyllava_v2/stage0_vision.yaml",
        ],
        parser_class=TrlParser,
        dataclass_types=(PretrainVisionArguments, DinoConfig, MultiCropConfig),
        formatter_class=DefaultsHelpFormatter,
    )


def parse_args(argv: list[str] | None = None) -> tuple[PretrainVisionArguments, DinoConfig, MultiCropConfig]:
    """YAML (``--config``) then command-line overrides, as in the other recipes: the arguments ``train`` takes."""
    return argument_parser().parse_args_and_config(argv)


def build_backbone(args: PretrainVisionArguments) -> Dinov2Model:
    """The student ViT: a checkpoint, or a random BabyLLaVA-V2 vision tower with ``args.vision_config`` overrides."""
    if args.model_name_or_path:
        return Dinov2Model.from_pretrained(args.model_name_or_path, drop_path_rate=args.drop_path_rate)
    config = BabyLlavaV2Config(vision_config=args.vision_config or {}).vision_config
    config.drop_path_rate = args.drop_path_rate
    return Dinov2Model(config)


def build_optimizer(model: DinoPretrainingModel, args: PretrainVisionArguments) -> torch.optim.AdamW:
    """AdamW over the student, grouped by LR and weight-decay multipliers (values are set every step)."""
    groups = parameter_groups(model, args.layerwise_lr_decay, args.patch_embed_lr_multiplier)
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2))


def schedule_values(args: PretrainVisionArguments, step: int, global_batch_size: int) -> dict[str, float]:
    """LR, weight decay, teacher momentum and temperature at ``step``: pure functions of the step, so a resumed
    run needs nothing but the step to continue them."""
    peak_lr = args.learning_rate
    if args.learning_rate_scaling == "sqrt_wrt_1024":
        peak_lr *= math.sqrt(global_batch_size / 1024)
    total = args.max_steps
    return {
        "learning_rate": cosine_schedule(step, total, peak_lr, args.min_learning_rate, args.warmup_steps),
        "weight_decay": cosine_schedule(step, total, args.weight_decay, args.weight_decay_end),
        "teacher_momentum": cosine_schedule(step, total, args.teacher_momentum, args.teacher_momentum_end),
        "teacher_temperature": cosine_schedule(
            step,
            total,
            args.teacher_temperature,
            args.teacher_temperature,
            args.teacher_temperature_warmup_steps,
            args.teacher_temperature_start,
        ),
    }


def training_step(
    accelerator: Accelerator, model, optimizer, batch: dict[str, torch.Tensor], step: int, args: PretrainVisionArguments
):
    """Forward, backward, clip, AdamW step, teacher EMA. Returns the model output and the logged scalars."""
    values = schedule_values(args, step, args.per_device_train_batch_size * accelerator.num_processes)
    for group in optimizer.param_groups:
        group["lr"] = values["learning_rate"] * group["lr_multiplier"]
        group["weight_decay"] = values["weight_decay"] * group["weight_decay_multiplier"]
    output = model(**batch, teacher_temperature=values["teacher_temperature"])
    if not torch.isfinite(output.loss):  # stop before a NaN reaches the weights, the teacher or a checkpoint
        terms = {key: float(output[key]) for key in ("dino_loss", "ibot_loss", "koleo_loss")}
        raise FloatingPointError(f"non-finite loss at step {step + 1}: {terms}")
    accelerator.backward(output.loss)
    unwrapped = accelerator.unwrap_model(model)
    if step < args.freeze_last_layer_steps:  # DINO: moving prototypes early on destabilises the targets
        unwrapped.student["head"].prototypes.weight.grad = None
    if args.max_grad_norm > 0:
        values["grad_norm"] = float(accelerator.clip_grad_norm_(unwrapped.student.parameters(), args.max_grad_norm))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    unwrapped.update_teacher(values["teacher_momentum"])
    return output, values


def checkpoint_folders(checkpoints_dir: Path) -> list[Path]:
    """accelerate's ``checkpoint_{iteration}`` folders (automatic checkpoint naming), oldest first."""
    root = checkpoints_dir / "checkpoints"
    return sorted(
        (path for path in root.glob("checkpoint_*") if CHECKPOINT_PATTERN.fullmatch(path.name)), key=checkpoint_number
    )


def checkpoint_number(checkpoint: Path) -> int:
    return int(CHECKPOINT_PATTERN.fullmatch(checkpoint.name).group(1))


def is_complete(checkpoint: Path) -> bool:
    """A checkpoint is complete once its state file exists: it is written last, after every process saved its part."""
    return (checkpoint / STATE_FILE).is_file()


def save_checkpoint(
    accelerator: Accelerator, step: int, write_files: Callable[[Path], None] | None = None, state: dict | None = None
) -> Path:
    """Save model (student, teacher, centres), optimizer and every process's RNG state, then ``write_files(folder)``
    (exposure, card) on the main process, then mark them complete with the state file (the step and ``state``).

    accelerate names the folder (``checkpoints/checkpoint_{iteration}``) and, before writing it, removes the oldest
    ones beyond ``total_limit``; it writes in place, so the state file is what tells a finished checkpoint from one a
    crash interrupted.
    """
    checkpoint = Path(accelerator.save_state())
    accelerator.wait_for_everyone()  # every process writes its own random_states_{rank}.pkl
    if accelerator.is_main_process:
        if write_files is not None:
            write_files(checkpoint)
        write_text(checkpoint / STATE_FILE, json.dumps({"global_step": step, **(state or {})}) + "\n")
    accelerator.wait_for_everyone()
    return checkpoint


def resume(accelerator: Accelerator, args: PretrainVisionArguments, checkpoints_dir: Path) -> tuple[int, Path | None]:
    """Load the checkpoint to resume from, if any, and return its step and folder: ``resume_from_checkpoint``, else
    the newest complete checkpoint of ``checkpoints_dir``; ``(0, None)`` for a fresh run.

    Incomplete checkpoints (a run killed while saving) are removed first, so that accelerate's numbering and its
    ``total_limit`` rotation count complete checkpoints only, and the next save is numbered after the newest.
    """
    saved = checkpoint_folders(checkpoints_dir)
    if accelerator.is_main_process:
        for checkpoint in saved:
            if not is_complete(checkpoint):
                accelerator.print(f"removing {checkpoint}: a save that did not finish (no {STATE_FILE})")
                shutil.rmtree(checkpoint)
    accelerator.wait_for_everyone()
    saved = [checkpoint for checkpoint in saved if checkpoint.is_dir()]
    accelerator.project_configuration.iteration = checkpoint_number(saved[-1]) + 1 if saved else 0
    if args.resume_from_checkpoint:
        checkpoint = Path(args.resume_from_checkpoint)
    elif saved:
        checkpoint = saved[-1]
    else:
        return 0, None
    if not is_complete(checkpoint):
        raise FileNotFoundError(f"{checkpoint} is not a complete checkpoint of this recipe (no {STATE_FILE})")
    accelerator.load_state(str(checkpoint))
    step = json.loads((checkpoint / STATE_FILE).read_text())["global_step"]
    accelerator.print(f"resumed from {checkpoint} at step {step}")
    return step, checkpoint


def model_card(
    args: PretrainVisionArguments, hyperparameters: dict, num_images: int, num_processes: int, metrics: dict
) -> str:
    """README.md of the exported teacher: stage, data, parent, run size, last metrics and every hyperparameter."""
    last = ", ".join(f"{key} {value:.4g}" for key, value in metrics.items()) or "none logged"
    description = (
        "EMA teacher of a DINOv2-style self-supervised run (DINO CLS loss + iBOT masked-patch loss + KoLeo, "
        "`recipes/pretrain_vision.py`), saved as a transformers `Dinov2Model`: the vision tower of BabyLLaVA-V2 "
        "(`BabyLlavaV2Config(vision_config=AutoConfig.from_pretrained(path))`, weights under `model.vision_tower`).\n\n"
        f"{args.max_steps:,} steps of global batch {args.per_device_train_batch_size * num_processes} "
        f"({num_processes} process(es)) on {num_images:,} images. Last logged metrics: {last}."
    )
    data = f"{args.dataset_name} (config {args.dataset_config}, split {args.dataset_split}, column {args.image_column})"
    return render_model_card("vision", description, [data], args.model_name_or_path, hyperparameters)


def write_folder_files(folder: Path, card: str, exposure: dict, collapse: dict) -> None:
    """What every folder of a run carries beside its weights: ``exposure.json``, ``collapse.json`` and the card
    with their summaries."""
    write_exposure(folder, exposure)
    (folder / COLLAPSE_FILE).write_text(json.dumps(collapse, indent=2) + "\n")
    sections = (card.rstrip("\n"), exposure_card_section(exposure).rstrip("\n"), collapse_card_section(collapse))
    (folder / "README.md").write_text("\n\n".join(sections))


def write_checkpoint_files(folder: Path, card: str, exposure: dict, collapse: dict, tally: ExposureTally) -> None:
    """A checkpoint's :func:`write_folder_files`, and the summed tally that a resumed run continues."""
    write_folder_files(folder, card, exposure, collapse)
    (folder / TALLY_FILE).write_text(json.dumps({"sums": tally.sums, "age_range": tally.age_range}))


def export_teacher(
    model: DinoPretrainingModel, folder: Path, write_files: Callable[[Path], None], carry: Path | None = None
) -> None:
    """Save the teacher backbone and ``write_files(folder)`` as the folder ``folder`` (replaced whole, once
    complete): what a model repository holds (``config.json``, ``model.safetensors``, ``README.md``, the run's
    ``exposure.json`` and ``collapse.json``) and nothing else, plus ``carry`` (the age checkpoints) moved into it."""
    with staged_folder(folder, overwrite=True) as staging:
        model.teacher["backbone"].save_pretrained(staging)
        write_files(staging)
        if carry is not None and carry.is_dir():
            carry.rename(staging / carry.name)


def push_to_hub(args: PretrainVisionArguments, output_dir: Path) -> None:
    """Upload the exported model folder to ``args.hub_model_id``."""
    repo_id = create_repo(args.hub_model_id or output_dir.name, private=args.hub_private_repo, exist_ok=True).repo_id
    upload_folder(repo_id=repo_id, folder_path=output_dir)


def flat_hyperparameters(*configs) -> dict:
    """Every field of the argument dataclasses as a scalar (lists and mappings as JSON): what trackers accept."""
    flat = {}
    for config in configs:
        for key, value in asdict(config).items():
            flat[key] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return flat


def training_folders(args: PretrainVisionArguments, *_) -> tuple[Path, Path]:
    """The exported folder and the checkpoints folder a run writes (one run at a time: both are locked)."""
    output_dir = Path(args.output_dir)
    return output_dir, Path(args.checkpoints_dir or f"{output_dir}-checkpoints")


def collapse_monitor(args: PretrainVisionArguments, dino_config: DinoConfig) -> CollapseMonitor:
    """The run's collapse monitor: judged after the LR warm-up unless ``collapse_watch_from_step`` says otherwise
    (a fresh ViT starts near uniform targets)."""
    watch_from = args.warmup_steps if args.collapse_watch_from_step is None else args.collapse_watch_from_step
    return CollapseMonitor(dino_config.num_prototypes, args.collapse_margin, args.collapse_patience, watch_from)


@locks_outputs(training_folders)
def train(args: PretrainVisionArguments, dino_config: DinoConfig, crop_config: MultiCropConfig) -> Path:
    """Train (or resume) the run and export the teacher; returns the exported folder (``args.output_dir``)."""
    trackers = [] if args.report_to == "none" else args.report_to.split(",")
    output_dir, checkpoints_dir = training_folders(args)
    if any(output_dir.glob("checkpoint-*")):
        raise FileExistsError(
            f"{output_dir} holds checkpoint-* folders of an earlier version of this recipe; checkpoints now live in "
            f"{checkpoints_dir}: resume from one with --resume_from_checkpoint and a new output_dir"
        )
    project = ProjectConfiguration(
        project_dir=str(checkpoints_dir), automatic_checkpoint_naming=True, total_limit=args.save_total_limit
    )
    accelerator = Accelerator(
        mixed_precision="bf16" if args.bf16 else None, log_with=trackers or None, project_config=project
    )
    if dino_config.koleo_loss_weight > 0 and args.per_device_train_batch_size < 2:
        raise ValueError("KoLeo needs per_device_train_batch_size >= 2 (a nearest neighbour per image)")
    set_seed(args.seed)
    curriculum = args.parsed_curriculum()
    monitor = collapse_monitor(args, dino_config)

    with accelerator.main_process_first():  # one process prepares the dataset cache, the others reuse it
        images, corpus = load_image_dataset(
            args.dataset_name, args.dataset_config, args.dataset_split, args.image_column, curriculum, args.seed
        )
    pending_ages = args.age_checkpoints(
        curriculum, [age for age in images[EXPOSURE_COLUMNS["age_months"]] if age is not None]
    )
    backbone = build_backbone(args)
    if args.gradient_checkpointing:
        backbone.gradient_checkpointing_enable()
    if crop_config.global_crops_size != backbone.config.image_size:
        accelerator.print(
            f"note: global crops of {crop_config.global_crops_size} px train a ViT built for "
            f"{backbone.config.image_size} px"
        )
    model = DinoPretrainingModel(backbone, dino_config)
    optimizer = build_optimizer(model, args)
    model, optimizer = accelerator.prepare(model, optimizer)
    start_step, resumed_from = resume(accelerator, args, checkpoints_dir)

    # What this process feeds (summed over processes at each save); a resumed run continues the saved sum on the
    # main process, and the monitor its saved windows on every process.
    tally = ExposureTally()
    if resumed_from is not None:
        if not (resumed_from / TALLY_FILE).is_file():
            raise FileNotFoundError(
                f"{resumed_from} has no {TALLY_FILE} (a checkpoint of an earlier version of this recipe): what the "
                "run has seen cannot be continued from it; start a new run with a new checkpoints_dir"
            )
        saved = json.loads((resumed_from / TALLY_FILE).read_text())
        if accelerator.is_main_process:
            tally = ExposureTally(saved["sums"], saved["age_range"])
        pending_ages = [age for age in pending_ages if age > (saved["age_range"] or [None, -math.inf])[1]]
        monitor = CollapseMonitor.from_state_dict(json.loads((resumed_from / STATE_FILE).read_text())["collapse"])
    elif accelerator.is_main_process and (output_dir / AGE_CHECKPOINTS).is_dir():
        accelerator.print(f"removing {output_dir / AGE_CHECKPOINTS}: age checkpoints of an earlier run")
        shutil.rmtree(output_dir / AGE_CHECKPOINTS)
    lineage = parent_stages(args.model_name_or_path)

    def exposure(total: ExposureTally, step: int, reached: float | None = None) -> dict:
        epochs = total.sums["records"] / len(images)
        entry = stage_entry("vision", curriculum, total, epochs, step, [corpus])
        return exposure_document([*lineage, entry], reached)

    augmentation = MultiCropAugmentation(crop_config, backbone.config.patch_size)
    sampler = StreamBatchSampler(
        args.per_device_train_batch_size, start_step, accelerator.num_processes, accelerator.process_index
    )
    loader = DataLoader(
        MultiCropDataset(images, args.image_column, augmentation, args.seed, shuffle=not curriculum.ordered),
        batch_sampler=sampler,
        collate_fn=collate_crops,
        num_workers=args.dataloader_num_workers,
        pin_memory=accelerator.device.type == "cuda",
        generator=torch.Generator(),  # keeps the loader off the global RNG that checkpoints restore
    )
    hyperparameters = flat_hyperparameters(args, dino_config, crop_config)
    accelerator.init_trackers("stage0_vision", config=hyperparameters)

    def card(metrics: dict) -> str:
        return model_card(args, hyperparameters, len(images), accelerator.num_processes, metrics)

    model.train()
    progress = tqdm(
        total=args.max_steps, initial=start_step, desc="stage 0 vision", disable=not accelerator.is_local_main_process
    )
    window: dict[str, list[torch.Tensor]] = defaultdict(list)
    metrics: dict[str, float] = {}
    window_start, global_batch = time.perf_counter(), args.per_device_train_batch_size * accelerator.num_processes
    written_ages = []
    for step, batch in zip(range(start_step, args.max_steps), loader, strict=False):  # the loader is endless
        tally.add_records(batch.pop("exposure_records"))
        batch = {key: value.to(accelerator.device, non_blocking=True) for key, value in batch.items()}
        output, values = training_step(accelerator, model, optimizer, batch, step, args)
        for key in ("loss", "dino_loss", "ibot_loss", "koleo_loss", "teacher_entropy", "teacher_marginal_entropy"):
            window[key].append(output[key].detach().float())
        done = step + 1
        if done % args.logging_steps == 0 or done == args.max_steps:
            window_steps = len(window["loss"])
            averages = {key: accelerator.reduce(torch.stack(v).mean(), "mean").item() for key, v in window.items()}
            images_per_second = window_steps * global_batch / (time.perf_counter() - window_start)
            metrics = {**averages, "log_k": monitor.log_k, **values, "images_per_second": images_per_second}
            window.clear()
            window_start = time.perf_counter()
            accelerator.log(metrics, step=done)
            if accelerator.is_main_process:
                progress.write(json.dumps({"step": done, **{k: round(v, 6) for k, v in metrics.items()}}))
            # Every process holds the same averages, so every process reaches the same verdict (and stops with it).
            verdict = monitor.update(
                done, averages["teacher_entropy"], averages["teacher_marginal_entropy"], window_steps * global_batch
            )
            if verdict is not None and args.stop_on_collapse:
                raise CollapseError(
                    f"{verdict.describe()}; stopped (stop_on_collapse), no final model written to {output_dir} "
                    f"(checkpoints before it: {checkpoints_dir})"
                )
            if verdict is not None and accelerator.is_main_process:
                progress.write(
                    f"warning: {verdict.describe()}; recorded in {COLLAPSE_FILE} and the card", file=sys.stderr
                )
        progress.update(1)
        if pending_ages:
            total = total_over_processes(accelerator, tally)
            reached = total.age_range[1] if total.age_range else -math.inf
            while pending_ages and pending_ages[0] <= reached:
                age = pending_ages.pop(0)
                folder = output_dir / AGE_CHECKPOINTS / age_folder_name(age)
                if accelerator.is_main_process:
                    files = partial(
                        write_folder_files,
                        card=card(metrics),
                        exposure=exposure(total, done, reached=age),
                        collapse=monitor.record(),
                    )
                    export_teacher(accelerator.unwrap_model(model), folder, files)
                    progress.write(f"age checkpoint {folder} (the stream passed {age:g} months at step {done})")
                written_ages.append(folder.name)
        if done % args.save_steps == 0 or done == args.max_steps:
            total = total_over_processes(accelerator, tally)
            files = partial(
                write_checkpoint_files,
                card=card(metrics),
                exposure=exposure(total, done),
                collapse=monitor.record(),
                tally=total,
            )
            save_checkpoint(accelerator, done, files, {"collapse": monitor.state_dict()})
    progress.close()

    final = total_over_processes(accelerator, tally)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        document = exposure(final, max(start_step, args.max_steps))
        files = partial(write_folder_files, card=card(metrics), exposure=document, collapse=monitor.record())
        export_teacher(accelerator.unwrap_model(model), output_dir, files, carry=output_dir / AGE_CHECKPOINTS)
        print(f"exported the teacher vision tower to {output_dir}")
        if written_ages:
            print(f"age checkpoints written: {', '.join(written_ages)}")
        if pending_ages:
            never = ", ".join(f"{age:g}" for age in pending_ages)
            print(f"warning: age checkpoints not written, the stream never reached {never} months", file=sys.stderr)
        if args.push_to_hub:
            push_to_hub(args, output_dir)
    accelerator.end_training()
    return output_dir


def main(argv: list[str] | None = None) -> int:
    """``babyvlm train vision`` and ``recipes/pretrain_vision.py``: parse, train, exit 0; a failure is one line and
    exit 1."""
    parser = argument_parser()
    try:
        train(*parser.parse_args_and_config(argv))
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError, CollapseError) as error:
        return fail(parser, error)
    return 0
