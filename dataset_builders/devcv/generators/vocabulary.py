"""Words for the prompts: plurals, object descriptions, the optional CDI word filter and the
Picture Vocabulary distractor policy.

Picture Vocabulary distractors are other categories. With word embeddings (semantic) or a
pronunciation lexicon (phonological) the policy picks the closest words that are still clearly
different — related foils, never near-synonyms or near-homophones; without either it picks at
random. Every item records the method and the scores of the words it chose.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DISTRACTOR_METHODS = ("random", "semantic", "phonological")
DEFAULT_MAX_SIMILARITY = 0.8
"""Semantic: a candidate whose cosine similarity to the target reaches this is too close (a synonym)."""
DEFAULT_MIN_PHONOLOGICAL_DISTANCE = 0.34
"""Phonological: a candidate within this normalised phoneme edit distance of the target sounds too alike."""


def pluralize(noun: str) -> str:
    """Regular English plural of the last word: ``ball`` -> ``balls``, ``box`` -> ``boxes``,
    ``puppy`` -> ``puppies``."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def describe(color: str, category: str) -> str:
    """How an object is named in labels and phrases: ``red ball`` (just ``ball`` without a colour)."""
    return f"{color} {category}" if color else category


def with_article(phrase: str) -> str:
    """``a red ball`` / ``an orange cup``."""
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def read_word_list(path: str | Path) -> frozenset[str]:
    """A word list (the MacArthur-Bates CDI words the user holds): one word per line, ``#`` comments; lower-cased."""
    words = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip().lower()
        if word:
            words.add(word)
    if not words:
        raise ValueError(f"{path}: the word list is empty")
    return frozenset(words)


def read_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """Word vectors from ``.json`` (``{word: [floats]}``), ``.npz`` (one array per word) or ``.npy``
    (a saved ``{word: vector}`` dict; loading it unpickles, so only use files you trust)."""
    path = Path(path)
    if path.suffix == ".json":
        raw = json.loads(path.read_text(encoding="utf-8"))
    elif path.suffix == ".npz":
        with np.load(path) as archive:
            raw = {word: archive[word] for word in archive.files}
    elif path.suffix == ".npy":
        raw = np.load(path, allow_pickle=True).item()
    else:
        raise ValueError(f"{path}: word embeddings must be a .json, .npz or .npy file")
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: expected a non-empty mapping of word -> vector")
    vectors = {str(word).lower(): np.asarray(vector, dtype=np.float64).ravel() for word, vector in raw.items()}
    sizes = {vector.size for vector in vectors.values()}
    if len(sizes) != 1:
        raise ValueError(f"{path}: word vectors have different lengths {sorted(sizes)}")
    return vectors


def read_lexicon(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Pronunciations, CMUdict style: ``WORD  PH1 PH2 ...`` per line (``;;;`` comments); words lower-cased."""
    lexicon = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith(";;;"):
            continue
        word, *phonemes = line.split()
        if not phonemes:
            raise ValueError(f"{path}:{number}: {word!r} has no pronunciation")
        lexicon.setdefault(word.lower(), tuple(phonemes))
    return lexicon


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class DistractorChoice:
    words: tuple[str, ...]
    method: str
    scores: tuple[float, ...] = ()
    """Cosine similarity (semantic) or normalised phoneme edit distance (phonological) to the target."""


class NoDistractors(Exception):
    """Too few usable distractor words for a target; ``reason`` is a report code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DistractorPolicy:
    """How Picture Vocabulary picks distractor words: ``random``, or the closest clearly-different words
    by ``embeddings`` (semantic) or ``lexicon`` (phonological); give at most one of the two."""

    embeddings: dict[str, np.ndarray] | None = None
    lexicon: dict[str, tuple[str, ...]] | None = None
    max_similarity: float = DEFAULT_MAX_SIMILARITY
    min_phonological_distance: float = DEFAULT_MIN_PHONOLOGICAL_DISTANCE

    def __post_init__(self):
        if self.embeddings is not None and self.lexicon is not None:
            raise ValueError(
                "give word embeddings (semantic distractors) or a lexicon (phonological distractors), not both"
            )

    @property
    def method(self) -> str:
        if self.embeddings is not None:
            return "semantic"
        return "phonological" if self.lexicon is not None else "random"

    def choose(self, target: str, candidates: Iterable[str], k: int, rng: random.Random) -> DistractorChoice:
        """``k`` distractor words for ``target`` from ``candidates`` (raises :class:`NoDistractors`)."""
        candidates = sorted(set(candidates) - {target})
        if self.method == "random":
            if len(candidates) < k:
                raise NoDistractors("too_few_distractor_words")
            return DistractorChoice(tuple(rng.sample(candidates, k)), "random")
        if self.method == "semantic":
            eligible = [
                (word, score) for word, score in self._semantic(target, candidates) if score < self.max_similarity
            ]
            closeness = 1.0  # similarity: higher is closer
        else:
            eligible = [
                (word, score)
                for word, score in self._phonological(target, candidates)
                if score >= self.min_phonological_distance
            ]
            closeness = -1.0  # distance: lower is closer
        if len(eligible) < k:
            raise NoDistractors("too_few_distractor_words")
        # Closest first: related foils make the item about the word, not about a far-off category.
        # Shuffling before the stable sort breaks ties at random, so equally close words take turns.
        rng.shuffle(eligible)
        eligible.sort(key=lambda pair: -closeness * pair[1])
        chosen = eligible[:k]
        return DistractorChoice(
            tuple(word for word, _ in chosen), self.method, tuple(round(score, 4) for _, score in chosen)
        )

    def _semantic(self, target: str, candidates: list[str]) -> list[tuple[str, float]]:
        if target not in self.embeddings:
            raise NoDistractors("word_not_in_embeddings")
        anchor = self.embeddings[target]
        scored = []
        for word in candidates:
            if word in self.embeddings:
                vector = self.embeddings[word]
                denominator = float(np.linalg.norm(anchor) * np.linalg.norm(vector)) or 1.0
                scored.append((word, float(anchor @ vector) / denominator))
        return scored

    def _phonological(self, target: str, candidates: list[str]) -> list[tuple[str, float]]:
        if target not in self.lexicon:
            raise NoDistractors("word_not_in_lexicon")
        anchor = self.lexicon[target]
        return [
            (word, _edit_distance(anchor, self.lexicon[word]) / max(len(anchor), len(self.lexicon[word])))
            for word in candidates
            if word in self.lexicon
        ]
