"""How each DevCV item is put to a model (REFERENCE §5, "Evaluation protocol and metrics").

- Single-turn tasks: the user turn(s) before the first gold answer, answered by greedy generation.
- Multi-round tasks (Memory): a real dialogue. Each round adds the next user turn and its images
  to the history, the model answers, and its *own* answer (not the gold one) stays in the history.
- Looking While Listening: no generation; the loss of phrase j as the assistant turn after a user
  turn holding only image i gives the 2×2 matrix the metric compares.

Records follow the DevCV schema (``babyvlm.dataset_builders.devcv.schema``) with decoded images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from babyvlm.dataset_builders.chat import count_image_blocks
from babyvlm.dataset_builders.devcv.tasks import DevCVTask

from .inference import ChatModel, Conversation

NextTurn = Callable[[int, int, list[str]], Conversation | None]

# For general-purpose models only (the original baselines got such prompts; BabyLLaVA-V2 gets none).
SYSTEM_PROMPTS = {
    "letter": "Answer with only the letter of the correct option.",
    "number": "Answer with only a number.",
    "direction": "Answer with only the direction word or words the question asks for.",
}


def system_messages(task: DevCVTask, use_system_prompt: bool) -> list[dict]:
    """The task's system message when asked for and the task has one, else none."""
    prompt = SYSTEM_PROMPTS.get(task.answer_type) if use_system_prompt else None
    return [{"role": "system", "content": [{"type": "text", "text": prompt}]}] if prompt else []


def is_dialogue(record: dict) -> bool:
    """Whether the item has several gold answers, i.e. is answered round by round."""
    return len(record["answer"]) > 1


def user_rounds(record: dict) -> list[Conversation]:
    """Each user turn with its own images (images are assigned to turns in block order)."""
    rounds, next_image = [], 0
    for message in record["messages"]:
        if message["role"] != "user":
            continue
        count = count_image_blocks([message])
        rounds.append(Conversation([message], list(record["images"][next_image : next_image + count])))
        next_image += count
    if next_image != len(record["images"]):
        raise ValueError(
            f"item {record['id']!r}: {next_image} image blocks in user turns but {len(record['images'])} images"
        )
    return rounds


def single_turn_conversation(record: dict, system: list[dict]) -> Conversation:
    """The item's prompt: its messages up to the first assistant turn, with their images."""
    if not record["messages"]:
        raise ValueError(f"item {record['id']!r} has no messages to prompt with")
    first_answer = next(
        (i for i, m in enumerate(record["messages"]) if m["role"] == "assistant"), len(record["messages"])
    )
    return Conversation(system + list(record["messages"][:first_answer]), list(record["images"]))


def lwl_requests(record: dict) -> tuple[list[Conversation], list[str]]:
    """The four (image i, phrase j) pairs of an LWL item in order 00, 01, 10, 11."""
    if len(record["images"]) != 2 or len(record["choices"]) != 2:
        raise ValueError(
            f"Looking-While-Listening item {record['id']!r} needs 2 images and 2 phrases, "
            f"got {len(record['images'])} and {len(record['choices'])}"
        )
    conversations, continuations = [], []
    for image in record["images"]:
        for phrase in record["choices"]:
            conversations.append(
                Conversation([{"role": "user", "content": [{"type": "image", "text": None}]}], [image])
            )
            continuations.append(phrase)
    return conversations, continuations


def memory_option_keys(record: dict) -> list[list[str]]:
    """Per round, a key naming the object behind each option: the released ``labels`` when present,
    else a fingerprint of the option's image (a learned object is re-shown as the same crop)."""
    rounds = user_rounds(record)
    if len(record["labels"]) == len(rounds):
        return [list(labels) for labels in record["labels"]]
    return [[hashlib.sha1(image.tobytes()).hexdigest() for image in turn.images] for turn in rounds]


def run_dialogues(chat: ChatModel, count: int, next_turn: NextTurn) -> list[list[str]]:
    """Play ``count`` dialogues side by side, one batched generation per round.

    ``next_turn(k, round_index, answers)`` gives dialogue ``k``'s next messages (a user turn, after
    any system message in round 0) with their images, given its answers so far, or ``None`` once
    the dialogue is over. Each answer goes back into the history. Earlier rounds' keys and values are
    reused where the model allows (:class:`~.inference.DialogueCache`).
    """
    histories = [Conversation([]) for _ in range(count)]
    answers: list[list[str]] = [[] for _ in range(count)]
    active, round_index = list(range(count)), 0
    dialogues = chat.start_dialogues()
    while active:
        turns = {k: next_turn(k, round_index, answers[k]) for k in active}
        active = [k for k in active if turns[k] is not None]
        for k in active:
            histories[k].messages.extend(turns[k].messages)
            histories[k].images.extend(turns[k].images)
        if active:
            for k, answer in zip(active, dialogues.generate(active, [histories[k] for k in active])):
                histories[k].messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
                answers[k].append(answer)
        round_index += 1
    return answers


def run_record_dialogues(chat: ChatModel, records: Sequence[dict], system: list[dict]) -> list[list[str]]:
    """The model's answers to every round of multi-round items."""
    rounds = [user_rounds(record) for record in records]

    def next_turn(k: int, round_index: int, _answers: list[str]) -> Conversation | None:
        if round_index >= len(rounds[k]):
            return None
        turn = rounds[k][round_index]
        return Conversation(system + turn.messages, turn.images) if round_index == 0 else turn

    return run_dialogues(chat, len(records), next_turn)


def run_items(chat: ChatModel, task: DevCVTask, records: Sequence[dict], use_system_prompt: bool = False) -> list:
    """The model's outputs for a batch of items of one task: a generated string per item, a list of
    per-round answers for dialogues, or a 2×2 loss matrix for Looking While Listening."""
    if task.answer_type == "loglikelihood":
        conversations, continuations = [], []
        for record in records:
            item_conversations, item_continuations = lwl_requests(record)
            conversations += item_conversations
            continuations += item_continuations
        losses = [loss for loss, _ in chat.score_continuations(conversations, continuations)]
        return [[losses[4 * k : 4 * k + 2], losses[4 * k + 2 : 4 * k + 4]] for k in range(len(records))]
    system = system_messages(task, use_system_prompt)
    dialogues = [k for k, record in enumerate(records) if is_dialogue(record)]
    single = [k for k, record in enumerate(records) if not is_dialogue(record)]
    outputs: list = [None] * len(records)
    if dialogues:
        for k, answers in zip(dialogues, run_record_dialogues(chat, [records[k] for k in dialogues], system)):
            outputs[k] = answers
    if single:
        for k, answer in zip(single, chat.generate([single_turn_conversation(records[k], system) for k in single])):
            outputs[k] = answer
    return outputs
