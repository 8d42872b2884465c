"""Generate DevCV items from an annotated corpus into a dataset folder that loads like a built one.

Output layout (the same as ``babyvlm data devcv``'s)::

    <output>/README.md                 YAML configs (``all`` = default, one per task) + card + shortcut audit
    <output>/generation_report.json    settings, splits, and per task/split what was written or skipped
    <output>/data/<task>/<split>-00000-of-00001.parquet

The folder is assembled in a hidden sibling folder and renamed into place only when complete.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

from babyvlm.evaluate_metrics.devcv.tasks import TASKS, DevCVTask

from babyvlm.staging import staged_folder

from ...annotations import FRAMES_FILE, load_annotations
from ..card import first_prompt
from ..folder import fingerprint_shards, write_card_and_audit
from ..schema import DEVCV_FEATURES
from ..shards import ParquetShardWriter
from .card import render_generated_card
from .config import GeneratorConfig
from .corpus import Corpus
from .counting import CompareRealGenerator, CompareSyntheticGenerator, CountGenerator, SubitizeGenerator
from .frames import FrameStore
from .items import TaskContext, TaskGenerator
from .objects import LookingWhileListeningGenerator, MemoryGenerator, PictureVocabularyGenerator
from .report import GenerationReport, Skip
from .spatial import LeftRightGenerator, LocalizeGenerator, SpatialDetailsGenerator
from .vdr import VDRBinaryGenerator, VDROpenGenerator

REPORT_FILE = "generation_report.json"
ANNOTATIONS_FOLDER = "annotations"
TOYWORLD_MANIFEST = "toyworld.json"

GENERATORS: dict[str, type[TaskGenerator]] = {
    "picture_vocabulary": PictureVocabularyGenerator,
    "looking_while_listening": LookingWhileListeningGenerator,
    "localize": LocalizeGenerator,
    "leftright": LeftRightGenerator,
    "spatialdetails": SpatialDetailsGenerator,
    "vdr_binary": VDRBinaryGenerator,
    "vdr_open": VDROpenGenerator,
    "compare_real": CompareRealGenerator,
    "compare_synthetic": CompareSyntheticGenerator,
    "count": CountGenerator,
    "memory": MemoryGenerator,
    "subitize": SubitizeGenerator,
}
assert set(GENERATORS) == set(TASKS), "every DevCV task needs a generator"


class GenerationError(RuntimeError):
    """Generation that produced no item; ``report`` says what was tried and skipped."""

    def __init__(self, message: str, report: GenerationReport):
        super().__init__(message)
        self.report = report


def locate_annotations(path: str | Path) -> tuple[Path, Path]:
    """``(annotations folder, corpus root)`` for a folder holding the annotation files or a corpus root
    with them in ``annotations/``; video paths in the annotations are relative to the corpus root."""
    path = Path(path)
    if (path / FRAMES_FILE).is_file():
        return path, path.parent
    if (path / ANNOTATIONS_FOLDER / FRAMES_FILE).is_file():
        return path / ANNOTATIONS_FOLDER, path
    raise FileNotFoundError(
        f"no annotations at {path}: expected {path / FRAMES_FILE} or {path / ANNOTATIONS_FOLDER / FRAMES_FILE}"
    )


def _wanted_frames(corpus: Corpus) -> dict[str, set[int]]:
    """Every frame a generator may use: the scenes and the frames of the exit clips."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for recording, scenes in corpus.scenes_by_recording.items():
        wanted[recording].update(scene.frame.frame_index for scene in scenes)
    for event in corpus.world.exits:
        wanted[event.recording].update(frame.frame_index for frame in corpus.clip_frames(event))
    return wanted


def open_corpus(
    annotations_dir: str | Path, video_root: str | Path, config: GeneratorConfig
) -> tuple[Corpus, FrameStore]:
    """Load and split the annotations, and set up the frame store for the frames generators may use."""
    world = load_annotations(annotations_dir)
    if config.children is not None:
        world = world.of_children(config.children)
    corpus = Corpus(world, config.split_fractions, config.seed)
    return corpus, FrameStore(video_root, world.recordings, _wanted_frames(corpus))


def _generate_task_split(
    staging: Path, task: DevCVTask, split: str, corpus: Corpus, frames: FrameStore, config: GeneratorConfig
):
    """Write up to the requested number of items of one task and split; returns its summary and a prompt."""
    ctx = TaskContext(task, split, corpus, frames, config)
    generator = GENERATORS[task.name](ctx)
    candidates = generator.candidates()
    ctx.summary.candidates = len(candidates)
    writer = ParquetShardWriter(staging / "data" / task.name, split, DEVCV_FEATURES)
    prompt = None
    for candidate in candidates:
        if ctx.summary.written >= ctx.summary.requested:
            break
        try:
            row = generator.build(candidate)
        except Skip as skip:
            ctx.summary.skipped[skip.reason] += 1
            continue
        writer.write(row)
        ctx.summary.written += 1
        prompt = first_prompt(row) if prompt is None else prompt
    writer.close()
    return ctx.summary, prompt


def generate_devcv(
    annotations: str | Path,
    output_dir: str | Path,
    config: GeneratorConfig | None = None,
    *,
    video_root: str | Path | None = None,
    audit: bool = True,
    overwrite: bool = False,
) -> GenerationReport:
    """Generate the DevCV tasks of ``config`` from an annotated corpus into ``output_dir``.

    Args:
        annotations: the folder with ``recordings.jsonl``, ``frames.jsonl`` and ``exits.jsonl``, or a
            corpus root holding them in ``annotations/`` (the toy world's layout).
        config: what to generate (default: every task, 200 items per split, seed 0, SAYCam wording).
            A config without ``source_name`` gets ``toyworld`` for a toy world, else ``generated``.
        video_root: the folder the annotations' video paths are relative to (default: the corpus root).
        audit: run the shortcut audit and put its table in the card.
        overwrite: replace an existing ``output_dir``.

    Returns the :class:`~.report.GenerationReport` (also written as ``generation_report.json``).
    Raises :class:`GenerationError` when no item could be generated.
    """
    config = config or GeneratorConfig()
    annotations_dir, corpus_root = locate_annotations(annotations)
    if config.source_name is None:
        source = "toyworld" if (corpus_root / TOYWORLD_MANIFEST).is_file() else "generated"
        config = dataclasses.replace(config, source_name=source)
    corpus, frames = open_corpus(annotations_dir, video_root or corpus_root, config)
    world = corpus.world
    report = GenerationReport(
        settings=_settings(config),
        recordings={split: corpus.recordings(split) for split in dict.fromkeys(corpus.split_of.values())},
        frames={"frames": len(world.frames), **dataclasses.asdict(corpus.scene_tally)},
        exits=len(world.exits),
    )
    prompts: dict[str, str] = {}
    with staged_folder(output_dir, overwrite) as staging:
        for name in config.tasks:
            for split in config.splits_for(name):
                summary, prompt = _generate_task_split(staging, TASKS[name], split, corpus, frames, config)
                report.tasks.append(summary)
                if prompt is not None:
                    prompts.setdefault(name, prompt)
        report.video_errors = frames.errors()
        if not report.written:
            raise GenerationError("no item could be generated", report)
        report.fingerprint = fingerprint_shards(staging)
        results = write_card_and_audit(
            staging, lambda audit_results: render_generated_card(report, prompts, audit_results), audit
        )
        report.audit = None if results is None else [dataclasses.asdict(result) for result in results]
        (staging / REPORT_FILE).write_text(report.to_json(), encoding="utf-8")
    return report


def _settings(config: GeneratorConfig) -> dict:
    return {
        "seed": config.seed,
        "variant": config.variant,
        "construction": config.construction,
        "tasks": list(config.tasks),
        "train_tasks": list(config.train_tasks),
        "items_per_split": dict(config.items_per_split),
        "split_fractions": dict(config.split_fractions),
        "source_name": config.source_name,
        "cdi_words": len(config.cdi_words) if config.cdi_words is not None else None,
        "distractor_method": config.distractors.method,
        "children": list(config.children) if config.children is not None else None,
    }
