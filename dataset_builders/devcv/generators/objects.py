"""Object-recognition tasks built from object crops: Picture Vocabulary, Memory and Looking While Listening.

Objects of one identity (category + colour) look alike, so items that need different-looking
objects (Memory's new images, the two Looking-While-Listening pictures) pick different identities.
"""

from __future__ import annotations

from collections import defaultdict

from babyvlm.evaluate_metrics.devcv.tasks import LETTERS

from ...annotations import ObjectBox
from . import prompts
from .corpus import Scene, identity
from .imaging import crop_object
from .items import ItemImage, ObjectViewGenerator, Skip, object_record
from .sampling import PositionCycle, interleave_by, place_gold
from .vocabulary import NoDistractors, describe, with_article

PV_OPTIONS = 4
MEMORY_LEARNED = 5
MEMORY_NEW = 10
"""15 rounds: 5 learning rounds, then each learned object tested twice against a new one."""


def _label(view) -> str:
    return describe(view[1].color, view[1].category)


def view_record(view) -> dict:
    scene, obj = view
    return {**scene.provenance(), "object": object_record(obj)}


class _CropGenerator(ObjectViewGenerator):
    """Object views grouped by identity, and their crops made once."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.by_identity: dict[tuple, list] = defaultdict(list)
        for view in self.views:
            self.by_identity[identity(view[1])].append(view)
        self._crops: dict[tuple, ItemImage] = {}

    def crop(self, view: tuple[Scene, ObjectBox]) -> ItemImage:
        """The PNG crop of a viewed object (memoised: Memory and PV reuse objects across items)."""
        scene, obj = view
        key = (scene.key, obj.instance_id)
        if key not in self._crops:
            self._crops[key] = ItemImage.png(crop_object(self.ctx.frames.image(*scene.key), obj))
        return self._crops[key]


class PictureVocabularyGenerator(_CropGenerator):
    """A word and four object crops: one of its category, three of distractor categories."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.positions = PositionCycle(PV_OPTIONS, self.rng)
        cdi = ctx.config.cdi_words
        self.by_word: dict[str, list] = defaultdict(list)
        for view in self.views:
            if cdi is None or view[1].category.lower() in cdi:
                self.by_word[view[1].category].append(view)

    def candidates(self) -> list:
        # One target word at a time, so every word is asked about as often as the corpus allows.
        return interleave_by(self.views, key=lambda view: view[1].category, rng=self.rng)

    def build(self, candidate) -> dict:
        word = candidate[1].category
        if word not in self.by_word:
            raise Skip("word_not_in_cdi_list")
        try:
            choice = self.ctx.config.distractors.choose(word, self.by_word, PV_OPTIONS - 1, self.rng)
        except NoDistractors as error:
            raise Skip(error.reason) from None
        distractors = [self.rng.choice(self.by_word[distractor]) for distractor in choice.words]
        prompt = prompts.picture_vocabulary(word, self.ctx.config.variant)
        digest = self.ctx.claim([prompt], [self.crop(view) for view in [candidate, *distractors]])
        gold = self.positions.take()
        options = place_gold(candidate, distractors, gold)
        records = [{"word": distractor, **view_record(view)} for distractor, view in zip(choice.words, distractors)]
        for record, score in zip(records, choice.scores):  # no scores for random distractors
            record["score"] = score
        provenance = {
            "word": word,
            "target": view_record(candidate),
            "distractor_method": choice.method,
            "distractors": records,
        }
        return self.ctx.row(
            [(prompt, LETTERS[gold])], [self.crop(view) for view in options], digest=digest, provenance=provenance
        )


class MemoryGenerator(_CropGenerator):
    """15 rounds of "touch the new image" over 15 different-looking objects (see the module constants)."""

    def build(self, candidate) -> dict:
        other_identities = sorted(set(self.by_identity) - {identity(candidate[1])})
        needed = MEMORY_LEARNED + MEMORY_NEW - 1
        if len(other_identities) < needed:
            raise Skip("too_few_distinct_objects")
        picked = [self.rng.choice(self.by_identity[key]) for key in self.rng.sample(other_identities, needed)]
        learned, new = [candidate, *picked[: MEMORY_LEARNED - 1]], picked[MEMORY_LEARNED - 1 :]
        # (objects shown before, the new one) per round: first the learned objects, each next to the previous one ...
        rounds = [([], learned[0])] + [([learned[k - 1]], learned[k]) for k in range(1, MEMORY_LEARNED)]
        # ... then every learned object twice, each time next to a new one.
        tested = learned * 2
        self.rng.shuffle(tested)
        rounds += [([old], fresh) for old, fresh in zip(tested, new)]
        canonical = [view for others, fresh in rounds for view in [fresh, *others]]
        digest = self.ctx.claim([_label(view) for view in canonical], [self.crop(view) for view in canonical])
        positions = PositionCycle(2, self.rng)
        turns, images, labels = [], [], []
        for index, (others, fresh) in enumerate(rounds):
            gold = positions.take() if others else 0
            shown = place_gold(fresh, others, gold)
            turns.append((prompts.memory_round(index), LETTERS[gold]))
            images += [self.crop(view) for view in shown]
            labels.append([_label(view) for view in shown])
        provenance = {"learned": [view_record(view) for view in learned], "new": [view_record(view) for view in new]}
        return self.ctx.row(turns, images, digest=digest, provenance=provenance, labels=labels)


class LookingWhileListeningGenerator(_CropGenerator):
    """Two object crops differing in category and colour, and a phrase naming each (phrase j: image j)."""

    def build(self, candidate) -> dict:
        category, color = identity(candidate[1])
        # Objects without colours (a corpus that does not annotate them) only need another category.
        contrasts = [key for key in sorted(self.by_identity) if key[0] != category and (key[1] != color or not color)]
        if not contrasts:
            raise Skip("no_contrasting_object")
        pair = [candidate, self.rng.choice(self.by_identity[self.rng.choice(contrasts)])]
        # Canonical order for de-duplication: the same two crops make the same item whichever came first.
        pair.sort(key=lambda view: self.crop(view).data)
        digest = self.ctx.claim([], [self.crop(view) for view in pair])
        self.rng.shuffle(pair)
        phrases = [with_article(_label(view)) for view in pair]
        provenance = {"images": [view_record(view) for view in pair]}
        return self.ctx.row(
            [], [self.crop(view) for view in pair], digest=digest, provenance=provenance, choices=phrases
        )
