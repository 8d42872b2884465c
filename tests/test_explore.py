"""babyvlm explore: lazy paging of built DevCV folders, rendering of every task, runs laid over the items,
bad input shown as messages, and the page itself driven in a real headless Chromium."""

import json
import os
import shutil
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from babyvlm.dataset_builders.devcv import shards
from babyvlm.dataset_builders.devcv.builder import build_devcv
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.predictions import PREDICTIONS_FILE
from babyvlm.evaluate_metrics.runner import evaluate_devcv
from fixtures_devcv import write_split_layout

from babyvlm.commands.explore.ask import default_prompt, prompt_conversation
from babyvlm.commands.explore.cli import main
from babyvlm.commands.explore.dataset import DevCVFolder, ExploreError
from babyvlm.commands.explore.filters import ANY_COUNT, DISAGREEMENT, UNPARSABLE, WRONG, Selection, select
from babyvlm.commands.explore.render import item_html
from babyvlm.commands.explore.runs import is_correct
from babyvlm.commands.explore.session import Explorer
from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the test runs offline
CHROMIUM = Path(os.environ.get("BABYVLM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every task in three splits, built by the builder with tiny shards (several files and row groups per split)."""
    release = tmp_path_factory.mktemp("release") / "saycam"
    items = write_split_layout(release, n=5)
    output = tmp_path_factory.mktemp("built") / "devcv"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shards, "ROWS_PER_GROUP", 2)
        build_devcv([release], output, progress=False, audit=False, max_shard_bytes=15_000)
    return output, items


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir):
    """A small folder (Picture Vocabulary, Object Counting) and two real runs: the tiny BabyLLaVA-V2, a tiny Llava."""
    root = tmp_path_factory.mktemp("explore")
    rows = {"picture_vocabulary": synthetic_items("pv", 6, seed=1), "count": synthetic_items("count", 8, seed=1)}
    data = write_devcv_folder(root / "devcv", rows)
    runs = []
    babyllava = shutil.copytree(tiny_model_dir, root / "tiny-babyllava")  # runs are named by their model
    for name, model in (("babyllava", babyllava), ("llava", save_tiny_llava(root / "tiny-llava"))):
        evaluate_devcv(model, data, root / name, batch_size=8, max_new_tokens=16, progress=False)  # random weights
        runs.append(root / name)
    return data, runs, root / "tiny-llava"


def predictions(run_dir: Path, task: str) -> list[dict]:
    entries = [json.loads(line) for line in (run_dir / PREDICTIONS_FILE).read_text().splitlines()]
    return [entry for entry in entries if entry["task"] == task]


# --- reading a folder lazily ----------------------------------------------------------------------------------


def test_items_are_read_one_row_group_at_a_time_across_shards(built):
    output, items = built
    folder = DevCVFolder(output)
    assert set(folder.tasks) == set(TASKS)
    assert folder.splits("memory") == ["train", "validation", "test"]
    task_split = folder.open("picture_vocabulary", "test")
    groups = [pq.ParquetFile(file).metadata.num_row_groups for file in task_split.files]
    assert len(groups) > 1 and max(groups) > 1  # several shards, several row groups in one
    expected = [item["id"] for item in items["picture_vocabulary", "test"]]
    assert [row["id"] for row in task_split.index] == expected
    assert [task_split.row(position)["id"] for position in reversed(range(len(expected)))] == expected[::-1]
    with pytest.raises(ExploreError, match="has 5 items; there is no item 5"):
        task_split.row(5)


def test_paging_and_filters_never_read_an_image(built, monkeypatch):
    output, _ = built
    read_columns = []
    original = pq.read_table
    monkeypatch.setattr(
        pq, "read_table", lambda *args, **kwargs: read_columns.append(kwargs["columns"]) or original(*args, **kwargs)
    )
    explorer = Explorer(output)
    listing = explorer.listing("count", "train", Selection(true_count="4"))
    assert [row[1] for row in listing.rows] == ["count_train_2"]  # golds are index + 2
    assert read_columns and all("images" not in columns for columns in read_columns)


def test_pages_hold_twenty_items_and_out_of_range_pages_clamp(tmp_path):
    folder = write_devcv_folder(tmp_path / "devcv", {"count": synthetic_items("count", 45)})
    explorer = Explorer(folder)
    pages = [explorer.listing("count", "test", Selection(), page) for page in (1, 3, 99, 0)]
    assert [(listing.page, listing.pages, listing.total) for listing in pages] == [
        (1, 3, 45),
        (3, 3, 45),
        (3, 3, 45),
        (1, 3, 45),
    ]
    assert pages[0].positions == list(range(20)) and pages[1].positions == list(range(40, 45))
    assert [row[1] for row in pages[1].rows] == [f"count_{index:04d}" for index in range(40, 45)]


def test_every_task_renders_its_images_at_the_placeholders_and_its_metadata(built):
    output, items = built
    explorer = Explorer(output)
    for task in TASKS:
        view = explorer.item(task, "validation", 1)
        released = items[task, "val"][1]
        assert view.html.count('class="devcv-image"') == len(released["image"]), task
        assert not view.messages
    # The box centre is checked against the gold quadrant of the shown frame (released boxes do not always match).
    assert (
        "[1.0, 2.5, 10.0, 6.0] (drawn in red); its centre is in the gold quadrant A"
        in explorer.item("localize", "test", 0).html
    )
    assert "its centre is in quadrant A, not the gold B" in explorer.item("localize", "test", 1).html
    memory = explorer.item("memory", "test", 0).html
    assert "labels: A = cup, B = dog" in memory and "labels: A = ball, B = dog" in memory
    assert 'class="devcv-animation"' in explorer.item("vdr_open", "test", 0).html
    lwl = explorer.item("looking_while_listening", "test", 0)
    assert "phrase 1: a red ball" in lwl.html and "phrase 2: a blue cup" in lwl.html
    assert lwl.prompt == "<image><image>"


def test_an_id_the_builder_wrote_otherwise_shows_its_released_id():
    for written in ("count_6__2", "ego4d:count_6"):  # a renamed duplicate; an id naming its source
        row = synthetic_items("pv", 1)[0] | {"id": written, "original_id": "count_6"}
        html = item_html(TASKS["picture_vocabulary"], row, row["images"])
        assert "released id" in html and "count_6<" in html.split("released id")[1]
    row = synthetic_items("pv", 1)[0] | {"id": "count_6__2", "original_id": "count_6"}
    assert "released id" not in item_html(
        TASKS["picture_vocabulary"], row | {"original_id": "count_6__2"}, row["images"]
    )


# --- runs ------------------------------------------------------------------------------------------------------


def test_filters_select_the_items_each_run_got_wrong_unparsable_or_disagreed_on(evaluated):
    data, runs, _ = evaluated
    explorer = Explorer(data, runs)
    assert not explorer.messages
    task_split = explorer.folder.open("picture_vocabulary", "test")
    entries = {run.name: predictions(run.path, "picture_vocabulary") for run in explorer.runs}
    task = TASKS["picture_vocabulary"]
    wrong = [entry["id"] for entry in entries["tiny-llava"] if not is_correct(task, entry)]
    unparsable = {entry["id"] for run_entries in entries.values() for entry in run_entries if entry["unparsable"]}
    disagree = [a["id"] for a, b in zip(entries["tiny-babyllava"], entries["tiny-llava"]) if a["parsed"] != b["parsed"]]

    def ids(selection):
        return [task_split.index[position]["id"] for position in select(task_split, explorer.runs, selection)]

    assert ids(Selection(WRONG, "tiny-llava")) == wrong
    assert set(ids(Selection(UNPARSABLE))) == unparsable
    assert ids(Selection(DISAGREEMENT)) == disagree
    counts = explorer.count_choices("count", "test")
    listing = explorer.listing("count", "test", Selection(true_count=counts[0]))
    assert listing.rows and {row[2] for row in listing.rows} == {counts[0]}
    assert ANY_COUNT not in counts


def test_a_run_of_another_dataset_or_split_is_reported_and_not_overlaid(evaluated, tmp_path):
    data, runs, _ = evaluated
    other = write_devcv_folder(tmp_path / "other", {"picture_vocabulary": synthetic_items("pv", 3, seed=7)})
    listing = Explorer(other, runs).listing("picture_vocabulary", "test", Selection())
    assert listing.header == ["#", "id", "gold"]  # no run column
    assert any("run tiny-babyllava is for another dataset" in message for message in listing.messages)
    renamed = write_devcv_folder(
        tmp_path / "validation", {"picture_vocabulary": synthetic_items("pv", 6, seed=1)}, split="validation"
    )
    listing = Explorer(renamed, runs[:1]).listing("picture_vocabulary", "validation", Selection())
    assert listing.messages == ["run tiny-babyllava was made on split 'test', not 'validation'"]


def test_score_table_puts_the_runs_side_by_side(evaluated):
    data, runs, _ = evaluated
    header, rows = Explorer(data, runs).scores()
    assert header == ["task", "metric", "chance", "tiny-babyllava", "tiny-llava"]
    summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    assert rows[0][:3] == ["Picture Vocabulary", "acc (primary)", 0.25]
    assert rows[0][3:] == [round(summary["tasks"]["baby_pv"]["metrics"]["acc"], 3) for summary in summaries]
    assert rows[-2][3:] == [round(summary["overall"], 3) for summary in summaries]
    pv = [summary["tasks"]["baby_pv"] for summary in summaries]
    assert rows[1] == ["Picture Vocabulary", "95% CI", None, *(f"[{t['ci_low']:.3f}, {t['ci_high']:.3f}]" for t in pv)]
    assert rows[2] == ["Picture Vocabulary", "n", None, *(str(t["n"]) for t in pv)]


def test_runs_are_named_by_their_model_and_runs_of_one_model_by_their_folder_too(evaluated, tmp_path):
    data, runs, llava_model = evaluated
    assert [run.name for run in runs] == ["babyllava", "llava"]
    assert [run.name for run in Explorer(data, runs).runs] == ["tiny-babyllava", llava_model.name]  # not the folder's
    for seed in ("seed0", "seed1"):
        shutil.copytree(runs[1], tmp_path / seed)
    names = [run.name for run in Explorer(data, [runs[0], tmp_path / "seed0", tmp_path / "seed1"]).runs]
    assert names == ["tiny-babyllava", "tiny-llava (seed0)", "tiny-llava (seed1)"]
    # A model folder named only by its stage in training is named with its parent's name.
    staged = shutil.copytree(runs[1], tmp_path / "renamed")
    config = json.loads((staged / "run.json").read_text())
    (staged / "run.json").write_text(json.dumps(config | {"model": str(tmp_path / "sft" / "checkpoint-500")}))
    assert [run.name for run in Explorer(data, [staged]).runs] == ["sft/checkpoint-500"]


def test_runs_of_one_model_are_named_apart_by_folder_and_a_partial_run_says_so(evaluated, tmp_path):
    data, runs, _ = evaluated
    again = shutil.copytree(runs[1], tmp_path / "llava-again")
    summary = json.loads((again / "summary.json").read_text())
    summary["scope"] = {"partial": True, "items_evaluated": 2, "items_available": 14, "limit": 1}
    (again / "summary.json").write_text(json.dumps(summary))
    header, _ = Explorer(data, [*runs, again]).scores()
    assert header[3:] == [
        "tiny-babyllava",
        "tiny-llava (llava)",
        "tiny-llava (llava-again) (partial: 2 of 14 items (--limit 1))",
    ]


# --- bad input becomes a message ------------------------------------------------------------------------------


def test_a_folder_that_is_not_a_devcv_dataset_is_a_message(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "README.md").write_text("# just a readme\n")
    (tmp_path / "other" / "notes.csv").write_text("a,b\n1,2\n")
    for folder, expected in (
        (tmp_path / "missing", "is not a folder"),
        (tmp_path / "empty", "is not a DevCV dataset folder (no README.md"),
        (tmp_path / "other", "is not a DevCV dataset folder: its README `configs` name no DevCV task"),
    ):
        explorer = Explorer(folder)
        assert explorer.folder is None and expected in explorer.messages[0]
        assert explorer.task_choices() == []
        with pytest.raises(ExploreError, match="no DevCV dataset folder is loaded"):
            explorer.listing("count", "test", Selection())


def test_shards_that_are_not_devcv_parquet_are_messages_naming_the_file(tmp_path):
    folder = write_devcv_folder(
        tmp_path / "devcv", {"count": synthetic_items("count", 2), "memory": synthetic_items("memory", 1)}
    )
    shard = next((folder / "count").glob("*.parquet"))
    shard.write_bytes(b"not parquet")
    pq.write_table(
        pq.read_table(next((folder / "memory").glob("*.parquet")), columns=["id", "answer"]),
        next((folder / "memory").glob("*.parquet")),
    )
    explorer = Explorer(folder)
    with pytest.raises(ExploreError, match=f"{shard} is not a readable parquet file"):
        explorer.listing("count", "test", Selection())
    with pytest.raises(ExploreError, match="is not a DevCV shard: no column task, messages, images"):
        explorer.item("memory", "test", 0)


def test_bad_run_folders_are_messages_naming_the_file(evaluated, tmp_path):
    data, runs, _ = evaluated
    broken = tmp_path / "broken"
    shutil.copytree(runs[0], broken)
    with (broken / PREDICTIONS_FILE).open("a") as handle:
        handle.write('{"task": "count", "id": "x"}\n')
    explorer = Explorer(data, [tmp_path / "nothing", broken, runs[1]])
    assert [run.name for run in explorer.runs] == ["tiny-llava"]
    assert "nothing is not an evaluation run folder (no predictions.jsonl" in explorer.messages[0]
    assert "line 15: not a prediction entry (no output, gold, parsed, scores, unparsable)" in explorer.messages[1]


def test_a_missing_image_is_shown_as_a_message_and_a_marked_box(tmp_path):
    release = tmp_path / "release" / "saycam"
    items = write_split_layout(release, tasks=("picture_vocabulary",), splits=("test",), n=2)
    build_devcv([release], tmp_path / "devcv", progress=False, audit=False, embed_images=False)
    (release / "test" / "picture_vocabulary" / items["picture_vocabulary", "test"][1]["image"][2]).unlink()
    view = Explorer(tmp_path / "devcv").item("picture_vocabulary", "test", 1)
    assert (
        len(view.messages) == 1
        and "picture_vocabulary_test_1: image 3 is missing (image file not found" in view.messages[0]
    )
    assert view.html.count('class="devcv-image"') == 3 and view.html.count('class="devcv-missing"') == 1


def test_a_model_that_does_not_load_is_a_message_and_browsing_still_works(evaluated, tmp_path):
    data, _, _ = evaluated
    explorer = Explorer(data, model=tmp_path)
    assert explorer.asker is None and explorer.messages[0].startswith(f"cannot load the model {tmp_path}")
    assert explorer.listing("count", "test", Selection()).total == 8
    with pytest.raises(ExploreError, match="start the explorer with --model DIR"):
        next(explorer.ask("count", "test", 0, "<image> how many?", 4))


def test_the_edited_prompt_takes_the_items_images_in_order(evaluated):
    data, _, _ = evaluated
    task_split = DevCVFolder(data).open("picture_vocabulary", "test")
    row = task_split.row(0)
    images = task_split.images(row)
    prompt = default_prompt(row)
    assert prompt.startswith("<image>" * 4)
    assert prompt_conversation("<image> which one? <image>", images).images == images[:2]
    with pytest.raises(ExploreError, match="the prompt has 5 <image> placeholders but the item has 4 images"):
        prompt_conversation(prompt + "<image>", images)


def test_the_command_line_needs_a_data_folder(monkeypatch, capsys):
    monkeypatch.delenv("BABYVLM_EXPLORE_DATA", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "--data is required" in capsys.readouterr().err


# --- the page in a real browser --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def browser_page():
    """A page of a real headless Chromium (Debian's `chromium`), driven by Playwright."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` enables the browser test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="`make install` installs Playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


@pytest.fixture
def artefacts(tmp_path_factory, capsys) -> Path:
    folder = Path(os.environ.get("BABYVLM_TEST_ARTEFACTS") or tmp_path_factory.mktemp("explore-artefacts"))
    folder.mkdir(parents=True, exist_ok=True)
    with capsys.disabled():
        print(f"\nexplorer screenshots: {folder}")
    return folder


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _table_ids(page) -> list[str]:
    return [text.strip() for text in page.locator('#page-table [role=gridcell][data-col="1"]').all_inner_texts()]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:.*(no_silent_downcasting|copy keyword)")
def test_the_page_shows_items_runs_and_streamed_answers_in_a_real_browser(evaluated, browser_page, artefacts, tmp_path):
    pytest.importorskip("gradio", reason="`make install` installs the explore extra")
    from playwright.sync_api import expect

    from babyvlm.commands.explore.app import build_app

    data, runs, llava = evaluated
    explorer = Explorer(data, runs, llava)
    port = _free_port()
    demo = build_app(explorer).queue()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    page = browser_page
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        conversation_images = page.locator("#item-view .devcv-conversation img.devcv-image")
        expect(conversation_images).to_have_count(4)  # a Picture Vocabulary item: four pictures to choose from
        gold = explorer.folder.open("picture_vocabulary", "test").index[0]["answer"][0]
        expect(page.locator("#item-view .devcv-gold-answer")).to_have_text(gold)
        expect(page.locator("#run-view tr.devcv-run")).to_have_count(2)
        page.screenshot(path=artefacts / "picture_vocabulary.png", full_page=True)

        task = TASKS["picture_vocabulary"]
        wrong = [entry["id"] for entry in predictions(runs[1], task.name) if not is_correct(task, entry)]
        assert wrong and len(wrong) < 6  # the tiny Llava gets some right and some wrong
        _choose(page, "filter-run", "tiny-llava")
        page.locator("#filter").get_by_text("wrong only").click()
        expect(page.locator("#page-table [role=row][data-index]")).to_have_count(len(wrong))
        assert _table_ids(page) == wrong
        expect(page.locator("#run-view")).to_contain_text("wrong")
        page.locator('#page-table [role=gridcell][data-col="1"]').last.click()  # a row shows its item
        expect(page.locator("#item-view h3")).to_have_text(wrong[-1])
        page.locator('#page-table [role=gridcell][data-col="1"]').first.click()
        expect(page.locator("#item-view h3")).to_have_text(wrong[0])
        page.screenshot(path=artefacts / "wrong_only.png", full_page=True)

        # Ask the model about the shown item: the unedited prompt gets the evaluated answer, streamed.
        shown = next(entry for entry in predictions(runs[1], task.name) if entry["id"] == wrong[0])
        page.locator("#ask").click()
        expect(page.locator("#answer textarea")).to_have_value(shown["output"], timeout=20_000)

        page.get_by_role("tab", name="Scores").click()
        expect(page.locator("#score-table")).to_contain_text("Picture Vocabulary")
        expect(page.locator(".run-plots img")).to_have_count(4)  # scores and counting plots of both runs
        page.screenshot(path=artefacts / "scores.png", full_page=True)
        assert (artefacts / "picture_vocabulary.png").stat().st_size > 10_000
    finally:
        demo.close()

    # A folder that is not a DevCV dataset: the page says so instead of failing.
    port = _free_port()
    demo = build_app(Explorer(tmp_path, [tmp_path])).queue()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        shown = page.locator("#explore-messages .devcv-message")
        expect(shown).to_have_count(2)
        expect(shown.first).to_contain_text(f"{tmp_path} is not a DevCV dataset folder")
        expect(shown.last).to_contain_text(f"{tmp_path} is not an evaluation run folder")
        page.screenshot(path=artefacts / "not_a_dataset.png", full_page=True)
    finally:
        demo.close()


def test_long_run_outputs_show_their_start_with_the_rest_behind_show_all():
    from babyvlm.evaluate_metrics.devcv.tasks import canonical_task

    from babyvlm.commands.explore.render import OUTPUT_PREVIEW_CHARS, runs_html
    from babyvlm.commands.explore.runs import Run

    task = canonical_task("memory")
    answers = ["I think it is (A), the one on the left, because it is new to me."] * 15
    entry = {"task": "memory", "id": "m", "output": answers, "gold": ["A"] * 15, "parsed": ["A"] * 15}
    entry.update({"scores": {"acc_learning": 1.0}, "unparsable": 0})
    long = Run("chatty", Path("chatty"), {}, None, {"memory": {"m": entry}})
    html = runs_html(task, {"id": "m"}, [long])
    assert "<details" in html and "show all" in html
    assert " | ".join(answers) in html  # the whole output, behind the preview
    entry = {**entry, "output": ["A"] * 15}
    short = runs_html(task, {"id": "m"}, [Run("terse", Path("terse"), {}, None, {"memory": {"m": entry}})])
    assert "<details" not in short and len(" | ".join(["A"] * 15)) < OUTPUT_PREVIEW_CHARS
