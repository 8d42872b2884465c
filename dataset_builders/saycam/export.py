"""Export a chat corpus to the original LLaVA JSON layout.

``{output}/{split}.json`` holds ``[{"id", "image": [paths], "conversations": [{"from": "human",
"value": "<image>"}, {"from": "gpt", "value": utterance}]}]`` and the frames are written as JPEG
files ``{output}/images/{format}/{recording}_{startMs}_{endMs}_frame_{k}.jpg`` (paths in the JSON
are relative to ``{output}``). The JPEG bytes are copied as stored, never re-encoded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from babyvlm.chat import messages_to_conversations
from babyvlm.staging import staged_file


def export_llava(corpus_dir: str | Path, output_dir: str | Path) -> dict[str, int]:
    """Export every split of the chat corpus in ``corpus_dir``; returns the item count per split."""
    corpus_dir, output_dir = Path(corpus_dir), Path(output_dir)
    if not (corpus_dir / "README.md").is_file():
        raise FileNotFoundError(f"{corpus_dir} is not a built corpus (no dataset card)")
    data = corpus_dir / "data"
    counts = {}
    for split_dir in sorted(p for p in data.iterdir() if p.is_dir()) if data.is_dir() else []:
        counts[split_dir.name] = _export_split(
            sorted(split_dir.glob("*.parquet")), corpus_dir.name, output_dir, split_dir.name
        )
    return counts


def _export_split(files: list[Path], corpus: str, output_dir: Path, split: str) -> int:
    target = output_dir / f"{split}.json"
    count = 0
    # Streamed one recording file at a time, so memory stays flat on a 768K-pair corpus.
    with staged_file(target) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write("[")
        for file in files:
            for row in pq.read_table(file).to_pylist():
                item = {
                    "id": row["id"],
                    "image": [_write_image(output_dir, row.get("format", corpus), image) for image in row["images"]],
                    "conversations": messages_to_conversations(row["messages"]),
                }
                handle.write(("\n" if count == 0 else ",\n") + json.dumps(item, ensure_ascii=False))
                count += 1
        handle.write("\n]\n")
    return count


def _write_image(output_dir: Path, image_format: str, image: dict) -> str:
    relative = Path("images") / image_format / image["path"]
    path = output_dir / relative
    if not path.exists():  # frames shared by several records are written once
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image["bytes"])
    return relative.as_posix()
