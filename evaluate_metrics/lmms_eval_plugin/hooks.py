"""lmms-eval task functions for the DevCV tasks (referenced by the generated task YAMLs).

Docs have the organisers' DevCV-Toolbox layout (what the leaderboard's reference wrapper reads):
``conversations`` (released ``{"from", "value"}`` turns with ``<image>`` placeholders, gold answers
in the ``gpt`` turns) and ``image`` (image paths in placeholder order), plus ``task``, ``answer``,
``choices`` and, for Memory, ``option_keys`` (per round, the object behind each option). Every item
is scored by :func:`babyvlm.evaluate_metrics.devcv.items.score_item`, as ``babyvlm eval`` scores it.

This module imports nothing from babyvlm but the scoring (``..devcv``) and the task registry, so the
task folder carries a copy of those files and runs on an lmms-eval without babyvlm (see
:mod:`.task_folder`).

- generation tasks: ``generate_until``; ``doc_to_text`` is the released user turn, with ``<image>``
  where the images go (models that read the placeholders), ``doc_to_messages`` the same turn as chat
  content blocks (lmms-eval chat models: images as blocks in placeholder order, no literal ``<image>``).
- Memory: ``generate_until_multi_round``. Round 0 is the first user turn; :func:`dialogue_turn`
  gives each next one as ``(images, text, done, previous_output, round_info)``. A model answers with
  one answer per round: a list, or (the reference wrapper) a JSON-encoded list. The replay variant
  (``generate_until_agentic``) runs on any model with ``generate_until``: lmms-eval asks for one
  round at a time, each carrying the dialogue so far as a transcript, and the last step's output is
  the JSON-encoded list of the answers.
- Looking While Listening: ``multiple_choice`` log-likelihood. :func:`split_lwl_images` makes one
  doc per (item, image); the two phrases are the choices; the aggregations rebuild each item's 2×2
  loss matrix.

lmms-eval 0.7.3's command line logs any error of a run (a model without the method a task needs, a
response that cannot be scored) and exits with status 0 and no results, which the leaderboard's
collation reads as 0. Loading a DevCV task arms :func:`guard_failures`, which ends such a run with
exit status 1 and the reason instead.
"""

from __future__ import annotations

import ast
import json
import math
import sys
import traceback
from collections import defaultdict

from PIL import Image

from ..devcv.items import score_item
from ..devcv.scores import lwl_item, mean_scores
from ..devcv.tasks import canonical_task

IMAGE_PLACEHOLDER = "<image>"
# How a Memory doc's rounds reach the model (task kwarg `dialogue`): the released turns one by one (models that keep
# the history), the dialogue so far as text each round (models that answer each round alone), or that transcript
# with the answers handed back as one JSON-encoded list at the end (the replay variant, `generate_until_agentic`).
TURNS, TRANSCRIPT, REPLAY = "turns", "transcript", "replay"


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


def _dialogue_mode(lmms_eval_specific_kwargs) -> str:
    return (lmms_eval_specific_kwargs or {}).get("dialogue", TURNS)


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
    Qwen2.5-VL: task kwargs ``dialogue: transcript``; every model in the replay variant:
    ``dialogue: replay``), each round instead carries the dialogue so far: every image up to this
    round, numbered ``<image k>`` in the text, and the model's answers. In the replay variant the
    step after the last round hands back the answers as one JSON-encoded list, which lmms-eval
    takes as the doc's response.
    """
    mode = _dialogue_mode(lmms_eval_specific_kwargs)
    turns = _user_turns(doc)
    if round_idx is None:
        return turns[0] if mode == TURNS else _transcript(doc, 0, [])
    if round_idx >= len(turns):
        answers = [json.dumps(list(previous_output))] if mode == REPLAY else previous_output
        return None, None, True, answers, None
    rounds = _round_images(doc)
    if mode == TURNS:
        return _images(rounds[round_idx]), turns[round_idx], False, previous_output, None
    images = [path for round_images in rounds[: round_idx + 1] for path in round_images]
    return _images(images), _transcript(doc, round_idx, previous_output), False, previous_output, None


class UnscorableResponseError(ValueError):
    """A response the task cannot score (the failure guard turns it into exit status 1)."""


# What to run instead when a method of lmms-eval's model fails (lmms-eval 0.7.3: not implemented, or broken
# for some models, as the chat Qwen2.5-VL's multi-round and Llava's log-likelihood with transformers 5).
_ALTERNATIVES = {
    "generate_until_multi_round": "the model cannot answer Memory as a multi-round task: run its replay variant "
    "(--tasks baby_memory_replay, or the group devcv_replay)",
    "loglikelihood": "the model cannot score Looking While Listening: run the group devcv_generation or devcv_replay",
}
_CHAT_GENERATION_ONLY = "generation only"  # lmms-eval's assertion on a chat model given a log-likelihood task


def _failure_report(error: BaseException) -> str:
    """The error, the lmms-eval model method (or else the function) it came from, and what to run instead."""
    attempt = getattr(error, "last_attempt", None)  # lmms-eval retries process_results: tenacity's RetryError
    if attempt is not None and attempt.failed:
        error = attempt.exception()
    frames = traceback.extract_tb(error.__traceback__)
    in_model = [frame for frame in frames if "/lmms_eval/models/" in frame.filename.replace("\\", "/")]
    origin = in_model[0] if in_model else (frames[-1] if frames else None)
    report = f"{type(error).__name__}"
    if origin is not None:
        report += f" in {origin.name} ({origin.filename}:{origin.lineno})"
    report += f": {error}"
    if in_model and origin.name in _ALTERNATIVES:
        report += f"\n{_ALTERNATIVES[origin.name]}"
    elif _CHAT_GENERATION_ONLY in str(error):
        report += f"\nlmms-eval's chat models run generation tasks only: {_ALTERNATIVES['loglikelihood']}"
    return report


def _end_failed_run(message) -> None:
    """A loguru sink: lmms-eval logs the error of a failed run inside its ``except``; end the run there."""
    record = message.record
    error = sys.exc_info()[1]
    if record["name"] == "lmms_eval.__main__" and error is not None:
        raise SystemExit(f"lmms-eval run with DevCV tasks failed (exit status 1, not 0): {_failure_report(error)}")


_guard = {"sink": None}


def guard_failures(dataset):
    """``process_docs`` of every DevCV task: the docs unchanged, and the failure guard armed.

    Armed on each task load, since lmms-eval's command line removes every log sink when it starts.
    """
    from loguru import logger  # lmms-eval's logger (imported here: writing the task folder needs no lmms-eval)

    if _guard["sink"] is not None:
        try:
            logger.remove(_guard["sink"])
        except ValueError:  # already removed by lmms-eval
            pass
    _guard["sink"] = logger.add(_end_failed_run, level="ERROR", format="{message}", catch=False)
    return dataset


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
    """One doc per (LWL item, image): ``image`` holds just that image, ``lwl_image`` its index (and the failure
    guard armed, as :func:`guard_failures`)."""

    def split(batch):
        rows = defaultdict(list)
        for index in range(len(batch["id"])):
            for image_index, path in enumerate(batch["image"][index]):
                for column, values in batch.items():
                    rows[column].append([path] if column == "image" else values[index])
                rows["lwl_image"].append(image_index)
        return rows

    return guard_failures(dataset).map(split, batched=True)


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
    return {metric: losses for metric in canonical_task(doc["task"]).metrics}


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
