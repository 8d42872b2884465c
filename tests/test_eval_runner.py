"""The DevCV evaluation runner: batch-size invariance, resuming, outputs, scoring plumbing and errors."""

import hashlib
import json
import shutil

import pytest
from babyvlm.evaluate_metrics.data import MissingTaskError, available_tasks, load_task_split, resolve_tasks
from babyvlm.evaluate_metrics.devcv.parsing import DIRECTIONS
from babyvlm.evaluate_metrics.devcv.tasks import canonical_task
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.predictions import PREDICTIONS_FILE, PredictionLog, RunMismatchError
from babyvlm.evaluate_metrics.protocol import LWL_TARGET_DELIMITER, memory_option_keys, system_prompt
from babyvlm.evaluate_metrics.runner import evaluate_devcv, main, score_entry

from babyvlm.chat import count_image_blocks
from babyvlm.testing.devcv import save_tiny_llava, synthetic_items, write_devcv_folder

ITEMS = {"picture_vocabulary": 8, "count": 6, "vdr_open": 4, "memory": 2, "looking_while_listening": 4}
RUN = {"max_new_tokens": 3, "max_new_tokens_per_round": 3, "progress": False}


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def rows():
    return {task: synthetic_items(task, count) for task, count in ITEMS.items()}


@pytest.fixture(scope="module")
def devcv_dir(tmp_path_factory, rows):
    return write_devcv_folder(tmp_path_factory.mktemp("devcv"), rows)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, llava_dir, devcv_dir):
    """The whole folder evaluated once with batch size 8."""
    output = tmp_path_factory.mktemp("run-bs8")
    evaluate_devcv(llava_dir, devcv_dir, output, batch_size=8, **RUN)
    return output


def predictions(output_dir) -> dict:
    """Each item's output; Looking-While-Listening losses to 4 decimals (their last float bits depend on the
    batch shape)."""
    lines = (output_dir / PREDICTIONS_FILE).read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == len({(e["task"], e["id"]) for e in entries}), "an item was logged twice"
    return {
        (e["task"], e["id"]): [[round(loss, 4) for loss in row] for row in e["output"]]
        if e["task"] == "looking_while_listening"
        else e["output"]
        for e in entries
    }


def assert_same_predictions(actual: dict, expected: dict) -> None:
    """Equal answers; LWL losses equal to float rounding (their last bits depend on the padded batch shape)."""
    assert actual.keys() == expected.keys()
    for key, output in expected.items():
        if key[0] == "looking_while_listening":
            assert actual[key] == [pytest.approx(row, rel=1e-5) for row in output], key
        else:
            assert actual[key] == output, key


def results(output_dir) -> dict:
    return json.loads((output_dir / "results.json").read_text())


@pytest.mark.slow
def test_batch_size_one_gives_identical_results(tmp_path, llava_dir, devcv_dir, reference_run):
    evaluate_devcv(llava_dir, devcv_dir, tmp_path, batch_size=1, **RUN)
    reference = predictions(reference_run)
    assert len(reference) == sum(ITEMS.values())
    assert_same_predictions(predictions(tmp_path), reference)
    assert results(tmp_path) == results(reference_run)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, llava_dir, devcv_dir, reference_run):
    generate, calls = ChatModel.generate, []

    def crash_on_fourth_batch(self, conversations, max_new_tokens=None, stop_strings=()):
        calls.append(len(conversations))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return generate(self, conversations, max_new_tokens, stop_strings)

    monkeypatch.setattr(ChatModel, "generate", crash_on_fourth_batch)
    with pytest.raises(KeyboardInterrupt):
        evaluate_devcv(llava_dir, devcv_dir, tmp_path, batch_size=3, **RUN)
    logged = (tmp_path / PREDICTIONS_FILE).read_text()
    assert 0 < len(logged.splitlines()) < sum(ITEMS.values())
    assert not (tmp_path / "results.json").exists()
    # A run killed while writing leaves a torn last line behind.
    (tmp_path / PREDICTIONS_FILE).write_text(logged + '{"task": "count", "id": "cou')

    monkeypatch.setattr(ChatModel, "generate", generate)
    evaluate_devcv(llava_dir, devcv_dir, tmp_path, batch_size=3, **RUN)
    assert (tmp_path / PREDICTIONS_FILE).read_text().startswith(logged)
    assert_same_predictions(predictions(tmp_path), predictions(reference_run))
    assert results(tmp_path) == results(reference_run)


@pytest.mark.slow
def test_resuming_refuses_a_differently_configured_run(reference_run):
    config = json.loads((reference_run / "run.json").read_text())
    with pytest.raises(RunMismatchError, match="max_new_tokens"):
        PredictionLog(reference_run, {**config, "max_new_tokens": 99})


@pytest.mark.slow
def test_outputs(reference_run):
    harness_keys = {"baby_pv", "baby_count", "baby_vdr_open", "baby_memory", "baby_winoground"}
    scores = results(reference_run)["results"]
    assert set(scores) == harness_keys
    assert set(scores["baby_memory"]) == {"acc_learning", "acc_testing_raw", "acc_testing_adjusted"}
    assert all(0.0 <= value <= 1.0 for task in scores.values() for value in task.values())

    summary = json.loads((reference_run / "summary.json").read_text())
    assert summary["tasks"]["baby_count"]["n"] == ITEMS["count"]
    primary = sum(task["metrics"][task["primary_metric"]] for task in summary["tasks"].values())
    assert summary["overall"] == pytest.approx(primary / 11)

    for task in summary["tasks"].values():
        assert task["ci_low"] <= task["score"] == task["metrics"][task["primary_metric"]] <= task["ci_high"]
        assert 0 < task["p_value"] <= 1 and task["chance"] > 0
    assert summary["tasks"]["baby_memory"]["objects"] == ITEMS["memory"] * 5  # 15-round dialogues
    # 5 of the 11 leaderboard tasks: the official overall is not comparable, the mean over those evaluated is kept.
    assert not summary["overall_statistics"]["comparable"] and len(summary["overall_statistics"]["missing"]) == 6
    assert summary["overall_evaluated"]["score"] == pytest.approx(primary / 5)
    scope = summary["scope"]
    assert (scope["partial"], scope["limit"], scope["items_evaluated"]) == (False, None, sum(ITEMS.values()))
    assert set(scope["tasks_skipped"]) == set(summary["overall_statistics"]["missing"])
    run = json.loads((reference_run / "run.json").read_text())
    assert run["scope"] == scope and run["dtype"] == "float32"

    table = (reference_run / "results.md").read_text()
    assert table.startswith("| task | metric | score | 95% CI | p vs chance | chance | n |")
    assert "not comparable with complete runs: 6 of 11 tasks missing" in table
    assert "Mean over the 5 evaluated tasks" in table and "partial" not in table
    assert "| Memory | **acc_testing_adjusted** |" in table and "Overall" in table
    for plot in ("scores_vs_chance.png", "count_accuracy_by_true_count.png"):
        assert (reference_run / plot).read_bytes().startswith(b"\x89PNG")


def _fingerprint(images) -> str:
    return hashlib.sha1(b"".join(image.tobytes() for image in images)).hexdigest()


class OracleChat(ChatModel):
    """Answers every question right, chattily, from the gold answers keyed by the asked-about images."""

    def __init__(self, model, processor, rows):
        # Without the dialogue cache, Memory rounds go through `generate` too.
        super().__init__(model, processor, reuse_dialogue_cache=False)
        self.gold, self.lwl_phrases = {}, {}
        for row in [row for task_rows in rows.values() for row in task_rows]:
            images, answers = list(row["images"]), iter(row["answer"])
            for message in row["messages"]:
                count = count_image_blocks([message]) if message["role"] == "user" else 0
                if count:
                    self.gold[_fingerprint(images[:count])] = next(answers)
                    images = images[count:]
            for image, phrase in zip(row["images"], row["choices"]):
                self.lwl_phrases[_fingerprint([image])] = phrase

    def generate(self, conversations, max_new_tokens=None, stop_strings=()):
        answers = []
        for conversation in conversations:
            asked = count_image_blocks(conversation.messages[-1:])
            gold = self.gold[_fingerprint(conversation.images[-asked:])]
            # Letters and numbers are parsed out of a sentence; VDR answers count only whole.
            answers.append(gold.title() if gold in DIRECTIONS else f"I think ({gold})")
        return answers

    def score_continuations(self, conversations, continuations):
        return [
            (0.0 if LWL_TARGET_DELIMITER + self.lwl_phrases[_fingerprint(c.images)] == phrase else 1.0, True)
            for c, phrase in zip(conversations, continuations)
        ]


def test_a_perfect_model_scores_one_everywhere(tmp_path, llava_dir, devcv_dir, rows):
    chat = ChatModel.from_pretrained(llava_dir)
    summary = evaluate_devcv(OracleChat(chat.model, chat.processor, rows), devcv_dir, tmp_path, progress=False)
    for task in summary["tasks"].values():
        assert task["unparsable"] == 0
        assert all(value == 1.0 for value in task["metrics"].values()), task


@pytest.mark.slow
def test_memory_dialogue_feeds_back_the_models_own_answers(tmp_path, llava_dir, devcv_dir):
    seen = []
    loaded = ChatModel.from_pretrained(llava_dir)
    # Rounds go through `generate`, where the histories can be seen (the cached path answers the same:
    # test_eval_inference.py).
    chat = ChatModel(loaded.model, loaded.processor, max_new_tokens=2, reuse_dialogue_cache=False)
    generate = chat.generate

    def record(conversations, max_new_tokens=None, stop_strings=()):
        seen.append([list(c.messages) for c in conversations])
        return generate(conversations, max_new_tokens, stop_strings)

    chat.generate = record
    evaluate_devcv(chat, devcv_dir, tmp_path, tasks=["memory"], progress=False)
    entries = [json.loads(line) for line in (tmp_path / PREDICTIONS_FILE).read_text().splitlines()]
    last_round = seen[-1]
    for entry, messages in zip(entries, last_round):
        assistant = [m["content"][0]["text"] for m in messages if m["role"] == "assistant"]
        assert assistant == entry["output"][:-1]  # the model's answers, not the gold ones
        assert len([m for m in messages if m["role"] == "user"]) == 15
    assert len(seen) == 15  # one batched generation per round


def test_system_prompts_only_when_asked(tmp_path, llava_dir, devcv_dir):
    chat = ChatModel.from_pretrained(llava_dir, max_new_tokens=1)
    generate, first_messages = chat.generate, []

    def record(conversations, max_new_tokens=None, stop_strings=()):
        first_messages.extend(conversation.messages[0] for conversation in conversations)
        return generate(conversations, max_new_tokens, stop_strings)

    chat.generate = record
    for use_system_prompt in (False, True):
        first_messages.clear()
        output = tmp_path / f"system-{use_system_prompt}"
        evaluate_devcv(chat, devcv_dir, output, tasks=["count"], use_system_prompt=use_system_prompt, progress=False)
        roles = {message["role"] for message in first_messages}
        assert roles == ({"system"} if use_system_prompt else {"user"})
    assert first_messages[0]["content"] == [{"type": "text", "text": system_prompt("count")}]


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("--tasks", "colour", "unknown DevCV task 'colour'"),
        ("--tasks", "localize", "has no task 'localize'"),
        ("--split", "validation", "has no split 'validation'"),
    ],
)
def test_cli_reports_bad_tasks_and_splits(tmp_path, capsys, llava_dir, devcv_dir, argument, value, message):
    argv = ["--model", str(llava_dir), "--data", str(devcv_dir), "--output", str(tmp_path), argument, value]
    assert main([*argv, "--no-progress"]) == 1
    assert message in capsys.readouterr().err


def test_cli_reports_an_incompatible_model(tmp_path, capsys, devcv_dir):
    assert main(["--model", str(devcv_dir), "--data", str(devcv_dir), "--output", str(tmp_path), "--no-progress"]) == 1
    assert "cannot load an image-text-to-text model" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_on_babyllava_v2_is_batch_size_invariant(tmp_path, capsys, tiny_model_dir, devcv_dir):
    outputs = {}
    for batch_size in (1, 4):
        output = tmp_path / f"bs{batch_size}"
        main(
            [
                "--model",
                str(tiny_model_dir),
                "--data",
                str(devcv_dir),
                "--output",
                str(output),
                "--tasks",
                "baby_pv,looking_while_listening",
                "--batch-size",
                str(batch_size),
                "--max-new-tokens",
                "3",
                "--no-progress",
            ]
        )
        outputs[batch_size] = predictions(output)
    assert outputs[1] == outputs[4]
    assert "| Picture Vocabulary | **acc** |" in capsys.readouterr().out


@pytest.mark.slow
def test_released_samples(tmp_path, devcv_samples, tiny_model_dir):
    from babyvlm.dataset_builders.devcv.builder import build_devcv

    data = tmp_path / "ego4d"
    build_devcv([devcv_samples / "ego4d"], data, progress=False, audit=False)
    assert set(available_tasks(data)) >= {"picture_vocabulary", "memory", "count"}
    # The released Ego4D Memory items carry no labels: learned objects are recognised by their crops.
    for row in load_task_split(data, "memory", "test"):
        keys = memory_option_keys(row)
        golds = row["answer"]
        tested = [keys[r][1 - "AB".index(golds[r])] for r in range(5, 15)]
        assert sorted(tested.count(key) for key in set(tested)) == [2] * 5
    summary = evaluate_devcv(tiny_model_dir, data, tmp_path / "out", tasks=["count", "vdr_binary"], limit=2, **RUN)
    assert summary["tasks"]["baby_count"]["n"] == 2
    # Released Ego4D VDR ids name their video; the other tasks' ids name nothing: each item is its own unit.
    assert summary["tasks"]["baby_vdr_binary"]["cluster_unit"] == "video"
    assert summary["tasks"]["baby_count"]["cluster_unit"] == "item"
    assert summary["scope"]["partial"] and summary["scope"]["items_skipped"] == {
        "baby_count": "--limit 2",
        "baby_vdr_binary": "--limit 2",
    }
    assert (tmp_path / "out" / "results.md").read_text().startswith("**partial: 4 of 6 items (--limit 2)**")


def test_missing_task_error_lists_available_tasks(devcv_dir):
    with pytest.raises(MissingTaskError, match="it has: picture_vocabulary, count"):
        resolve_tasks(devcv_dir, ["compare_real"])
    empty = devcv_dir.parent / "not-devcv"
    empty.mkdir(exist_ok=True)
    with pytest.raises(FileNotFoundError, match="not a DevCV dataset folder"):
        resolve_tasks(empty, None)
    shutil.rmtree(empty)


def test_folders_with_the_same_readme_load_their_own_rows(tmp_path):
    # 🤗 datasets caches a local folder by its README alone; the runner must not see stale rows.
    for name, count in (("first", 2), ("second", 3)):
        folder = write_devcv_folder(tmp_path / name / "devcv", {"count": synthetic_items("count", count, seed=count)})
        assert len(load_task_split(folder, "count", "test")) == count


def test_whether_an_item_is_a_dialogue_comes_from_its_task():
    """Not from how many gold answers it has: a Memory item of one round is a dialogue too, refused by Memory's
    rule (no testing rounds), and a single-turn item with two gold answers is refused, naming it."""
    memory = synthetic_items("memory", 1)[0]

    def first_rounds(rounds: int) -> dict:
        short = {**memory, "messages": memory["messages"][: 2 * rounds], "images": memory["images"][: 2 * rounds - 1]}
        return short | {"answer": memory["answer"][:rounds], "labels": memory["labels"][:rounds]}

    entry = score_entry(canonical_task("memory"), first_rounds(3), memory["answer"][:3])
    assert entry["scores"]["acc_learning"] == entry["scores"]["acc_testing_raw"] == 1.0
    with pytest.raises(ValueError, match="memory item 'memory_0000': .*1 rounds leave no testing rounds"):
        score_entry(canonical_task("memory"), first_rounds(1), memory["answer"][:1])
    count = {**synthetic_items("count", 1)[0], "answer": ["3", "4"]}
    with pytest.raises(ValueError, match=r"count item 'count_0000' has 2 gold answers; its items have one"):
        score_entry(canonical_task("count"), count, "3")


def test_a_vision_control_is_its_own_run_and_never_a_leaderboard_result(tmp_path, llava_dir, devcv_dir, reference_run):
    from babyvlm.evaluate_metrics.compare import compare_runs

    output = tmp_path / "control"
    summary = evaluate_devcv(llava_dir, devcv_dir, output, tasks=["pv", "count"], control="blank-images", **RUN)
    assert summary["control"] == {"kind": "blank-images", "seed": 0}
    assert json.loads((output / "run.json").read_text())["control"] == summary["control"]
    assert not (output / "results.json").exists() and not (output / "devcv_results.json").exists()
    assert (output / "results.md").read_text().startswith("**vision control (blank-images)**")
    # The control is paired with the model's real run on the same items: the image-dependence table.
    compare_runs([str(output), str(reference_run)], tmp_path / "compare", n_resamples=200)
    text = (tmp_path / "compare" / "comparison.md").read_text()
    title = f"### image dependence: {llava_dir.name} vs {llava_dir.name} [control: blank-images]"
    assert title in text
    section = text.split(title)[1]
    assert "| Picture Vocabulary | 8 |" in section and "Warning" not in section
