"""DevCV evaluation throughput: the batched runner vs one item at a time (the original harness's way).

Evaluates a synthetic DevCV folder with a tiny random model (BabyLLaVA-V2, or any family of
``babyvlm.testing`` with ``--family``) through the same runner with ``--batch-size`` and with batch
size 1, side by side; checks that both give the same answers and scores, and prints the speed-up on
the last line. ``--processes 2`` also times whole ``babyvlm eval`` runs, one process vs that many
under ``accelerate launch`` (CPU), on the item mix repeated ``--cli-scale`` times (so that start-up
does not dominate), and checks that they give the same results: wall time (process start and model
loading included) and the answering time the runner logs (rank 0, from the model being loaded to
every shard being done) are reported separately.

The item mix follows the SAYCam test split (dataset_builders/devcv/README.md, split sizes): ~70%
single-answer letter items
(Picture Vocabulary stands for all of them: it has the most images), ~20% counting, ~6% VDR, and
a few Memory dialogues and Looking-While-Listening items.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.runner import evaluate_devcv

from babyvlm.testing import TINY_FAMILIES, save_tiny_model
from babyvlm.testing.babyllava import build_tiny_babyllava
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder
from babyvlm.testing.launch import cpu_launch, offline_cpu_env

ITEMS = {"picture_vocabulary": 140, "count": 40, "vdr_open": 12, "memory": 3, "looking_while_listening": 5}


def timed_run(chat: ChatModel, data: Path, output: Path, batch_size: int) -> tuple[float, str, dict]:
    """Items/s of one full evaluation, its answers and its results."""
    start = time.perf_counter()
    evaluate_devcv(chat, data, output, batch_size=batch_size, progress=False)
    items_per_second = sum(ITEMS.values()) / (time.perf_counter() - start)
    answers = "\n".join(sorted((output / "predictions.jsonl").read_text().splitlines()))
    return items_per_second, answers, json.loads((output / "results.json").read_text())


ANSWERED = re.compile(r"answered (\d+) items in ([\d.]+) s")


def timed_cli(model: Path, data: Path, output: Path, processes: int, args) -> tuple[float, float, int, str]:
    """Wall seconds of a whole ``babyvlm eval`` run in ``processes`` CPU processes, the seconds it spent answering
    (as the runner logs them), how many items it answered, and its results.json."""
    runner = ["-m", "babyvlm.evaluate_metrics.runner", "--model", str(model), "--data", str(data)]
    runner += ["--output", str(output), "--batch-size", str(args.batch_size), "--no-progress"]
    runner += ["--max-new-tokens", str(args.max_new_tokens), "--max-new-tokens-per-round", str(args.max_new_tokens)]
    launch = cpu_launch(processes, args.threads) if processes > 1 else [sys.executable]
    start = time.perf_counter()
    run = subprocess.run(
        launch + runner,
        env=offline_cpu_env(OMP_NUM_THREADS=str(args.threads)),
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    items, answering = ANSWERED.search(run.stderr).groups()
    return wall, float(answering), int(items), (output / "results.json").read_text()


def save_model(family: str, directory: Path) -> Path:
    if family == "babyllava_v2":
        build_tiny_babyllava(directory)
        return directory
    return save_tiny_model(family, directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (a tiny model gains nothing from more)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--family", default="babyllava_v2", choices=["babyllava_v2", *TINY_FAMILIES])
    parser.add_argument("--processes", type=int, default=1, help="also time a data-parallel run with this many")
    parser.add_argument(
        "--cli-scale", type=int, default=5, help="the data-parallel comparison's items: the item mix this many times"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_model(args.family, tmp / "model")
        data = write_devcv_folder(tmp / "devcv", {task: synthetic_items(task, n) for task, n in ITEMS.items()})
        chat = ChatModel.from_pretrained(tmp / "model", max_new_tokens=args.max_new_tokens)
        evaluate_devcv(chat, data, tmp / "warmup", tasks=["count"], progress=False)  # imports, caches, kernels
        # Alternate the two modes and keep each one's best run: the machine's load varies over time.
        runs = {"batched": [], "single": []}
        for repeat in range(args.repeats):
            runs["batched"].append(timed_run(chat, data, tmp / f"batched-{repeat}", args.batch_size))
            runs["single"].append(timed_run(chat, data, tmp / f"single-{repeat}", 1))
        if args.processes > 1:
            scaled = {task: synthetic_items(task, n * args.cli_scale) for task, n in ITEMS.items()}
            big = write_devcv_folder(tmp / "devcv-scaled", scaled)
            cli = {n: timed_cli(tmp / "model", big, tmp / f"cli-{n}", n, args) for n in (1, args.processes)}
    batched, single = (max(speed for speed, _, _ in runs[mode]) for mode in ("batched", "single"))
    outcomes = {(answers, json.dumps(results)) for mode_runs in runs.values() for _, answers, results in mode_runs}
    print(f"model: tiny {args.family}; items: {', '.join(f'{task} {n}' for task, n in ITEMS.items())}")
    print(f"threads {args.threads}, max_new_tokens {args.max_new_tokens}, best of {args.repeats}")
    print(f"batch size {args.batch_size}: {batched:.1f} items/s; one at a time: {single:.1f} items/s")
    print(f"identical answers and scores in all runs: {len(outcomes) == 1}")
    if args.processes > 1:
        (one, one_answering, items, one_results), (many, many_answering, _, many_results) = cli.values()
        start_up = (one - one_answering, many - many_answering)
        rates = (items / one_answering, items / many_answering)
        print(f"babyvlm eval on {items} items (the mix x{args.cli_scale}), 1 process vs {args.processes}:")
        print(f"  wall {one:.1f} s vs {many:.1f} s, of which start-up {start_up[0]:.1f} s vs {start_up[1]:.1f} s")
        print(f"  answering {one_answering:.1f} s vs {many_answering:.1f} s ({rates[0]:.1f} vs {rates[1]:.1f} items/s)")
        print(f"identical results.json: {one_results == many_results}")
        speed_ups = f"answering {one_answering / many_answering:.2f}x, whole run {one / many:.2f}x"
        print(f"{args.processes} processes vs 1: {speed_ups}")
    print(f"batched vs one-at-a-time items/s: {batched / single:.1f}x (target >= 3x)")


if __name__ == "__main__":
    main()
