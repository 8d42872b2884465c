"""Dataset folders and the Hub: build from a dataset repository, publish a built folder.

- A ``SOURCE`` of ``babyvlm data devcv`` that is no local path but ``REPO_ID[@REVISION]`` (the
  public Ego4D test set ``wsashawn/devcv_toolbox_ego4d``, or any dataset repository in a released
  layout) is downloaded by :func:`babyvlm.hub.dataset_snapshot` and built like a local folder.
- ``--push-to-hub ORG/NAME`` uploads a built DevCV folder, or the corpora of a SAYCam build, as one
  commit, so that ``load_dataset("ORG/NAME", "count")`` (``"image_utterance"``...) works. What may be
  uploaded is decided by :mod:`.licences` from the sources of the rows: never the images of a source
  whose licence the card does not state, SAYCam-derived items only to a private or gated
  repository; ``--gated`` gates the repository (``gated="manual"``) and puts the access terms in
  the card (``extra_gated_prompt``, ``extra_gated_fields``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from babyvlm import __version__
from babyvlm.hub import HubUploadError, dataset_snapshot, folder_files, parse_hub_reference, upload

from .devcv.card import FOLDER_PLACEHOLDER
from .licences import card_licence, gate_metadata, licence_section, publication_problem, size_category
from .saycam.cards import SOURCE as SAYCAM_SOURCE

CARD_FILE = "README.md"


class PublicationRefused(ValueError):
    """A push the sources' licences do not allow (the message is the one line saying why)."""


def resolve_sources(sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each ``SOURCE`` as a local path, and the Hub origins among them (repo, revision and commit, for the card).

    A ``SOURCE`` that names no local file or folder but a Hub dataset repository (``owner/name[@revision]``) is
    downloaded (or found in the Hub cache) and its snapshot folder stands for it."""
    paths, origins = [], []
    for source in sources:
        reference = None if Path(source).exists() else parse_hub_reference(source)
        if reference is None:
            paths.append(source)
            continue
        try:
            snapshot = dataset_snapshot(*reference)
        except ValueError as error:
            raise ValueError(f"{source} is no local file or folder, and as a Hub dataset repo: {error}") from error
        print(f"{source}: {snapshot.describe()}", file=sys.stderr)
        paths.append(str(snapshot.path))
        origins.append(snapshot.describe())
    return paths, origins


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    """``--push-to-hub ORG/NAME``, ``--private``, ``--gated`` on a builder's command line."""
    hub = parser.add_argument_group("Hub")
    hub.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload the built dataset to this dataset repo")
    hub.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo as private")
    hub.add_argument(
        "--gated",
        action="store_true",
        help="with --push-to-hub: gate the repo (access requests approved by its owners, the access terms in the card)",
    )


def check_push_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.private or args.gated) and not args.push_to_hub:
        parser.error("--private and --gated apply to --push-to-hub")


def _holds_image_paths(folder: str | Path) -> bool:
    """Whether a DevCV folder stores image path references (``--image-paths``) instead of the images."""
    for shard in sorted(Path(folder).glob("data/**/*.parquet")):
        images = pq.ParquetFile(shard).read_row_group(0, columns=["images"]).column("images")
        stored = pc.list_flatten(images).combine_chunks()
        if len(stored) and stored.field("bytes").null_count == len(stored):
            return True
    return False


def devcv_sources(folder: str | Path) -> list[str]:
    """The distinct ``source`` values of a DevCV folder's rows (read from the shards' ``source`` column alone)."""
    sources = set()
    for shard in sorted(Path(folder).glob("data/**/*.parquet")):
        sources.update(pq.read_table(shard, columns=["source"]).column("source").unique().to_pylist())
    return sorted(sources)


@dataclass(frozen=True)
class Publication:
    """What a push uploads: ``files`` (``{path in repo: local file or bytes}``), the ``sources`` of its items, and
    ``what`` it is (for the commit message)."""

    files: dict[str, Path | bytes]
    sources: list[str]
    what: str


def devcv_publication(folder: str | Path, repo_id: str, gated: bool) -> Publication:
    """A DevCV folder as it goes to ``repo_id``: shards, build report, and the card, its loading example naming the
    repo, with the gate's terms when ``gated``.

    ``PublicationRefused`` when the card does not state the licence of the sources its rows come from, or the
    folder holds image paths instead of images.
    """
    if _holds_image_paths(folder):
        raise PublicationRefused(f"{folder} holds local image paths, not images (--image-paths): build without it")
    sources = devcv_sources(folder)
    files: dict[str, Path | bytes] = dict(folder_files(folder))
    card = DatasetCard(files[CARD_FILE].read_text(encoding="utf-8").replace(f'"{FOLDER_PLACEHOLDER}"', f'"{repo_id}"'))
    stated = {key: card.data.get(key) for key in ("license", "license_name", "license_link")}
    expected = card_licence(sources)
    if {key: value for key, value in stated.items() if value} != expected:
        raise PublicationRefused(
            f"the card of {folder} states the licence {stated['license_name'] or stated['license']!r}, not that of "
            f"its sources ({', '.join(sources)}: {expected.get('license_name', expected['license'])!r}); rebuild it"
        )
    if gated:
        for key, value in gate_metadata(sources).items():
            card.data[key] = value
    files[CARD_FILE] = str(card).encode()
    return Publication(files, sources, "DevCV Toolbox")


def saycam_publication(output: str | Path, repo_id: str, gated: bool) -> Publication:
    """The corpora of a SAYCam build as one repository: ``<corpus>/data/...`` and one config per corpus.

    Each corpus keeps its own card as ``<corpus>/README.md``; the repository card at the top names
    every corpus's configs, features and sizes (from those cards), licence, task and size categories.
    """
    output = Path(output)
    corpora = sorted(path.parent for path in output.glob(f"*/{CARD_FILE}") if (path.parent / "data").is_dir())
    if not corpora:
        raise FileNotFoundError(f"{output}: no SAYCam corpus folder (<corpus>/README.md and <corpus>/data/)")
    configs, infos, categories, rows, sections = [], [], set(), 0, []
    for corpus in corpora:
        data = DatasetCard.load(corpus / CARD_FILE).data
        for config in data.configs or []:
            files = [{**entry, "path": f"{corpus.name}/{entry['path']}"} for entry in config["data_files"]]
            configs.append({"config_name": corpus.name, "data_files": files})
        info = data.get("dataset_info")
        if info:
            infos.append({**(info[0] if isinstance(info, list) else info), "config_name": corpus.name})
            rows += sum(split["num_examples"] for split in infos[-1].get("splits", []))
        categories.update(data.task_categories or [])
        sections.append(f"- `{corpus.name}`: {data.pretty_name} ([card]({corpus.name}/{CARD_FILE}))")
    sources = [SAYCAM_SOURCE]
    card_data = DatasetCardData(
        pretty_name="SAYCam pretraining corpora (BabyVLM-V2)",
        **card_licence(sources),
        task_categories=sorted(categories),
        size_categories=[size_category(rows)],
        tags=["babyvlm", "saycam", "developmental", "egocentric"],
        configs=configs,
        dataset_info=infos or None,
        **(gate_metadata(sources) if gated else {}),
    )
    body = f"""# SAYCam pretraining corpora

The corpora BabyLLaVA-V2 is trained on, built by `babyvlm data saycam` (babyvlm {__version__}) from a
local copy of SAYCam. One config per corpus:

{chr(10).join(sections)}

```python
from datasets import load_dataset

pairs = load_dataset("{repo_id}", "image_utterance", split="train")
```

## Licence and access

{licence_section(sources)}

`build_report.json` accounts for every recording and utterance of the build.
"""
    files: dict[str, Path | bytes] = {
        f"{corpus.name}/{name}": path for corpus in corpora for name, path in folder_files(corpus).items()
    }
    if (output / "build_report.json").is_file():
        files["build_report.json"] = output / "build_report.json"
    files[CARD_FILE] = str(DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")).encode()
    return Publication(files, sources, "SAYCam corpora")


def push_dataset(
    repo_id: str, publication: Publication, *, private: bool = False, gated: bool = False, api: HfApi | None = None
) -> str:
    """Upload ``publication`` to the dataset repo ``repo_id`` as one commit, if its sources' licences allow it."""
    problem = publication_problem(publication.sources, private=private, gated=gated)
    if problem:
        raise PublicationRefused(f"not uploaded to {repo_id}: {problem}")
    return upload(
        repo_id,
        publication.files,
        repo_type="dataset",
        private=private,
        gated=gated,
        commit_message=f"{publication.what} built by babyvlm {__version__}",
        api=api,
    )


def push_from_args(
    args: argparse.Namespace, folder: str | Path, publication: Callable[[str | Path, str, bool], Publication]
) -> int:
    """The ``--push-to-hub`` step of a builder's command (``publication``: :func:`devcv_publication` or
    :func:`saycam_publication`); returns the exit status: 1, with one line saying why, when nothing was uploaded."""
    if not args.push_to_hub:
        return 0
    try:
        url = push_dataset(
            args.push_to_hub, publication(folder, args.push_to_hub, args.gated), private=args.private, gated=args.gated
        )
    except (PublicationRefused, HubUploadError, FileNotFoundError) as error:
        print(f"error: {error}; {folder} is complete", file=sys.stderr)
        return 1
    print(f"pushed to {url}")
    return 0
