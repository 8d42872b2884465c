"""Timing helpers shared by the CPU benchmarks (run the scripts from any folder: Python puts this one on the path)."""

import time


def forward_backward_seconds(model, batch) -> float:
    """Wall time of one forward + backward pass on `batch` (gradients cleared first)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model(**batch).loss.backward()
    return time.perf_counter() - start
