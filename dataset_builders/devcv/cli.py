"""``babyvlm data devcv``: package released DevCV Toolbox layouts as a 🤗 dataset folder (examples: ``EXAMPLES``,
the end of ``--help``)."""

from __future__ import annotations

import argparse
import sys

from babyvlm.command_line import command_parser, fail

from .builder import DevCVBuildError, build_devcv
from .layouts import DEFAULT_SPLIT, KNOWN_SOURCES
from .limits import DEFAULT_MAX_ITEM_BYTES, DEFAULT_MAX_TEXT_BYTES, InputLimits

EXAMPLES = [
    "babyvlm data devcv /data/devcv/saycam --output devcv",
    "babyvlm data devcv /data/devcv/ego4d --output devcv_ego4d --split test --strict",
    "babyvlm data devcv /data/devcv/babyview --output devcv_babyview --task who_has_more=compare_real",
    "python -c \"from datasets import load_dataset; print(load_dataset('devcv', 'memory', split='test'))\"",
]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("data devcv", "Package released DevCV Toolbox layouts as a 🤗 dataset folder.", EXAMPLES)
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="released folder (<split>/<task>/data.json or <task>/data.json) or flat <task>_<split>.json file(s)",
    )
    parser.add_argument("--output", required=True, help="dataset folder to write")
    parser.add_argument(
        "--split",
        default=DEFAULT_SPLIT,
        help=f"split name for layouts without split folders (default: {DEFAULT_SPLIT})",
    )
    parser.add_argument(
        "--source-name",
        help=f"source recorded in every row (default: inferred from the path: {', '.join(KNOWN_SOURCES)})",
    )
    parser.add_argument(
        "--image-root", help="folder the image paths of flat JSON files are relative to (default: the JSON's folder)"
    )
    parser.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="[NAME=]TASK",
        help="the task of the files whose folder, file name or SOURCE argument is NAME (repeatable); a bare TASK "
        "applies to every file. Without it the task comes from the folder/file name, else from the prompts",
    )
    parser.add_argument(
        "--strict", action="store_true", help="fail, writing nothing, if any item or file would be skipped"
    )
    parser.add_argument(
        "--image-paths", action="store_true", help="store absolute image path references instead of embedding the bytes"
    )
    parser.add_argument(
        "--num-proc", type=int, default=1, help="worker processes reading and decoding images (default: 1)"
    )
    parser.add_argument(
        "--no-audit", action="store_true", help="skip the shortcut audit (it is stored in the dataset card)"
    )
    parser.add_argument(
        "--max-text-bytes",
        type=int,
        default=DEFAULT_MAX_TEXT_BYTES,
        help=f"skip items with a longer text field, in UTF-8 bytes (default: {DEFAULT_MAX_TEXT_BYTES})",
    )
    parser.add_argument(
        "--max-item-bytes",
        type=int,
        default=DEFAULT_MAX_ITEM_BYTES,
        help=f"skip items larger than this as JSON, images excluded (default: {DEFAULT_MAX_ITEM_BYTES})",
    )
    parser.add_argument(
        "--allow-links-outside-root",
        action="store_true",
        help="follow image paths that are symbolic links to files outside the data root (default: skip the item)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; returns 1 when the build fails (strict skip, nothing written)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        report = build_devcv(
            args.sources,
            args.output,
            split=args.split,
            source_name=args.source_name,
            image_root=args.image_root,
            embed_images=not args.image_paths,
            strict=args.strict,
            num_proc=args.num_proc,
            audit=not args.no_audit,
            overwrite=args.overwrite,
            progress=not args.quiet,
            tasks=args.task,
            limits=InputLimits(args.max_text_bytes, args.max_item_bytes, args.allow_links_outside_root),
        )
    except DevCVBuildError as error:
        print(error.report.summary(), file=sys.stderr)
        return fail(parser, f"{error}; nothing was written")
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        return fail(parser, error)
    print(report.summary())
    print(f"wrote {args.output} (fingerprint {report.fingerprint[:16]}); report: {args.output}/build_report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
