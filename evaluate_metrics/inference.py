"""Batched greedy generation and continuation losses for any transformers image-text-to-text model.

Only the generic API is used (``AutoModelForImageTextToText`` / ``AutoProcessor``, the processor's
chat template, ``generate``), so BabyLLaVA-V2, Llava, Qwen-VL, LLaVA-OneVision, Idefics3/SmolVLM,
Gemma 3, InternVL and other models with a processor work alike; what a family does differently lives
in its adapter (:mod:`.families`). Batches are left-padded and every forward pass gets position ids
counted from the attention mask (or the model's own multimodal positions, which account for the
padding), so a row's result does not depend on what else is in its batch: in float32, batch size
1 and 8 give the same answers, and continuation losses agree to float rounding (the last bits
depend on the padded batch shape).

Dialogues (:class:`DialogueCache`) keep each dialogue's keys and values from round to round, so a
round encodes only what it adds to the history; models the reuse does not suit re-encode the
whole history every round.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from pathlib import Path
from threading import Thread

# Importing these registers BabyLLaVA-V2 with the Auto classes.
import babyvlm.modeling  # noqa: F401
import babyvlm.processing  # noqa: F401
import torch
from jinja2.exceptions import TemplateError
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, TextIteratorStreamer
from transformers.cache_utils import DynamicCache, DynamicLayer

from babyvlm.complete_loading import IncompleteCheckpointError, load_complete

from .answering import Conversation
from .families import adapter_for
from .harness import TRUNCATE_AT_MODEL_MAX_LENGTH, context_limit, cut_at_stop_strings

_IMAGE = {"type": "image", "text": None}
_TEXT = {"type": "text", "text": " "}


class IncompatibleModelError(ValueError):
    """The model directory cannot be evaluated (not image-text-to-text, or a processor without a chat template)."""


def load_model_and_processor(
    model_dir: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    device_map: str | dict | None = None,
    **model_kwargs,
):
    """Load ``model_dir`` (a folder or a Hub id) with the Auto classes, raising
    :class:`IncompatibleModelError` with the reason.

    ``device_map`` (``"auto"``, say) places the model with accelerate instead of moving it to
    ``device``; ``model_kwargs`` (``attn_implementation``, ``trust_remote_code``...) go to
    ``from_pretrained``. A checkpoint missing tensors of the model, or holding them in another shape, is
    refused naming them (:mod:`babyvlm.complete_loading`).
    """
    try:
        processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=model_kwargs.get("trust_remote_code"))
        if (Path(model_dir) / "adapter_config.json").is_file():
            # a LoRA adapter folder (recipes/sft.py with use_peft): its base model with the adapter merged in
            from babyvlm.training.lora import load_merged

            model = load_merged(model_dir, dtype=dtype, device_map=device_map, **model_kwargs)
        else:
            model = load_complete(
                AutoModelForImageTextToText, model_dir, dtype=dtype, device_map=device_map, **model_kwargs
            )
    except IncompleteCheckpointError as error:
        raise IncompatibleModelError(str(error)) from error
    except (OSError, ValueError, KeyError) as error:
        if not Path(model_dir).exists():
            raise FileNotFoundError(
                f"model folder {model_dir} does not exist, and it could not be loaded as a Hub id either "
                f"(which needs a connection to the Hub): {error}"
            ) from error
        raise IncompatibleModelError(
            f"{model_dir}: cannot load an image-text-to-text model and its processor ({error})"
        ) from error
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise IncompatibleModelError(f"{model_dir}: {type(processor).__name__} is not a multimodal processor")
    if getattr(processor, "chat_template", None) is None:
        raise IncompatibleModelError(f"{model_dir}: the processor has no chat template")
    if device_map is None:
        model = model.to(device)
    return model.eval(), processor


class ChatModel:
    """A model and its processor, answering batches of conversations: the local kind of
    :class:`~.answering.AnsweringModel`."""

    kind = "a local model"
    unsupported_options = {
        "api": "it is a setting of a model behind an OpenAI-compatible endpoint (--model openai:<name>)"
    }
    uses_api_system_prompts = False

    def __init__(
        self,
        model,
        processor,
        *,
        max_new_tokens: int = 16,
        max_new_tokens_per_round: int | None = None,
        reuse_dialogue_cache: bool = True,
        truncation: str = TRUNCATE_AT_MODEL_MAX_LENGTH,
        chat_template: str | None = None,
    ):
        self.model = model
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        # The limit for each dialogue round (the reference wrapper's is shorter); None: `max_new_tokens`.
        self.max_new_tokens_per_round = max_new_tokens_per_round or max_new_tokens
        # Off: every dialogue round goes through `generate` with the whole history (slower, same answers).
        self.reuse_dialogue_cache = reuse_dialogue_cache
        # As the original model code, a generation prompt longer than this keeps its first tokens (None: never cut).
        self.truncation = truncation
        self.context_limit = context_limit(processor.tokenizer, truncation)
        # A named template of the processor (BabyLLaVA-V2's `baby_plain`) instead of its default one.
        self.chat_template = chat_template
        processor.tokenizer.padding_side = "left"
        self.family = adapter_for(model.config)
        self._image_token_counts: dict[tuple[int, int], int] = {}
        parameters = inspect.signature(model.forward).parameters
        self.takes_position_ids = "position_ids" in parameters
        self._takes_logits_to_keep = "logits_to_keep" in parameters

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        *,
        max_new_tokens: int = 16,
        max_new_tokens_per_round: int | None = None,
        truncation: str = TRUNCATE_AT_MODEL_MAX_LENGTH,
        **load_kwargs,
    ) -> ChatModel:
        model, processor = load_model_and_processor(model_dir, **load_kwargs)
        limits = {"max_new_tokens": max_new_tokens, "max_new_tokens_per_round": max_new_tokens_per_round}
        return cls(model, processor, **limits, truncation=truncation)

    def describe(self) -> dict[str, str | None]:
        return {
            "model": str(self.model.name_or_path),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "truncation": self.truncation,
            "context_limit": self.context_limit,
        }

    def usage(self) -> None:
        """Nothing is paid for per request."""
        return None

    def encode(self, texts: list[str], conversations: Sequence[Conversation]) -> dict:
        """The processor's inputs for rendered prompts ``texts`` and their conversations' images, on the model's
        device (left-padded)."""
        # One image list per prompt: processors that match images to prompts (Gemma 3, SmolVLM) need it.
        images = [
            [image if image.mode == "RGB" else image.convert("RGB") for image in conversation.images]
            for conversation in conversations
        ]
        # A chat template that renders the <bos> itself (Gemma 3, Idefics3) must not get a second one.
        bos = self.processor.tokenizer.bos_token
        renders_bos = bos is not None and all(text.startswith(bos) for text in texts)
        inputs = self.processor(
            text=texts,
            images=images if any(images) else None,
            padding=True,
            add_special_tokens=not renders_bos,
            return_tensors="pt",
        )
        inputs = inputs.to(self.model.device)
        for key in ("pixel_values", "pixel_values_videos"):
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
        return inputs

    def _render(self, messages: list[dict], **kwargs) -> str:
        """The chat template's text; a system turn the template refuses goes before the first user text."""
        if self.chat_template is not None:
            kwargs["chat_template"] = self.chat_template
        try:
            return self.processor.apply_chat_template(messages, tokenize=False, **kwargs)
        except TemplateError:
            if not messages or messages[0]["role"] != "system":
                raise
        system = " ".join(block["text"] for block in messages[0]["content"] if block["type"] == "text")
        user, rest = messages[1], messages[2:]
        folded = {**user, "content": [{"type": "text", "text": system + "\n\n"}, *user["content"]]}
        return self.processor.apply_chat_template([folded, *rest], tokenize=False, **kwargs)

    def prompt(self, messages: list[dict]) -> str:
        return self._render(messages, add_generation_prompt=True)

    def estimate_tokens(self, conversation: Conversation) -> int:
        """About how many tokens the conversation's prompt takes: its text, rendered without the image
        blocks, plus what each image adds (measured once per image size)."""
        text_only = [
            {**message, "content": [block for block in message["content"] if block["type"] != "image"] or [_TEXT]}
            for message in conversation.messages
        ]
        tokens = len(self.processor.tokenizer(self.prompt(text_only), add_special_tokens=False).input_ids)
        return tokens + sum(self._image_tokens(image.size) for image in conversation.images)

    def _image_tokens(self, size: tuple[int, int]) -> int:
        if size not in self._image_token_counts:
            image = Image.new("RGB", size)
            with_image = Conversation([{"role": "user", "content": [_IMAGE, _TEXT]}], [image])
            without = Conversation([{"role": "user", "content": [_TEXT]}])
            lengths = [self.encode([self.prompt(c.messages)], [c])["input_ids"].shape[1] for c in (with_image, without)]
            self._image_token_counts[size] = lengths[0] - lengths[1]
        return self._image_token_counts[size]

    def answered_text(self, prompt: str, messages: list[dict], continuation: str) -> str:
        """``prompt`` followed by ``continuation`` as the assistant turn, as the chat template renders it.

        Templates whose assistant turn does not start with their generation prompt (LLaVA-OneVision
        opens it with "assistant " but prompts with "assistant\\n") get the continuation and what the
        template renders after it (the turn's end) appended to the generation prompt instead.
        """
        answer = {"role": "assistant", "content": [{"type": "text", "text": continuation}]}
        full = self._render(messages + [answer])
        if full.startswith(prompt):
            return full
        end = full.rfind(continuation)
        if end < 0:
            raise IncompatibleModelError(
                f"the chat template's assistant turn does not hold the continuation {continuation!r} ({full!r})"
            )
        return prompt + full[end:]

    def generate_outputs(self, inputs: dict, max_new_tokens: int | None = None, **kwargs):
        """Greedy generation; the output holds the sequences and the cache."""
        return self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            pad_token_id=self.processor.tokenizer.pad_token_id,
            return_dict_in_generate=True,
            use_cache=True,  # checkpoints saved by a Trainer say `use_cache: false`, their training setting
            **kwargs,
        )

    def decode(
        self, sequences: torch.Tensor, prompt_length: int, stop_strings: Sequence[str] = (), strip: bool = True
    ) -> list[str]:
        """The text generated after the prompt, cut before the first stop string, then stripped (unless not)."""
        new_tokens = sequences[:, prompt_length:]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        return [cut_at_stop_strings(text, stop_strings, strip) for text in texts]

    def answer(
        self, inputs: dict, max_new_tokens: int | None = None, stop_strings: Sequence[str] = (), strip: bool = True
    ) -> list[str]:
        """Greedy answers to encoded prompts (:meth:`encode`), cut before the first of ``stop_strings`` and stripped
        (unless not)."""
        output = self.generate_outputs(inputs, max_new_tokens)
        return self.decode(output.sequences, inputs["input_ids"].shape[1], stop_strings, strip)

    @torch.inference_mode()
    def generate(
        self,
        conversations: Sequence[Conversation],
        max_new_tokens: int | None = None,
        stop_strings: Sequence[str] = (),
        strip: bool = True,
    ) -> list[str]:
        """Greedy answers to the last user turn of each conversation, in one batch: the text before the first of
        ``stop_strings`` (the harness's are :data:`~.harness.STOP_STRINGS`), stripped (``strip=False``: as
        decoded, what an OpenAI-compatible endpoint answers)."""
        inputs = self.encode([self.prompt(c.messages) for c in conversations], conversations)
        return self._answer_within_context(inputs, conversations, max_new_tokens, stop_strings, strip)

    def _too_long(self, inputs: dict) -> list[bool]:
        """Per row, whether its prompt is longer than :attr:`context_limit`."""
        lengths = inputs["attention_mask"].sum(-1).tolist()
        return [self.context_limit is not None and length > self.context_limit for length in lengths]

    def _answer_within_context(
        self,
        inputs: dict,
        conversations: Sequence[Conversation],
        max_new_tokens: int | None = None,
        stop_strings: Sequence[str] = (),
        strip: bool = True,
    ) -> list[str]:
        """Answers to the encoded ``conversations``; a prompt longer than :attr:`context_limit` is answered alone
        from its first tokens (and its conversation marked ``truncated``), the others in one batch."""
        too_long = self._too_long(inputs)
        if not any(too_long):
            return self.answer(inputs, max_new_tokens, stop_strings, strip)
        answers: list[str | None] = [None] * len(conversations)
        fitting = [row for row, cut in enumerate(too_long) if not cut]
        if fitting:
            kept = [conversations[row] for row in fitting]
            batch = self.encode([self.prompt(c.messages) for c in kept], kept)
            for row, answer in zip(fitting, self.answer(batch, max_new_tokens, stop_strings, strip)):
                answers[row] = answer
        for row in (row for row, cut in enumerate(too_long) if cut):
            conversation = conversations[row]
            conversation.truncated = True
            answers[row] = self.answer(self._prompt_start(conversation), max_new_tokens, stop_strings, strip)[0]
        return answers

    def _prompt_start(self, conversation: Conversation) -> dict:
        """The inputs of the first :attr:`context_limit` tokens of one prompt, as the original model code cuts
        its input sequences (after the images' features are in place, so an image may keep only its first
        feature vectors)."""
        inputs = self.encode([self.prompt(conversation.messages)], [conversation])
        limit = self.context_limit
        image_token_id = getattr(self.model.config, "image_token_id", None)
        dropped_images = image_token_id is not None and bool((inputs["input_ids"][0, limit:] == image_token_id).any())
        cut = {key: inputs[key][:, :limit] for key in ("input_ids", "attention_mask")}
        if not dropped_images:
            return {**inputs, **cut}
        # Image features for the image tokens that stay: the model's own encoder output, cut to their number.
        if (
            self.family.own_positions
            or not self.family.splits_images(inputs, len(conversation.images))
            or not self.model._supports_mm_encoder_outputs()
        ):
            raise IncompatibleModelError(
                f"a prompt of {inputs['input_ids'].shape[1]} tokens is longer than the tokenizer's model_max_length "
                f"({limit}) and the cut falls among its images, which {self.family.name} models cannot be given in "
                "part; evaluate with truncation 'never'"
            )
        features = self.model.get_image_features(pixel_values=inputs["pixel_values"], return_dict=True)
        kept = int((cut["input_ids"] == image_token_id).sum())
        features.pooler_output = [torch.cat(list(features.pooler_output))[:kept]]
        return {**cut, "mm_encoder_outputs": {"image": features}}

    def stream(self, conversation: Conversation, max_new_tokens: int | None = None) -> Iterator[str]:
        """The greedy answer to the conversation's last user turn as it is generated: the stripped text so far.

        Gives the same answer as :meth:`generate`. The prompt is encoded before generation starts, so a bad
        conversation raises here; an error during generation is raised once the stream has ended.
        """
        inputs = self.encode([self.prompt(conversation.messages)], [conversation])
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                with torch.inference_mode():
                    self.generate_outputs(inputs, max_new_tokens, streamer=streamer)
            except BaseException as error:
                errors.append(error)
                streamer.end()

        thread = Thread(target=generate, daemon=True)
        thread.start()
        answer = ""
        for piece in streamer:
            answer += piece
            yield answer.strip()  # stripped as generate() strips its answers
        thread.join()
        if errors:
            raise errors[0]

    def start_dialogues(self) -> DialogueCache:
        """A fresh state for a batch of dialogues played round by round (see :class:`DialogueCache`)."""
        return DialogueCache(self)

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
        full_texts = [
            self.answered_text(prompt, conversation.messages, continuation)
            for prompt, conversation, continuation in zip(prompts, conversations, continuations)
        ]
        prompt_inputs = self.encode(prompts, conversations)
        inputs = self.encode(full_texts, conversations)
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
        position_ids = self.family.position_ids(inputs["attention_mask"])
        if self.takes_position_ids and position_ids is not None:
            inputs["position_ids"] = position_ids
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


class DialogueCache:
    """Answers the rounds of a batch of dialogues, keeping each dialogue's keys and values in between.

    A round's prompt is the previous round's prompt followed by the model's answer and the next user
    turn, so only those tokens and the new images are encoded: the keys and values of the previous
    prompt are reused (the answer is re-encoded as the chat template renders it, a few tokens).

    The cache has one row per dialogue. Rows are left-padded, and each round appends chunks of
    different lengths plus the generated tokens, which the next round replaces by the template's
    rendering: the attention mask hides those padding and stale slots, and the position ids, counted
    from the mask, number only the row's own tokens. Every token thus attends to exactly the tokens,
    at the positions, of its dialogue's unpadded prompt, and the answers are those of re-encoding the
    whole history (to float rounding, as for batching).

    Reuse needs a cache of plain full attention and a family adapter that can give a round the inputs
    of its new images alone: generically, models whose inputs are token ids, a mask and one pixel
    tensor per image and whose positions come from the mask (Llava and BabyLLaVA-V2, say); Qwen-VL's
    adapter also handles its image grids and multimodal positions. Other models, a row whose new
    prompt does not extend its previous one token for token, and chats made with
    ``reuse_dialogue_cache=False`` encode the whole history instead.
    """

    def __init__(self, chat: ChatModel):
        self.chat = chat
        self.enabled = chat.reuse_dialogue_cache and chat.takes_position_ids and chat.family.reuses_dialogue_cache
        self.keys: list = []  # the dialogue of each cache row
        self.cache: DynamicCache | None = None
        self.slots: torch.Tensor | None = None  # (rows, cache length): the token in each cache slot
        self.valid: torch.Tensor | None = None  # (rows, cache length): 1 where the slot is in the row's last prompt
        self.prompts: list[torch.Tensor] = []  # per row: its last prompt's tokens
        self.images: list[list[Image.Image]] = []  # per row: its last prompt's images

    @torch.inference_mode()
    def generate(self, keys: Sequence, conversations: Sequence[Conversation]) -> list[str]:
        """Greedy answers to the dialogues ``keys`` (those still running: the first round's, then a subset
        of the previous round's), whose histories are ``conversations``."""
        limit = self.chat.max_new_tokens_per_round
        if not self.enabled:
            return self.chat.generate(conversations, limit)
        prompts = [self.chat.prompt(conversation.messages) for conversation in conversations]
        inputs = self.chat.encode(prompts, conversations)
        if not self._reusable(inputs, conversations) or any(self.chat._too_long(inputs)):
            # A cut history no longer extends the previous round's prompt: encode it whole from now on.
            self.enabled, self.cache = False, None
            return self.chat._answer_within_context(inputs, conversations, limit)
        self._keep_rows(list(keys))
        tokens = [ids[mask.bool()] for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
        new_inputs = self._new_inputs(tokens, conversations, inputs)
        output = self.chat.generate_outputs(new_inputs, limit, past_key_values=self.cache)
        self._remember(output, new_inputs["attention_mask"], tokens, conversations)
        return self.chat.decode(output.sequences, new_inputs["input_ids"].shape[1])

    def _reusable(self, inputs: dict, conversations: Sequence[Conversation]) -> bool:
        # Other inputs (image sizes, tiles) would need slicing per chunk, which only the family's adapter knows.
        return self.chat.family.splits_images(inputs, sum(len(conversation.images) for conversation in conversations))

    def _keep_rows(self, keys: list) -> None:
        """Drop the cache rows of dialogues that are over."""
        if self.cache is not None and keys != self.keys:
            rows = [self.keys.index(key) for key in keys]
            self.cache.batch_select_indices(torch.tensor(rows, device=self.slots.device))
            self.slots, self.valid = self.slots[rows], self.valid[rows]
            self.prompts = [self.prompts[row] for row in rows]
            self.images = [self.images[row] for row in rows]
        self.keys = keys

    def _reused_length(self, row: int, tokens: torch.Tensor, images: list[Image.Image]) -> int:
        """How many leading tokens of the row's new prompt the cache holds: its whole previous prompt, or none."""
        if self.cache is None:
            return 0
        previous, previous_images = self.prompts[row], self.images[row]
        extends = (
            len(tokens) > len(previous)
            and torch.equal(tokens[: len(previous)], previous)
            and len(images) >= len(previous_images)
            and all(new is old for new, old in zip(images, previous_images))
        )
        return len(previous) if extends else 0

    def _new_inputs(self, tokens: list[torch.Tensor], conversations, inputs: dict) -> dict:
        """Cached slots followed by each row's new tokens (left-padded), and the new images' inputs."""
        chunks, new_images, first_image = [], [], 0
        for row, (row_tokens, conversation) in enumerate(zip(tokens, conversations)):
            reused = self._reused_length(row, row_tokens, conversation.images)
            if self.cache is not None and not reused:
                self.valid[row] = 0  # the history changed before its end: encode it all again
            chunks.append(row_tokens[reused:])
            # The previous prompt held the first images; the rest have placeholders in the new tokens.
            seen = len(self.images[row]) if reused else 0
            new_images += range(first_image + seen, first_image + len(conversation.images))
            first_image += len(conversation.images)
        width, pad = max(len(chunk) for chunk in chunks), self.chat.processor.tokenizer.pad_token_id
        device = tokens[0].device
        new_ids = torch.full((len(chunks), width), pad, device=device)
        new_mask = torch.zeros((len(chunks), width), dtype=torch.long, device=device)
        for row, chunk in enumerate(chunks):
            new_ids[row, width - len(chunk) :] = chunk
            new_mask[row, width - len(chunk) :] = 1
        if self.cache is not None:
            # Hidden slots show as padding, so whatever reads the ids (logits processors) sees each row's prompt.
            new_ids = torch.cat([self.slots.masked_fill(self.valid == 0, pad), new_ids], dim=1)
            new_mask = torch.cat([self.valid, new_mask], dim=1)
        return self.chat.family.dialogue_round_inputs(self.chat.model, inputs, new_ids, new_mask, new_images)

    def _remember(self, output, attention_mask: torch.Tensor, tokens: list[torch.Tensor], conversations) -> None:
        cache = output.past_key_values
        if not (isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)):
            self.enabled, self.cache = False, None  # sliding windows or other caches: no reuse
            return
        length = cache.get_seq_length()
        self.cache = cache
        self.slots = output.sequences[:, :length]
        # The generated tokens' slots are stale: the next prompt holds the answer as the template renders it.
        self.valid = torch.nn.functional.pad(attention_mask, (0, length - attention_mask.shape[1]))
        self.prompts = tokens
        self.images = [list(conversation.images) for conversation in conversations]
