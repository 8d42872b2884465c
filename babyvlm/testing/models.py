"""Tiny random checkpoints of the image-text-to-text families a lab compares against BabyLLaVA-V2.

``save_tiny_model(family, directory)`` writes a folder that ``AutoModelForImageTextToText`` and
``AutoProcessor`` load: the family's real config, model, processor, image-processor (and
video-processor) classes, a byte-level BPE tokenizer trained here on a few DevCV-like sentences
with the family's special tokens, and a chat template written in the family's style (the quirks
included: LLaVA-OneVision and Llava-1.5 put a turn's images before its text, Gemma 3 renders its
own ``<bos>``, Qwen adds a default system turn). Images are 16x16 and models have one or two
layers, so each family builds in about a second on a CPU.

Random weights would answer with arbitrary tokens; the output rows of answer-like words (letters,
numbers, directions) are scaled up, so the models give parsable answers that depend on the input.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessor,
    Gemma3Processor,
    Gemma3TextConfig,
    GotOcr2ImageProcessor,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
    Idefics3VisionConfig,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVideoProcessor,
    InternVLVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    LlavaProcessor,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Config,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
    SiglipVisionConfig,
    SmolVLMConfig,
    SmolVLMForConditionalGeneration,
    SmolVLMImageProcessor,
    SmolVLMProcessor,
    SmolVLMVideoProcessor,
    SmolVLMVisionConfig,
)

IMAGE_SIZE = 16
_CORPUS = [
    "touch the image of 'dog' (a) the first image (b) the second image (c) the third image (d) the fourth image.",
    "how many cups do you see? one two three four five six seven eight nine ten eleven twelve 0 1 2 3 4 5 6 7 8 9",
    "which part of the frame does the ball leave from? top bottom left right top left bottom right",
    "let's try more. touch the new image. (a) (b) a red ball a blue car. user assistant system model",
    "you are a helpful assistant. answer with only the letter of the correct option. answer with only a number.",
]
ANSWER_WORDS = {" a b c d": 6, " 1 2 3 4 5 6 7 8 9 10 11 12 top bottom left right": 4}
_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    # Large random weights make answers depend on the input, which the tests need.
    "initializer_range": 0.5,
}
_VISION = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}


def train_tokenizer(
    special_tokens: list[str],
    *,
    bos: str | None = None,
    eos: str,
    pad: str,
    add_bos: bool = False,
    named_tokens: dict[str, str] | None = None,
    vocab_size: int = 400,
) -> PreTrainedTokenizerFast:
    """A lower-casing byte-level BPE tokenizer trained on DevCV-like sentences.

    ``special_tokens`` come first in the vocabulary (never split, never lower-cased);
    ``named_tokens`` become tokenizer attributes (``image_token`` -> ``tokenizer.image_token`` and
    ``tokenizer.image_token_id``), which the families' processors read.
    """
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = list(dict.fromkeys(["<unk>", *special_tokens]))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    if add_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tokenizer.token_to_id(bos))]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        unk_token="<unk>",
        extra_special_tokens=named_tokens or {},
    )


def answer_token_ids(tokenizer) -> list[list[int]]:
    """The token ids of the answer-like words the tiny models favour, one list per weight group."""
    return [tokenizer(words, add_special_tokens=False).input_ids for words in ANSWER_WORDS]


def _text_config(tokenizer, config_class=LlamaConfig, **overrides):
    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    return config_class(**{**ids, **_TEXT, **overrides})


def _ids(tokenizer, *tokens: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(token) for token in tokens]


# Chat templates in each family's style (the shapes of the released checkpoints' templates, shortened).
_QWEN_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message.role != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}{%- endif -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- if message.content is string -%}{{- message.content -}}{%- else -%}"
    "{%- for block in message.content -%}"
    "{%- if block.type == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif block.type == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- else -%}{{- block.text -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
# LLaVA-OneVision: a turn's images first, then its texts each after a newline; the assistant turn
# opens with "assistant " while the generation prompt is "assistant\n" (as in the released template).
_ONEVISION_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + ' ' -}}"
    "{%- for block in message.content if block.type == 'image' -%}{{- '<image>' -}}{%- endfor -%}"
    "{%- for block in message.content if block.type == 'video' -%}{{- '<video>' -}}{%- endfor -%}"
    "{%- for block in message.content if block.type == 'text' -%}{{- '\\n' + block.text -}}{%- endfor -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
# Llava-1.5 (llava-hf): "USER: <image>\n... ASSISTANT:", images before the text.
_LLAVA_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message.role != 'system' -%}{{- message.role.upper() + ': ' -}}{%- endif -%}"
    "{%- for block in message.content if block.type == 'image' -%}{{- '<image>\\n' -}}{%- endfor -%}"
    "{%- for block in message.content if block.type == 'text' -%}{{- block.text + ' ' -}}{%- endfor -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)
# Idefics3 / SmolVLM: "User:<image>text<end_of_utterance>\nAssistant:".
_IDEFICS3_TEMPLATE = (
    "{{- '<|im_start|>' -}}"
    "{%- for message in messages -%}"
    "{{- message.role | capitalize -}}"
    "{{- ':' if message.content[0].type == 'image' else ': ' -}}"
    "{%- for block in message.content -%}"
    "{%- if block.type == 'image' -%}{{- '<image>' -}}{%- elif block.type == 'text' -%}{{- block.text -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)
# Gemma 3: renders its own <bos>; the system turn is folded into the first user turn; role "model".
_GEMMA3_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- set system = messages[0].content[0].text + '\\n\\n' if messages[0].role == 'system' else '' -%}"
    "{%- for message in messages if message.role != 'system' -%}"
    "{{- '<start_of_turn>' + ('model' if message.role == 'assistant' else message.role) + '\\n' -}}"
    "{%- if loop.first -%}{{- system -}}{%- endif -%}"
    "{%- for block in message.content -%}"
    "{%- if block.type == 'image' -%}{{- '<start_of_image>' -}}"
    "{%- elif block.type == 'text' -%}{{- block.text | trim -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<end_of_turn>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)
# InternVL (-hf checkpoints): ChatML with "<IMG_CONTEXT>\n" per image block.
_INTERNVL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- for block in message.content -%}"
    "{%- if block.type == 'image' -%}{{- '<IMG_CONTEXT>\\n' -}}"
    "{%- elif block.type == 'video' -%}{{- '<video>\\n' -}}"
    "{%- else -%}{{- block.text -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_QWEN_NAMED = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}


def _qwen_vl(processor_class, video_class, config_class, model_class, text: dict, vision: dict):
    """A Qwen-VL generation: ChatML template, vision start/end around image pads, multimodal rotary positions."""
    tokenizer = train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_QWEN_NAMED.values()],
        eos="<|im_end|>",
        pad="<|endoftext|>",
        named_tokens=_QWEN_NAMED,
    )
    pixels = IMAGE_SIZE * IMAGE_SIZE
    sizes = {"patch_size": 4, "merge_size": 2, "temporal_patch_size": 2}
    sizes["size"] = {"shortest_edge": pixels, "longest_edge": pixels}
    processor = processor_class(
        image_processor=Qwen2VLImageProcessor(**sizes),
        tokenizer=tokenizer,
        video_processor=video_class(**sizes),
        chat_template=_QWEN_TEMPLATE,
    )
    head_dim = text.get("head_dim", _TEXT["hidden_size"] // _TEXT["num_attention_heads"])
    half = head_dim // 2  # (time, height, width) sections of the rotary half-dimension
    rope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [half - 2 * (half // 3), half // 3, half // 3],
    }
    text_config = {**_text_config(tokenizer, Qwen2Config).to_dict(), **text}
    text_config["rope_parameters"] = {**rope, **text_config.get("rope_parameters", {})}
    image, video, start, end = _ids(tokenizer, *_QWEN_NAMED.values())
    config = config_class(
        text_config={key: value for key, value in text_config.items() if key != "model_type"},
        vision_config={"depth": 2, "num_heads": 2, "patch_size": 4, **vision},
        image_token_id=image,
        video_token_id=video,
        vision_start_token_id=start,
        vision_end_token_id=end,
    )
    return model_class(config), processor


def _qwen2_vl():
    vision = {"depth": 1, "embed_dim": 16, "hidden_size": 32}
    return _qwen_vl(Qwen2VLProcessor, Qwen2VLVideoProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration, {}, vision)


def _qwen2_5_vl():
    vision = {"hidden_size": 16, "intermediate_size": 32, "out_hidden_size": 32}
    vision |= {"window_size": 8, "fullatt_block_indexes": [1]}
    return _qwen_vl(
        Qwen2_5_VLProcessor, Qwen2VLVideoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, {}, vision
    )


def _qwen3_vl():
    text = {"head_dim": 8, "rope_parameters": {"mrope_interleaved": True}}
    vision = {"hidden_size": 16, "intermediate_size": 32, "out_hidden_size": 32}
    vision |= {"num_position_embeddings": 16, "deepstack_visual_indexes": [0]}
    return _qwen_vl(
        Qwen3VLProcessor, Qwen3VLVideoProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, text, vision
    )


def _llava(sliding_window: int | None = None):
    tokenizer = train_tokenizer(
        ["<pad>", "<s>", "</s>", "<image>"],
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        add_bos=True,
        named_tokens={"image_token": "<image>"},
    )
    patch = IMAGE_SIZE // 2
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        ),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
        chat_template=_LLAVA_TEMPLATE,
    )
    text = (
        _text_config(tokenizer, MistralConfig, sliding_window=sliding_window)
        if sliding_window
        else _text_config(tokenizer)
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=patch, projection_dim=16, **_VISION),
        text_config=text,
        image_token_id=tokenizer.image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_seq_length=(IMAGE_SIZE // patch) ** 2 + 1,  # patches + CLS ("full" feature selection)
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaForConditionalGeneration(config), processor


def _llava_onevision():
    named = {"image_token": "<image>", "video_token": "<video>"}
    tokenizer = train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *named.values()],
        eos="<|im_end|>",
        pad="<|endoftext|>",
        named_tokens=named,
    )
    patch = 4
    pinpoints = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE], [2 * IMAGE_SIZE, IMAGE_SIZE]]
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_grid_pinpoints=pinpoints
        ),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        num_image_tokens=(IMAGE_SIZE // patch) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        chat_template=_ONEVISION_TEMPLATE,
    )
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(image_size=IMAGE_SIZE, patch_size=patch, **_VISION),
        text_config=_text_config(tokenizer, Qwen2Config),
        image_token_index=tokenizer.image_token_id,
        video_token_index=tokenizer.video_token_id,
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def _idefics3_like(processor_class, image_processor_class, config_class, vision_class, model_class, video=None):
    grid = [f"<row_{row}_col_{col}>" for row in range(1, 7) for col in range(1, 7)]
    tokenizer = train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"]
        + grid,
        bos="<|im_start|>",
        eos="<end_of_utterance>",
        pad="<|endoftext|>",
        named_tokens={"image_token": "<image>", "end_of_utterance_token": "<end_of_utterance>"},
    )
    patch, scale = 4, 2
    image_seq_len = (IMAGE_SIZE // patch) ** 2 // scale**2
    sizes = {
        "size": {"longest_edge": IMAGE_SIZE},
        "max_image_size": {"longest_edge": IMAGE_SIZE},
        "do_image_splitting": False,
    }
    extra = {"video_processor": video(size={"longest_edge": IMAGE_SIZE})} if video else {}
    processor = processor_class(
        image_processor=image_processor_class(**sizes),
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=_IDEFICS3_TEMPLATE,
        **extra,
    )
    config = config_class(
        vision_config=vision_class(image_size=IMAGE_SIZE, patch_size=patch, **_VISION),
        text_config=_text_config(tokenizer),
        image_token_id=tokenizer.image_token_id,
        scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model_class(config), processor


def _idefics3():
    return _idefics3_like(
        Idefics3Processor,
        Idefics3ImageProcessor,
        Idefics3Config,
        Idefics3VisionConfig,
        Idefics3ForConditionalGeneration,
    )


def _smolvlm():
    return _idefics3_like(
        SmolVLMProcessor,
        SmolVLMImageProcessor,
        SmolVLMConfig,
        SmolVLMVisionConfig,
        SmolVLMForConditionalGeneration,
        video=SmolVLMVideoProcessor,
    )


def _gemma3():
    named = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    tokenizer = train_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", *named.values()],
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        add_bos=True,
        named_tokens=named,
    )
    patch, tokens_per_image = 4, 4
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        image_seq_length=tokens_per_image,
        chat_template=_GEMMA3_TEMPLATE,
    )
    text = _text_config(
        tokenizer,
        Gemma3TextConfig,
        head_dim=8,
        query_pre_attn_scalar=8,
        sliding_window=64,
        eos_token_id=_ids(tokenizer, "<eos>", "<end_of_turn>"),
    )
    boi, eoi, image = _ids(tokenizer, *named.values())
    config = Gemma3Config(
        text_config=text,
        vision_config=SiglipVisionConfig(image_size=IMAGE_SIZE, patch_size=patch, **_VISION),
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=boi,
        eoi_token_index=eoi,
        image_token_index=image,
    )
    return Gemma3ForConditionalGeneration(config), processor


def _internvl():
    named = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    tokenizer = train_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *named.values()],
        eos="<|im_end|>",
        pad="<|endoftext|>",
        named_tokens=named,
    )
    patch = 4
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, crop_to_patches=False, max_patches=1
        ),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        image_seq_length=(IMAGE_SIZE // patch) ** 2 // 4,
        chat_template=_INTERNVL_TEMPLATE,
    )
    config = InternVLConfig(
        vision_config=InternVLVisionConfig(image_size=IMAGE_SIZE, patch_size=patch, **_VISION),
        text_config=_text_config(tokenizer, Qwen2Config),
        image_token_id=tokenizer.context_image_token_id,
        image_seq_length=(IMAGE_SIZE // patch) ** 2 // 4,
        downsample_ratio=0.5,
    )
    return InternVLForConditionalGeneration(config), processor


_BUILDERS: dict[str, Callable] = {
    "qwen2_vl": _qwen2_vl,
    "qwen2_5_vl": _qwen2_5_vl,
    "qwen3_vl": _qwen3_vl,
    "llava": _llava,
    "llava_onevision": _llava_onevision,
    "idefics3": _idefics3,
    "smolvlm": _smolvlm,
    "gemma3": _gemma3,
    "internvl": _internvl,
}
TINY_FAMILIES: tuple[str, ...] = tuple(_BUILDERS)


def save_tiny_model(family: str, directory: str | Path, seed: int = 0, **options) -> Path:
    """Save a tiny random ``family`` model (one of :data:`TINY_FAMILIES`) and its processor to ``directory``.

    ``options`` go to the family's builder (``llava`` takes ``sliding_window``: a Mistral language
    model with that attention window).
    """
    if family not in _BUILDERS:
        raise ValueError(f"no tiny model of family {family!r}; available: {', '.join(TINY_FAMILIES)}")
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family](**options)
    model.eval()
    with torch.no_grad():
        for ids, scale in zip(answer_token_ids(processor.tokenizer), ANSWER_WORDS.values()):
            model.get_output_embeddings().weight[ids] *= scale
    directory = Path(directory)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
