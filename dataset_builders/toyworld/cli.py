"""``babyvlm data toyworld``: generate the synthetic SAYCam-layout toy world."""

from __future__ import annotations

import time

from babyvlm.command_line import command_parser, fail

from .generate import generate_toyworld
from .world import SCALES


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "data toyworld",
        "Generate a deterministic synthetic corpus in the SAYCam raw layout (mp4 recordings, "
        "timed transcripts, children table) with per-frame object annotations and exit directions.",
        ["babyvlm data toyworld --output toyworld --scale demo"],
    )
    parser.add_argument("--output", required=True, help="folder to create (must be empty or absent)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument(
        "--scale", choices=sorted(SCALES), default="small", help="small: seconds, for tests; demo: for the CPU demo"
    )
    parser.add_argument(
        "--name-in-view",
        action="store_true",
        help="the parent also labels one object in view (`a ball`), before and after each episode's motion",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        summary = generate_toyworld(
            args.output, seed=args.seed, scale=args.scale, overwrite=args.overwrite, name_in_view=args.name_in_view
        )
    except (FileExistsError, ValueError) as error:
        return fail(parser, error)
    print(
        f"toy world (seed {args.seed}, {args.scale}) -> {summary.output}: {summary.recordings} recordings, "
        f"{summary.frames} frames, {summary.utterances} utterances, {summary.exits} exit clips "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
