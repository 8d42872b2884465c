"""lmms-eval model wrapper: any transformers image-text-to-text model run by babyvlm's batched engine.

``lmms-eval --model babyvlm --model_args pretrained=DIR[,max_new_tokens=16,dtype=auto,truncation=model_max_length,``
``system_prompts=False] --batch_size 8 --device cpu``

Prompts arrive as released strings with ``<image>`` placeholders (prepended, one per image and a
newline, when the context has none, as the leaderboard's reference wrapper does) and are turned
back into chat content blocks, so the model sees exactly what ``babyvlm eval`` shows it. Single-turn answers are
cut before the request's ``until`` strings (lmms-eval's ``["\\n\\n"]`` unless the task names others) and then
stripped, as the leaderboard's reference wrapper does; Memory rounds are stripped only, as there.

The model runs as the official harness runs it (:mod:`..harness`): ``dtype=auto`` is the original's float16 on
an accelerator and float32 on a CPU, and a prompt longer than the tokenizer's ``model_max_length`` keeps its
start, as the original model code cuts it (``truncation=never``: the whole prompt).

lmms-eval 0.7.3 writes into its results file (``--output_path``) the model arguments as given and no attribute
of the model, so the model adds to that file's ``config`` what it resolved them to: ``resolved_model_args``
(the dtype it runs in, the truncation and its context limit, the stop strings it cut each task's answers at)
and ``truncated_prompts`` (:func:`record_in_results`). It logs the same when it loads and when the run ends.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence

import torch
from babyvlm.evaluate_metrics.devcv.tasks import canonical_task
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.loggers.evaluation_tracker import EvaluationTracker
from lmms_eval.utils import eval_logger as logger
from tqdm.auto import tqdm

from babyvlm.chat import IMAGE_PLACEHOLDER, text_to_content

from ..answering import Conversation
from ..harness import AUTO_DTYPE, TRUNCATE_AT_MODEL_MAX_LENGTH, resolve_dtype
from ..inference import ChatModel
from ..protocol import run_dialogues, system_messages


def _as_bool(value) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


_RECORDED = "_babyvlm_records_model_settings"
_run_model: list = [lambda: None]  # a weak reference to the model of the run in progress


def record_in_results(model) -> None:
    """Have lmms-eval's results file carry ``model.resolved_settings()`` in its ``config``.

    lmms-eval 0.7.3 builds the file's ``config`` from the command line (``model_args`` as typed, ``batch_size``,
    ``device``, …) and serialises nothing a model resolves; its evaluation tracker's ``save_results_aggregated``
    writes that file on the main process. It is wrapped once to add the settings of the run's model, and only
    to the results of a run of that model's class (the ``model_backend`` lmms-eval recorded).
    """
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


def _total_over_processes(count: int, device) -> int:
    """``count`` summed over the processes of a distributed run (itself in a single process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return count
    total = torch.tensor(count, device=device)
    torch.distributed.all_reduce(total)
    return int(total.item())


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BabyVLM(lmms):
    """Batched greedy generation, log-likelihood and multi-round dialogue for lmms-eval."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        batch_size: int | str = 8,
        max_new_tokens: int | str = 16,
        device: str = "cpu",
        dtype: str = AUTO_DTYPE,
        truncation: str = TRUNCATE_AT_MODEL_MAX_LENGTH,
        system_prompts: bool | str = False,
        max_batch_size: int | None = None,  # passed by lmms-eval to every model; batches here have a fixed size
    ):
        super().__init__()
        self.chat = ChatModel.from_pretrained(
            pretrained,
            max_new_tokens=int(max_new_tokens),
            truncation=truncation,
            device=device,
            dtype=resolve_dtype(dtype, device),
        )
        self.batch_size = int(batch_size)
        self.use_system_prompt = _as_bool(system_prompts)
        self.truncated_prompts = 0
        self.stop_strings: dict[str, list[str]] = {}  # by task: the strings its answers were cut at
        self.arguments = {"pretrained": pretrained, "max_new_tokens": int(max_new_tokens), "device": device}
        self.arguments |= {"batch_size": self.batch_size, "system_prompts": self.use_system_prompt}
        settings = self.chat.describe()
        logger.info(
            f"babyvlm: {pretrained} in {settings['dtype']} (dtype={dtype}), truncation={settings['truncation']} "
            f"(context limit {settings['context_limit']})"
        )
        record_in_results(self)

    def resolved_settings(self) -> dict:
        """What lmms-eval's results file records beside the model arguments given (:func:`record_in_results`)."""
        settings = self.chat.describe()
        resolved = self.arguments | {key: settings[key] for key in ("dtype", "truncation", "context_limit")}
        resolved["stop_strings"] = dict(sorted(self.stop_strings.items()))
        return {"resolved_model_args": resolved, "truncated_prompts": self.truncated_prompts}

    def _count_truncated(self, conversations: Sequence[Conversation]) -> None:
        self.truncated_prompts += sum(conversation.truncated for conversation in conversations)

    def clean(self):
        """At the end of the run: count the prompts the model saw only the start of, over every process, and
        say how many."""
        self.truncated_prompts = _total_over_processes(self.truncated_prompts, self.chat.model.device)
        if self.truncated_prompts:
            logger.warning(
                f"babyvlm: {self.truncated_prompts} prompt(s) were longer than the tokenizer's model_max_length "
                f"({self.chat.context_limit}) and kept their start, as the original model code cuts them "
                "(truncation=never keeps them whole)"
            )
        super().clean()

    def _system(self, task_name: str) -> list[dict]:
        return system_messages(canonical_task(task_name), self.use_system_prompt)

    def _user_turn(self, text: str, images: list) -> Conversation:
        # As the leaderboard's reference wrapper: a context without placeholders gets them prepended.
        if images and IMAGE_PLACEHOLDER not in text:
            text = " ".join([IMAGE_PLACEHOLDER] * len(images)) + "\n" + text
        return Conversation([{"role": "user", "content": text_to_content(text)}], list(images))

    def _doc(self, task_name: str, split: str, doc_id: int):
        return self.task_dict[task_name][split][doc_id]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers = []
        for batch in tqdm(list(_batches(requests, self.batch_size)), desc="generate", disable=self.rank != 0):
            conversations = []
            for context, _, doc_to_visual, doc_id, task_name, split in (request.args for request in batch):
                turn = self._user_turn(context, doc_to_visual(self._doc(task_name, split, doc_id)))
                conversations.append(Conversation(self._system(task_name) + turn.messages, turn.images))
            gen_kwargs = batch[0].args[1]
            until = gen_kwargs.get("until") or ()
            stop_strings = [until] if isinstance(until, str) else list(until)
            answers += self.chat.generate(
                conversations, max_new_tokens=gen_kwargs.get("max_new_tokens"), stop_strings=stop_strings
            )
            for request in batch:
                self.stop_strings[request.args[4]] = stop_strings
            self._count_truncated(conversations)
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """``(loss, is_greedy)`` per request: lmms-eval's convention returns the mean token loss."""
        scores = []
        for batch in tqdm(list(_batches(requests, self.batch_size)), desc="loglikelihood", disable=self.rank != 0):
            conversations, continuations = [], []
            for context, continuation, doc_to_visual, doc_id, task_name, split in (request.args for request in batch):
                conversations.append(self._user_turn(context, doc_to_visual(self._doc(task_name, split, doc_id))))
                continuations.append(continuation)
            scores += self.chat.score_continuations(conversations, continuations)
        return scores

    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """Real dialogues: the task's ``doc_to_text`` gives each next user turn; the model's own answers stay
        in the history."""
        dialogues = []
        for batch in tqdm(list(_batches(requests, self.batch_size)), desc="dialogue", disable=self.rank != 0):
            args = [request.args for request in batch]
            docs = [self._doc(task_name, split, doc_id) for *_, doc_id, task_name, split in args]

            def next_turn(k: int, round_index: int, answers: list[str], args=args, docs=docs) -> Conversation | None:
                context, _, doc_to_visual, doc_to_text, _, task_name, _ = args[k]
                if round_index == 0:
                    turn = self._user_turn(context, doc_to_visual(docs[k]))
                    return Conversation(self._system(task_name) + turn.messages, turn.images)
                images, text, done, _, _ = doc_to_text(docs[k], previous_output=answers, round_idx=round_index)
                return None if done else self._user_turn(text, images)

            histories = [Conversation([]) for _ in batch]
            for *_, task_name, _ in args:
                self.stop_strings[task_name] = []  # rounds are stripped only, as the reference wrapper's
            dialogues += run_dialogues(self.chat, len(batch), next_turn, histories)
            self._count_truncated(histories)
        return dialogues
