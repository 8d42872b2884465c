"""The DevCV record schema: one row per benchmark item, identical columns in every task config.

Every task config shares :data:`DEVCV_FEATURES`, so the ``all`` config is a plain concatenation.
This is the contract between the release builder, the item generators, the evaluation runner and
the training recipes; :data:`COLUMN_DESCRIPTIONS` documents each column (and is rendered into the
dataset card).
"""

from __future__ import annotations

from datasets import Features, List, Value

from babyvlm.chat import IMAGES_FEATURE, MESSAGES_FEATURE

DEVCV_FEATURES = Features(
    {
        "id": Value("string"),
        "original_id": Value("string"),
        "task": Value("string"),
        "harness_key": Value("string"),
        "source": Value("string"),
        "source_task": Value("string"),
        "split": Value("string"),
        "messages": MESSAGES_FEATURE,
        "images": IMAGES_FEATURE,
        "answer": List(Value("string")),
        "choices": List(Value("string")),
        "labels": List(List(Value("string"))),
        "bbox": List(Value("float64")),
        "notes": Value("string"),
        "gif": Value("string"),
        "image_paths": List(Value("string")),
        "extra": Value("string"),
        "provenance": Value("string"),
    }
)

COLUMN_DESCRIPTIONS = {
    "id": "item id, unique within a task and split: the released id; `<source>:<id>` in a folder built from "
    "several sources; `<id>__<n>` for the n-th different item one source released under one id (the official "
    "harness scores each)",
    "original_id": "the id as released",
    "task": "canonical task name (the config name)",
    "harness_key": "key in leaderboard result files and the lmms-eval task name, e.g. `baby_pv`",
    "source": "where the items come from: saycam / ego4d / nih / babyview / synthetic / toyworld ...",
    "source_task": "the task name as the release spelled it, e.g. `vdr-binary`",
    "split": "split name",
    "messages": "transformers chat messages; `{'type': 'image'}` blocks stand exactly where the released "
    "`<image>` placeholders were, across all turns; assistant turns hold the gold answers (as released). "
    "Empty for Looking-While-Listening, which has no prompt",
    "images": "the images in placeholder order: the n-th image block is `images[n]` "
    "(Looking-While-Listening: the two images of the item)",
    "answer": "gold answer of each assistant turn, in order (15 for a 15-round Memory item); empty for LWL",
    "choices": "the answer options the prompt offers, as the answer spells them (letters, or words for VDR); "
    "LWL: the two phrases, phrase j describing image j; empty for open-number tasks",
    "labels": "Memory: the object labels of each round",
    "bbox": "Localization: the released target box `bb` [x, y, w, h]",
    "notes": "Who Has More (naturalistic): the released notes (object counts as text)",
    "gif": "VDR: the released path of the clip preview",
    "image_paths": "the released relative image paths, in placeholder order (for round-trip export)",
    "extra": "JSON object of any other released keys, kept verbatim (`{}` if none)",
    "provenance": (
        "JSON object: how a generated item was made (source frames, boxes, distractors); `{}` for released items"
    ),
}
