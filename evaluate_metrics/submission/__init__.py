"""A BabyVLM leaderboard submission folder: ``babyvlm submit --model DIR_OR_HUB_ID --name NAME --output DIR``, checked
before it is submitted with ``babyvlm submit --check DIR [--data DEVCV_DIR]`` (:mod:`.check`).

Writes ``DIR/submission.json`` (the schema of the leaderboard's ``submissions/README.md``, checked as
its validation workflow checks it) and ``DIR/model.py`` (:mod:`.wrapper` registered under the
submission's name), the lmms-eval wrapper the organisers copy into their DevCV-Toolbox and run as
``accelerate launch -m lmms_eval --model NAME --model_args pretrained=CHECKPOINT,conv_template=baby_v1
--task ... --batch_size 16 --trust_remote_code``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from transformers import CONFIG_MAPPING

from babyvlm.command_line import command_parser, fail
from babyvlm.locking import OutputLocationError, OutputLockedError
from babyvlm.staging import staged_folder

from ..harness import QUICK_LIMIT, QUICK_MAX_NEW_TOKENS

WRAPPER = Path(__file__).with_name("wrapper.py")
REGISTERED_NAME_LINE = re.compile(r'^REGISTERED_NAME = "[^"]*"$', re.MULTILINE)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
METADATA_FIELDS = (
    "model_type",
    "vision_encoder",
    "language_model",
    "training_data",
    "num_parameters",
    "main_contributions",
    "model_description",
)

# The leaderboard's submission form (.github/ISSUE_TEMPLATE/model-submission.yml): the fields marked "required to
# count toward the BabyVLM challenge", and the choices of its model-type dropdown.
CHALLENGE_FIELDS = (
    "model_type",
    "vision_encoder",
    "language_model",
    "training_data",
    "num_parameters",
    "model_description",
)
MODEL_TYPES = ("LLaVA-style", "Encoder-decoder", "Dual-encoder (CLIP-style)", "Other")


class SubmissionError(ValueError):
    """The submission cannot be written as asked (a checkpoint the organisers cannot load, an invalid field)."""


def registered_name(name: str) -> str:
    """The lmms-eval model name for a submission name: a Python identifier (lower case, ``_`` for the rest)."""
    identifier = re.sub(r"\W+", "_", name.strip().lower()).strip("_")
    if not identifier or identifier[0].isdigit():
        raise SubmissionError(f"submission name {name!r} gives no usable model name (start it with a letter)")
    return identifier


def check_submission(submission: dict, folder: Path) -> list[str]:
    """The problems the leaderboard's validation workflow reports for a submission (empty when valid)."""
    problems = [f"missing required field {key!r}" for key in ("model_name", "checkpoint") if not submission.get(key)]
    if "REPLACE" in str(submission.get("checkpoint", "")):
        problems.append("checkpoint still has the placeholder value")
    if not (submission.get("registered_model") or (folder / "model.py").is_file()):
        problems.append("provide a model.py in the folder or set 'registered_model'")
    return problems


def check_metadata(metadata: dict) -> None:
    """Raise :class:`SubmissionError` for a metadata value the leaderboard's form would not accept."""
    unknown = set(metadata) - set(METADATA_FIELDS)
    if unknown:
        raise SubmissionError(f"unknown metadata fields {sorted(unknown)}; the schema has {list(METADATA_FIELDS)}")
    model_type = metadata.get("model_type")
    if model_type is not None and model_type not in MODEL_TYPES:
        raise SubmissionError(f"model_type {model_type!r} is not one of the form's choices: {', '.join(MODEL_TYPES)}")
    parameters = metadata.get("num_parameters")
    if parameters is not None and (not isinstance(parameters, int) or isinstance(parameters, bool) or parameters < 1):
        raise SubmissionError(f"num_parameters must be a positive whole number, got {parameters!r}")


def missing_challenge_fields(submission: dict) -> list[str]:
    """The metadata fields the form requires for a row to count toward the BabyVLM challenge that are empty."""
    return [field for field in CHALLENGE_FIELDS if submission["metadata"].get(field) in ("", None)]


def _check_checkpoint(checkpoint: str) -> int | None:
    """For a local checkpoint: that it loads without babyvlm, and its number of parameters."""
    folder = Path(checkpoint)
    if not folder.is_dir():
        if not HUB_ID.match(checkpoint):
            raise SubmissionError(f"{checkpoint!r} is neither a checkpoint folder nor a Hub id (user/name)")
        return None
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise SubmissionError(f"{folder}: no config.json, not a transformers checkpoint")
    config = json.loads(config_file.read_text())
    if config.get("model_type") not in CONFIG_MAPPING and "AutoModelForImageTextToText" not in config.get(
        "auto_map", {}
    ):
        raise SubmissionError(
            f"{folder}: model type {config.get('model_type')!r} is not in transformers and the checkpoint has no "
            "remote code for AutoModelForImageTextToText (auto_map), so the organisers cannot load it"
        )
    from safetensors import safe_open

    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return None
    total = 0
    for path in weights:
        with safe_open(path, framework="pt") as handle:
            total += sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    return total


def write_submission(
    model: str,
    name: str,
    output: str | Path,
    *,
    conv_template: str = "baby_v1",
    hf_model_url: str | None = None,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``output/submission.json`` and ``output/model.py`` for the checkpoint ``model`` (a folder or a Hub id)."""
    output = Path(output)
    if output.is_dir() and not overwrite:  # (a file there is named by the folder's lock)
        raise SubmissionError(f"{output} exists; choose another folder or pass overwrite=True (--overwrite)")
    num_parameters = _check_checkpoint(model)
    metadata = {key: value for key, value in (metadata or {}).items() if value is not None}
    check_metadata(metadata)
    if num_parameters is not None:
        metadata.setdefault("num_parameters", num_parameters)
    if hf_model_url is None and not Path(model).is_dir():
        hf_model_url = f"https://huggingface.co/{model}"
    registered = registered_name(name)
    submission = {
        "model_name": name,
        "checkpoint": str(Path(model).resolve()) if Path(model).is_dir() else model,
        "registered_model": registered,
        "conv_template": conv_template,
        "hf_model_url": hf_model_url or "",
        "metadata": {key: metadata.get(key, "") for key in METADATA_FIELDS},
    }
    wrapper, count = REGISTERED_NAME_LINE.subn(f'REGISTERED_NAME = "{registered}"', WRAPPER.read_text())
    if count != 1:
        raise RuntimeError(f"{WRAPPER}: expected one REGISTERED_NAME line, found {count}")
    with staged_folder(output, overwrite=True) as staging:
        (staging / "submission.json").write_text(json.dumps(submission, indent=2) + "\n")
        (staging / "model.py").write_text(wrapper)
        problems = check_submission(submission, staging)
        if problems:
            raise SubmissionError("; ".join(problems))
    return output


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "submit",
        "Write a BabyVLM leaderboard submission folder (submission.json + model.py), or check one (--check).",
        [
            "babyvlm submit --model someone/babyllava-v2 --name BabyLLaVA-V2 --output submissions/babyllava-v2",
            "babyvlm submit --check submissions/babyllava-v2",
            "babyvlm submit --check submissions/babyllava-v2 --data devcv --model path/to/local/copy",
        ],
    )
    parser.add_argument(
        "--model",
        help="checkpoint: the Hub id the organisers download, or a folder (with --check: what to load instead of "
        "submission.json's checkpoint, e.g. a local copy of it)",
    )
    parser.add_argument("--name", help="the model's leaderboard name")
    parser.add_argument("--output", help="submission folder to write, e.g. submissions/NAME")
    check = parser.add_argument_group("checking a submission folder (writes nothing into it)")
    check.add_argument(
        "--check",
        metavar="FOLDER",
        help="check FOLDER as the leaderboard's validation does; with --data, also run its model.py under stock "
        "lmms-eval (without babyvlm) as the organisers do and compare its scores with babyvlm eval's",
    )
    check.add_argument("--data", help="a DevCV dataset folder for the --check run")
    check.add_argument("--tasks", help="comma-separated tasks of the --check run (default: all in --data)")
    check.add_argument("--split", default="test", help="split of the --check run (default: test)")
    check.add_argument(
        "--limit", type=int, default=QUICK_LIMIT, help=f"items per task of the --check run (default: {QUICK_LIMIT})"
    )
    check.add_argument(
        "--max-new-tokens",
        type=int,
        default=QUICK_MAX_NEW_TOKENS,
        help=f"new tokens per answer and per Memory round in both runs of --check (default: {QUICK_MAX_NEW_TOKENS}; "
        "the same in both, so the scores compare; not the official limits)",
    )
    parser.add_argument("--conv-template", default="baby_v1", help="passed by the organisers as conv_template")
    parser.add_argument("--hf-model-url", help="link of the leaderboard row (default: the Hub page of --model)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    for field in METADATA_FIELDS:
        parser.add_argument(
            f"--{field.replace('_', '-')}",
            type=int if field == "num_parameters" else str,
            choices=MODEL_TYPES if field == "model_type" else None,
            help=f"metadata.{field}"
            + (" (the form requires it for the BabyVLM challenge)" if field in CHALLENGE_FIELDS else ""),
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """``babyvlm submit``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.check:
        return _check(parser, args)
    missing = [f"--{name}" for name in ("model", "name", "output") if getattr(args, name) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (or --check FOLDER)")
    try:
        output = write_submission(
            args.model,
            args.name,
            args.output,
            conv_template=args.conv_template,
            hf_model_url=args.hf_model_url,
            metadata={field: getattr(args, field) for field in METADATA_FIELDS},
            overwrite=args.overwrite,
        )
    except (SubmissionError, OutputLocationError, OutputLockedError) as error:
        return fail(parser, error)
    print(f"wrote {output}/submission.json and {output}/model.py (lmms-eval model {registered_name(args.name)!r})")
    missing = missing_challenge_fields(json.loads((output / "submission.json").read_text()))
    if missing:
        flags = " ".join(f"--{field.replace('_', '-')}" for field in missing)
        sys.stderr.write(
            f"warning: metadata the leaderboard's form requires for the BabyVLM challenge is empty: "
            f"{', '.join(missing)}; the row will not count toward the challenge. Pass {flags} "
            "(or fill them in submission.json)\n"
        )
    if Path(args.model).is_dir():
        print("note: the checkpoint is a local folder; upload it to the Hub and put its id in submission.json")
    return 0


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``babyvlm submit --check FOLDER [--data DIR]``: exit 0 when the folder is valid (and model.py scores as
    babyvlm eval does), else 1, naming each problem."""
    from .check import check_run, problems, warnings

    found = problems(args.check)
    for problem in found:
        sys.stderr.write(f"problem: {problem}\n")
    for warning in warnings(args.check):
        sys.stderr.write(f"warning: {warning}\n")
    if found:
        return fail(parser, f"{args.check} would be refused by the leaderboard's validation ({len(found)} problem(s))")
    print(f"{args.check}: submission.json and model.py pass the leaderboard's validation")
    if not args.data:
        print("note: pass --data DEVCV_DIR to run model.py under stock lmms-eval and compare its scores")
        return 0
    try:
        comparisons = check_run(
            args.check,
            args.data,
            checkpoint=args.model,
            tasks=args.tasks.split(",") if args.tasks else None,
            split=args.split,
            limit=args.limit,
            max_new_tokens=args.max_new_tokens,
        )
    except (SubmissionError, ValueError, OSError) as error:
        return fail(parser, error)
    print(f"model.py under stock lmms-eval vs babyvlm eval (first {args.limit} items per task, not official scores):")
    for comparison in comparisons:
        model_py = "missing" if comparison.model_py is None else f"{comparison.model_py:.4f}"
        verdict = "same" if comparison.agrees else "DIFFERENT"
        print(f"  {comparison.task:<20} {comparison.metric:<24} {model_py:>8} {comparison.babyvlm:>8.4f}  {verdict}")
    differing = [comparison for comparison in comparisons if not comparison.agrees]
    if differing:
        return fail(parser, f"{len(differing)} of {len(comparisons)} scores differ between model.py and babyvlm eval")
    print(f"all {len(comparisons)} scores agree")
    return 0
