"""Which DevCV task a released file holds: as ``--task`` says, else by its names, else by its prompts.

Releases spell tasks in many ways (dataset_builders/devcv/README.md, "The released toolbox"): the SAYCam and
Ego4D samples use ``count``, ``picture_vocabulary``, ``vdr-binary``…; the organisers' own files live in
``object_counting/``, ``memory_task/``, ``localize_task_cropped/``, ``compare_count_real/``,
``visual_delay_response/`` (``binary_dataset_test.json`` beside ``open_dataset_test.json``) and
``picture_vocabulary_v2/`` (leaderboard ``runner/config.py`` DATA_MAP, the samples' ``MANIFEST.json``); the
Ego4D originals in ``vdr/binary_test.json``; the NIH-stimulus and BabyView releases use ``who_has_more`` and
``vdr``.

1. ``--task [NAME=]TASK`` decides for the files it names (:class:`TaskOverrides`).
2. Names: a task alias (``tasks.py``) found as a run of words in the file or folder name, the
   longest run winning (``compare_count_real`` -> ``compare_real``, not ``count``); a family name
   (``vdr``, ``who_has_more``) leaves several tasks, narrowed by qualifier words (``binary``,
   ``open``, ``real``, ``naturalistic``, ``synthetic``) anywhere in the names.
3. Prompts, when the names leave no single task: each item's first user turn is matched against
   the cues of every task (:data:`PROMPT_CUES`), and the file's task is the one every item matches.
   VDR prompts tell binary from open by their options (two quoted sides, or one of eight).
4. Who Has More stays ambiguous by prompt (both variants ask "which image has more …"): a release
   whose source says which it is decides (:data:`SOURCE_DEFAULTS`), else ``--task`` must.

Anything left undecided is reported as ``unknown_task`` with what the names and prompts matched:
a file's task is never guessed silently, and every inference is recorded in the build report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from babyvlm.evaluate_metrics.devcv.tasks import TASK_FAMILIES, TASKS, VDR_OPEN_OPTIONS, DevCVTask, canonical_task

from .layouts import TaskFile
from .lwl_csv import LWL_CSV_COLUMNS
from .report import UNKNOWN_TASK, ItemSkipped

# Words in a file or folder name that pick one task of a family.
QUALIFIERS = {
    "binary": "vdr_binary",
    "open": "vdr_open",
    "real": "compare_real",
    "naturalistic": "compare_real",
    "natural": "compare_real",
    "synthetic": "compare_synthetic",
    "synth": "compare_synthetic",
}
# The NIH-stimulus release shows the toolbox's drawn pictures (the synthetic variant); BabyView
# shows frames of children's head-camera video (the naturalistic one). Used only for Who Has More
# files that neither their names nor their prompts place.
SOURCE_DEFAULTS = {"nih": "compare_synthetic", "babyview": "compare_real"}

_WHO_HAS_MORE = ("compare_real", "compare_synthetic")
_VDR = ("vdr_binary", "vdr_open")
# Cues in a (lower-cased, placeholder-free) first user turn, per task or family. Written from the
# released wordings (dataset_builders/devcv/README.md, "The released toolbox"; the samples) and their
# NIH/BabyView paraphrases: Picture Vocabulary as four images or one 2x2 grid ("(A) top left image ...
# (D) bottom right image").
PROMPT_CUES: dict[tuple[str, ...], tuple[re.Pattern, ...]] = {
    tasks: tuple(re.compile(cue) for cue in cues)
    for tasks, cues in {
        ("picture_vocabulary",): (
            r"\b(image|picture|photo|drawing) of\b",
            r"\b(top|bottom|upper|lower)[ -]?(left|right) (image|picture|photo|one)\b",
        ),
        ("localize",): (
            r"\bis it (in|at|on) the\b",
            r"\bwhere is\b",
            r"\b(top|bottom|upper|lower)[ -]?(left|right)\b.*\b(of|in) the (image|picture|photo|frame)\b",
        ),
        ("leftright",): (
            r"\bsame as\b",
            r"\blooks? (just |exactly )?like this\b",
            r"\b(facing|faces|pointing|points) the same (way|direction)\b",
        ),
        ("spatialdetails",): (
            r"\bcontains? exactly\b",
            r"\bexactly this object\b",
            r"\bsame object\b",
            r"\battention to (the )?details?\b",
        ),
        _VDR: (
            r"\bleaves?\b.*\bframe\b",
            r"\bframe\b.*\bleaves?\b",
            r"\b(exits?|goes out of|go out of|disappears? from)\b.*\b(frame|picture|screen|view)\b",
        ),
        _WHO_HAS_MORE: (r"\b(has|have|with|shows?|are there) more\b", r"\bmore \w+\?"),
        ("count",): (r"\bhow many\b",),
    }.items()
}
# Memory is the one multi-round task: a first round asking for the new (not yet seen) picture.
MEMORY_CUE = re.compile(r"\bnew\b|\b(not|never|haven'?t) (been )?seen\b")
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")
_WORD = re.compile(r"[a-z0-9]+")


def words(name: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(name.lower()))


def _aliases() -> dict[tuple[str, ...], frozenset[str]]:
    table: dict[tuple[str, ...], set[str]] = {}
    for task in TASKS.values():
        for alias in (task.name, task.harness_key, *task.source_names):
            table.setdefault(words(alias), set()).add(task.name)
    for alias, members in TASK_FAMILIES.items():
        table.setdefault(words(alias), set()).update(members)
    return {alias: frozenset(tasks) for alias, tasks in table.items()}


ALIASES = _aliases()


def _contains_run(haystack: tuple[str, ...], run: tuple[str, ...]) -> bool:
    return any(haystack[start : start + len(run)] == run for start in range(len(haystack) - len(run) + 1))


def name_candidates(name: str) -> frozenset[str]:
    """Tasks a released file or folder name can mean (empty when it names none)."""
    name_words = words(name)
    if name_words in ALIASES:
        return ALIASES[name_words]
    runs = [(len(alias), tasks) for alias, tasks in ALIASES.items() if _contains_run(name_words, alias)]
    if not runs:
        return frozenset()
    longest = max(length for length, _ in runs)
    matches = [tasks for length, tasks in runs if length == longest]
    return frozenset.intersection(*matches) or frozenset.union(*matches)


def names_candidates(names: Sequence[str]) -> frozenset[str]:
    """Tasks several names (most specific first) agree on; qualifier words narrow a family."""
    found: frozenset[str] = frozenset()
    for name in names:
        candidates = name_candidates(name)
        if candidates and not found:
            found = candidates
        elif found & candidates:
            found &= candidates
    qualified = {QUALIFIERS[word] for name in names for word in words(name) if word in QUALIFIERS}
    if len(found) > 1 and found & qualified:
        found &= qualified
    return found


def _user_texts(item) -> list[str]:
    conversations = item.get("conversations") if isinstance(item, dict) else None
    if not isinstance(conversations, list):
        return []
    return [
        " ".join(turn["value"].replace("<image>", " ").lower().split())
        for turn in conversations
        if isinstance(turn, dict) and turn.get("from") == "human" and isinstance(turn.get("value"), str)
    ]


def _vdr_variant(text: str) -> frozenset[str]:
    """Binary offers two sides, open one of eight directions."""
    offered = {option.strip() for option in _QUOTED.findall(text)} & set(VDR_OPEN_OPTIONS)
    if len(offered) == 2 or (not offered and re.search(r"\bside\b.*\bor\b.*\bside\b", text)):
        return frozenset({"vdr_binary"})
    if len(offered) > 2 or re.search(r"\bone of\b|\bwhich (part|direction|corner)\b", text):
        return frozenset({"vdr_open"})
    return frozenset(_VDR)


# Families whose prompt cue matches every member, and how the prompt then tells them apart.
_REFINED_BY_PROMPT = {_VDR: _vdr_variant}


def prompt_candidates(item) -> frozenset[str]:
    """Tasks whose prompt cues one released item's first user turn matches (empty: none)."""
    texts = _user_texts(item)
    if not texts:
        return frozenset()
    if len(texts) > 1:
        return frozenset({"memory"}) if MEMORY_CUE.search(texts[0]) else frozenset()
    matched: set[str] = set()
    for tasks, cues in PROMPT_CUES.items():
        if any(cue.search(texts[0]) for cue in cues):
            refine = _REFINED_BY_PROMPT.get(tasks)
            matched.update(refine(texts[0]) if refine else tasks)
    return frozenset(matched)


def _describe(tasks: Iterable[str]) -> str:
    return " or ".join(sorted(tasks)) or "no task"


@dataclass(frozen=True)
class Resolution:
    task: DevCVTask
    method: str
    """``override``, ``name``, ``prompt``, ``columns`` or ``source`` (see the module doc)."""
    detail: str


class TaskOverrides:
    """``--task`` values: ``TASK`` for every file, or ``NAME=TASK`` for the files whose folder,
    file name (with or without extension) or SOURCE argument is ``NAME``."""

    def __init__(self, values: Iterable[str] = ()):
        self.by_name: dict[str | None, DevCVTask] = {}
        for value in values:
            name, separator, task = value.rpartition("=")
            try:
                self.by_name[name if separator else None] = canonical_task(task)
            except KeyError as error:
                raise ValueError(f"--task {value!r}: {error.args[0]}") from None
        self.used: set[str | None] = set()

    def lookup(self, task_file: TaskFile, source: str) -> DevCVTask | None:
        keys = (task_file.path.parent.name, task_file.path.stem, task_file.path.name, source, *task_file.names)
        for key in (*keys, None):
            if key in self.by_name:
                self.used.add(key)
                return self.by_name[key]
        return None

    def check_all_used(self) -> None:
        """``ValueError`` naming an override that matched no file (a typo would otherwise do nothing)."""
        for name in self.by_name:
            if name is not None and name not in self.used:
                raise ValueError(
                    f"--task {name}={self.by_name[name].name}: no released file, folder or SOURCE is named {name!r}"
                )


def resolve_task(
    task_file: TaskFile,
    *,
    source: str,
    overrides: TaskOverrides,
    items: Sequence | None = None,
    columns: Sequence[str] | None = None,
) -> Resolution:
    """The task of one released file; ``ItemSkipped(unknown_task)`` saying what matched when undecided.

    ``items`` (a JSON file's items) feed the prompt inference; ``columns`` (a CSV header) the
    Looking-While-Listening one.
    """
    if (task := overrides.lookup(task_file, source)) is not None:
        return Resolution(task, "override", f"--task {task.name}")
    by_name = names_candidates(task_file.names)
    if len(by_name) == 1:
        return Resolution(TASKS[next(iter(by_name))], "name", f"name {task_file.source_task!r}")
    if columns is not None:
        if set(LWL_CSV_COLUMNS) <= set(columns):
            return Resolution(TASKS["looking_while_listening"], "columns", "Looking-While-Listening CSV columns")
        raise ItemSkipped(
            UNKNOWN_TASK,
            f"cannot tell the task of {task_file.source_task!r}: its name matches {_describe(by_name)} and its "
            f"columns are not the Looking-While-Listening ones ({', '.join(LWL_CSV_COLUMNS)}); pass --task",
        )
    per_item = [prompt_candidates(item) for item in items or ()]
    by_prompt = frozenset.intersection(*per_item) if per_item else frozenset()
    candidates = by_name & by_prompt if by_name else by_prompt
    if len(candidates) == 1:
        task = TASKS[next(iter(candidates))]
        return Resolution(task, "prompt", f"the prompts of all {len(per_item)} item(s) match {task.name}")
    if candidates and candidates <= set(_WHO_HAS_MORE) and task_file.source in SOURCE_DEFAULTS:
        task = TASKS[SOURCE_DEFAULTS[task_file.source]]
        return Resolution(task, "source", f"a Who Has More file from source {task_file.source!r}")
    tally = Counter(_describe(matched) for matched in per_item)
    matched = ", ".join(f"{tasks} ({count} item(s))" for tasks, count in tally.most_common(4))
    raise ItemSkipped(
        UNKNOWN_TASK,
        f"cannot tell the task of {task_file.source_task!r}: its name matches {_describe(by_name)}, its prompts "
        f"{matched or 'are absent'}; pass --task {task_file.path.parent.name}=TASK",
    )
