"""Batched greedy generation and continuation losses for any transformers image-text-to-text model.

Only the generic API is used (``AutoModelForImageTextToText`` / ``AutoProcessor``, the processor's
chat template, ``generate``), so BabyLLaVA-V2, ``LlavaForConditionalGeneration`` and other models
with a processor work alike. Batches are left-padded and every forward pass gets position ids
counted from the attention mask, so a row's result does not depend on what else is in its batch:
in float32, batch size 1 and 8 give the same answers, and continuation losses agree to float
rounding (the last bits depend on the padded batch shape).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Importing these registers BabyLLaVA-V2 with the Auto classes.
import babyvlm.modeling  # noqa: F401
import babyvlm.processing  # noqa: F401
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor


@dataclass
class Conversation:
    """Chat messages (content blocks, see ``babyvlm.dataset_builders.chat``) and their images in block order."""

    messages: list[dict]
    images: list[Image.Image] = field(default_factory=list)


class IncompatibleModelError(ValueError):
    """The model directory cannot be evaluated (not image-text-to-text, or a processor without a chat template)."""


def load_model_and_processor(
    model_dir: str | Path, *, dtype: torch.dtype = torch.float32, device: str = "cpu", **model_kwargs
):
    """Load ``model_dir`` with the Auto classes, raising :class:`IncompatibleModelError` with the reason."""
    try:
        processor = AutoProcessor.from_pretrained(model_dir)
        model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype, **model_kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise IncompatibleModelError(
            f"{model_dir}: cannot load an image-text-to-text model and its processor ({error})"
        ) from error
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise IncompatibleModelError(f"{model_dir}: {type(processor).__name__} is not a multimodal processor")
    if getattr(processor, "chat_template", None) is None:
        raise IncompatibleModelError(f"{model_dir}: the processor has no chat template")
    return model.to(device).eval(), processor


class ChatModel:
    """A model and its processor, answering batches of conversations."""

    def __init__(self, model, processor, *, max_new_tokens: int = 16):
        self.model = model
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        processor.tokenizer.padding_side = "left"
        parameters = inspect.signature(model.forward).parameters
        self._takes_position_ids = "position_ids" in parameters
        self._takes_logits_to_keep = "logits_to_keep" in parameters

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, max_new_tokens: int = 16, **load_kwargs) -> ChatModel:
        model, processor = load_model_and_processor(model_dir, **load_kwargs)
        return cls(model, processor, max_new_tokens=max_new_tokens)

    def _encode(self, texts: list[str], conversations: Sequence[Conversation]) -> dict:
        images = [
            image if image.mode == "RGB" else image.convert("RGB")
            for conversation in conversations
            for image in conversation.images
        ]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(self.model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def _position_ids(self, attention_mask: torch.Tensor) -> torch.Tensor:
        # Left padding shifts a row's tokens; counting positions from the mask undoes that.
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)

    def prompt(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def generate(self, conversations: Sequence[Conversation], max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers (stripped text) to the last user turn of each conversation, in one batch."""
        inputs = self._encode([self.prompt(c.messages) for c in conversations], conversations)
        output = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]

    @torch.inference_mode()
    def score_continuations(
        self, conversations: Sequence[Conversation], continuations: Sequence[str]
    ) -> list[tuple[float, bool]]:
        """Mean token loss of each continuation as the assistant turn answering its conversation, and
        whether greedy decoding would produce it.

        The scored tokens are everything the chat template adds after the generation prompt (the
        text and the turn's end token), as the original harness scored LWL phrases.
        """
        prompts = [self.prompt(c.messages) for c in conversations]
        full_texts = []
        for prompt, conversation, continuation in zip(prompts, conversations, continuations):
            answered = conversation.messages + [
                {"role": "assistant", "content": [{"type": "text", "text": continuation}]}
            ]
            full = self.processor.apply_chat_template(answered, tokenize=False)
            if not full.startswith(prompt):
                raise IncompatibleModelError(
                    f"the chat template's assistant turn does not extend its generation prompt ({prompt!r} vs {full!r})"
                )
            full_texts.append(full)
        prompt_inputs = self._encode(prompts, conversations)
        inputs = self._encode(full_texts, conversations)
        prompt_ids, full_ids = prompt_inputs["input_ids"], inputs["input_ids"]
        prompt_lengths = prompt_inputs["attention_mask"].sum(-1).tolist()
        full_lengths = inputs["attention_mask"].sum(-1).tolist()
        scored = []
        for row, (prompt_length, full_length) in enumerate(zip(prompt_lengths, full_lengths)):
            prefix = full_ids[row, full_ids.shape[1] - full_length :][:prompt_length]
            if full_length <= prompt_length or not torch.equal(prefix, prompt_ids[row, -prompt_length:]):
                raise IncompatibleModelError(
                    f"continuation {continuations[row]!r}: the tokenizer merges it into the prompt's last tokens, "
                    "so its loss cannot be separated from the prompt"
                )
            scored.append(full_length - prompt_length)

        window = max(scored) + 1  # logits at position t predict token t + 1
        if self._takes_position_ids:
            inputs["position_ids"] = self._position_ids(inputs["attention_mask"])
        if self._takes_logits_to_keep:
            inputs["logits_to_keep"] = window
        logits = self.model(**inputs).logits[:, -window:].float()
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = inputs["input_ids"][:, -window + 1 :]
        token_log_probs = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        is_greedy = log_probs.argmax(-1) == targets
        # Left padding puts every continuation at the end of its row.
        return [
            (-token_log_probs[row, -n:].mean().item(), bool(is_greedy[row, -n:].all())) for row, n in enumerate(scored)
        ]
