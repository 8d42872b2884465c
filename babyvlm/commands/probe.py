"""``babyvlm probe``: the zero-shot grounding probes, one sub-verb each, results written as JSON into ``--output``.

    babyvlm probe match --model CKPT --pairs corpora/image_utterance [--split validation] --output eval
    babyvlm probe vocabulary --model CKPT --data devcv [--split test] --output eval
    babyvlm probe linear --model CKPT --frames corpora/frames --annotations toyworld/annotations --output eval

Each writes ``<output>/probes/<probe>.json`` (accuracy, chance, n, p-value, mean gap in nats per token) and prints
a line per probe; ``vocabulary`` scores Picture Vocabulary and Looking While Listening, whichever the folder has.
"""

from __future__ import annotations

import argparse
import logging

from babyvlm.command_line import command_parser, fail
from babyvlm.dataset_builders.labels import labelled_frames
from babyvlm.evaluate_metrics.data import MissingTaskError
from babyvlm.evaluate_metrics.inference import IncompatibleModelError, load_model_and_processor
from babyvlm.evaluate_metrics.probes.linear import PROBE, linear_probe
from babyvlm.evaluate_metrics.probes.matching import load_pairs, utterance_frame_matching
from babyvlm.evaluate_metrics.probes.scoring import HEADER, plain_chat, write_report, write_result
from babyvlm.evaluate_metrics.probes.vocabulary import (
    load_items,
    zero_shot_looking_while_listening,
    zero_shot_picture_vocabulary,
)

VOCABULARY_PROBES = {
    "picture_vocabulary": zero_shot_picture_vocabulary,
    "looking_while_listening": zero_shot_looking_while_listening,
}


def match(args) -> None:
    pairs = load_pairs(args.pairs, args.split)
    result = utterance_frame_matching(
        args.model, pairs, seed=args.seed, limit=args.limit, batch_size=args.batch_size, progress=True
    )
    write_result(args.output, result, model=args.model, pairs=args.pairs, split=args.split, seed=args.seed)
    print(HEADER)
    print(result.line())


def vocabulary(args) -> None:
    chat = plain_chat(args.model)
    results = []
    for task, probe in VOCABULARY_PROBES.items():
        try:
            items = load_items(args.data, task, args.split, args.limit)
        except MissingTaskError:
            continue
        result = probe(chat, items, seed=args.seed, batch_size=args.batch_size, progress=True)
        write_result(args.output, result, model=args.model, data=args.data, split=args.split, seed=args.seed)
        results.append(result)
    if not results:
        raise MissingTaskError(f"{args.data}: no Picture Vocabulary or Looking While Listening items in {args.split!r}")
    print(HEADER)
    for result in results:
        print(result.line())


def linear(args) -> None:
    images, recordings, labels = labelled_frames(load_pairs(args.frames, args.split), args.annotations)
    if args.limit is not None:
        images, recordings = images[: args.limit], recordings[: args.limit]
        labels = {name: values[: args.limit] for name, values in labels.items()}
    report = linear_probe(
        load_model_and_processor(args.model), images, labels, recordings, seed=args.seed, folds=args.folds
    )
    report.update(model=args.model, frames=args.frames, split=args.split, seed=args.seed)
    write_report(args.output, PROBE, report)
    print(f"{'label':<10}{'classes':>8}{'chance':>8}{'ckpt':>7}{'random':>8}{'n':>6}{'p vs random':>13}")
    for name, entry in report["labels"].items():
        print(
            f"{name:<10}{entry['classes']:>8}{entry['chance']:>8.3f}{entry['checkpoint_accuracy']:>7.3f}"
            f"{entry['random_init_accuracy']:>8.3f}{report['n']:>6}{entry['p_value_vs_random_init']:>13.2e}"
        )


def parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "probe",
        "Zero-shot grounding probes of a checkpoint: utterance-frame matching, zero-shot word-image choice, a linear "
        "probe of its vision features.",
        [line.strip() for line in __doc__.splitlines()[2:5]],
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, help="model folder or Hub id (any image-text-to-text model)")
    common.add_argument("--output", required=True, help="evaluation folder; results go to <output>/probes/")
    common.add_argument("--seed", type=int, default=0, help="foil pairing, tie breaking, random tower")
    common.add_argument("--limit", type=int, help="score only the first N items")
    common.add_argument("--batch-size", type=int, default=16)
    one = verbs.add_parser("match", parents=[common], help="utterance-frame matching (2AFC)")
    one.add_argument("--pairs", required=True, help="image-utterance corpus folder (babyvlm data saycam)")
    one.add_argument("--split", default="validation")
    one.set_defaults(run=match)
    one = verbs.add_parser("vocabulary", parents=[common], help="zero-shot Picture Vocabulary and LWL")
    one.add_argument("--data", required=True, help="DevCV dataset folder")
    one.add_argument("--split", default="test")
    one.set_defaults(run=vocabulary)
    one = verbs.add_parser("linear", parents=[common], help="linear probe of the vision tower vs a random one")
    one.add_argument("--frames", required=True, help="frames corpus folder (babyvlm data saycam)")
    one.add_argument("--annotations", required=True, help="annotations folder (toy world: toyworld/annotations)")
    one.add_argument("--split", default="train")
    one.add_argument("--folds", type=int, default=5, help="cross-validation folds, grouped by recording")
    one.set_defaults(run=linear)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``babyvlm probe``; returns the exit status."""
    probe_parser = parser()
    args = probe_parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.run(args)
    except (FileNotFoundError, IncompatibleModelError, MissingTaskError, ValueError) as error:
        return fail(probe_parser, f"{args.verb}: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
