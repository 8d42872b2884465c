"""Shortcut audit: how often is a DevCV gold answer recoverable without looking at the task?

Per source, task and split it measures

- ``majority``: accuracy of always answering the split's most frequent gold answer of each round
  (a prior-only solver; for single-turn tasks this is the share of the most common answer),
- ``positions``: share of gold answers at each option position (A = the first option offered,
  also for VDR words), i.e. answer-position bias,
- ``gold_is_query`` (query-vs-options tasks: Left/Right, Spatial Details): share of items whose
  gold option image is byte-identical to the query image,
- ``pixel_solver`` (same tasks): accuracy of picking, without reading the prompt, the option in
  which the query image fits best pixel-wise (direct difference for same-size images, best
  placement for a crop).

A value far above the task's chance level means the item set leaks its answer. Generated items
are audited per construction (``provenance["construction"]``: ``released`` or ``hardened``, see
``generators/spatial.py``), so a folder holding both reports each.

Command line: ``babyvlm data audit DATASET_DIR [--json PATH]``.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from PIL import Image
from scipy.signal import fftconvolve

from babyvlm.command_line import command_parser, fail

from .stream import iter_undecoded_rows

WORKING_SIDE = 128
"""Pixel solver resolution: the longest side of an item's largest image, in pixels."""
AUDIT_COLUMNS = ("source", "task", "split", "answer", "choices", "images", "provenance")


@dataclass
class ShortcutAudit:
    """Shortcut measurements of one source/task/split; rates are in [0, 1], None where not applicable."""

    source: str
    task: str
    split: str
    items: int
    chance: float
    top_answer: str
    top_answer_rate: float
    majority: float
    positions: dict[str, float] = field(default_factory=dict)
    gold_is_query: float | None = None
    pixel_solver: float | None = None
    construction: str = ""
    """How generated items were built (``released`` / ``hardened``); empty for released data."""


def _image_bytes(image: dict) -> bytes:
    if image["bytes"] is not None:
        return image["bytes"]
    return Path(image["path"]).read_bytes()


def _grey_images(images: list[bytes]) -> list[np.ndarray]:
    """Greyscale arrays of one item's images, all scaled by one factor so relative sizes are kept."""
    opened = [Image.open(io.BytesIO(data)) for data in images]
    scale = WORKING_SIDE / max(max(image.size) for image in opened)
    arrays = []
    for image in opened:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        arrays.append(np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=np.float64))
        image.close()
    return arrays


def placement_distance(query: np.ndarray, option: np.ndarray) -> float:
    """Mean squared pixel difference of ``query`` at its best placement inside ``option``.

    A query as large as the option (Left/Right) is compared directly; a smaller one (a Spatial
    Details crop) slides over the option; a query that does not fit is resized to the option.
    """
    if query.shape[0] > option.shape[0] or query.shape[1] > option.shape[1]:
        query = np.asarray(
            Image.fromarray(query).resize(option.shape[::-1], Image.Resampling.BILINEAR), dtype=np.float64
        )
    if query.shape == option.shape:
        return float(((query - option) ** 2).mean())
    # Sum of squared differences at every placement: sum(O^2 over window) - 2 corr(O, Q) + sum(Q^2).
    correlation = fftconvolve(option, query[::-1, ::-1], mode="valid")
    window_energy = fftconvolve(option**2, np.ones_like(query), mode="valid")
    squared_differences = window_energy - 2 * correlation + (query**2).sum()
    return float(squared_differences.min() / query.size)


def _option_index(answer: str) -> int | None:
    """``"B"`` -> 1; None when the gold answer is not a single option letter."""
    letter = answer.strip().upper()
    return ord(letter) - ord("A") if len(letter) == 1 and "A" <= letter <= "Z" else None


@dataclass
class _GroupStats:
    items: int = 0
    answers: Counter = field(default_factory=Counter)
    answers_by_round: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    positions: Counter = field(default_factory=Counter)
    query_items: int = 0
    gold_is_query: int = 0
    pixel_solver: int = 0

    def add(self, row: dict) -> None:
        self.items += 1
        for round_index, answer in enumerate(row["answer"]):
            self.answers[answer] += 1
            self.answers_by_round[round_index][answer] += 1
            if answer in row["choices"]:
                self.positions[row["choices"].index(answer)] += 1
        if TASKS[row["task"]].first_image_is_query and row["answer"]:
            self._add_query_option(row["images"], _option_index(row["answer"][0]))

    def _add_query_option(self, images: list[dict], gold: int | None) -> None:
        if gold is None or gold + 1 >= len(images):
            return
        query, *options = [_image_bytes(image) for image in images]
        self.query_items += 1
        self.gold_is_query += options[gold] == query
        query_pixels, *option_pixels = _grey_images([query, *options])
        distances = [placement_distance(query_pixels, pixels) for pixels in option_pixels]
        self.pixel_solver += int(np.argmin(distances)) == gold

    def result(self, source: str, task: str, split: str, construction: str) -> ShortcutAudit:
        total_answers = sum(self.answers.values())
        top_answer, top_count = self.answers.most_common(1)[0] if self.answers else ("", 0)
        majority_hits = sum(counter.most_common(1)[0][1] for counter in self.answers_by_round.values())
        positioned = sum(self.positions.values())
        return ShortcutAudit(
            source=source,
            task=task,
            split=split,
            items=self.items,
            chance=TASKS[task].chance,
            top_answer=top_answer,
            top_answer_rate=top_count / total_answers if total_answers else 0.0,
            majority=majority_hits / total_answers if total_answers else 0.0,
            positions={chr(ord("A") + index): count / positioned for index, count in sorted(self.positions.items())},
            gold_is_query=self.gold_is_query / self.query_items if self.query_items else None,
            pixel_solver=self.pixel_solver / self.query_items if self.query_items else None,
            construction=construction,
        )


def audit_rows(rows: Iterable[dict]) -> list[ShortcutAudit]:
    """Audit DevCV rows whose ``images`` are undecoded ``{"bytes", "path"}`` values, grouped by source/task/split."""
    groups: dict[tuple[str, str, str, str], _GroupStats] = defaultdict(_GroupStats)
    for row in rows:
        construction = json.loads(row.get("provenance") or "{}").get("construction", "")
        groups[row["source"], row["task"], row["split"], construction].add(row)
    return [stats.result(*key) for key, stats in sorted(groups.items())]


def audit_dataset(
    path: str | Path, config: str | None = None, cache_dir: str | Path | None = None
) -> list[ShortcutAudit]:
    """Audit every split of a DevCV dataset folder (default config: ``all``)."""
    return audit_rows(iter_undecoded_rows(path, config, columns=list(AUDIT_COLUMNS), cache_dir=cache_dir))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


AUDIT_HEADER = (
    "source",
    "task",
    "split",
    "items",
    "chance",
    "top answer",
    "majority",
    "gold position",
    "gold = query",
    "pixel solver",
)


def audit_table_rows(results: list[ShortcutAudit]) -> list[tuple[str, ...]]:
    """One row of display strings per audited group, matching :data:`AUDIT_HEADER`."""
    return [
        (
            result.source,
            f"{result.task} ({result.construction})" if result.construction else result.task,
            result.split,
            str(result.items),
            _percent(result.chance),
            f"{result.top_answer} ({_percent(result.top_answer_rate)})",
            _percent(result.majority),
            " ".join(f"{position}:{_percent(share)}" for position, share in result.positions.items()) or "—",
            _percent(result.gold_is_query),
            _percent(result.pixel_solver),
        )
        for result in results
    ]


def format_audit_text(results: list[ShortcutAudit]) -> str:
    """The audit as an aligned plain-text table."""
    table = [AUDIT_HEADER, *audit_table_rows(results)]
    widths = [max(len(row[column]) for row in table) for column in range(len(AUDIT_HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)


def format_audit_report(results: list[dict] | None) -> str:
    """What a build prints at its end: the audit its report records (``asdict`` of each result) as a titled
    table, or (None) a line saying it was not run."""
    if results is None:
        return "Shortcut audit: not run (--no-audit); run babyvlm data audit on the folder"
    table = format_audit_text([ShortcutAudit(**result) for result in results])
    return f"Shortcut audit (compare with chance):\n{table}"


def format_audit_markdown(results: list[ShortcutAudit]) -> str:
    """The audit as a markdown table (for the dataset card)."""
    lines = ["| " + " | ".join(AUDIT_HEADER) + " |", "|" + "---|" * len(AUDIT_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in audit_table_rows(results)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``babyvlm data audit``."""
    parser = command_parser(
        "data audit",
        __doc__.split("\n\n")[0],
        ["babyvlm data audit devcv --json devcv-audit.json", "babyvlm data audit devcv --config count"],
    )
    parser.add_argument(
        "dataset", help="a DevCV dataset folder written by babyvlm data devcv (or any folder with the DevCV schema)"
    )
    parser.add_argument("--config", default=None, help="config to audit (default: the dataset's default config, 'all')")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    try:
        results = audit_dataset(args.dataset, args.config)
    except (FileNotFoundError, ValueError) as error:
        return fail(parser, error)
    print(format_audit_text(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
