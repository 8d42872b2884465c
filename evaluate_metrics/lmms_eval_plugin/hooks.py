"""lmms-eval task functions for the DevCV tasks (referenced by the generated task YAMLs).

Docs have the organisers' DevCV-Toolbox layout (what the leaderboard's reference wrapper reads):
``conversations`` (released ``{"from", "value"}`` turns with ``<image>`` placeholders, gold answers
in the ``gpt`` turns) and ``image`` (image paths in placeholder order), plus ``task``, ``answer``,
``choices`` and, for Memory, ``option_keys`` (per round, the object behind each option). Every item
is scored by :func:`babyvlm.evaluate_metrics.devcv.items.score_item`, as ``babyvlm-eval`` scores it.

This module imports nothing from babyvlm but the scoring (``..devcv``) and the task registry, so the
task folder carries a copy of those files and runs on an lmms-eval without babyvlm (see
:mod:`.task_folder`).

- generation tasks: ``generate_until``; ``doc_to_text`` is the released user turn, with ``<image>``
  where the images go (models that read the placeholders), ``doc_to_messages`` the same turn as chat
  content blocks (lmms-eval chat models: images as blocks in placeholder order, no literal ``<image>``).
- Memory: ``generate_until_multi_round``. Round 0 is the first user turn; :func:`dialogue_turn`
  gives each next one as ``(images, text, done, previous_output, round_info)``. A model answers with
  one answer per round: a list, or (the reference wrapper) a JSON-encoded list.
- Looking While Listening: ``multiple_choice`` log-likelihood. :func:`split_lwl_images` makes one
  doc per (item, image); the two phrases are the choices; the aggregations rebuild each item's 2×2
  loss matrix.

A response that cannot be scored (a dialogue with the wrong number of answers, a loss that is not a
number) raises :class:`UnscorableResponseError`, which ends lmms-eval's run with exit status 1
instead of a silent 0.
"""

from __future__ import annotations

import ast
import json
import math
from collections import defaultdict

from PIL import Image

from ..devcv.items import score_item
from ..devcv.scores import lwl_item, mean_scores
from ..devcv.tasks import canonical_task

IMAGE_PLACEHOLDER = "<image>"
TRANSCRIPT = "transcript"


def _images(paths) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in paths]


def _user_turns(doc) -> list[str]:
    return [turn["value"] for turn in doc["conversations"] if turn["from"] == "human"]


def _round_images(doc) -> list[list[str]]:
    """The image paths of each user turn (images belong to turns in placeholder order)."""
    rounds, start = [], 0
    for text in _user_turns(doc):
        count = text.count(IMAGE_PLACEHOLDER)
        rounds.append(doc["image"][start : start + count])
        start += count
    if start != len(doc["image"]):
        raise ValueError(f"doc {doc['id']!r}: {start} <image> placeholders but {len(doc['image'])} images")
    return rounds


def doc_to_visual(doc, lmms_eval_specific_kwargs=None) -> list[Image.Image]:
    """All images of a single-turn doc, in placeholder order."""
    return _images(doc["image"])


def doc_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    """The doc's first user turn as the released string."""
    return _user_turns(doc)[0]


def _content(text: str, images: list) -> list[dict]:
    """A released turn as chat content blocks: lmms-eval's image blocks where its placeholders stand."""
    pieces = text.split(IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(images):
        raise ValueError(f"{len(pieces) - 1} <image> placeholders for {len(images)} images in {text!r}")
    content = []
    for index, piece in enumerate(pieces):
        if index:
            content.append({"type": "image", "url": images[index - 1]})
        if piece:
            content.append({"type": "text", "text": piece})
    return content


def doc_to_messages(doc, lmms_eval_specific_kwargs=None) -> list[dict]:
    """The first user turn for lmms-eval chat models."""
    return [{"role": "user", "content": _content(doc_to_text(doc), doc_to_visual(doc))}]


def doc_to_target(doc) -> str:
    return " ".join(doc["answer"])


def process_results(doc, results) -> dict[str, float]:
    """Item metrics of a generation task (aggregated by mean)."""
    return score_item(doc["task"], results[0], doc["answer"][0]).scores


def dialogue_visual(doc, lmms_eval_specific_kwargs=None) -> list[Image.Image]:
    """The images of the first round of a dialogue doc."""
    return _images(_round_images(doc)[0])


def _is_transcript(lmms_eval_specific_kwargs) -> bool:
    return (lmms_eval_specific_kwargs or {}).get("dialogue") == TRANSCRIPT


def _transcript(doc, round_idx: int, answers) -> str:
    """Rounds 0..round_idx as one text, images numbered ``<image k>``, the model's answers in between."""
    lines, number = [], 0
    for index, turn in enumerate(_user_turns(doc)[: round_idx + 1]):
        pieces = turn.split(IMAGE_PLACEHOLDER)
        numbered = pieces[0]
        for piece in pieces[1:]:
            number += 1
            numbered += f"<image {number}>{piece}"
        lines.append(numbered)
        if index < round_idx:
            lines.append(f"Answer: {answers[index]}")
    return "\n".join(lines)


def dialogue_turn(doc, lmms_eval_specific_kwargs=None, previous_output=None, round_idx=None, previous_round_info=None):
    """lmms-eval multi-round ``doc_to_text``: the first user turn, then each following one.

    For models that answer each round from that round's input alone (lmms-eval's Qwen2-VL and
    Qwen2.5-VL; task kwargs ``dialogue: transcript``), each round instead carries the dialogue so
    far: every image up to this round, numbered ``<image k>`` in the text, and the model's answers.
    """
    turns = _user_turns(doc)
    if round_idx is None:
        return _transcript(doc, 0, []) if _is_transcript(lmms_eval_specific_kwargs) else turns[0]
    if round_idx >= len(turns):
        return None, None, True, previous_output, None
    rounds = _round_images(doc)
    if _is_transcript(lmms_eval_specific_kwargs):
        images = [path for round_images in rounds[: round_idx + 1] for path in round_images]
        return _images(images), _transcript(doc, round_idx, previous_output), False, previous_output, None
    return _images(rounds[round_idx]), turns[round_idx], False, previous_output, None


class UnscorableResponseError(SystemExit):
    """A response the task cannot score. A ``SystemExit``: lmms-eval 0.7.3 turns any ``Exception`` into a
    log line and exit status 0 (with no results, which the leaderboard's collation reads as 0 for the task),
    whereas this ends the run with exit status 1 and the message."""


def _decoded(result):
    """A response as the model gave it: lmms-eval 0.7.3 hands some back as their ``repr`` (tuples) or JSON."""
    if not isinstance(result, str):
        return result
    for decode in (json.loads, ast.literal_eval):
        try:
            return decode(result)
        except (ValueError, SyntaxError):
            continue
    return result


def _dialogue_answers(doc, result) -> list[str]:
    answers = _decoded(result)
    if not isinstance(answers, list | tuple) or not all(isinstance(answer, str) for answer in answers):
        raise UnscorableResponseError(
            f"{doc['task']} doc {doc['id']!r}: a dialogue's response must be one answer per round "
            f"(a list, or a JSON-encoded list, of strings), got {result!r}"
        )
    if len(answers) != len(doc["answer"]):
        raise UnscorableResponseError(
            f"{doc['task']} doc {doc['id']!r}: {len(answers)} answers for {len(doc['answer'])} rounds: {answers!r}"
        )
    return list(answers)


def process_dialogue_results(doc, results) -> dict[str, float]:
    """Memory metrics of one dialogue from its per-round answers (aggregated by mean)."""
    return score_item(doc["task"], _dialogue_answers(doc, results[0]), doc["answer"], doc["option_keys"]).scores


def split_lwl_images(dataset):
    """One doc per (LWL item, image): ``image`` holds just that image, ``lwl_image`` its index."""

    def split(batch):
        rows = defaultdict(list)
        for index in range(len(batch["id"])):
            for image_index, path in enumerate(batch["image"][index]):
                for column, values in batch.items():
                    rows[column].append([path] if column == "image" else values[index])
                rows["lwl_image"].append(image_index)
        return rows

    return dataset.map(split, batched=True)


def lwl_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    """Empty, as the organisers' baby_winoground task: models put the image before it (the reference wrapper
    and lmms-eval's Llava prepend ``<image>`` and a newline), which is the user turn the phrases are scored after."""
    return ""


def lwl_choices(doc) -> list[str]:
    return list(doc["choices"])


def lwl_target(doc) -> int:
    """Phrase j describes image j."""
    return doc["lwl_image"]


def _loss(doc, result) -> float:
    # lmms-eval 0.7.3 passes every response through `unwrap_generation_output`, which turns a
    # log-likelihood `(loss, is_greedy)` tuple into its repr; floats round-trip exactly through it.
    value = _decoded(result)
    loss = value[0] if isinstance(value, list | tuple) else value
    if not isinstance(loss, int | float) or math.isnan(loss):
        raise UnscorableResponseError(
            f"{doc['task']} doc {doc['id']!r}: a log-likelihood response must be a number, got {result!r}"
        )
    return float(loss)


def lwl_process_results(doc, results) -> dict[str, dict]:
    """Hand the doc's two phrase losses to the aggregations, which need both docs of the item."""
    losses = {"id": doc["id"], "image": doc["lwl_image"], "losses": [_loss(doc, result) for result in results]}
    return {metric: losses for metric in canonical_task("looking_while_listening").metrics}


def _lwl_scores(docs: list[dict]) -> dict[str, float]:
    matrices: dict[str, list] = defaultdict(lambda: [None, None])
    for doc in docs:
        matrices[doc["id"]][doc["image"]] = doc["losses"]
    return mean_scores([lwl_item(matrix) for matrix in matrices.values()])


def lwl_group_score(docs: list[dict]) -> float:
    return _lwl_scores(docs)["group_score"]


def lwl_image_score(docs: list[dict]) -> float:
    return _lwl_scores(docs)["image_score"]


def lwl_text_score(docs: list[dict]) -> float:
    return _lwl_scores(docs)["text_score"]
