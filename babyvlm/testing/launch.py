"""`accelerate launch` command lines and environments for CPU processes, as the tests and benchmarks run recipes
and the runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


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


def offline_cpu_env(**extra: str) -> dict[str, str]:
    """The environment of a training or evaluation process started from this one: offline (Hub and datasets from the
    local files only), on the CPU under accelerate, one thread per process (the processes share the cores, and one
    thread repeats a run's arithmetic bit for bit), then ``extra``."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "true",
        **extra,
    }


def kill_once_written(command: list[str], marker: Path, *, env: dict[str, str], cwd: str | Path, timeout: float = 300):
    """Run ``command`` in a session of its own and ``kill -9`` all of it as soon as ``marker`` exists, as a crash
    right after a checkpoint would; a run that ends first, or writes nothing in ``timeout`` seconds, fails."""
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
