"""The resumable per-item prediction log of an evaluation run (``predictions.jsonl``).

One JSON line per scored item, appended batch by batch and flushed to disk, so an interrupted run
loses at most the batch in flight. A restarted run reads the log back, skips the items already in
it and drops a torn last line. ``run.json`` records what produced the log; resuming with a
different model, data, split or generation setting is refused instead of mixing two runs.

Under data parallelism each process appends to its own shard file,
``predictions.shard-<rank>-of-<processes>.jsonl``, and every process reads all the folder's files,
so a restarted run (with any number of processes) skips whatever any shard finished; rank 0 then
folds the shards into ``predictions.jsonl`` (:meth:`PredictionLog.merge_shards`).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from babyvlm.staging import staged_file, write_text

PREDICTIONS_FILE = "predictions.jsonl"
SHARD_FILES = "predictions.shard-*-of-*.jsonl"
RUN_FILE = "run.json"
SCOPE_KEY = "scope"
"""The part of ``run.json`` that says what limited the finished run (``--limit``, skipped tasks...): recorded
after scoring and not part of the configuration a resumed run must match."""


class RunMismatchError(ValueError):
    """The output folder holds predictions of a differently configured run."""


class PredictionLog:
    """Append-only log of scored items, grouped by task on read.

    ``shard=(rank, processes)`` makes this process append to its own shard file; only rank 0 checks
    and writes ``run.json`` (construct it there first).
    """

    def __init__(self, output_dir: str | Path, run_config: dict, shard: tuple[int, int] | None = None):
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.output_dir / PREDICTIONS_FILE
        if shard is not None and shard[1] > 1:
            self.path = self.output_dir / f"predictions.shard-{shard[0]}-of-{shard[1]}.jsonl"
        if shard is None or shard[0] == 0:
            self._check_run_config(run_config)
        self.entries: dict[str, dict[str, dict]] = defaultdict(dict)
        self.refresh()

    def _files(self) -> list[Path]:
        main = self.output_dir / PREDICTIONS_FILE
        return ([main] if main.exists() else []) + sorted(self.output_dir.glob(SHARD_FILES))

    def refresh(self) -> None:
        """Read every prediction file of the folder (this process's and the other shards')."""
        for path in self._files():
            self._read(path)

    def _check_run_config(self, run_config: dict) -> None:
        run_file = self.output_dir / RUN_FILE
        if run_file.exists() and self._files():
            previous = json.loads(run_file.read_text())
            previous.pop(SCOPE_KEY, None)
            if previous != run_config:
                changed = sorted(
                    key for key in previous.keys() | run_config.keys() if previous.get(key) != run_config.get(key)
                )
                raise RunMismatchError(
                    f"{self.output_dir} holds predictions of another run (different {', '.join(changed)}); "
                    "choose a new output folder or delete it"
                )
        write_text(run_file, json.dumps(run_config, indent=2, sort_keys=True) + "\n")

    def record_scope(self, scope: dict) -> None:
        """Add what limited the finished run to ``run.json``."""
        run_file = self.output_dir / RUN_FILE
        run_config = json.loads(run_file.read_text())
        write_text(run_file, json.dumps({**run_config, SCOPE_KEY: scope}, indent=2, sort_keys=True) + "\n")

    def _read(self, path: Path) -> None:
        data = path.read_bytes()
        # A run killed mid-write leaves a last line without its newline: drop it, it is redone.
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with path.open("r+b") as handle:
                handle.truncate(len(complete))
        for line_number, line in enumerate(complete.decode().splitlines(), start=1):
            try:
                entry = json.loads(line)
                self.entries[entry["task"]][entry["id"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f"{path}, line {line_number}: not a prediction entry ({error})") from error

    def done(self, task: str) -> dict[str, dict]:
        """The logged entries of ``task`` by item id."""
        return self.entries[task]

    def append(self, entries: list[dict]) -> None:
        """Log entries durably (flushed and synced) before they count as done."""
        with self.path.open("a") as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in entries)
            handle.flush()
            os.fsync(handle.fileno())
        for entry in entries:
            self.entries[entry["task"]][entry["id"]] = entry

    def merge_shards(self) -> None:
        """Fold every shard file into ``predictions.jsonl`` (written whole, then renamed) and remove them."""
        shards = sorted(self.output_dir.glob(SHARD_FILES))
        if not shards:
            return
        self.refresh()
        merged = self.output_dir / PREDICTIONS_FILE
        with staged_file(merged) as partial, partial.open("w") as handle:
            handle.writelines(json.dumps(entry) + "\n" for task in self.entries.values() for entry in task.values())
            handle.flush()
            os.fsync(handle.fileno())
        for shard in shards:
            shard.unlink()
