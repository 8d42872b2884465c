"""The DevCV task registry: canonical names, harness keys, released file keys, how each task is asked and scored
(its protocol), answers, metrics, chance, prompts.

Single source of truth shared by the dataset builders, the item generators, the metrics, the
evaluation runner and the lmms-eval plugin; the metric card (README.md beside this file)
describes each task's rule. Each task carries the official wording of its prompts: the user turn
of its items per release variant (:class:`TaskPrompts`, what the generators write) and the authors'
system prompt for general-purpose models (what the runner and the lmms-eval plugin send when asked).
"""

from __future__ import annotations

from dataclasses import dataclass

LETTERS = ("A", "B", "C", "D")
"""Option letters in option order (a DevCV item offers at most four options)."""
DIRECTIONS = ("top", "top right", "right", "bottom right", "bottom", "bottom left", "left", "top left")
"""The eight VDR answers in compass order (clockwise from top): a direction's neighbours here are its adjacent
answers."""
VDR_OPEN_OPTIONS = ("top", "bottom", "left", "right", "top right", "top left", "bottom right", "bottom left")
"""The eight VDR answers in the order the released open-VDR prompt lists them."""
QUADRANTS = ("top left", "top right", "bottom left", "bottom right")
"""Localization options in prompt order: (A) top left ... (D) bottom right."""
PROMPT_VARIANTS = ("saycam", "ego4d")
"""Release variants of the prompt wording. The Ego4D release differs in three tasks: Picture Vocabulary puts its
images inline, Left/Right drops "Answer with a number", and Spatial Details asks for "a letter" instead of "only a
letter"."""


def check_prompt_variant(variant: str) -> str:
    """Return ``variant`` when it is a known release variant, else raise ``ValueError`` listing them."""
    if variant not in PROMPT_VARIANTS:
        raise ValueError(f"unknown prompt variant {variant!r}; choose one of {', '.join(PROMPT_VARIANTS)}")
    return variant


@dataclass(frozen=True)
class TaskPrompts:
    """The official wording of a task's user turn, as released, character for character: ``str.format`` templates
    with ``<image>`` where each image goes. Fields: ``{plural}``, ``{name}`` or ``{word}`` (the object or word asked
    about), ``{images}`` (one ``<image>`` per frame, VDR), ``{first}`` and ``{second}`` (the two sides, binary VDR)."""

    saycam: str
    """The SAYCam release's wording (the default)."""
    ego4d: str | None = None
    """The Ego4D release's wording, where it differs (``None``: as SAYCam)."""
    first_round: str | None = None
    """Memory: the first round's turn (one image); the templates above are every later round's (two images)."""

    def template(self, variant: str = "saycam", first_round: bool = False) -> str:
        """The template of ``variant`` (one of :data:`PROMPT_VARIANTS`), or of the first round of a dialogue."""
        check_prompt_variant(variant)
        if first_round and self.first_round is not None:
            return self.first_round
        return self.ego4d if variant == "ego4d" and self.ego4d is not None else self.saycam


# The authors' task-specific system prompts for general-purpose models (BabyLLaVA-V2 gets none):
# ShawnKing98/BabyLLaVA-V2 utils.py `create_qwen_system_prompt` (open models; our chat templates add
# the system header that function writes by hand) and `create_api_system_prompt` (API models). The
# text is the official behaviour, so it is kept character for character, odd spacing and the
# backslash that ends each line included; one Python string per line of the original. The two
# variants differ only in Spatial Details' example answer ("B" for open models, "A" for API models).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
"""What every other category gets (among the DevCV tasks: Looking While Listening, VDR, Subitizing)."""
_COMPARE_SYSTEM_PROMPT = (
    "You are administering a visual comparison test. \\\n"
    "In each round, you will be shown two images and asked to compare them based on object number. \\\n"
    "Respond _only_ with the letter(A/B) of the option image that has more objects without any other text, "
    'such as "A". '
)
_SPATIALDETAILS_SYSTEM_PROMPT = (
    "You are administering a spatial details recognition test. \\\n"
    "In each round, you will be shown one image with a stimulus object and another 3 images with 3 different "
    "objects. \\\n"
    "Respond _only_ with the letter(A-C) of the option that matches the object in the stimulus image without "
    'any other text, such as "{example}". '
)


GENERATE = "generate"
"""An item is asked once: the user turn(s) before its gold answer, answered by one generated answer."""
DIALOGUE = "dialogue"
"""An item is a multi-round dialogue: each round's user turn is answered, the model's own answers stay in the
history, and the item is scored from its per-round answers and the objects each round shows (Memory's rule)."""
LOGLIKELIHOOD = "loglikelihood"
"""Nothing is generated: the item's phrases are scored by their loss after each of its images (Looking While
Listening's 2x2 rule)."""
PROTOCOLS = (GENERATE, DIALOGUE, LOGLIKELIHOOD)
"""How a DevCV task is asked and scored: every module dispatches on a task's ``protocol``."""


@dataclass(frozen=True)
class DevCVTask:
    name: str
    """Canonical task name (dataset config name)."""
    harness_key: str
    """Key in the leaderboard result file and the lmms-eval task name."""
    display_name: str
    source_names: tuple[str, ...]
    """Names the released files use for this task (file keys / folder names)."""
    answer_type: str | None
    """How a generated answer is parsed: ``letter``, ``number`` or ``direction`` (``None``: nothing is generated)."""
    metrics: tuple[str, ...]
    primary_metric: str
    chance: float
    """Expected primary metric of a uniform random guesser."""
    in_overall: bool
    """Whether the primary metric enters the overall DevCV score (the 11 leaderboard tasks)."""
    has_train_split: bool = True
    prompts: TaskPrompts | None = None
    """The user turn of the task's items (``None``: Looking While Listening, scored on its phrases)."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """The authors' system prompt for open general-purpose models (``create_qwen_system_prompt``)."""
    api_system_prompt: str | None = None
    """The authors' system prompt for API models (``create_api_system_prompt``; ``None``: as ``system_prompt``)."""
    protocol: str = GENERATE
    """How an item is asked and scored: one of :data:`PROTOCOLS`."""
    clip: bool = False
    """The images are the frames of one clip in time order (VDR): the explorer shows them animated."""
    first_image_is_query: bool = False
    """The first image is the query and the others are the lettered options, one of them the query's match
    (Left/Right, Spatial Details): what the shortcut audit compares pixel by pixel."""
    accuracy_by_true_count: bool = False
    """The run reports accuracy per true count of the gold answer (the paper's Object Counting plot)."""
    toolbox_age_months: tuple[float, float] | None = None
    """The ages (months) the NIH Baby Toolbox measure that the task adapts covers, as the toolbox documents them
    (the trajectory plots shade them); ``None`` where no age range is documented."""
    per_item_accuracy: bool = True
    """Whether the primary metric is the share of items answered right, one right-or-wrong answer per item: then
    it is tested against chance by the exact binomial test and between runs by McNemar's test; otherwise (Memory's
    adjusted score, Looking While Listening's group score, composites of several answers) by bootstrap
    (``uncertainty.py``)."""

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"{self.name}: unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        if (self.answer_type is None) != (self.protocol == LOGLIKELIHOOD):
            raise ValueError(f"{self.name}: a task has an answer type exactly when its answers are generated")

    def max_new_tokens(self, per_answer: int, per_round: int) -> int:
        """The generation limit of one answer of this task: ``per_round`` in a dialogue, else ``per_answer``."""
        return per_round if self.protocol == DIALOGUE else per_answer

    def official_system_prompt(self, api: bool = False) -> str:
        """The authors' system prompt for an open model, or with ``api`` for an API model."""
        return self.api_system_prompt if api and self.api_system_prompt is not None else self.system_prompt


TASKS: dict[str, DevCVTask] = {
    task.name: task
    for task in (
        DevCVTask(
            "picture_vocabulary",
            "baby_pv",
            "Picture Vocabulary",
            ("picture_vocabulary", "pv"),
            "letter",
            ("acc",),
            "acc",
            1 / 4,
            True,
            prompts=TaskPrompts(
                saycam="<image><image><image><image>\n Touch the image of '{word}' (A) the first image "
                "(B) the second image (C) the third image (D) the fourth image.",
                ego4d="Touch the image of '{word}' (A)<image> (B)<image> (C)<image> (D)<image>",
            ),
            system_prompt=(
                "You are administering a picture vocabulary test. \\\n"
                "In each round, you will be given one label and shown 4 images with 4 different objects. \\\n"
                "Respond _only_ with the letter(A-D) of the option that matches the label without any other text, "
                'such as "A". '
            ),
            toolbox_age_months=(25, 42),
        ),
        DevCVTask(
            "looking_while_listening",
            "baby_winoground",
            "Looking While Listening",
            ("looking_while_listening", "winoground", "lwl", "baby_winoground"),
            None,
            ("group_score", "image_score", "text_score"),
            "group_score",
            1 / 6,
            True,
            has_train_split=False,
            protocol=LOGLIKELIHOOD,
            per_item_accuracy=False,
            toolbox_age_months=(6, 24),
        ),
        DevCVTask(
            "localize",
            "baby_localize",
            "Localization",
            ("localize", "localization"),
            "letter",
            ("acc",),
            "acc",
            1 / 4,
            True,
            prompts=TaskPrompts(
                "<image> Point at the {name}. Is it in the (A) top left or (B) top right or (C) bottom left or "
                "(D) bottom right of the image?"
            ),
            system_prompt=(
                "You are administering a spatial localization test. \\\n"
                "In each round, you will be given one object label with an image. \\\n"
                "Respond _only_ with the letter(A-D) of the option that matches the location of the object in the "
                'image without any other text, such as "C". '
            ),
            toolbox_age_months=(1, 42),
        ),
        DevCVTask(
            "leftright",
            "baby_leftright",
            "Left/Right",
            ("leftright", "left_right"),
            "letter",
            ("acc",),
            "acc",
            1 / 3,
            True,
            prompts=TaskPrompts(
                saycam="<image> Which of the following is the same as this? Answer with a number. "
                "(A) <image> (B) <image> (C) <image>",
                ego4d="<image> Which of the following is the same as this? (A) <image> (B) <image> (C) <image>",
            ),
            system_prompt=(
                "You are administering a left-right spatial recognition test. \\\n"
                "In each round, you will be shown one image with a stimulus object and another 3 images with 3 "
                "objects in different left-right positions. \\\n"
                "Respond _only_ with the letter(A-C) of the option that matches the left-right position of the "
                'stimulus object without any other text, such as "B". '
            ),
            first_image_is_query=True,
            toolbox_age_months=(1, 42),
        ),
        DevCVTask(
            "spatialdetails",
            "baby_spatialdetails",
            "Spatial Details",
            ("spatialdetails", "spatial_details"),
            "letter",
            ("acc",),
            "acc",
            1 / 3,
            True,
            prompts=TaskPrompts(
                saycam="<image> Which of the following contains exactly this object? (A) <image> (B) <image> "
                "(C) <image>. Pay attention to details and give only a letter A-C.",
                ego4d="<image> Which of the following contains exactly this object? (A) <image> (B) <image> "
                "(C) <image>. Pay attention to details and give a letter A-C.",
            ),
            system_prompt=_SPATIALDETAILS_SYSTEM_PROMPT.format(example="B"),
            api_system_prompt=_SPATIALDETAILS_SYSTEM_PROMPT.format(example="A"),
            first_image_is_query=True,
            toolbox_age_months=(1, 42),
        ),
        DevCVTask(
            "vdr_binary",
            "baby_vdr_binary",
            "Visual Delayed Response (binary)",
            ("vdr-binary", "vdr_binary", "binary"),
            "direction",
            ("acc_exact", "acc_adjacent"),
            "acc_exact",
            1 / 2,
            True,
            prompts=TaskPrompts(
                "{images} does the {name} leave the frame through the {first} side of the frame or the {second} "
                "side of the frame? respond ONLY with '{first}' or '{second}'."
            ),
            clip=True,
            toolbox_age_months=(22, 42),
        ),
        DevCVTask(
            "vdr_open",
            "baby_vdr_open",
            "Visual Delayed Response (open)",
            ("vdr-open", "vdr_open", "open"),
            "direction",
            ("acc_exact", "acc_adjacent"),
            "acc_exact",
            1 / 8,
            True,
            prompts=TaskPrompts(
                "{images} which part of the frame does the {name} leave from? respond ONLY with one of: 'top', "
                "'bottom', 'left', 'right', 'top right', 'top left', 'bottom right', or 'bottom left'."
            ),
            clip=True,
            toolbox_age_months=(22, 42),
        ),
        DevCVTask(
            "compare_real",
            "baby_compare_real",
            "Who Has More (naturalistic)",
            # compare_count_real: the organisers' folder (leaderboard runner/config.py DATA_MAP).
            ("compare_real", "compare_count_real"),
            "letter",
            ("acc",),
            "acc",
            1 / 2,
            True,
            prompts=TaskPrompts("Which image has more {plural}? (A) <image> (B) <image>"),
            system_prompt=_COMPARE_SYSTEM_PROMPT,
            toolbox_age_months=(25, 42),
        ),
        DevCVTask(
            "compare_synthetic",
            "baby_compare_synthetic",
            "Who Has More (synthetic)",
            ("compare_synthetic", "compare_count_synthetic"),
            "letter",
            ("acc",),
            "acc",
            1 / 2,
            True,
            prompts=TaskPrompts("Which image has more {plural}? Answer (A) <image> (B) <image>"),
            system_prompt=_COMPARE_SYSTEM_PROMPT,
            toolbox_age_months=(25, 42),
        ),
        DevCVTask(
            "count",
            "baby_count",
            "Object Counting",
            ("count", "counting"),
            "number",
            ("acc",),
            "acc",
            1 / 12,
            True,
            prompts=TaskPrompts("<image> How many {plural} do you see?"),
            system_prompt=(
                "You are administering a counting test.  \\\n"
                "Count the objects in the image. Reply _only_ with the number of objects in the image, such as '4'. "
            ),
            accuracy_by_true_count=True,
            toolbox_age_months=(25, 42),
        ),
        # Both test rounds of a learned object right by chance: (1/2)^2.
        DevCVTask(
            "memory",
            "baby_memory",
            "Memory",
            ("memory",),
            "letter",
            ("acc_learning", "acc_testing_raw", "acc_testing_adjusted"),
            "acc_testing_adjusted",
            1 / 4,
            True,
            per_item_accuracy=False,
            prompts=TaskPrompts(
                "Let's try more. Touch the new image. (A) <image> (B) <image>",
                first_round="Touch the new image. (A) <image>",
            ),
            system_prompt=(
                "You are administering a  memory test.  \\\n"
                "First you will be shown 1 image and then each round you will be shown 2 images, one of which is new "
                "which you have not seen before, the other is a repeat one from earlier rounds. \\\n"
                "Keep track of every image you have seen so far. \\\n"
                'When the user says "touch the new image" respond _only_ with the letter of option that contains '
                'the novel image without any other text, such as "A". '
            ),
            protocol=DIALOGUE,
            toolbox_age_months=(22, 42),
        ),
        DevCVTask(
            "subitize",
            "baby_subitize",
            "Subitizing",
            ("subitize", "subitizing"),
            "number",
            ("acc",),
            "acc",
            1 / 4,
            False,
            has_train_split=False,
            prompts=TaskPrompts("<image> How many of {name} do you see?"),
            toolbox_age_months=(25, 42),
        ),
    )
}

# Released names that stand for more than one task: the file name, the prompts or ``--task`` tell
# which (see ``recognise.py``). The organisers keep both VDR files in ``visual_delay_response/``
# (leaderboard runner/config.py DATA_MAP), the Ego4D release in ``vdr/`` (samples' MANIFEST.json); the
# NIH-stimulus and BabyView releases name folders ``vdr`` and ``who_has_more`` (dataset_builders/devcv/README.md,
# "The released toolbox").
TASK_FAMILIES: dict[str, tuple[str, ...]] = {
    "vdr": ("vdr_binary", "vdr_open"),
    "visual_delay_response": ("vdr_binary", "vdr_open"),
    "visual_delayed_response": ("vdr_binary", "vdr_open"),
    "who_has_more": ("compare_real", "compare_synthetic"),
    "whohasmore": ("compare_real", "compare_synthetic"),
    "compare": ("compare_real", "compare_synthetic"),
}

_BY_SOURCE_NAME = {
    alias: task for task in TASKS.values() for alias in (task.name, task.harness_key, *task.source_names)
}


def canonical_task(name: str) -> DevCVTask:
    """Resolve a canonical name, harness key or released file key; ``KeyError`` lists the valid names."""
    try:
        return _BY_SOURCE_NAME[name.lower()]
    except KeyError:
        raise KeyError(f"unknown DevCV task {name!r}; known tasks: {', '.join(TASKS)}") from None
