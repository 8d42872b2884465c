"""Tiny synthetic models and DevCV dataset folders for the evaluation tests and benchmarks.

Everything is built in-process from a seed (random weights, a tokenizer trained on a few
sentences, random images), so nothing is downloaded.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import yaml
from babyvlm.dataset_builders.devcv.schema import DEVCV_FEATURES
from babyvlm.evaluate_metrics.devcv.parsing import DIRECTIONS
from babyvlm.evaluate_metrics.devcv.tasks import canonical_task
from datasets import Dataset
from PIL import Image
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    MistralConfig,
    PreTrainedTokenizerFast,
)

IMAGE_SIZE = 16
_SPECIAL_TOKENS = ["<pad>", "<unk>", "<sos>", "<eos>", "<image>"]
_CORPUS = [
    "touch the image of 'dog' (a) the first image (b) the second image (c) the third image (d) the fourth image.",
    "how many cups do you see? one two three four five six seven eight nine ten eleven twelve 0 1 2 3 4 5 6 7 8 9",
    "which part of the frame does the ball leave from? top bottom left right top left bottom right",
    "let's try more. touch the new image. (a) (b) a red ball a blue car",
]
# A chat format unlike BabyLLaVA-V2's, so the runner is exercised on "any" template.
_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|' + message.role + '|>' -}}"
    "{%- if message.content is string -%}{{- message.content -}}"
    "{%- else -%}{%- for block in message.content -%}"
    "{%- if block.type == 'image' -%}{{- '<image>' -}}{%- else -%}{{- block.text -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if message.role == 'assistant' -%}{{- eos_token -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)


def _tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=_SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<sos> $A", special_tokens=[("<sos>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<sos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )


def save_tiny_llava(directory: str | Path, seed: int = 0, sliding_window: int | None = None) -> Path:
    """Save a random ``LlavaForConditionalGeneration`` (a few thousand weights) and its processor.

    With ``sliding_window``, the language model is a Mistral with that attention window, whose cache
    the dialogue key/value reuse does not support (the tests' other kind of model).
    """
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    patch = IMAGE_SIZE // 2
    image_tokens = (IMAGE_SIZE // patch) ** 2 + 1  # patches + CLS ("full" feature selection)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        ),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
        chat_template=_CHAT_TEMPLATE,
    )
    text_settings = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        # Large random weights make answers depend on the input, which the tests need.
        "initializer_range": 0.5,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }
    text_config = (
        MistralConfig(sliding_window=sliding_window, **text_settings)
        if sliding_window
        else LlamaConfig(**text_settings)
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            image_size=IMAGE_SIZE,
            patch_size=patch,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            projection_dim=16,
        ),
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_seq_length=image_tokens,
        pad_token_id=0,
    )
    model = LlavaForConditionalGeneration(config).eval()
    # Favour answer-like tokens so random weights still give parsable, input-dependent answers.
    with torch.no_grad():
        for words, scale in ((" a b c d", 6), (" 1 2 3 4 5 6 7 8 9 10 11 12 top bottom left right", 4)):
            model.lm_head.weight[tokenizer(words, add_special_tokens=False).input_ids] *= scale
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def _image(rng: random.Random) -> Image.Image:
    pixels = np.array([rng.randrange(256) for _ in range(IMAGE_SIZE * IMAGE_SIZE * 3)], dtype=np.uint8)
    return Image.fromarray(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE, 3))


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


_IMAGE_BLOCK = {"type": "image", "text": None}


def _row(
    task_name: str, item_id: str, split: str, messages: list[dict], images: list, answer: list[str], **columns
) -> dict:
    task = canonical_task(task_name)
    row = {
        "id": item_id,
        "original_id": item_id,
        "task": task.name,
        "harness_key": task.harness_key,
        "source": "synthetic",
        "source_task": task.source_names[0],
        "split": split,
        "messages": messages,
        "images": images,
        "answer": answer,
        "choices": [],
        "labels": [],
        "bbox": [],
        "notes": "",
        "gif": "",
        "image_paths": [],
        "extra": "{}",
        "provenance": "{}",
    }
    row.update(columns)
    return row


def _single_turn(task_name, item_id, split, content, images, answer) -> dict:
    messages = [{"role": "user", "content": content}, {"role": "assistant", "content": [_text(answer)]}]
    return _row(task_name, item_id, split, messages, images, [answer])


def _memory_item(item_id: str, split: str, rng: random.Random) -> dict:
    """15 rounds: 5 learning rounds (each adds a new object), then each learned object tested twice."""
    objects = [f"object {k}" for k in range(15)]
    crops = {name: _image(rng) for name in objects}
    learned, fresh = objects[:5], iter(objects[5:])
    pairs = [[learned[0]]] + [[learned[k - 1], learned[k]] for k in range(1, 5)]
    news = list(learned)
    for old in rng.sample(learned * 2, 10):
        pairs.append([old, next(fresh)])
        news.append(pairs[-1][1])
    messages, images, answers, labels = [], [], [], []
    for round_index, (pair, new) in enumerate(zip(pairs, news)):
        rng.shuffle(pair)
        prefix = "Touch the new image." if round_index == 0 else "Let's try more. Touch the new image."
        content = [_text(prefix)]
        for letter, name in zip("AB", pair):
            content += [_text(f" ({letter}) "), _IMAGE_BLOCK]
            images.append(crops[name])
        answers.append("AB"[pair.index(new)])
        labels.append(pair)
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": [_text(answers[-1])]}]
    return _row("memory", item_id, split, messages, images, answers, labels=labels)


PV_PROMPT = (
    "\n Touch the image of 'dog' (A) the first image (B) the second image (C) the third image (D) the fourth image."
)
COUNT_PROMPT = " How many cups do you see?"
VDR_OPEN_PROMPT = (
    " which part of the frame does the ball leave from? respond ONLY with one of: 'top', 'bottom', 'left', 'right',"
    " 'top right', 'top left', 'bottom right', or 'bottom left'."
)


def _picture_vocabulary_item(item_id: str, split: str, rng: random.Random) -> dict:
    content = [_IMAGE_BLOCK] * 4 + [_text(PV_PROMPT)]
    return _single_turn(
        "picture_vocabulary", item_id, split, content, [_image(rng) for _ in range(4)], rng.choice("ABCD")
    )


def _count_item(item_id: str, split: str, rng: random.Random) -> dict:
    content = [_IMAGE_BLOCK, _text(COUNT_PROMPT)]
    return _single_turn("count", item_id, split, content, [_image(rng)], str(rng.randint(1, 12)))


def _vdr_open_item(item_id: str, split: str, rng: random.Random) -> dict:
    frames = rng.randint(5, 9)
    content = [_IMAGE_BLOCK] * frames + [_text(VDR_OPEN_PROMPT)]
    return _single_turn(
        "vdr_open", item_id, split, content, [_image(rng) for _ in range(frames)], rng.choice(DIRECTIONS)
    )


def _lwl_item(item_id: str, split: str, rng: random.Random) -> dict:
    images = [_image(rng), _image(rng)]
    return _row("looking_while_listening", item_id, split, [], images, [], choices=["a red ball", "a blue car"])


_ITEM_MAKERS = {
    "picture_vocabulary": _picture_vocabulary_item,
    "count": _count_item,
    "vdr_open": _vdr_open_item,
    "memory": _memory_item,
    "looking_while_listening": _lwl_item,
}


def synthetic_items(task_name: str, count: int, split: str = "test", seed: int = 0) -> list[dict]:
    """``count`` random DevCV rows of a task (picture_vocabulary, count, vdr_open, memory or
    looking_while_listening) in the DevCV schema, with PIL images."""
    task = canonical_task(task_name)
    if task.name not in _ITEM_MAKERS:
        raise ValueError(f"no synthetic items for task {task.name!r}; available: {', '.join(_ITEM_MAKERS)}")
    rng = random.Random(f"{task.name}-{seed}")
    return [_ITEM_MAKERS[task.name](f"{task.name}_{index:04d}", split, rng) for index in range(count)]


def write_devcv_folder(directory: str | Path, rows_by_task: dict[str, list[dict]], split: str = "test") -> Path:
    """Write rows as a DevCV dataset folder: ``<task>/<split>-00000-of-00001.parquet`` per task plus a
    README.md whose YAML ``configs`` block lets ``datasets.load_dataset(directory, task)`` find them."""
    directory = Path(directory)
    configs = []
    for task_name, rows in rows_by_task.items():
        (directory / task_name).mkdir(parents=True, exist_ok=True)
        Dataset.from_list(rows, features=DEVCV_FEATURES).to_parquet(
            directory / task_name / f"{split}-00000-of-00001.parquet"
        )
        configs.append(
            {"config_name": task_name, "data_files": [{"split": split, "path": f"{task_name}/{split}-*.parquet"}]}
        )
    (directory / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}, sort_keys=False) + "---\n")
    return directory
