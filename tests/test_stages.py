"""One stage registry (`babyvlm.training.stages`): the recipe YAMLs and the demo use its names."""

from pathlib import Path

import pytest
import yaml

from babyvlm.training.stages import STAGES, get_stage, trained_parts

REPO = Path(__file__).resolve().parents[1]
STAGE_YAMLS = sorted((REPO / "recipes" / "babyllava_v2").rglob("stage*_*.yaml"))


def test_every_stage_has_a_distinct_label():
    assert sorted(stage.label for stage in STAGES.values()) == [
        "stage0_lm",
        "stage0_vision",
        "stage1_align",
        "stage2_pretrain",
        "stage3_instruct",
    ]


@pytest.mark.parametrize("path", STAGE_YAMLS, ids=lambda path: str(path.relative_to(REPO)))
def test_recipe_yamls_are_named_by_their_stage(path):
    """`stage2_pretrain.yaml` holds `stage: pretrain`, run by the stage's recipe script."""
    stage = next(stage for stage in STAGES.values() if stage.label == path.stem)
    config = yaml.safe_load(path.read_text())
    assert config.get("stage", stage.name) == stage.name
    assert (stage.script == "sft.py") == ("stage" in config)


def test_the_demo_runs_every_stage_by_its_registry_name():
    from babyvlm.commands.demo import RECIPE_CONFIGS

    assert {name: Path(config).stem for name, config in RECIPE_CONFIGS.items()} == {
        name: stage.label for name, stage in STAGES.items()
    }


def test_a_stage_is_refused_by_a_recipe_that_does_not_train_it():
    assert get_stage("pretrain").label == "stage2_pretrain"
    assert get_stage("vision", script="pretrain_vision.py").trains == ("vision",)
    with pytest.raises(ValueError, match="trained by recipes/pretrain_vision.py, not recipes/sft.py"):
        get_stage("vision")
    with pytest.raises(ValueError, match="unknown stage 'stage2'; choose one of lm, vision, align, pretrain"):
        get_stage("stage2")


def test_a_recipe_switches_the_vision_tower_and_the_language_model_on_or_off_by_name():
    align, instruct = STAGES["align"], STAGES["instruct"]
    assert trained_parts(align) == ("connector",)
    assert trained_parts(align, language_model=True) == ("connector", "language_model")
    assert trained_parts(align, vision=True, language_model=False) == ("vision", "connector")
    assert trained_parts(instruct, vision=False) == ("connector", "language_model")
    assert trained_parts(instruct, language_model=False) == ("vision", "connector")
