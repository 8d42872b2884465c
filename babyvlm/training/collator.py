"""The training collator for any vision-language model: assistant-only loss, masked image tokens, packing.

TRL's SFTTrainer refuses packing and padding-free batches for image data and leaves image tokens in the loss;
this collator does both right for chat records (`messages` + `images`, see `babyvlm.chat`) with
the model's own processor and chat template:

- labels cover exactly the assistant answers of every turn. Where the template marks them with
  `{% generation %}` those spans are used; otherwise each answer is located by rendering the conversation up to
  the turn with and without it (the text the template adds for that answer, its end-of-turn marker included).
  Every token the processor inserted for an image or video (the expansion of each placeholder, found through the
  processor's text replacement offsets) is masked, so no family's image tokens ever enter the loss;
- `packing=True` concatenates samples into rows with `position_ids` restarting at 0 for every sample and no
  attention mask: transformers then builds a block-diagonal causal mask (SDPA/eager on CPU) or runs the
  flash-attention varlen kernel, so attention never crosses samples and no compute is spent on padding.
  Samples are packed best-fit-decreasing into rows of at most `row_length` tokens. The default, `"longest"`, sizes
  rows to the batch's longest sample, so the masked attention of SDPA/eager never costs more than the padded batch
  would (measured best on CPU and on an H100 with SDPA); `None` puts the whole batch in one row, the layout
  flash-attention varlen wants; an integer fixes the budget (a longer sample gets a row of its own). Families
  whose positions are not one index per token (multimodal rotary positions: Qwen2-VL, Qwen2.5-VL) or whose image
  tensors are not one entry per image are refused with the reason;
- a sample longer than `max_length` is cut before the first image block that does not fit whole (never inside
  one; its images are dropped with it), or rejected with `truncation="error"` naming the item.

With `with_report=True` every batch carries a `data_report` (samples cut, samples left without any label, samples
skipped for a missing image, by item id) that `BabyVLMSFTTrainer` removes before the forward pass, counts per epoch
and reports; a batch in which no sample has a label left raises here, naming its items.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from datasets import Image as ImageFeature
from transformers.utils.chat_template_utils import render_jinja_template

from babyvlm.modeling.modeling_babyllava_v2 import IGNORE_INDEX

logger = logging.getLogger(__name__)

TRUNCATION_MODES = ("cut_before_image", "error")
# Inputs with one entry per token: cut, padded and packed with `input_ids`.
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
_GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
# Families whose language model takes one position per token, so that packed `position_ids` restarting at 0
# separate the samples (tested: packed loss and gradients equal the padded ones).
PACKING_FAMILIES = ("babyllava_v2", "llava")
MAX_CUT_ROUNDS = 4


class NothingToLearnError(ValueError):
    """A batch (or too large a share of the data) has no assistant token left to train on."""


@dataclass
class Rendered:
    """One chat record rendered to text: the prompt, its assistant character spans and its images."""

    item: str
    prompt: str
    spans: list[tuple[int, int]]
    images: list


@dataclass
class TokenizedSample:
    item: str
    input_ids: torch.Tensor
    labels: torch.Tensor
    images: int = 0
    token_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """The other per-token inputs (`token_type_ids`, `mm_token_type_ids`) aligned with `input_ids`."""


@dataclass
class VisionChatCollator:
    """Collate chat records into model inputs for any processor with a chat template.

    Args:
        processor: the model's processor (`AutoProcessor.from_pretrained(model)`).
        chat_template: template name or Jinja string (None: the processor's default template).
        max_length: token budget per sample (None: no limit).
        packing: pack samples into rows instead of right-padding a batch.
        row_length: packed row budget: `"longest"` (the batch's longest sample), a number of tokens, or None (one row).
        truncation: `"cut_before_image"` or `"error"` for samples longer than `max_length`.
        pad_to_multiple_of: round the padded length (or the packed row) up to a multiple of this.
        model_type: the model's `config.model_type`; packing is refused for families outside `PACKING_FAMILIES`.
        strict_images: raise on an image file that cannot be read instead of skipping its sample with a warning.
        with_report: add the batch's `data_report` (for `BabyVLMSFTTrainer`, which removes it before the forward).
    """

    processor: Any
    chat_template: str | None = None
    max_length: int | None = None
    packing: bool = False
    row_length: int | str | None = "longest"
    truncation: str = "cut_before_image"
    pad_to_multiple_of: int | None = None
    model_type: str | None = None
    strict_images: bool = False
    with_report: bool = False

    def __post_init__(self):
        if isinstance(self.row_length, str) and self.row_length != "longest":
            raise ValueError(f"row_length must be 'longest', a number of tokens or None, got {self.row_length!r}")
        if self.truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {self.truncation!r}")
        if self.packing and self.model_type is not None and self.model_type not in PACKING_FAMILIES:
            raise ValueError(
                f"packing is not supported for {self.model_type!r} models: packed samples need one position index "
                f"per token restarting at each sample, which holds for {', '.join(PACKING_FAMILIES)}; models with "
                "multimodal rotary positions (Qwen2-VL, Qwen2.5-VL) or image-dependent attention masks (Gemma 3) "
                "compute their own, and the others are not tested packed. Train padded (vlm_packing: false)."
            )
        self._visual_token_ids = [
            token_id
            for token_id in (getattr(self.processor, name, None) for name in ("image_token_id", "video_token_id"))
            if isinstance(token_id, int)
        ]

    @cached_property
    def _template(self) -> str:
        return self.processor._resolve_chat_template(self.chat_template)

    @cached_property
    def _has_generation_markers(self) -> bool:
        return bool(_GENERATION_MARKER.search(self._template))

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        report = {"samples": len(examples), "cut": [], "no_labels": [], "missing_images": []}
        rendered = []
        for index, example in enumerate(examples):
            record = self.render(example, index, report["missing_images"])
            if record is not None:
                rendered.append(record)
        if not rendered:
            raise FileNotFoundError(
                "every sample of this batch lost an image: "
                + "; ".join(f"{item}: {path} ({reason})" for item, path, reason in report["missing_images"])
            )
        report["items"] = [record.item for record in rendered]
        samples, image_inputs = self.tokenize(rendered, report)
        if not any((sample.labels != IGNORE_INDEX).any() for sample in samples):
            raise NothingToLearnError(
                f"no sample of this batch has an assistant token to learn after truncation to max_length="
                f"{self.max_length} (items: {', '.join(sample.item for sample in samples)}): raise max_length or "
                "check the chat template"
            )
        batch = self.pack(samples, image_inputs) if self.packing else {**self.pad(samples), **image_inputs}
        if self.with_report:
            batch["data_report"] = report
        return batch

    # --- rendering --------------------------------------------------------------------------------------------

    def render(self, example: dict[str, Any], index: int = 0, missing_images: list | None = None) -> Rendered | None:
        """Render one chat record to its prompt and assistant spans; None when an image file cannot be read."""
        item = str(example.get("item") or example.get("id") or f"batch index {index}")
        if "messages" not in example:
            raise KeyError(f"item {item} has no 'messages' (keys: {sorted(example)})")
        try:
            images = [_decode_image(image) for image in example.get("images") or []]
        except (OSError, ValueError) as error:
            path = getattr(error, "filename", None) or "?"
            if self.strict_images:
                raise FileNotFoundError(f"item {item}: image {path} cannot be read ({error})") from error
            logger.warning("item %s skipped: image %s cannot be read (%s)", item, path, error)
            if missing_images is not None:
                missing_images.append((item, str(path), type(error).__name__))
            return None
        messages = _drop_none(example["messages"])
        prompt, spans = self._render_with_spans(messages, item)
        return Rendered(item, prompt, spans, images)

    def _render(self, messages: list[dict], add_generation_prompt: bool = False, with_spans: bool = False):
        prompts, indices = render_jinja_template(
            conversations=[messages],
            chat_template=self._template,
            return_assistant_tokens_mask=with_spans,
            add_generation_prompt=add_generation_prompt,
            **self.processor.tokenizer.special_tokens_map,
        )
        return prompts[0], (indices[0] if with_spans else None)

    def _render_with_spans(self, messages: list[dict], item: str) -> tuple[str, list[tuple[int, int]]]:
        if self._has_generation_markers:
            prompt, spans = self._render(messages, with_spans=True)
            return prompt, [tuple(span) for span in spans]
        # No markers: an answer is what its turn adds to the conversation after the generation prompt, up to its
        # end of turn. Some templates write the header of a stored turn slightly differently from the generation
        # prompt (LLaVA-OneVision: "assistant \n" vs "assistant\n"): there the answer starts at its own text.
        prompt, _ = self._render(messages)
        spans = []
        for turn, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            history, _ = self._render(messages[:turn])
            header = self._render(messages[:turn], add_generation_prompt=True)[0][len(history) :]
            through, _ = self._render(messages[: turn + 1])
            if not (through.startswith(history) and prompt.startswith(through)):
                raise ValueError(
                    f"item {item}: the chat template renders turn {turn} differently once later turns follow, so the "
                    "assistant answer cannot be located; use a template with {% generation %} markers"
                )
            added = through[len(history) :]
            start = len(header) if added.startswith(header) else _answer_start(added, header, message, item, turn)
            end = len(added.rstrip())  # the end-of-turn marker is learnt, the line break after it is layout
            if end > start:
                spans.append((len(history) + start, len(history) + end))
        return prompt, spans

    # --- tokenizing, labelling, truncating --------------------------------------------------------------------

    def _encode(self, records: list[Rendered]) -> dict[str, Any]:
        images = [record.images for record in records]
        bos = self.processor.tokenizer.bos_token
        return self.processor(
            text=[record.prompt for record in records],
            images=images if any(images) else None,
            padding=True,
            padding_side="right",
            # the template writes BOS itself where the family wants one (as `apply_chat_template` does)
            add_special_tokens=not (bos and records[0].prompt.startswith(bos)),
            return_offsets_mapping=True,
            return_text_replacement_offsets=True,
            return_tensors="pt",
        )

    def tokenize(
        self, records: list[Rendered], report: dict[str, list] | None = None
    ) -> tuple[list[TokenizedSample], dict[str, Any]]:
        """Tokenize rendered records in one processor call, truncating samples longer than `max_length`.

        Returns the samples and the batch's image inputs (`pixel_values`, grids, sizes: as the processor batches
        them, in sample order)."""
        report = report if report is not None else {"cut": [], "no_labels": []}
        encoded = self._encode(records)
        cut_items = set()
        # Some processors expand an image differently once fewer images share the sample (LLaVA-OneVision's
        # any-resolution tiles): cut again until every sample fits.
        for _ in range(MAX_CUT_ROUNDS if self.max_length is not None else 0):
            cuts = [self._cut(records[row], encoded, row) for row in range(len(records))]
            if all(cut is None for cut in cuts):
                break
            records = [cut or record for cut, record in zip(cuts, records)]
            cut_items.update(record.item for record, cut in zip(records, cuts) if cut is not None)
            encoded = self._encode(records)
        report["cut"].extend(record.item for record in records if record.item in cut_items)
        samples = [self._sample(records[row], encoded, row) for row in range(len(records))]
        report["no_labels"].extend(sample.item for sample in samples if not (sample.labels != IGNORE_INDEX).any())
        not_images = (*TOKEN_KEYS, "offset_mapping", "text_replacement_offsets")
        return samples, {key: value for key, value in encoded.items() if key not in not_images}

    def _blocks(self, encoded, row: int) -> list[tuple[int, int]]:
        """Token ranges [start, end) of each image/video expansion in `row`, in text order."""
        offsets = encoded["offset_mapping"][row].tolist()
        blocks = []
        for replacement in _replacements(encoded, row):
            start_char, end_char = replacement["new_span"]
            tokens = [i for i, (s, e) in enumerate(offsets) if s < end_char and e > start_char]
            if tokens:
                blocks.append((tokens[0], tokens[-1] + 1))
        return blocks

    def _cut(self, record: Rendered, encoded, row: int) -> Rendered | None:
        """The record shortened so that it tokenizes to at most `max_length` tokens, or None if it fits."""
        length = int(encoded["attention_mask"][row].sum())
        if length <= self.max_length:
            return None
        if self.truncation == "error":
            raise ValueError(f"item {record.item} has {length} tokens, more than max_length={self.max_length}")
        cut = self.max_length
        blocks = self._blocks(encoded, row)
        kept_images = 0
        for start, end in blocks:
            if end <= cut:
                kept_images += 1
            else:
                cut = min(cut, start)  # never split an image's token block: drop it and what follows
                break
        # back from the expanded text to the rendered prompt: remove what the expansions before `cut` added
        offsets = encoded["offset_mapping"][row].tolist()
        char = offsets[cut][0] if cut < length else len(record.prompt)
        gained = sum(
            (r["new_span"][1] - r["new_span"][0]) - (r["span"][1] - r["span"][0])
            for r in _replacements(encoded, row)[:kept_images]
        )
        prompt_char = char - gained
        spans = [(start, min(end, prompt_char)) for start, end in record.spans if start < prompt_char]
        return Rendered(record.item, record.prompt[:prompt_char], spans, record.images[:kept_images])

    def _sample(self, record: Rendered, encoded, row: int) -> TokenizedSample:
        length = int(encoded["attention_mask"][row].sum())
        if self.max_length is not None:
            length = min(length, self.max_length)  # tokenizing a cut text can merge one token less
        input_ids = encoded["input_ids"][row, :length]
        offsets = encoded["offset_mapping"][row, :length].tolist()
        replacements = _replacements(encoded, row)
        ends = [r["span"][1] for r in replacements]
        gained = [0]
        for r in replacements:
            gained.append(gained[-1] + (r["new_span"][1] - r["new_span"][0]) - (r["span"][1] - r["span"][0]))
        is_answer = torch.zeros(length, dtype=torch.bool)
        for span in record.spans:
            # shift the span past the placeholders expanded before it
            start, end = (char + gained[bisect.bisect_right(ends, char)] for char in span)
            for position, (token_start, token_end) in enumerate(offsets):
                if token_start < end and token_end > start:
                    is_answer[position] = True
        for start, end in self._blocks(encoded, row):
            is_answer[start:end] = False
        for token_id in self._visual_token_ids:
            is_answer &= input_ids != token_id
        labels = input_ids.masked_fill(~is_answer, IGNORE_INDEX)
        token_inputs = {key: encoded[key][row, :length] for key in TOKEN_KEYS[2:] if key in encoded}
        return TokenizedSample(record.item, input_ids, labels, len(record.images), token_inputs)

    # --- batching ---------------------------------------------------------------------------------------------

    def _padded_length(self, length: int) -> int:
        multiple = self.pad_to_multiple_of
        return length if not multiple else -(-length // multiple) * multiple

    def pad(self, samples: list[TokenizedSample]) -> dict[str, Any]:
        """Right-padded batch with an attention mask."""
        width = self._padded_length(max(len(s.input_ids) for s in samples))
        pad_id = self.processor.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.full((len(samples), width), pad_id, dtype=torch.long),
            "labels": torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long),
            "attention_mask": torch.zeros((len(samples), width), dtype=torch.long),
        }
        for key in samples[0].token_inputs:
            batch[key] = torch.zeros((len(samples), width), dtype=samples[0].token_inputs[key].dtype)
        for row, sample in enumerate(samples):
            length = len(sample.input_ids)
            batch["input_ids"][row, :length] = sample.input_ids
            batch["labels"][row, :length] = sample.labels
            batch["attention_mask"][row, :length] = 1
            for key, value in sample.token_inputs.items():
                batch[key][row, :length] = value
        return batch

    def pack(self, samples: list[TokenizedSample], image_inputs: dict[str, Any]) -> dict[str, Any]:
        """Rows of whole samples; `position_ids` restart per sample so attention never crosses samples."""
        rows = self._assign_rows(samples)
        width = self._padded_length(max(sum(len(s.input_ids) for s in row) for row in rows))
        pad_id = self.processor.tokenizer.pad_token_id
        input_ids, labels, position_ids = [], [], []
        for row in rows:
            padding = width - sum(len(s.input_ids) for s in row)
            # trailing pad tokens form a block of their own (positions restart) and never enter the loss
            input_ids.append(torch.cat([*(s.input_ids for s in row), torch.full((padding,), pad_id)]))
            labels.append(torch.cat([*(s.labels for s in row), torch.full((padding,), IGNORE_INDEX)]))
            position_ids.append(torch.cat([*(torch.arange(len(s.input_ids)) for s in row), torch.arange(padding)]))
        batch = {
            "input_ids": torch.stack(input_ids),
            "labels": torch.stack(labels),
            "position_ids": torch.stack(position_ids),
        }
        # With a KV cache transformers skips packed-sequence detection, so training must not build one.
        batch["use_cache"] = False
        # images follow their placeholders: row by row, sample by sample
        position = {id(sample): index for index, sample in enumerate(samples)}
        order = [position[id(sample)] for row in rows for sample in row]
        return {**batch, **_reorder_images(image_inputs, [s.images for s in samples], order)}

    def _assign_rows(self, samples: list[TokenizedSample]) -> list[list[TokenizedSample]]:
        """Best-fit decreasing into rows of `row_length` tokens (a single row when there is no budget)."""
        if self.row_length is None:
            return [samples]
        budget = max(len(s.input_ids) for s in samples) if self.row_length == "longest" else self.row_length
        rows: list[list[TokenizedSample]] = []
        free: list[int] = []
        for sample in sorted(samples, key=lambda s: len(s.input_ids), reverse=True):
            length = len(sample.input_ids)
            fitting = [index for index, space in enumerate(free) if space >= length]
            if fitting:
                best = min(fitting, key=free.__getitem__)
                rows[best].append(sample)
                free[best] -= length
            else:
                rows.append([sample])
                free.append(budget - length)
        return rows


def _reorder_images(image_inputs: dict[str, Any], images_per_sample: list[int], order: list[int]) -> dict[str, Any]:
    """The batch's image inputs in the packed sample order; each must hold one entry per image along dim 0."""
    reordered = {}
    for key, value in image_inputs.items():
        if not isinstance(value, torch.Tensor) or value.shape[0] != sum(images_per_sample):
            raise ValueError(
                f"cannot pack: the processor's {key!r} is not one entry per image "
                f"(shape {tuple(getattr(value, 'shape', ()))}, {sum(images_per_sample)} images); "
                "train padded (vlm_packing: false)"
            )
        pieces = value.split(images_per_sample)
        reordered[key] = torch.cat([pieces[index] for index in order])
    return reordered


def _replacements(encoded, row: int) -> list[dict]:
    offsets = encoded.get("text_replacement_offsets")
    return list(offsets[row]) if offsets is not None and len(offsets) > row else []


def _answer_start(added: str, header: str, message: dict, item: str, turn: int) -> int:
    """Where the answer's own text starts in the text its turn adds, past what it shares with the header."""
    shared = len(os.path.commonprefix([added, header]))
    content = message["content"]
    first_text = content if isinstance(content, str) else next((b["text"] for b in content if "text" in b), "")
    start = added.find(first_text.strip(), shared) if first_text.strip() else -1
    if start < 0:
        raise ValueError(
            f"item {item}: cannot find the text of assistant turn {turn} in what the chat template renders"
        )
    return start


def _drop_none(messages: list[dict]) -> list[dict]:
    """The stored schema has `text: None` in image blocks; templates test for keys, not for None values."""
    return [
        {
            key: [{k: v for k, v in block.items() if v is not None} for block in value]
            if isinstance(value, list)
            else value
            for key, value in message.items()
            if value is not None
        }
        for message in messages
    ]


def _decode_image(image):
    """A stored image (`{"path", "bytes"}` when the column is read undecoded) as RGB PIL; raises on a bad file."""
    if isinstance(image, dict):
        image = ImageFeature().decode_example(image)
    return image if image.mode == "RGB" else image.convert("RGB")
