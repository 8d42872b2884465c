"""Utterance-frame matching: is a held-out utterance more likely with its own frame than with another's?

For each image-utterance pair of a corpus split (``babyvlm data saycam``'s ``image_utterance``, by default its
held-out ``validation`` split), a foil frame is drawn, with a generator seeded by ``seed``, from the pairs of
*another recording* (so that it shows another scene and not the same toys a second later) whose utterance differs.
The model scores the utterance after each frame in its plain format; the pair counts as matched when its own frame
gives the higher likelihood. Chance is 1/2: a model that ignores the image gives the same likelihood to both (a
tie, broken by a seeded coin).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from babyvlm.chat import content_to_text

from ..data import load_task_split
from ..inference import ChatModel
from .scoring import ProbeResult, forced_choice, image_text_log_likelihoods, plain_chat

PROBE = "utterance_frame_matching"


def load_pairs(corpus: str | Path, split: str = "validation"):
    """One split of an image-utterance corpus folder (parquet files and a README ``configs`` block)."""
    return load_task_split(corpus, "default", split)


def utterance_of(record: dict) -> str:
    """The assistant turn of an image-utterance record: the utterance."""
    answers = [content_to_text(m["content"]) for m in record["messages"] if m["role"] == "assistant"]
    if len(answers) != 1 or len(record["images"]) != 1:
        raise ValueError(
            f"pair {record.get('id')!r}: an image-utterance pair has one image and one utterance, "
            f"got {len(record['images'])} images and {len(answers)} assistant turns"
        )
    return answers[0].strip()


def draw_foils(recordings: Sequence[str], utterances: Sequence[str], seed: int) -> list[int]:
    """For each pair, the index of a pair of another recording with another utterance (seeded).

    >>> draw_foils(["a", "a", "b"], ["x", "y", "z"], seed=0)
    [2, 2, 0]
    """
    rng = random.Random(seed)
    foils = []
    for index, (recording, utterance) in enumerate(zip(recordings, utterances, strict=True)):
        candidates = [
            other
            for other, (other_recording, other_utterance) in enumerate(zip(recordings, utterances))
            if other_recording != recording and other_utterance != utterance
        ]
        if not candidates:
            raise ValueError(
                f"pair {index} ({recording}): no pair of another recording to draw a foil frame from; "
                "the probe needs held-out pairs of at least two recordings"
            )
        foils.append(rng.choice(candidates))
    return foils


def utterance_frame_matching(
    model: str | Path | ChatModel,
    pairs,
    *,
    seed: int = 0,
    limit: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> ProbeResult:
    """2AFC accuracy of ``model`` picking each pair's own frame over a foil frame by the utterance's likelihood.

    ``pairs`` is a sequence of image-utterance records (``messages``, ``images``, ``recording``), e.g.
    :func:`load_pairs`; ``limit`` takes the first pairs (foils are still drawn from all of them).
    """
    chat = plain_chat(model)
    records = [pairs[index] for index in range(len(pairs))]
    utterances = [utterance_of(record) for record in records]
    foils = draw_foils([record["recording"] for record in records], utterances, seed)
    chosen = range(len(records) if limit is None else min(limit, len(records)))
    requests = []
    for index in chosen:
        requests += [
            (records[index]["images"], utterances[index]),
            (records[foils[index]]["images"], utterances[index]),
        ]
    scores = image_text_log_likelihoods(chat, requests, batch_size=batch_size, progress=progress, description=PROBE)
    result = forced_choice(
        PROBE, [scores[2 * k : 2 * k + 2] for k in range(len(chosen))], [0] * len(chosen), chance=0.5, seed=seed
    )
    result.details = {
        "recordings": len({records[index]["recording"] for index in chosen}),
        "foils": "a frame of another recording with another utterance",
    }
    return result
