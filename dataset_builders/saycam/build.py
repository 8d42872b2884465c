"""Build the SAYCam corpora: plan recordings, process them (in parallel, sharded, resumably), then report.

Output folder::

    {corpus}/README.md                        dataset card (configs for load_dataset)
    {corpus}/data/{split}/{recording}.parquet one file per recording and corpus
    build_report.json                         every recording and utterance accounted for
    .progress/config.json                     settings the folder is being built with
    .progress/recordings/{recording}.json     written last for a recording: it is done

A recording is processed as a unit: its video is decoded once for every corpus, its files are
written atomically, and its progress file marks it done. A re-run (or another shard) skips done
recordings and rewrites any partial ones under the same names, so nothing is ever duplicated.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from babyvlm.locking import check_output_location

from .ages import age_in_months, read_children
from .cards import write_card
from .config import BuildConfig
from .corpora import RecordingJob, Scorers, build_recording_corpora, requested_times
from .filters import ClipScorer, XClipScorer, check_local_checkpoint
from .frames import ExtractedFrames, VideoOpenError, extract_frames
from .layout import discover_media, parse_recording_name
from .records import CHAT_FORMATS, SPECS
from .report import Failure, Tally
from .splits import in_shard, split_of_recording
from .storage import write_json, write_records
from .tables import DEFAULT_ENCODING
from .transcripts import Transcript, read_transcripts

PROGRESS = ".progress"
REPORT = "build_report.json"
UTTERANCE_CORPORA = ("utterances", *CHAT_FORMATS)


@dataclass(frozen=True)
class BuildInputs:
    videos: Path
    transcripts: Path | None = None
    children: Path | None = None
    columns: dict[str, str] | None = None
    """Transcript field -> column name, for tables that name columns differently."""
    encoding: str = DEFAULT_ENCODING
    """Text encoding of the CSV / JSON-lines tables (rows with invalid bytes are skipped, naming file and line)."""


@dataclass(frozen=True)
class Plan:
    jobs: list[RecordingJob]
    transcript: Transcript
    video_failures: list[Failure]
    """Video files rejected before processing: bad or duplicate recording names."""


def plan_build(inputs: BuildInputs, config: BuildConfig) -> Plan:
    """Read the inputs and turn them into one job per recording (every video and every transcribed recording)."""
    videos, video_failures = discover_media(inputs.videos)
    transcript = (
        read_transcripts(inputs.transcripts, inputs.columns, inputs.encoding)
        if inputs.transcripts
        else Transcript([], [], 0, False)
    )
    births = read_children(inputs.children, inputs.encoding) if inputs.children else {}

    by_recording: dict[str, list] = defaultdict(list)
    for utterance in transcript.utterances:
        by_recording[utterance.recording].append(utterance)
    jobs = []
    for name in sorted(set(videos) | set(by_recording)):
        parsed = parse_recording_name(name)
        age = age_in_months(births[parsed.child], parsed.date) if parsed.child in births else None
        if age is not None and age < 0:
            raise ValueError(
                f"recording {name} is dated before child {parsed.child}'s birth date {births[parsed.child]}: "
                f"check {inputs.children}"
            )
        utterances = tuple(sorted(by_recording.get(name, ()), key=lambda u: (u.start_ms, u.end_ms)))
        split = split_of_recording(name, parsed.child, config.splits, config.hold_out_child)
        jobs.append(RecordingJob(name, parsed.child, age, split, videos.get(name), utterances))
    recorded = sorted({job.child for job in jobs})
    if config.hold_out_child is not None and config.hold_out_child not in recorded:
        raise ValueError(
            f"child {config.hold_out_child!r} to hold out has no recording in {inputs.videos} or the transcripts; "
            f"the children recorded are {', '.join(recorded) or 'none'}"
        )
    return Plan(jobs, transcript, video_failures)


def build_saycam(
    inputs: BuildInputs,
    output: str | Path,
    config: BuildConfig | None = None,
    *,
    num_proc: int = 1,
    shard: int = 0,
    num_shards: int = 1,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Build (or resume building) the configured corpora into ``output`` and return the build report.

    ``config`` defaults to :class:`BuildConfig` (every corpus, the paper's thresholds).

    With ``num_shards > 1`` only this shard's recordings are processed; shards may share
    ``output`` and the last one to finish writes the complete report and cards.
    """
    config = config or BuildConfig()
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in [0, {num_shards})")
    for checkpoint, kind in ((config.clip_model, "CLIP"), (config.xclip_model, "X-CLIP")):
        if checkpoint:
            check_local_checkpoint(checkpoint, kind)  # fail before any work, not in every worker
    plan = plan_build(inputs, config)  # bad inputs fail here, before the output is touched
    output = Path(output)
    check_output_location(output)  # (the shards of a build share the folder: it takes no lock)
    if overwrite and output.exists():
        shutil.rmtree(output)
    _claim_output(output, config)

    todo = [
        job
        for job in plan.jobs
        if in_shard(job.name, shard, num_shards) and not _progress_path(output, job.name).exists()
    ]
    errors = _run(todo, output, config, num_proc, device, progress)
    report = assemble_report(plan, output, config, inputs, errors)
    # A finished build that put nothing in a corpus trained nothing: a failure, not a "complete" build.
    report["empty_corpora"] = (
        [n for n in config.corpora if not report["corpora"][n]["records"]] if report["complete"] else []
    )
    for name in config.corpora:
        write_card(output / name, SPECS[name], report, config)
    write_json(output / REPORT, report)
    if report["empty_corpora"]:
        raise EmptyCorpusError(
            f"{output}: no record in {', '.join(report['empty_corpora'])} from {report['utterances']['valid']} valid "
            f"utterances and {len(plan.jobs)} recordings ({_lost_to(report)}); details in {output / REPORT}"
        )
    return report


class EmptyCorpusError(ValueError):
    """A finished build wrote no record into a corpus."""


def _lost_to(report: dict) -> str:
    """Where the empty corpora's inputs went: their most frequent filter and failure reasons."""
    lost = Counter()
    for name in report["empty_corpora"]:
        lost.update(report["corpora"][name]["filtered"])
        lost.update(report["corpora"][name]["failed"])
    return ", ".join(f"{reason}: {count}" for reason, count in lost.most_common(3)) or "no input reached them"


def _claim_output(output: Path, config: BuildConfig) -> None:
    """Record the settings of this build, or refuse to resume a folder built with other settings."""
    marker = output / PROGRESS / "config.json"
    if marker.exists():
        previous = json.loads(marker.read_text())
        if previous["fingerprint"] != config.fingerprint():
            raise ValueError(
                f"{output} is being built with other settings ({previous['config']}); "
                "use a new output folder or overwrite=True (--overwrite)"
            )
        return
    # A bare progress folder is a shard starting at the same moment, not a foreign folder.
    if output.exists() and any(path.name != PROGRESS for path in output.iterdir()):
        raise FileExistsError(
            f"{output} is not empty and holds no build; use a new output folder or overwrite=True (--overwrite)"
        )
    write_json(marker, {"fingerprint": config.fingerprint(), "config": config.to_dict()})


def _progress_path(output: Path, recording: str) -> Path:
    return output / PROGRESS / "recordings" / f"{recording}.json"


def _run(
    jobs: list[RecordingJob], output: Path, config: BuildConfig, num_proc: int, device: str, progress: bool
) -> list[Failure]:
    """Process ``jobs``; unexpected errors are returned (the recording stays pending and is retried next run)."""
    errors = []
    with tqdm(total=len(jobs), desc="recordings", unit="rec", disable=not progress) as bar:
        for error in _results(jobs, output, config, num_proc, device):
            if error:
                errors.append(error)
            bar.update()
    return errors


def _results(jobs: list[RecordingJob], output: Path, config: BuildConfig, num_proc: int, device: str):
    threads = max(1, (os.cpu_count() or 1) // num_proc)
    if num_proc <= 1:
        _init_worker(output, config, device, threads)
        yield from map(_run_job, jobs)
        return
    # fork: workers inherit the already-imported libraries instead of importing them again; the
    # parent has not started torch threads or CUDA at this point.
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(
        num_proc, mp_context=context, initializer=_init_worker, initargs=(output, config, device, threads)
    ) as pool:
        for future in as_completed([pool.submit(_run_job, job) for job in jobs]):
            yield future.result()


_worker: dict = {}


def _init_worker(output: Path, config: BuildConfig, device: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    scorers = Scorers(
        clip=ClipScorer(config.clip_model, device) if config.clip_model else None,
        xclip=XClipScorer(config.xclip_model, device) if config.xclip_model else None,
    )
    _worker.update(output=output, config=config, scorers=scorers)


def _run_job(job: RecordingJob) -> Failure | None:
    try:
        process_recording(job, **_worker)
    except Exception as error:  # noqa: BLE001 - one recording must never stop the build; it is reported and retried
        return Failure(job.name, "build_error", f"{type(error).__name__}: {error}")
    return None


def process_recording(job: RecordingJob, output: Path, config: BuildConfig, scorers: Scorers) -> dict:
    """Build every corpus of one recording, write its files, then its progress record (returned)."""
    every_ms = 1000 / config.frames_fps if "frames" in config.corpora else None
    times = requested_times(job, config)
    frames, problem, failures = ExtractedFrames(), None, []
    if job.video is None:
        frames, problem = None, "missing_video"
        failures.append(Failure(job.name, problem, f"{len(job.utterances)} transcript rows, no video file"))
    elif times or every_ms:  # otherwise no corpus needs a frame of this video: leave it unopened
        try:
            frames = extract_frames(job.video, times, every_ms, config.jpeg_quality)
        except VideoOpenError as error:
            frames, problem = None, "corrupt_video"
            failures.append(Failure(str(job.video), problem, str(error)))
        else:
            if frames.error:
                failures.append(Failure(str(job.video), "truncated_video", frames.error))

    built = build_recording_corpora(job, frames, problem, config, scorers)
    for name in config.corpora:
        path = output / name / "data" / job.split / f"{job.name}.parquet"
        if built.records.get(name):
            write_records(path, built.records[name], SPECS[name].features)
        else:
            path.unlink(missing_ok=True)  # left by an interrupted attempt with other inputs
    status = problem or ("truncated_video" if frames.error else "built")
    record = {
        "recording": job.name,
        "split": job.split,
        "status": status,
        "has_age": job.age_months is not None,
        "tallies": {name: tally.to_dict() for name, tally in built.tallies.items()},
        "failures": [f.to_dict() for f in failures + built.failures],
    }
    write_json(_progress_path(output, job.name), record)
    return record


def assemble_report(plan: Plan, output: Path, config: BuildConfig, inputs: BuildInputs, errors: list[Failure]) -> dict:
    """Aggregate the progress records of all planned recordings with the rejected inputs."""
    tallies = {name: Tally() for name in config.corpora}
    records_by_split: dict[str, Counter] = {name: Counter() for name in config.corpora}
    records_by_child: dict[str, dict[str, Counter]] = {name: defaultdict(Counter) for name in config.corpora}
    # Invalid transcript rows never reach a recording: they fail in every utterance-based corpus.
    for name in set(UTTERANCE_CORPORA) & set(config.corpora):
        tallies[name].failed.update(Counter(f.reason for f in plan.transcript.failures))

    statuses = Counter(f.reason for f in plan.video_failures)
    splits, children, without_age, pending = Counter(), Counter(), 0, []
    failures = [f.to_dict() for f in plan.video_failures + plan.transcript.failures + errors]
    for job in plan.jobs:
        path = _progress_path(output, job.name)
        if not path.exists():
            pending.append(job.name)
            continue
        record = json.loads(path.read_text())
        statuses[record["status"]] += 1
        splits[record["split"]] += 1
        children[job.child] += 1
        without_age += not record["has_age"]
        failures.extend(record["failures"])
        for name, tally in record["tallies"].items():
            if name in tallies:
                tallies[name].add(Tally.from_dict(tally))
                records_by_split[name][record["split"]] += tally["records"]
                records_by_child[name][job.child][record["split"]] += tally["records"]

    return {
        "complete": not pending,
        "pending_recordings": pending,
        "inputs": {
            "videos": str(inputs.videos),
            "transcripts": str(inputs.transcripts) if inputs.transcripts else None,
            "children": str(inputs.children) if inputs.children else None,
        },
        "config": config.to_dict(),
        "hold_out_child": config.hold_out_child,
        "recordings": {
            "total": len(plan.jobs) + len(plan.video_failures),
            "by_status": dict(statuses),
            "by_split": dict(splits),
            "by_child": dict(sorted(children.items())),
            "without_age": without_age,
        },
        "utterances": {
            "rows": plan.transcript.rows,
            "valid": len(plan.transcript.utterances),
            "confidence_available": plan.transcript.has_confidence,
        },
        "corpora": {
            name: {
                **tallies[name].to_dict(),
                "records_by_split": dict(records_by_split[name]),
                "records_by_child": {
                    child: dict(by_split) for child, by_split in sorted(records_by_child[name].items())
                },
            }
            for name in config.corpora
        },
        "failures": failures,
    }
