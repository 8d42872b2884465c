"""``babyvlm trajectory``: score the checkpoints of a training run along the child's timeline.

    babyvlm trajectory runs/stage2 --data devcv --output trajectory/stage2
    babyvlm trajectory runs/stage2 --data devcv --output trajectory/stage2 --instruct recipes/.../stage3_instruct.yaml

Each checkpoint is scored by the runner of ``babyvlm eval`` and by the zero-shot probes
(:func:`babyvlm.evaluate_metrics.trajectory.trajectory`, which writes ``trajectory.json``, ``trajectory.csv`` and the
plots); the table printed gives each task's and probe's score, interval and n per checkpoint. ``--instruct`` first
instruction-tunes each checkpoint with a recipe of ``babyvlm train sft`` (:func:`instruction_tuner`), caching the
tuned models under ``<output>/instructed/<name>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import datasets

from babyvlm.command_line import command_parser, fail
from babyvlm.digests import file_digests, model_files
from babyvlm.evaluate_metrics.acquisition import read_aoa_norms
from babyvlm.evaluate_metrics.answering import UnsupportedOptionError
from babyvlm.evaluate_metrics.devcv.uncertainty import N_RESAMPLES
from babyvlm.evaluate_metrics.harness import AUTO_DTYPE, DTYPES
from babyvlm.evaluate_metrics.runner import EVALUATION_ERRORS
from babyvlm.evaluate_metrics.trajectory import AXES, PROBES, Checkpoint, trajectory, trajectory_table
from babyvlm.staging import write_text

INSTRUCTED_FOLDER = "instructed"
TUNED_FROM_FILE = "tuned_from.json"
"""Beside each tuned model (``instructed/<name>.tuned_from.json``): the digests of the checkpoint and recipe it was
tuned from; a tuned model whose record matches is reused."""


def instruction_tuner(recipe: Path, output_dir: Path):
    """A ``tune`` for :func:`trajectory`: the checkpoint instruction-tuned by ``recipe`` (a ``babyvlm train sft``
    YAML; its model and output folder are the checkpoint's) into ``<output_dir>/instructed/<name>``, reused where
    it was tuned from the same checkpoint and recipe content. The recipe is parsed here, before anything loads."""
    from babyvlm.training.sft import parse_args, train

    def arguments(checkpoint: Checkpoint, target: Path) -> list[str]:
        return ["--config", str(recipe), "--model_name_or_path", str(checkpoint.path), "--output_dir", str(target)]

    parse_args(arguments(Checkpoint("check", str(recipe), Path("."), None), output_dir / INSTRUCTED_FOLDER / "check"))

    def tune(checkpoint: Checkpoint) -> Checkpoint:
        target = output_dir / INSTRUCTED_FOLDER / checkpoint.name
        record_file = target.with_name(f"{target.name}.{TUNED_FROM_FILE}")
        cache = output_dir / INSTRUCTED_FOLDER / ".content-digests.json"
        source = {
            "checkpoint": file_digests(model_files(checkpoint.path), cache),
            "recipe": file_digests({"recipe": recipe}, cache)["recipe"],
        }
        try:
            recorded = json.loads(record_file.read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded != source or not (target / "config.json").is_file():
            # A tuning of other content must not be resumed from: its folders go.
            for folder in (target, target.with_name(f"{target.name}-checkpoints")):
                if recorded is not None and folder.is_dir():
                    shutil.rmtree(folder)
            record_file.unlink(missing_ok=True)
            train(*parse_args(arguments(checkpoint, target)))
            write_text(record_file, json.dumps(source, indent=2, sort_keys=True) + "\n")
        return Checkpoint(checkpoint.name, f"{checkpoint.source} instructed by {recipe}", target, checkpoint.exposure)

    return tune


def _list(value: str | None) -> list[str] | None:
    """A comma-separated option: None when not given, ``[]`` for ``none``."""
    if value is None:
        return None
    return [] if value.strip() == "none" else [part.strip() for part in value.split(",") if part.strip()]


def parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "trajectory",
        "Score checkpoints along a developmental trajectory on DevCV and the zero-shot probes: scores with their "
        "intervals against the axis of experience, ages of acquisition per task and word.",
        [line.strip() for line in __doc__.splitlines()[2:4]],
    )
    parser.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CHECKPOINT",
        help="a model folder, a folder of age checkpoints (<run>/age_checkpoints/age-09mo ...), or owner/name@rev",
    )
    parser.add_argument("--data", required=True, help="DevCV dataset folder (parquet + README.md configs)")
    parser.add_argument(
        "--output", required=True, help="output folder (finished checkpoints are reused, an interrupted one resumed)"
    )
    parser.add_argument("--tasks", help="comma-separated DevCV tasks, or none; default: all in --data")
    parser.add_argument(
        "--probes",
        help=f"comma-separated zero-shot probes ({', '.join(PROBES)}), or none; default: those --data feeds",
    )
    parser.add_argument(
        "--pairs",
        metavar="CORPUS",
        help="image-utterance corpus folder (babyvlm data saycam's image_utterance): also utterance-frame matching",
    )
    parser.add_argument("--pairs-split", default="validation", help="the corpus split matching reads (held out)")
    parser.add_argument(
        "--x", default="months", choices=list(AXES), help="the axis of experience (from each exposure.json)"
    )
    parser.add_argument("--limit", type=int, help="score only the first N items of each task and probe")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--aoa-norms", metavar="CSV", help="children's ages of acquisition (columns word,aoa_months): rank correlation"
    )
    parser.add_argument(
        "--instruct",
        metavar="RECIPE.yaml",
        help="instruction-tune each checkpoint with this babyvlm train sft recipe first (cached in OUTPUT/instructed)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, help="per generated answer (default: the leaderboard's)")
    parser.add_argument("--bootstrap", type=int, default=N_RESAMPLES, metavar="N", help="resamples per interval")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="default: this process's accelerator, else cpu")
    parser.add_argument("--dtype", default=AUTO_DTYPE, choices=[AUTO_DTYPE, *sorted(DTYPES)])
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``babyvlm trajectory``; returns the exit status."""
    trajectory_parser = parser()
    args = trajectory_parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.no_progress:
        datasets.disable_progress_bars()
    output = Path(args.output)
    try:
        norms = read_aoa_norms(args.aoa_norms) if args.aoa_norms else None
        if args.instruct and not Path(args.instruct).is_file():
            raise FileNotFoundError(f"--instruct {args.instruct}: no such recipe file")
        tune = instruction_tuner(Path(args.instruct), output) if args.instruct else None
        path = trajectory(
            args.checkpoints,
            args.data,
            output,
            tasks=_list(args.tasks),
            probes=_list(args.probes),
            pairs=args.pairs,
            pairs_split=args.pairs_split,
            x=args.x,
            limit=args.limit,
            split=args.split,
            aoa_norms=norms,
            tune=tune,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            device=args.device,
            dtype=args.dtype,
            bootstrap=args.bootstrap,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (*EVALUATION_ERRORS, UnsupportedOptionError) as error:
        return fail(trajectory_parser, error)
    sys.stdout.write(trajectory_table(json.loads(path.read_text())))
    print(f"\nwritten: {path}, {path.with_suffix('.csv').name}, plots/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
