"""``babyvlm data devcv``: package released DevCV Toolbox layouts as a 🤗 dataset folder (examples: ``EXAMPLES``,
the end of ``--help``)."""

from __future__ import annotations

import argparse
import sys

from babyvlm.command_line import command_parser, fail

from ..hub import add_push_arguments, check_push_arguments, devcv_publication, push_from_args, resolve_sources
from .audit import format_audit_report
from .builder import DevCVBuildError, build_devcv
from .layouts import DEFAULT_SPLIT, KNOWN_SOURCES
from .limits import DEFAULT_MAX_ITEM_BYTES, DEFAULT_MAX_TEXT_BYTES, InputLimits

EXAMPLES = [
    "babyvlm data devcv /data/devcv/saycam --output devcv",
    "babyvlm data devcv /data/devcv/ego4d --output devcv_ego4d --split test --strict",
    "babyvlm data devcv /data/devcv/babyview --output devcv_babyview --task who_has_more=compare_real",
    "babyvlm data devcv wsashawn/devcv_toolbox_ego4d --output devcv_ego4d --push-to-hub me/devcv-ego4d",
    "babyvlm data devcv /data/devcv/saycam --output devcv --push-to-hub me/devcv --gated",
    "python -c \"from datasets import load_dataset; print(load_dataset('devcv', 'memory', split='test'))\"",
]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("data devcv", "Package released DevCV Toolbox layouts as a 🤗 dataset folder.", EXAMPLES)
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="released folder (<split>/<task>/data.json or <task>/data.json), flat <task>_<split>.json file(s), or a "
        "Hub dataset repo REPO_ID[@REVISION] in one of those layouts (e.g. wsashawn/devcv_toolbox_ego4d)",
    )
    parser.add_argument("--output", required=True, help="dataset folder to write")
    parser.add_argument(
        "--split",
        default=DEFAULT_SPLIT,
        help=f"split name for layouts without split folders (default: {DEFAULT_SPLIT})",
    )
    parser.add_argument(
        "--source-name",
        action="append",
        default=[],
        metavar="[SOURCE=]NAME",
        help="source recorded in the rows of SOURCE (repeatable; a bare NAME: every SOURCE); default: inferred from "
        f"the path, a part that is or holds as a word one of {', '.join(KNOWN_SOURCES)}",
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
    add_push_arguments(parser)
    return parser


def _source_names(values: list[str]) -> str | dict[str, str] | None:
    """``--source-name`` values: one bare NAME for every SOURCE, or SOURCE=NAME pairs."""
    pairs = dict(value.rsplit("=", 1) for value in values if "=" in value)
    bare = [value for value in values if "=" not in value]
    if bare and (pairs or len(bare) > 1):
        raise SystemExit("babyvlm data devcv: error: --source-name takes one bare NAME or SOURCE=NAME pairs")
    return bare[0] if bare else pairs or None


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; returns 1 when the build fails (strict skip, nothing written)."""
    parser = _parser()
    args = parser.parse_args(argv)
    check_push_arguments(parser, args)
    try:
        sources, origins = resolve_sources(args.sources)
        report = build_devcv(
            sources,
            args.output,
            split=args.split,
            source_name=_source_names(args.source_name),
            image_root=args.image_root,
            embed_images=not args.image_paths,
            strict=args.strict,
            num_proc=args.num_proc,
            audit=not args.no_audit,
            overwrite=args.overwrite,
            progress=not args.quiet,
            tasks=args.task,
            limits=InputLimits(args.max_text_bytes, args.max_item_bytes, args.allow_links_outside_root),
            origins=origins,
        )
    except DevCVBuildError as error:
        print(error.report.summary(), file=sys.stderr)
        return fail(parser, f"{error}; nothing was written")
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        return fail(parser, error)
    print(report.summary())
    print()
    print(format_audit_report(report.audit))
    print(f"\nwrote {args.output} (fingerprint {report.fingerprint[:16]}); report: {args.output}/build_report.json")
    return push_from_args(args, args.output, devcv_publication)


if __name__ == "__main__":
    raise SystemExit(main())
