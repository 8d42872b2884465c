"""The resumable per-item prediction log of an evaluation run (``predictions.jsonl``).

One JSON line per scored item, appended batch by batch and flushed to disk, so an interrupted run
loses at most the batch in flight. A restarted run reads the log back, skips the items already in
it and drops a torn last line. ``run.json`` records what produced the log; resuming with a
different model, data, split or generation setting is refused instead of mixing two runs. The record
holds the content digests of the model's files and of the dataset's shards (:func:`run_content`), so
weights replaced in place or a dataset rebuilt under the same folder are a different run too, and the same
files moved or copied to other folders are the same run (it resumes); a refused run starts over with
``restart`` (``--restart``).

Under data parallelism each process appends to its own shard file,
``predictions.shard-<rank>-of-<processes>.jsonl``, and every process reads all the folder's files,
so a restarted run (with any number of processes) skips whatever any shard finished; rank 0 then
folds the shards into ``predictions.jsonl`` (:meth:`PredictionLog.merge_shards`).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from babyvlm.digests import DIGEST_CACHE_FILE, file_digests, model_files
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

    def __init__(
        self, output_dir: str | Path, run_config: dict, shard: tuple[int, int] | None = None, restart: bool = False
    ):
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if restart and (shard is None or shard[0] == 0):
            for path in self._files():
                path.unlink()
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
            if _identity(previous) != _identity(run_config):
                different = _differences(_identity(previous), _identity(run_config))
                raise RunMismatchError(
                    f"{self.output_dir} holds predictions of another run (different {different}); "
                    "pass --restart to start it over, or choose a new output folder"
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


def _identity(run_config: dict) -> dict:
    """What makes two runs the same run: every setting, with the model's and the data's folders standing for
    themselves only where no content digest stands for them (a Hub id, an API model), so a model or dataset
    moved or copied elsewhere resumes its run and one changed in place does not."""
    content = run_config.get("content") or {}
    by_content = {"model": "model/", "data": "data/"}
    return {
        key: value
        for key, value in run_config.items()
        if not (key in by_content and any(name.startswith(by_content[key]) for name in content))
    }


def _differences(previous: dict, current: dict) -> str:
    """The settings that differ, and for the content digests the files that changed, appeared or went."""
    parts = []
    for key in sorted(previous.keys() | current.keys()):
        before, now = previous.get(key), current.get(key)
        if before == now:
            continue
        if key == "content" and isinstance(before, dict) and isinstance(now, dict):
            files = sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))
            shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
            parts.append(f"content: {shown}")
        else:
            parts.append(key)
    return "; ".join(parts)


def run_content(
    model_folder: str | Path | None, data_dir: Path, data_files: Iterable[str | Path], output_dir: Path
) -> dict[str, str]:
    """SHA-256 of the model folder's files (``model/<name>``; none for a Hub id or an API model) and of the data
    files read (``data/<path in the dataset folder>``), cached in the run folder (:mod:`babyvlm.digests`)."""
    files = {}
    if model_folder is not None and Path(model_folder).is_dir():
        files.update({f"model/{name}": path for name, path in model_files(Path(model_folder)).items()})
    for data_file in data_files:
        path = Path(data_file)
        files[f"data/{os.path.relpath(path, data_dir)}"] = path
    return file_digests(files, Path(output_dir) / DIGEST_CACHE_FILE)


GENERIC_MODEL_FOLDER = re.compile(r"^(model|final|best|last|hf|checkpoint[-_]?\d*|step[-_]?\d+)$", re.IGNORECASE)
"""Folder names that say where a model is in a training run, not which model it is (``babyvlm-demo/model``)."""


def model_name(run_config: dict) -> str | None:
    """The name of the model a run scored, from its ``run.json``: a Hub id as it is (``Qwen/Qwen2.5-VL-3B-Instruct``),
    a local folder by its name (with its parent's where the name is only a stage: ``babyvlm-demo/model``,
    ``sft/checkpoint-500``), an API model by its name without the endpoint; None where the run records none.

    >>> model_name({"model": "/runs/babyvlm-demo/model"}), model_name({"model": "/models/qwen2.5-vl-3b"})
    ('babyvlm-demo/model', 'qwen2.5-vl-3b')
    >>> model_name({"model": "Qwen/Qwen2.5-VL-3B-Instruct"}), model_name({"model": "openai:gpt-4o @ http://host/v1"})
    ('Qwen/Qwen2.5-VL-3B-Instruct', 'openai:gpt-4o')
    """
    model = str(run_config.get("model") or "").split(" @ ")[0].rstrip("/")
    parts = model.split("/")
    if len(parts) == 2 and parts[0] and not model.startswith("."):  # a Hub id (or a folder given by that much)
        return model
    return "/".join(parts[-2:]) if GENERIC_MODEL_FOLDER.match(parts[-1]) else parts[-1] or None


def distinct_names(names: list[str], folders: list[Path]) -> list[str]:
    """Each run's name, followed by its run folder's name where another run has the same name (two runs of one
    model), by parent/folder where those folder names are shared too.

    >>> distinct_names(["baby", "baby", "qwen"], [Path("eval/seed0"), Path("eval/seed1"), Path("eval/qwen")])
    ['baby (seed0)', 'baby (seed1)', 'qwen']
    """
    shared = [name for name in names if names.count(name) > 1]
    tags = [folder.name for folder in folders]
    tags = [tag if tags.count(tag) == 1 else f"{folder.parent.name}/{tag}" for tag, folder in zip(tags, folders)]
    return [f"{name} ({tag})" if name in shared else name for name, tag in zip(names, tags)]
