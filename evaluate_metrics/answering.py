"""The one interface of every model the evaluation talks to: :class:`AnsweringModel`.

Two kinds implement it: :class:`~.inference.ChatModel` (a local checkpoint, any transformers image-text-to-text
model) and :class:`~.api.APIChatModel` (a model behind an OpenAI-compatible endpoint). The runner, the item
protocol (:mod:`.protocol`: single turns, dialogues, log-likelihoods), the lmms-eval plugin and the explorer use
only what is declared here, so each works with either kind.

A kind declares the runner options it cannot honour (``unsupported_options``: the option and why);
:func:`check_options` refuses such an option with one line before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from PIL import Image


@dataclass
class Conversation:
    """Chat messages (content blocks, see ``babyvlm.chat``) and their images in block order."""

    messages: list[dict]
    images: list[Image.Image] = field(default_factory=list)
    truncated: bool = False
    """Set once the model was given only the start of the conversation's prompt (longer than its context)."""


class NotApplicableError(Exception):
    """The model cannot do what a task needs (an API model asked for log-likelihoods): the task is reported
    as not applicable, never scored 0."""


class UnsupportedOptionError(ValueError):
    """A runner option the model's kind cannot honour (refused before the model is loaded)."""


@runtime_checkable
class Dialogues(Protocol):
    """The state of a batch of dialogues played round by round (:meth:`AnsweringModel.start_dialogues`)."""

    def generate(self, keys: Sequence, conversations: Sequence[Conversation]) -> list[str]:
        """Greedy answers (stripped) to the dialogues ``keys`` (the first round's, then a subset of the previous
        round's), whose whole histories are ``conversations``; each round is limited to the model's
        ``max_new_tokens_per_round``."""
        ...


@runtime_checkable
class AnsweringModel(Protocol):
    """What the evaluation asks of a model: greedy answers, dialogues, continuation losses, and a description."""

    kind: ClassVar[str]
    """The model kind in words, as an option's refusal names it (``"a local model"``, ``"an API model"``)."""
    unsupported_options: ClassVar[Mapping[str, str]]
    """Runner options (``evaluate_devcv`` keywords; ``model_kwargs``: any ``from_pretrained`` keyword; ``api``: any
    endpoint setting) this kind cannot honour, each with the reason."""
    uses_api_system_prompts: bool
    """Whether the authors' API variant of the per-task system prompts suits it (``create_api_system_prompt``)."""
    max_new_tokens: int
    """The limit of a single-turn answer."""
    max_new_tokens_per_round: int
    """The limit of each dialogue round's answer."""

    def describe(self) -> dict[str, str | None]:
        """What a run records about the model: ``model`` (its folder, Hub id or endpoint), ``dtype``, and
        ``truncation`` and ``context_limit`` (how a prompt longer than its context is cut; ``None`` where the
        endpoint decides)."""
        ...

    def usage(self) -> dict | None:
        """What the run asked of a paid service (requests, tokens, cost), or ``None`` where nothing is paid for."""
        ...

    def prompt(self, messages: list[dict]) -> str:
        """The messages as the model sees them (its chat template's text, or the request sent)."""
        ...

    def estimate_tokens(self, conversation: Conversation) -> int:
        """About how many tokens the conversation's prompt takes (what ``max_batch_tokens`` budgets)."""
        ...

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int | None = None, stop_strings: Sequence[str] = ()
    ) -> list[str]:
        """Greedy answers to the last user turn of each conversation, cut before the first of ``stop_strings``
        (the harness's are :data:`~.harness.STOP_STRINGS`), then stripped."""
        ...

    def stream(self, conversation: Conversation, max_new_tokens: int | None = None) -> Iterator[str]:
        """The greedy answer to the conversation's last user turn as it arrives: the stripped text so far."""
        ...

    def start_dialogues(self) -> Dialogues:
        """A fresh state for a batch of dialogues played round by round."""
        ...

    def score_continuations(
        self, conversations: Sequence[Conversation], continuations: Sequence[str]
    ) -> list[tuple[float, bool]]:
        """Mean token loss of each continuation as the assistant turn answering its conversation, and whether
        greedy decoding would produce it; :class:`NotApplicableError` where the model cannot give losses."""
        ...


def check_options(kind: type[AnsweringModel], options: Mapping[str, str]) -> None:
    """Refuse, with one line, the first of ``options`` that ``kind`` cannot honour. ``options`` maps each option a
    caller set to the option it falls under in ``unsupported_options`` (``attn_implementation`` to
    ``model_kwargs``, say; most options to themselves)."""
    for option, declared in options.items():
        reason = kind.unsupported_options.get(declared)
        if reason is not None:
            raise UnsupportedOptionError(f"{option} does not apply to {kind.kind}: {reason}")
