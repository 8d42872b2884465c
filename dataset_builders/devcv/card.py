"""The dataset folder's README.md: YAML ``configs`` that make ``load_dataset`` work, plus the dataset card."""

from __future__ import annotations

from collections.abc import Sequence

from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from huggingface_hub import DatasetCard, DatasetCardData

from babyvlm.chat import content_to_text

from ..licences import card_licence, licence_section, size_category
from .audit import ShortcutAudit, format_audit_markdown
from .report import BuildReport
from .schema import COLUMN_DESCRIPTIONS, DEVCV_FEATURES

ALL_CONFIG = "all"
FOLDER_PLACEHOLDER = "path/to/this/folder"
"""What the card's loading example passes to ``load_dataset``; a Hub upload puts the repo id there."""
SPLIT_ORDER = ("train", "validation", "test")

ACCESS_NOTE = """\
SAYCam frames are gated: access goes through Databrary and requires an approved data-use
agreement. `babyvlm data devcv` only packages a copy the user already holds; it never downloads
or redistributes frames. A folder built from SAYCam items (or from any source with a licence
that forbids redistribution) must not be uploaded publicly: `--push-to-hub` sends it only to a
private or gated repository. Ego4D items fall under the Ego4D licence; the public Ego4D DevCV
test set is released as `wsashawn/devcv_toolbox_ego4d`."""


def _ordered_splits(splits) -> list[str]:
    return sorted(
        set(splits), key=lambda split: (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)
    )


def shard_pattern(task: str, split: str) -> str:
    """Glob of the parquet shards of one task and split, relative to the dataset folder."""
    return f"data/{task}/{split}-*.parquet"


def configs_yaml(counts: dict[str, dict[str, int]], fingerprint: str) -> list[dict]:
    """The README ``configs``: ``all`` (default, every task) then one config per task, in registry order.

    Each config's ``description`` carries the shard fingerprint: 🤗 datasets keys its cache of a
    local folder on the README configs only (not on the files), so without it a rebuilt folder
    would be served from the stale cache of the previous build.
    """
    all_splits = _ordered_splits(split for per_split in counts.values() for split in per_split)
    configs = [
        {
            "config_name": ALL_CONFIG,
            "default": True,
            "description": f"every DevCV task; shards sha256 {fingerprint}",
            "data_files": [{"split": split, "path": shard_pattern("*", split)} for split in all_splits],
        }
    ]
    for task in TASKS:
        written = {split: n for split, n in counts.get(task, {}).items() if n}
        if written:
            configs.append(
                {
                    "config_name": task,
                    "description": f"{TASKS[task].display_name}; shards sha256 {fingerprint}",
                    "data_files": [
                        {"split": split, "path": shard_pattern(task, split)} for split in _ordered_splits(written)
                    ],
                }
            )
    return configs


def _counts_table(counts: dict[str, dict[str, int]]) -> str:
    splits = _ordered_splits(split for per_split in counts.values() for split in per_split)
    lines = [
        "| task | harness key | " + " | ".join(splits) + " | answer | chance | primary metric |",
        "|" + "---|" * (len(splits) + 5),
    ]
    for name, task in TASKS.items():
        if name in counts:
            cells = [str(counts[name].get(split, 0)) for split in splits]
            lines.append(
                f"| {name} | `{task.harness_key}` | "
                + " | ".join(cells)
                + f" | {task.answer_type or task.protocol} | {100 * task.chance:.1f}% | {task.primary_metric} |"
            )
    return "\n".join(lines)


def first_prompt(row: dict) -> str:
    """Text of a row's first user turn (``""`` for prompt-less tasks): what the card shows per task."""
    return next((content_to_text(message["content"]) for message in row["messages"] if message["role"] == "user"), "")


def _prompts_section(prompts: dict[str, str]) -> str:
    lines = []
    for task in TASKS:
        if task in prompts:
            # One line per task: escape the newline some prompts have (Picture Vocabulary).
            prompt = prompts[task].replace("\n", "\\n")
            lines.append(f"- **{task}**: `{prompt}`" if prompt else f"- **{task}**: no prompt (scored by LM loss)")
    return "\n".join(lines)


def _schema_table() -> str:
    lines = ["| column | type | description |", "|---|---|---|"]
    lines += [
        f"| `{name}` | `{DEVCV_FEATURES[name]!r}` | {description} |"
        for name, description in COLUMN_DESCRIPTIONS.items()
    ]
    return "\n".join(lines)


def render_devcv_card(
    *,
    counts: dict[str, dict[str, int]],
    fingerprint: str,
    prompts: dict[str, str],
    audit: list[ShortcutAudit] | None,
    contents: str,
    provenance: str,
    access: str,
    sources: list[str],
    build_report: str,
) -> str:
    """Full README.md of a DevCV folder: YAML front matter with the configs, then what the folder holds
    (``contents``), ``provenance``, ``access``, schema, counts, prompts, shortcut audit, ``build_report``.

    ``counts`` are written items per task and split; ``prompts`` maps each task to the text of one of
    its prompts (``<image>`` where images go). The licence is that of the ``sources`` the items come from
    (:mod:`..licences`), each source's terms listed after ``access``.
    """
    card_data = DatasetCardData(
        pretty_name="DevCV Toolbox",
        **card_licence(sources),
        language=["en"],
        task_categories=["visual-question-answering"],
        size_categories=[size_category(sum(n for per_split in counts.values() for n in per_split.values()))],
        tags=["developmental-psychology", "babyvlm", "devcv"],
        configs=configs_yaml(counts, fingerprint),
    )
    audit_section = (
        format_audit_markdown(audit)
        if audit
        else "Not run (build with the audit enabled, or run `babyvlm data audit`)."
    )
    body = f"""# DevCV Toolbox

The DevCV Toolbox (BabyVLM-V2) adapts the vision measures of the NIH Baby Toolbox into
developmentally grounded tasks for vision-language models. This folder holds {contents}
as a 🤗 dataset: one config per task and an `all` config (the default) holding every task.

```python
from datasets import load_dataset

pv = load_dataset("{FOLDER_PLACEHOLDER}", "picture_vocabulary", split="test")
everything = load_dataset("{FOLDER_PLACEHOLDER}")  # the `all` config
```

## Provenance

{provenance}

## Licence and access

{access}

Terms of each source in this folder:

{licence_section(sources)}

## Schema

Every config has the same columns.

{_schema_table()}

## Tasks and counts

{_counts_table(counts)}

## Prompts

One prompt per task (`<image>` marks where an image goes):

{_prompts_section(prompts)}

## Shortcut audit

How often the gold answer is recoverable without solving the task (`majority`: always give the
most frequent gold answer of each round; `gold position`: share of gold answers per option
position, A = first option offered; `gold = query`: gold option image byte-identical to the query
image; `pixel solver`: pick the option whose pixels are nearest the query's). Compare with chance.

{audit_section}

## Build report

{build_report}
"""
    return str(DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}"))


def render_card(
    report: BuildReport,
    sources: list[str],
    prompts: dict[str, str],
    audit: list[ShortcutAudit] | None,
    origins: Sequence[str] = (),
) -> str:
    """The card of a folder built from released layouts (see :func:`render_devcv_card`); ``origins`` name the Hub
    repositories (revision and commit) the layouts were downloaded from."""
    downloaded = "".join(f"\n- downloaded from the Hub: {origin}" for origin in origins)
    skip_lines = (
        "\n".join(f"- `{reason}`: {count}" for reason, count in sorted(report.skip_reasons().items())) or "- none"
    )
    return render_devcv_card(
        counts=report.counts(),
        fingerprint=report.fingerprint,
        prompts=prompts,
        audit=audit,
        contents="the released items",
        provenance=f"""Built by `babyvlm data devcv` from the released JSON layouts of: {
            ", ".join(sorted(set(sources)))
        }.{downloaded}
Items are reproduced losslessly: `babyvlm.dataset_builders.devcv.export` writes them back to the
released layout. Shard fingerprint (SHA-256): `{report.fingerprint}`.""",
        access=ACCESS_NOTE,
        sources=sources,
        build_report=f"""{report.items} released items read, {report.written} written, {len(report.skipped)} skipped
({len(report.skipped_files)} file(s) skipped). Skip reasons:

{skip_lines}

Every skipped item is listed in `build_report.json`.""",
    )
