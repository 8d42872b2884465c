"""`accelerate launch` command lines for CPU processes, as the tests and benchmarks run recipes and the runner."""

from __future__ import annotations

import sys


def cpu_launch(num_processes: int, threads_per_process: int = 1) -> list[str]:
    """The command prefix that runs a script (or ``-m module``) in ``num_processes`` CPU processes.

    Several processes need ``--multi_gpu``, accelerate's multi-process launcher on CPUs too: given only
    ``--num_processes 2`` it starts one process. One process gets ``--cpu``. No mixed precision, no dynamo.
    """
    processes = ["--multi_gpu"] if num_processes > 1 else ["--cpu"]
    return [
        *(sys.executable, "-m", "accelerate.commands.launch", *processes),
        *("--num_processes", str(num_processes), "--num_machines", "1"),
        *("--num_cpu_threads_per_process", str(threads_per_process)),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
    ]
