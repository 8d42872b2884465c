"""DevCV item generators: every task from a toy world, correct by construction, balanced, leak-free,
deterministic, and usable by the loader, the metrics, the collator and the model."""

import io
import json
import random
import re
import shutil
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from babyvlm.dataset_builders.annotations import load_annotations
from babyvlm.dataset_builders.devcv.audit import placement_distance
from babyvlm.dataset_builders.devcv.generators import prompts
from babyvlm.dataset_builders.devcv.generators.cli import main as generate_main
from babyvlm.dataset_builders.devcv.generators.config import GeneratorConfig
from babyvlm.dataset_builders.devcv.generators.generate import GenerationError, generate_devcv, open_corpus
from babyvlm.dataset_builders.devcv.generators.items import TaskContext
from babyvlm.dataset_builders.devcv.generators.objects import PictureVocabularyGenerator
from babyvlm.dataset_builders.devcv.generators.report import DUPLICATE_CONTENT, Skip
from babyvlm.dataset_builders.devcv.generators.vocabulary import DistractorPolicy
from babyvlm.dataset_builders.toyworld import world as toyworld
from babyvlm.dataset_builders.toyworld.generate import generate_toyworld
from babyvlm.dataset_builders.toyworld.vocabulary import COLORS
from babyvlm.evaluate_metrics.devcv.tasks import TASKS
from babyvlm.evaluate_metrics.units import item_unit
from datasets import get_dataset_config_names, load_dataset
from hub_cards import assert_hub_dataset_card
from scipy.stats import binomtest

from babyvlm.chat import content_to_text

# Big enough for every task in a train and a test split (Memory needs 15 different-looking objects per split).
TEST_SCALE = toyworld.ToyWorldScale(
    recordings_per_child=3, episodes_per_recording=6, episode_seconds=4.0, fps=5, width=128, height=96
)
SPLITS = {"train": 0.5, "test": 0.5}
ITEMS = 40
SPATIAL_TASKS = ("leftright", "spatialdetails")
LETTER_TASKS = ("picture_vocabulary", "localize", "leftright", "spatialdetails", "compare_real", "compare_synthetic")


def config(**overrides) -> GeneratorConfig:
    settings = {"items_per_split": dict.fromkeys(SPLITS, ITEMS), "split_fractions": SPLITS, **overrides}
    return GeneratorConfig(**settings)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("toyworld") / "world"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(toyworld.SCALES, "tests", TEST_SCALE)
        generate_toyworld(root, seed=0, scale="tests")
    return root


@pytest.fixture(scope="module")
def generated(world, tmp_path_factory):
    output = tmp_path_factory.mktemp("generated") / "devcv"
    return output, generate_devcv(world, output, config())


@pytest.fixture(scope="module")
def rows(generated):
    """split -> task -> rows (decoded images), read through the default `all` config."""
    by_split = {}
    for split in SPLITS:
        by_task = defaultdict(list)
        for row in load_dataset(str(generated[0]), split=split):
            by_task[row["task"]].append(row)
        by_split[split] = by_task
    return by_split


@pytest.fixture(scope="module")
def hardened(world, tmp_path_factory):
    """Left/Right and Spatial Details in the shortcut-resistant construction: (report, split -> task -> rows)."""
    output = tmp_path_factory.mktemp("hardened") / "devcv"
    report = generate_devcv(world, output, config(tasks=SPATIAL_TASKS, construction="hardened"))
    by_split = {}
    for split in SPLITS:
        by_task = defaultdict(list)
        for row in load_dataset(str(output), split=split):
            by_task[row["task"]].append(row)
        by_split[split] = by_task
    return report, by_split


@pytest.fixture(scope="module")
def frame_annotations(world):
    """(recording, frame index) -> the annotated objects of that frame."""
    return {(frame.recording, frame.frame_index): frame for frame in load_annotations(world / "annotations").frames}


def provenance(row) -> dict:
    return json.loads(row["provenance"])


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int64)


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def user_text(row) -> str:
    return content_to_text(row["messages"][0]["content"])


# --- the folder: configs, splits, card ----------------------------------------------------------------------


def test_every_task_loads_by_config_with_held_out_tasks_test_only(generated):
    output, report = generated
    assert set(get_dataset_config_names(str(output))) == {"all", *TASKS}
    for task in TASKS:
        splits = ("test",) if task in ("looking_while_listening", "subitize") else ("train", "test")
        for split in SPLITS:
            if split in splits:
                assert load_dataset(str(output), task, split=split).num_rows > 0, (task, split)
            else:
                assert task not in report.counts() or split not in report.counts()[task]
    assert json.loads((output / "generation_report.json").read_text())["counts"] == report.counts()


def test_splits_share_no_recording(generated, rows):
    _, report = generated
    assert set(report.recordings["train"]).isdisjoint(report.recordings["test"])

    def recordings(value):
        if isinstance(value, dict):
            return {value["recording"]} if "recording" in value else set().union(*map(recordings, value.values()))
        if isinstance(value, list):
            return set().union(*map(recordings, value)) if value else set()
        return set()

    for split, by_task in rows.items():
        used = set().union(*(recordings(provenance(row)) for task_rows in by_task.values() for row in task_rows))
        assert used and used <= set(report.recordings[split]), split


def test_every_item_is_clustered_by_the_recording_of_its_query(generated, rows):
    # What each task's item asks about, by construction (the other frames are distractors or peers).
    query = {
        "picture_vocabulary": lambda p: p["target"],
        "spatialdetails": lambda p: p["query"],
        "memory": lambda p: p["learned"][0],
        "compare_real": lambda p: p["options"][0],
        "looking_while_listening": lambda p: p["images"][0],
    }
    _, report = generated
    for split, by_task in rows.items():
        for task, task_rows in by_task.items():
            units = [item_unit(row) for row in task_rows]
            expected = [query.get(task, lambda p: p)(provenance(row))["recording"] for row in task_rows]
            assert units == [("recording", recording) for recording in expected], (split, task)
            assert set(expected) <= set(report.recordings[split])
            # Items spread over the split's recordings: distractors drawn from the whole split join nothing.
            assert len(set(expected)) > 1, (split, task)


def test_every_candidate_is_accounted_for(generated):
    _, report = generated
    for summary in report.tasks:
        assert summary.written <= summary.requested
        assert summary.untried >= 0
        if summary.written < summary.requested:  # ran out of candidates: all were tried
            assert summary.untried == 0, summary
    assert (
        report.frames["frames"]
        == report.frames["scenes"] + report.frames["same_layout_as_a_scene"] + report.frames["no_objects"]
    )


# --- prompts: the original wording --------------------------------------------------------------------------

WORD = "\x00"


def pattern(template: str, frames_vary: bool = False) -> re.Pattern:
    """A regex of a prompt template whose variable parts were filled with WORD (and, for VDR, one image)."""
    text = re.escape(template).replace(re.escape(WORD), "(.+?)")
    if frames_vary:
        text = "(?:<image>)+" + text.removeprefix(re.escape("<image>"))
    return re.compile(text)


def prompt_patterns(variant: str) -> dict[str, list[re.Pattern]]:
    return {
        "count": [pattern(prompts.count(WORD))],
        "subitize": [pattern(prompts.subitize(WORD))],
        "picture_vocabulary": [pattern(prompts.picture_vocabulary(WORD, variant))],
        "localize": [pattern(prompts.localize(WORD))],
        "leftright": [pattern(prompts.leftright(variant))],
        "spatialdetails": [pattern(prompts.spatialdetails(variant))],
        "vdr_binary": [pattern(prompts.vdr_binary(1, WORD, WORD, WORD), frames_vary=True)],
        "vdr_open": [pattern(prompts.vdr_open(1, WORD), frames_vary=True)],
        "memory": [pattern(prompts.memory_round(0)), pattern(prompts.memory_round(1))],
        "compare_real": [pattern(prompts.compare_real(WORD))],
        "compare_synthetic": [pattern(prompts.compare_synthetic(WORD))],
    }


# Wordings a few released items use and the generators do not: VDR about groups of objects, and
# one Memory item with its images before the text ("<image> Touch the new image. (A) the first image").
RELEASED_OTHER_FORMS = ("collectively", "Touch the new image. (A) the first image")


def released_prompts(folder):
    for path in sorted(folder.glob("*/data.json")):
        task = {"vdr-binary": "vdr_binary", "vdr-open": "vdr_open"}.get(path.parent.name, path.parent.name)
        for item in json.loads(path.read_text()):
            yield task, [turn["value"] for turn in item["conversations"] if turn["from"] == "human"]


@pytest.mark.parametrize(
    "variant, folders", [("saycam", ("saycam/train", "saycam/val", "saycam/test")), ("ego4d", ("ego4d",))]
)
def test_prompt_templates_match_the_released_prompts(variant, folders, devcv_samples):
    patterns = prompt_patterns(variant)
    matched = Counter()
    for folder in folders:
        for task, turns in released_prompts(devcv_samples / folder):
            if any(form in turns[0] for form in RELEASED_OTHER_FORMS):
                continue
            for turn in turns:
                assert any(p.fullmatch(turn) for p in patterns[task]), (task, turn)
            matched[task] += 1
    # Every task with a released sample was checked; Subitizing has none (its wording is BabyView's, see
    # dataset_builders/devcv/README.md).
    assert set(matched) == set(patterns) - {"subitize"}
    assert prompts.subitize("cup") == "<image> How many of cup do you see?"


def test_generated_prompts_follow_the_released_wording(rows):
    patterns = prompt_patterns("saycam")
    for by_task in rows.values():
        for task, task_rows in by_task.items():
            for row in task_rows:
                turns = [content_to_text(m["content"]) for m in row["messages"] if m["role"] == "user"]
                for turn in turns:
                    assert any(p.fullmatch(turn) for p in patterns[task]), (task, turn)


def test_ego4d_variant_uses_the_ego4d_wording(world, tmp_path):
    tasks = ("picture_vocabulary", "leftright", "spatialdetails")
    generate_devcv(
        world, tmp_path / "ego4d", config(tasks=tasks, variant="ego4d", items_per_split={"test": 4}), audit=False
    )
    patterns = prompt_patterns("ego4d")
    for task in tasks:
        for row in load_dataset(str(tmp_path / "ego4d"), task, split="test"):
            assert patterns[task][0].fullmatch(user_text(row)), user_text(row)
    assert "Answer with a number" not in prompts.leftright("ego4d") and "Answer with a number" in prompts.leftright(
        "saycam"
    )


# --- answers are right by construction ------------------------------------------------------------------------


def test_counted_objects_are_in_the_frame(rows, frame_annotations):
    for by_task in rows.values():
        for task in ("count", "subitize"):
            for row in by_task.get(task, []):
                origin = provenance(row)
                frame = frame_annotations[origin["recording"], origin["frame_index"]]
                counted = [obj for obj in frame.objects if obj.category == origin["category"]]
                assert row["answer"] == [str(len(counted))] and len(origin["objects"]) == len(counted)
                if task == "subitize":
                    assert 1 <= len(counted) <= 4
                image = pixels(row["images"][0])
                for obj in counted:  # every counted object is in full view, and its colour is at its centre
                    x, y, w, h = obj.box
                    assert x >= 1 and y >= 1 and x + w <= image.shape[1] - 1 and y + h <= image.shape[0] - 1
                    centre = image[int(y + h / 2), int(x + w / 2)]
                    assert np.abs(centre - COLORS[obj.color]).sum() < 90, (row["id"], obj)


def test_who_has_more_answers_the_image_with_more(rows, frame_annotations):
    for by_task in rows.values():
        for row in by_task["compare_real"]:
            origin = provenance(row)
            counts = [
                sum(
                    obj.category == origin["category"]
                    for obj in frame_annotations[option["recording"], option["frame_index"]].objects
                )
                for option in origin["options"]
            ]
            assert counts[0] != counts[1] and row["answer"] == ["AB"[int(np.argmax(counts))]]
            assert row["notes"] == f"first should have {counts[0]} second should have {counts[1]}"
        for row in by_task["compare_synthetic"]:
            options = provenance(row)["options"]
            width, height = provenance(row)["copy_size"]
            for image, option in zip(row["images"], options):
                drawn = pixels(image).sum(axis=2) > 0
                covered = np.zeros_like(drawn)
                for x, y in option["positions"]:
                    assert drawn[y : y + height, x : x + width].mean() > 0.9  # a copy is there
                    covered[y : y + height, x : x + width] = True
                assert not drawn[~covered].any()  # and nothing else
            assert row["answer"] == ["AB"[int(np.argmax([len(option["positions"]) for option in options]))]]


def test_localize_target_lies_in_the_answered_quadrant(rows, frame_annotations):
    for by_task in rows.values():
        for row in by_task["localize"]:
            origin = provenance(row)
            width, height = row["images"][0].size
            x, y, w, h = row["bbox"]
            quadrant = "ABCD".index(row["answer"][0])
            right, bottom = quadrant % 2 == 1, quadrant >= 2
            assert (x >= width / 2) if right else (x + w <= width / 2)
            assert (y >= height / 2) if bottom else (y + h <= height / 2)
            left, top, window_right, window_bottom = origin["window"]
            rivals = [
                obj
                for obj in frame_annotations[origin["recording"], origin["frame_index"]].objects
                if obj.category == origin["object"]["category"] and obj.instance_id != origin["object"]["instance_id"]
            ]
            for obj in rivals:  # no other object of the category shows in the crop
                ox, oy, ow, oh = obj.box
                assert ox + ow <= left or ox >= window_right or oy + oh <= top or oy >= window_bottom


def test_released_leftright_gold_is_the_frame_itself_and_distractors_its_mirror(rows):
    """As the released items (every SAYCam and Ego4D sample): gold = a byte copy of the query, distractors = one
    mirrored copy twice."""
    for by_task in rows.values():
        for row in by_task["leftright"]:
            origin = provenance(row)
            assert origin["construction"] == "released"
            query, *options = [pixels(image) for image in row["images"]]
            gold = "ABC".index(row["answer"][0])
            distractors = [option for index, option in enumerate(options) if index != gold]
            assert np.array_equal(options[gold], query) and np.array_equal(*distractors)
            assert np.abs(distractors[0] - query[:, ::-1]).mean() < 3  # the mirror image, JPEG-encoded
            assert [placed["mirrored"] for placed in origin["options"]] == [index != gold for index in range(3)]


def test_released_spatialdetails_query_is_cut_from_the_gold_frame(rows):
    for by_task in rows.values():
        for row in by_task["spatialdetails"]:
            origin = provenance(row)
            gold = "ABC".index(row["answer"][0])
            shown_in = origin["options"][gold]
            assert origin["construction"] == "released"
            assert (shown_in["recording"], shown_in["frame_index"]) == (
                origin["query"]["recording"],
                origin["query"]["frame_index"],
            )
            query, *options = [pixels(image) for image in row["images"]]
            # Per colour channel: a near-miss distractor may show the same shape in another colour, which
            # grey levels can hardly tell from the gold.
            distances = [
                sum(placement_distance(query[..., channel], option[..., channel]) for channel in range(3))
                for option in options
            ]
            others = [distance for index, distance in enumerate(distances) if index != gold]
            assert distances[gold] < 0.1 * min(others)  # the exact pixels, up to JPEG noise


def test_hardened_leftright_options_are_the_object_and_its_mirror_images(hardened):
    for by_task in hardened[1].values():
        for row in by_task["leftright"]:
            origin = provenance(row)
            assert origin["construction"] == "hardened"
            width, height = origin["crop_size"]
            query, *options = [pixels(image) for image in row["images"]]
            qx, qy = origin["query_at"]
            stimulus = query[qy : qy + height, qx : qx + width]
            assert not np.array_equal(stimulus, stimulus[:, ::-1])
            for letter, option, placed in zip("ABC", options, origin["options"]):
                x, y = placed["at"]
                shown = option[y : y + height, x : x + width]
                expected = stimulus[:, ::-1] if placed["mirrored"] else stimulus
                assert np.array_equal(shown, expected)
                assert placed["mirrored"] == (letter != row["answer"][0])
            raw = [png_bytes(image) for image in row["images"]]
            assert len(set(raw)) == 4  # no option is a copy of the query or of another option


@pytest.mark.parametrize("construction", ["released", "hardened"])
def test_spatialdetails_exactly_one_option_shows_the_object(construction, rows, hardened, frame_annotations):
    for by_task in (rows if construction == "released" else hardened[1]).values():
        for row in by_task["spatialdetails"]:
            origin = provenance(row)
            obj = origin["query"]["object"]
            shows = [
                any(
                    (o.category, o.color) == (obj["category"], obj["color"])
                    for o in frame_annotations[option["recording"], option["frame_index"]].objects
                )
                for option in origin["options"]
            ]
            assert shows.count(True) == 1 and row["answer"] == ["ABC"[shows.index(True)]]
            if construction == "hardened":  # the query comes from another frame and is no option's copy
                gold = origin["options"][shows.index(True)]
                assert (gold["recording"], gold["frame_index"]) != (
                    origin["query"]["recording"],
                    origin["query"]["frame_index"],
                )
                query_bytes = png_bytes(row["images"][0])
                assert all(png_bytes(image) != query_bytes for image in row["images"][1:])


def test_vdr_frames_show_the_exit_and_the_answer_is_its_direction(rows, frame_annotations, world):
    exits = {(e.recording, e.instance_id): e for e in load_annotations(world / "annotations").exits}
    for by_task in rows.values():
        for task in ("vdr_binary", "vdr_open"):
            for row in by_task[task]:
                origin = provenance(row)
                event = exits[origin["recording"], origin["instance_id"]]
                assert 5 <= len(row["images"]) <= 9 and len(origin["frame_indices"]) == len(row["images"])
                frames = [frame_annotations[event.recording, index] for index in origin["frame_indices"]]
                assert all(event.start_ms <= frame.time_ms <= event.end_ms for frame in frames)
                assert any(o.instance_id == event.instance_id for o in frames[0].objects)
                assert not any(o.instance_id == event.instance_id for o in frames[-1].objects)
                if task == "vdr_open":
                    assert row["answer"] == [event.direction]
                else:
                    side = row["answer"][0]
                    assert side in event.direction.split() and set(row["choices"]) == {
                        side,
                        {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}[side],
                    }


def test_memory_rounds_learn_five_objects_then_test_each_twice(rows):
    for by_task in rows.values():
        for row in by_task["memory"]:
            labels, answers = row["labels"], row["answer"]
            assert len(labels) == len(answers) == 15 and len(row["images"]) == 29
            seen, new_objects, shown_again, crop_of = set(), [], [], {}
            image_index = 0
            for round_labels, answer in zip(labels, answers):
                new = [label for label in round_labels if label not in seen]
                assert (
                    len(new) == 1 and round_labels["AB".index(answer)] == new[0]
                )  # the gold option is the unseen object
                new_objects.append(new[0])
                shown_again += [label for label in round_labels if label in seen]
                for label in round_labels:  # an object is always shown as the same crop
                    crop = png_bytes(row["images"][image_index])
                    assert crop_of.setdefault(label, crop) == crop
                    image_index += 1
                seen.update(round_labels)
            learned = new_objects[:5]
            assert shown_again[:4] == learned[:4]  # learning rounds: each new object next to the previous one
            assert Counter(shown_again[4:]) == dict.fromkeys(learned, 2)  # test rounds: each learned object twice
            assert len(set(crop_of.values())) == 15
            assert Counter(answers[1:]) == {"A": 7, "B": 7}


def test_picture_vocabulary_and_lwl_name_what_the_crops_show(rows):
    for by_task in rows.values():
        for row in by_task["picture_vocabulary"]:
            origin = provenance(row)
            word = origin["word"]
            assert origin["target"]["object"]["category"] == word and origin["distractor_method"] == "random"
            distractors = [d["word"] for d in origin["distractors"]]
            assert len(set(distractors)) == 3 and word not in distractors
            assert all(d["object"]["category"] == d["word"] for d in origin["distractors"])
    for row in rows["test"]["looking_while_listening"]:
        images = provenance(row)["images"]
        assert row["messages"] == [] and row["answer"] == [] and len(row["images"]) == 2
        assert images[0]["object"]["category"] != images[1]["object"]["category"]
        for phrase, image in zip(row["choices"], images):
            assert phrase == f"a {image['object']['color']} {image['object']['category']}"


# --- balance and shortcuts -------------------------------------------------------------------------------------


def not_above_chance(hits: int, n: int, chance: float) -> bool:
    return binomtest(hits, n, chance, alternative="greater").pvalue > 0.01


def test_shortcut_audit_is_in_the_card_and_stays_at_chance(generated, rows):
    output, report = generated
    card = (output / "README.md").read_text()
    assert "## Shortcut audit" in card
    for result in report.audit:
        task, n = result["task"], result["items"]
        if task in LETTER_TASKS:
            options = len(rows[result["split"]][task][0]["choices"])
            # Gold positions come from shuffled blocks of every position: they differ by at most one item.
            if task != "localize":
                counts = [share * n for share in result["positions"].values()]
                assert len(counts) == options and max(counts) - min(counts) <= 1 + 1e-9, result
            assert not_above_chance(round(result["majority"] * n), n, 1 / options), result
        if task in ("count", "subitize", "vdr_open", "vdr_binary"):
            assert not_above_chance(round(result["top_answer_rate"] * n), n, TASKS[task].chance), result
        if task in SPATIAL_TASKS:
            # Built as released, the items leak as the released ones do: the audit says so.
            assert result["construction"] == "released" and result["pixel_solver"] == 1.0, result
            assert result["gold_is_query"] == (1.0 if task == "leftright" else 0.0), result
    assert "| toyworld | leftright (released) | test |" in card
    for by_task in rows.values():  # Memory: every test round's gold letter is A as often as B
        for round_index in range(1, 15):
            answers = [row["answer"][round_index] for row in by_task["memory"]]
            assert binomtest(answers.count("A"), len(answers), 0.5).pvalue > 0.01


def test_hardened_construction_defeats_the_pixel_shortcuts(hardened):
    report, rows_by_split = hardened
    assert {result["task"] for result in report.audit} == set(SPATIAL_TASKS)
    for result in report.audit:
        n = result["items"]
        assert result["construction"] == "hardened" and result["gold_is_query"] == 0.0
        assert not_above_chance(round(result["pixel_solver"] * n), n, 1 / 3), result


# --- determinism, de-duplication, reporting --------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_items(world, tmp_path):
    settings = {"tasks": ("count", "localize", "memory"), "items_per_split": {"train": 10, "test": 10}}
    first = generate_devcv(world, tmp_path / "a", config(**settings), audit=False)
    again = generate_devcv(world, tmp_path / "b", config(**settings), audit=False)
    other = generate_devcv(world, tmp_path / "c", config(seed=1, **settings), audit=False)
    assert first.fingerprint == again.fingerprint and first.fingerprint != other.fingerprint
    assert (tmp_path / "a" / "README.md").read_bytes() == (tmp_path / "b" / "README.md").read_bytes()
    assert set(first.recordings["test"]) != set(other.recordings["test"])


def test_content_hash_drops_duplicates(generated, rows, world):
    for by_task in rows.values():
        for task_rows in by_task.values():
            digests = [provenance(row)["content_sha256"] for row in task_rows]
            assert len(set(digests)) == len(digests)
    corpus, frames = open_corpus(world / "annotations", world, config())
    ctx = TaskContext(TASKS["picture_vocabulary"], "train", corpus, frames, config())
    generator = PictureVocabularyGenerator(ctx)
    candidate = generator.candidates()[0]
    ctx.rng.seed(0)
    generator.build(candidate)
    ctx.rng.seed(0)  # the same random choices build the same item again
    with pytest.raises(Skip) as skipped:
        generator.build(candidate)
    assert skipped.value.reason == DUPLICATE_CONTENT


def test_unreadable_video_is_skipped_and_reported(world, tmp_path):
    broken = tmp_path / "world"
    shutil.copytree(world, broken)
    info = next(iter(load_annotations(broken / "annotations").recordings.values()))
    (broken / info.video).write_bytes(b"not a video")
    report = generate_devcv(broken, tmp_path / "out", config(tasks=("count",)), audit=False)
    assert info.recording in report.video_errors
    assert sum(summary.skipped["unreadable_video"] for summary in report.tasks) > 0
    for split in SPLITS:
        for row in load_dataset(str(tmp_path / "out"), "count", split=split):
            assert provenance(row)["recording"] != info.recording


def test_nothing_generated_leaves_no_folder(world, tmp_path):
    # One test recording of six episodes shows at most 12 different-looking objects; Memory needs 15.
    settings = config(tasks=("memory",), train_tasks=(), split_fractions={"train": 0.9, "test": 0.1})
    with pytest.raises(GenerationError) as failure:
        generate_devcv(world, tmp_path / "out", settings, audit=False)
    assert failure.value.report.tasks[0].skipped["too_few_distinct_objects"] > 0
    assert list(tmp_path.iterdir()) == []


# --- vocabulary options -----------------------------------------------------------------------------------------


def test_cdi_filter_and_recorded_distractor_method(world, tmp_path):
    embeddings = {
        "ball": [1, 0, 0, 0],
        "car": [0, 1, 0, 0],
        "star": [0, 0, 1, 0],
        "cup": [0.5, 0, 0, 0.87],
        "block": [0, 0.5, 0.87, 0],
    }
    policy = DistractorPolicy(embeddings={word: np.array(vector, dtype=float) for word, vector in embeddings.items()})
    cdi = frozenset({"ball", "car", "star", "cup"})  # no "block"
    settings = config(tasks=("picture_vocabulary",), items_per_split={"train": 20}, cdi_words=cdi, distractors=policy)
    report = generate_devcv(world, tmp_path / "pv", settings, audit=False)
    assert report.tasks[0].skipped["word_not_in_cdi_list"] > 0 and report.tasks[0].written == 20
    for row in load_dataset(str(tmp_path / "pv"), "picture_vocabulary", split="train"):
        origin = provenance(row)
        assert "block" not in [origin["word"], *(d["word"] for d in origin["distractors"])]
        assert origin["distractor_method"] == "semantic"
        scores = [d["score"] for d in origin["distractors"]]
        assert scores == sorted(scores, reverse=True)  # closest foils first


def test_distractors_are_close_but_never_synonyms_or_homophones():
    vectors = {"ball": [1.0, 0.0], "sphere": [0.99, 0.1], "block": [0.7, 0.7], "car": [0.5, 0.87], "star": [0.0, 1.0]}
    semantic = DistractorPolicy(embeddings={word: np.array(vector) for word, vector in vectors.items()})
    choice = semantic.choose("ball", ["sphere", "block", "car", "star"], 2, random.Random(0))
    assert choice.words == ("block", "car") and choice.method == "semantic"  # "sphere" is a near-synonym
    lexicon = {"ball": ("B", "AO", "L"), "bell": ("B", "EH", "L"), "car": ("K", "AA", "R"), "cup": ("K", "AH", "P")}
    choice = DistractorPolicy(lexicon=lexicon).choose("ball", ["bell", "car", "cup"], 2, random.Random(0))
    assert set(choice.words) == {"car", "cup"} and choice.method == "phonological"  # "bell" sounds too alike
    assert DistractorPolicy().choose("ball", ["car", "cup", "star"], 3, random.Random(0)).method == "random"


# --- the rest of the package takes the items ---------------------------------------------------------------------


def test_items_score_perfectly_with_their_gold_answers(rows):
    from babyvlm.evaluate_metrics.runner import score_entry

    for task, task_rows in rows["test"].items():
        for row in task_rows[:5]:
            gold = (
                [[0.1, 0.9], [0.9, 0.1]]
                if task == "looking_while_listening"
                else (row["answer"] if task == "memory" else row["answer"][0])
            )
            scores = score_entry(TASKS[task], row, gold)["scores"]
            assert scores[TASKS[task].primary_metric] == 1.0, (task, scores)


@pytest.mark.slow
def test_items_train_a_tiny_model(rows, tiny_model_and_processor):
    from babyvlm.training.collator import IGNORE_INDEX, VisionChatCollator

    model, processor = tiny_model_and_processor
    examples = [
        {"messages": row["messages"], "images": row["images"]}
        for task, task_rows in rows["train"].items()
        for row in task_rows[:1]
    ]
    lwl = rows["test"]["looking_while_listening"][0]
    examples.append(
        {
            "messages": [
                {"role": "user", "content": [{"type": "image", "text": None}]},
                {"role": "assistant", "content": [{"type": "text", "text": lwl["choices"][0]}]},
            ],
            "images": lwl["images"][:1],
        }
    )
    batch = VisionChatCollator(processor)(examples)
    assert (batch["labels"] != IGNORE_INDEX).sum(dim=1).min() > 0
    with torch.no_grad():
        loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_cli_generates_and_rejects_bad_input(world, tmp_path, capsys):
    output = tmp_path / "cli"
    assert (
        generate_main(
            [
                "--annotations",
                str(world / "annotations"),
                "--output",
                str(output),
                "--tasks",
                "count",
                "vdr-open",
                "--items-per-task",
                "5",
                "--split-fractions",
                "train=0.5,test=0.5",
                "--train-tasks",
                "--no-audit",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "count" in printed and "vdr_open" in printed
    assert set(get_dataset_config_names(str(output))) == {"all", "count", "vdr_open"}
    assert load_dataset(str(output), "count", split="test").num_rows == 5
    assert generate_main(["--annotations", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x")]) == 1
    assert "no annotations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        generate_main(["--annotations", str(world), "--output", str(tmp_path / "x"), "--split-fractions", "dev=1"])


@pytest.mark.slow
def test_the_runner_evaluates_a_generated_folder(world, tiny_model_dir, tmp_path):
    from babyvlm.evaluate_metrics.runner import evaluate_devcv

    # Memory dialogues take the runner seconds even on a tiny model; its items are scored above.
    tasks = ("count", "vdr_binary", "looking_while_listening")
    report = generate_devcv(world, tmp_path / "devcv", config(tasks=tasks, items_per_split={"test": 3}), audit=False)
    summary = evaluate_devcv(
        tiny_model_dir, tmp_path / "devcv", tmp_path / "eval", split="test", max_new_tokens=2, progress=False
    )
    assert {task["task"]: task["n"] for task in summary["tasks"].values()} == dict.fromkeys(tasks, 3)
    assert (tmp_path / "eval" / "results.json").is_file() and report.written == 9


@pytest.mark.slow
def test_generated_folder_round_trips_through_the_released_layout(generated, tmp_path):
    from babyvlm.dataset_builders.devcv.builder import build_devcv
    from babyvlm.dataset_builders.devcv.export import export_release

    export_release(generated[0], tmp_path / "release")
    rebuilt = build_devcv(
        [tmp_path / "release" / "toyworld"], tmp_path / "rebuilt", strict=True, audit=False, progress=False
    )
    assert rebuilt.counts() == generated[1].counts()


def test_card_is_a_hub_dataset_card(generated):
    card = assert_hub_dataset_card(generated[0] / "README.md")
    assert card.data.license == "apache-2.0"  # the toy world's own renders
