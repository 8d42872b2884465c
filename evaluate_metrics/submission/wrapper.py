"""lmms-eval model wrapper for a BabyVLM leaderboard submission (written by ``babyvlm submit``).

Self-contained: it imports lmms-eval, transformers, torch and PIL only, and the checkpoint loads
through the Auto classes (its own remote code where it has some). It implements the interface the
organisers' DevCV-Toolbox tasks call, as the leaderboard's reference wrapper does:

- ``generate_until``: request args ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``; the
  context holds one ``<image>`` per image where it goes, or gets them prepended with a newline.
- ``generate_until_multi_round`` (Memory): args ``(context, gen_kwargs, doc_to_visual, doc_to_text,
  doc_id, task, split)``; the doc's ``conversations`` are played turn by turn with its ``image`` paths
  (relative to the working directory, the toolbox root), the model's own answers kept in the history;
  one JSON-encoded list of answers per doc.
- ``loglikelihood`` (Looking While Listening): args ``(context, continuation, doc_to_visual, doc_id,
  task, split)``; ``(mean token loss, is_greedy)`` of the continuation as the assistant's answer.

Prompts are rendered by the checkpoint's own chat template, images by its processor; decoding is
greedy; ``--batch_size`` requests (dialogues: rounds of that many dialogues) run as one left-padded batch.

As the original BabyLLaVA-V2 runs (model arguments, defaults first): ``dtype=auto`` is float16 on a GPU and
float32 on a CPU; ``truncation=model_max_length`` answers a prompt longer than the tokenizer's
``model_max_length`` from its first tokens, as the original model code cuts its input sequences (the images'
features spliced in first, so the cut may fall inside an image), ``truncation=never`` from the whole prompt.
lmms-eval 0.7.3 writes into its results file the model arguments as given and no attribute of the model, so the
model adds to that file's ``config`` what it resolved them to, ``resolved_model_args`` (the dtype it ran in, the
truncation and its context limit, the stop strings it cut each task's answers at), and ``truncated_prompts``
(:func:`record_in_results`). It logs the same when it loads and when the run ends.
"""

import json
import weakref

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.api.registry import register_model
from lmms_eval.loggers.evaluation_tracker import EvaluationTracker
from lmms_eval.utils import eval_logger as logger  # loguru's logger, as lmms-eval logs
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

REGISTERED_NAME = "babyvlm_submission"
IMAGE_PLACEHOLDER = "<image>"
TRUNCATION_MODES = ("model_max_length", "never")
NO_LIMIT = 10**9  # transformers' model_max_length of a tokenizer that names no limit is int(1e30)


_RECORDED = "_records_model_settings"
_run_model: list = [lambda: None]  # a weak reference to the model of the run in progress


def record_in_results(model) -> None:
    """Have lmms-eval's results file carry ``model.resolved_settings()`` in its ``config``: lmms-eval 0.7.3 builds
    that ``config`` from the command line only, and its evaluation tracker's ``save_results_aggregated`` writes the
    file. It is wrapped once, adding the settings only to the results of a run of this model's class."""
    _run_model[0] = weakref.ref(model)
    save = EvaluationTracker.save_results_aggregated
    if getattr(save, _RECORDED, False):
        return

    def save_results_aggregated(tracker, results, *args, **kwargs):
        run_model, config = _run_model[0](), results.get("config")
        backend = f"{type(run_model).__module__}.{type(run_model).__name__} "
        if run_model is not None and isinstance(config, dict) and str(config.get("model_backend")).startswith(backend):
            config.update(run_model.resolved_settings())
        return save(tracker, results, *args, **kwargs)

    setattr(save_results_aggregated, _RECORDED, True)
    EvaluationTracker.save_results_aggregated = save_results_aggregated


def _dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: the original's float16 on an accelerator, float32 on a CPU; otherwise the torch dtype named."""
    if name == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype {name!r} is not a torch dtype (auto, float16, bfloat16, float32)")
    return dtype


def _user_message(context: str, image_count: int) -> dict:
    """A released user turn as chat content blocks, images where its ``<image>`` placeholders stand."""
    if image_count and IMAGE_PLACEHOLDER not in context:
        context = " ".join([IMAGE_PLACEHOLDER] * image_count) + "\n" + context
    if context.count(IMAGE_PLACEHOLDER) != image_count:
        raise ValueError(
            f"{context.count(IMAGE_PLACEHOLDER)} {IMAGE_PLACEHOLDER} placeholders for {image_count} images"
        )
    content = []
    for index, piece in enumerate(context.split(IMAGE_PLACEHOLDER)):
        if index:
            content.append({"type": "image"})
        if piece:
            content.append({"type": "text", "text": piece})
    return {"role": "user", "content": content}


def _assistant_message(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _flatten(visuals) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, Image.Image):
        return [visuals]
    return [image for item in visuals for image in _flatten(item)]


@register_model(REGISTERED_NAME)
class DevCVSubmission(lmms):
    """Any image-text-to-text checkpoint with a processor and a chat template, run as the leaderboard runs it."""

    def __init__(
        self,
        pretrained: str,
        conv_template: str = "baby_v1",
        batch_size: int | str = 1,
        device: str | None = None,
        dtype: str = "auto",
        truncation: str = "model_max_length",
        trust_remote_code: bool | str = True,
        max_batch_size: int | None = None,  # passed by lmms-eval to every model; batches have a fixed size
        **kwargs,
    ) -> None:
        super().__init__()
        if kwargs:
            raise ValueError(f"unexpected model arguments: {sorted(kwargs)}")
        trust = trust_remote_code if isinstance(trust_remote_code, bool) else trust_remote_code.lower() == "true"
        from accelerate import Accelerator

        accelerator = Accelerator()
        self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
        if device is None:
            device = f"cuda:{accelerator.local_process_index}" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        if truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation must be one of {', '.join(TRUNCATION_MODES)}, got {truncation!r}")
        self.processor = AutoProcessor.from_pretrained(pretrained, trust_remote_code=trust)
        if getattr(self.processor, "chat_template", None) is None:
            raise ValueError(f"{pretrained}: the processor has no chat template (conv_template={conv_template!r})")
        # `conv_template` names the original LLaVA conversation format; the checkpoint's chat template renders it.
        self.conv_template = conv_template
        self.processor.tokenizer.padding_side = "left"
        self._model, loading = AutoModelForImageTextToText.from_pretrained(
            pretrained,
            dtype=_dtype(dtype, self._device),
            trust_remote_code=trust,
            output_loading_info=True,
            ignore_mismatched_sizes=True,
        )
        # A checkpoint lacking tensors would answer with randomly initialised ones (babyvlm.complete_loading, which
        # this self-contained file cannot import, says the same at greater length).
        broken = sorted(loading["missing_keys"]) + sorted(entry[0] for entry in loading["mismatched_keys"])
        if broken:
            raise ValueError(f"{pretrained}: tensors missing or of the wrong shape: {', '.join(broken[:5])}")
        self._model.to(self._device).eval()
        self.batch_size_per_gpu = int(batch_size)
        limit = getattr(self.processor.tokenizer, "model_max_length", None)
        cuts = truncation == "model_max_length" and isinstance(limit, int) and limit < NO_LIMIT
        self.context_limit = limit if cuts else None
        self.truncated_prompts = 0
        self.stop_strings: dict[str, list[str]] = {}  # by task: the strings its answers were cut at
        self.arguments = {"pretrained": pretrained, "conv_template": conv_template, "batch_size": int(batch_size)}
        self.arguments |= {"device": str(self._device), "dtype": str(self._model.dtype).removeprefix("torch.")}
        self.arguments |= {"truncation": truncation, "context_limit": self.context_limit, "trust_remote_code": trust}
        logger.info(
            f"{REGISTERED_NAME}: {pretrained} in {self.arguments['dtype']} (dtype={dtype}), "
            f"truncation={truncation} (context limit {self.context_limit})"
        )
        record_in_results(self)

    def resolved_settings(self) -> dict:
        """What lmms-eval's results file records beside the model arguments given (:func:`record_in_results`)."""
        resolved = self.arguments | {"stop_strings": dict(sorted(self.stop_strings.items()))}
        return {"resolved_model_args": resolved, "truncated_prompts": self.truncated_prompts}

    @property
    def model(self):
        return self._model

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self):
        return self._device

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def world_size(self) -> int:
        return self._world_size

    def _doc(self, task: str, split: str, doc_id: int) -> dict:
        return self.task_dict[task][split][doc_id]

    def _encode(self, texts: list[str], images: list):
        images = [image.convert("RGB") for image in images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def _prompt(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def clean(self):
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # every process's count
            total = torch.tensor(self.truncated_prompts, device=self.device)
            torch.distributed.all_reduce(total)
            self.truncated_prompts = int(total.item())
        if self.truncated_prompts:
            logger.warning(
                f"{REGISTERED_NAME}: {self.truncated_prompts} prompt(s) were longer than the tokenizer's "
                f"model_max_length ({self.context_limit}) and kept their start (truncation=never keeps them whole)"
            )
        super().clean()

    @torch.inference_mode()
    def _greedy(self, inputs: dict, max_new_tokens: int) -> list[str]:
        tokenizer = self.processor.tokenizer
        output = self.model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            use_cache=True,
        )
        prompt_length = inputs["input_ids"].shape[1] if "input_ids" in inputs else 0  # inputs_embeds: new tokens only
        return self.processor.batch_decode(output[:, prompt_length:], skip_special_tokens=True)

    def _prompt_start(self, inputs: dict) -> dict:
        """The inputs of the first ``context_limit`` tokens of one prompt, as the original model code cuts its input
        sequences: after the images' features are spliced in, so an image may keep only its first ones."""
        limit = self.context_limit
        image_token = getattr(self.model.config, "image_token_id", None)
        cut = {key: inputs[key][:, :limit] for key in ("input_ids", "attention_mask")}
        if image_token is None or not bool((inputs["input_ids"][0, limit:] == image_token).any()):
            return {**inputs, **cut}
        embeds = self.model.get_input_embeddings()(inputs["input_ids"])
        features = self.model.get_image_features(pixel_values=inputs["pixel_values"])
        features = getattr(features, "pooler_output", features)
        features = torch.cat(list(features)) if isinstance(features, (list, tuple)) else features.flatten(0, -2)
        embeds[inputs["input_ids"] == image_token] = features.to(embeds.dtype)
        return {"inputs_embeds": embeds[:, :limit], "attention_mask": cut["attention_mask"]}

    @torch.inference_mode()
    def _generate(self, conversations: list[tuple[list[dict], list]], max_new_tokens: int) -> list[str]:
        """Greedy answers to a batch of (messages, images in block order), as decoded (not stripped); a prompt
        longer than ``context_limit`` is answered alone from its start (:meth:`_prompt_start`)."""
        texts = [self._prompt(messages) for messages, _ in conversations]
        inputs = self._encode(texts, [image for _, images in conversations for image in images])
        lengths = inputs["attention_mask"].sum(-1).tolist()
        too_long = [self.context_limit is not None and length > self.context_limit for length in lengths]
        if not any(too_long):
            return self._greedy(inputs, max_new_tokens)
        answers = [None] * len(conversations)
        fitting = [row for row, cut in enumerate(too_long) if not cut]
        if fitting:
            batch = self._encode([texts[row] for row in fitting], [i for row in fitting for i in conversations[row][1]])
            for row, answer in zip(fitting, self._greedy(batch, max_new_tokens)):
                answers[row] = answer
        for row in (row for row, cut in enumerate(too_long) if cut):
            self.truncated_prompts += 1
            alone = self._encode([texts[row]], conversations[row][1])
            answers[row] = self._greedy(self._prompt_start(alone), max_new_tokens)[0]
        return answers

    def _batches(self, requests: list[Instance]):
        for start in range(0, len(requests), self.batch_size):
            yield requests[start : start + self.batch_size]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        # Requests of a task share their generation settings; a batch never mixes two.
        groups: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(index)
        answers = [None] * len(requests)
        for indices in groups.values():
            for batch in self._batches(indices):
                conversations = []
                for index in batch:
                    context, _, doc_to_visual, doc_id, task, split = requests[index].args
                    images = _flatten(doc_to_visual(self._doc(task, split, doc_id)))
                    conversations.append(([_user_message(context, len(images))], images))
                gen_kwargs = dict(requests[batch[0]].args[1])
                until = gen_kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                outputs = self._generate(conversations, int(gen_kwargs.get("max_new_tokens", 1024)))
                for index, output in zip(batch, outputs):
                    # As the reference wrapper: the text before each stop string, then (its scoring) stripped.
                    for stop in until:
                        output = output.split(stop)[0]
                    answers[index] = output.strip()
                    self.stop_strings[requests[index].args[4]] = until
        return answers

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        answers = []
        for batch in self._batches(requests):
            docs = []
            for request in batch:
                *_, doc_id, task, split = request.args
                docs.append(self._doc(task, split, doc_id))
                self.stop_strings[task] = []  # no stop strings in the reference wrapper's rounds
            max_new_tokens = int(batch[0].args[1].get("max_new_tokens", 128))
            rounds = [self._rounds(doc) for doc in docs]
            histories = [([], []) for _ in docs]
            responses: list[list[str]] = [[] for _ in docs]
            for round_index in range(max(len(doc_rounds) for doc_rounds in rounds)):
                active = [k for k in range(len(docs)) if round_index < len(rounds[k])]
                for k in active:
                    messages, images = rounds[k][round_index]
                    histories[k][0].extend(messages)
                    histories[k][1].extend(images)
                for k, output in zip(active, self._generate([histories[k] for k in active], max_new_tokens)):
                    answer = output.strip()  # no stop strings in the reference wrapper's rounds
                    histories[k][0].append(_assistant_message(answer))
                    responses[k].append(answer)
            answers += [json.dumps(doc_responses) for doc_responses in responses]
        return answers

    @staticmethod
    def _rounds(doc: dict) -> list[tuple[list[dict], list]]:
        """The doc's user turns grouped into the rounds answered (consecutive human turns form one), with images."""
        rounds, next_image, pending = [], 0, ([], [])
        turns = doc["conversations"]
        for index, turn in enumerate(turns):
            if turn["from"] != "human":
                continue
            count = turn["value"].count(IMAGE_PLACEHOLDER)
            paths = doc["image"][next_image : next_image + count]
            next_image += count
            pending[0].append(_user_message(turn["value"], count))
            pending[1].extend(Image.open(path).convert("RGB") for path in paths)
            if index + 1 < len(turns) and turns[index + 1]["from"] == "human":
                continue
            rounds.append(pending)
            pending = ([], [])
        return rounds

    @torch.inference_mode()
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        results = []
        for request in requests:
            context, continuation, doc_to_visual, doc_id, task, split = request.args
            if not isinstance(continuation, str):
                continuation = continuation(self._doc(task, split, doc_id))
            images = _flatten(doc_to_visual(self._doc(task, split, doc_id)))
            messages = [_user_message(context, len(images))]
            prompt = self._prompt(messages)
            full = self.processor.apply_chat_template(messages + [_assistant_message(continuation)], tokenize=False)
            if not full.startswith(prompt):
                raise ValueError("the chat template's assistant turn does not extend its generation prompt")
            prompt_length = self._encode([prompt], images)["input_ids"].shape[1]
            inputs = self._encode([full], images)
            logits = self.model(**inputs).logits[0, prompt_length - 1 : -1].float()
            targets = inputs["input_ids"][0, prompt_length:]
            log_probs = torch.log_softmax(logits, dim=-1)
            loss = -log_probs.gather(-1, targets.unsqueeze(-1)).mean().item()
            results.append((loss, bool((log_probs.argmax(-1) == targets).all())))
        return results
