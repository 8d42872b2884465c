"""`babyvlm.locking`: one writer per output folder, across real processes; a dead holder's lock is taken over."""

import doctest
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from babyvlm import locking
from babyvlm.locking import OutputLockedError, lock_path, output_lock
from babyvlm.staging import staged_folder

# Loads the module from its file: importing the package (transformers) would take seconds per process.
HOLDER = textwrap.dedent(
    """
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("locking", sys.argv[2])
    locking = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(locking)
    with locking.output_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock of `tmp_path/out`; yields the process (killed at the end)."""
    processes = []

    def start():
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path / "out"), locking.__file__], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == "held"
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_module_examples():
    assert doctest.testmod(locking).failed == 0


def test_a_second_writer_is_refused_with_one_line_naming_the_holder(holder, tmp_path):
    process = holder()
    with pytest.raises(OutputLockedError) as refused, output_lock(tmp_path / "out"):
        pass
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path / 'out'} is being written by pid {process.pid} on ")
    # Writing the folder through staging is refused the same way, and leaves nothing behind.
    with pytest.raises(OutputLockedError), staged_folder(tmp_path / "out"):
        pass
    assert sorted(path.name for path in tmp_path.iterdir()) == [lock_path(tmp_path / "out").name]


def test_the_lock_of_a_killed_holder_is_taken_over_with_a_note(holder, tmp_path, caplog):
    process = holder()
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert lock_path(tmp_path / "out").exists()  # left behind by kill -9
    with output_lock(tmp_path / "out"):
        pass
    assert f"took over the lock of pid {process.pid}" in caplog.text
    assert not lock_path(tmp_path / "out").exists()


def test_a_released_lock_leaves_no_file_and_can_be_taken_again(tmp_path):
    with output_lock(tmp_path / "out", tmp_path / "out-checkpoints"):
        assert lock_path(tmp_path / "out-checkpoints").exists()
    assert list(tmp_path.iterdir()) == []
    with output_lock(tmp_path / "out"):
        pass


def test_the_processes_of_one_launch_other_than_rank_0_take_no_lock(holder, tmp_path, monkeypatch):
    holder()
    monkeypatch.setenv("RANK", "1")
    with output_lock(tmp_path / "out"):
        pass
