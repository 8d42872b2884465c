"""What every `babyvlm` verb shares: its parser, named after the verb and closing its help with an example, and its
one-line failure.

A verb is a function `main(argv: list[str] | None = None) -> int` beside the library code it runs (the builders in
`dataset_builders/`, the runner in `evaluate_metrics/`, the recipes' bodies in `babyvlm/training/`); the `babyvlm`
command (`babyvlm/commands/cli.py`) dispatches to it. Exit statuses: 0 done, 1 the work failed (one line on
stderr, `babyvlm <verb>: error: <what failed>`, no traceback), 2 the command line is wrong (argparse's usage line).
"""

from __future__ import annotations

import argparse
import os
import sys

FAILURE = 1
# Measured on the demo's stage 0 LM with another process busy on one of 2 cores: 65 s with torch's default (libgomp
# spins, ACTIVE) and 47 s PASSIVE; quiet, 28 s and 29 s. `benchmarks/RESULTS.md` has stage 3.
OMP_WAIT_POLICY = "PASSIVE"


EXAMPLES_HEADING = "example"


class HelpFormatter(argparse.HelpFormatter):
    """Wraps the description as argparse does, and keeps the examples at the end of a verb's help line for line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES_HEADING):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class DefaultsHelpFormatter(HelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Also shows each option's default: the training verbs' options come from dataclasses (transformers'
    `HfArgumentParser`), whose help strings do not state them."""


def command_parser(
    verb: str,
    description: str,
    examples: list[str],
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
    **kwargs,
) -> argparse.ArgumentParser:
    """The parser of `babyvlm <verb>`: `prog` is the verb as typed, the help ends with example command lines."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    heading = EXAMPLES_HEADING + ("s" if len(examples) > 1 else "")
    epilog = f"{heading}:\n" + "\n".join(f"  {line}" for line in examples)
    return parser_class(prog=f"babyvlm {verb}", description=description, epilog=epilog, **kwargs)


def fail(parser: argparse.ArgumentParser, error: Exception | str) -> int:
    """Report a failed run in one line on stderr and return the exit status that says so."""
    # A KeyError's str() is its message in quotes; every other exception's is the message.
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    close_progress_bars()
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return FAILURE


def close_progress_bars() -> None:
    """Close the progress bars a failure interrupted (a training step's, a build's): each ends its line, so the
    error that follows starts one of its own instead of being glued to the end of the bar."""
    tqdm = sys.modules.get("tqdm")  # (no bar was ever shown where tqdm was never imported)
    if tqdm is not None:
        for bar in list(tqdm.tqdm._instances):
            bar.close()


def restart_with_passive_omp_wait_policy() -> None:
    """Start this process again, as it was started (`sys.orig_argv`), with `OMP_WAIT_POLICY=PASSIVE`, unless the
    environment already sets the variable (a user's choice, or this very restart); returns only in that case.

    torch's OpenMP threads then sleep instead of spinning while they wait for each other: the same on a quiet machine
    and much faster when another process holds one of the cores (a spinning thread takes the CPU from the thread it
    waits for). OpenMP reads the variable once, when torch loads, and `import babyvlm` loads torch, so a command
    that wants it restarts (a few seconds of imports): the demo does.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
