"""``babyvlm explore --data DEVCV_DIR [--runs EVAL_DIR ...] [--model DIR]``.

Every option also reads an environment variable (``BABYVLM_EXPLORE_DATA``, ``BABYVLM_EXPLORE_RUNS``
as a ``:``-separated list, ``BABYVLM_EXPLORE_MODEL``), so a Hugging Face Space whose ``app.py`` is
``from babyvlm.commands.explore.cli import main; main()`` runs unchanged; Gradio takes the host and port from
``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` there.
"""

from __future__ import annotations

import argparse
import logging
import os

import torch

from babyvlm.command_line import command_parser, fail


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "explore",
        "Browse a DevCV dataset folder, evaluation runs over it, and ask a model.",
        ["babyvlm explore --data devcv --runs eval/babyllava_v2 eval/llava --model path/to/babyllava_v2"],
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("BABYVLM_EXPLORE_DATA"),
        help="DevCV dataset folder (babyvlm data devcv output) [BABYVLM_EXPLORE_DATA]",
    )
    runs = os.environ.get("BABYVLM_EXPLORE_RUNS")
    parser.add_argument(
        "--runs",
        nargs="*",
        default=runs.split(":") if runs else [],
        help="evaluation run folders (babyvlm eval --output) to lay over the items [BABYVLM_EXPLORE_RUNS]",
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("BABYVLM_EXPLORE_MODEL"),
        help="a checkpoint to ask about the shown item [BABYVLM_EXPLORE_MODEL]",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--host", default=None, help="address to serve on (default: Gradio's, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio link")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``babyvlm explore``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("--data is required (or set BABYVLM_EXPLORE_DATA)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from .app import build_app
    except ImportError as error:
        return fail(parser, f"{error}; install the extra: pip install 'babyvlm[explore]'")
    from .session import Explorer

    explorer = Explorer(args.data, args.runs, args.model, device=args.device, dtype=getattr(torch, args.dtype))
    for message in explorer.messages:
        logging.getLogger("babyvlm.explore").warning("%s", message)
    build_app(explorer).queue().launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
