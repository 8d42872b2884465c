"""How each DevCV item is put to a model (evaluate_metrics/README.md, "What is measured"), as the
leaderboard's reference lmms-eval wrapper does it (BabyVLM-Leaderboard-2026 submission_template/model.py).

Each task's ``protocol`` in the task table says which of these its items get:

- ``generate`` tasks: the user turn(s) before the first gold answer, answered by greedy generation
  (up to :data:`MAX_NEW_TOKENS` new tokens, stopping at the end of sequence), the answer cut before the
  harness's stop strings (:data:`~.harness.STOP_STRINGS`) and stripped.
- ``dialogue`` tasks (Memory): a real dialogue. Each round adds the next user turn(s) and their
  images to the history, the model answers (up to :data:`MAX_NEW_TOKENS_PER_ROUND` tokens), and its
  *own* answer, as generated (stripped), stays in the history.
- ``loglikelihood`` tasks (Looking While Listening): no generation; the mean token loss of each phrase
  after each image gives the 2×2 matrix the metric compares, on the strings the reference wrapper
  scores (:func:`lwl_requests`).

Records follow the DevCV schema (``babyvlm.dataset_builders.devcv.schema``) with decoded images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from babyvlm.evaluate_metrics.devcv.tasks import DIALOGUE, LOGLIKELIHOOD, DevCVTask, canonical_task

from babyvlm.chat import IMAGE_PLACEHOLDER, count_image_blocks, text_to_content

from .answering import AnsweringModel, Conversation
from .harness import STOP_STRINGS

NextTurn = Callable[[int, int, list[str]], Conversation | None]

# Generation limits of the leaderboard's reference wrapper (BabyVLM-Leaderboard-2026
# submission_template/model.py): `generate_until` defaults to 1024 new tokens, each round of
# `generate_until_multi_round` (Memory) to 128. Greedy decoding stops at the end-of-sequence token,
# so a model that answers briefly pays nothing for the long limit.
MAX_NEW_TOKENS = 1024
MAX_NEW_TOKENS_PER_ROUND = 128


def system_prompt(task: str | DevCVTask, api: bool = False) -> str:
    """The authors' system prompt for ``task`` (any task name), from the DevCV task table: the open-model variant
    (``create_qwen_system_prompt``), or with ``api`` the API-model one (``create_api_system_prompt``)."""
    task = task if isinstance(task, DevCVTask) else canonical_task(task)
    return task.official_system_prompt(api)


def system_messages(task: DevCVTask, use_system_prompt: bool, api: bool = False) -> list[dict]:
    """The task's system message when asked for (general-purpose models), else none (BabyLLaVA-V2)."""
    if not use_system_prompt:
        return []
    return [{"role": "system", "content": [{"type": "text", "text": system_prompt(task, api)}]}]


def user_rounds(record: dict) -> list[Conversation]:
    """The user side of each round with its own images (images are assigned to turns in block order).

    Consecutive user turns form one round, answered once: the reference wrapper's
    ``generate_until_multi_round`` accumulates them without generating.
    """
    rounds, next_image, previous_role = [], 0, None
    for message in record["messages"]:
        if message["role"] == "user":
            count = count_image_blocks([message])
            images = list(record["images"][next_image : next_image + count])
            if previous_role == "user":
                rounds[-1].messages.append(message)
                rounds[-1].images.extend(images)
            else:
                rounds.append(Conversation([message], images))
            next_image += count
        previous_role = message["role"]
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


# lmms-eval puts its `target_delimiter` (" ", the default and baby_winoground.yaml's) before each
# choice of a multiple-choice task (`ConfigurableTask.construct_requests`).
LWL_TARGET_DELIMITER = " "


def lwl_user_text(image_count: int = 1, context: str = "") -> str:
    """The user turn the reference wrapper's ``loglikelihood`` scores a phrase after: the image
    placeholders joined by spaces, a newline, then the task's context (empty for baby_winoground,
    whose ``doc_to_text`` gives "")."""
    return " ".join([IMAGE_PLACEHOLDER] * image_count) + "\n" + context


def lwl_requests(record: dict) -> tuple[list[Conversation], list[str]]:
    """The four (image i, phrase j) pairs of an LWL item in order 00, 01, 10, 11: the user turn of
    :func:`lwl_user_text` with image i, and phrase j after lmms-eval's target delimiter as the
    continuation, scored by its mean token loss up to and including the end of the assistant turn."""
    if len(record["images"]) != 2 or len(record["choices"]) != 2:
        raise ValueError(
            f"Looking-While-Listening item {record['id']!r} needs 2 images and 2 phrases, "
            f"got {len(record['images'])} and {len(record['choices'])}"
        )
    conversations, continuations = [], []
    for image in record["images"]:
        for phrase in record["choices"]:
            user = {"role": "user", "content": text_to_content(lwl_user_text())}
            conversations.append(Conversation([user], [image]))
            continuations.append(LWL_TARGET_DELIMITER + phrase)
    return conversations, continuations


def has_memory_labels(record: dict) -> bool:
    """Whether a Memory item carries the released per-round ``labels`` (the public Ego4D items do not)."""
    return bool(record["labels"])


def memory_option_keys(record: dict) -> list[list[str]]:
    """Per round, a key naming each object shown: the released ``labels``, as the authors' scoring
    uses them, or, for items without labels (where the authors' code cannot score), a fingerprint
    of each image: a learned object is re-shown as the same crop. The runner counts and reports
    the items scored with the fallback."""
    rounds = user_rounds(record)
    if has_memory_labels(record):
        if len(record["labels"]) != len(rounds):
            raise ValueError(
                f"memory item {record['id']!r}: {len(record['labels'])} label rounds for {len(rounds)} rounds"
            )
        return [list(labels) for labels in record["labels"]]
    return [[hashlib.sha1(image.tobytes()).hexdigest() for image in turn.images] for turn in rounds]


def run_dialogues(
    chat: AnsweringModel, count: int, next_turn: NextTurn, histories: list[Conversation] | None = None
) -> list[list[str]]:
    """Play ``count`` dialogues side by side, one batched generation per round (into ``histories``, fresh
    conversations unless given: a history the model saw only the start of comes back ``truncated``).

    ``next_turn(k, round_index, answers)`` gives dialogue ``k``'s next messages (a user turn, after
    any system message in round 0) with their images, given its answers so far, or ``None`` once
    the dialogue is over. Each answer goes back into the history. Earlier rounds' keys and values are
    reused where the model allows (a local model's :class:`~.inference.DialogueCache`).
    """
    histories = [Conversation([]) for _ in range(count)] if histories is None else histories
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


def run_record_dialogues(
    chat: AnsweringModel, records: Sequence[dict], system: list[dict], histories: list[Conversation] | None = None
) -> list[list[str]]:
    """The model's answers to every round of multi-round items (played into ``histories`` when given)."""
    rounds = [user_rounds(record) for record in records]

    def next_turn(k: int, round_index: int, _answers: list[str]) -> Conversation | None:
        if round_index >= len(rounds[k]):
            return None
        turn = rounds[k][round_index]
        return Conversation(system + turn.messages, turn.images) if round_index == 0 else turn

    return run_dialogues(chat, len(records), next_turn, histories)


def run_items(
    chat: AnsweringModel,
    task: DevCVTask,
    records: Sequence[dict],
    use_system_prompt: bool = False,
    stop_strings: Sequence[str] = STOP_STRINGS,
    truncated: set[int] | None = None,
) -> list:
    """The model's outputs for a batch of items of one task, as its protocol asks them: a generated string per
    item (cut before the first of ``stop_strings``, as lmms-eval's ``generate_until`` does), a list of per-round
    answers per dialogue (no stop strings, as the reference wrapper's ``generate_until_multi_round``), or a 2×2
    loss matrix per Looking-While-Listening item. ``truncated`` collects the indices of the records whose prompt
    the model saw only the start of (longer than its context, :attr:`~.inference.ChatModel.context_limit`)."""
    if task.protocol == LOGLIKELIHOOD:
        conversations, continuations = [], []
        for record in records:
            item_conversations, item_continuations = lwl_requests(record)
            conversations += item_conversations
            continuations += item_continuations
        losses = [loss for loss, _ in chat.score_continuations(conversations, continuations)]
        return [[losses[4 * k : 4 * k + 2], losses[4 * k + 2 : 4 * k + 4]] for k in range(len(records))]
    system = system_messages(task, use_system_prompt, api=chat.uses_api_system_prompts)
    if task.protocol == DIALOGUE:
        conversations = [Conversation([]) for _ in records]
        outputs = run_record_dialogues(chat, records, system, conversations)
    else:
        conversations = [single_turn_conversation(record, system) for record in records]
        outputs = chat.generate(conversations, stop_strings=stop_strings)
    if truncated is not None:
        truncated.update(k for k, conversation in enumerate(conversations) if conversation.truncated)
    return outputs
