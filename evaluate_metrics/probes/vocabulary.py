"""Zero-shot Picture Vocabulary and Looking While Listening: option images ranked by the likelihood of the word.

No prompt and no answer letter: each option image is scored by the likelihood of the item's word (Picture
Vocabulary, the ``'{word}'`` of its prompt, read with the task's released templates) or phrase (Looking While
Listening, each of its two phrases against its two images) in the model's plain format. Works on released DevCV
items as on generated ones.

- Picture Vocabulary: 4-way choice per item, chance 1/4; gold is the item's answer letter.
- Looking While Listening: each phrase picks one of the two images (2-way, chance 1/2), so an item gives two
  choices; ``details`` also reports the items whose two phrases both pick their own image (the official image
  score, chance 1/4; a tie counts as a miss there).
"""

from __future__ import annotations

import re
from pathlib import Path

from babyvlm.chat import content_to_text

from ..data import load_task_split, resolve_tasks
from ..devcv.parsing import parse_letter
from ..devcv.tasks import LETTERS, PROMPT_VARIANTS, canonical_task
from ..inference import ChatModel
from .scoring import ProbeResult, binomial_p_value, forced_choice, image_text_log_likelihoods, plain_chat

PICTURE_VOCABULARY = "zero_shot_picture_vocabulary"
LOOKING_WHILE_LISTENING = "zero_shot_looking_while_listening"


def _word_patterns() -> list[re.Pattern]:
    """Regular expressions that find the word in Picture Vocabulary prompts, one per released wording: the
    template's text around ``{word}`` (from the last image or line before it to the next character after it)."""
    patterns = []
    for variant in PROMPT_VARIANTS:
        template = canonical_task("picture_vocabulary").prompts.template(variant)
        before, _, after = template.partition("{word}")
        before = re.split(r"<image>|\n", before)[-1].strip()
        patterns.append(re.compile(re.escape(before) + r"\s*(.+?)\s*" + re.escape(after[:1]), re.IGNORECASE))
    return patterns


WORD_PATTERNS = _word_patterns()


def picture_vocabulary_word(record: dict) -> str:
    """The word a Picture Vocabulary item asks for.

    >>> picture_vocabulary_word({"id": "1", "messages": [{"role": "user", "content": [
    ...     {"type": "text", "text": "Touch the image of 'ball' (A)"}]}]})
    'ball'
    """
    text = " ".join(content_to_text(m["content"]) for m in record["messages"] if m["role"] == "user")
    for pattern in WORD_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(1)
    raise ValueError(f"picture vocabulary item {record['id']!r}: no word in its prompt {text[:80]!r}")


def load_items(data_dir: str | Path, task: str, split: str = "test", limit: int | None = None):
    """One task's split of a DevCV dataset folder, its first ``limit`` items."""
    [(_, config)] = resolve_tasks(data_dir, [task])
    dataset = load_task_split(data_dir, config, split)
    return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset


def zero_shot_picture_vocabulary(
    model: str | Path | ChatModel, items, *, seed: int = 0, batch_size: int = 16, progress: bool = False
) -> ProbeResult:
    """Each Picture Vocabulary item's four images scored by the likelihood of its word; right when the gold
    image scores highest."""
    chat = plain_chat(model)
    requests, gold, words = [], [], []
    for index in range(len(items)):
        record = items[index]
        word = picture_vocabulary_word(record)
        words.append(word)
        letter = parse_letter(record["answer"][0]) if record["answer"] else None
        if letter is None or len(record["images"]) != len(LETTERS) or LETTERS.index(letter) >= len(record["images"]):
            raise ValueError(f"picture vocabulary item {record['id']!r}: needs 4 images and a gold letter A-D")
        gold.append(LETTERS.index(letter))
        requests += [([image], word) for image in record["images"]]
    scores = image_text_log_likelihoods(
        chat, requests, batch_size=batch_size, progress=progress, description=PICTURE_VOCABULARY
    )
    return forced_choice(
        PICTURE_VOCABULARY,
        [scores[4 * k : 4 * k + 4] for k in range(len(gold))],
        gold,
        chance=0.25,
        seed=seed,
        labels=words,
    )


def zero_shot_looking_while_listening(
    model: str | Path | ChatModel, items, *, seed: int = 0, batch_size: int = 16, progress: bool = False
) -> ProbeResult:
    """Each phrase of each Looking While Listening item picks the image that makes it likelier; right when it is
    the image the phrase describes (phrase j describes image j)."""
    chat = plain_chat(model)
    requests, phrases = [], []
    for index in range(len(items)):
        record = items[index]
        if len(record["images"]) != 2 or len(record["choices"]) != 2:
            raise ValueError(f"looking-while-listening item {record['id']!r}: needs 2 images and 2 phrases")
        phrases += record["choices"]
        requests += [([image], phrase) for phrase in record["choices"] for image in record["images"]]
    scores = image_text_log_likelihoods(
        chat, requests, batch_size=batch_size, progress=progress, description=LOOKING_WHILE_LISTENING
    )
    pairs = [scores[2 * k : 2 * k + 2] for k in range(len(scores) // 2)]  # phrase j: [image 0, image 1]
    result = forced_choice(
        LOOKING_WHILE_LISTENING,
        pairs,
        [k % 2 for k in range(len(pairs))],
        chance=0.5,
        seed=seed,
        units=[k // 2 for k in range(len(pairs))],  # an item's two phrases share its two images
        labels=phrases,
    )
    both = sum(
        pairs[2 * i][0] > pairs[2 * i][1] and pairs[2 * i + 1][1] > pairs[2 * i + 1][0] for i in range(len(items))
    )
    result.details = {
        "items": len(items),
        "image_score": both / len(items) if len(items) else 0.0,
        "image_score_chance": 0.25,
        "image_score_p_value": binomial_p_value(both, len(items), 0.25),
    }
    return result
