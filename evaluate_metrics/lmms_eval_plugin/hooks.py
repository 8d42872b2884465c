"""lmms-eval task functions for the DevCV tasks (referenced by the generated task YAMLs).

Docs are DevCV dataset rows. Prompts are the released strings (``<image>`` placeholders where the
images go, which :func:`babyvlm.dataset_builders.chat.text_to_content` turns back into blocks), and
every item is scored by :func:`babyvlm.evaluate_metrics.devcv.items.score_item`, as ``babyvlm-eval``
scores it.

- generation tasks: ``generate_until``; one answer per doc.
- Memory: ``generate_until_multi_round``. :func:`dialogue_turn` follows lmms-eval's multi-round
  protocol: round 0 is the doc's first user turn (``doc_to_text`` / ``doc_to_visual``); each later
  call returns ``(images, text, done, previous_output, round_info)`` for the next user turn.
- Looking While Listening: ``multiple_choice`` log-likelihood. :func:`split_lwl_images` makes one
  doc per (item, image); the two phrases are the choices; the aggregations rebuild each item's 2×2
  loss matrix.
"""

from __future__ import annotations

import ast
from collections import defaultdict

from babyvlm.dataset_builders.chat import content_to_text
from babyvlm.dataset_builders.devcv.tasks import canonical_task

from ..devcv.items import score_item
from ..devcv.scores import lwl_item, mean_scores
from ..protocol import lwl_user_text, memory_option_keys, user_rounds


def doc_to_visual(doc, lmms_eval_specific_kwargs=None) -> list:
    """All images of a single-turn doc, in placeholder order."""
    return [image.convert("RGB") for image in doc["images"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    """The doc's (first) user turn as the released string."""
    return content_to_text(next(m for m in doc["messages"] if m["role"] == "user")["content"])


def doc_to_target(doc) -> str:
    return " ".join(doc["answer"])


def process_results(doc, results) -> dict[str, float]:
    """Item metrics of a generation task (aggregated by mean)."""
    return score_item(doc["task"], results[0], doc["answer"][0]).scores


def dialogue_visual(doc, lmms_eval_specific_kwargs=None) -> list:
    """The images of the first round of a dialogue doc."""
    return [image.convert("RGB") for image in user_rounds(doc)[0].images]


def dialogue_turn(doc, lmms_eval_specific_kwargs=None, previous_output=None, round_idx=None, previous_round_info=None):
    """lmms-eval multi-round ``doc_to_text``: the first user turn, then each following one."""
    rounds = user_rounds(doc)
    if round_idx is None:
        return content_to_text(rounds[0].messages[0]["content"])
    if round_idx >= len(rounds):
        return None, None, True, previous_output, None
    turn = rounds[round_idx]
    images = [image.convert("RGB") for image in turn.images]
    return images, content_to_text(turn.messages[0]["content"]), False, previous_output, None


def process_dialogue_results(doc, results) -> dict[str, float]:
    """Memory metrics of one dialogue from its per-round answers (aggregated by mean)."""
    return score_item(doc["task"], list(results[0]), doc["answer"], memory_option_keys(doc)).scores


def split_lwl_images(dataset):
    """One doc per (LWL item, image): columns ``lwl_image`` (the index) and ``images`` holding just that image."""

    def split(batch):
        rows = defaultdict(list)
        for index in range(len(batch["id"])):
            for image_index, image in enumerate(batch["images"][index]):
                for column, values in batch.items():
                    rows[column].append([image] if column == "images" else values[index])
                rows["lwl_image"].append(image_index)
        return rows

    return dataset.map(split, batched=True)


def lwl_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    """The user turn the reference wrapper scores the phrases after: the image and a newline."""
    return lwl_user_text()


def lwl_choices(doc) -> list[str]:
    return list(doc["choices"])


def lwl_target(doc) -> int:
    """Phrase j describes image j."""
    return doc["lwl_image"]


def _loss(result) -> float:
    # lmms-eval 0.7.3 passes every response through `unwrap_generation_output`, which turns a
    # log-likelihood `(loss, is_greedy)` tuple into its repr; floats round-trip exactly through it.
    loss, _ = ast.literal_eval(result) if isinstance(result, str) else result
    return float(loss)


def lwl_process_results(doc, results) -> dict[str, dict]:
    """Hand the doc's two phrase losses to the aggregations, which need both docs of the item."""
    losses = {"id": doc["id"], "image": doc["lwl_image"], "losses": [_loss(result) for result in results]}
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
