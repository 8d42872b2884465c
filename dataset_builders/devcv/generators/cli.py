"""``babyvlm data generate``: generate DevCV Toolbox items from an annotated corpus (examples: ``EXAMPLES``, the end
of ``--help``)."""

from __future__ import annotations

import argparse
import sys
import time

from babyvlm.evaluate_metrics.devcv.tasks import PROMPT_VARIANTS, TASKS

from babyvlm.command_line import command_parser, fail

from ..audit import format_audit_report
from .config import (
    CONSTRUCTIONS,
    DEFAULT_ITEMS_PER_SPLIT,
    DEFAULT_SPLIT_FRACTIONS,
    DEFAULT_TRAIN_TASKS,
    SPLITS,
    GeneratorConfig,
)
from .generate import GenerationError, generate_devcv
from .vocabulary import DistractorPolicy, read_embeddings, read_lexicon, read_word_list

EXAMPLES = [
    "babyvlm data toyworld --output toyworld --scale demo",
    "babyvlm data generate --annotations toyworld --output devcv_toyworld --items-per-task 300",
    "python -c \"from datasets import load_dataset; print(load_dataset('devcv_toyworld', 'count', split='test'))\"",
]


def _split_values(text: str, kind: type) -> dict:
    """``train=400,test=100`` -> ``{"train": 400, "test": 100}``."""
    values = {}
    for part in text.split(","):
        split, separator, value = part.partition("=")
        if not separator or split.strip() not in SPLITS:
            raise argparse.ArgumentTypeError(
                f"expected SPLIT=VALUE pairs with SPLIT in {', '.join(SPLITS)}, got {part!r}"
            )
        try:
            values[split.strip()] = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: {value!r} is not a {kind.__name__}") from None
    return values


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("data generate", "Generate DevCV Toolbox items from an annotated corpus.", EXAMPLES)
    parser.add_argument(
        "--annotations",
        required=True,
        help="folder with recordings/frames/exits.jsonl, or a corpus root holding them in annotations/",
    )
    parser.add_argument("--output", required=True, help="dataset folder to write")
    parser.add_argument(
        "--tasks", nargs="+", default=list(TASKS), metavar="TASK", help="tasks to generate (default: all twelve)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument(
        "--variant", choices=PROMPT_VARIANTS, default="saycam", help="original prompt wording to use (default saycam)"
    )
    parser.add_argument(
        "--construction",
        choices=CONSTRUCTIONS,
        default="released",
        help="Left/Right and Spatial Details as released (default; pixel shortcuts included) or hardened against them",
    )
    parser.add_argument(
        "--items-per-task",
        type=int,
        default=DEFAULT_ITEMS_PER_SPLIT,
        metavar="N",
        help=f"items per task and split (default {DEFAULT_ITEMS_PER_SPLIT})",
    )
    parser.add_argument(
        "--items-per-split",
        type=lambda text: _split_values(text, int),
        metavar="SPLIT=N,...",
        help="override --items-per-task per split, e.g. train=1000,test=150",
    )
    parser.add_argument(
        "--train-tasks",
        nargs="*",
        metavar="TASK",
        help="tasks that get train and validation splits ('all' for every task; none: every task test-only); "
        f"default: all but {', '.join(sorted(set(TASKS) - set(DEFAULT_TRAIN_TASKS)))}",
    )
    parser.add_argument(
        "--split-fractions",
        type=lambda text: _split_values(text, float),
        metavar="SPLIT=F,...",
        help="share of the recordings per split (default "
        + ",".join(f"{k}={v}" for k, v in DEFAULT_SPLIT_FRACTIONS.items())
        + ")",
    )
    parser.add_argument(
        "--child",
        nargs="+",
        metavar="CHILD",
        help="only the recordings of these children feed items, e.g. the child held out of training "
        "(default: every child's)",
    )
    parser.add_argument(
        "--video-root", help="folder the annotations' video paths are relative to (default: the corpus root)"
    )
    parser.add_argument("--source-name", help="the `source` column (default: toyworld for a toy world, else generated)")
    parser.add_argument(
        "--cdi-words",
        help="word list (one per line): Picture Vocabulary only asks about these words (the MacArthur-Bates CDI)",
    )
    distractors = parser.add_mutually_exclusive_group()
    distractors.add_argument(
        "--word-embeddings", help="word vectors (.json/.npz/.npy): semantic Picture Vocabulary distractors"
    )
    distractors.add_argument(
        "--lexicon", help="pronunciations, CMUdict style: phonological Picture Vocabulary distractors"
    )
    parser.add_argument(
        "--no-audit", action="store_true", help="skip the shortcut audit (it is stored in the dataset card)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser


def _config(args: argparse.Namespace) -> GeneratorConfig:
    items = dict.fromkeys(SPLITS, args.items_per_task)
    items.update(args.items_per_split or {})
    if args.train_tasks is None:
        train_tasks = DEFAULT_TRAIN_TASKS
    else:
        train_tasks = tuple(TASKS) if args.train_tasks == ["all"] else tuple(args.train_tasks)
    return GeneratorConfig(
        tasks=tuple(args.tasks),
        seed=args.seed,
        variant=args.variant,
        construction=args.construction,
        items_per_split=items,
        train_tasks=train_tasks,
        split_fractions=args.split_fractions or dict(DEFAULT_SPLIT_FRACTIONS),
        source_name=args.source_name,
        children=tuple(args.child) if args.child else None,
        cdi_words=read_word_list(args.cdi_words) if args.cdi_words else None,
        distractors=DistractorPolicy(
            embeddings=read_embeddings(args.word_embeddings) if args.word_embeddings else None,
            lexicon=read_lexicon(args.lexicon) if args.lexicon else None,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Console script entry point; returns 1 when nothing could be generated or the input is invalid."""
    parser = _parser()
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        report = generate_devcv(
            args.annotations,
            args.output,
            _config(args),
            video_root=args.video_root,
            audit=not args.no_audit,
            overwrite=args.overwrite,
        )
    except GenerationError as error:
        print(error.report.summary(), file=sys.stderr)
        return fail(parser, f"{error}; nothing was written")
    except (FileExistsError, FileNotFoundError, ValueError) as error:  # AnnotationError is a ValueError
        return fail(parser, error)
    print(report.summary())
    print()
    print(format_audit_report(report.audit))
    print(
        f"\nwrote {args.output} in {time.perf_counter() - started:.1f}s (fingerprint {report.fingerprint[:16]}); "
        f"report: {args.output}/generation_report.json"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
