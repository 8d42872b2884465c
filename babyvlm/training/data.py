"""Training data: one dataset or a weighted mixture of dataset folders (DevCV tasks, SAYCam corpora)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets import (
    Dataset,
    Image,
    List,
    concatenate_datasets,
    get_dataset_config_names,
    interleave_datasets,
    load_dataset,
    load_dataset_builder,
)
from datasets.info import DatasetInfosDict

from ..dataset_card import check_card_header
from ..shards import IncompleteShardsError, check_complete_shards
from .exposure import COLUMNS as EXPOSURE_COLUMNS
from .exposure import Curriculum, with_exposure_columns


class DatasetPathError(FileNotFoundError):
    """A training dataset that is neither a folder here nor a loadable Hub dataset."""


@dataclass(frozen=True)
class DatasetSpec:
    """One source of a mixture: `path` (a dataset folder), optional `name` (config) and `split`, and a `weight`."""

    path: str
    name: str | None = None
    split: str = "train"
    weight: float | None = None

    @classmethod
    def parse(cls, spec: str | dict) -> DatasetSpec:
        """Accept a mapping (from YAML) or `"path[:name][@split][*weight]"` (from the command line)."""
        if isinstance(spec, dict):
            unknown = set(spec) - {"path", "name", "split", "weight"}
            if unknown or "path" not in spec:
                raise ValueError(f"dataset spec {spec!r}: needs 'path', may have 'name', 'split', 'weight'")
            return cls(**spec)
        text, weight = (spec.rsplit("*", 1) + [None])[:2] if "*" in spec else (spec, None)
        text, split = text.rsplit("@", 1) if "@" in text else (text, "train")
        path, name = text.split(":", 1) if ":" in text else (text, None)
        return cls(path, name, split, float(weight) if weight is not None else None)


def load_folder(spec: DatasetSpec) -> Dataset:
    """One split of a local dataset folder, loaded from its data files by path: 🤗 datasets keys its cache of a
    folder on the README alone, so a parquet file changed under the same folder would train on the cached old rows.
    A numbered shard set missing a member, or fewer rows than the card declares, is an error."""
    check_card_header(spec.path)
    if spec.name is not None and spec.name not in (configs := get_dataset_config_names(spec.path)):
        raise ValueError(  # (datasets' own message names no folder)
            f"dataset {spec.path}: no config {spec.name!r} (a DevCV folder has one per task); "
            f"its configs: {', '.join(configs)}"
        )
    builder = load_dataset_builder(spec.path, spec.name)
    source = f"dataset {spec.path} ({spec.name or 'default'}, {spec.split})"
    files = (builder.config.data_files or {}).get(spec.split)
    if not files:
        raise DatasetPathError(
            f"{source}: no data files for this split (splits: {', '.join(builder.config.data_files or {})})"
        )
    check_complete_shards(files, source)
    try:
        dataset = load_dataset(builder.name, data_files={spec.split: list(files)}, split=spec.split)
    except ValueError as error:  # datasets' message names no folder (0 rows: 'Instruction "train" corresponds to …')
        raise ValueError(f"{source}: {error}") from error
    declared = declared_rows(Path(spec.path), spec.name, spec.split)
    if declared is not None and declared != len(dataset):
        raise IncompleteShardsError(f"{source}: {len(dataset)} rows, but the dataset card declares {declared}")
    return dataset


def declared_rows(folder: Path, config: str | None, split: str) -> int | None:
    """The rows the folder's card (README ``dataset_info``) declares for a split, if it does. Read from the card
    itself: a builder's `info` may come from the datasets cache of an earlier version of the folder."""
    infos = DatasetInfosDict.from_directory(str(folder))
    info = infos.get(config or "default") or (next(iter(infos.values())) if len(infos) == 1 else None)
    declared = info.splits.get(split) if info is not None and info.splits else None
    return declared.num_examples if declared is not None and declared.num_examples else None


def load_spec(spec: DatasetSpec) -> Dataset:
    """`load_dataset` of one spec; a path that is neither a folder nor a Hub dataset raises `DatasetPathError`."""
    if Path(spec.path).expanduser().is_dir():
        return load_folder(spec)
    try:
        return load_dataset(spec.path, spec.name, split=spec.split)
    except Exception as error:
        if Path(spec.path).expanduser().exists():
            raise
        raise DatasetPathError(
            f"dataset {spec.path}: no such folder, and not a Hub dataset ({type(error).__name__})"
        ) from error


def with_item_ids(dataset: Dataset, spec: DatasetSpec) -> Dataset:
    """Add `item`, the name warnings and errors use for a record: `<config or folder>/<id or row number>`."""
    source = spec.name or Path(spec.path).name
    ids = dataset["id"] if "id" in dataset.column_names else [f"row{index}" for index in range(len(dataset))]
    return dataset.add_column("item", [f"{source}/{value}" for value in ids])


def load_mixture(
    specs: list[str | dict], seed: int = 0, keep_columns: tuple[str, ...] | None = ("messages", "images")
) -> Dataset:
    """The records of :func:`load_stream`, without exposure columns, in mixture order."""
    return load_stream(specs, seed, keep_columns, exposure=False)[0]


def load_stream(
    specs: list[str | dict],
    seed: int = 0,
    keep_columns: tuple[str, ...] | None = ("messages", "images"),
    curriculum: Curriculum | None = None,
    exposure: bool = True,
) -> tuple[Dataset, list[dict]]:
    """Load every spec and mix them: concatenated when no weights are given, else interleaved by weight; then put
    the mixture in ``curriculum`` order (declared once, here: the trainer reads it sequentially). Returns the
    records and the corpora read (``path``, ``name``, ``split``, ``fingerprint``).

    `keep_columns` drops the metadata columns that a collator does not read (their schemas differ between
    corpora); pass None to keep everything. Chat data (`messages`) also gets an `item` column naming each record,
    and its images are left undecoded so that the collator can name the item and file of an image that cannot be
    read. With ``exposure``, every record also carries its ``exposure_*`` columns (:mod:`.exposure`).
    """
    if not specs:
        raise ValueError("no training dataset given")
    curriculum = curriculum or Curriculum()
    parsed = [DatasetSpec.parse(spec) for spec in specs]
    chat = "messages" in (keep_columns or ())
    if chat:
        keep_columns = (*keep_columns, "item")
    if exposure and keep_columns is not None:
        keep_columns = (*keep_columns, *EXPOSURE_COLUMNS.values())
    datasets, corpora = [], []
    for spec in parsed:
        dataset = load_spec(spec)
        source = f"dataset {spec.path} ({spec.name or 'default'}, {spec.split})"
        curriculum.check_source(dataset, source)
        corpora.append({"path": spec.path, "name": spec.name, "split": spec.split, "fingerprint": dataset._fingerprint})
        if chat:
            dataset = with_item_ids(dataset, spec)
        if exposure:
            dataset = with_exposure_columns(dataset)
        if "images" in (keep_columns or ()) and "images" in dataset.column_names:
            dataset = dataset.cast_column("images", List(Image(decode=False)))
        if keep_columns is not None:
            missing = [column for column in keep_columns if column not in dataset.column_names]
            if missing:
                raise ValueError(f"{source} has no column(s) {missing}")
            dataset = dataset.select_columns(list(keep_columns))
        datasets.append(dataset)
    return curriculum.order(mix(datasets, [spec.weight for spec in parsed], seed), seed), corpora


def mix(datasets: list[Dataset], weights: list[float | None], seed: int) -> Dataset:
    if len(datasets) == 1:
        return datasets[0]
    if all(weight is None for weight in weights):
        return concatenate_datasets(datasets)
    if any(weight is None or weight <= 0 for weight in weights):
        raise ValueError(f"give every dataset of a weighted mixture a positive weight, got {weights}")
    total = sum(weights)
    return interleave_datasets(
        datasets, probabilities=[w / total for w in weights], seed=seed, stopping_strategy="all_exhausted"
    )
