"""The BabyLLaVA-V2 training collator: assistant-only loss, masked image tokens, padding-free packing.

TRL's SFTTrainer refuses packing and padding-free batches for image data and leaves image tokens in the loss;
this collator does both right for chat records (`messages` + `images`, see `babyvlm.chat`):

- labels cover exactly the assistant answers of every turn (`{% generation %}` spans of the chat template),
  never the `<image>` tokens, the user turns or padding;
- `packing=True` concatenates samples into rows with `position_ids` restarting at 0 for every sample and no
  attention mask: transformers then builds a block-diagonal causal mask (SDPA/eager on CPU) or runs the
  flash-attention varlen kernel, so attention never crosses samples and no compute is spent on padding.
  Samples are packed best-fit-decreasing into rows of at most `row_length` tokens. The default, `"longest"`, sizes
  rows to the batch's longest sample, so the masked attention of SDPA/eager never costs more than the padded batch
  would (measured best on CPU and on an H100 with SDPA); `None` puts the whole batch in one row, the layout
  flash-attention varlen wants; an integer fixes the budget (a longer sample gets a row of its own);
- a sample longer than `max_length` is cut before the first image block that does not fit whole (never inside
  one; its images are dropped with it), or rejected with `truncation="error"`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from babyvlm.modeling.modeling_babyllava_v2 import IGNORE_INDEX

TRUNCATION_MODES = ("cut_before_image", "error")


@dataclass
class TokenizedSample:
    input_ids: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor | None


@dataclass
class BabyLlavaV2Collator:
    """Collate chat records into model inputs.

    Args:
        processor: a `BabyLlavaV2Processor` (any processor with a `{% generation %}` chat template works).
        chat_template: template name or Jinja string (`"baby_v1"` for phases 2-3, `"baby_plain"` for phase 1).
        max_length: token budget per sample (None: no limit).
        packing: pack samples into rows instead of right-padding a batch.
        row_length: packed row budget: `"longest"` (the batch's longest sample), a number of tokens, or None (one row).
        truncation: `"cut_before_image"` or `"error"` for samples longer than `max_length`.
        pad_to_multiple_of: round the padded length (or the packed row) up to a multiple of this.
    """

    processor: Any
    chat_template: str | None = None
    max_length: int | None = None
    packing: bool = False
    row_length: int | str | None = "longest"
    truncation: str = "cut_before_image"
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if isinstance(self.row_length, str) and self.row_length != "longest":
            raise ValueError(f"row_length must be 'longest', a number of tokens or None, got {self.row_length!r}")
        if self.truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {self.truncation!r}")

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        samples = [self.tokenize(example, index) for index, example in enumerate(examples)]
        return self.pack(samples) if self.packing else self.pad(samples)

    def tokenize(self, example: dict[str, Any], index: int = 0) -> TokenizedSample:
        """Render, tokenize and label one chat record (then truncate it to `max_length`)."""
        if "messages" not in example:
            raise KeyError(f"example {index} has no 'messages' (keys: {sorted(example)})")
        images = example.get("images") or []
        encoded = self.processor.apply_chat_template(
            example["messages"],
            chat_template=self.chat_template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
            return_tensors="pt",
            processor_kwargs={"images": images} if images else None,
        )
        input_ids = encoded["input_ids"][0]
        labels = input_ids.masked_fill(encoded["assistant_masks"][0] == 0, IGNORE_INDEX)
        labels = labels.masked_fill(input_ids == self.processor.image_token_id, IGNORE_INDEX)
        sample = TokenizedSample(input_ids, labels, encoded.get("pixel_values"))
        return self._truncate(sample, index)

    def _truncate(self, sample: TokenizedSample, index: int) -> TokenizedSample:
        if self.max_length is None or len(sample.input_ids) <= self.max_length:
            return sample
        if self.truncation == "error":
            raise ValueError(
                f"example {index} has {len(sample.input_ids)} tokens, more than max_length={self.max_length}"
            )
        image_seq_length = self.processor.image_seq_length
        is_image = sample.input_ids == self.processor.image_token_id
        cut = self.max_length
        block_starts = torch.nonzero(is_image[1:] & ~is_image[:-1]).flatten() + 1
        if is_image[0]:
            block_starts = torch.cat([torch.tensor([0]), block_starts])
        for start in block_starts.tolist():
            if start < cut < start + image_seq_length:
                cut = start  # never split an image's token block
        kept_images = int(is_image[:cut].sum()) // image_seq_length
        pixel_values = sample.pixel_values[:kept_images] if sample.pixel_values is not None and kept_images else None
        return TokenizedSample(sample.input_ids[:cut], sample.labels[:cut], pixel_values)

    def _padded_length(self, length: int) -> int:
        multiple = self.pad_to_multiple_of
        return length if not multiple else -(-length // multiple) * multiple

    def pad(self, samples: list[TokenizedSample]) -> dict[str, Any]:
        """Right-padded batch with an attention mask."""
        width = self._padded_length(max(len(s.input_ids) for s in samples))
        pad_id = self.processor.tokenizer.pad_token_id
        input_ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
        for row, sample in enumerate(samples):
            length = len(sample.input_ids)
            input_ids[row, :length], labels[row, :length], attention_mask[row, :length] = (
                sample.input_ids,
                sample.labels,
                1,
            )
        return self._with_pixels({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}, samples)

    def pack(self, samples: list[TokenizedSample]) -> dict[str, Any]:
        """Rows of whole samples; `position_ids` restart per sample so attention never crosses samples."""
        rows = self._assign_rows(samples)
        width = self._padded_length(max(sum(len(s.input_ids) for s in row) for row in rows))
        input_ids, labels, position_ids = [], [], []
        for row in rows:
            padding = width - sum(len(s.input_ids) for s in row)
            # trailing pad tokens form a block of their own (positions restart) and never enter the loss
            input_ids.append(
                torch.cat([*(s.input_ids for s in row), torch.full((padding,), self.processor.tokenizer.pad_token_id)])
            )
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
        return self._with_pixels(batch, [sample for row in rows for sample in row])

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

    @staticmethod
    def _with_pixels(batch: dict[str, Any], samples: list[TokenizedSample]) -> dict[str, Any]:
        pixels = [s.pixel_values for s in samples if s.pixel_values is not None]
        if pixels:
            batch["pixel_values"] = torch.cat(pixels)
        return batch
