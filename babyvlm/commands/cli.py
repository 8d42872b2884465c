"""`babyvlm <verb>`: the one command, as `trl`, `accelerate` and `hf` have one.

Each verb is a `main(argv: list[str] | None = None) -> int` beside its library code, named here once with its
one-line help and imported only when it runs, so `babyvlm --help` imports none of them. The `babyvlm-*` console
scripts of earlier releases run the same functions (`DEPRECATED_ALIASES`, pyproject.toml's `[project.scripts]`).
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from dataclasses import dataclass

from babyvlm import __version__
from babyvlm.command_line import restart_with_passive_omp_wait_policy


@dataclass(frozen=True)
class Verb:
    name: str
    """As typed after `babyvlm`: one word, or a group and a word (`data toyworld`)."""
    help: str
    target: str
    """`module:function` of its `main(argv) -> int`."""
    passive_openmp: bool = False
    """Run from the command line, the process restarts once with `OMP_WAIT_POLICY=PASSIVE` (see
    `babyvlm.command_line.restart_with_passive_omp_wait_policy`): CPU training beside other busy processes."""

    def load(self):
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)


VERBS = {
    verb.name: verb
    for verb in (
        Verb(
            "demo",
            "train BabyLLaVA-V2 end to end on the toy world and score it on DevCV",
            "babyvlm.commands.demo:main",
            passive_openmp=True,
        ),
        Verb(
            "data toyworld",
            "generate the toy world: SAYCam-layout recordings, transcripts and object annotations",
            "babyvlm.dataset_builders.toyworld.cli:main",
        ),
        Verb(
            "data saycam",
            "build the SAYCam pretraining corpora from recordings and transcripts",
            "babyvlm.dataset_builders.saycam.cli:main",
        ),
        Verb(
            "data devcv",
            "package released DevCV Toolbox files as a dataset folder",
            "babyvlm.dataset_builders.devcv.cli:main",
        ),
        Verb(
            "data generate",
            "generate DevCV items from annotated recordings (the toy world's)",
            "babyvlm.dataset_builders.devcv.generators.cli:main",
        ),
        Verb(
            "data audit",
            "measure the answer shortcuts of a DevCV folder against chance",
            "babyvlm.dataset_builders.devcv.audit:main",
        ),
        Verb(
            "train sft",
            "train a text stage (lm, align, pretrain, instruct) or any VLM with TRL's SFTTrainer",
            "babyvlm.training.sft:main",
        ),
        Verb(
            "train vision",
            "stage 0 vision: DINOv2-style self-supervised pretraining of the ViT",
            "babyvlm.training.pretrain_vision:main",
        ),
        Verb(
            "train assemble",
            "join stage-0 vision and language checkpoints with a fresh connector",
            "babyvlm.training.assemble:main",
        ),
        Verb("eval", "score a model on DevCV as the leaderboard does", "babyvlm.evaluate_metrics.runner:main"),
        Verb(
            "probe",
            "zero-shot grounding probes of a checkpoint: match, vocabulary, linear",
            "babyvlm.commands.probe:main",
        ),
        Verb(
            "trajectory",
            "score checkpoints along the child's timeline: DevCV and the probes by age, ages of acquisition",
            "babyvlm.commands.trajectory:main",
        ),
        Verb(
            "serve",
            "serve a model behind an OpenAI-compatible API (BabyLLaVA-V2 included)",
            "babyvlm.evaluate_metrics.serve:main",
        ),
        Verb("compare", "compare evaluation runs: tables and plots", "babyvlm.evaluate_metrics.compare:main"),
        Verb("submit", "write a leaderboard submission folder", "babyvlm.evaluate_metrics.submission:main"),
        Verb("convert", "convert the original BabyLLaVA-V2 release to transformers", "babyvlm.convert:main"),
        Verb(
            "push-ages",
            "publish a run's age checkpoints as branches of one Hub model repo (main: the final model)",
            "babyvlm.training.age_branches:main",
        ),
        Verb(
            "explore",
            "browse DevCV items, evaluation runs and a model's answers in the browser (Gradio)",
            "babyvlm.commands.explore.cli:main",
        ),
    )
}
GROUPS = {"data": "build and check datasets", "train": "the training recipes, in one process"}
# Console scripts of earlier releases: deprecated, kept for this release; the same function as the verb.
DEPRECATED_ALIASES = {
    "babyvlm-demo": "demo",
    "babyvlm-toyworld": "data toyworld",
    "babyvlm-build-saycam": "data saycam",
    "babyvlm-build-devcv": "data devcv",
    "babyvlm-generate-devcv": "data generate",
    "babyvlm-audit-devcv": "data audit",
    "babyvlm-assemble": "train assemble",
    "babyvlm-eval": "eval",
    "babyvlm-compare": "compare",
    "babyvlm-submission": "submit",
    "babyvlm-convert": "convert",
    "babyvlm-explore": "explore",
}
HELP = ("-h", "--help")


def overview(group: str | None = None) -> str:
    """The verbs (of `group`, or all of them), one line each."""
    prefix = f"{group} " if group else ""
    verbs = [verb for name, verb in VERBS.items() if name.startswith(prefix)]
    width = max(len(verb.name) for verb in verbs) + 2
    lines = [
        f"usage: babyvlm {prefix}<command> [<args>]",
        "",
        f"babyvlm {group}: {GROUPS[group]}" if group else "BabyVLM-V2: data, training, evaluation.",
        "",
        "commands:",
        *(f"  {verb.name:<{width}}{verb.help}" for verb in verbs),
        "",
        f"`babyvlm {prefix}<command> --help` shows a command's options and an example.",
    ]
    if not group:
        options = [f"  {'-h, --help':<{width}}this overview", f"  {'--version':<{width}}the version"]
        lines[-1:-1] = ["options:", *options, ""]
        aliases = ", ".join(DEPRECATED_ALIASES)
        deprecated = f"Deprecated: the console scripts {aliases} run the same commands; use `babyvlm <command>`."
        lines += ["", *textwrap.wrap(deprecated, 100)]
    return "\n".join(lines) + "\n"


def usage_error(message: str, group: str | None = None) -> int:
    prefix = f"{group} " if group else ""
    print(f"babyvlm {prefix}<command>: error: {message} (babyvlm {prefix}--help lists the commands)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """The `babyvlm` command: run the verb named by the first word (or two) of `argv` on the rest of it."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        sys.stderr.write(overview())
        return 2
    if argv[0] in HELP:
        sys.stdout.write(overview())
        return 0
    if argv[0] == "--version":
        print(f"babyvlm {__version__}")
        return 0
    group = argv[0] if argv[0] in GROUPS else None
    if group and (len(argv) == 1 or argv[1] in HELP):
        (sys.stdout if len(argv) > 1 else sys.stderr).write(overview(group))
        return 0 if len(argv) > 1 else 2
    words, prefix = (2, f"{group} ") if group else (1, "")
    name = " ".join(argv[:words])
    if name not in VERBS:
        choices = ", ".join(dict.fromkeys(verb.split()[words - 1] for verb in VERBS if verb.startswith(prefix)))
        return usage_error(f"unknown command {argv[words - 1]!r}; choose one of {choices}", group)
    verb = VERBS[name]
    if verb.passive_openmp and from_command_line:
        restart_with_passive_omp_wait_policy()
    return verb.load()(argv[words:])


if __name__ == "__main__":
    raise SystemExit(main())
