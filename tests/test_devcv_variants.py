"""The DevCV builder on every released variant: other folder and file names, other prompt wordings,
grid Picture Vocabulary, 30-round Memory, 50-frame VDR clips, duplicate ids and the organisers'
Looking-While-Listening CSV. Layouts are reconstructed from their documented shapes (dataset_builders/devcv/README.md,
leaderboard runner/config.py DATA_MAP, babylmms-eval dataset/baby_winoground/)."""

import csv
import json

import pytest
from babyvlm.dataset_builders.devcv.builder import DevCVBuildError, build_devcv
from babyvlm.dataset_builders.devcv.cli import main as build_main
from babyvlm.dataset_builders.devcv.export import export_release
from babyvlm.dataset_builders.devcv.limits import InputLimits
from babyvlm.dataset_builders.devcv.recognise import names_candidates, prompt_candidates
from babyvlm.evaluate_metrics.protocol import LWL_TARGET_DELIMITER, lwl_requests
from datasets import Image, List, load_dataset
from fixtures_devcv import noise_image, write_json

from babyvlm.chat import count_image_blocks

# --- names -------------------------------------------------------------------------------------------------

# (file stem, folder) as released -> task. The organisers' originals (leaderboard runner/config.py
# DATA_MAP and the samples' MANIFEST.json), the Ego4D originals, the samples, the harness' flat names.
RELEASED_NAMES = [
    (("count_v2_test", "object_counting"), "count"),
    (("memory_task_test_base5_p5_250", "memory_task"), "memory"),
    (("localize_4_crop_instructions_abc_test", "localize_task_cropped"), "localize"),
    (("interleaved_leftright_instructions_abc", "leftright"), "leftright"),
    (("abc_interleaved_spatialdetails_instructions", "spatialdetails"), "spatialdetails"),
    (("binary_dataset", "visual_delay_response"), "vdr_binary"),
    (("total_open_dataset", "visual_delay_response"), "vdr_open"),
    (("whohasmore_naturalistic", "compare_count_real"), "compare_real"),
    (("compare_larger_abc", "compare_count_real"), "compare_real"),
    (("compare_synthetic_instructions_abc", "compare_count_synthetic"), "compare_synthetic"),
    (("dataset_seen", "picture_vocabulary_v2"), "picture_vocabulary"),
    (("dataset", "picture_vocabulary_v6_train_verified"), "picture_vocabulary"),
    (("binary", "vdr"), "vdr_binary"),
    (("open", "vdr"), "vdr_open"),
    (("memory_200", "memory"), "memory"),
    (("pv", "picture_vocabulary"), "picture_vocabulary"),
    (("vdr-binary",), "vdr_binary"),
    (("vdr_open",), "vdr_open"),
    (("compare_real",), "compare_real"),
    (("baby_winoground", "baby_winoground"), "looking_while_listening"),
    (("subitizing",), "subitize"),
]


@pytest.mark.parametrize(
    "names, task", RELEASED_NAMES, ids=lambda value: "/".join(value[::-1]) if isinstance(value, tuple) else value
)
def test_released_names_resolve_to_their_task(names, task):
    assert names_candidates(names) == {task}


@pytest.mark.parametrize(
    "names, tasks",
    [
        (("vdr",), {"vdr_binary", "vdr_open"}),
        (("who_has_more",), {"compare_real", "compare_synthetic"}),
        (("data", "mystery_task"), set()),
    ],
)
def test_family_and_unknown_names_leave_the_prompts_to_decide(names, tasks):
    assert names_candidates(names) == tasks


# --- prompts -----------------------------------------------------------------------------------------------


def _item(*user_turns: str) -> dict:
    conversations = []
    for turn in user_turns:
        conversations += [{"from": "human", "value": turn}, {"from": "gpt", "value": "A"}]
    return {"conversations": conversations}


# Several wordings per task: the SAYCam and Ego4D releases (dataset_builders/devcv/README.md) and
# NIH/BabyView-style paraphrases.
PROMPTS = {
    "picture_vocabulary": [
        "<image><image><image><image>\n Touch the image of 'ball' (A) the first image (B) the "
        "second image (C) the third image (D) the fourth image.",
        "Touch the image of 'basket' (A)<image> (B)<image> (C)<image> (D)<image>",
        "<image> Touch the picture of 'dog'. (A) top left image (B) top right image (C) bottom "
        "left image (D) bottom right image",
        "<image>\nShow me the cup. Is it the (A) top-left picture, (B) top-right picture, (C) "
        "bottom-left picture or (D) bottom-right picture?",
    ],
    "localize": [
        "<image> Point at the cup. Is it in the (A) top left or (B) top right or (C) bottom left "
        "or (D) bottom right of the image?",
        "<image> Where is the dog? (A) top left (B) top right (C) bottom left (D) bottom right",
        "<image> Find the ball: (A) upper left (B) upper right (C) lower left (D) lower right of the picture",
    ],
    "leftright": [
        "<image> Which of the following is the same as this? Answer with a number. (A) <image> (B) <image> (C) <image>",
        "<image> Which of the following is the same as this? (A) <image> (B) <image> (C) <image>",
        "<image> Which one is facing the same way? (A) <image> (B) <image> (C) <image>",
        "<image> Which picture looks just like this? (A) <image> (B) <image> (C) <image>",
    ],
    "spatialdetails": [
        "<image> Which of the following contains exactly this object? (A) <image> (B) <image> (C) "
        "<image>. Pay attention to details and give only a letter A-C.",
        "<image> Which of the following contains exactly this object? (A) <image> (B) <image> (C) "
        "<image>. Pay attention to details and give a letter A-C.",
        "<image> Which picture shows the same object? (A) <image> (B) <image> (C) <image>",
    ],
    "vdr_binary": [
        "<image><image><image> does the lamp leave the frame through the right side of the frame "
        "or the left side of the frame? respond ONLY with 'right' or 'left'.",
        "<image><image> Does the ball exit the frame on the top side or the bottom side?",
        '<image><image> Where does the dog leave the picture frame? Answer "left" or "right".',
    ],
    "vdr_open": [
        "<image><image> which part of the frame does the cart leave from? respond ONLY with one "
        "of: 'top', 'bottom', 'left', 'right', 'top right', 'top left', 'bottom right', or 'bottom "
        "left'.",
        "<image><image> Which direction does the toy go out of the frame? Answer with one of the eight directions.",
    ],
    "compare_real": ["Which image has more people? (A) <image> (B) <image>"],
    "count": [
        "<image> How many bicycles do you see?",
        "<image> How many of cup do you see?",
        "<image>\nCount them: how many dogs are there?",
    ],
}


@pytest.mark.parametrize(
    "task, prompt", [(task, prompt) for task, prompts in PROMPTS.items() for prompt in prompts], ids=lambda v: v[:40]
)
def test_prompt_cues_recognise_each_task_in_several_wordings(task, prompt):
    expected = {"compare_real", "compare_synthetic"} if task == "compare_real" else {task}
    assert prompt_candidates(_item(prompt)) == expected


def test_memory_is_the_multi_round_task_in_any_length():
    rounds = ["Touch the new image. (A) <image>"] + [
        "Let's try more. Touch the new image. (A) <image> (B) <image>"
    ] * 29
    assert prompt_candidates(_item(*rounds)) == {"memory"}
    assert prompt_candidates(_item("Which one have you not seen? (A) <image>", "Again. (A) <image> (B) <image>")) == {
        "memory"
    }


@pytest.mark.parametrize("prompt", ["<image> Describe the picture.", "<image> What colour is the ball?", ""])
def test_prompts_of_no_task_match_nothing(prompt):
    assert prompt_candidates(_item(prompt)) == set()


# --- reconstructed variant layouts -------------------------------------------------------------------------


def _images(folder, name: str, count: int, size=(8, 8)) -> list[str]:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        noise_image(hash((str(folder), name, index)) % 2**32, size).save(folder / "images" / f"{name}_{index}.png")
        paths.append(f"images/{name}_{index}.png")
    return paths


def _single_turn_items(folder, prompt: str, answers: list[str]) -> list[dict]:
    items = []
    for index, answer in enumerate(answers):
        paths = _images(folder, f"item{index}", prompt.count("<image>"))
        conversations = [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]
        items.append({"id": f"{folder.name}_{index}", "conversations": conversations, "image": paths})
    return items


def _memory_item(folder, item_id: str, rounds: int) -> dict:
    """``rounds`` rounds: one image, then two per round; base = (rounds + 1) // 3 learned objects."""
    turns, labels = ["Touch the new picture. (A) <image>"], [["o0"]]
    for round_index in range(1, rounds):
        turns.append("Now touch the new picture. (A) <image> (B) <image>")
        labels.append([f"o{round_index - 1}", f"o{round_index}"])
    conversations = [
        message
        for index, turn in enumerate(turns)
        for message in ({"from": "human", "value": turn}, {"from": "gpt", "value": "AB"[index % 2] if index else "A"})
    ]
    return {
        "id": item_id,
        "conversations": conversations,
        "image": _images(folder, item_id, 2 * rounds - 1),
        "labels": labels,
    }


def _write(folder, items) -> list[dict]:
    write_json(folder / "data.json", items)
    return items


GRID_PV = (
    "<image>\nTouch the image of 'ball'. (A) top left image (B) top right image (C) bottom "
    "left image (D) bottom right image"
)
VDR_50 = "<image>" * 50 + (
    " Does the bird leave the frame through the left side of the frame or the right side? "
    "respond ONLY with 'left' or 'right'."
)


@pytest.fixture(scope="module")
def nih_release(tmp_path_factory):
    """A NIH-stimulus-style task-folder release: other folder names, other wordings, long items."""
    root = tmp_path_factory.mktemp("variants") / "nih"
    written = {
        "picture_vocabulary": _write(root / "pv_grid", _single_turn_items(root / "pv_grid", GRID_PV, ["A", "D"])),
        "memory": _write(root / "memory", [_memory_item(root / "memory", "m0", 30)]),
        "vdr_binary": _write(root / "vdr", _single_turn_items(root / "vdr", VDR_50, ["left", "right"])),
        "compare_synthetic": _write(
            root / "who_has_more",
            _single_turn_items(root / "who_has_more", "Who has more cookies? (A) <image> (B) <image>", ["A", "B"]),
        ),
        "localize": _write(
            root / "where_task",
            _single_turn_items(
                root / "where_task",
                "<image> Where is the cup? (A) top left (B) top right (C) bottom left (D) bottom right",
                ["B"],
            ),
        ),
        "leftright": _write(
            root / "mirror_match",
            _single_turn_items(
                root / "mirror_match",
                "<image> Which one is facing the same way? (A) <image> (B) <image> (C) <image>",
                ["C"],
            ),
        ),
        "count": _write(
            root / "numbers", _single_turn_items(root / "numbers", "<image> How many dogs are there?", ["3"])
        ),
    }
    return root, written


@pytest.fixture(scope="module")
def built_nih(nih_release, tmp_path_factory):
    root, written = nih_release
    output = tmp_path_factory.mktemp("built") / "nih"
    return build_devcv([root], output, progress=False, audit=False), output


def test_variant_layout_builds_every_item_with_no_unknown_task(nih_release, built_nih):
    _, written = nih_release
    report, output = built_nih
    assert report.skipped_files == [] and report.skipped == []
    assert report.counts() == {task: {"test": len(items)} for task, items in written.items()}
    how = {summary.task: summary.task_from for summary in report.files}
    assert how == {
        "picture_vocabulary": "name",
        "memory": "name",
        "vdr_binary": "prompt",
        "compare_synthetic": "source",
        "localize": "prompt",
        "leftright": "prompt",
        "count": "prompt",
    }
    assert "task of" in report.summary() and "vdr_binary (prompt" in report.summary()


def test_grid_picture_vocabulary_thirty_round_memory_and_fifty_frame_vdr_rows(built_nih):
    _, output = built_nih
    grid = load_dataset(str(output), "picture_vocabulary", split="test")[0]
    assert len(grid["images"]) == 1 and grid["choices"] == ["A", "B", "C", "D"] and grid["source_task"] == "pv_grid"
    memory = load_dataset(str(output), "memory", split="test")[0]
    assert len(memory["answer"]) == 30 and len(memory["images"]) == 59 == count_image_blocks(memory["messages"])
    assert len(memory["labels"]) == 30 and (len(memory["answer"]) + 1) // 3 == 10  # the 30-round item's base
    vdr = load_dataset(str(output), "vdr_binary", split="test")[0]
    assert len(vdr["images"]) == 50 and vdr["choices"] == ["left", "right"]


def test_who_has_more_follows_the_source_or_names_or_task(tmp_path):
    prompt = "Which picture has more balls? (A) <image> (B) <image>"
    for source in ("babyview", "ego4d"):
        folder = tmp_path / source / "who_has_more"
        _write(folder, _single_turn_items(folder, prompt, ["A"]))
    babyview = build_devcv([tmp_path / "babyview"], tmp_path / "bv", progress=False, audit=False)
    assert babyview.counts() == {"compare_real": {"test": 1}}
    with pytest.raises(DevCVBuildError, match="no item could be written") as failure:
        build_devcv([tmp_path / "ego4d"], tmp_path / "e1", progress=False, audit=False)
    (skipped,) = failure.value.report.skipped_files
    assert skipped.reason == "unknown_task" and "compare_real or compare_synthetic" in skipped.detail
    assert "--task who_has_more=TASK" in skipped.detail
    named = build_devcv(
        [tmp_path / "ego4d"], tmp_path / "e2", progress=False, audit=False, tasks=["who_has_more=compare_synthetic"]
    )
    assert named.counts() == {"compare_synthetic": {"test": 1}} and named.files[0].task_from == "override"


def test_unrecognisable_folder_is_reported_and_task_overrides_it(tmp_path, capsys):
    root = tmp_path / "nih"
    _write(root / "mystery", _single_turn_items(root / "mystery", "<image> What is this?", ["3"]))
    _write(root / "count", _single_turn_items(root / "count", "<image> How many cups?", ["2"]))
    report = build_devcv([root], tmp_path / "out", progress=False, audit=False)
    (skipped,) = report.skipped_files
    assert (
        skipped.reason == "unknown_task" and "'mystery'" in skipped.detail and "no task (1 item(s))" in skipped.detail
    )
    with pytest.raises(DevCVBuildError, match="strict"):
        build_devcv([root], tmp_path / "strict", progress=False, audit=False, strict=True)
    assert (
        build_main([str(root), "--output", str(tmp_path / "cli"), "--task", "mystery=count", "--quiet", "--no-audit"])
        == 0
    )
    assert "count (override: --task count)" in capsys.readouterr().out
    assert load_dataset(str(tmp_path / "cli"), "count", split="test").num_rows == 2
    single_file = root / "mystery" / "data.json"  # a SOURCE argument names the files under it
    by_source = build_devcv(
        [single_file], tmp_path / "one", progress=False, audit=False, tasks=[f"{single_file}=count"]
    )
    assert by_source.counts() == {"count": {"test": 1}} and by_source.files[0].task_from == "override"
    with pytest.raises(ValueError, match="no released file, folder or SOURCE is named 'mistery'"):
        build_devcv([root], tmp_path / "typo", progress=False, tasks=["mistery=count"])
    with pytest.raises(ValueError, match="unknown DevCV task 'cuont'"):
        build_devcv([root], tmp_path / "typo", progress=False, tasks=["mystery=cuont"])


def test_organisers_layout_with_file_names_and_splits(tmp_path):
    """``scc_json/<folder>/<name>_<split>.json``: one folder may hold two tasks, the split is in the name."""
    root = tmp_path / "saycam"
    vdr = root / "visual_delay_response"
    binary = (
        "<image><image> does the cup leave the frame through the left side of the frame or the "
        "right side of the frame? respond ONLY with 'left' or 'right'."
    )
    write_json(vdr / "binary_dataset_test.json", _single_turn_items(vdr, binary, ["left"]))
    write_json(vdr / "total_binary_dataset_train.json", _single_turn_items(vdr, binary, ["left", "right"]))
    open_prompt = (
        "<image><image> which part of the frame does the cup leave from? respond ONLY with one of: "
        "'top', 'bottom', 'left', 'right', 'top right', 'top left', 'bottom right', or 'bottom "
        "left'."
    )
    write_json(vdr / "open_dataset_val.json", _single_turn_items(vdr, open_prompt, ["top"]))
    pv = root / "picture_vocabulary_v2_val"
    write_json(pv / "dataset_seen.json", _single_turn_items(pv, PROMPTS["picture_vocabulary"][1], ["B"]))
    report = build_devcv([root], tmp_path / "out", progress=False, audit=False)
    assert report.ok and report.counts() == {
        "vdr_binary": {"test": 1, "train": 2},
        "vdr_open": {"validation": 1},
        "picture_vocabulary": {"validation": 1},
    }
    export_release(tmp_path / "out", tmp_path / "exported")
    exported = json.loads((tmp_path / "exported/saycam/val/visual_delay_response/open_dataset.json").read_text())
    assert exported == json.loads((vdr / "open_dataset_val.json").read_text())
    rebuilt = build_devcv([tmp_path / "exported" / "saycam"], tmp_path / "rebuilt", progress=False, audit=False)
    assert rebuilt.ok and rebuilt.counts() == report.counts()
    assert {summary.source_task for summary in rebuilt.files} == {summary.source_task for summary in report.files}


# --- duplicate ids -----------------------------------------------------------------------------------------


def test_different_items_sharing_an_id_are_all_kept_identical_copies_dropped(tmp_path):
    folder = tmp_path / "ego4d" / "compare_synthetic"
    prompt = "Which image has more {}? Answer (A) <image> (B) <image>"
    first, second, third, renamed_clash = (
        _single_turn_items(folder, prompt.format(thing), [answer])[0]
        for thing, answer in (("tapes", "A"), ("bowls", "B"), ("cups", "A"), ("pens", "B"))
    )
    items = [
        {**first, "id": "count_6"},
        {**second, "id": "count_6"},
        {**first, "id": "count_6"},  # a byte-identical copy
        {**renamed_clash, "id": "count_6__2"},  # a released id the renaming would otherwise take
        {**third, "id": "count_6"},
    ]
    _write(folder, items)
    report = build_devcv([tmp_path / "ego4d"], tmp_path / "out", progress=False, audit=False)
    rows = load_dataset(str(tmp_path / "out"), "compare_synthetic", split="test")
    assert rows["id"] == ["count_6", "count_6__2", "count_6__2__2", "count_6__3"]
    assert rows["original_id"] == ["count_6", "count_6", "count_6__2", "count_6"]
    assert [(skip.index, skip.reason) for skip in report.skipped] == [(2, "duplicate_item")]
    assert "identical to the item read from" in report.skipped[0].detail and report.items == 5 == report.written + 1
    assert [(item.index, item.id) for item in report.renamed] == [
        (1, "count_6__2"),
        (3, "count_6__2__2"),
        (4, "count_6__3"),
    ]
    assert json.loads((tmp_path / "out" / "build_report.json").read_text())["renamed"] == 3
    export_release(tmp_path / "out", tmp_path / "exported")
    exported = json.loads((tmp_path / "exported/ego4d/test/compare_synthetic/data.json").read_text())
    assert exported == [item for index, item in enumerate(items) if index != 2]
    with pytest.raises(DevCVBuildError, match="strict"):  # the identical copy is a skip
        build_devcv([tmp_path / "ego4d"], tmp_path / "strict", progress=False, audit=False, strict=True)


# --- Looking-While-Listening CSV ---------------------------------------------------------------------------

LWL_HEADER = ["instance_id", "positive_phrase", "negative_phrase", "image", "image_tag"]


def _lwl_csv(folder, rows: list[list[str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "baby_winoground.csv", "w", newline="") as file:
        csv.writer(file).writerows([LWL_HEADER, *rows])


@pytest.fixture
def lwl_release(tmp_path):
    """The organisers' layout: ``dataset/baby_winoground/`` with the CSV and positive_/negative_images/."""
    folder = tmp_path / "dataset" / "baby_winoground"
    for tag in ("positive", "negative"):
        (folder / f"{tag}_images").mkdir(parents=True)
    for index in range(7):
        noise_image(index).save(folder / "positive_images" / f"S_{index}.jpg", format="JPEG")
        noise_image(100 + index).save(folder / "negative_images" / f"S_{index}_neg.jpeg", format="JPEG")
    noise_image(50).save(folder / "S_beside.png")
    noise_image(51).save(folder / "S_beside_neg.png")
    rows = [
        ["0", "see person", "touch pillow", "S_0.jpg", "positive"],
        ["0", "see person", "touch pillow", "S_0_neg.jpeg", "negative"],
        ["1", "play mat", "read book", "S_1_neg.jpeg", "negative"],  # negative first: order does not matter
        ["2", "red cup", "blue cup", "S_2.jpg", "positive"],
        ["2", "red cup", "blue cup", "S_2_neg.jpeg", "neutral"],  # bad tag
        ["1", "play mat", "read book", "S_1.jpg", "positive"],
        ["3", "big rock", "big balloon", "S_3.jpg", "positive"],  # no negative row
        ["4", "sunny day", "rainy day", "S_4.jpg", "positive"],
        ["4", "sunny night", "rainy day", "S_4_neg.jpeg", "negative"],  # phrases differ
        ["5", "hug bear", "kiss cat", "S_5.jpg", "positive", "extra field"],  # 6 fields
        ["", "a", "b", "S_6.jpg", "positive"],  # no instance id
        ["6", "yellow fish", "red fish", "S_6.jpg", "positive"],
        ["6", "yellow fish", "red fish", "S_missing.jpeg", "negative"],  # missing image
        ["7", "open door", "closed door", "S_beside.png", "positive"],  # images beside the CSV
        ["7", "open door", "closed door", "S_beside_neg.png", "negative"],
    ]
    _lwl_csv(folder, rows)
    return tmp_path / "dataset", folder


def test_lwl_csv_builds_instances_with_positive_negative_provenance(lwl_release, tmp_path):
    dataset, folder = lwl_release
    report = build_devcv([dataset], tmp_path / "out", source_name="saycam", progress=False, audit=False)
    rows = load_dataset(str(tmp_path / "out"), "looking_while_listening", split="test")
    assert rows["id"] == ["0", "1", "7"] and report.files[0].source_task == "baby_winoground/baby_winoground"
    row = rows[1]
    assert row["choices"] == ["play mat", "read book"] and row["messages"] == [] and row["answer"] == []
    assert row["image_paths"] == ["positive_images/S_1.jpg", "negative_images/S_1_neg.jpeg"]
    assert json.loads(row["extra"]) == {"image_tags": ["positive", "negative"]}
    assert rows[2]["image_paths"] == ["S_beside.png", "S_beside_neg.png"]
    undecoded = rows.cast_column("images", List(Image(decode=False)))
    assert undecoded[1]["images"][0]["bytes"] == (folder / "positive_images" / "S_1.jpg").read_bytes()
    # What the runner scores: image 0 (positive) and 1 (negative) against phrase 0 (positive) and 1.
    conversations, continuations = lwl_requests(row)
    phrases = [LWL_TARGET_DELIMITER + phrase for phrase in ("play mat", "read book")]
    assert continuations == phrases * 2 and [conversation.images for conversation in conversations] == [
        [image] for image in row["images"] for _ in phrases
    ]


def test_lwl_csv_bad_rows_are_counted_skips_naming_file_and_line(lwl_release, tmp_path):
    dataset, folder = lwl_release
    report = build_devcv([dataset], tmp_path / "out", source_name="saycam", progress=False, audit=False)
    csv_file = str(folder / "baby_winoground.csv")
    skips = {(skip.file, skip.index, skip.reason) for skip in report.skipped}
    assert skips == {
        (csv_file, 5, "malformed_field"),  # instance 2: bad tag on line 6
        (csv_file, 8, "malformed_field"),  # instance 3: no negative row
        (csv_file, 9, "malformed_field"),  # instance 4: phrases differ
        (csv_file, 11, "malformed_field"),  # 6 fields
        (csv_file, 12, "malformed_field"),  # no instance id
        (csv_file, 13, "missing_image"),  # instance 6
    }
    details = {skip.index: skip.detail for skip in report.skipped}
    assert "line 6: image_tag 'neutral'" in details[5] and "has no negative row" in details[8]
    assert "lines 9, 10" in details[9] and "line 11: 6 fields" in details[11] and "line 12" in details[12]
    assert "line 14: image 'S_missing.jpeg'" in details[13] and "negative_images/S_missing.jpeg" in details[13]
    assert report.items == report.written + len(report.skipped) == 9


def test_lwl_csv_alone_and_by_its_columns(lwl_release, tmp_path):
    _, folder = lwl_release
    good = folder / "renamed_instances.csv"
    with open(good, "w", newline="") as file:
        csv.writer(file).writerows(
            [LWL_HEADER, ["0", "a", "b", "S_0.jpg", "positive"], ["0", "a", "b", "S_0_neg.jpeg", "negative"]]
        )
    report = build_devcv([good], tmp_path / "out", source_name="nih", progress=False, audit=False)
    assert (
        report.ok
        and report.files[0].task_from == "columns"
        and report.counts() == {"looking_while_listening": {"test": 1}}
    )
    other = folder / "captions.csv"
    other.write_text("utterance,image\nhello,S_0.jpg\n")
    with pytest.raises(DevCVBuildError) as failure:
        build_devcv([other], tmp_path / "other", source_name="nih", progress=False, audit=False)
    assert "not the Looking-While-Listening ones" in failure.value.report.skipped_files[0].detail


def test_the_organisers_lwl_csv_is_saycam_by_its_frame_names(tmp_path):
    """In lmms-eval's dataset/baby_winoground/ no path part names the source; the images are SAYCam frames."""
    folder = tmp_path / "lmms-eval" / "dataset" / "baby_winoground"
    rows = []
    for index, recording in enumerate(("S_20141015_2328_02", "A_20130909_1530_01")):
        for tag in ("positive", "negative"):
            name = f"{recording}_{index * 1000}_{index * 1000 + 900}_frame_{tag}.jpg"
            (folder / f"{tag}_images").mkdir(parents=True, exist_ok=True)
            noise_image(index * 10 + len(tag)).save(folder / f"{tag}_images" / name, format="JPEG")
            rows.append([str(index), "see ball", "see cup", name, tag])
    _lwl_csv(folder, rows)
    report = build_devcv([tmp_path / "lmms-eval" / "dataset"], tmp_path / "out", progress=False, audit=False)
    assert report.ok and report.written == 2
    assert set(load_dataset(str(tmp_path / "out"), "looking_while_listening", split="test")["source"]) == {"saycam"}

    _lwl_csv(folder, [*rows[:3], [rows[3][0], "see ball", "see cup", "IMG_0001.jpg", "negative"]])
    with pytest.raises(ValueError, match="are not SAYCam frames"):
        build_devcv([tmp_path / "lmms-eval" / "dataset"], tmp_path / "other", progress=False, audit=False)


# --- the real samples (their build: tests/test_devcv_builder.py) ------------------------------------------


def test_prompt_inference_agrees_with_the_released_names_on_every_sample_item(devcv_samples):
    """The prompt cues, written from the documented wordings, place every real SAYCam and Ego4D item
    where its folder does (Who Has More: both variants, which the prompt cannot tell apart)."""
    for path in sorted(devcv_samples.glob("**/data.json")):
        (task,) = names_candidates((path.parent.name,))
        expected = {"compare_real", "compare_synthetic"} if task.startswith("compare") else {task}
        for item in json.loads(path.read_text()):
            assert prompt_candidates(item) == expected, (path, item["id"])


def test_variant_builds_are_strict_clean_and_reproducible(nih_release, built_nih, lwl_release, tmp_path):
    root, _ = nih_release
    again = build_devcv([root], tmp_path / "again", progress=False, audit=False, strict=True, num_proc=2)
    assert again.ok and again.fingerprint == built_nih[0].fingerprint
    with pytest.raises(DevCVBuildError, match="strict build: 6 item"):  # the LWL CSV's bad rows fail a strict build
        build_devcv([lwl_release[0]], tmp_path / "lwl", source_name="saycam", strict=True, progress=False, audit=False)
    assert not (tmp_path / "lwl").exists()


def test_lwl_csv_rows_obey_the_input_limits(lwl_release, tmp_path):
    dataset, _ = lwl_release
    report = build_devcv(
        [dataset], tmp_path / "out", source_name="saycam", progress=False, audit=False, limits=InputLimits(13)
    )
    too_large = {skip.id: skip.detail for skip in report.skipped if skip.reason == "too_large"}
    assert list(too_large) == ["6", "7"]  # their 14- and 16-byte image names
    assert too_large["6"].startswith("line 14: text field image")
    assert too_large["7"].startswith("line 16: text field image")  # the negative row of instance 7
    assert report.items == report.written + len(report.skipped)


@pytest.mark.parametrize(
    ("folder", "source"),
    [("ego4d_sample", "ego4d"), ("nih_toolbox_sample", "nih"), ("babyview_sample", "babyview"), ("saycam", "saycam")],
)
def test_a_source_name_is_recognised_as_a_word_of_a_path_part_and_through_links(tmp_path, folder, source):
    from babyvlm.dataset_builders.devcv.layouts import infer_source_name

    released = tmp_path / "website" / folder / "count"
    released.mkdir(parents=True)
    assert infer_source_name(released) == source
    link = tmp_path / "my_copy"
    link.symlink_to(released.parent)
    assert infer_source_name(link / "count") == source
    with pytest.raises(ValueError, match="cannot tell which source"):
        infer_source_name(tmp_path / "website")
