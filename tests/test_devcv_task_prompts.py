"""The DevCV task table holds the official prompt wording: the generators' prompt functions and the evaluation
protocol's system prompts are the table's strings, and the table's templates agree with the table's option lists.
(That the wording matches the released items character for character: tests/test_generators.py.)"""

import string

import pytest
from babyvlm.dataset_builders.devcv.generators import prompts
from babyvlm.evaluate_metrics.devcv.tasks import (
    LETTERS,
    PROMPT_VARIANTS,
    QUADRANTS,
    TASKS,
    VDR_OPEN_OPTIONS,
    TaskPrompts,
    canonical_task,
)
from babyvlm.evaluate_metrics.protocol import system_prompt

from babyvlm.chat import IMAGE_PLACEHOLDER

TEMPLATE_FIELDS = {"plural", "name", "word", "images", "first", "second"}
ORDINALS = ("first", "second", "third", "fourth")  # how the SAYCam Picture Vocabulary prompt names its options


def fields(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def templates(task) -> list[str]:
    return [task.prompts.template(variant, first) for variant in PROMPT_VARIANTS for first in (False, True)]


def test_every_generated_task_has_its_wording_in_the_table_and_only_lwl_has_none():
    assert [name for name, task in TASKS.items() if task.prompts is None] == ["looking_while_listening"]
    for task in TASKS.values():
        for template in templates(task) if task.prompts else ():
            assert fields(template) <= TEMPLATE_FIELDS, (task.name, template)
            assert IMAGE_PLACEHOLDER in template or "{images}" in template, (task.name, template)


@pytest.mark.parametrize("variant", PROMPT_VARIANTS)
def test_the_generators_prompt_functions_are_the_tables_templates_filled_in(variant):
    def table(task, **values):
        return TASKS[task].prompts.template(variant).format(**values)

    assert prompts.count("cups") == table("count", plural="cups")
    assert prompts.subitize("cup") == table("subitize", name="cup")
    assert prompts.picture_vocabulary("dog", variant) == table("picture_vocabulary", word="dog")
    assert prompts.localize("ball") == table("localize", name="ball")
    assert prompts.leftright(variant) == table("leftright")
    assert prompts.spatialdetails(variant) == table("spatialdetails")
    for frames in (1, 3):
        images = IMAGE_PLACEHOLDER * frames
        assert prompts.vdr_binary(frames, "cat", "left", "top") == table(
            "vdr_binary", images=images, name="cat", first="left", second="top"
        )
        assert prompts.vdr_open(frames, "cat") == table("vdr_open", images=images, name="cat")
        assert prompts.vdr_open(frames, "cat").startswith(images + " which")
    assert prompts.memory_round(0) == TASKS["memory"].prompts.first_round
    assert prompts.memory_round(1) == prompts.memory_round(7) == table("memory")
    assert prompts.compare_real("cars") == table("compare_real", plural="cars")
    assert prompts.compare_synthetic("cars") == table("compare_synthetic", plural="cars")


def test_the_ego4d_release_differs_in_three_tasks():
    differing = {name for name, task in TASKS.items() if task.prompts and task.prompts.ego4d is not None}
    assert differing == {"picture_vocabulary", "leftright", "spatialdetails"}
    assert (
        prompts.picture_vocabulary("dog", "ego4d")
        == "Touch the image of 'dog' (A)<image> (B)<image> (C)<image> (D)<image>"
    )


def test_templates_list_the_options_of_the_table_in_their_order():
    options = " or ".join(f"({letter}) {quadrant}" for letter, quadrant in zip(LETTERS, QUADRANTS))
    assert f"Is it in the {options} of the image?" in TASKS["localize"].prompts.template()
    quoted = [f"'{direction}'" for direction in VDR_OPEN_OPTIONS]
    assert f"one of: {', '.join(quoted[:-1])}, or {quoted[-1]}." in TASKS["vdr_open"].prompts.template()
    ordinals = " ".join(f"({letter}) the {ordinal} image" for letter, ordinal in zip(LETTERS, ORDINALS))
    assert ordinals in TASKS["picture_vocabulary"].prompts.template("saycam")


@pytest.mark.parametrize(
    "task, images",
    [
        ("picture_vocabulary", 4),
        ("localize", 1),
        ("leftright", 4),
        ("spatialdetails", 4),
        ("compare_real", 2),
        ("compare_synthetic", 2),
        ("count", 1),
        ("subitize", 1),
    ],
)
def test_each_template_shows_as_many_images_as_the_task_has(task, images):
    for variant in PROMPT_VARIANTS:
        assert TASKS[task].prompts.template(variant).count(IMAGE_PLACEHOLDER) == images, (task, variant)


def test_the_protocols_system_prompts_are_the_tables():
    for name, task in TASKS.items():
        for api in (False, True):
            assert system_prompt(name, api) == system_prompt(task.harness_key, api) == task.official_system_prompt(api)
    assert canonical_task("spatialdetails").official_system_prompt(api=True).endswith('such as "A". ')


def test_an_unknown_variant_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="choose one of saycam, ego4d"):
        TaskPrompts("x").template("babyview")
    with pytest.raises(ValueError, match="unknown prompt variant 'babyview'"):
        prompts.picture_vocabulary("dog", "babyview")
