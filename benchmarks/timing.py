"""Timing helpers shared by the benchmarks (run the scripts from any folder: Python puts this one on the path)."""

import sys
import time
from pathlib import Path

import torch


def forward_backward_seconds(model, batch) -> float:
    """Wall time of one forward + backward pass on `batch` (gradients cleared first)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model(**batch).loss.backward()
    return time.perf_counter() - start


def exit_unless_gpu() -> None:
    """A GPU benchmark calls this first: without CUDA it says so and exits 0, so `make bench` runs the next one."""
    if not torch.cuda.is_available():
        print(f"skipped: no GPU ({Path(sys.argv[0]).name} needs CUDA)")
        raise SystemExit(0)
