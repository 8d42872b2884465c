"""The evaluation runner on every open-model family: its own processor, chat template and positions."""

import json

import pytest
import torch
from babyvlm.evaluate_metrics.answering import Conversation
from babyvlm.evaluate_metrics.devcv.tasks import TASKS, canonical_task
from babyvlm.evaluate_metrics.families import FamilyAdapter
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.predictions import PREDICTIONS_FILE
from babyvlm.evaluate_metrics.protocol import (
    lwl_requests,
    run_items,
    run_record_dialogues,
    single_turn_conversation,
    user_rounds,
)
from babyvlm.evaluate_metrics.runner import evaluate_devcv, item_tokens, main, token_budget_batches

from babyvlm.testing import TINY_FAMILIES, save_tiny_model
from babyvlm.testing.devcv import synthetic_items, write_devcv_folder

RUN = {"max_new_tokens": 3, "progress": False}
DIALOGUE_FAMILIES = ["qwen2_vl", "llava_onevision", "gemma3", "idefics3"]
LWL = canonical_task("looking_while_listening")


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    return {family: save_tiny_model(family, tmp_path_factory.mktemp(family)) for family in TINY_FAMILIES}


@pytest.fixture(scope="module")
def devcv_dir(tmp_path_factory):
    rows = {
        "count": synthetic_items("count", 4),
        "picture_vocabulary": synthetic_items("picture_vocabulary", 3),
    }
    return write_devcv_folder(tmp_path_factory.mktemp("devcv"), rows)


def predictions(output_dir) -> dict:
    entries = [json.loads(line) for line in (output_dir / PREDICTIONS_FILE).read_text().splitlines()]
    return {(entry["task"], entry["id"]): entry["output"] for entry in entries}


def own_forward_loss(chat: ChatModel, conversation: Conversation, continuation: str) -> float:
    """The continuation's mean token loss from the model's own forward over the unpadded text (its own positions)."""
    prompt = chat.prompt(conversation.messages)
    full = chat.answered_text(prompt, conversation.messages, continuation)
    prompt_length = chat.encode([prompt], [conversation])["input_ids"].shape[1]
    inputs = chat.encode([full], [conversation])
    with torch.inference_mode():
        logits = chat.model(**inputs).logits[0].float()
    targets = inputs["input_ids"][0, prompt_length:]
    log_probs = torch.log_softmax(logits[prompt_length - 1 : -1], dim=-1)
    return -log_probs.gather(-1, targets[:, None]).mean().item()


def scoring_requests():
    """LWL requests plus a four-image prompt, so the batch is padded and holds different image counts."""
    item = synthetic_items("looking_while_listening", 1)[0]
    conversations, continuations = lwl_requests(item)
    conversations.append(single_turn_conversation(synthetic_items("picture_vocabulary", 1)[0], []))
    continuations.append("B")
    return conversations, continuations


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_continuation_losses_equal_the_models_own_forward(family_dirs, family):
    chat = ChatModel.from_pretrained(family_dirs[family])
    conversations, continuations = scoring_requests()
    batched = [loss for loss, _ in chat.score_continuations(conversations, continuations)]
    own = [own_forward_loss(chat, c, text) for c, text in zip(conversations, continuations)]
    assert batched == pytest.approx(own, rel=1e-4)


def test_one_dimensional_positions_would_change_qwen_vl_losses(family_dirs):
    """The check above can fail: Qwen2-VL given 1-D position ids (what LWL did before) scores differently."""
    chat = ChatModel.from_pretrained(family_dirs["qwen2_vl"])
    conversations, continuations = scoring_requests()
    own = [loss for loss, _ in chat.score_continuations(conversations, continuations)]
    generic = FamilyAdapter("generic")
    chat.family = generic
    overridden = [loss for loss, _ in chat.score_continuations(conversations, continuations)]
    assert overridden != pytest.approx(own, rel=1e-4)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_a_streamed_answer_ends_as_the_generated_one(family_dirs, family):
    chat = ChatModel.from_pretrained(family_dirs[family], max_new_tokens=4)
    conversation = single_turn_conversation(synthetic_items("picture_vocabulary", 1)[0], [])
    streamed = list(chat.stream(conversation))
    assert streamed and streamed[-1] == chat.generate([conversation])[0]


@pytest.mark.slow
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_two_tasks_batched_and_one_at_a_time_give_the_same_answers(tmp_path, family_dirs, devcv_dir, family):
    outputs = {}
    for name, batching in {"one": {"batch_size": 1}, "batched": {"batch_size": 4, "max_batch_tokens": 400}}.items():
        evaluate_devcv(
            family_dirs[family], devcv_dir, tmp_path / name, tasks=["count", "picture_vocabulary"], **batching, **RUN
        )
        outputs[name] = predictions(tmp_path / name)
    assert outputs["batched"] == outputs["one"]
    assert len(outputs["one"]) == 7 and all(isinstance(answer, str) for answer in outputs["one"].values())


def first_rounds(record: dict, rounds: int) -> dict:
    """A Memory record cut to its first ``rounds`` rounds (a shorter dialogue, to batch with longer ones)."""
    images = sum(len(turn.images) for turn in user_rounds(record)[:rounds])
    return {**record, "messages": record["messages"][: 2 * rounds], "images": record["images"][:images]}


@pytest.mark.slow
@pytest.mark.parametrize("family", DIALOGUE_FAMILIES)
def test_memory_dialogues_and_lwl_batched_and_one_at_a_time_agree(family_dirs, family):
    chat = ChatModel.from_pretrained(family_dirs[family], max_new_tokens=3)
    memory = [first_rounds(record, rounds) for record, rounds in zip(synthetic_items("memory", 2), (6, 4))]
    lwl = synthetic_items("looking_while_listening", 2)
    batched = run_record_dialogues(chat, memory, []), run_items(chat, LWL, lwl)
    one_by_one = (
        [run_record_dialogues(chat, [record], [])[0] for record in memory],
        [run_items(chat, LWL, [record])[0] for record in lwl],
    )
    assert batched[0] == one_by_one[0]
    assert [len(answers) for answers in batched[0]] == [6, 4]
    for matrix, expected in zip(*(outputs[1] for outputs in (batched, one_by_one))):
        assert matrix == [pytest.approx(row, rel=1e-4) for row in expected]


def test_token_budget_batches():
    assert token_budget_batches([10, 10, 10, 30, 30, 90], 8, None) == [slice(0, 6)]
    assert token_budget_batches([10, 10, 10, 30, 30, 90], 2, None) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    # rows x longest row stays within 60 tokens; an item over the budget goes alone
    assert token_budget_batches([10, 10, 10, 30, 30, 90], 8, 60) == [slice(0, 3), slice(3, 5), slice(5, 6)]


def test_item_token_estimates_cover_the_encoded_prompts(family_dirs):
    chat = ChatModel.from_pretrained(family_dirs["qwen2_vl"], max_new_tokens=4)
    pv, memory = synthetic_items("picture_vocabulary", 1)[0], synthetic_items("memory", 1)[0]
    # A whole Memory dialogue (15 rounds, 29 images, one-token answers) is a Memory item's longest prompt.
    for conversation, answers in (
        (single_turn_conversation(pv, []), 1),
        (Conversation(memory["messages"], memory["images"]), 15),
    ):
        encoded = chat.encode([chat.prompt(conversation.messages)], [conversation])["input_ids"].shape[1]
        task, record = (TASKS["picture_vocabulary"], pv) if answers == 1 else (TASKS["memory"], memory)
        # at most the room for each answer and its turn's template tokens more
        assert encoded <= item_tokens(chat, task, record) <= encoded + answers * (chat.max_new_tokens + 8)


def test_limit_takes_each_tasks_first_items(tmp_path, family_dirs, devcv_dir):
    summary = evaluate_devcv(
        family_dirs["internvl"], devcv_dir, tmp_path, tasks=["count", "picture_vocabulary"], limit=2, **RUN
    )
    assert {key: task["n"] for key, task in summary["tasks"].items()} == {"baby_count": 2, "baby_pv": 2}
    assert {item_id for _, item_id in predictions(tmp_path)} == {
        "count_0000",
        "count_0001",
        "picture_vocabulary_0000",
        "picture_vocabulary_0001",
    }


def cli_error(capsys, *arguments) -> str:
    assert main([*arguments, "--no-progress"]) == 1
    return capsys.readouterr().err


def test_cli_names_a_missing_data_or_model_folder(tmp_path, capsys, family_dirs, devcv_dir):
    missing = tmp_path / "nowhere"
    error = cli_error(capsys, "--model", str(family_dirs["llava"]), "--data", str(missing), "--output", str(tmp_path))
    assert f"data folder {missing} does not exist" in error
    error = cli_error(capsys, "--model", str(missing), "--data", str(devcv_dir), "--output", str(tmp_path / "o"))
    assert f"model folder {missing} does not exist" in error and "Repo id" not in error


def test_cli_refuses_a_folder_whose_tasks_are_all_unknown(tmp_path, capsys, family_dirs):
    data = write_devcv_folder(tmp_path / "data", {"colour_naming": synthetic_items("count", 2)})
    error = cli_error(capsys, "--model", str(family_dirs["llava"]), "--data", str(data), "--output", str(tmp_path))
    assert "holds no DevCV task (unknown configs: colour_naming)" in error


def test_cli_passes_dtype_attention_and_device_map_through(tmp_path, monkeypatch, family_dirs, devcv_dir):
    loaded = {}
    from_pretrained = ChatModel.from_pretrained

    def record(model_dir, **kwargs):
        chat = from_pretrained(model_dir, **kwargs)
        loaded.update(dtype=chat.model.dtype, attention=chat.model.config._attn_implementation, kwargs=kwargs)
        return chat

    monkeypatch.setattr(ChatModel, "from_pretrained", record)
    arguments = ["--model", str(family_dirs["gemma3"]), "--data", str(devcv_dir), "--output", str(tmp_path)]
    arguments += ["--tasks", "count", "--limit", "1", "--max-new-tokens", "2", "--no-progress"]
    main([*arguments, "--dtype", "bf16", "--attn-implementation", "eager", "--device-map", "cpu"])
    assert loaded["dtype"] == torch.bfloat16 and loaded["attention"] == "eager"
    assert loaded["kwargs"]["device_map"] == "cpu"
    assert json.loads((tmp_path / "run.json").read_text())["dtype"] == "bfloat16"
