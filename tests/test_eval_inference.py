"""Dialogue rounds that reuse the earlier rounds' keys and values answer as re-encoding the history does."""

import pytest
from babyvlm.evaluate_metrics.answering import Conversation
from babyvlm.evaluate_metrics.inference import ChatModel
from babyvlm.evaluate_metrics.protocol import run_record_dialogues, user_rounds

from babyvlm.testing import save_tiny_model
from babyvlm.testing.devcv import save_tiny_llava, synthetic_items

MAX_NEW_TOKENS = 4
# Families with multimodal rotary positions: a cached round needs every image's grid and the new images' features.
QWEN_VL = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


@pytest.fixture(scope="module", params=["llava", "babyllava_v2", "sliding_window", *QWEN_VL])
def model_kind(request, tmp_path_factory, tiny_model_dir):
    """(kind, plain chat, chat reusing the dialogue cache) for a model of each kind."""
    kind = request.param
    if kind == "babyllava_v2":
        directory = tiny_model_dir
    elif kind in QWEN_VL:
        directory = save_tiny_model(kind, tmp_path_factory.mktemp(kind))
    else:
        directory = save_tiny_llava(
            tmp_path_factory.mktemp(kind), sliding_window=4096 if kind == "sliding_window" else None
        )
    reusing = ChatModel.from_pretrained(directory, max_new_tokens=MAX_NEW_TOKENS)
    plain = ChatModel(reusing.model, reusing.processor, max_new_tokens=MAX_NEW_TOKENS, reuse_dialogue_cache=False)
    return kind, plain, reusing


def truncated(record: dict, rounds: int) -> dict:
    """The record's first ``rounds`` rounds (a shorter dialogue, to batch with full ones)."""
    images = sum(len(turn.images) for turn in user_rounds(record)[:rounds])
    return {
        **record,
        "messages": record["messages"][: 2 * rounds],
        "images": record["images"][:images],
        "answer": record["answer"][:rounds],
        "labels": record["labels"][:rounds],
    }


@pytest.fixture(scope="module")
def records():
    full = synthetic_items("memory", 3)
    return [full[0], truncated(full[1], 4), full[2]]


class VisionCounter:
    """Counts the images the vision tower encodes (one pixel tensor per image, or Qwen-VL's patches of each grid)."""

    def __init__(self, model):
        self.images = 0
        tower = getattr(model.model, "vision_tower", None) or model.model.visual
        self.handle = tower.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, _module, args, kwargs):
        self.images += len(kwargs["grid_thw"] if "grid_thw" in kwargs else args[0])


@pytest.mark.slow
def test_reusing_dialogues_answer_as_re_encoding_and_encode_each_image_once(model_kind, records):
    kind, plain, reusing = model_kind
    expected = run_record_dialogues(plain, records, [])
    counter = VisionCounter(reusing.model)
    try:
        batched = run_record_dialogues(reusing, records, [])
        images_encoded = counter.images
        one_by_one = [run_record_dialogues(reusing, [record], [])[0] for record in records]
    finally:
        counter.handle.remove()
    assert batched == expected
    assert one_by_one == expected
    assert [len(answers) for answers in expected] == [15, 4, 15]
    total_images = sum(len(record["images"]) for record in records)
    if kind == "sliding_window":
        # A windowed cache cannot hold padding gaps: every round re-encodes the whole dialogue.
        assert images_encoded > total_images
    else:
        assert images_encoded == total_images


def test_a_history_that_does_not_extend_the_last_prompt_is_encoded_again(model_kind, records):
    _, plain, reusing = model_kind
    first, second = (user_rounds(record) for record in records[:2])
    dialogues = reusing.start_dialogues()
    dialogues.generate([0, 1], [first[0], second[0]])
    # Dialogue 0 goes on; dialogue 1's history is replaced by another one.
    histories = [
        Conversation(
            first[0].messages + [{"role": "assistant", "content": [{"type": "text", "text": "B"}]}] + first[1].messages,
            first[0].images + first[1].images,
        ),
        second[1],
    ]
    assert dialogues.generate([0, 1], histories) == plain.generate(histories)


def test_a_round_without_new_images_continues_the_positions_of_its_own_dialogue(model_kind, records):
    """A text-only round after image rounds (and after another batch has run) answers as re-encoding does."""
    _, plain, reusing = model_kind
    first, second = (user_rounds(record) for record in records[:2])
    dialogues = reusing.start_dialogues()
    answers = dialogues.generate([0, 1], [first[0], second[0]])
    plain.generate([second[1]])  # another call in between (its batch shape and positions differ)
    histories = [
        Conversation(
            turn.messages
            + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
            + [{"role": "user", "content": [{"type": "text", "text": "Touch the new image."}]}],
            turn.images,
        )
        for turn, answer in zip((first[0], second[0]), answers)
    ]
    assert dialogues.generate([0, 1], histories) == plain.generate(histories)
    assert dialogues.enabled == (model_kind[0] != "sliding_window")


@pytest.mark.slow
def test_a_checkpoint_saved_without_cache_still_generates_with_it(tiny_model_dir, records):
    """Trainer checkpoints say `use_cache: false` (their training setting); evaluation keeps the KV cache anyway."""
    chat = ChatModel.from_pretrained(tiny_model_dir, max_new_tokens=MAX_NEW_TOKENS)
    chat.model.config.get_text_config().use_cache = False
    chat.model.generation_config.use_cache = False
    counter = VisionCounter(chat.model)
    try:
        run_record_dialogues(chat, records, [])
    finally:
        counter.handle.remove()
    assert counter.images == sum(len(record["images"]) for record in records)
