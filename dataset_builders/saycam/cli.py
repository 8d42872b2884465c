"""``babyvlm data saycam``: build the SAYCam pretraining corpora from a local copy of the raw data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babyvlm.command_line import command_parser, fail

from ..hub import add_push_arguments, check_push_arguments, push_from_args, saycam_publication
from .build import BuildInputs, build_saycam
from .config import BuildConfig
from .export import export_llava
from .layout import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, discover_media
from .records import CHAT_FORMATS, CORPORA
from .splits import HELD_OUT_SPLIT, parse_splits
from .tables import DEFAULT_ENCODING

DEFAULTS = BuildConfig()


def _pairs(spec: str, flag: str) -> dict[str, str]:
    pairs = {}
    for part in filter(None, spec.split(",")):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"{flag}: expected key=value[,key=value...], got {part!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _weights(spec: str) -> dict[str, float]:
    weights = dict.fromkeys(CHAT_FORMATS, 1.0)
    for name, value in _pairs(spec, "--mix-weights").items():
        if name not in weights:
            raise argparse.ArgumentTypeError(
                f"--mix-weights: unknown format {name!r}; formats are {', '.join(CHAT_FORMATS)}"
            )
        try:
            weights[name] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--mix-weights: weight of {name} must be a number, got {value!r}"
            ) from None
    return weights


def _splits(spec: str) -> dict[str, float]:
    try:
        return parse_splits(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "data saycam",
        "Build the SAYCam pretraining corpora (utterances, frames, image_utterance, video_utterance, "
        "interleaved, mix) as load_dataset-ready parquet folders with dataset cards and a build report.",
        [
            "babyvlm data saycam --videos toyworld/videos --transcripts toyworld/transcripts.csv \\",
            "    --children toyworld/children.csv --output corpora --num-proc 2",
        ],
    )
    io = p.add_argument_group("inputs and output")
    io.add_argument(
        "--videos",
        type=Path,
        required=True,
        help="folder of {child}_{YYYYMMDD}_{HHMM}_{segment}.{mp4,mov,avi} files (searched recursively)",
    )
    io.add_argument(
        "--transcripts",
        type=Path,
        help="transcript table (.csv, .jsonl, .parquet); with --transcribe, where to write it",
    )
    io.add_argument(
        "--transcribe",
        type=Path,
        metavar="WHISPER_DIR",
        help="transcribe the recordings' audio with this local Whisper checkpoint",
    )
    io.add_argument(
        "--children", type=Path, help="table with columns child, birth_date (YYYY-MM-DD) for ages in months"
    )
    io.add_argument(
        "--columns",
        type=lambda s: _pairs(s, "--columns"),
        default={},
        help="transcript column names, e.g. start_ms=begin,text=words",
    )
    io.add_argument(
        "--encoding",
        default=DEFAULT_ENCODING,
        help="text encoding of CSV / JSON-lines tables, e.g. latin-1 (default: utf-8); a row with bytes invalid in it "
        "is skipped and reported with its file and line",
    )
    io.add_argument(
        "--corpora", default=",".join(CORPORA), help=f"comma-separated subset of {','.join(CORPORA)} (default: all)"
    )
    io.add_argument(
        "--output", type=Path, required=True, help="output folder: one dataset folder per corpus + build_report.json"
    )
    io.add_argument(
        "--export-llava",
        type=Path,
        metavar="DIR",
        help="also export the chat corpora to the original LLaVA JSON layout",
    )

    rules = p.add_argument_group("corpus rules")
    rules.add_argument(
        "--clip-model", help="local CLIPModel folder: filter image-utterance pairs, choose interleaved frames"
    )
    rules.add_argument("--xclip-model", help="local XCLIPModel folder: filter video-utterance clips")
    rules.add_argument("--min-confidence", type=float, default=DEFAULTS.min_confidence)
    rules.add_argument("--min-clip-score", type=float, default=DEFAULTS.min_clip_score)
    rules.add_argument("--min-xclip-score", type=float, default=DEFAULTS.min_xclip_score)
    rules.add_argument("--frames-fps", type=float, default=DEFAULTS.frames_fps, help="frames corpus sampling rate")
    rules.add_argument("--pair-fps", type=float, default=DEFAULTS.pair_fps, help="frame rate inside utterances")
    rules.add_argument("--clip-frames", type=int, default=DEFAULTS.clip_frames, help="frames per video clip")
    rules.add_argument("--min-clip-seconds", type=float, default=DEFAULTS.min_clip_seconds)
    rules.add_argument("--max-clip-seconds", type=float, default=DEFAULTS.max_clip_seconds)
    rules.add_argument("--min-turns", type=int, default=DEFAULTS.min_turns)
    rules.add_argument("--max-turns", type=int, default=DEFAULTS.max_turns)
    rules.add_argument("--turn-stride", type=int, default=DEFAULTS.turn_stride)
    rules.add_argument(
        "--mix-weights",
        type=_weights,
        default=DEFAULTS.mix_weights,
        help="e.g. image_utterance=1,video_utterance=0.5,interleaved=2",
    )
    rules.add_argument(
        "--splits",
        type=_splits,
        default=DEFAULTS.splits,
        help="split fractions by recording, e.g. train=0.9,validation=0.1",
    )
    rules.add_argument(
        "--hold-out-child",
        metavar="CHILD",
        help=f"leave-one-child-out: every recording of this child goes to the {HELD_OUT_SPLIT!r} split (and no other "
        "child's); --splits then divides the other children's recordings",
    )
    rules.add_argument("--jpeg-quality", type=int, default=DEFAULTS.jpeg_quality)

    run = p.add_argument_group("execution")
    run.add_argument("--num-proc", type=int, default=1, help="worker processes (one recording at a time each)")
    run.add_argument("--shard", type=int, default=0, help="this job's shard index (cluster array jobs)")
    run.add_argument("--num-shards", type=int, default=1)
    run.add_argument("--device", default="cpu", help="torch device for CLIP / X-CLIP / Whisper")
    run.add_argument("--overwrite", action="store_true", help="delete the output folder first instead of resuming")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_push_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.transcripts is None:
        p.error("--transcripts is required (with --transcribe it names the table to write)")
    check_push_arguments(p, args)
    try:
        config = BuildConfig(
            corpora=tuple(name.strip() for name in args.corpora.split(",") if name.strip()),
            frames_fps=args.frames_fps,
            pair_fps=args.pair_fps,
            min_confidence=args.min_confidence,
            clip_model=args.clip_model,
            min_clip_score=args.min_clip_score,
            xclip_model=args.xclip_model,
            min_xclip_score=args.min_xclip_score,
            clip_frames=args.clip_frames,
            min_clip_seconds=args.min_clip_seconds,
            max_clip_seconds=args.max_clip_seconds,
            min_turns=args.min_turns,
            max_turns=args.max_turns,
            turn_stride=args.turn_stride,
            mix_weights=args.mix_weights,
            splits=args.splits,
            hold_out_child=args.hold_out_child,
            jpeg_quality=args.jpeg_quality,
        )
        if args.transcribe:
            _transcribe(args)
        report = build_saycam(
            BuildInputs(args.videos, args.transcripts, args.children, args.columns, args.encoding),
            args.output,
            config,
            num_proc=args.num_proc,
            shard=args.shard,
            num_shards=args.num_shards,
            device=args.device,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        return fail(p, error)

    for name, tally in report["corpora"].items():
        print(f"{name:16s} {tally['records']:>9d} records  {tally['records_by_split']}")
    failed = sum(1 for failure in report["failures"] if failure["reason"] != "build_error")
    print(f"{len(report['failures'])} failures ({failed} bad inputs) listed in {args.output / 'build_report.json'}")
    errors = [f for f in report["failures"] if f["reason"] == "build_error"]
    if errors:
        return fail(p, f"{len(errors)} recordings hit an unexpected error and stay pending; re-run to retry")
    if not report["complete"]:
        print(f"{len(report['pending_recordings'])} recordings pending in other shards")
        if args.push_to_hub:
            sys.exit(f"error: not pushed to {args.push_to_hub}: the build is incomplete; push once it is complete")
        return
    if args.export_llava:
        for name in (c for c in config.corpora if c in (*CHAT_FORMATS, "mix")):
            counts = export_llava(args.output / name, args.export_llava / name)
            print(f"exported {name} to {args.export_llava / name}: {counts}")
    return push_from_args(args, args.output, saycam_publication)


def _transcribe(args: argparse.Namespace) -> None:
    # librosa (the optional `audio` extra) is only needed, and imported, for --transcribe.
    from .transcribe import WhisperTranscriber, transcribe_recordings

    if args.transcripts.exists():
        print(f"reusing the transcripts already written to {args.transcripts}")
        return
    media, rejected = discover_media(args.videos, VIDEO_EXTENSIONS + AUDIO_EXTENSIONS)
    failures = transcribe_recordings(
        media, WhisperTranscriber(args.transcribe, args.device), args.transcripts, progress=not args.no_progress
    )
    for failure in rejected + failures:
        print(f"not transcribed: {failure.item} ({failure.reason}: {failure.detail})", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
