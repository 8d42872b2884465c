"""DevCV Toolbox builder: layouts, schema, placeholder/image alignment, validation report, strictness,
determinism, lossless round trip and feeding the processor — on synthetic releases and the real samples."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from babyvlm.dataset_builders.devcv.builder import DevCVBuildError, build_devcv
from babyvlm.dataset_builders.devcv.cli import main as build_main
from babyvlm.dataset_builders.devcv.export import (
    export_release,
    record_to_released_item,
)
from babyvlm.dataset_builders.devcv.schema import DEVCV_FEATURES
from babyvlm.dataset_builders.devcv.shards import ParquetShardWriter
from babyvlm.evaluate_metrics.devcv.tasks import TASKS, canonical_task
from babyvlm.processing import (
    BabyLlavaV2ImageProcessorPil,
    BabyLlavaV2Processor,
    train_tokenizer,
)
from datasets import Image, List, get_dataset_config_names, load_dataset
from fixtures_devcv import (
    ALL_TASKS,
    noise_image,
    release_name,
    write_flat_layout,
    write_json,
    write_split_layout,
    write_task_layout,
)
from hub_cards import assert_hub_dataset_card
from PIL import ImageFile

from babyvlm.chat import content_to_text, count_image_blocks


def load(folder, config=None, split=None, decode=True):
    dataset = load_dataset(str(folder), config, split=split)
    return dataset if decode else dataset.cast_column("images", List(Image(decode=False)))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A synthetic SAYCam-layout release of every task (2 items per split) and the folder built from it."""
    root = tmp_path_factory.mktemp("release") / "saycam"
    items = write_split_layout(root)
    output = tmp_path_factory.mktemp("built") / "devcv"
    report = build_devcv([root], output, progress=False)
    return root, items, output, report


# --- loading and schema ------------------------------------------------------------------------------------


def test_every_task_is_a_config_and_all_is_the_default(synthetic):
    _, items, output, report = synthetic
    assert report.ok and report.written == sum(len(task_items) for task_items in items.values())
    assert get_dataset_config_names(str(output)) == ["all", *TASKS]
    everything = load(output)  # a folder named `devcv`: load_dataset("devcv") loads it all
    assert sorted(everything) == ["test", "train", "validation"]
    assert sum(everything.num_rows.values()) == report.written


@pytest.mark.parametrize("task", ALL_TASKS)
def test_task_config_has_schema_features_and_images_at_placeholders(synthetic, task):
    root, items, output, _ = synthetic
    dataset = load(output, task, "test")
    assert dataset.features == DEVCV_FEATURES
    assert set(dataset["task"]) == {task} and set(dataset["harness_key"]) == {TASKS[task].harness_key}
    assert set(dataset["source"]) == {"saycam"} and set(dataset["source_task"]) == {release_name(task)}
    released = items[task, "test"]
    raw = dataset.cast_column("images", List(Image(decode=False)))
    for row, raw_row, item in zip(dataset, raw, released, strict=True):
        if task == "looking_while_listening":
            assert row["messages"] == [] and row["answer"] == [] and row["choices"] == item["phrases"]
        else:
            assert count_image_blocks(row["messages"]) == len(row["images"])
            assert [content_to_text(m["content"]) for m in row["messages"]] == [
                turn["value"] for turn in item["conversations"]
            ]
        # The n-th image block is images[n]: same bytes as the n-th released file.
        task_folder = root / "test" / release_name(task)
        assert [image["bytes"] for image in raw_row["images"]] == [
            (task_folder / path).read_bytes() for path in item["image"]
        ]


def test_task_metadata_columns(synthetic):
    _, _, output, _ = synthetic
    row = {
        task: load(output, task, "test")[0]
        for task in ("localize", "memory", "vdr_binary", "vdr_open", "compare_real", "count", "picture_vocabulary")
    }
    assert row["localize"]["bbox"] == [1.0, 2.5, 10.0, 6.0]
    assert row["memory"]["answer"] == ["A", "B", "A"] and row["memory"]["labels"] == [
        ["cup"],
        ["cup", "dog"],
        ["ball", "dog"],
    ]
    assert row["memory"]["choices"] == ["A", "B"]
    assert row["vdr_binary"]["choices"] == ["left", "right"] and row["vdr_binary"]["gif"] == "images/clip_0.gif"
    assert len(row["vdr_open"]["choices"]) == 8 and row["vdr_open"]["answer"] == ["top left"]
    assert row["compare_real"]["notes"] == "first should have 2 second should have 1"
    assert row["picture_vocabulary"]["choices"] == ["A", "B", "C", "D"]
    assert row["count"]["choices"] == [] and row["count"]["extra"] == "{}" and row["count"]["provenance"] == "{}"


def test_export_reproduces_the_release(synthetic, tmp_path):
    root, items, output, _ = synthetic
    export_release(output, tmp_path)
    for (task, split), released in items.items():
        exported_folder = tmp_path / "saycam" / split / release_name(task)
        assert json.loads((exported_folder / "data.json").read_text()) == released
        for path in (path for item in released for path in item["image"]):
            assert (exported_folder / path).read_bytes() == (root / split / release_name(task) / path).read_bytes()


def test_unknown_and_empty_released_keys_round_trip(tmp_path):
    folder = tmp_path / "nih" / "count"
    (folder / "images").mkdir(parents=True)
    noise_image(1).save(folder / "images" / "x.png")
    item = {
        "id": "c0",
        "conversations": [{"from": "human", "value": "<image> How many?"}, {"from": "gpt", "value": "3"}],
        "image": ["images/x.png"],
        "notes": "",
        "difficulty": 2,
    }
    write_json(folder / "data.json", [item])
    build_devcv([tmp_path / "nih"], tmp_path / "out", progress=False, audit=False)
    row = load(tmp_path / "out", "count", "test")[0]
    assert row["source"] == "nih" and row["notes"] == "" and json.loads(row["extra"]) == {"difficulty": 2, "notes": ""}
    assert record_to_released_item(row) == item


# --- layouts -----------------------------------------------------------------------------------------------


def test_task_layout_and_flat_layout(tmp_path):
    tasks = ("count", "vdr_binary", "looking_while_listening")
    write_task_layout(tmp_path / "ego4d", tasks)
    write_flat_layout(tmp_path / "flat", tmp_path / "frames", tasks, split="val")
    build_devcv([tmp_path / "ego4d"], tmp_path / "ego", split="ego4d_test", progress=False, audit=False)
    build_devcv(
        [tmp_path / "flat"],
        tmp_path / "nih",
        source_name="nih",
        image_root=tmp_path / "frames",
        progress=False,
        audit=False,
    )
    ego = load(tmp_path / "ego")
    assert list(ego) == ["ego4d_test"] and set(ego["ego4d_test"]["source"]) == {"ego4d"}
    flat = load(tmp_path / "nih", "vdr_binary")
    assert list(flat) == ["validation"] and flat["validation"][0]["source_task"] == "vdr-binary"
    assert set(load(tmp_path / "nih")["validation"]["source"]) == {"nih"}


def test_layout_errors_name_the_problem(tmp_path):
    write_task_layout(tmp_path / "release", ("count",))
    with pytest.raises(ValueError, match="--source-name"):
        build_devcv([tmp_path / "release"], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="split name 'test-v2'"):
        build_devcv([tmp_path / "release"], tmp_path / "out", source_name="nih", split="test-v2", progress=False)
    with pytest.raises(FileNotFoundError, match="no released DevCV files"):
        build_devcv([tmp_path / "release" / "count" / "images"], tmp_path / "out", source_name="nih", progress=False)
    assert not (tmp_path / "out").exists()


# --- validation report -------------------------------------------------------------------------------------


def _count_item(item_id, value="<image> How many cups do you see?", images=("images/good.png",), turns=None):
    conversations = turns or [{"from": "human", "value": value}, {"from": "gpt", "value": "2"}]
    return {"id": item_id, "conversations": conversations, "image": list(images)}


@pytest.fixture
def bad_release(tmp_path):
    """A SAYCam-layout release where every item but two breaks one rule; returns (root, expected skips by id)."""
    root = tmp_path / "saycam"
    count = root / "test" / "count"
    (count / "images").mkdir(parents=True)
    noise_image(0).save(count / "images" / "good.png")
    noise_image(1).save(tmp_path / "outside.png")
    (count / "images" / "corrupt.png").write_bytes(b"not an image at all")
    png = (count / "images" / "good.png").read_bytes()
    (count / "images" / "truncated.png").write_bytes(png[: len(png) // 2])
    items = [
        _count_item("good"),
        _count_item("missing", images=("images/nowhere.png",)),
        _count_item("corrupt", images=("images/corrupt.png",)),
        _count_item("truncated", images=("images/truncated.png",)),
        _count_item("escape", images=("../../outside.png",)),
        _count_item("absolute", images=(str(tmp_path / "outside.png"),)),
        _count_item("mismatch", value="<image><image> How many?"),
        _count_item("bad_speaker", turns=[{"from": "robot", "value": "<image>"}, {"from": "gpt", "value": "2"}]),
        _count_item("no_answer", turns=[{"from": "human", "value": "<image>"}]),
        _count_item("good"),
        {"conversations": [], "image": []},
    ]
    write_json(count / "data.json", items)
    localize = root / "test" / "localize"
    (localize / "images").mkdir(parents=True)
    noise_image(2).save(localize / "images" / "l.png")
    write_json(localize / "data.json", [{**_count_item("bad_bb", images=("images/l.png",)), "bb": [1, 2]}])
    write_json(root / "test" / "not_a_task" / "data.json", [])
    (root / "test" / "memory").mkdir()
    (root / "test" / "memory" / "data.json").write_text('{"not": "a list"}')
    expected = {
        ("missing", "missing_image"),
        ("corrupt", "unreadable_image"),
        ("truncated", "unreadable_image"),
        ("escape", "path_outside_root"),
        ("absolute", "path_outside_root"),
        ("mismatch", "placeholder_mismatch"),
        ("bad_speaker", "malformed_conversation"),
        ("no_answer", "malformed_conversation"),
        ("good", "duplicate_item"),
        (None, "malformed_field"),
        ("bad_bb", "malformed_field"),
    }
    return root, expected


@pytest.mark.parametrize("process_allows_truncated_images", [False, True])
def test_every_item_is_written_or_skipped_with_its_reason(
    bad_release, tmp_path, monkeypatch, process_allows_truncated_images
):
    # Importing lmms-eval turns Pillow's LOAD_TRUNCATED_IMAGES on process-wide: a truncated file is still refused.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", process_allows_truncated_images)
    root, expected = bad_release
    report = build_devcv([root], tmp_path / "out", progress=False)
    assert {(skip.id, skip.reason) for skip in report.skipped} == expected
    assert report.items == report.written + len(report.skipped) == 12
    assert {(Path(skip.file).parent.name, skip.reason) for skip in report.skipped_files} == {
        ("not_a_task", "unknown_task"),
        ("memory", "unreadable_file"),
    }
    details = {skip.id: skip.detail for skip in report.skipped}
    assert (
        "images/nowhere.png" in details["missing"]
        and "'..'" in details["escape"]
        and "2 <image>" in details["mismatch"]
    )
    assert json.loads((tmp_path / "out" / "build_report.json").read_text()) == report.to_dict()
    assert load(tmp_path / "out", "count", "test")["id"] == ["good"]


def test_strict_build_fails_and_leaves_nothing(bad_release, tmp_path, capsys):
    root, _ = bad_release
    output = tmp_path / "built" / "devcv"
    with pytest.raises(DevCVBuildError, match="strict") as failure:
        build_devcv([root], output, strict=True, progress=False)
    assert len(failure.value.report.skipped) == 11
    assert build_main([str(root), "--output", str(output), "--strict", "--quiet"]) == 1
    assert "missing_image: 1" in capsys.readouterr().err
    assert list(output.parent.iterdir()) == []  # no dataset, no staging folder left behind


def test_existing_output_is_kept_unless_overwrite(synthetic, tmp_path):
    root, _, _, _ = synthetic
    output = tmp_path / "devcv"
    output.mkdir()
    (output / "keep").write_text("mine")
    with pytest.raises(FileExistsError):
        build_devcv([root], output, progress=False, audit=False)
    assert (output / "keep").exists()
    build_devcv([root], output, overwrite=True, progress=False, audit=False)
    assert not (output / "keep").exists() and (output / "README.md").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["devcv"]


def test_rebuilt_folder_is_not_served_from_a_stale_cache(tmp_path):
    write_task_layout(tmp_path / "first" / "ego4d", ("count",), n=2)
    write_task_layout(tmp_path / "second" / "ego4d", ("count",), n=3)
    build_devcv([tmp_path / "first" / "ego4d"], tmp_path / "devcv", progress=False, audit=False)
    assert load(tmp_path / "devcv", "count", "test").num_rows == 2
    build_devcv([tmp_path / "second" / "ego4d"], tmp_path / "devcv", overwrite=True, progress=False, audit=False)
    assert load(tmp_path / "devcv", "count", "test").num_rows == 3


# --- determinism, image modes, shards, CLI -----------------------------------------------------------------


def test_same_input_same_fingerprint_whatever_num_proc(synthetic, tmp_path):
    root, _, _, report = synthetic
    serial = build_devcv([root], tmp_path / "a", progress=False, audit=False)
    parallel = build_devcv([root], tmp_path / "b", num_proc=2, progress=False, audit=False)
    assert serial.fingerprint == parallel.fingerprint == report.fingerprint
    assert (tmp_path / "a" / "README.md").read_bytes() == (tmp_path / "b" / "README.md").read_bytes()


def test_image_path_references(synthetic, tmp_path):
    root = synthetic[0]
    build_devcv([root], tmp_path / "refs", embed_images=False, progress=False, audit=False)
    raw = load(tmp_path / "refs", "leftright", "train", decode=False)[0]["images"]
    assert all(image["bytes"] is None and Path(image["path"]).is_absolute() for image in raw)
    decoded = load(tmp_path / "refs", "leftright", "train")[0]["images"]
    assert [image.size for image in decoded] == [(24, 16)] * 4


def test_shards_split_past_max_bytes_and_get_final_names(tmp_path, monkeypatch, synthetic):
    from babyvlm.dataset_builders.devcv import shards

    monkeypatch.setattr(shards, "ROWS_PER_GROUP", 1)
    rows = load(synthetic[2], "count", "train", decode=False)
    writer = ParquetShardWriter(tmp_path, "train", DEVCV_FEATURES, max_shard_bytes=1)
    for row in rows:
        writer.write(row)
    paths = writer.close()
    assert [path.name for path in paths] == ["train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]
    assert sum(pq.read_metadata(path).num_rows for path in paths) == len(rows)


def test_cli_builds_and_prints_the_summary(synthetic, tmp_path, capsys):
    root, _, _, report = synthetic
    assert build_main([str(root), "--output", str(tmp_path / "cli"), "--quiet", "--no-audit", "--num-proc", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"{report.items} items read, {report.written} written, 0 skipped" in printed
    assert "Not run" in (tmp_path / "cli" / "README.md").read_text()


# --- the processor takes the rows as they are ----------------------------------------------------------------


def first_row_of_each_task(dataset) -> list[dict]:
    first_index = {}
    for index, task in enumerate(dataset["task"]):
        first_index.setdefault(task, index)
    return [dataset[index] for index in first_index.values()]


def assert_rows_feed_processor(rows: list[dict]):
    texts = [content_to_text(m["content"]) for row in rows for m in row["messages"]]
    tokenizer = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    processor = BabyLlavaV2Processor(
        BabyLlavaV2ImageProcessorPil(size={"height": 32, "width": 32}), tokenizer, image_seq_length=5
    )
    for row in rows:
        if not row["messages"]:
            continue  # Looking-While-Listening has no prompt
        rendered = processor.apply_chat_template(row["messages"])
        expected = " " + "".join(
            f"USER: {content_to_text(m['content'])} "
            if m["role"] == "user"
            else f"ASSISTANT: {content_to_text(m['content'])}<eos>"
            for m in row["messages"]
        )
        assert rendered == expected
        inputs = processor(text=rendered, images=row["images"], return_tensors="pt")
        assert inputs.pixel_values.shape[0] == len(row["images"])
        assert int((inputs.input_ids == processor.image_token_id).sum()) == 5 * len(row["images"])


def test_dataset_rows_feed_the_processor(synthetic):
    assert_rows_feed_processor(first_row_of_each_task(load(synthetic[2], split="test")))


# --- the real released samples -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_samples(tmp_path_factory):
    from conftest import SHARED_SAMPLES

    if not SHARED_SAMPLES.is_dir():
        pytest.skip(f"DevCV samples not found at {SHARED_SAMPLES}")
    output = tmp_path_factory.mktemp("samples")
    reports = {
        source: build_devcv([SHARED_SAMPLES / source], output / source, progress=False, audit=False)
        for source in ("saycam", "ego4d")
    }
    return SHARED_SAMPLES, output, reports


def _released_files(samples: Path, source: str):
    for path in sorted((samples / source).glob("**/data.json")):
        yield path, json.loads(path.read_text())


def test_samples_missing_images_are_reported_not_fatal(built_samples):
    samples, _, reports = built_samples
    for source, report in reports.items():
        expected_missing = {
            (str(path), index)
            for path, items in _released_files(samples, source)
            for index, item in enumerate(items)
            if any(not (path.parent / image).is_file() for image in item["image"])
        }
        assert {
            (skip.file, skip.index) for skip in report.skipped if skip.reason == "missing_image"
        } == expected_missing
        assert (
            report.items
            == report.written + len(report.skipped)
            == sum(len(items) for _, items in _released_files(samples, source))
        )
    assert reports["saycam"].skip_reasons()["missing_image"] > 0  # the sample has missing frames
    # Ego4D compare_synthetic has two different items under one id: both kept, as the official harness scores both.
    assert not reports["ego4d"].skipped and [item.original_id for item in reports["ego4d"].renamed] == ["count_6"]
    assert [(report.items, report.written) for report in reports.values()] == [(144, 141), (30, 30)]
    assert {summary.task_from for report in reports.values() for summary in report.files} == {"name"}


@pytest.mark.slow
def test_samples_every_task_loads_and_round_trips(built_samples, tmp_path):
    samples, output, reports = built_samples
    for source in ("saycam", "ego4d"):
        released = {path: items for path, items in _released_files(samples, source)}
        tasks = {canonical_task(path.parent.name).name for path in released}
        assert set(get_dataset_config_names(str(output / source))) == {"all", *tasks}
        for task in tasks:  # streamed: checks every config without preparing an Arrow cache for each
            for dataset in load_dataset(str(output / source), task, streaming=True).values():
                assert dataset.features == DEVCV_FEATURES
                rows = dataset.cast_column("images", List(Image(decode=False)))
                assert all(
                    row["task"] == task and count_image_blocks(row["messages"]) == len(row["images"]) for row in rows
                )
        export_release(output / source, tmp_path / source)
        skipped = {(skip.file, skip.index) for skip in reports[source].skipped}
        for path, items in released.items():
            split = path.parent.parent.name if source == "saycam" else "test"
            exported = json.loads((tmp_path / source / source / split / path.parent.name / "data.json").read_text())
            assert exported == [item for index, item in enumerate(items) if (str(path), index) not in skipped]


def test_samples_feed_the_processor(built_samples):
    _, output, _ = built_samples
    assert_rows_feed_processor(first_row_of_each_task(load(output / "saycam", split="test")))


def test_card_is_a_hub_dataset_card(synthetic):
    card = assert_hub_dataset_card(synthetic[2] / "README.md")
    assert (card.data.license_name, card.data.size_categories) == ("databrary-access-agreement", ["n<1K"])
    assert "`saycam` (SAYCam) ([databrary-access-agreement](https://databrary.org/" in card.text


def test_source_name_per_source_argument(tmp_path, capsys):
    write_task_layout(tmp_path / "first", ("count",))
    write_task_layout(tmp_path / "second", ("vdr_binary",))
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    argv = [first, second, "--output", str(tmp_path / "out"), "--no-audit", "--quiet"]
    build_main(argv + ["--source-name", f"{first}=nih", "--source-name", f"{second}=babyview"])
    assert set(load(tmp_path / "out", "count")["test"]["source"]) == {"nih"}
    assert set(load(tmp_path / "out", "vdr_binary")["test"]["source"]) == {"babyview"}
    with pytest.raises(ValueError, match="not SOURCE arguments"):
        build_devcv([first], tmp_path / "x", source_name={second: "nih"}, progress=False, audit=False)


def test_ids_of_a_build_mixing_sources_name_their_source(tmp_path, capsys):
    """Releases of different sources reuse ids (both write count_test_0): every id says its source, none is a
    `__2`, and the released id stays in original_id, where evaluation reads it (units, export)."""
    from babyvlm.evaluate_metrics.units import item_unit

    from babyvlm.item_ids import released_id

    released = write_task_layout(tmp_path / "saycam", ("count",))["count"]
    write_task_layout(tmp_path / "ego4d", ("count",))
    argv = [str(tmp_path / "saycam"), str(tmp_path / "ego4d"), "--output", str(tmp_path / "out"), "--no-audit"]
    assert build_main([*argv, "--quiet"]) == 0
    assert "ids name their source (<source>:<released id>): the build mixes ego4d, saycam" in capsys.readouterr().out
    rows = load(tmp_path / "out", "count")["test"]
    ids = [item["id"] for item in released]
    assert rows["id"] == [f"{source}:{item_id}" for source in ("saycam", "ego4d") for item_id in ids]
    assert rows["original_id"] == ids * 2 and [released_id(row) for row in rows] == ids * 2
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert report["ids_name_sources"] and report["renamed"] == 0
    vdr = {"id": "saycam:Y_20190426_1412_01_clip_010", "original_id": "Y_20190426_1412_01_clip_010"}
    assert item_unit({**vdr, "source": "saycam"}) == ("recording", "Y_20190426_1412_01")

    build_devcv([tmp_path / "ego4d"], tmp_path / "alone", progress=False, audit=False)  # one source: as released
    assert load(tmp_path / "alone", "count")["test"]["id"] == ids
