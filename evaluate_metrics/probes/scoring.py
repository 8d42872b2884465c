"""What the likelihood probes share: the plain format, batched image-conditioned likelihoods, and the
forced-choice statistic with its exact binomial p-value.

>>> result = forced_choice("demo", [[-1.0, -2.0], [-0.5, -0.1], [-3.0, -3.0]], [0, 1, 0], chance=0.5)
>>> result.n, result.successes, result.ties, round(result.mean_gap_nats, 3), result.correct
(3, 3, 1, 0.467, [1, 1, 1])
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from scipy.stats import binomtest
from tqdm.auto import tqdm

from babyvlm.staging import write_text

from ..devcv.uncertainty import bootstrap_mean
from ..inference import ChatModel, Conversation, load_model_and_processor

PLAIN_TEMPLATE = "baby_plain"
"""BabyLLaVA-V2's stage-1 template (``<image>{text}<eos>``): the probes use it wherever the processor has it."""
TIE_TOLERANCE = 1e-6
"""Per-token log-likelihoods closer than this (nats) are a tie: a model that ignores the image gives exact ties
(up to float rounding), which are broken by a seeded coin, so it scores chance instead of 0 or 1."""
SIGNIFICANCE = 0.01


@dataclass
class ProbeResult:
    """One probe's outcome: accuracy over ``n`` forced choices against ``chance``, the one-sided exact binomial
    p-value of beating chance, the mean log-likelihood gap (nats per token) of the right option over the mean of
    the others, and the 95% interval of the accuracy (percentile bootstrap, clustered by the item a choice belongs
    to). ``correct`` holds each choice's outcome (1 right, 0 wrong) in order, ``labels`` the word or phrase each
    choice was about where the probe has one (the per-word ages of acquisition of ``babyvlm trajectory``)."""

    probe: str
    accuracy: float
    chance: float
    n: int
    successes: int
    p_value: float
    mean_gap_nats: float
    ties: int
    ci_low: float = 0.0
    ci_high: float = 0.0
    correct: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def above_chance(self) -> bool:
        return self.p_value < SIGNIFICANCE

    def to_dict(self) -> dict:
        return {**asdict(self), "above_chance": self.above_chance, "significance_level": SIGNIFICANCE}

    def line(self) -> str:
        """``name  accuracy (chance c, n N, p P, gap G nats/token)``."""
        return (
            f"{self.probe:<34}{self.accuracy:>7.3f}{self.chance:>8.3f}{self.n:>6}{self.p_value:>11.2e}"
            f"{self.mean_gap_nats:>+10.4f}{' *' if self.above_chance else ''}"
        )


HEADER = f"{'probe':<34}{'acc':>7}{'chance':>8}{'n':>6}{'p-value':>11}{'gap':>10}"


def binomial_p_value(successes: int, n: int, chance: float) -> float:
    """One-sided exact binomial p-value of ``successes`` out of ``n`` beating ``chance`` (1.0 when n is 0)."""
    return float(binomtest(successes, n, chance, alternative="greater").pvalue) if n else 1.0


def plain_chat(model: str | Path | ChatModel, *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> ChatModel:
    """A :class:`ChatModel` rendering the model's plain format: its processor's ``baby_plain`` template when it has
    one (BabyLLaVA-V2), else its default template (a user turn of images only, the text as the answer)."""
    if isinstance(model, ChatModel):
        model, processor = model.model, model.processor
    else:
        model, processor = load_model_and_processor(model, device=device, dtype=dtype)
    templates = processor.chat_template
    named = PLAIN_TEMPLATE if isinstance(templates, dict) and PLAIN_TEMPLATE in templates else None
    return ChatModel(model, processor, chat_template=named)


def image_text_log_likelihoods(
    chat: ChatModel,
    requests: Sequence[tuple[Sequence[Image.Image], str]],
    *,
    batch_size: int = 16,
    progress: bool = False,
    description: str = "scoring",
) -> list[float]:
    """Per-token log-likelihood (nats) of each request's text after its images, in the chat's format."""
    scores = []
    for start in tqdm(range(0, len(requests), batch_size), desc=description, disable=not progress, unit="batch"):
        batch = requests[start : start + batch_size]
        conversations = [
            Conversation([{"role": "user", "content": [{"type": "image", "text": None}] * len(images)}], list(images))
            for images, _ in batch
        ]
        losses = chat.score_continuations(conversations, [text for _, text in batch])
        scores += [-loss for loss, _ in losses]
    return scores


def forced_choice(
    probe: str,
    scores: Sequence[Sequence[float]],
    gold: Sequence[int],
    *,
    chance: float,
    seed: int = 0,
    units: Sequence[int] | None = None,
    labels: Sequence[str] = (),
) -> ProbeResult:
    """Each item picks its highest-scoring option (ties within :data:`TIE_TOLERANCE` broken by a coin seeded with
    ``seed``); success when it is the gold option. ``units`` names the item each choice belongs to where an item
    gives several (the interval resamples whole items); ``labels`` the word or phrase of each choice."""
    rng = random.Random(seed)
    correct, ties, gaps = [], 0, []
    for options, right in zip(scores, gold, strict=True):
        best = max(options)
        top = [k for k, score in enumerate(options) if best - score <= TIE_TOLERANCE]
        ties += len(top) > 1
        correct.append(int(rng.choice(top) == right))
        others = [score for k, score in enumerate(options) if k != right]
        gaps.append(options[right] - sum(others) / len(others))
    n, successes = len(gaps), sum(correct)
    interval = bootstrap_mean(correct, units, seed=seed) if n else None
    return ProbeResult(
        probe=probe,
        accuracy=successes / n if n else 0.0,
        chance=chance,
        n=n,
        successes=successes,
        p_value=binomial_p_value(successes, n, chance),
        mean_gap_nats=sum(gaps) / n if n else 0.0,
        ties=ties,
        ci_low=interval.low if interval else 0.0,
        ci_high=interval.high if interval else 0.0,
        correct=correct,
        labels=list(labels),
    )


def write_report(output_dir: str | Path, probe: str, report: dict) -> Path:
    """``<output_dir>/probes/<probe>.json``, written whole, then renamed into place."""
    path = Path(output_dir) / "probes" / f"{probe}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(report, indent=2, default=str) + "\n")
    return path


def write_result(output_dir: str | Path, result: ProbeResult, **context) -> Path:
    """The result and ``context`` (the model, the data, the seed) as ``<output_dir>/probes/<probe>.json``."""
    return write_report(output_dir, result.probe, {**result.to_dict(), **context})
